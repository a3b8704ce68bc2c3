//! Attacks from the internet, each with the inputs that once hurt the hub, against the real
//! binary in its own process (so its memory can be read from /proc) or the in-process server.

use crate::helpers::*;
use leptos::server_fn::ServerFn;
use std::net::{IpAddr, SocketAddr};

use std::time::Duration;

#[tokio::test]
async fn a_burst_of_wrong_sign_ins_from_one_address_costs_five_checks_and_bounded_memory() {
    let hub = HubProcess::start(&[]).await;
    // Warm up: one right sign-in, so the memory a first check allocates is counted before.
    sign_in(hub.addr, "admin", ADMIN_PASSWORD).await.unwrap();
    let before = hub.rss_kib();
    let attacker = client_from(IpAddr::from([127, 0, 0, 3]));
    let attempts = (0..200).map(|_| {
        let attacker = attacker.clone();
        async move {
            post_login(&attacker, hub.addr, "admin", "wrong guess")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let after = hub.rss_kib();
    let checked = statuses.iter().filter(|s| **s == 303).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (checked, throttled),
        (server::auth::throttle::FREE_PER_ADDRESS as usize, 195),
        "{statuses:?}"
    );
    // A password check holds 19 MiB; at most one per core runs at once.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let growth = after.saturating_sub(before);
    assert!(
        growth < cores * 19 * 1024 + 24 * 1024,
        "RSS grew {growth} KiB ({before} -> {after})"
    );
}

/// Sends the head of a `POST /login` announcing a 60 kB body, then one byte of it every half
/// second; returns how long the hub kept the connection open (`None`: still open after `give_up`).
async fn trickle_a_body(addr: SocketAddr, from: IpAddr, give_up: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 60000\r\n\r\nuser=admin&password="
    );
    let started = tokio::time::Instant::now();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while started.elapsed() < give_up {
        tokio::select! {
            read = tcp.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {} // the answer (4xx) comes before the close
            },
            _ = tick.tick() => {
                let _ = tcp.write_all(b"x").await;
            }
        }
    }
    None
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_at_the_request_deadline() {
    let hub = HubProcess::start(&["--request-timeout-ms", "2000"]).await;
    let from = IpAddr::from([127, 0, 0, 4]);
    let trickles = (0..20).map(|_| trickle_a_body(hub.addr, from, Duration::from_secs(15)));
    for held in futures::future::join_all(trickles).await {
        let held = held.expect("the connection is closed");
        assert!(
            held >= Duration::from_millis(1900) && held < Duration::from_secs(6),
            "closed after {held:?}"
        );
    }
    // Meanwhile and after, the hub answers everyone else.
    let health = reqwest::get(format!("http://{}/healthz", hub.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let hub = HubProcess::start(&["--max-connections", "5"]).await;
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(tokio::net::TcpStream::connect(hub.addr).await.unwrap());
    }
    // Let the hub accept all five before the sixth comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sixth = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), sixth.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the sixth connection is closed: {read:?}"
    );
    // A place frees up when one of the five goes.
    idle.pop();
    eventually("a freed place to be usable", || async {
        let health = reqwest::get(format!("http://{}/healthz", hub.addr)).await;
        health.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn a_registration_flood_is_rate_limited_and_written_once() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = TestApp::spawn_with(|args| args.devices.allow_tokenless_devices = false).await;
    let token = app.create_token("kitchen", "flood").await;
    let mut live = app.live().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws/device?token={}",
        app.addr, token.secret
    ))
    .await
    .unwrap();
    // 100,000 registrations in 200 frames, as fast as the socket takes them.
    let line = r#"{"register":{"name":"Kitchen","fields":[{"name":"temp","unit":"°C"}]}}"#;
    let frame = vec![line; 500].join("\n");
    for _ in 0..200 {
        if ws.send(Message::Text(frame.clone().into())).await.is_err() {
            break;
        }
    }
    // Rate-limit errors come back, and once they pass the error budget the hub closes the
    // connection (a close frame, or a reset if the flood was still arriving).
    let mut refused = 0;
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                assert_eq!(
                    text.as_str(),
                    "error: rate limit: at most 100 messages per second; message dropped"
                );
                refused += 1;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let reason = frame.map(|f| f.reason.to_string());
                assert_eq!(reason.as_deref(), Some("too many errors"));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) => break,
            Err(_) => panic!("the flooding connection is still open"),
        }
    }
    assert!(refused > 0, "rate-limit errors are sent");
    // The registration was taken (once) and the device went offline: a handful of device
    // events, not one per line.
    let summary = eventually("the device offline, registered", || async {
        app.device_summary("kitchen")
            .await
            .filter(|s| !s.online && s.registration.is_some())
    })
    .await;
    assert!(
        summary.errors <= server::devices::session::ERROR_BUDGET as u64 + 1,
        "{} messages refused: the connection should have closed at the error budget",
        summary.errors
    );
    assert_eq!(
        summary.registration.and_then(|r| r.name).as_deref(),
        Some("Kitchen")
    );
    let mut device_events = 0;
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(500), live.next_event()).await
    {
        if matches!(event, app::model::LiveEvent::Device(ref d) if d.id == "kitchen") {
            device_events += 1;
        }
    }
    assert!(
        device_events <= 4,
        "{device_events} device events for one registration"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_id_with_a_token_cannot_be_used_without_it_on_any_transport() {
    // Tokenless devices allowed (the test servers' default), and `kitchen` has a token.
    let app = TestApp::spawn_with(|args| {
        args.tcp.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.create_token("kitchen", "its own").await;
    // Named in the URL: refused before the upgrade.
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/device?id=kitchen", app.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Named in the first line, over WebSocket and raw TCP: refused, and not attached.
    let mut device = app.device("").await;
    device.send("id=kitchen,temp=99").await;
    let error = device.recv_text().await;
    assert!(error.contains("has a device token"), "{error}");
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.tcp_addr.unwrap())
        .await
        .unwrap();
    tcp.write_all(b"id=kitchen,temp=98\n").await.unwrap();
    let mut answer = String::new();
    tokio::io::BufReader::new(&mut tcp)
        .read_line(&mut answer)
        .await
        .unwrap();
    assert!(answer.contains("has a device token"), "{answer}");
    assert!(
        app.device_summary("kitchen").await.is_none(),
        "never attached"
    );
    // Other ids still work without a token.
    device.send("id=porch,temp=5").await;
    eventually("porch online", || async {
        app.device_summary("porch").await.filter(|s| s.online)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn new_device_ids_past_the_limit_are_refused_and_counted() {
    let app = TestApp::spawn_with(|args| {
        args.live.max_devices = 2;
        args.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let mut devices = Vec::new();
    for id in ["one", "two"] {
        let mut device = app.device("").await;
        device.send(&format!("id={id},temp=1")).await;
        devices.push(device);
    }
    eventually("two devices online", || async {
        let snapshot = app.dashboard().await;
        (snapshot.devices.iter().filter(|d| d.summary.online).count() == 2).then_some(())
    })
    .await;
    let mut third = app.device("?id=three").await;
    third.send("temp=1").await;
    assert_eq!(
        third.recv_text().await,
        "error: this hub knows 2 devices already, its limit (--max-devices); a new id is refused"
    );
    assert!(app.device_summary("three").await.is_none());
    // A known id still connects.
    let mut again = app.device("?id=one").await;
    again.send("temp=2").await;
    assert!(again.silent_for(Duration::from_millis(300)).await);
    let metrics = app.metrics_text().await;
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("iothub_devices_refused_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the refusal counter");
    assert!(refused >= 1.0, "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_name_the_hub_was_never_given_gets_421() {
    let app = TestApp::spawn_with(|args| {
        args.http.public_origin = Some("https://hub.example.org".into());
        args.http.allowed_hosts = vec!["raspberrypi.local".into()];
    })
    .await;
    let status_for = |host: &'static str| {
        let url = app.url("/healthz");
        async move {
            anonymous()
                .get(url)
                .header("host", host)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // DNS rebinding: another site's name pointed at the hub.
    assert_eq!(status_for("evil.example:3000").await, 421);
    assert_eq!(status_for("hub.example.org.evil.example").await, 421);
    for allowed in [
        "hub.example.org",
        "hub.example.org:8443",
        "raspberrypi.local:3000",
        "192.168.1.10:3000",
        "[::1]:3000",
        "localhost:3000",
    ] {
        assert_eq!(status_for(allowed).await, 200, "{allowed}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_signed_in_post_that_says_nothing_of_its_origin_is_refused() {
    let app = TestApp::spawn().await;
    let post = |origin: Option<&str>, fetch_site: Option<&'static str>| {
        let mut request = anonymous()
            .post(app.url(app::api::LoadDashboard::PATH))
            .header("cookie", &app.session_cookie)
            .json(&serde_json::json!({ "scope": "fleet" }));
        if let Some(origin) = origin {
            request = request.header("origin", origin.to_string());
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None, None).await, 403);
    assert_eq!(post(None, Some("cross-site")).await, 403);
    assert_eq!(post(None, Some("same-origin")).await, 200);
    assert_eq!(post(Some(&app.base), None).await, 200);
    assert_eq!(post(Some("https://evil.example"), None).await, 403);
    // A body the function cannot read is the caller's mistake: 400, not a server error.
    let garbled = anonymous()
        .post(app.url(app::api::LoadDashboard::PATH))
        .header("cookie", &app.session_cookie)
        .header("origin", &app.base)
        .header("content-type", "application/json")
        .body(r#"{"scope":{"devices":{"page":-1}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 400, "{:?}", garbled.text().await);
    app.stop().await;
}

#[tokio::test]
async fn a_token_reconnecting_in_a_loop_is_slowed_down() {
    let app = TestApp::spawn_with(|args| args.devices.allow_tokenless_devices = false).await;
    let token = app.create_token("looping", "reconnects").await;
    let url = format!("ws://{}/ws/device?token={}", app.addr, token.secret);
    // A burst of reconnects is fine (a device rebooting, a flaky network)…
    for attempt in 0..10 {
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|e| panic!("reconnect {attempt}: {e}"));
        drop(ws);
    }
    // …a loop is not.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected 429, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn sign_ins_past_what_the_password_checks_can_take_are_told_to_come_back() {
    let hub = HubProcess::start(&[]).await;
    // Sixty addresses, five attempts each (what the throttle lets through per address), every
    // one for a different name (no account is slowed down): 300 password checks asked for at
    // once, far more than one per core can do within the 5 s a sign-in may wait for one.
    let attempts = (0..60u8).flat_map(|address| {
        let attacker = client_from(IpAddr::from([127, 0, 1, address + 1]));
        (0..5).map(move |n| {
            let attacker = attacker.clone();
            async move {
                let user = format!("guess-{address}-{n}");
                let response = post_login(&attacker, hub.addr, &user, "wrong guess").await;
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                (response.status().as_u16(), retry_after)
            }
        })
    });
    let started = std::time::Instant::now();
    let answers = futures::future::join_all(attempts).await;
    let refused = answers.iter().filter(|(status, _)| *status == 303).count();
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert_eq!(refused + busy.len(), answers.len(), "{answers:?}");
    assert!(refused > 0, "some attempts were checked (and refused)");
    assert!(
        !busy.is_empty(),
        "none was told the checks were busy: {answers:?}"
    );
    assert!(
        busy.iter().all(|(_, retry)| retry.is_some_and(|s| s >= 1)),
        "a busy answer says when to come back: {busy:?}"
    );
    // Told within the queue deadline (5 s), not after waiting for all 300 checks.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // The owner still gets in once the burst is over.
    sign_in(hub.addr, "admin", ADMIN_PASSWORD).await.unwrap();
}
