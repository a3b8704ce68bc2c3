//! PostgreSQL goes away and comes back while devices keep sending: nothing received is lost.
//!
//! This stops the real PostgreSQL server, so it lives in its own test binary (cargo runs test
//! binaries one after another) and runs only when `IOTHUB_TEST_POSTGRES_CTL` names the cluster
//! control command, e.g. `pg_ctlcluster 15 main` (CI sets it; it needs root).

#![allow(clippy::unwrap_used)]

use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use server::config::ServeArgs;
use server::startup::Application;
use server::storage::test_support::TestPostgres;
use std::time::Duration;

fn pg_ctl(action: &str) {
    let ctl = std::env::var("IOTHUB_TEST_POSTGRES_CTL").unwrap();
    let mut words = ctl.split_whitespace();
    let status = std::process::Command::new(words.next().unwrap())
        .args(words)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "{ctl} {action} failed");
}

async fn stored(http: &reqwest::Client, base: &str) -> usize {
    let url = format!("{base}{}", app::api::DeviceHistory::PATH);
    let res = http
        .post(url)
        .form(&[("device_id", "7"), ("since_ms", "0"), ("limit", "1000")])
        .send()
        .await
        .unwrap();
    res.json::<Vec<app::model::Reading>>().await.unwrap().len()
}

/// The next text message from the hub (pings are answered by tungstenite).
async fn next_text<S>(device: &mut S) -> String
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), device.next())
            .await
            .expect("an answer in time")
            .expect("the connection stays open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return text.to_string();
        }
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn readings_received_while_postgres_is_down_are_written_when_it_returns() {
    if std::env::var("IOTHUB_TEST_POSTGRES_CTL").is_err() {
        eprintln!("IOTHUB_TEST_POSTGRES_CTL is not set: skipping the PostgreSQL outage test");
        return;
    }
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let data_dir = tempfile::tempdir().unwrap();
    let mut args = ServeArgs::defaults();
    args.http.bind = "127.0.0.1:0".parse().unwrap();
    args.store.data_dir = data_dir.path().to_path_buf();
    args.store.database_url = Some(pg.url.clone());
    args.writes.flush_interval_ms = 50;
    args.accounts.admin_password = Some("outage test password".into());
    args.devices.allow_tokenless_devices = true;
    let app = Application::build(args).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let session = server::client::sign_in(&base.parse().unwrap(), "admin", "outage test password")
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, session.parse().unwrap());
    // As the dashboard's page sends with its requests.
    headers.insert(reqwest::header::ORIGIN, base.parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();

    let (mut device, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/device", &base[7..]))
            .await
            .unwrap();
    for i in 0..10 {
        device.send(format!("7,{i},1").into()).await.unwrap();
    }
    wait_for("10 stored", async || stored(&http, &base).await == 10).await;

    pg_ctl("stop");
    for i in 10..30 {
        device.send(format!("7,{i},2").into()).await.unwrap();
    }
    // Give the writer time to fail a few times before the database comes back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A signed-in browser keeps its dashboard: its session was checked before the outage.
    assert_eq!(
        http.get(format!("{base}/")).send().await.unwrap().status(),
        200,
        "the dashboard stays up while the store is down"
    );
    // The health check tells a monitor that the store is away.
    let health = || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(health().await, 503);
    // A device asking whether its readings are safe is told they are not, yet.
    device.send("sync=30".into()).await.unwrap();
    let answer = next_text(&mut device).await;
    assert!(
        answer.starts_with("error: sync=30: not everything is stored yet"),
        "{answer}"
    );
    pg_ctl("start");

    wait_for("all 30 stored after PostgreSQL returned", async || {
        stored(&http, &base).await == 30
    })
    .await;
    device.send("sync=30".into()).await.unwrap();
    assert_eq!(next_text(&mut device).await, "stored=30");
    wait_for("healthy again", async || health().await == 200).await;
    let _ = device.close(None).await;
    while device.next().await.is_some() {}
    stop.cancel();
    server.await.unwrap().unwrap();
    pg.drop_database().await;
}
