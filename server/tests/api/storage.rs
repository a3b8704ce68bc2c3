//! Storage through the running server: history windows, CSV export, PostgreSQL as the store,
//! and a crash (kill -9) of the real binary.

use crate::helpers::{eventually, TestApp};
use app::model::HistoryWindow;
use server::storage::test_support::TestPostgres;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn history_windows_come_downsampled_from_the_store() {
    let app = TestApp::spawn_with(|args| args.devices.max_readings_per_sec = 10_000.0).await;
    let mut device = app.device("").await;
    let lines: Vec<String> = (0..300).map(|i| format!("7,{i},{}", i % 10)).collect();
    device.send(&lines.join("\n")).await;
    eventually("300 readings stored", || async {
        (app.history("7", 1000).await.len() == 300).then_some(())
    })
    .await;

    let now = server::now_ms();
    let (from, to) = ((now - 60_000).to_string(), (now + 1_000).to_string());
    let window: HistoryWindow = app
        .call::<app::api::DeviceSeries, _>(&[
            ("device_id", "7"),
            ("from_ms", &from),
            ("to_ms", &to),
            ("max_points", "10"),
        ])
        .await
        .unwrap();
    let temp = window
        .series
        .iter()
        .find(|s| s.field == "temp")
        .expect("temp series");
    assert!(temp.points.len() <= 10);
    assert_eq!(temp.points.iter().map(|p| p.count).sum::<u64>(), 300);
    assert_eq!(
        temp.points.iter().map(|p| p.max).fold(f64::MIN, f64::max),
        9.0
    );

    let err = app
        .call::<app::api::DeviceSeries, HistoryWindow>(&[
            ("device_id", "7"),
            ("from_ms", &to),
            ("to_ms", &from),
            ("max_points", "10"),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.0, 400, "{err:?}");
    // Windows whose span or alignment would overflow are refused, not computed.
    let day_before_max = (i64::MAX - 86_400_000).to_string();
    let max = i64::MAX.to_string();
    for (from, to) in [
        ("-1", max.as_str()),
        (day_before_max.as_str(), max.as_str()),
    ] {
        let err = app
            .call::<app::api::DeviceSeries, HistoryWindow>(&[
                ("device_id", "7"),
                ("from_ms", from),
                ("to_ms", to),
                ("max_points", "10"),
            ])
            .await
            .unwrap_err();
        assert_eq!(err.0, 400, "{from}..{to}: {err:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn csv_export_streams_a_day_with_a_header_and_utc_times() {
    let app = TestApp::spawn_with(|args| args.devices.max_readings_per_sec = 10_000.0).await;
    let mut device = app.device("?id=kitchen%2F1").await;
    let lines: Vec<String> = (0..1200)
        .map(|i| format!(r#"{{"temp":{i},"=cmd":1,"ts":1700000000000}}"#))
        .collect();
    for chunk in lines.chunks(100) {
        device.send(&chunk.join("\n")).await;
    }
    eventually("1200 readings stored", || async {
        (app.history("kitchen/1", 2000).await.len() == 1200).then_some(())
    })
    .await;

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let res = app
        .http
        .get(app.url(&format!("/export/kitchen%2F1.csv?day={today}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"kitchen_1-{today}.csv\"").as_str()
    );
    let body = res.text().await.unwrap();
    let mut rows = body.lines();
    assert_eq!(
        rows.next(),
        Some("time_utc,device_time_utc,'=cmd,temp"),
        "formula-like names are defused"
    );
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), 1200);
    let first: Vec<&str> = rows[0].split(',').collect();
    assert!(
        first[0].starts_with(&today) && first[0].ends_with('Z'),
        "{}",
        rows[0]
    );
    assert_eq!(first[1], "2023-11-14T22:13:20.000Z");
    assert_eq!((first[2], first[3]), ("1", "0"));
    assert_eq!(rows[1199].split(',').nth(3), Some("1199"));

    for bad in [
        "/export/kitchen.csv",
        "/export/kitchen.csv?day=yesterday",
        "/export/kitchen.csv?from=5&to=1",
    ] {
        assert_eq!(
            app.http.get(app.url(bad)).send().await.unwrap().status(),
            400,
            "{bad}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn postgres_as_the_store_keeps_readings_across_a_restart() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let url = pg.url.clone();
    let app = TestApp::spawn_with(|args| {
        args.store.database_url = Some(url.clone());
        args.writes.flush_interval_ms = 3_600_000;
    })
    .await;
    let mut device = app.device("").await;
    for i in 0..50 {
        device.send(&format!("7,{i},{i}.5")).await;
    }
    eventually("50 readings received", || async {
        app.device_summary("7").await.filter(|s| s.readings == 50)
    })
    .await;
    let data_dir = app.stop().await;

    let app = TestApp::spawn_in(data_dir, |args| args.store.database_url = Some(url.clone())).await;
    let history = app.history("7", 100).await;
    assert_eq!(history.len(), 50);
    assert_eq!(history[49].values[1].value, 49.5);
    assert!(
        !app.data_dir
            .path()
            .join(server::storage::DATABASE_FILE)
            .exists(),
        "no SQLite file with PostgreSQL"
    );
    app.stop().await;
    pg.drop_database().await;
}

#[tokio::test]
async fn after_kill_9_the_database_opens_and_holds_everything_flushed() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_iothub"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--flush-interval-ms",
            "50",
            "--max-readings-per-sec",
            "100000",
            "--allow-tokenless-devices",
            "--admin-password",
            crate::helpers::ADMIN_PASSWORD,
        ])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), log.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    let (mut device, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/device"))
        .await
        .unwrap();
    use futures::SinkExt;
    let first: Vec<String> = (0..500).map(|i| format!("7,{i},1")).collect();
    device.send(first.join("\n").into()).await.unwrap();
    // Wait past several flush intervals so the first 500 are committed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for burst in 0..20 {
        let more: Vec<String> = (0..100)
            .map(|i| format!("7,{},2", 500 + burst * 100 + i))
            .collect();
        device.send(more.join("\n").into()).await.unwrap();
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();

    let app = TestApp::spawn_in(data_dir, |_| {}).await;
    let stored = app.history("7", 10_000).await;
    assert!(
        stored.len() >= 500,
        "only {} of the 500 flushed readings survived",
        stored.len()
    );
    // No torn readings: every stored reading has both its values.
    assert!(stored.iter().all(|r| r.values.len() == 2));
    app.stop().await;
}
