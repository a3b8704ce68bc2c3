use crate::helpers::{eventually, TestApp};

#[tokio::test]
async fn a_graceful_stop_stores_every_reading_the_server_received() {
    // A flush interval far longer than the test: only the shutdown flush can write these.
    let app = TestApp::spawn_with(|args| {
        args.writes.flush_interval_ms = 3_600_000;
        args.devices.max_readings_per_sec = 10_000.0;
    })
    .await;
    let mut device = app.device("").await;
    for i in 0..200 {
        device
            .send(&format!("7,{i},{}", 20.0 + i as f64 / 10.0))
            .await;
    }
    eventually("200 readings received", || async {
        let s = app.dashboard().await.devices.into_iter().next()?.summary;
        (s.readings == 200).then_some(())
    })
    .await;
    assert!(
        app.history("7", 1000).await.is_empty(),
        "nothing flushed yet"
    );

    let data_dir = app.stop().await;
    assert!(device.closed().await.contains("server shutting down"));

    let app = TestApp::spawn_in(data_dir, |_| {}).await;
    let history = app.history("7", 1000).await;
    assert_eq!(history.len(), 200);
    assert_eq!(history.last().unwrap().values[0].value, 199.0);
    app.stop().await;
}

#[tokio::test]
async fn the_simulator_flag_brings_devices_to_the_dashboard() {
    let app = TestApp::spawn_with(|args| {
        args.simulate.simulate = 3;
        args.simulate.simulate_rate = 20.0;
    })
    .await;
    let snapshot = eventually("three simulated devices with readings", || async {
        let snap = app.dashboard().await;
        (snap.devices.len() == 3 && snap.devices.iter().all(|d| d.summary.readings >= 2))
            .then_some(snap)
    })
    .await;
    let ids: Vec<&str> = snapshot
        .devices
        .iter()
        .map(|d| d.summary.id.as_str())
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
    app.stop().await;
}

#[tokio::test]
async fn after_a_restart_stored_devices_are_listed_offline_with_their_last_values() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    device
        .send(r#"{"register":{"name":"Kitchen","fields":[{"name":"counter"},{"name":"temp","unit":"°C"}]}}"#)
        .await;
    device.send("7,1,20.5\n7,2,21.5").await;
    crate::helpers::eventually("two readings stored", || async {
        (app.history("7", 10).await.len() == 2).then_some(())
    })
    .await;
    drop(device);
    let data_dir = app.stop().await;

    let app = TestApp::spawn_in(data_dir, |_| {}).await;
    let snapshot = app.dashboard().await;
    let seven = snapshot
        .devices
        .iter()
        .find(|d| d.summary.id == "7")
        .expect("the stored device is listed before it reconnects");
    assert!(!seven.summary.online);
    assert_eq!(
        seven
            .summary
            .registration
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("Kitchen")
    );
    assert_eq!(seven.summary.latest[1].value, 21.5);
    assert_eq!(seven.recent.len(), 2, "recent readings feed the sparkline");

    // When it reconnects it is the same device, now online, registration kept.
    let mut device = app.device("?id=7").await;
    device.send("7,3,22.5").await;
    let summary = crate::helpers::eventually("device 7 online", || async {
        app.device_summary("7")
            .await
            .filter(|s| s.online && s.readings == 1)
    })
    .await;
    assert_eq!(
        summary.registration.and_then(|r| r.name),
        Some("Kitchen".into())
    );
    app.stop().await;
}
