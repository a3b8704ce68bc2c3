//! What raw TCP and serial devices share: a byte stream split into messages ([`Decoder`]:
//! lines, or `|START|KEY=VALUE|END|` frames), the way back framed the same way (`Writer`),
//! and the two as the conversation's `Wire` (`StreamWire`).
//!
//! Two framings, told apart by the first byte a connection sends:
//! - **lines**: the WebSocket dialects (CSV, key=value, JSON), one per line (`\n` or `\r\n`);
//!   errors come back as `error: …` lines, commands as on a WebSocket.
//! - **frames** (`|`): `|START|KEY=VALUE|…|END|` messages, possibly split across reads or
//!   several per read, read as key=value (`|START|ID=7|TEMP=23.5|END|`). `COMMAND=HELLO!` is
//!   the keepalive: the hub answers it, sends it to a device silent for `--tcp-keepalive-ms`,
//!   and drops a device that stays silent that long again. Commands go out framed
//!   (`|START|COMMAND=SET|LED=1|SEQ=12|END|`), errors as `|START|ERROR=…|END|`.

use super::conversation::{Ending, Wire, WRITE_LIMIT};
use super::session::{DeviceSession, Handled};
use crate::protocol::Dialect;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const FRAME_START: &[u8] = b"|START|";
const FRAME_END: &[u8] = b"|END|";
/// The keepalive message of framed devices, both ways.
pub const HELLO: &str = "|START|COMMAND=HELLO!|END|";
/// Bytes read from a connection at a time.
pub(super) const READ_CHUNK: usize = 4096;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Lines,
    Frames,
}

/// One message from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Line(String),
    /// The `KEY=VALUE` parts of a frame, in order.
    Frame(Vec<(String, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The stream cannot be resynchronised: the connection closes.
    #[error("no line end or |END| within {0} bytes")]
    TooLong(usize),
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("text outside a |START|…|END| frame was skipped")]
    OutsideFrame,
    #[error("{0:?} is not KEY=VALUE")]
    NotAPair(String),
}

impl DecodeError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::TooLong(_))
    }
}

/// Splits a byte stream into messages. Pure: the caller feeds what it read.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
    framing: Option<Framing>,
}

impl Decoder {
    /// `max`: the longest message (a line, or a frame with its markers).
    pub fn new(max: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            max,
            framing: None,
        }
    }

    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.framing.is_none() {
            if let Some(first) = self.buf.iter().find(|b| !b.is_ascii_whitespace()) {
                self.framing = Some(if *first == b'|' {
                    Framing::Frames
                } else {
                    Framing::Lines
                });
            }
        }
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Option<Result<Message, DecodeError>> {
        match self.framing? {
            Framing::Lines => self.next_line(),
            Framing::Frames => self.next_frame(),
        }
    }

    fn next_line(&mut self) -> Option<Result<Message, DecodeError>> {
        loop {
            let Some(end) = self.buf.iter().position(|b| *b == b'\n') else {
                return (self.buf.len() > self.max).then(|| {
                    self.buf.clear();
                    Err(DecodeError::TooLong(self.max))
                });
            };
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            if raw.len() > self.max + 2 {
                return Some(Err(DecodeError::TooLong(self.max)));
            }
            let line = match std::str::from_utf8(&raw) {
                Ok(text) => text.trim_end_matches(['\n', '\r']).to_string(),
                Err(_) => return Some(Err(DecodeError::NotUtf8)),
            };
            if !line.trim().is_empty() {
                return Some(Ok(Message::Line(line)));
            }
        }
    }

    fn next_frame(&mut self) -> Option<Result<Message, DecodeError>> {
        let skip = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        self.buf.drain(..skip);
        if self.buf.is_empty() {
            return None;
        }
        if !self.buf.starts_with(FRAME_START) {
            if FRAME_START.starts_with(&self.buf) {
                return None; // the start of a marker; wait for the rest
            }
            // Skip to the next frame (or drop everything) and say so once.
            let next = find(&self.buf[1..], FRAME_START).map_or(self.buf.len(), |i| i + 1);
            self.buf.drain(..next);
            return Some(Err(DecodeError::OutsideFrame));
        }
        let Some(end) = find(&self.buf[FRAME_START.len()..], FRAME_END) else {
            return (self.buf.len() > self.max).then(|| {
                self.buf.clear();
                Err(DecodeError::TooLong(self.max))
            });
        };
        let total = FRAME_START.len() + end + FRAME_END.len();
        let frame: Vec<u8> = self.buf.drain(..total).collect();
        if frame.len() > self.max {
            return Some(Err(DecodeError::TooLong(self.max)));
        }
        let Ok(inner) = std::str::from_utf8(&frame[FRAME_START.len()..FRAME_START.len() + end])
        else {
            return Some(Err(DecodeError::NotUtf8));
        };
        let mut pairs = Vec::new();
        for part in inner.split('|').filter(|p| !p.trim().is_empty()) {
            match part.split_once('=') {
                Some((key, value)) => {
                    pairs.push((key.trim().to_string(), value.trim().to_string()))
                }
                None => return Some(Err(DecodeError::NotAPair(shorten(part)))),
            }
        }
        Some(Ok(Message::Frame(pairs)))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// What a frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameMeaning {
    /// `COMMAND=HELLO!`
    Hello,
    /// `TOKEN=…`
    Token(String),
    /// Anything else, as a key=value line for the parser (`ID=7,TEMP=23.5`).
    Data(String),
}

