use crate::helpers::{body_text, eventually, TestApp};
use app::model::LiveEvent;

#[tokio::test]
async fn a_classic_csv_reading_reaches_the_dashboard_and_the_store() {
    let app = TestApp::spawn().await;
    let mut device = app.device("").await;
    device.send("7,42,23.5").await;

    let snapshot = eventually("device 7 in the dashboard", || async {
        let snap = app.dashboard().await;
        snap.devices
            .iter()
            .any(|d| d.summary.id == "7")
            .then_some(snap)
    })
    .await;
    let dev = &snapshot.devices[0];
    assert!(dev.summary.online);
    assert_eq!(dev.summary.readings, 1);
    let latest: Vec<(&str, f64)> = dev
        .summary
        .latest
        .iter()
        .map(|v| (&*v.field, v.value))
        .collect();
    assert_eq!(latest, [("counter", 42.0), ("temp", 23.5)]);
    assert_eq!(dev.recent.len(), 1);

    device.send("7,43,24.0\n7,44,24.5").await;
    let stored = eventually("three stored readings", || async {
        let history = app.history("7", 100).await;
        (history.len() == 3).then_some(history)
    })
    .await;
    let temps: Vec<f64> = stored.iter().map(|r| r.values[1].value).collect();
    assert_eq!(temps, [23.5, 24.0, 24.5]);
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
    app.stop().await;
}

