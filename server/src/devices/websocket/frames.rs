//! RFC 6455 frames, the device side of them: whole messages cut out of the bytes a connection
//! has read, and the few frames the hub sends back (text lines, pings, pongs, close).
//!
//! The hub decodes frames itself instead of running a general WebSocket library per
//! connection, for memory: a library keeps a read buffer per connection for as long as it
//! lives (tungstenite allocates it at the upgrade), while most devices are idle most of the
//! time. Here the bytes live in the connection's `BytesMut`, which is released whenever it is
//! empty and the socket has nothing more (see `super::Socket`), so an idle device holds no
//! buffer at all. Unfragmented text frames, which is what devices send, are unmasked in place
//! and handed on without a copy. tungstenite still parses the header ([`FrameHeader::parse`]),
//! and is the client the tests talk to this with.

use bytes::{Buf, Bytes, BytesMut};
use std::io::Cursor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Utf8Bytes;

// Opcodes of the frames the hub sends.
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Longest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A whole message from the device.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A text message, checked to be UTF-8.
    Text(Utf8Bytes),
    /// A binary message (not part of the protocol; the device is told so).
    Binary,
    /// A ping, with the payload its pong must carry.
    Ping(Bytes),
    Pong,
    /// The device closes, with its close code if it sent one.
    Close(Option<u16>),
}

/// The device broke the protocol; the connection cannot go on, because the stream cannot be
/// resynchronised after a bad frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message larger than {0} bytes")]
    TooBig(usize),
    #[error("text frame is not valid UTF-8")]
    NotUtf8,
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
}

impl FrameError {
    /// The close code that says so (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooBig(_) => 1009,
            FrameError::NotUtf8 => 1007,
            FrameError::Protocol(_) => 1002,
        }
    }
}

/// Cuts messages out of a connection's bytes; holds what must outlive one frame.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// A message whose first frames came and whose last has not. Boxed: devices send whole
    /// frames, and this is part of every connection.
    fragments: Option<Box<Fragments>>,
}

#[derive(Debug)]
struct Fragments {
    text: bool,
    data: BytesMut,
}

impl Decoder {
    /// `max_message`: the longest message (and frame) accepted.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            fragments: None,
        }
    }

    /// Takes the next whole message out of `buf`; `Ok(None)` when `buf` holds only part of
    /// one (nothing is consumed then, except whole frames of a fragmented message).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, FrameError> {
        loop {
            let mut cursor = Cursor::new(&buf[..]);
            let Some((header, length)) = FrameHeader::parse(&mut cursor)
                .map_err(|_| FrameError::Protocol("reserved opcode"))?
            else {
                return Ok(None);
            };
            let header_len = cursor.position() as usize;
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(FrameError::Protocol("reserved bits set"));
            }
            let Some(mask) = header.mask else {
                return Err(FrameError::Protocol("frame from a client not masked"));
            };
            let control = matches!(header.opcode, OpCode::Control(_));
            if control && (!header.is_final || length > MAX_CONTROL_PAYLOAD as u64) {
                return Err(FrameError::Protocol(
                    "fragmented or over-long control frame",
                ));
            }
            // Refused as soon as the header says so, before the payload is read.
            let so_far = match (&self.fragments, header.opcode) {
                (Some(fragments), OpCode::Data(Data::Continue)) => fragments.data.len(),
                _ => 0,
            };
            let length = usize::try_from(length)
                .ok()
                .filter(|&length| length <= self.max_message.saturating_sub(so_far))
                .ok_or(FrameError::TooBig(self.max_message))?;
            if buf.len() < header_len + length {
                return Ok(None);
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(length);
            apply_mask(&mut payload, mask);
            let message = match header.opcode {
                OpCode::Data(Data::Text | Data::Binary) if self.fragments.is_some() => {
                    return Err(FrameError::Protocol(
                        "new message before the last one ended",
                    ))
                }
                OpCode::Data(Data::Text) if header.is_final => Some(text(payload)?),
                OpCode::Data(Data::Binary) if header.is_final => Some(Incoming::Binary),
                OpCode::Data(data @ (Data::Text | Data::Binary)) => {
                    self.fragments = Some(Box::new(Fragments {
                        text: data == Data::Text,
                        data: payload,
                    }));
                    None
                }
                OpCode::Data(Data::Continue) => {
                    let Some(fragments) = &mut self.fragments else {
                        return Err(FrameError::Protocol("continuation frame with no message"));
                    };
                    fragments.data.extend_from_slice(&payload);
                    match self.fragments.take() {
                        Some(whole) if header.is_final && whole.text => Some(text(whole.data)?),
                        Some(_) if header.is_final => Some(Incoming::Binary),
                        unfinished => {
                            self.fragments = unfinished;
                            None
                        }
                    }
                }
                OpCode::Control(Control::Ping) => Some(Incoming::Ping(payload.freeze())),
                OpCode::Control(Control::Pong) => Some(Incoming::Pong),
                OpCode::Control(Control::Close) => Some(close(&payload)?),
                // `FrameHeader::parse` refuses reserved opcodes.
                OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                    return Err(FrameError::Protocol("reserved opcode"))
                }
            };
            if let Some(message) = message {
                return Ok(Some(message));
            }
        }
    }
}

