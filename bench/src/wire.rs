//! One WebSocket connection to the exchange, as a client sees it.
//!
//! * [`connect`]: the handshake with the `bourse.v1.json` or
//!   `bourse.v1.msgpack` subprotocol (checked in the answer), Nagle off.
//! * [`request`]: a request frame `{"op","id","args"}` with the protocol's
//!   argument types as `args`, encoded by the protocol's codec.
//! * [`Incoming`]: the hot-path reader. It decodes only the envelope fields
//!   a scenario needs (response `id`/`ok`/`err.code`/`res.order_id`/
//!   `res.status`, stream `ch`/`type`/`epoch`/`prev`/`seq`/`ts`/`depth`,
//!   gap `lost`, heartbeat `last`) and skips the rest without building it,
//!   so the client spends its CPU on the exchange's messages, not on trees.
//! * [`Client`]: request/response calls for set-up and low-rate traffic,
//!   fully decoded as [`ServerMessage`]s; stream events that arrive while
//!   waiting are kept (up to [`EVENTS_KEPT_MAX`]) for [`Client::next_event`].

use anyhow::{anyhow, bail, Context as _};
use bourse_protocol::codec::{self, Encoding};
use bourse_protocol::msg::{OrderStatus, ReqId, Response};
use bourse_protocol::{ErrorBody, Frame, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a set-up call waits for its answer.
pub const CALL_TIMEOUT_MS_MAX: u64 = 30_000;
/// Stream events kept aside while a [`Client`] waits for an answer; older
/// ones are dropped (set-up reads only the snapshots it asked for).
pub const EVENTS_KEPT_MAX: usize = 1_024;
/// Read buffer of a connection that carries little (the `connections` and
/// `crowd` scenarios hold thousands); tungstenite allocates it eagerly.
pub const READ_BUFFER_SMALL_BYTES: usize = 4 * 1024;
/// Read buffer of every other connection. tungstenite 0.30 zero-fills the
/// whole read buffer before every read attempt (snapview/tungstenite-rs
/// issue 547), so its 128 KiB default costs a 128 KiB `memset` per poll;
/// 16 KiB still takes a burst of small frames in one read.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Opens a WebSocket to `url` speaking `enc`; `small` gives it a small read
/// buffer (for scenarios holding many quiet connections).
pub async fn connect(url: &str, enc: Encoding, small: bool) -> anyhow::Result<Ws> {
    let mut req = url
        .into_client_request()
        .with_context(|| format!("bad url {url}"))?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(enc.subprotocol()),
    );
    let mut config = WebSocketConfig::default().max_message_size(Some(codec::FRAME_BYTES_MAX * 16));
    if small {
        config = config.read_buffer_size(READ_BUFFER_SMALL_BYTES);
    }
    let (ws, resp) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .with_context(|| format!("connect {url}"))?;
    let got = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if got != Some(enc.subprotocol()) {
        bail!(
            "the server answered subprotocol {got:?}, asked {}",
            enc.subprotocol()
        );
    }
    Ok(ws)
}

/// A request envelope around the protocol's argument types.
#[derive(Serialize)]
struct Envelope<'a, A: Serialize + ?Sized> {
    op: &'a str,
    id: u64,
    args: &'a A,
}

/// The frame of request `op` with correlation id `id` and arguments `args`
/// (a protocol argument struct, or [`bourse_protocol::msg::Empty`]).
pub fn request<A: Serialize + ?Sized>(enc: Encoding, op: &str, id: u64, args: &A) -> Message {
    match codec::encode(enc, &Envelope { op, id, args }) {
        Frame::Text(s) => Message::text(s),
        Frame::Binary(b) => Message::binary(b),
    }
}

/// The payload of a data frame and whether it is binary; `None` for
/// control frames.
pub fn payload(m: &Message) -> Option<(&[u8], bool)> {
    match m {
        Message::Text(t) => Some((t.as_str().as_bytes(), false)),
        Message::Binary(b) => Some((b, true)),
        _ => None,
    }
}

