//! The Bourse wire contract (PROTOCOL.md, version 1), shared by the server,
//! the load generator, the chaos checker and the browser client's tests.
//! Nothing else defines what goes over the WebSocket.
//!
//! Layout:
//!
//! * [`decimal`]: exact fixed-scale decimals. Wire strings such as
//!   `"30001.50"` become `u64` raw units and back; tick and lot grids. No
//!   floating point anywhere.
//! * [`error`]: [`ErrorCode`] (every code of section 8 with its number),
//!   [`Outcome`] and [`ErrorBody`], the `err` object and the error value of
//!   request handling.
//! * [`msg`]: typed messages with the protocol's field names: requests
//!   ([`Request`] = `id` + [`Op`] with typed arguments), responses
//!   ([`Response`] and a result struct per op), stream events
//!   ([`StreamEvent`], [`Gap`], [`Heartbeat`], [`Notice`]), stream keys, and
//!   [`ServerMessage`] to decode any frame a client receives.
//! * [`codec`]: encodings (JSON, MessagePack) chosen by subprotocol, frames,
//!   [`codec::encode`], [`codec::decode`] and [`codec::decode_request`],
//!   which turns any bad input into the exact refusal to send.
//! * [`checksum`]: the `book.l2` CRC-32 checksum.
//!
//! Every message type serializes and deserializes in both encodings; golden
//! JSON fixtures in `tests/fixtures/` pin the exact wire form and are reused
//! by the browser client's tests.

pub mod checksum;
pub mod codec;
pub mod decimal;
pub mod error;
pub mod msg;

pub use codec::{Encoding, Frame, FRAME_BYTES_MAX};
pub use decimal::DecimalError;
pub use error::{ErrorBody, ErrorCode, Outcome};
pub use msg::{
    Gap, Heartbeat, Notice, Op, ReqId, Request, RequestError, Response, ServerMessage, StreamEvent,
    StreamKey,
};
