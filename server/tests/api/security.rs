use crate::helpers::TestApp;
use leptos::server_fn::ServerFn;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn pages_carry_security_headers_and_a_policy_with_their_script_nonce() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.url("/")).send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "same-origin");
    let policy = header("content-security-policy");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the policy names the page's nonce")
        .to_string();
    let html = res.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"nonce="{nonce}""#)),
        "the inline scripts carry the nonce the policy allows"
    );
    app.stop().await;
}

#[tokio::test]
async fn browser_requests_from_another_origin_are_refused() {
    let app = TestApp::spawn().await;
    let own = format!("http://{}", app.addr);
    let post = |origin: Option<String>| {
        let mut request = app
            .http
            .post(app.url(app::api::LoadDashboard::PATH))
            .json(&serde_json::json!({ "scope": "fleet" }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(Some("http://evil.example".into())).await, 403);
    assert_eq!(post(Some("null".into())).await, 403);
    assert_eq!(post(Some(own.clone())).await, 200);
    assert_eq!(post(None).await, 200, "non-browser clients send no Origin");

    // WebSocket handshakes: a page elsewhere cannot pose as a device through a browser.
    let handshake = |origin: Option<&str>| {
        let mut request = format!("ws://{}/ws/device?id=7", app.addr)
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
    };
    match handshake(Some("http://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 403)
        }
        other => panic!("a cross-origin handshake must be refused, got {other:?}"),
    }
    assert!(handshake(None).await.is_ok(), "devices send no Origin");
    assert!(handshake(Some(&own)).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn with_a_public_origin_only_that_origin_is_accepted() {
    let app = TestApp::spawn_with(|args| {
        args.http.public_origin = Some("https://hub.example.org".into());
    })
    .await;
    let status = |origin: String| {
        let request = app
            .http
            .post(app.url(app::api::LoadDashboard::PATH))
            .json(&serde_json::json!({ "scope": "fleet" }))
            .header("origin", origin);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("https://hub.example.org".into()).await, 200);
    assert_eq!(status(format!("http://{}", app.addr)).await, 403);
    app.stop().await;
}

#[tokio::test]
async fn oversized_request_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let line = "x".repeat(server::security::MAX_REQUEST_BODY + 1);
    let status = app
        .http
        .post(app.url(app::api::SendConsoleLine::PATH))
        .form(&[("device_id", "7"), ("line", line.as_str())])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 413);
    app.stop().await;
}