/// The fields of any server message that the scenarios read.
#[derive(Debug, Default, Deserialize)]
pub struct Incoming<'a> {
    // Responses.
    #[serde(default)]
    pub id: Option<ReqId>,
    #[serde(default)]
    pub ok: Option<bool>,
    #[serde(default, borrow)]
    pub err: Option<ErrLite<'a>>,
    #[serde(default)]
    pub res: Option<ResLite>,
    // Stream events, gaps, heartbeats, notices.
    #[serde(default, borrow)]
    pub ch: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub sym: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub epoch: Option<u64>,
    #[serde(default)]
    pub prev: Option<u64>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub ts: Option<u64>,
    #[serde(default)]
    pub depth: Option<u32>,
    #[serde(default)]
    pub lost: Option<[u64; 2]>,
    #[serde(default)]
    pub last: Option<BTreeMap<String, u64>>,
    #[serde(default, borrow)]
    pub op: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
}

/// The `err` fields the scenarios count by.
#[derive(Debug, Default, Deserialize)]
pub struct ErrLite<'a> {
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

/// The `res` fields of order answers.
#[derive(Debug, Default, Deserialize)]
pub struct ResLite {
    #[serde(default)]
    pub order_id: Option<u64>,
    #[serde(default)]
    pub status: Option<OrderStatus>,
}

impl Incoming<'_> {
    /// The numeric correlation id of a response.
    pub fn response_id(&self) -> Option<u64> {
        match self.id {
            Some(ReqId::Num(n)) => Some(n),
            _ => None,
        }
    }

    /// Whether the message is a response (it carries `ok`).
    pub fn is_response(&self) -> bool {
        self.ok.is_some()
    }
}

/// Decodes the scenario fields of a frame (text JSON, binary MessagePack).
pub fn decode_incoming(bytes: &[u8], binary: bool) -> anyhow::Result<Incoming<'_>> {
    if binary {
        decode_msgpack_incoming(bytes).map_err(|e| anyhow!("bad MessagePack frame: {e}"))
    } else {
        serde_json::from_slice(bytes).map_err(|e| anyhow!("bad JSON frame: {e}"))
    }
}

/// Decodes a MessagePack message's envelope fields. The values of every
/// other key (a book's `bids` and `asks`, a trade list's `data`) are
/// stepped over by their lengths, never decoded: rmp-serde decodes skipped
/// fields in full, strings checked as UTF-8, and those are most of the
/// bytes of a market-data message.
fn decode_msgpack_incoming(bytes: &[u8]) -> anyhow::Result<Incoming<'_>> {
    let mut rd = bytes;
    let n = rmp::decode::read_map_len(&mut rd).map_err(|e| anyhow!("{e}"))?;
    let mut inc = Incoming::default();
    for _ in 0..n {
        let (key, rest) = rmp::decode::read_str_from_slice(rd).map_err(|e| anyhow!("{e}"))?;
        let start = rest;
        rd = rest;
        skip_msgpack_value(&mut rd, MSGPACK_DEPTH_MAX)?;
        let v = &start[..start.len() - rd.len()];
        fn de<'a, T: Deserialize<'a>>(v: &'a [u8]) -> anyhow::Result<T> {
            rmp_serde::from_slice(v).map_err(|e| anyhow!("{e}"))
        }
        fn text(v: &[u8]) -> anyhow::Result<Option<Cow<'_, str>>> {
            Ok(de::<Option<&str>>(v)?.map(Cow::Borrowed))
        }
        match key {
            "id" => inc.id = de(v)?,
            "ok" => inc.ok = de(v)?,
            "err" => inc.err = de(v)?,
            "res" => inc.res = de(v)?,
            "ch" => inc.ch = text(v)?,
            "sym" => inc.sym = text(v)?,
            "type" => inc.kind = text(v)?,
            "epoch" => inc.epoch = de(v)?,
            "prev" => inc.prev = de(v)?,
            "seq" => inc.seq = de(v)?,
            "ts" => inc.ts = de(v)?,
            "depth" => inc.depth = de(v)?,
            "lost" => inc.lost = de(v)?,
            "last" => inc.last = de(v)?,
            "op" => inc.op = text(v)?,
            "code" => inc.code = text(v)?,
            _ => {}
        }
    }
    Ok(inc)
}

