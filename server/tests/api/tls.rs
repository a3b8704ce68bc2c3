//! HTTPS and WSS with a certificate made in the test (rcgen), and the connection limits the
//! accept loop enforces before any request is read.

use crate::helpers::{eventually, post_login_at, Device, TestApp, ADMIN_PASSWORD};
use futures::SinkExt;
use reqwest::header::{SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for `localhost`: (folder, cert.pem, key.pem, the certificate).
fn certificate() -> (TempDir, PathBuf, PathBuf, CertificateDer<'static>) {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (dir, cert, key, made.cert.der().clone())
}

/// A TLS client that trusts only `certificate`.
fn trusting(certificate: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

async fn tls_app(
    configure: impl FnOnce(&mut server::config::ServeArgs),
) -> (TestApp, TempDir, CertificateDer<'static>) {
    let (dir, cert, key, der) = certificate();
    let app = TestApp::spawn_with(|args| {
        args.tls.tls_cert = Some(cert);
        args.tls.tls_key = Some(key);
        configure(args);
    })
    .await;
    (app, dir, der)
}

#[tokio::test]
async fn pages_are_served_over_https_with_hsts_and_a_secure_cookie() {
    let (app, _dir, _) = tls_app(|_| {}).await;
    assert!(app.base.starts_with("https://localhost:"));
    let res = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[STRICT_TRANSPORT_SECURITY], "max-age=31536000");
    assert!(res.text().await.unwrap().contains("IoT Hub"));

    let client = crate::helpers::client_for(
        app.addr,
        Some(&std::fs::read(_dir.path().join("cert.pem")).unwrap()),
    )
    .redirect(reqwest::redirect::Policy::none())
    .build()
    .unwrap();
    let login = post_login_at(&client, &app.base, "admin", ADMIN_PASSWORD).await;
    let cookie = login.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::get(format!("http://{}/login", app.addr)).await;
    assert!(plain.is_err(), "{plain:?}");
    app.stop().await;
}

#[tokio::test]
async fn plain_http_sends_no_hsts() {
    let app = TestApp::spawn().await;
    let res = app.http.get(app.url("/")).send().await.unwrap();
    assert!(res.headers().get(STRICT_TRANSPORT_SECURITY).is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_device_connects_over_wss() {
    let (app, _dir, der) = tls_app(|_| {}).await;
    let config = trusting(der);
    let request = format!("wss://localhost:{}/ws/device?id=7", app.addr.port())
        .into_client_request()
        .unwrap();
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async_tls_with_config(
        request,
        tcp,
        None,
        Some(tokio_tungstenite::Connector::Rustls(config)),
    )
    .await
    .expect("the WSS handshake succeeds");
    ws.send(Message::Text("7,1,23.5".into())).await.unwrap();
    eventually("the reading is stored", || async {
        (app.history("7", 10).await.len() == 1).then_some(())
    })
    .await;
    drop(ws);
    app.stop().await;
}

#[tokio::test]
async fn the_bundled_simulator_speaks_wss_when_tls_is_on() {
    let (app, _dir, _) = tls_app(|args| {
        args.simulate.simulate = 2;
        args.simulate.simulate_rate = 50.0;
        args.devices.allow_tokenless_devices = false;
    })
    .await;
    for id in ["1", "2"] {
        eventually(&format!("simulated device {id} sends"), || async {
            (!app.history(id, 1).await.is_empty()).then_some(())
        })
        .await;
    }
    app.stop().await;
}

/// A TCP connection from `local` (127.0.0.2 is this machine too, but not 127.0.0.1).
async fn connect_from(local: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((local, 0)))
        .expect("127.0.0.0/8 is local on Linux");
    socket.connect(to).await.unwrap()
}

/// Sends a request without a body and reads the response head; `None` if the server closed
/// the connection instead.
async fn exchange(tcp: &mut TcpStream, request: &str) -> Option<String> {
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return None;
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// `POST /logout` without a session: a 303 with an empty body, so the connection can be
/// reused for the next request.
const LOGOUT: &str = "POST /logout HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";

#[tokio::test]
async fn connections_per_client_address_are_limited() {
    let app = TestApp::spawn_with(|args| args.http.max_connections_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from([127, 0, 0, 2], app.addr).await;
        let head = exchange(&mut tcp, LOGOUT).await.expect("answered");
        assert!(head.starts_with("HTTP/1.1 303"), "{head}");
        open.push(tcp);
    }
    let mut fourth = connect_from([127, 0, 0, 2], app.addr).await;
    assert_eq!(
        exchange(&mut fourth, LOGOUT).await,
        None,
        "the fourth is closed at once"
    );
    for tcp in &mut open {
        assert!(
            exchange(tcp, LOGOUT).await.is_some(),
            "the first three still work"
        );
    }
    // Closing one frees its place.
    open.pop();
    eventually("a freed place is taken", || async {
        let mut tcp = connect_from([127, 0, 0, 2], app.addr).await;
        exchange(&mut tcp, LOGOUT).await.map(|_| ())
    })
    .await;
    // This machine's own address is not limited (the simulator, benchmarks, a local proxy).
    let mut local = Vec::new();
    for _ in 0..10 {
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        assert!(exchange(&mut tcp, LOGOUT).await.is_some());
        local.push(tcp);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_open_websocket_keeps_its_place_in_the_count() {
    let app = TestApp::spawn_with(|args| args.http.max_connections_per_ip = 1).await;
    let tcp = connect_from([127, 0, 0, 2], app.addr).await;
    let request = format!("ws://{}/ws/device?id=7", app.addr)
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("the device connects");
    ws.send(Message::Text("7,1,1".into())).await.unwrap();
    eventually("the reading is stored", || async {
        (!app.history("7", 1).await.is_empty()).then_some(())
    })
    .await;
    // Upgraded, the socket is no longer hyper's, but it still counts.
    let mut second = connect_from([127, 0, 0, 2], app.addr).await;
    assert_eq!(exchange(&mut second, LOGOUT).await, None);
    drop(ws);
    eventually("its place comes back when it closes", || async {
        let mut tcp = connect_from([127, 0, 0, 2], app.addr).await;
        exchange(&mut tcp, LOGOUT).await.map(|_| ())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    let app = TestApp::spawn().await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let big = format!(
        "GET /login HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(20 * 1024)
    );
    let head = exchange(&mut tcp, &big).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let head = exchange(&mut tcp, LOGOUT).await.expect("an answer");
    assert!(
        head.starts_with("HTTP/1.1 303"),
        "normal requests still work: {head}"
    );
    app.stop().await;
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let app = TestApp::spawn_with(|args| args.http.header_timeout_ms = 300).await;
    let closed_within = |mut tcp: TcpStream, limit: Duration| async move {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(limit, tcp.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    };
    // Connected, sending nothing: not cut off at once, but soon after the header timeout.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let mut probe = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut probe)).await;
    assert!(early.is_err(), "still open after 100 ms: {early:?}");
    assert!(
        closed_within(tcp, Duration::from_secs(5)).await,
        "closed after the header timeout"
    );

    // Kept alive after a request, then idle: closed too.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    assert!(exchange(&mut tcp, LOGOUT).await.is_some());
    assert!(
        closed_within(tcp, Duration::from_secs(5)).await,
        "idle keep-alive closed"
    );

    // Devices are not affected: their keepalive is their own (pings).
    let mut device: Device = app.device("?id=quiet").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    device.send("quiet,1,1").await;
    eventually("the quiet device's reading", || async {
        (!app.history("quiet", 1).await.is_empty()).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn raw_tcp_devices_speak_tls_with_tcp_tls() {
    let (app, _dir, der) = tls_app(|args| {
        args.tcp.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
        args.tcp.tcp_tls = true;
        args.devices.allow_tokenless_devices = false;
    })
    .await;
    let tcp_addr = app.tcp_addr.expect("the TCP listener is on");
    let secret = app.create_token("7", "").await.secret;

    let config = trusting(der);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(tcp_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector
        .connect(name, tcp)
        .await
        .expect("the TLS handshake succeeds");
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = tokio::io::BufReader::new(reader).lines();
    writer
        .write_all(format!("token={secret}\n7,1,23.5\n").as_bytes())
        .await
        .unwrap();
    eventually("the reading is stored", || async {
        (app.history("7", 10).await.len() == 1).then_some(())
    })
    .await;
    let sent = app
        .command(
            app::model::CommandTarget::Device("7".into()),
            "LED",
            1.0,
            None,
        )
        .await
        .unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a command in time")
        .unwrap()
        .expect("a line");
    assert_eq!(line, format!("LED=1,seq={}", sent[0].seq));

    // Plain text on the TLS port is not a device, even with a valid token.
    let mut plain = TcpStream::connect(tcp_addr).await.unwrap();
    plain
        .write_all(format!("token={secret}\n7,2,24\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut rest)).await;
    assert_eq!(
        app.history("7", 10).await.len(),
        1,
        "only the reading sent over TLS"
    );
    app.stop().await;
}

#[tokio::test]
async fn tcp_tls_without_a_certificate_does_not_start() {
    let mut args = server::config::ServeArgs::defaults();
    let dir = tempfile::tempdir().unwrap();
    args.store.data_dir = dir.path().to_path_buf();
    args.http.bind = "127.0.0.1:0".parse().unwrap();
    args.tcp.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    args.tcp.tcp_tls = true;
    let err = server::startup::Application::build(args)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--tls-cert"), "{err}");
}

#[tokio::test]
async fn plain_http_is_redirected_to_the_same_path_over_https() {
    let (app, _dir, _) = tls_app(|args| {
        args.tls.http_redirect = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let plain = app.redirect_addr.expect("the redirect listener");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .get(format!("http://{plain}/devices/7?window=1h"))
        .header("host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://localhost:{}/devices/7?window=1h", app.addr.port()).as_str()
    );
    // Only to names the hub answers to: no open redirect.
    let res = http
        .get(format!("http://{plain}/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 421);
    app.stop().await;
}

#[tokio::test]
async fn a_redirect_to_https_needs_a_certificate() {
    let mut args = server::config::ServeArgs::defaults();
    args.http.bind = "127.0.0.1:0".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    args.store.data_dir = dir.path().to_path_buf();
    args.tls.http_redirect = Some("127.0.0.1:0".parse().unwrap());
    let err = server::startup::Application::build(args)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--http-redirect"), "{err}");
}
