//! Where an answer goes: a session's connection, a slot of an `order.batch`,
//! or a waiting task. Answers that report a change travel with their events
//! through the journal and are sent only once those events are durable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use bourse_protocol::msg::{BatchItem, BatchRes, PlaceRes};
use bourse_protocol::{ErrorBody, ReqId, Response};
use bourse_protocol::Encoding;
use serde_json::Value;
use bytes::Bytes;

use crate::session::frame;

/// What a session is handed to write to its client.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum Deliver {
    Response(Response<Value>),
    /// An account-stream message, already encoded for each encoding. It goes
    /// through the session so it follows the answer that caused it; public
    /// market data is written straight to the connection's `Outbox`.
    Stream(Arc<Encoded>),
    /// Close the connection after sending a notice (shutdown, slow consumer).
    Notice { code: &'static str, in_ms: Option<u64>, close: Option<u16> },
    /// The connection's outbox was closed (a slow consumer, lost stream messages): stop the session.
    Stop,
    /// An operator set `user`'s password: a session logged in as `user`
    /// ends its login (`{"op":"notice","code":"logged_out"}`).
    PasswordSet { user: String },
}

/// One stream message, encoded and framed at most once per encoding: the
/// first subscriber that needs an encoding makes the WebSocket frame, the
/// others share its bytes (a reference-counted view, never a copy).
#[derive(Debug)]
pub struct Encoded {
    pub key: String,
    pub seq: u64,
    /// The `prev` this message applies on, if it has one.
    pub prev: Option<u64>,
    /// Whether this is a snapshot (which starts or restarts a chain).
    pub snapshot: bool,
    /// When it was made, in microseconds since the epoch (for the delivery metric).
    pub made_us: u64,
    /// The `channel` label of the outbound metrics, found once per message.
    pub channel: &'static str,
    pub value: Value,
    /// The text frame of the JSON encoding.
    json: std::sync::OnceLock<Bytes>,
    /// The binary frame of the MessagePack encoding.
    msgpack: std::sync::OnceLock<Bytes>,
}

impl Encoded {
    pub fn new(key: String, seq: u64, v: &Value) -> Self {
        Encoded::owned(key, seq, v.clone())
    }

    pub fn owned(key: String, seq: u64, value: Value) -> Self {
        let prev = value.get("prev").and_then(Value::as_u64);
        let snapshot = value.get("type").and_then(Value::as_str) == Some("snapshot");
        let channel = crate::telemetry::channel_of(&key);
        Encoded { key, seq, prev, snapshot, made_us: now_us(), channel, value, json: Default::default(), msgpack: Default::default() }
    }

    /// The `prev` this message applies on, if it has one.
    pub fn prev(&self) -> Option<u64> {
        self.prev
    }

    /// The WebSocket frame of this message in `enc`, shared by every
    /// connection that takes this encoding.
    pub fn frame(&self, enc: Encoding) -> Bytes {
        self.frame_ref(enc).clone()
    }

    /// [`Encoded::frame`], borrowed.
    pub fn frame_ref(&self, enc: Encoding) -> &Bytes {
        match enc {
            Encoding::Json => self.json.get_or_init(|| {
                frame::frame(frame::OP_TEXT, &serde_json::to_vec(&self.value).expect("values encode"))
            }),
            Encoding::MsgPack => self.msgpack.get_or_init(|| {
                frame::frame(frame::OP_BINARY, &rmp_serde::to_vec_named(&self.value).expect("values encode"))
            }),
        }
    }
}

pub type Answer = Result<Value, ErrorBody>;

/// What became of an order placed through a `cod: connection` session:
/// the order it made or named (a `dup`), or none when refused. Sent to the
/// session just before the place's own answer.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PlaceAnswered {
    pub cl_id: String,
    pub order: Option<u64>,
}