fn text(payload: BytesMut) -> Result<Incoming, FrameError> {
    Utf8Bytes::try_from(payload.freeze())
        .map(Incoming::Text)
        .map_err(|_| FrameError::NotUtf8)
}

/// A close frame's payload: nothing, or a code and a UTF-8 reason (RFC 6455 §5.5.1).
fn close(payload: &[u8]) -> Result<Incoming, FrameError> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(FrameError::Protocol("close frame with a one-byte payload")),
        [high, low, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| FrameError::NotUtf8)?;
            Ok(Incoming::Close(Some(u16::from_be_bytes([*high, *low]))))
        }
    }
}

/// XORs the payload with the frame's mask, eight bytes at a time where it can.
fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Appends one unmasked, final frame (servers do not mask) to `out`.
pub fn encode(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        length @ 0..=125 => out.push(length as u8),
        length @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        length => {
            out.push(127);
            out.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// A close frame's payload: the code and as much of the reason as fits in a control frame,
/// cut at a character boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame as a client sends it: masked.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(opcode, payload, &mut out);
        if !fin {
            out[0] &= 0x7F;
        }
        let header_len = out.len() - payload.len();
        out[1] |= 0x80;
        let mut masked = payload.to_vec();
        apply_mask(&mut masked, mask);
        out.truncate(header_len);
        out.extend_from_slice(&mask);
        out.extend_from_slice(&masked);
        out
    }

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Incoming>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(message) = decoder.decode(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    fn text_of(message: &Incoming) -> &str {
        match message {
            Incoming::Text(text) => text.as_str(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn a_masked_text_frame_is_one_message() {
        let bytes = client_frame(true, TEXT, b"7,42,23.5", [1, 2, 3, 4]);
        let messages = decode_all(&mut Decoder::new(1024), &bytes).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(text_of(&messages[0]), "7,42,23.5");
    }

    #[test]
    fn lengths_of_every_header_form_decode() {
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = "x".repeat(length);
            let bytes = client_frame(true, TEXT, payload.as_bytes(), [9, 8, 7, 6]);
            let messages = decode_all(&mut Decoder::new(100_000), &bytes).unwrap();
            assert_eq!(text_of(&messages[0]).len(), length);
        }
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest_and_consumes_nothing() {
        let bytes = client_frame(true, TEXT, b"hello", [1, 1, 1, 1]);
        let mut decoder = Decoder::new(1024);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut);
            buf.extend_from_slice(&bytes[cut..]);
            assert_eq!(
                text_of(&decoder.decode(&mut buf).unwrap().unwrap()),
                "hello"
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn fragments_make_one_message_with_pings_between_them() {
        let mut bytes = client_frame(false, TEXT, b"temp=", [1, 2, 3, 4]);
        bytes.extend(client_frame(true, PING, b"p", [5, 6, 7, 8]));
        bytes.extend(client_frame(false, 0x0, b"23", [1, 2, 3, 4]));
        bytes.extend(client_frame(true, 0x0, b".5", [4, 3, 2, 1]));
        let messages = decode_all(&mut Decoder::new(1024), &bytes).unwrap();
        assert_eq!(messages[0], Incoming::Ping(Bytes::from_static(b"p")));
        assert_eq!(text_of(&messages[1]), "temp=23.5");
        assert_eq!(messages.len(), 2);
    }

    #[test]
    fn utf8_split_between_fragments_is_accepted() {
        let word = "ü".as_bytes();
        let mut bytes = client_frame(false, TEXT, &word[..1], [1, 2, 3, 4]);
        bytes.extend(client_frame(true, 0x0, &word[1..], [1, 2, 3, 4]));
        let messages = decode_all(&mut Decoder::new(1024), &bytes).unwrap();
        assert_eq!(text_of(&messages[0]), "ü");
    }

    #[test]
    fn broken_frames_are_refused_with_their_close_code() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // Not masked.
            ([0x81, 0x02, b'h', b'i']).to_vec(),
            // A reserved bit.
            {
                let mut frame = client_frame(true, TEXT, b"hi", [1, 2, 3, 4]);
                frame[0] |= 0x40;
                frame
            },
            // A reserved opcode.
            client_frame(true, 0x3, b"hi", [1, 2, 3, 4]),
            // A fragmented ping.
            client_frame(false, PING, b"hi", [1, 2, 3, 4]),
            // A control frame over 125 bytes.
            client_frame(true, PING, &[b'x'; 126], [1, 2, 3, 4]),
            // A continuation of nothing.
            client_frame(true, 0x0, b"hi", [1, 2, 3, 4]),
            // A new message inside a fragmented one.
            {
                let mut frames = client_frame(false, TEXT, b"a", [1, 2, 3, 4]);
                frames.extend(client_frame(true, TEXT, b"b", [1, 2, 3, 4]));
                frames
            },
            // A close frame with one byte.
            client_frame(true, CLOSE, b"x", [1, 2, 3, 4]),
        ]
        .into_iter()
        .map(|frame| (frame, 1002))
        .chain([
            (client_frame(true, TEXT, &[0xFF, 0xFE], [1, 2, 3, 4]), 1007),
            (client_frame(true, TEXT, &[b'x'; 101], [1, 2, 3, 4]), 1009),
        ])
        .collect();
        for (bytes, code) in cases {
            let err = decode_all(&mut Decoder::new(100), &bytes).unwrap_err();
            assert_eq!(err.close_code(), code, "{err} for {bytes:?}");
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        let bytes = client_frame(true, TEXT, &[b'x'; 5000], [1, 2, 3, 4]);
        let err = decode_all(&mut Decoder::new(4096), &bytes[..14]).unwrap_err();
        assert_eq!(err, FrameError::TooBig(4096));
    }

    #[test]
    fn fragments_together_may_not_exceed_the_limit() {
        let mut bytes = client_frame(false, TEXT, &[b'x'; 60], [1, 2, 3, 4]);
        bytes.extend(client_frame(true, 0x0, &[b'x'; 60], [1, 2, 3, 4]));
        let err = decode_all(&mut Decoder::new(100), &bytes).unwrap_err();
        assert_eq!(err, FrameError::TooBig(100));
    }

    #[test]
    fn close_frames_carry_their_code() {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let with_code = client_frame(true, CLOSE, &payload, [1, 2, 3, 4]);
        let without = client_frame(true, CLOSE, b"", [1, 2, 3, 4]);
        let mut decoder = Decoder::new(100);
        assert_eq!(
            decode_all(&mut decoder, &with_code).unwrap(),
            [Incoming::Close(Some(1000))]
        );
        assert_eq!(
            decode_all(&mut decoder, &without).unwrap(),
            [Incoming::Close(None)]
        );
    }

    #[test]
    fn close_reasons_are_cut_to_fit_a_control_frame() {
        let payload = close_payload(1008, &"é".repeat(100));
        assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(&payload[..2], &1008u16.to_be_bytes());
    }

    #[test]
    fn server_frames_read_back_with_tungstenite() {
        for length in [0, 5, 125, 126, 65_535, 65_536] {
            let payload = vec![b'a'; length];
            let mut out = Vec::new();
            encode(TEXT, &payload, &mut out);
            let mut cursor = Cursor::new(&out[..]);
            let (header, parsed) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert_eq!(parsed, length as u64);
            assert_eq!(cursor.position() as usize + length, out.len());
        }
    }

    proptest! {
        /// However the bytes of a stream of frames are cut into reads, the same messages come out.
        #[test]
        fn any_split_into_reads_gives_the_same_messages(
            lines in proptest::collection::vec("[ -~]{0,300}", 1..8),
            fragment_at in proptest::collection::vec(0usize..300, 8),
            mask in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(1usize..200, 1..20),
        ) {
            let mut stream = Vec::new();
            for (line, at) in lines.iter().zip(&fragment_at) {
                let at = (*at).min(line.len());
                if at == 0 {
                    stream.extend(client_frame(true, TEXT, line.as_bytes(), mask));
                } else {
                    stream.extend(client_frame(false, TEXT, &line.as_bytes()[..at], mask));
                    stream.extend(client_frame(true, 0x0, &line.as_bytes()[at..], mask));
                }
            }
            let mut decoder = Decoder::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut rest = &stream[..];
            for cut in cuts.iter().cycle() {
                let (read, after) = rest.split_at((*cut).min(rest.len()));
                buf.extend_from_slice(read);
                rest = after;
                while let Some(message) = decoder.decode(&mut buf).unwrap() {
                    got.push(text_of(&message).to_string());
                }
                if rest.is_empty() {
                    break;
                }
            }
            prop_assert_eq!(got, lines);
            prop_assert!(buf.is_empty());
        }
    }
}
