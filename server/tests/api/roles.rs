//! Roles and API tokens from the outside: every server function, page and download tried by a
//! viewer, an operator, an admin and nobody, against a table written here (not read from the
//! server's own policy, so a mistake there shows); API tokens acting within their scope.

use crate::auth::server_fn_calls;
use crate::helpers::{anonymous, TestApp};
use crate::rest::{api_calls, api_fixture};
use app::model::{NewApiToken, Role};
use leptos::server_fn::ServerFn;
use reqwest::header::ACCEPT;

/// The lowest role each server function needs.
fn needs(path: &str) -> Role {
    use app::api::*;
    let viewer = [
        LoadDashboard::PATH,
        LiveUpdates::PATH,
        DeviceHistory::PATH,
        DeviceSeries::PATH,
        ListAlarmRules::PATH,
        ListAlarms::PATH,
        ListAutomationRuns::PATH,
    ];
    let operator = [
        SendCommand::PATH,
        SendConsoleLine::PATH,
        AcknowledgeAlarm::PATH,
    ];
    if viewer.contains(&path) {
        Role::Viewer
    } else if operator.contains(&path) {
        Role::Operator
    } else {
        Role::Admin
    }
}

/// Whether an answer means "let through" (whatever the call then said: 404 for a device that
/// is not there is fine).
fn let_through(status: u16) -> bool {
    ![401, 403].contains(&status)
}

