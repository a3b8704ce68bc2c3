//! Raw TCP devices: line and framed modes against the real server, with real sockets.

use crate::helpers::{eventually, TestApp};
use app::model::{CommandStatus, CommandTarget, LiveEvent};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A TCP device: writes bytes, reads what the hub sends (lines, or frames up to `|END|`).
struct TcpDevice {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl TcpDevice {
    async fn connect(addr: SocketAddr) -> TcpDevice {
        let (reader, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        TcpDevice {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// The next line from the hub (line mode).
    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        line.trim_end().to_string()
    }

    /// The next frame from the hub (framed mode).
    async fn frame(&mut self) -> String {
        let mut bytes = Vec::new();
        while !bytes.ends_with(b"|END|") {
            let mut byte = Vec::new();
            let n = tokio::time::timeout(
                Duration::from_secs(10),
                self.reader.read_until(b'|', &mut byte),
            )
            .await
            .expect("a frame in time")
            .unwrap();
            assert!(
                n > 0,
                "closed while waiting for a frame: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            bytes.extend(byte);
        }
        String::from_utf8(bytes).unwrap()
    }

    /// True once the hub has closed the connection.
    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        loop {
            rest.clear();
            match tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut rest))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

async fn tcp_app(configure: impl FnOnce(&mut server::config::ServeArgs)) -> (TestApp, SocketAddr) {
    let app = TestApp::spawn_with(|args| {
        args.tcp.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
        args.devices.allow_tokenless_devices = false;
        configure(args);
    })
    .await;
    let addr = app.tcp_addr.expect("the TCP listener is on");
    (app, addr)
}

#[tokio::test]
async fn line_devices_send_readings_and_get_commands() {
    let (app, addr) = tcp_app(|_| {}).await;
    let secret = app.create_token("7", "").await.secret;
    let mut live = app.live_for(Some("7")).await;

    let mut device = TcpDevice::connect(addr).await;
    device
        .send(&format!("token={secret}\r\n7,1,23.5\r\n"))
        .await;
    // Several per read, and one split across reads.
    device.send("id=7,temp=24\n{\"id\":\"7\",\"te").await;
    device.send("mp\":25}\n").await;
    let stored = eventually("three readings stored", || async {
        let h = app.history("7", 10).await;
        (h.len() == 3).then_some(h)
    })
    .await;
    assert_eq!(stored[0].values[1].value, 23.5);
    let streamed = live
        .find(|e| match e {
            LiveEvent::Reading(r) if &*r.device_id == "7" => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(&*streamed.values[0].field, "counter");
    let summary = app.device_summary("7").await.unwrap();
    assert!(summary.online);
    assert!(
        summary.transport.starts_with("tcp 127.0.0.1:"),
        "{}",
        summary.transport
    );

    // A command comes back as a line in the device's dialect (JSON, its last), and the ack
    // counts.
    let sent = app
        .command(CommandTarget::Device("7".into()), "LED", 1.0, None)
        .await
        .unwrap();
    assert_eq!(
        device.line().await,
        format!(r#"{{"cmd":"LED","value":1,"seq":{}}}"#, sent[0].seq)
    );
    device.send(&format!("{{\"ack\":{}}}\n", sent[0].seq)).await;
    app.command_status(sent[0].seq, CommandStatus::Acked).await;

    // Bad input: an error line, and the connection stays.
    device.send("7,abc\n").await;
    assert!(device.line().await.starts_with("error: "));
    device.send(&format!("{}\n", "x".repeat(70 * 1024))).await;
    assert!(
        device.line().await.contains("no line end"),
        "an endless line ends it"
    );
    assert!(device.closed().await);
    app.stop().await;
}

#[tokio::test]
async fn framed_devices_use_frames_both_ways_and_keep_alive_with_hello() {
    let (app, addr) = tcp_app(|args| args.tcp.tcp_keepalive_ms = 300).await;
    let secret = app.create_token("7", "").await.secret;
    let mut device = TcpDevice::connect(addr).await;
    device.send(&format!("|START|TOKEN={secret}|END|")).await;
    device.send("|START|ID=7|TEMP=23.5|E").await;
    device.send("ND||START|ID=7|TEMP=24.5|END|").await;
    eventually("two framed readings stored", || async {
        (app.history("7", 10).await.len() == 2).then_some(())
    })
    .await;
    let summary = app.device_summary("7").await.unwrap();
    assert!(
        summary.transport.starts_with("tcp framed"),
        "{}",
        summary.transport
    );

    // The device's keepalive is answered.
    device.send("|START|COMMAND=HELLO!|END|").await;
    assert_eq!(device.frame().await, "|START|COMMAND=HELLO!|END|");

    // Commands go out framed; a framed ack counts.
    let sent = app
        .command(CommandTarget::Device("7".into()), "LED", 1.0, Some(500))
        .await
        .unwrap();
    let seq = sent[0].seq;
    assert_eq!(
        device.frame().await,
        format!("|START|COMMAND=SET|LED=1|SEQ={seq}|DUR=500|END|")
    );
    device.send(&format!("|START|ACK={seq}|END|")).await;
    app.command_status(seq, CommandStatus::Acked).await;

    // Errors come back framed.
    device.send("|START|TEMP=oops|END|").await;
    assert!(device.frame().await.starts_with("|START|ERROR="));

    // Silent: pinged with HELLO!, and dropped when it stays silent.
    assert_eq!(device.frame().await, "|START|COMMAND=HELLO!|END|");
    assert!(device.closed().await, "dropped after a second silence");
    app.offline("7").await;
    app.stop().await;
}

#[tokio::test]
async fn a_framed_device_answering_the_ping_stays() {
    let (app, addr) = tcp_app(|args| args.tcp.tcp_keepalive_ms = 200).await;
    let secret = app.create_token("7", "").await.secret;
    let mut device = TcpDevice::connect(addr).await;
    device
        .send(&format!("|START|TOKEN={secret}|END||START|ID=7|T=1|END|"))
        .await;
    for _ in 0..3 {
        assert_eq!(device.frame().await, "|START|COMMAND=HELLO!|END|");
        device.send("|START|COMMAND=HELLO!|END|").await;
    }
    // Its answers were not answered back (no endless greeting), and it is still online.
    assert!(app.device_summary("7").await.unwrap().online);
    app.stop().await;
}

#[tokio::test]
async fn devices_without_a_valid_token_are_refused_before_any_reading() {
    let (app, addr) = tcp_app(|_| {}).await;
    let mut device = TcpDevice::connect(addr).await;
    device.send("7,1,23.5\n").await;
    assert!(device.line().await.contains("needs a device token"));
    assert!(device.closed().await);

    let mut device = TcpDevice::connect(addr).await;
    device.send("|START|TOKEN=iot_wrong|END|").await;
    assert!(device
        .frame()
        .await
        .contains("unknown or revoked device token"));
    assert!(device.closed().await);

    let mut device = TcpDevice::connect(addr).await;
    device.send("token=iot_wrong\n7,1,1\n").await;
    assert!(device.line().await.starts_with("error: unknown or revoked"));
    assert!(device.closed().await);

    // A token for 8 does not let a device speak as 7.
    let secret = app.create_token("8", "").await.secret;
    let mut device = TcpDevice::connect(addr).await;
    device.send(&format!("token={secret}\n7,1,1\n")).await;
    assert!(device.line().await.contains("does not match"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.history("7", 10).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn tokenless_tcp_devices_name_themselves_when_allowed() {
    let (app, addr) = tcp_app(|args| args.devices.allow_tokenless_devices = true).await;
    let mut device = TcpDevice::connect(addr).await;
    device.send("7,1,23.5\n").await;
    eventually("stored", || async {
        (!app.history("7", 1).await.is_empty()).then_some(())
    })
    .await;
    // Binary garbage: an error, not a crash.
    device
        .writer
        .write_all(&[0xff, 0x00, 0xfe, b'\n'])
        .await
        .unwrap();
    assert!(device.line().await.contains("UTF-8"));
    app.stop().await;
}

/// `sync=<n>` is answered with `stored=<n>` only once everything sent before it is in the
/// database: read back at once, without waiting, every reading is there. In each dialect and
/// framing; a bad number is an error.
#[tokio::test]
async fn a_device_learns_when_its_readings_are_stored() {
    let (app, addr) = tcp_app(|_| {}).await;
    let secret = app.create_token("7", "").await.secret;
    let mut device = TcpDevice::connect(addr).await;
    let mut lines = format!("token={secret}\n");
    for i in 1..=50 {
        lines.push_str(&format!("id=7,counter={i},temp=20\n"));
    }
    lines.push_str("sync=50\n");
    device.send(&lines).await;
    assert_eq!(device.line().await, "stored=50");
    assert_eq!(app.history("7", 100).await.len(), 50, "stored means stored");
    device.send("{\"temp\":21}\n{\"sync\":51}\n").await;
    assert_eq!(device.line().await, r#"{"stored":51}"#);
    assert_eq!(app.history("7", 100).await.len(), 51);
    device.send("sync=soon\n").await;
    assert!(device
        .line()
        .await
        .starts_with("error: sync must be a whole number"));

    let secret = app.create_token("8", "").await.secret;
    let mut framed = TcpDevice::connect(addr).await;
    framed
        .send(&format!(
            "|START|TOKEN={secret}|END||START|TEMP=1|END||START|TEMP=2|END||START|SYNC=9|END|"
        ))
        .await;
    assert_eq!(framed.frame().await, "|START|STORED=9|END|");
    assert_eq!(app.history("8", 10).await.len(), 2);

    // Over a WebSocket too.
    let secret = app.create_token("9", "").await.secret;
    let mut ws = app.device(&format!("?token={secret}")).await;
    ws.send("9,1,20\n9,2,21\nsync=2").await;
    assert_eq!(ws.recv_text().await, "stored=2");
    assert_eq!(app.history("9", 10).await.len(), 2);
    app.stop().await;
}