pub enum Responder {
    Session { to: Recipient<Deliver>, id: Option<ReqId>, ts_in: u64 },
    Slot { batch: Arc<Batch>, index: usize },
    Channel(tokio::sync::oneshot::Sender<Answer>),
    /// One instrument's share of a cancel-all.
    Part(Arc<Tally>),
    /// A place of a `cod: connection` session: tells the session which
    /// order the place made (`PlaceAnswered`), then answers as `inner`.
    Noted { inner: Box<Responder>, note: Recipient<PlaceAnswered>, cl_id: String },
    Drop,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Responder::Session { .. } => "Responder::Session",
            Responder::Slot { .. } => "Responder::Slot",
            Responder::Channel(_) => "Responder::Channel",
            Responder::Part(_) => "Responder::Part",
            Responder::Noted { .. } => "Responder::Noted",
            Responder::Drop => "Responder::Drop",
        })
    }
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Responder {
    pub fn send(self, a: Answer) {
        match self {
            Responder::Session { to, id, ts_in } => {
                let r = match a {
                    Ok(v) => Response { id, ok: true, res: Some(v), err: None, ts_in, ts_out: now_us() },
                    Err(e) => Response { id, ok: false, res: None, err: Some(e), ts_in, ts_out: now_us() },
                };
                to.do_send(Deliver::Response(r));
            }
            Responder::Slot { batch, index } => batch.fill(index, a),
            Responder::Channel(tx) => {
                let _ = tx.send(a);
            }
            Responder::Part(t) => t.part(a.ok().and_then(|v| v["cancelled"].as_u64()).unwrap_or(0)),
            Responder::Noted { inner, note, cl_id } => {
                let order = a.as_ref().ok().and_then(|v| v["order_id"].as_u64());
                note.do_send(PlaceAnswered { cl_id, order });
                inner.send(a);
            }
            Responder::Drop => {}
        }
    }
}

/// The answers of an `order.batch`, sent together, in request order, once all are in.
pub struct Batch {
    items: Mutex<(Vec<Option<BatchItem>>, Option<Responder>)>,
    remaining: AtomicUsize,
}

impl Batch {
    /// A batch of `n` orders answering `to`; a batch of none answers at
    /// once, with no results (every request gets its one response).
    pub fn new(n: usize, to: Responder) -> Arc<Batch> {
        if n == 0 {
            to.send(Ok(serde_json::to_value(BatchRes { results: Vec::new() }).expect("encodes")));
            return Arc::new(Batch { items: Mutex::new((Vec::new(), None)), remaining: AtomicUsize::new(0) });
        }
        Arc::new(Batch { items: Mutex::new((vec![None; n], Some(to))), remaining: AtomicUsize::new(n) })
    }

    pub fn fill(&self, index: usize, a: Answer) {
        let item = match a {
            Ok(v) => match serde_json::from_value::<PlaceRes>(v) {
                Ok(res) => BatchItem::ok(res),
                Err(e) => BatchItem::err(ErrorBody::new(bourse_protocol::ErrorCode::Internal, e.to_string())),
            },
            Err(e) => BatchItem::err(e),
        };
        let mut g = self.items.lock().expect("batch lock");
        g.0[index] = Some(item);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let results = g.0.iter_mut().map(|i| i.take().expect("every slot answered")).collect();
            if let Some(to) = g.1.take() {
                to.send(Ok(serde_json::to_value(BatchRes { results }).expect("encodes")));
            }
        }
    }
}

/// Counts the answers of a command fanned out to several instruments (cancel-all).
pub struct Tally {
    pub count: std::sync::atomic::AtomicU64,
    remaining: AtomicUsize,
    to: Mutex<Option<Responder>>,
}

impl Tally {
    pub fn new(parts: usize, to: Responder) -> Arc<Tally> {
        let t = Arc::new(Tally {
            count: Default::default(),
            remaining: AtomicUsize::new(parts),
            to: Mutex::new(Some(to)),
        });
        if parts == 0 {
            t.finish();
        }
        t
    }

    /// One part done with `n` cancelled; the last part answers.
    pub fn part(&self, n: u64) {
        self.count.fetch_add(n, Ordering::AcqRel);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        if let Some(to) = self.to.lock().expect("tally lock").take() {
            to.send(Ok(serde_json::json!({ "cancelled": self.count.load(Ordering::Acquire) })));
        }
    }
}