#[tokio::test]
async fn each_role_reaches_exactly_what_it_may() {
    let app = TestApp::spawn().await;
    let clients = [
        (Role::Viewer, app.user_client("vera", "viewer").await),
        (Role::Operator, app.user_client("otto", "operator").await),
        (Role::Admin, app.http.clone()),
    ];
    let stranger = anonymous();

    for (path, (content_type, body)) in server_fn_calls() {
        let call = |client: &reqwest::Client| {
            client
                .post(app.url(path))
                .header("content-type", content_type)
                .body(body.clone())
                .send()
        };
        assert_eq!(
            call(&stranger).await.unwrap().status(),
            401,
            "{path}: nobody"
        );
        for (role, client) in &clients {
            let status = call(client).await.unwrap().status().as_u16();
            let allowed = *role >= needs(path);
            assert_eq!(
                let_through(status),
                allowed,
                "{path} as {role}: {status} (needs {})",
                needs(path)
            );
            if !allowed {
                assert_eq!(status, 403, "{path} as {role}");
            }
        }
    }

    // Pages and downloads.
    let pages = [
        ("/", Role::Viewer),
        ("/devices/7?window=1h", Role::Viewer),
        ("/export/7.csv?day=2026-11-22", Role::Viewer),
        ("/metrics", Role::Viewer),
        ("/alarms", Role::Viewer),
        ("/tokens", Role::Admin),
    ];
    for (page, needed) in pages {
        for (role, client) in &clients {
            let res = client
                .get(app.url(page))
                .header(ACCEPT, "text/html")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert_eq!(
                let_through(status),
                *role >= needed,
                "{page} as {role}: {status}"
            );
            if *role < needed {
                assert!(res.text().await.unwrap().contains("does not allow"));
            }
        }
    }
    // The REST API, with the same sessions (a program's token acts within the same roles).
    let _device = api_fixture(&app).await;
    for (method, path, url, body) in api_calls() {
        let needed = match (method, path) {
            (_, p) if p.starts_with("/api/v1/device-tokens") => Role::Admin,
            ("POST", "/api/v1/commands") | ("POST", "/api/v1/alarms/{id}/ack") => Role::Operator,
            ("GET", _) => Role::Viewer,
            _ => Role::Admin,
        };
        let call = |client: &reqwest::Client| {
            let mut request = client.request(method.parse().unwrap(), app.url(url));
            if let Some(body) = &body {
                request = request.json(body);
            }
            request.send()
        };
        assert_eq!(
            call(&stranger).await.unwrap().status(),
            401,
            "{method} {path}: nobody"
        );
        for (role, client) in &clients {
            let status = call(client).await.unwrap().status().as_u16();
            assert_eq!(
                let_through(status),
                *role >= needed,
                "{method} {path} as {role}: {status}"
            );
        }
    }

    // The page's own form to remove a device.
    for (role, client) in &clients {
        let status = client
            .post(app.url("/devices/nobody/remove"))
            .form(&[("keep_readings", "true")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(
            let_through(status),
            *role == Role::Admin,
            "remove as {role}: {status}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_pages_say_who_is_looking_and_what_they_may_do() {
    let app = TestApp::spawn().await;
    let vera = app.user_client("vera", "viewer").await;
    let snapshot: app::model::DashboardSnapshot = serde_json::from_str(
        &vera
            .post(app.url(app::api::LoadDashboard::PATH))
            .json(&serde_json::json!({ "scope": "fleet" }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let viewer = snapshot.viewer.unwrap();
    assert_eq!((viewer.user.as_str(), viewer.role), ("vera", Role::Viewer));
    // A viewer's overview has no command form; an admin's has.
    let page = |client: reqwest::Client| {
        let url = app.url("/");
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(!page(vera).await.contains("command-form"));
    assert!(page(app.http.clone()).await.contains("command-form"));
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_act_as_their_user_within_their_scope() {
    let app = TestApp::spawn().await;
    let (ok, token, err) = app.cli(
        &[
            "api-token",
            "create",
            "--user",
            "admin",
            "--scope",
            "viewer",
            "--label",
            "script",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        token.starts_with("iothub_api_") && !token.contains(' '),
        "{token}"
    );
    let script = TestApp::bearer_client(&token);
    let dashboard = |client: &reqwest::Client| {
        client
            .post(app.url(app::api::LoadDashboard::PATH))
            .json(&serde_json::json!({ "scope": "fleet" }))
            .send()
    };
    let command = |client: &reqwest::Client| {
        client
            .post(app.url(app::api::SendCommand::PATH))
            .header("content-type", "application/json")
            .body(r#"{"request":{"target":"all","variable":"LED","value":1.0,"duration_ms":null}}"#)
            .send()
    };
    // A bearer token needs no Origin: only a program holding it sends it.
    assert_eq!(dashboard(&script).await.unwrap().status(), 200);
    assert_eq!(
        command(&script).await.unwrap().status(),
        403,
        "a viewer token"
    );

    // Made on the page (a server function), for the signed-in admin, with operator scope.
    let made: NewApiToken = app
        .call::<app::api::CreateApiToken, _>(&[
            ("label", "ops"),
            ("scope", "operator"),
            ("expires_days", "30"),
        ])
        .await
        .unwrap();
    assert_eq!(made.token.scope, Role::Operator);
    assert!(made.token.expires_ms.is_some());
    let ops = TestApp::bearer_client(&made.secret);
    assert!(let_through(command(&ops).await.unwrap().status().as_u16()));
    assert_eq!(
        ops.post(app.url(app::api::ListDeviceTokens::PATH))
            .send()
            .await
            .unwrap()
            .status(),
        403,
        "an operator token cannot reach admin functions"
    );

    // A token acts with the lower of its scope and its user's role.
    app.user_client("vera", "viewer").await;
    let (ok, vera_token, err) = app.cli(
        &["api-token", "create", "--user", "vera", "--scope", "admin"],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(
        command(&TestApp::bearer_client(&vera_token))
            .await
            .unwrap()
            .status(),
        403
    );

    // Listed (never with secrets), last use noted; revoked: refused at once.
    let (ok, list, _) = app.cli(&["api-token", "list"], "");
    assert!(ok && list.contains("\tadmin\tviewer\tscript\t"), "{list}");
    assert!(!list.contains(&token["iothub_api_".len()..]), "{list}");
    let line = list.lines().find(|l| l.contains("\tscript\t")).unwrap();
    assert!(!line.ends_with("never\t-"), "last use noted: {line}");
    let id = line.split('\t').next().unwrap();
    let (ok, _, err) = app.cli(&["api-token", "revoke", id], "");
    assert!(ok, "{err}");
    assert_eq!(dashboard(&script).await.unwrap().status(), 401);

    // A bearer that is not a valid token is nobody, even beside a valid session cookie.
    let res = app
        .http
        .post(app.url(app::api::LoadDashboard::PATH))
        .header("authorization", "Bearer iothub_api_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // A removed user's tokens stop working.
    let (ok, _, err) = app.cli(&["user", "remove", "vera"], "");
    assert!(ok, "{err}");
    assert_eq!(
        dashboard(&TestApp::bearer_client(&vera_token))
            .await
            .unwrap()
            .status(),
        401
    );
    app.stop().await;
}