pub fn frame_meaning(pairs: &[(String, String)]) -> Result<FrameMeaning, String> {
    if let [(key, value)] = pairs {
        if key.eq_ignore_ascii_case("command") && value.eq_ignore_ascii_case("hello!") {
            return Ok(FrameMeaning::Hello);
        }
        if key.eq_ignore_ascii_case("token") {
            return Ok(FrameMeaning::Token(value.clone()));
        }
    }
    if pairs.is_empty() {
        return Err("empty frame".into());
    }
    if let Some((key, value)) = pairs
        .iter()
        .find(|(k, v)| k.contains(',') || v.contains(','))
    {
        return Err(format!(
            "{:?}: keys and values may not contain ','",
            shorten(&format!("{key}={value}"))
        ));
    }
    Ok(FrameMeaning::Data(
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    ))
}

/// The way back to a device, framed the way it speaks.
pub(super) struct Writer {
    half: Box<dyn AsyncWrite + Send + Unpin>,
    framing: Framing,
}

impl Writer {
    pub(super) fn new(half: impl AsyncWrite + Send + Unpin + 'static, framing: Framing) -> Self {
        Writer {
            half: Box::new(half),
            framing,
        }
    }

    pub(super) async fn raw(&mut self, text: &str) -> bool {
        let mut bytes = text.as_bytes().to_vec();
        if self.framing == Framing::Lines {
            bytes.push(b'\n');
        }
        matches!(
            tokio::time::timeout(WRITE_LIMIT, self.half.write_all(&bytes)).await,
            Ok(Ok(()))
        )
    }

    pub(super) async fn error(&mut self, message: &str) -> bool {
        match self.framing {
            Framing::Lines => self.raw(&format!("error: {message}")).await,
            // `|` would end the value early.
            Framing::Frames => {
                self.raw(&format!("|START|ERROR={}|END|", message.replace('|', "/")))
                    .await
            }
        }
    }
}

/// A byte stream as the conversation's [`Wire`]: what it reads is split by the [`Decoder`],
/// what it writes is framed like the device's own messages.
pub(super) struct StreamWire<R> {
    reader: R,
    writer: Writer,
    decoder: Decoder,
    chunk: Vec<u8>,
    /// A `HELLO!` was sent and its answer has not come yet (that one is not answered again,
    /// or the two ends would greet each other forever).
    awaiting_answer: bool,
    /// Take the framing from the device's first bytes (serial lines, which have no first
    /// message to decide on before the conversation starts).
    adopt_framing: bool,
}

impl<R: AsyncRead + Unpin> StreamWire<R> {
    pub(super) fn new(reader: R, writer: Writer, decoder: Decoder) -> Self {
        Self::with_buffer(reader, writer, decoder, vec![0u8; READ_CHUNK])
    }

