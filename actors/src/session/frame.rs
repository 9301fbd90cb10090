//! The WebSocket frames the server writes (RFC 6455 section 5.2), built
//! once and written as they are.
//!
//! Server frames are never masked, so a frame is its header followed by the
//! payload, and one stream message framed once is the same bytes for every
//! subscriber of its encoding: a connection's writer only hands them to the
//! kernel. The client's frames are still read and checked by tungstenite.

use bourse_protocol::codec;
use bytes::{BufMut, Bytes, BytesMut};

/// Frame opcodes the server sends.
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
/// FIN: every server frame is a whole message.
const FIN: u8 = 0x80;
/// Header bytes before the payload, at most (2 plus an 8-byte length).
pub const HEADER_BYTES_MAX: usize = 10;
/// A close frame's reason is cut to this (a control frame's payload is at
/// most 125 bytes, two of them the code).
pub const CLOSE_REASON_BYTES_MAX: usize = 123;

/// One whole frame: header, then `payload`.
pub fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let n = payload.len();
    let mut b = BytesMut::with_capacity(n + HEADER_BYTES_MAX);
    b.put_u8(FIN | opcode);
    if n < 126 {
        b.put_u8(n as u8);
    } else if let Ok(n16) = u16::try_from(n) {
        b.put_u8(126);
        b.put_u16(n16);
    } else {
        b.put_u8(127);
        b.put_u64(n as u64);
    }
    b.put_slice(payload);
    b.freeze()
}

/// A message encoded by the codec, as a text (JSON) or binary (MessagePack) frame.
pub fn message(f: &codec::Frame) -> Bytes {
    let op = if f.is_binary() { OP_BINARY } else { OP_TEXT };
    frame(op, f.as_bytes())
}

/// A close frame with its status code and reason.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    frame(OP_CLOSE, &payload)
}

/// An empty ping.
pub fn ping() -> Bytes {
    frame(OP_PING, &[])
}

/// Whether `bytes` start with a close frame: the last thing a connection writes.
pub fn is_close(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0x0F == OP_CLOSE)
}

/// A frame's opcode and payload, when `bytes` is exactly one unmasked frame
/// (tests read what the server queued with it).
#[cfg(test)]
pub fn parse(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let (&b0, rest) = bytes.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    if b1 & 0x80 != 0 {
        return None;
    }
    let (len, rest) = match b1 & 0x7F {
        126 => (usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)), &rest[2..]),
        127 => (usize::try_from(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)).ok()?, &rest[8..]),
        n => (usize::from(n), rest),
    };
    (rest.len() == len).then_some((b0 & 0x0F, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
    use tokio_tungstenite::tungstenite::Message;

    /// Reads `bytes` as a client would, with tungstenite.
    fn read_as_client(bytes: Vec<u8>) -> Vec<Message> {
        struct Io(std::io::Cursor<Vec<u8>>);
        impl std::io::Read for Io {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl std::io::Write for Io {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut ws = WebSocket::from_raw_socket(Io(std::io::Cursor::new(bytes)), Role::Client, None);
        let mut out = Vec::new();
        while let Ok(m) = ws.read() {
            out.push(m);
        }
        out
    }

    #[test]
    fn every_length_form_reads_back_as_the_same_message() {
        for n in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let f = frame(OP_BINARY, &payload);
            assert_eq!(parse(&f), Some((OP_BINARY, &payload[..])), "length {n}");
            let got = read_as_client(f.to_vec());
            assert_eq!(got, vec![Message::Binary(payload.into())], "length {n}");
        }
    }

    #[test]
    fn text_ping_and_close_frames_read_back() {
        let text = message(&codec::Frame::Text("{\"ok\":true}".into()));
        let mut all = text.to_vec();
        all.extend_from_slice(&ping());
        let long = "é".repeat(100);
        all.extend_from_slice(&close(4008, &long));
        let got = read_as_client(all);
        assert_eq!(got[0], Message::Text("{\"ok\":true}".into()));
        assert!(matches!(got[1], Message::Ping(ref p) if p.is_empty()));
        let Message::Close(Some(c)) = &got[2] else { panic!("{:?}", got[2]) };
        assert_eq!(c.code, CloseCode::from(4008));
        assert!(c.reason.len() <= CLOSE_REASON_BYTES_MAX && c.reason.starts_with('é'));
        assert!(is_close(&close(1000, "")));
        assert!(!is_close(&text));
    }
}
