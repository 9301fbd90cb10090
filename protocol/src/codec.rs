//! Frames and encodings: turning messages into WebSocket frames and back.
//!
//! The subprotocol chosen at the handshake fixes what the server sends:
//! `bourse.v1.json` (text frames) or `bourse.v1.msgpack` (binary frames,
//! string-keyed maps, no extension types). What a peer receives is read by
//! frame type, whatever was negotiated: text is JSON, binary is MessagePack.
//! A message over [`FRAME_BYTES_MAX`] is refused as `frame_too_large`.

use crate::error::{ErrorBody, ErrorCode};
use crate::msg::{Request, RequestError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest message accepted, after reassembly (PROTOCOL.md section 1).
pub const FRAME_BYTES_MAX: usize = 64 * 1024;

/// The WebSocket subprotocol of the JSON encoding.
pub const SUBPROTOCOL_JSON: &str = "bourse.v1.json";
/// The WebSocket subprotocol of the MessagePack encoding.
pub const SUBPROTOCOL_MSGPACK: &str = "bourse.v1.msgpack";

/// The encoding a connection answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encoding {
    /// Text frames of JSON; also what a connection without a subprotocol gets.
    #[default]
    Json,
    /// Binary frames of MessagePack.
    MsgPack,
}

impl Encoding {
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::MsgPack];

    /// The subprotocol name.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => SUBPROTOCOL_JSON,
            Encoding::MsgPack => SUBPROTOCOL_MSGPACK,
        }
    }

    /// The encoding of a subprotocol name; `None` for an unknown one (the
    /// handshake is then refused with HTTP 400).
    pub fn from_subprotocol(s: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.subprotocol() == s)
    }

    /// Whether this encoding's frames are binary.
    pub const fn is_binary(self) -> bool {
        matches!(self, Encoding::MsgPack)
    }
}

/// One WebSocket data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

impl Frame {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Frame::Text(s) => s.as_bytes(),
            Frame::Binary(b) => b,
        }
    }

    pub fn is_binary(&self) -> bool {
        matches!(self, Frame::Binary(_))
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Frame::Text(s) => s.into_bytes(),
            Frame::Binary(b) => b,
        }
    }

    /// Decodes the frame by its type (text JSON, binary MessagePack).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        decode(self.as_bytes(), self.is_binary())
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message of {0} bytes is over the {FRAME_BYTES_MAX} byte limit")]
    TooLarge(usize),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid MessagePack: {0}")]
    MsgPackDecode(#[from] rmp_serde::decode::Error),
    #[error("invalid MessagePack: {0} bytes after the message")]
    TrailingBytes(usize),
    #[error("cannot encode MessagePack: {0}")]
    MsgPackEncode(#[from] rmp_serde::encode::Error),
}

/// Encodes a message as a frame of the given encoding.
pub fn try_encode<T: Serialize + ?Sized>(enc: Encoding, msg: &T) -> Result<Frame, CodecError> {
    Ok(match enc {
        Encoding::Json => Frame::Text(serde_json::to_string(msg)?),
        Encoding::MsgPack => Frame::Binary(rmp_serde::to_vec_named(msg)?),
    })
}

/// Encodes a message as a frame of the given encoding.
///
/// # Panics
/// When the message cannot be encoded. Every type of [`crate::msg`]
/// encodes in both encodings (the round-trip tests check it), so a failure
/// is a broken invariant.
pub fn encode<T: Serialize + ?Sized>(enc: Encoding, msg: &T) -> Frame {
    match try_encode(enc, msg) {
        Ok(f) => f,
        Err(e) => panic!("wire messages always encode: {e}"),
    }
}

/// Decodes a message from a frame's payload: JSON for text frames,
/// MessagePack for binary ones.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], binary: bool) -> Result<T, CodecError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    if binary {
        // One message per frame: bytes after the first value are an error,
        // not a second message (a JSON text read as MessagePack would
        // otherwise pass as the small integer of its first byte).
        let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
        let msg = T::deserialize(&mut de)?;
        let read = usize::try_from(de.position()).unwrap_or(usize::MAX);
        if read != bytes.len() {
            return Err(CodecError::TrailingBytes(bytes.len().saturating_sub(read)));
        }
        Ok(msg)
    } else {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Decodes a client request, or says how to refuse it: `frame_too_large`,
/// `bad_request` (not JSON/MessagePack, bad envelope, bad arguments) or
/// `unknown_op`, with the request's `id` whenever it could be read.
pub fn decode_request(bytes: &[u8], binary: bool) -> Result<Request, RequestError> {
    let value: serde_json::Value = match decode(bytes, binary) {
        Ok(v) => v,
        Err(CodecError::TooLarge(n)) => {
            return Err(RequestError {
                id: None,
                body: ErrorBody::new(
                    ErrorCode::FrameTooLarge,
                    format!("message of {n} bytes is over the {FRAME_BYTES_MAX} byte limit"),
                ),
            })
        }
        Err(e) => return Err(RequestError::bad(None, e.to_string())),
    };
    Request::from_value(value)
}