    /// Reads into `chunk` (a buffer the caller already read the first message with: one
    /// buffer per connection, not two).
    pub(super) fn with_buffer(reader: R, writer: Writer, decoder: Decoder, chunk: Vec<u8>) -> Self {
        StreamWire {
            reader,
            writer,
            decoder,
            chunk,
            awaiting_answer: false,
            adopt_framing: false,
        }
    }

    pub(super) fn follow_framing_of_first_message(&mut self) {
        self.adopt_framing = true;
    }

    /// Answers and records in the device's framing once the decoder has seen it.
    fn adopt(&mut self, session: &mut DeviceSession) {
        let Some(framing) = self.decoder.framing().filter(|_| self.adopt_framing) else {
            return;
        };
        self.adopt_framing = false;
        self.writer.framing = framing;
        if framing == Framing::Frames {
            session.record_as(Dialect::Framed);
        }
    }

    /// Handles `first` and every complete message the decoder holds, then hands the readings
    /// among them on as one batch; `Some` ends the connection.
    pub(super) async fn drain(
        &mut self,
        first: Option<Message>,
        session: &mut DeviceSession,
    ) -> Option<Ending> {
        let mut ended = match first {
            Some(message) => self.message(Ok(message), session).await,
            None => None,
        };
        while ended.is_none() {
            let Some(message) = self.decoder.next_message() else {
                break;
            };
            ended = self.message(message, session).await;
        }
        session.flush().await;
        ended
    }

