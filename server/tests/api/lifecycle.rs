use crate::helpers::{eventually, TestApp};

#[tokio::test]
async fn a_graceful_stop_stores_every_reading_the_server_received() {
    // A flush interval far longer than the test: only the shutdown flush can write these.
    let app = TestApp::spawn_with(|args| {
        args.flush_interval_ms = 3_600_000;
        args.max_readings_per_sec = 10_000.0;
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
        args.simulate = 3;
        args.simulate_rate = 20.0;
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
