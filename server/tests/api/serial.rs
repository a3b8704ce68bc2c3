//! A serial-port device, with a pseudo-terminal pair standing in for the cable: the hub opens
//! the terminal's device node (through a symlink, so that "plugging in" another one works), the
//! test speaks on the other end.

use crate::helpers::TestApp;
use app::model::{CommandStatus, CommandTarget};
use server::devices::serial::SerialSpec;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_serial::{SerialPort, SerialStream};

/// A new pseudo-terminal; `link` now points at the hub's end. Returns the device's end.
fn plug_in(link: &Path) -> BufReader<SerialStream> {
    let (device_end, hub_end) = SerialStream::pair().expect("a pseudo-terminal pair");
    let name = hub_end.name().expect("the terminal's device node");
    // The hub opens the node itself (and takes it exclusively).
    drop(hub_end);
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(name, link).unwrap();
    BufReader::new(device_end)
}

async fn next_line(device: &mut BufReader<SerialStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), device.read_line(&mut line))
        .await
        .expect("a line in time")
        .unwrap();
    line.trim_end().to_string()
}

#[tokio::test]
async fn a_serial_device_streams_takes_commands_and_comes_back_after_an_unplug() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyTEST");
    let mut device = plug_in(&link);
    let app = TestApp::spawn_with(|args| {
        args.serial.ports = vec![SerialSpec {
            path: link.clone(),
            baud: 115_200,
            device: None,
        }];
    })
    .await;
    let mut live = app.live_for(Some("7")).await;

    // Until the hub has the port open, what the device says may go nowhere: say it again.
    for counter in 1.. {
        let line = format!("7,{counter},23.5\n");
        device.get_mut().write_all(line.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !app.history("7", 1).await.is_empty() {
            break;
        }
        assert!(counter < 100, "no reading over the serial line was stored");
    }
    let streamed = live
        .find(|e| match e {
            app::model::LiveEvent::Reading(r) if &*r.device_id == "7" => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(
        streamed.values[1].value, 23.5,
        "the browser's stream has it too"
    );
    let summary = app.device_summary("7").await.unwrap();
    assert!(summary.online);
    assert_eq!(summary.transport, format!("serial {}", link.display()));

    let sent = app
        .command(CommandTarget::Device("7".into()), "LED", 1.0, None)
        .await
        .unwrap();
    let seq = sent[0].seq;
    assert_eq!(next_line(&mut device).await, format!("LED=1,seq={seq}"));
    device
        .get_mut()
        .write_all(format!("ack={seq}\n").as_bytes())
        .await
        .unwrap();
    app.command_status(seq, CommandStatus::Acked).await;
    device.get_mut().write_all(b"7,oops\n").await.unwrap();
    assert!(next_line(&mut device).await.starts_with("error: "));

    // Unplugged: offline. Plugged in again: back, with no restart.
    drop(device);
    app.offline("7").await;
    let mut device = plug_in(&link);
    for attempt in 1.. {
        device.get_mut().write_all(b"7,100,24.5\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if app.device_summary("7").await.is_some_and(|s| s.online) {
            break;
        }
        assert!(
            attempt < 100,
            "the device did not come back after being plugged in"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_missing_port_does_not_stop_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(|args| {
        args.serial.ports = vec![SerialSpec {
            path: dir.path().join("nothing-here"),
            baud: 9_600,
            device: Some(server::protocol::DeviceId::parse("gadget").unwrap()),
        }];
    })
    .await;
    assert_eq!(app.dashboard().await.devices.len(), 0);
    app.stop().await;
}
