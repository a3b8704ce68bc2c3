//! Sign-in, sessions and device tokens, from the outside: real HTTP and WebSocket clients
//! against a real server.

use crate::helpers::{anonymous, eventually, post_login, sign_in, Device, TestApp, ADMIN_PASSWORD};
use app::error::AppError;
use app::model::{DeviceToken, LiveEvent, NewDeviceToken};
use leptos::server_fn::ServerFn;
use reqwest::header::{ACCEPT, LOCATION, RETRY_AFTER, SET_COOKIE};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

/// Valid arguments for every server function, by path. A server function missing here fails
/// the walk below, so a new one cannot skip the session check unnoticed.
pub fn server_fn_calls() -> BTreeMap<&'static str, (&'static str, String)> {
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    BTreeMap::from([
        (app::api::LoadDashboard::PATH, (json, r#"{"scope":"fleet"}"#.into())),
        (app::api::LiveUpdates::PATH, (json, r#"{"scope":"fleet"}"#.into())),
        (
            app::api::DeviceHistory::PATH,
            (form, "device_id=7&since_ms=0&limit=10".into()),
        ),
        (
            app::api::DeviceSeries::PATH,
            (
                form,
                "device_id=7&from_ms=0&to_ms=1000&max_points=10".into(),
            ),
        ),
        (
            app::api::SendCommand::PATH,
            (
                json,
                r#"{"request":{"target":"all","variable":"LED","value":1.0,"duration_ms":null}}"#
                    .into(),
            ),
        ),
        (
            app::api::SendConsoleLine::PATH,
            (form, "device_id=7&line=hello".into()),
        ),
        (app::api::ListDeviceTokens::PATH, (form, String::new())),
        (
            app::api::CreateDeviceToken::PATH,
            (form, "device_id=7&label=walk".into()),
        ),
        (app::api::RevokeDeviceToken::PATH, (form, "id=1".into())),
        (
            app::api::RemoveDevice::PATH,
            (form, "device_id=nobody&keep_readings=true".into()),
        ),
        (app::api::ListApiTokens::PATH, (form, String::new())),
        (
            app::api::CreateApiToken::PATH,
            (form, "label=walk&scope=viewer".into()),
        ),
        (app::api::RevokeApiToken::PATH, (form, "id=1".into())),
        (app::api::ListAlarmRules::PATH, (form, String::new())),
        (
            app::api::CreateAlarmRule::PATH,
            (
                json,
                r#"{"rule":{"name":"walk","devices":"*","condition":{"kind":"offline","after_s":60}}}"#
                    .into(),
            ),
        ),
        (
            app::api::UpdateAlarmRule::PATH,
            (
                json,
                r#"{"id":999,"rule":{"name":"walk","devices":"*","condition":{"kind":"offline","after_s":60}}}"#
                    .into(),
            ),
        ),
        (app::api::DeleteAlarmRule::PATH, (form, "id=999".into())),
        (app::api::ListAlarms::PATH, (form, "active_only=true".into())),
        (app::api::AcknowledgeAlarm::PATH, (form, "id=999".into())),
        (app::api::ListAutomationRuns::PATH, (form, String::new())),
    ])
}

#[tokio::test]
async fn every_route_and_server_function_needs_a_session() {
    let app = TestApp::spawn().await;
    let stranger = anonymous();
    let calls = server_fn_calls();
    let paths: Vec<(String, String)> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, method)| (path.to_string(), method.to_string()))
        .collect();
    assert!(paths.len() >= calls.len());

    for (path, method) in &paths {
        let (content_type, body) = calls
            .get(path.as_str())
            .unwrap_or_else(|| panic!("no test call for the server function {path}"));
        assert_eq!(method, "POST", "{path}");
        let call = |client: &reqwest::Client| {
            client
                .post(app.url(path))
                .header("content-type", *content_type)
                .body(body.clone())
                .send()
        };
        let refused = call(&stranger).await.unwrap();
        assert_eq!(refused.status(), 401, "{path} without a session");
        let error: AppError = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
        assert_eq!(error, AppError::SignedOut, "{path}: the pages can tell why");

        // With a session the call is let through: whatever it answers, it is not 401/403.
        // (Some answer 404, e.g. a console line to a device that is not connected.)
        let allowed = call(&app.http).await.unwrap().status().as_u16();
        assert!(
            ![401, 403, 303].contains(&allowed),
            "{path} with a session: {allowed}"
        );
    }

    // Pages and downloads: a browser is sent to the login page, coming back afterwards;
    // anything else gets 401.
    for page in [
        "/",
        "/devices/7?window=1h",
        "/tokens",
        "/alarms",
        "/export/7.csv?day=2026-11-22",
        "/metrics",
        "/nowhere",
    ] {
        let res = stranger
            .get(app.url(page))
            .header(ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{page}");
        let location = res.headers()[LOCATION].to_str().unwrap().to_string();
        let (path, query) = location.split_once('?').unwrap();
        assert_eq!(path, "/login");
        assert_eq!(
            app::links::Route::parse(path, query),
            app::links::Route::Login {
                failed: false,
                next: page.into()
            }
        );
        let res = stranger.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{page} fetched by a script");

        let res = app.http.get(app.url(page)).send().await.unwrap();
        let expected = if page == "/nowhere" { 404 } else { 200 };
        let status = res.status();
        assert_eq!(
            status,
            expected,
            "{page} with a session: {}",
            res.text().await.unwrap()
        );
    }

    // What must stay reachable: the login page itself (and the assets it loads).
    let login = stranger.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let html = login.text().await.unwrap();
    assert!(html.contains(r#"action="/login""#), "the sign-in form");
    assert!(!html.contains("data-device-id"), "and nothing else");
    let css = stranger
        .get(app.url("/pkg/iothub.css"))
        .send()
        .await
        .unwrap();
    assert_ne!(css.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_the_session() {
    let app = TestApp::spawn().await;
    let res = post_login(&anonymous(), app.addr, "admin", ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "/");
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("iothub_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: a Secure cookie would never come back"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    // The session works, then signing out ends it on the server (not just in the browser).
    let with_session = |cookie: String| {
        let client = anonymous();
        let url = app.url(app::api::LoadDashboard::PATH);
        let origin = app.base.clone();
        async move {
            client
                .post(url)
                .header("cookie", cookie)
                .header("origin", origin)
                .json(&serde_json::json!({ "scope": "fleet" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(with_session(session.clone()).await, 200);
    let out = app.sign_out(&session).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()[LOCATION], "/login");
    assert!(out.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(with_session(session).await, 401);
    assert_eq!(with_session("iothub_session=forged".into()).await, 401);

    // A signed-in person opening the login page goes on to where they were going.
    let res = anonymous()
        .get(app.url("/login?next=%2Fdevices%2F7"))
        .header("cookie", &app.session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "/devices/7");
    app.stop().await;
}

#[tokio::test]
async fn signing_out_ends_that_sessions_open_live_stream_and_no_other() {
    let app = TestApp::spawn().await;
    let leaving = sign_in(app.addr, "admin", ADMIN_PASSWORD).await.unwrap();
    let mut leaving_stream = app.live_with_session(&leaving).await;
    let mut staying_stream = app.live().await;
    for stream in [&mut leaving_stream, &mut staying_stream] {
        assert!(matches!(stream.next_event().await, LiveEvent::Snapshot(_)));
    }

    let out = app.sign_out(&leaving).await;
    assert_eq!(out.status(), 303);
    // Within SESSION_CHECK (5 s), well inside the helper's patience.
    assert!(
        leaving_stream.ended().await,
        "a signed-out session must not keep receiving live data"
    );

    // The other session's stream goes on.
    let mut device = app.device("").await;
    device.send("7,1,20").await;
    // The new device joins the page's cards, then its readings follow.
    loop {
        if let LiveEvent::Snapshot(s) = staying_stream.next_event().await {
            if s.devices.iter().any(|d| d.summary.id == "7") {
                break;
            }
        }
    }
    device.send("7,2,20").await;
    loop {
        if let LiveEvent::Reading(reading) = staying_stream.next_event().await {
            assert_eq!(&*reading.device_id, "7");
            break;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure() {
    let app = TestApp::spawn_with(|args| {
        args.http.public_origin = Some("https://hub.example.org".into());
    })
    .await;
    let res = post_login(&anonymous(), app.addr, "admin", ADMIN_PASSWORD).await;
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    // Over HTTPS the name carries the __Host- prefix: no neighbouring site can set one beside it.
    assert!(cookie.starts_with("__Host-iothub_session="), "{cookie}");
    assert!(
        cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let wrong = post_login(&anonymous(), app.addr, "admin", "not the password").await;
    let unknown = post_login(&anonymous(), app.addr, "nobody", "not the password").await;
    for res in [&wrong, &unknown] {
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()[LOCATION], "/login?failed=1&next=%2F");
        assert!(res.headers().get(SET_COOKIE).is_none());
    }
    // Someone guessing from elsewhere did not lock the owner out.
    assert!(sign_in(app.addr, "admin", ADMIN_PASSWORD).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn rapid_wrong_passwords_from_one_address_are_refused_but_not_the_owner_elsewhere() {
    let app = TestApp::spawn().await;
    let attacker = anonymous();
    for attempt in 1..=server::auth::throttle::FREE_PER_ADDRESS {
        let res = post_login(&attacker, app.addr, "admin", "guess").await;
        assert_eq!(res.status(), 303, "attempt {attempt} is answered");
    }
    let res = post_login(&attacker, app.addr, "admin", "guess").await;
    assert_eq!(res.status(), 429, "the next one is refused");
    let wait: u64 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    // Even the right password, from that address, until the wait is over.
    let res = post_login(&attacker, app.addr, "admin", ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429);

    // The owner, from another address (127.0.0.2 also reaches this machine), gets in: slowed
    // down, because the account is under attack, but not locked out.
    let owner = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let res = post_login(&owner, app.addr, "admin", ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()[LOCATION], "/");
    assert!(res.headers().get(SET_COOKIE).is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "attempts for an account under attack are slowed"
    );
    app.stop().await;
}

#[tokio::test]
async fn behind_a_proxy_the_forwarded_address_is_throttled() {
    let app = TestApp::spawn_with(|args| args.http.behind_proxy = true).await;
    let from = |client: &'static str| {
        let http = anonymous();
        let url = app.url("/login");
        async move {
            http.post(url)
                .header("x-forwarded-for", client)
                .form(&[("user", "admin"), ("password", "guess")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..server::auth::throttle::FREE_PER_ADDRESS {
        assert_eq!(from("203.0.113.5").await, 303);
    }
    assert_eq!(from("203.0.113.5").await, 429);
    assert_eq!(
        from("203.0.113.6").await,
        303,
        "another client behind the proxy"
    );
    app.stop().await;
}

/// A device connection with `token` in the URL or the header, or the HTTP status refusing it.
async fn connect(app: &TestApp, query: &str, bearer: Option<&str>) -> Result<Device, u16> {
    let mut request = format!("ws://{}/ws/device{query}", app.addr)
        .into_client_request()
        .unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Device { ws }),
        Err(WsError::Http(res)) => Err(res.status().as_u16()),
        Err(other) => panic!("unexpected handshake failure: {other}"),
    }
}

#[tokio::test]
async fn devices_need_a_valid_token_which_names_their_id() {
    let app = TestApp::spawn_with(|args| args.devices.allow_tokenless_devices = false).await;
    let new = app.create_token("7", "kitchen").await;
    assert!(new.secret.starts_with("iot_"));
    let other = app.create_token("8", "").await;

    assert_eq!(
        connect(&app, "?id=7", None).await.err(),
        Some(401),
        "no token"
    );
    assert_eq!(
        connect(&app, "", Some("iot_0000")).await.err(),
        Some(401),
        "wrong token"
    );
    assert_eq!(
        connect(&app, &format!("?id=7&token={}", other.secret), None)
            .await
            .err(),
        Some(403),
        "another device's token"
    );

    // The right token, as a header: the connection is device 7 from the start.
    let mut device = connect(&app, "", Some(&new.secret))
        .await
        .expect("accepted");
    device.send("7,1,23.5").await;
    eventually("the reading is stored", || async {
        (app.history("7", 10).await.len() == 1).then_some(())
    })
    .await;
    device.send("8,1,99").await;
    assert!(
        device.recv_text().await.contains("does not match"),
        "no posing as device 8"
    );

    // The right token in the URL works too, and is noted as used.
    let mut second = connect(&app, &format!("?token={}", new.secret), None)
        .await
        .expect("accepted");
    assert_eq!(device.closed().await, "replaced by a newer connection");
    second.send("7,2,23.6").await;
    let listed: Vec<DeviceToken> = app
        .call::<app::api::ListDeviceTokens, _>(&[])
        .await
        .unwrap();
    let token = listed.iter().find(|t| t.id == new.token.id).unwrap();
    assert!(token.last_used_ms.is_some());
    assert_eq!(token.label, "kitchen");
    assert!(!serde_json::to_string(&listed)
        .unwrap()
        .contains(&new.secret[4..]));

    // Revoking disconnects the device and refuses it from then on.
    let revoked: DeviceToken = app
        .call::<app::api::RevokeDeviceToken, _>(&[("id", &new.token.id.to_string())])
        .await
        .unwrap();
    assert!(revoked.revoked_ms.is_some());
    assert_eq!(second.closed().await, "device token revoked");
    assert_eq!(
        connect(&app, "", Some(&new.secret)).await.err(),
        Some(401),
        "revoked token"
    );
    let again = app
        .call::<app::api::RevokeDeviceToken, DeviceToken>(&[("id", &new.token.id.to_string())])
        .await;
    assert_eq!(again.unwrap_err().0, 404);
    let bad = app
        .call::<app::api::CreateDeviceToken, NewDeviceToken>(&[
            ("device_id", "bad\u{7}id"),
            ("label", ""),
        ])
        .await;
    assert_eq!(bad.unwrap_err().0, 400);

    // Tokenless devices: refused, and the dashboard does not warn.
    let snapshot = app.dashboard().await;
    let viewer = snapshot.viewer.expect("who is signed in");
    assert_eq!(viewer.user, "admin");
    assert!(!viewer.tokenless_devices);
    app.stop().await;
}

#[tokio::test]
async fn with_tokenless_devices_allowed_the_dashboard_is_told() {
    let app = TestApp::spawn().await;
    assert!(app.dashboard().await.viewer.unwrap().tokenless_devices);
    // A token, when given, must still be right.
    assert_eq!(connect(&app, "", Some("iot_wrong")).await.err(), Some(401));
    assert!(connect(&app, "?id=7", None).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn the_bundled_simulator_gets_tokens_of_its_own() {
    let app = TestApp::spawn_with(|args| {
        args.devices.allow_tokenless_devices = false;
        args.simulate.simulate = 2;
        args.simulate.simulate_rate = 50.0;
    })
    .await;
    for id in ["1", "2"] {
        eventually(&format!("simulated device {id} sends"), || async {
            (!app.history(id, 1).await.is_empty()).then_some(())
        })
        .await;
    }
    // Its tokens are not stored: a demo run leaves nothing behind.
    let listed: Vec<DeviceToken> = app
        .call::<app::api::ListDeviceTokens, _>(&[])
        .await
        .unwrap();
    assert!(listed.is_empty());
    app.stop().await;
}

/// Every file in the data folder, as bytes.
fn data_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            // The WAL files come and go while the server stops.
            let bytes = std::fs::read(&path).ok()?;
            Some((path.display().to_string(), bytes))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn no_secret_is_stored_in_plain_text() {
    let app = TestApp::spawn().await;
    let token = app.create_token("7", "").await;
    let session = app
        .session_cookie
        .trim_start_matches("iothub_session=")
        .to_string();
    let data_dir = app.data_dir.path().to_path_buf();
    let db = data_dir.join("iothub.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE name = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m="), "{hash}");
    pool.close().await;
    // Stopping checkpoints the WAL; look at every file before and after.
    let mut files = data_files(&data_dir);
    let _kept = app.stop().await;
    files.extend(data_files(&data_dir));
    assert!(files.iter().any(|(name, _)| name.ends_with("iothub.db")));
    for (name, bytes) in files {
        for secret in [ADMIN_PASSWORD, &token.secret[4..], &session] {
            assert!(
                !contains(&bytes, secret),
                "{name} holds a secret in plain text"
            );
        }
    }
}

#[tokio::test]
async fn the_command_line_manages_users_and_device_tokens() {
    let app = TestApp::spawn_with(|args| args.devices.allow_tokenless_devices = false).await;
    let iothub = |args: &[&str], stdin: &str| app.cli(args, stdin);
    // `user add` with a password on standard input; the running server accepts it at once.
    let (ok, _, err) = iothub(&["user", "add", "ada"], "ada's password\n");
    assert!(ok, "{err}");
    assert!(sign_in(app.addr, "ada", "ada's password").await.is_ok());
    let (ok, _, err) = iothub(&["user", "add", "ada"], "another password\n");
    assert!(!ok && err.contains("already"), "{err}");
    let (ok, _, err) = iothub(&["user", "add", "bob"], "short\n");
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, users, _) = iothub(&["user", "list"], "");
    assert!(
        ok && users.contains("admin\tadmin\t") && users.contains("ada\tviewer\t"),
        "a new user is a viewer unless told otherwise: {users}"
    );
    let (ok, _, err) = iothub(&["user", "role", "ada", "operator"], "");
    assert!(ok, "{err}");
    let (ok, _, err) = iothub(&["user", "role", "ada", "root"], "");
    assert!(!ok && err.contains("viewer, operator or admin"), "{err}");
    let (ok, users, _) = iothub(&["user", "list"], "");
    assert!(ok && users.contains("ada\toperator\t"), "{users}");
    let (ok, _, err) = iothub(&["user", "passwd", "ada"], "a new password\n");
    assert!(ok, "{err}");
    assert_eq!(
        sign_in(app.addr, "ada", "ada's password").await.err(),
        Some(303)
    );
    assert!(sign_in(app.addr, "ada", "a new password").await.is_ok());

    // `token create` prints the token (and only the token) on stdout.
    let (ok, token, err) = iothub(&["token", "create", "9", "--label", "cli"], "");
    assert!(ok, "{err}");
    assert!(token.starts_with("iot_") && !token.contains(' '), "{token}");
    let mut device = connect(&app, &format!("?token={token}"), None)
        .await
        .expect("the new token is accepted");
    device.send("9,1,1.5").await;
    eventually("the reading is stored", || async {
        (!app.history("9", 1).await.is_empty()).then_some(())
    })
    .await;
    let (ok, list, _) = iothub(&["token", "list"], "");
    assert!(ok && list.contains("\t9\tcli\t"), "{list}");
    assert!(!list.contains(&token[4..]), "the list never shows secrets");
    let id = list
        .lines()
        .find(|l| l.contains("\tcli\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    let (ok, _, err) = iothub(&["token", "revoke", &id], "");
    assert!(ok, "{err}");
    // Revoked in another process: the hub finds it in the store within seconds and ends the
    // connection that uses it.
    assert_eq!(device.closed().await, "device token revoked");
    assert_eq!(
        connect(&app, &format!("?token={token}"), None).await.err(),
        Some(401)
    );
    let (ok, _, err) = iothub(&["user", "remove", "ada"], "");
    assert!(ok, "{err}");
    assert_eq!(
        sign_in(app.addr, "ada", "a new password").await.err(),
        Some(303)
    );
    app.stop().await;
}