    /// Handles one decoded message; `Some` ends the connection.
    async fn message(
        &mut self,
        message: Result<Message, DecodeError>,
        session: &mut DeviceSession,
    ) -> Option<Ending> {
        let handled = match message {
            Ok(Message::Line(line)) => session.line(&line).await,
            Ok(Message::Frame(pairs)) => match frame_meaning(&pairs) {
                Ok(FrameMeaning::Data(line)) => session.line(&line).await,
                // A device's HELLO! is answered, unless it is the answer to ours.
                Ok(FrameMeaning::Hello) => {
                    if std::mem::take(&mut self.awaiting_answer) {
                        return None;
                    }
                    if !self.writer.raw(HELLO).await {
                        return Some(Ending::Ended("send failed".into()));
                    }
                    Handled::Accepted
                }
                Ok(FrameMeaning::Token(_)) => {
                    session.refuse("a token is only read in the first message")
                }
                Err(message) => session.refuse(&message),
            },
            Err(err) if err.is_fatal() => {
                let message = err.to_string();
                session.note_error(&message);
                let _ = self.writer.error(&message).await;
                return Some(Ending::Ended(message));
            }
            Err(err) => session.refuse(&err.to_string()),
        };
        match handled {
            Handled::Accepted => None,
            Handled::Reply(line) => {
                (!self.writer.raw(&line).await).then(|| Ending::Ended("send failed".into()))
            }
            Handled::Refused { message, give_up } => {
                if !self.writer.error(&message).await {
                    return Some(Ending::Ended("send failed".into()));
                }
                give_up.then(|| Ending::Ended("too many errors".into()))
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Wire for StreamWire<R> {
    type Input = std::io::Result<usize>;

    async fn read(&mut self) -> Self::Input {
        self.reader.read(&mut self.chunk).await
    }

    async fn handle(&mut self, input: Self::Input, session: &mut DeviceSession) -> Option<Ending> {
        let n = match input {
            Ok(0) => return Some(Ending::Ended("connection closed".into())),
            Ok(n) => n,
            Err(err) => return Some(Ending::Ended(format!("connection error: {err}"))),
        };
        self.decoder.push(&self.chunk[..n]);
        self.adopt(session);
        self.drain(None, session).await
    }

    async fn send(&mut self, line: &str) -> bool {
        self.writer.raw(line).await
    }

    /// `HELLO!`, which a framed device answers in kind.
    async fn probe(&mut self) -> bool {
        self.awaiting_answer = true;
        self.writer.raw(HELLO).await
    }

    async fn farewell(&mut self, ending: &Ending) {
        let message = match ending {
            Ending::Replaced(reason) => reason.as_str(),
            Ending::TokenRevoked => "device token revoked",
            Ending::Silent => "silent too long: keepalive timeout",
            Ending::ShuttingDown | Ending::Ended(_) => return,
        };
        let _ = self.writer.error(message).await;
    }
}

/// Reads until the first complete message; `None` if the connection closed first.
pub(super) async fn first_message(
    reader: &mut (impl AsyncRead + Unpin),
    decoder: &mut Decoder,
    chunk: &mut [u8],
) -> Option<Result<Message, DecodeError>> {
    loop {
        if let Some(message) = decoder.next_message() {
            return Some(message);
        }
        match reader.read(chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.push(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Decoder) -> Vec<Result<Message, DecodeError>> {
        std::iter::from_fn(|| decoder.next_message()).collect()
    }

    fn frame(pairs: &[(&str, &str)]) -> Result<Message, DecodeError> {
        Ok(Message::Frame(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn lines_end_with_lf_or_crlf_and_may_arrive_in_pieces() {
        let mut d = Decoder::new(64);
        d.push(b"7,1,2");
        assert!(decode_all(&mut d).is_empty());
        d.push(b"3.5\r\n\r\nid=8,t=1\n{\"id\":\"9\"");
        assert_eq!(d.framing(), Some(Framing::Lines));
        assert_eq!(
            decode_all(&mut d),
            [
                Ok(Message::Line("7,1,23.5".into())),
                Ok(Message::Line("id=8,t=1".into()))
            ]
        );
        d.push(b"}\n");
        assert_eq!(
            decode_all(&mut d),
            [Ok(Message::Line(r#"{"id":"9"}"#.into()))]
        );
        d.push(&[0xff, 0xfe, b'\n']);
        assert_eq!(decode_all(&mut d), [Err(DecodeError::NotUtf8)]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut d = Decoder::new(16);
        d.push(&[b'x'; 17]);
        let got = decode_all(&mut d);
        assert_eq!(got, [Err(DecodeError::TooLong(16))]);
        assert!(got[0].as_ref().unwrap_err().is_fatal());
    }

    #[test]
    fn frames_may_be_split_or_packed_together() {
        let mut d = Decoder::new(256);
        d.push(b"  |STA");
        assert_eq!(d.framing(), Some(Framing::Frames));
        assert!(decode_all(&mut d).is_empty());
        d.push(b"RT|ID=7|TEMP=23.5|E");
        assert!(decode_all(&mut d).is_empty());
        d.push(b"ND||START|COMMAND=HELLO!|END|\r\n|START|ACK=12|END|");
        assert_eq!(
            decode_all(&mut d),
            [
                frame(&[("ID", "7"), ("TEMP", "23.5")]),
                frame(&[("COMMAND", "HELLO!")]),
                frame(&[("ACK", "12")]),
            ]
        );
    }

    #[test]
    fn garbage_between_frames_is_skipped_with_an_error() {
        let mut d = Decoder::new(256);
        d.push(b"|START|A=1|END|junk|START|B=2|END|");
        assert_eq!(
            decode_all(&mut d),
            [
                frame(&[("A", "1")]),
                Err(DecodeError::OutsideFrame),
                frame(&[("B", "2")])
            ]
        );
        d.push(b"|START|nonsense|END|");
        assert_eq!(
            decode_all(&mut d),
            [Err(DecodeError::NotAPair("nonsense".into()))]
        );
        let mut d = Decoder::new(32);
        d.push(b"|START|A=");
        d.push(&[b'1'; 40]);
        assert_eq!(decode_all(&mut d), [Err(DecodeError::TooLong(32))]);
    }

    #[test]
    fn frames_mean_hello_a_token_or_data() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            frame_meaning(&pairs(&[("COMMAND", "HELLO!")])),
            Ok(FrameMeaning::Hello)
        );
        assert_eq!(
            frame_meaning(&pairs(&[("TOKEN", "iot_x")])),
            Ok(FrameMeaning::Token("iot_x".into()))
        );
        assert_eq!(
            frame_meaning(&pairs(&[("ID", "7"), ("TEMP", "23.5")])),
            Ok(FrameMeaning::Data("ID=7,TEMP=23.5".into()))
        );
        assert!(frame_meaning(&pairs(&[("A", "1,2")])).is_err());
        assert!(frame_meaning(&[]).is_err());
    }
}
