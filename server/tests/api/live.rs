use crate::helpers::TestApp;
use app::model::LiveEvent;

#[tokio::test]
async fn the_live_stream_starts_with_a_snapshot_then_carries_devices_and_readings() {
    let app = TestApp::spawn().await;
    let mut early = app.device("").await;
    early.send("1,1,20").await;
    crate::helpers::eventually("device 1", || async {
        (!app.dashboard().await.devices.is_empty()).then_some(())
    })
    .await;

    let mut live = app.live().await;
    let LiveEvent::Snapshot(snapshot) = live.next_event().await else {
        panic!("the stream must start with a snapshot")
    };
    assert_eq!(snapshot.devices.len(), 1);
    assert_eq!(snapshot.devices[0].recent.len(), 1);

    let mut device = app.device("").await;
    device.send("7,42,23.5").await;
    let online = live
        .find(|e| match e {
            LiveEvent::Device(d) if d.id == "7" => Some(d),
            _ => None,
        })
        .await;
    assert!(online.online);
    let reading = live
        .find(|e| match e {
            LiveEvent::Reading(r) if r.device_id == "7" => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(reading.values[1].value, 23.5);
    assert!(reading.seq > snapshot.seq);

    drop(device);
    let offline = live
        .find(|e| match e {
            LiveEvent::Device(d) if d.id == "7" => Some(d),
            _ => None,
        })
        .await;
    assert!(!offline.online);
    app.stop().await;
}

#[tokio::test]
async fn live_streams_end_when_the_server_stops() {
    let app = TestApp::spawn().await;
    let mut live = app.live().await;
    assert!(matches!(live.next_event().await, LiveEvent::Snapshot(_)));
    app.stop.cancel();
    assert!(
        live.ended().await,
        "the stream must end so a graceful stop does not hang"
    );
    app.stop().await;
}
