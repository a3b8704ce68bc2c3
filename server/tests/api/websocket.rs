//! The device WebSocket endpoint's own protocol handling (the hub decodes frames itself):
//! handshakes that are not, fragmented messages, pings from the device, and frames no client
//! may send, each seen by a real client over a real socket.

use crate::helpers::{anonymous, eventually, TestApp};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_request_that_is_not_a_handshake_gets_a_clear_answer() {
    let app = TestApp::spawn().await;
    let url = format!("http://{}/ws/device", app.addr);
    let plain = anonymous().get(&url).send().await.unwrap();
    assert_eq!(plain.status(), 400);
    let body = plain.text().await.unwrap();
    assert!(body.contains("not a WebSocket handshake"), "{body}");

    let old = anonymous()
        .get(&url)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
    app.stop().await;
}

#[tokio::test]
async fn a_fragmented_message_with_a_ping_between_its_parts_is_read_whole() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    let part = |text: &str, opcode, last| {
        Message::Frame(Frame::message(text.as_bytes().to_vec(), opcode, last))
    };
    let ws = &mut device.ws;
    ws.send(part("7,1,2", OpCode::Data(Data::Text), false))
        .await
        .unwrap();
    ws.send(part("0.5\n7,2,2", OpCode::Data(Data::Continue), false))
        .await
        .unwrap();
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    ws.send(part("1.5", OpCode::Data(Data::Continue), true))
        .await
        .unwrap();
    // The pong answers the ping, with its payload.
    assert_eq!(next_pong(ws).await, b"are you there");
    let stored = eventually("both readings of the message", || async {
        let history = app.history("7", 10).await;
        (history.len() == 2).then_some(history)
    })
    .await;
    let temps: Vec<f64> = stored.iter().map(|r| r.values[1].value).collect();
    assert_eq!(temps, [20.5, 21.5]);
    app.stop().await;
}

/// The payload of the next pong the hub sends, skipping other messages.
async fn next_pong<S>(ws: &mut S) -> Vec<u8>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(payload))) => return payload.to_vec(),
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong in time")
}

/// Opens `/ws/device` by hand, so the test can send frames no WebSocket library would.
async fn raw_handshake(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /ws/device?id=9 HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    stream
}

/// Reads one unmasked server frame: its opcode and payload.
async fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0; 2];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let length = match head[1] & 0x7F {
        126 => stream.read_u16().await.unwrap() as usize,
        127 => stream.read_u64().await.unwrap() as usize,
        short => short as usize,
    };
    let mut payload = vec![0; length];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0F, payload)
}

#[tokio::test]
async fn an_unmasked_frame_is_refused_with_a_protocol_error() {
    let app = TestApp::spawn().await;
    let mut stream = raw_handshake(&app).await;
    // A masked frame first, with the mask all zeros so the payload reads as sent.
    stream
        .write_all(b"\x81\x88\0\0\0\x009,1,20.5")
        .await
        .unwrap();
    eventually("the masked frame's reading", || async {
        (app.history("9", 10).await.len() == 1).then_some(())
    })
    .await;
    stream.write_all(b"\x81\x059,2,3").await.unwrap();
    let (opcode, text) = server_frame(&mut stream).await;
    assert_eq!(opcode, 0x1);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "error: WebSocket protocol error: frame from a client not masked"
    );
    let (opcode, close) = server_frame(&mut stream).await;
    assert_eq!(opcode, 0x8);
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1002);
    app.stop().await;
}

#[tokio::test]
async fn frames_read_together_are_one_batch_and_a_ping_after_them_is_answered() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=7").await;
    let ws = &mut device.ws;
    // Queued, then written at once: the hub reads them in one go.
    for i in 1..=20 {
        ws.feed(Message::Text(format!("7,{i},{i}.5").into()))
            .await
            .unwrap();
    }
    ws.feed(Message::Ping(b"after".to_vec().into()))
        .await
        .unwrap();
    ws.feed(Message::Text("7,21,21.5".into())).await.unwrap();
    ws.flush().await.unwrap();
    assert_eq!(next_pong(ws).await, b"after");
    let stored = eventually("all 21 readings, in order", || async {
        let history = app.history("7", 100).await;
        (history.len() == 21).then_some(history)
    })
    .await;
    let counters: Vec<f64> = stored.iter().map(|r| r.values[0].value).collect();
    assert_eq!(counters, (1..=21).map(f64::from).collect::<Vec<_>>());
    app.stop().await;
}
