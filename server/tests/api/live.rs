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

    // A device that comes while the page is open joins its cards with a fresh snapshot (the
    // server decides what is on the page), then its events follow.
    let mut device = app.device("").await;
    device.send("7,42,23.5").await;
    let refreshed = live
        .find(|e| match e {
            LiveEvent::Snapshot(s) if s.devices.iter().any(|d| d.summary.id == "7") => Some(s),
            _ => None,
        })
        .await;
    assert_eq!(refreshed.fleet.known, 2);
    assert_eq!(refreshed.fleet.online, 2);
    device.send("7,43,23.5").await;
    let reading = live
        .find(|e| match e {
            LiveEvent::Reading(r) if &*r.device_id == "7" => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(reading.values[1].value, 23.5);
    assert!(reading.seq > refreshed.seq);

    drop(device);
    assert!(!live.device_change("7").await.online);
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

#[tokio::test]
async fn a_device_page_stream_carries_only_its_device_readings_and_console() {
    let app = TestApp::spawn().await;
    let mut seven = app.device("").await;
    let mut eight = app.device("").await;
    seven.send("7,1,20").await;
    eight.send("8,1,30").await;
    crate::helpers::eventually("both devices", || async {
        (app.dashboard().await.devices.len() == 2).then_some(())
    })
    .await;

    let mut live = app.live_for(Some("8")).await;
    let LiveEvent::Snapshot(snapshot) = live.next_event().await else {
        panic!("the stream must start with a snapshot")
    };
    assert_eq!(snapshot.focus.as_deref(), Some("8"));
    assert_eq!(snapshot.devices.len(), 1, "only its device");
    assert_eq!(snapshot.devices[0].recent.len(), 1);
    assert!(
        !snapshot.devices[0].console.is_empty(),
        "the device page has its console"
    );
    assert_eq!(snapshot.fleet.known, 2, "and the counts of all");

    seven.send("7,2,21").await;
    eight.send("8,2,31").await;
    // Device 7 spoke first: had its events been let through, they would come before these.
    let (mut reading, mut console) = (false, false);
    while !(reading && console) {
        match live.next_event().await {
            LiveEvent::Reading(r) => {
                assert_eq!(&*r.device_id, "8", "device 7's reading must be left out");
                reading = true;
            }
            LiveEvent::Console { device_id, .. } => {
                assert_eq!(device_id, "8", "device 7's console must be left out");
                console = true;
            }
            _ => {}
        }
    }
    // Of other devices only the counts arrive.
    drop(seven);
    let fleet = live
        .find(|e| match e {
            LiveEvent::Device(d) => panic!("device {} is not on this page", d.id),
            LiveEvent::Fleet(f) => Some(f),
            _ => None,
        })
        .await;
    assert_eq!((fleet.known, fleet.online), (2, 1));
    app.stop().await;
}