/// Nesting a stepped-over MessagePack value may have.
const MSGPACK_DEPTH_MAX: usize = 32;

/// Moves `rd` past one MessagePack value.
fn skip_msgpack_value(rd: &mut &[u8], depth: usize) -> anyhow::Result<()> {
    use rmp::Marker as M;
    let Some((&b, rest)) = rd.split_first() else { bail!("truncated") };
    *rd = rest;
    let len = |rd: &mut &[u8], n: usize| -> anyhow::Result<usize> {
        let Some(head) = rd.get(..n) else { bail!("truncated") };
        *rd = &rd[n..];
        Ok(head.iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b)))
    };
    let (bytes, values) = match M::from_u8(b) {
        M::FixPos(_) | M::FixNeg(_) | M::Null | M::True | M::False => (0, 0),
        M::U8 | M::I8 => (1, 0),
        M::U16 | M::I16 => (2, 0),
        M::U32 | M::I32 | M::F32 => (4, 0),
        M::U64 | M::I64 | M::F64 => (8, 0),
        M::FixStr(n) => (usize::from(n), 0),
        M::Str8 | M::Bin8 => (len(rd, 1)?, 0),
        M::Str16 | M::Bin16 => (len(rd, 2)?, 0),
        M::Str32 | M::Bin32 => (len(rd, 4)?, 0),
        M::FixExt1 => (2, 0),
        M::FixExt2 => (3, 0),
        M::FixExt4 => (5, 0),
        M::FixExt8 => (9, 0),
        M::FixExt16 => (17, 0),
        M::Ext8 => (len(rd, 1)? + 1, 0),
        M::Ext16 => (len(rd, 2)? + 1, 0),
        M::Ext32 => (len(rd, 4)? + 1, 0),
        M::FixArray(n) => (0, usize::from(n)),
        M::Array16 => (0, len(rd, 2)?),
        M::Array32 => (0, len(rd, 4)?),
        M::FixMap(n) => (0, 2 * usize::from(n)),
        M::Map16 => (0, 2 * len(rd, 2)?),
        M::Map32 => (0, 2 * len(rd, 4)?),
        M::Reserved => bail!("reserved marker 0xc1"),
    };
    if bytes > rd.len() {
        bail!("truncated");
    }
    *rd = &rd[bytes..];
    if values > 0 {
        if depth == 0 {
            bail!("nested deeper than {MSGPACK_DEPTH_MAX}");
        }
        for _ in 0..values {
            skip_msgpack_value(rd, depth - 1)?;
        }
    }
    Ok(())
}

/// A connection used one request at a time: set-up, operator calls, and
/// the reads of the crowd's users.
pub struct Client {
    ws: Ws,
    enc: Encoding,
    next_id: u64,
    events: VecDeque<ServerMessage>,
}

impl Client {
    pub async fn connect(url: &str, enc: Encoding) -> anyhow::Result<Client> {
        Ok(Client::from_ws(connect(url, enc, false).await?, enc))
    }