#[tokio::test]
async fn key_value_and_json_lines_with_the_id_in_the_url() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=kitchen").await;
    device.send("temp=21.5,hum=40").await;
    device.send(r#"{"temp":22,"hum":41}"#).await;
    let history = eventually("two stored readings", || async {
        let h = app.history("kitchen", 10).await;
        (h.len() == 2).then_some(h)
    })
    .await;
    assert_eq!(
        history[1]
            .values
            .iter()
            .find(|v| &*v.field == "hum")
            .map(|v| v.value),
        Some(41.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_an_error_line_and_the_connection_survives() {
    let app = TestApp::spawn().await;
    let mut device = app.device("").await;
    device.send("temp=1").await;
    assert!(device.recv_text().await.starts_with("error: no device id"));
    device.send("7,1,2").await;
    for (bad, expected) in [
        (
            "7,abc",
            "error: field \"counter\": \"abc\" is not a finite number",
        ),
        (
            "8,1,2",
            "error: device id \"8\" does not match this connection's id \"7\"",
        ),
        ("{oops", "error: invalid JSON"),
    ] {
        device.send(bad).await;
        let reply = device.recv_text().await;
        assert!(reply.starts_with(expected), "{bad:?} → {reply:?}");
    }
    device.send_binary(&[0, 159, 146, 150]).await;
    assert_eq!(
        device.recv_text().await,
        "error: binary frames are not supported; send text lines"
    );

    device.send("7,2,3").await;
    let summary = eventually("two good readings and four errors", || async {
        let snap = app.dashboard().await;
        let s = snap.devices.into_iter().next()?.summary;
        (s.readings == 2 && s.errors == 4).then_some(s)
    })
    .await;
    assert!(summary.online);
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_without_harming_the_server() {
    let app = TestApp::spawn_with(|args| args.devices.max_frame_bytes = 1024).await;
    let mut device = app.device("").await;
    device.send("7,1,2").await;
    device.send(&format!("7,{}", "1".repeat(4096))).await;
    assert_eq!(
        device.recv_text().await,
        "error: message larger than 1024 bytes"
    );
    // The server closes with 1009; the close frame itself may be lost, because closing a socket
    // with the unread rest of the oversized frame in it makes the kernel send a reset.
    device.closed().await;
    let mut other = app.device("").await;
    other.send("8,1,2").await;
    eventually("device 8 recorded", || async {
        app.dashboard()
            .await
            .devices
            .iter()
            .any(|d| d.summary.id == "8")
            .then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_reconnect_replaces_the_old_connection() {
    let app = TestApp::spawn().await;
    let mut first = app.device("?id=7").await;
    first.send("7,1,1").await;
    eventually("device 7 online", || async {
        app.dashboard()
            .await
            .devices
            .iter()
            .any(|d| d.summary.online)
            .then_some(())
    })
    .await;
    let mut second = app.device("?id=7").await;
    assert_eq!(first.closed().await, "replaced by a newer connection");
    second.send("7,2,2").await;
    let summary = eventually("second reading", || async {
        let s = app.dashboard().await.devices.into_iter().next()?.summary;
        (s.readings == 2).then_some(s)
    })
    .await;
    assert!(
        summary.online,
        "the replaced connection closing must not mark the device offline"
    );
    drop(second);
    eventually(
        "device 7 offline after its last connection closed",
        || async {
            app.dashboard()
                .await
                .devices
                .iter()
                .any(|d| !d.summary.online)
                .then_some(())
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_id_in_the_url_is_refused() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(65);
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws/device?id={long}", app.addr))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn the_server_rendered_page_shows_devices_and_escapes_their_names() {
    let app = TestApp::spawn().await;
    let mut device = app.device("").await;
    let hostile = "<img src=x onerror=alert(1)>";
    // JSON, because the `=` in the markup would make a CSV line read as key=value pairs.
    device
        .send(&serde_json::json!({ "id": hostile, "temp": 1 }).to_string())
        .await;
    eventually("hostile device recorded", || async {
        (!app.dashboard().await.devices.is_empty()).then_some(())
    })
    .await;

    let html = body_text(app.http.get(app.url("/"))).await;
    assert!(
        html.contains(r#"<link rel="modulepreload" href="/pkg/iothub"#),
        "hydration script is linked"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the name is shown, escaped"
    );
    assert!(
        !html.contains(hostile),
        "raw markup from a device must never reach the page"
    );
    app.stop().await;
}

#[tokio::test]
async fn history_refuses_an_out_of_range_limit() {
    let app = TestApp::spawn().await;
    let err = app
        .call::<app::api::DeviceHistory, Vec<app::model::Reading>>(&[
            ("device_id", "7"),
            ("since_ms", "0"),
            ("limit", "0"),
        ])
        .await
        .unwrap_err();
    assert!(err.1.contains("limit must be between 1 and"), "{err:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_device_closing_gets_a_clean_close_reply() {
    use futures::StreamExt;
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    device.ws.close(None).await.unwrap();
    // RFC 6455: the server answers a close frame with one; without it the client sees a reset.
    let reply = tokio::time::timeout(crate::helpers::PATIENCE, device.ws.next())
        .await
        .unwrap();
    assert!(
        matches!(
            reply,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
        ),
        "{reply:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_device_is_removed_with_or_without_its_readings() {
    let app = TestApp::spawn().await;
    let mut keep = app.device("?id=keep").await;
    let mut gone = app.device("?id=gone").await;
    for i in 1..=3 {
        keep.send(&format!("temp={i}")).await;
        gone.send(&format!("temp={i}")).await;
    }
    for id in ["keep", "gone"] {
        eventually("readings stored", || async {
            (app.history(id, 10).await.len() == 3).then_some(())
        })
        .await;
    }
    let mut live = app.live().await;
    let removed: Result<(), _> = app
        .call::<app::api::RemoveDevice, _>(&[("device_id", "keep"), ("keep_readings", "true")])
        .await;
    assert_eq!(removed, Ok(()));
    assert_eq!(keep.closed().await, "device removed");
    live.find(|e| match e {
        LiveEvent::Removed { device_id } if device_id == "keep" => Some(()),
        _ => None,
    })
    .await;
    assert!(app.device_summary("keep").await.is_none(), "unlisted");
    assert_eq!(app.history("keep", 10).await.len(), 3, "its readings kept");

    let removed: Result<(), _> = app
        .call::<app::api::RemoveDevice, _>(&[("device_id", "gone"), ("keep_readings", "false")])
        .await;
    assert_eq!(removed, Ok(()));
    assert_eq!(gone.closed().await, "device removed");
    assert!(
        app.history("gone", 10).await.is_empty(),
        "its readings deleted"
    );
    let unknown: Result<(), _> = app
        .call::<app::api::RemoveDevice, _>(&[("device_id", "nobody"), ("keep_readings", "true")])
        .await;
    assert_eq!(unknown.map_err(|(status, _)| status), Err(404));

    // After a restart neither is listed; one that sends again is back.
    let data_dir = app.stop().await;
    let app = TestApp::spawn_in(data_dir, |_| {}).await;
    let listed: Vec<String> = app
        .dashboard()
        .await
        .devices
        .into_iter()
        .map(|d| d.summary.id)
        .collect();
    assert!(listed.is_empty(), "{listed:?}");
    let mut back = app.device("?id=gone").await;
    back.send("temp=9").await;
    eventually("the device back", || async {
        app.device_summary("gone").await.filter(|s| s.online)
    })
    .await;
    app.stop().await;
}
