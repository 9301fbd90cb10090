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
        rmp_serde::from_slice(bytes).map_err(|e| anyhow!("bad MessagePack frame: {e}"))
    } else {
        serde_json::from_slice(bytes).map_err(|e| anyhow!("bad JSON frame: {e}"))
    }
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