    pub fn from_ws(ws: Ws, enc: Encoding) -> Client {
        Client {
            ws,
            enc,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.enc
    }

    /// Gives the socket back (for a scenario's own read loop).
    pub fn into_ws(self) -> Ws {
        self.ws
    }

    /// Sends `op` and waits for its answer; events read meanwhile are kept.
    pub async fn call_raw<A: Serialize + ?Sized>(
        &mut self,
        op: &str,
        args: &A,
    ) -> anyhow::Result<Response<Value>> {
        let id = self.next_id;
        self.next_id += 1;
        self.ws
            .send(request(self.enc, op, id, args))
            .await
            .with_context(|| format!("send {op}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(CALL_TIMEOUT_MS_MAX);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| anyhow!("no answer to {op} in {CALL_TIMEOUT_MS_MAX} ms"))??;
            match msg {
                ServerMessage::Response(r) if r.id == Some(ReqId::Num(id)) => return Ok(r),
                ServerMessage::Response(r) => bail!("answer to an unknown request: {r:?}"),
                other => self.keep(other),
            }
        }
    }

    /// Sends `op` and reads its result as `R`; an error answer is `Ok(Err)`.
    pub async fn call<R: DeserializeOwned, A: Serialize + ?Sized>(
        &mut self,
        op: &str,
        args: &A,
    ) -> anyhow::Result<Result<R, ErrorBody>> {
        Ok(self.call_raw(op, args).await?.res_as::<R>())
    }

    /// Sends `op` and reads its result as `R`; an error answer is an error.
    pub async fn call_ok<R: DeserializeOwned, A: Serialize + ?Sized>(
        &mut self,
        op: &str,
        args: &A,
    ) -> anyhow::Result<R> {
        self.call(op, args)
            .await?
            .map_err(|e| anyhow!("{op} refused: {e}"))
    }

    /// The next stream event (kept ones first), waiting at most `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> anyhow::Result<Option<ServerMessage>> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        match tokio::time::timeout(wait, self.read()).await {
            Err(_) => Ok(None),
            Ok(m) => m.map(Some),
        }
    }

    fn keep(&mut self, m: ServerMessage) {
        if self.events.len() == EVENTS_KEPT_MAX {
            self.events.pop_front();
        }
        self.events.push_back(m);
    }

