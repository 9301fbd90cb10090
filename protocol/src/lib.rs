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
//! A server's view of one request:
//!
//! ```
//! use bourse_protocol::codec::{decode_request, encode, Encoding};
//! use bourse_protocol::msg::{Op, PlaceRes, OrderStatus, Response};
//! use bourse_protocol::{decimal, ErrorCode};
//!
//! let frame = br#"{"op":"order.place","id":17,"args":{"cl_id":"a1","sym":"BTC-USD",
//!     "side":"buy","type":"limit","px":"30001.5","qty":"0.25"}}"#;
//! let req = decode_request(frame, false).unwrap();
//! let Op::OrderPlace(args) = &req.op else { unreachable!() };
//! // tick 0.50 at price scale 2: the price is 60003 ticks.
//! assert_eq!(decimal::parse_on_grid(args.px.as_deref().unwrap(), 2, 50), Ok(60_003));
//! let res = PlaceRes { order_id: 9912, cl_id: args.cl_id.clone(), status: OrderStatus::New,
//!     cum_qty: decimal::format(0, 4), reason: None, dup: false };
//! let out = encode(Encoding::MsgPack, &Response::ok(req.id, res, 1, 2));
//! assert!(out.is_binary());
//!
//! let bad = decode_request(br#"{"op":"order.teleport","id":"x-1"}"#, false).unwrap_err();
//! assert_eq!(bad.body.code, ErrorCode::UnknownOp);
//! assert_eq!(bad.id, Some("x-1".into()));
//! ```
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
