//! The device side in depth: registration, commands to one and to all, acks and timeouts,
//! keepalive, limits and every class of bad input.

use crate::helpers::{eventually, TestApp};
use app::model::{CommandStatus, CommandTarget, Direction};
use futures::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_registration_names_csv_values_and_declares_commands() {
    let app = TestApp::spawn().await;
    let mut device = app.device("").await;
    device
        .send(r#"{"id":"7","register":{"name":"Kitchen","fields":[{"name":"n"},{"name":"temp","unit":"°C"}],"commands":[{"name":"LED","min":0,"max":1}]}}"#)
        .await;
    device.send("7,1,23.5").await;
    let summary = eventually("registered reading", || async {
        app.device_summary("7").await.filter(|s| s.readings == 1)
    })
    .await;
    let fields: Vec<&str> = summary.latest.iter().map(|v| &*v.field).collect();
    assert_eq!(fields, ["n", "temp"]);
    let registration = summary.registration.expect("registration kept");
    assert_eq!(registration.name.as_deref(), Some("Kitchen"));

    // The declared range is enforced.
    let err = app
        .command(CommandTarget::Device("7".into()), "LED", 2.0, None)
        .await
        .unwrap_err();
    assert_eq!(err.0, 400);
    assert!(err.1.contains("LED accepts values from 0 to 1"), "{err:?}");
    assert!(
        device.silent_for(Duration::from_millis(200)).await,
        "nothing was sent"
    );

    // The registration is kept in the store too.
    let data_dir = app.stop().await;
    let store = server::storage::Store::open(server::storage::StoreConfig {
        database: server::storage::Database::Sqlite(
            data_dir.path().join(server::storage::DATABASE_FILE),
        ),
        flush_interval: Duration::from_secs(1),
        flush_rows: 100,
    })
    .await
    .unwrap();
    let stored = store.device("7").await.unwrap().expect("device row");
    assert_eq!(stored.name.as_deref(), Some("Kitchen"));
    assert_eq!(stored.registration.map(|r| r.fields.len()), Some(2));
    store.close().await;
}

#[tokio::test]
async fn a_command_to_one_device_arrives_only_there_in_its_dialect_and_is_acked() {
    let app = TestApp::spawn().await;
    let mut csv = app.device("").await;
    let mut json = app.device("").await;
    csv.send("a,1,20").await;
    json.send(r#"{"id":"b","temp":20}"#).await;
    eventually("both online", || async {
        (app.dashboard().await.devices.len() == 2).then_some(())
    })
    .await;

    let sent = app
        .command(CommandTarget::Device("a".into()), "LED", 1.0, Some(500))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let seq = sent[0].seq;
    assert_eq!(csv.recv_text().await, format!("LED=1,seq={seq},dur=500"));
    app.command_status(seq, CommandStatus::Delivered).await;
    assert!(
        json.silent_for(Duration::from_millis(200)).await,
        "b must not get a's command"
    );

    csv.send(&format!("ack={seq}")).await;
    app.command_status(seq, CommandStatus::Acked).await;

    let seq = app
        .command(CommandTarget::Device("b".into()), "LED", 0.0, None)
        .await
        .unwrap()[0]
        .seq;
    assert_eq!(
        json.recv_text().await,
        format!(r#"{{"cmd":"LED","value":0,"seq":{seq}}}"#)
    );
    json.send(&format!(r#"{{"ack":{seq}}}"#)).await;
    app.command_status(seq, CommandStatus::Acked).await;

    // The console shows the command going out and the ack coming in.
    let snap = app.dashboard_for("b").await;
    let console = &snap
        .devices
        .iter()
        .find(|d| d.summary.id == "b")
        .unwrap()
        .console;
    assert!(console
        .iter()
        .any(|l| l.direction == Direction::Out && l.text.contains("\"cmd\":\"LED\"")));
    assert!(console
        .iter()
        .any(|l| l.direction == Direction::In && l.text.contains("\"ack\"")));
    app.stop().await;
}

#[tokio::test]
async fn a_command_to_all_reaches_every_online_device() {
    let app = TestApp::spawn().await;
    let mut devices = Vec::new();
    for id in ["1", "2", "3"] {
        let mut d = app.device("").await;
        d.send(&format!("{id},0,0")).await;
        devices.push(d);
    }
    let mut gone = app.device("").await;
    gone.send("4,0,0").await;
    eventually("four devices", || async {
        (app.dashboard().await.devices.len() == 4).then_some(())
    })
    .await;
    drop(gone);
    eventually("device 4 offline", || async {
        app.device_summary("4")
            .await
            .filter(|s| !s.online)
            .map(|_| ())
    })
    .await;

    let sent = app
        .command(CommandTarget::All, "LED", 1.0, None)
        .await
        .unwrap();
    let targets: Vec<&str> = sent.iter().map(|c| c.device_id.as_str()).collect();
    assert_eq!(targets, ["1", "2", "3"]);
    for (device, info) in devices.iter_mut().zip(&sent) {
        assert_eq!(device.recv_text().await, format!("LED=1,seq={}", info.seq));
        device.send(&format!("ack={}", info.seq)).await;
    }
    for info in &sent {
        app.command_status(info.seq, CommandStatus::Acked).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn commands_time_out_fail_offline_and_refuse_bad_values() {
    let app = TestApp::spawn_with(|args| args.live.command_timeout_ms = 150).await;
    let mut device = app.device("?id=7").await;
    device.send("temp=1").await;
    eventually("device 7", || async { app.device_summary("7").await }).await;

    let seq = app
        .command(CommandTarget::Device("7".into()), "LED", 1.0, None)
        .await
        .unwrap()[0]
        .seq;
    assert!(device.recv_text().await.starts_with("LED=1"));
    app.command_status(seq, CommandStatus::TimedOut).await;
    device.send(&format!("ack={seq}")).await;
    assert_eq!(
        device.recv_text().await,
        format!("error: no command {seq} is waiting for this device")
    );

    for (variable, value, duration, expected) in [
        ("LED=1", 1.0, None, "the variable must be"),
        ("LED", 1.0, Some(0), "the duration must be between"),
    ] {
        let err = app
            .command(CommandTarget::Device("7".into()), variable, value, duration)
            .await
            .unwrap_err();
        assert_eq!(err.0, 400, "{err:?}");
        assert!(err.1.contains(expected), "{err:?}");
    }
    let err = app
        .command(CommandTarget::Device("nope".into()), "LED", 1.0, None)
        .await
        .unwrap_err();
    assert!(err.1.contains("unknown device"), "{err:?}");

    drop(device);
    eventually("offline", || async {
        app.device_summary("7").await.filter(|s| !s.online)
    })
    .await;
    let sent = app
        .command(CommandTarget::Device("7".into()), "LED", 1.0, None)
        .await
        .unwrap();
    assert_eq!(
        sent[0].status,
        CommandStatus::Failed("device \"7\" is offline".into())
    );
    let err = app
        .command(CommandTarget::All, "LED", 1.0, None)
        .await
        .unwrap_err();
    assert!(err.1.contains("no device is online"), "{err:?}");
    app.stop().await;
}

#[tokio::test]
async fn console_lines_reach_the_device() {
    let app = TestApp::spawn().await;
    let mut device = app.device("").await;
    device.send("7,1,1").await;
    eventually("device 7", || async { app.device_summary("7").await }).await;
    let ok: Result<(), _> = app
        .call::<app::api::SendConsoleLine, ()>(&[("device_id", "7"), ("line", "hello device")])
        .await;
    ok.unwrap();
    assert_eq!(device.recv_text().await, "hello device");
    let err = app
        .call::<app::api::SendConsoleLine, ()>(&[("device_id", "7"), ("line", "two\nlines")])
        .await
        .unwrap_err();
    assert!(err.1.contains("without control characters"), "{err:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_silent_device_is_pinged_then_dropped_and_shown_offline() {
    let app = TestApp::spawn_with(|args| {
        args.devices.ping_after_ms = 100;
        args.devices.keepalive_timeout_ms = 100;
    })
    .await;
    let mut silent = app.device("?id=silent").await;
    // This client never reads, so it never answers the ping.
    eventually("silent device goes offline", || async {
        app.device_summary("silent").await.filter(|s| !s.online)
    })
    .await;
    assert_eq!(silent.closed().await, "no data or pong: keepalive timeout");

    // A device that answers pings (tungstenite does so while reading) stays online.
    let mut alive = app.device("?id=alive").await;
    assert!(alive.silent_for(Duration::from_millis(600)).await);
    assert!(app.device_summary("alive").await.unwrap().online);
    app.stop().await;
}

#[tokio::test]
async fn readings_over_the_rate_limit_are_refused() {
    let app = TestApp::spawn_with(|args| args.devices.max_readings_per_sec = 5.0).await;
    let mut device = app.device("").await;
    let burst: Vec<String> = (0..8).map(|i| format!("7,{i},1")).collect();
    device.send(&burst.join("\n")).await;
    for _ in 0..3 {
        assert_eq!(
            device.recv_text().await,
            "error: rate limit: at most 5 readings per second; reading dropped"
        );
    }
    let summary = eventually("5 accepted, 3 refused", || async {
        app.device_summary("7")
            .await
            .filter(|s| s.readings == 5 && s.errors == 3)
    })
    .await;
    assert!(summary.online, "the connection survives");
    app.stop().await;
}

#[tokio::test]
async fn persistent_abuse_closes_the_connection() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    let garbage: Vec<&str> = vec!["x=y"; server::devices::session::ERROR_BUDGET + 1];
    device.send(&garbage.join("\n")).await;
    assert_eq!(device.closed().await, "too many errors");
    app.stop().await;
}

#[tokio::test]
async fn hostile_and_malformed_lines_get_clear_errors() {
    let app = TestApp::spawn_with(|args| args.devices.max_fields = 3).await;
    let mut device = app.device("?id=7").await;
    let long_id = "x".repeat(65);
    for (line, expected) in [
        (
            format!("{long_id},1"),
            "error: device id is longer than 64 characters",
        ),
        (
            "7\u{1},1".to_string(),
            "error: device id contains control characters",
        ),
        (
            "7,1,2,3,4".to_string(),
            "error: 4 fields, more than the 3 allowed",
        ),
        (
            "7,1e999".to_string(),
            "error: field \"counter\": \"1e999\" is not a finite number",
        ),
        (
            r#"{"id":"7","temp":"warm"}"#.to_string(),
            "error: field \"temp\": \"\\\"warm\\\"\" is not a finite number",
        ),
        ("[]".to_string(), "error: no values after the device id"),
    ] {
        device.send(&line).await;
        assert_eq!(device.recv_text().await, expected, "{line:?}");
    }
    let summary = app.device_summary("7").await.unwrap();
    assert_eq!((summary.readings, summary.errors), (0, 6));
    app.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_refused_clearly() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    let frame = Frame::message(vec![b'7', b',', 0xff, 0xfe], OpCode::Data(Data::Text), true);
    device.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(
        device.recv_text().await,
        "error: text frame is not valid UTF-8"
    );
    assert_eq!(device.closed().await, "text frame is not valid UTF-8");
    app.stop().await;
}