    async fn read(&mut self) -> anyhow::Result<ServerMessage> {
        loop {
            let m = self
                .ws
                .next()
                .await
                .ok_or_else(|| anyhow!("the server closed the connection"))??;
            if let Message::Close(c) = &m {
                bail!("the server closed the connection: {c:?}");
            }
            if let Some((bytes, binary)) = payload(&m) {
                return codec::decode::<ServerMessage>(bytes, binary)
                    .map_err(|e| anyhow!("undecodable frame: {e}"));
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_protocol::msg::{PlaceArgs, PlaceRes, Side};
    use serde_json::json;

    #[test]
    fn requests_are_protocol_requests_in_both_encodings() {
        let args = PlaceArgs::limit("c1", "BTC-USD", Side::Buy, "60000", "0.01");
        for enc in Encoding::ALL {
            let m = request(enc, "order.place", 7, &args);
            let (bytes, binary) = payload(&m).expect("a data frame");
            assert_eq!(binary, enc.is_binary());
            let req = codec::decode_request(bytes, binary).expect("the server reads it");
            assert_eq!(req.id, ReqId::Num(7));
            assert_eq!(req.op, bourse_protocol::Op::OrderPlace(args.clone()));
        }
    }

    /// The envelope read by stepping over other keys equals what rmp-serde
    /// reads decoding everything, for every kind of message a scenario sees.
    #[test]
    fn the_msgpack_envelope_reader_agrees_with_a_full_decode() {
        let levels: Vec<Value> = (0..60).map(|i| json!([format!("{}.5", 60_000 + i), "0.125"])).collect();
        let values = [
            json!({"ch": "book.l2", "sym": "BTC-USD", "type": "delta", "epoch": 3, "prev": 10, "seq": 11,
                   "ts": 1_733_000_000_000_000u64, "depth": 50, "bids": levels, "asks": [], "cksum": -12345}),
            json!({"ch": "trades", "sym": "BTC-USD", "type": "update", "epoch": 3, "prev": 7, "seq": 9, "ts": 5,
                   "data": [{"id": 8, "px": "1", "qty": "2", "taker": "buy", "ts": 4, "x": null, "f": 1.5, "t": true}]}),
            json!({"ch": "hb", "ts": 6, "last": {"book.l2:BTC-USD:50": 11, "trades:BTC-USD": 9}}),
            json!({"ch": "book.l2", "sym": "BTC-USD", "type": "gap", "lost": [12, 20]}),
            json!({"id": 9, "ok": true, "res": {"order_id": 42, "status": "filled", "cl_id": "x".repeat(300)}, "ts_in": 1, "ts_out": 2}),
            json!({"id": "s", "ok": false, "err": {"code": "rate_limited", "msg": "y".repeat(70_000), "retry_after_ms": 250}}),
            json!({"op": "notice", "code": "slow_consumer", "sub": "trades:BTC-USD"}),
            json!({"deep": [[[[[1, -2, 300, -40_000, 5_000_000_000u64, -5_000_000_000i64]]]]], "ch": "status"}),
        ];
        for v in values {
            let bytes = rmp_serde::to_vec_named(&v).unwrap();
            let full: Incoming<'_> = rmp_serde::from_slice(&bytes).unwrap();
            let fast = decode_incoming(&bytes, true).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{v}");
        }
        // Extension and binary values are stepped over too.
        let mut bytes = Vec::new();
        rmp::encode::write_map_len(&mut bytes, 4).unwrap();
        rmp::encode::write_str(&mut bytes, "blob").unwrap();
        rmp::encode::write_bin(&mut bytes, &[0xc1; 300]).unwrap();
        rmp::encode::write_str(&mut bytes, "ext").unwrap();
        rmp::encode::write_ext_meta(&mut bytes, 3, 7).unwrap();
        bytes.extend_from_slice(b"abc");
        rmp::encode::write_str(&mut bytes, "fix").unwrap();
        rmp::encode::write_ext_meta(&mut bytes, 16, 1).unwrap();
        bytes.extend_from_slice(&[0; 16]);
        rmp::encode::write_str(&mut bytes, "seq").unwrap();
        rmp::encode::write_uint(&mut bytes, 77).unwrap();
        assert_eq!(decode_incoming(&bytes, true).unwrap().seq, Some(77));
        // A truncated message is an error, not a panic.
        let whole = rmp_serde::to_vec_named(&json!({"bids": [["1", "2"]], "seq": 1})).unwrap();
        for cut in 0..whole.len() {
            assert!(decode_incoming(&whole[..cut], true).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_hot_path_reader_reads_responses_and_events() {
        let res = PlaceRes {
            order_id: 42,
            cl_id: "c1".into(),
            status: OrderStatus::PartiallyFilled,
            cum_qty: "0.01".into(),
            reason: None,
            dup: false,
        };
        let ok = Response::ok(ReqId::Num(9), res, 1, 2);
        let err = Response::<()>::err(
            Some(ReqId::Num(10)),
            ErrorBody::new(bourse_protocol::ErrorCode::PriceBand, "outside"),
            1,
            2,
        );
        let ev = bourse_protocol::msg::BookL2::delta("BTC-USD", 3, 10, 11, 99, 50, vec![], vec![]);
        let ev = bourse_protocol::StreamEvent::BookL2(ev);
        for enc in Encoding::ALL {
            let f = codec::encode(enc, &ok);
            let m = decode_incoming(f.as_bytes(), f.is_binary()).unwrap();
            assert_eq!(m.response_id(), Some(9));
            assert_eq!(m.ok, Some(true));
            let r = m.res.unwrap();
            assert_eq!(
                (r.order_id, r.status),
                (Some(42), Some(OrderStatus::PartiallyFilled))
            );
            let f = codec::encode(enc, &err);
            let m = decode_incoming(f.as_bytes(), f.is_binary()).unwrap();
            assert_eq!(m.err.unwrap().code, "price_band");
            let f = codec::encode(enc, &ev);
            let m = decode_incoming(f.as_bytes(), f.is_binary()).unwrap();
            assert!(!m.is_response());
            assert_eq!(m.ch.as_deref(), Some("book.l2"));
            assert_eq!(m.kind.as_deref(), Some("delta"));
            assert_eq!(
                (m.epoch, m.prev, m.seq, m.ts),
                (Some(3), Some(10), Some(11), Some(99))
            );
        }
    }
}
