//! A connection's bounded outbound queue and the `on_lag` policy of each
//! subscription on it.
//!
//! The queue feeds the connection's writer task. Two parties send on it:
//! the session (answers, heartbeats, notices, the account stream) and the
//! market-data actor, which sends public stream messages straight to it,
//! so a book delta reaches a thousand sockets without a thousand trips
//! through session mailboxes. A connection with nothing queued gets the
//! market-data actor's messages written by that actor at once
//! ([`Due::send_group`], [`Queue::send`]). Every frame shares the
//! message's encoded bytes.
//!
//! A [`Follower`] is one subscription's place in a stream. It sends while
//! the queue is below its high-water mark (three quarters of its messages or
//! bytes, counting what the market-data actor has admitted for its
//! current batch and not yet queued); past it, the subscription's `on_lag` decides: `conflate` merges
//! deltas into one pending chain link, `resync` notes the lost range and
//! later sends `gap` (its owner then sends a fresh snapshot), `disconnect`
//! sends the `slow_consumer` notice and closes with 4008. Nothing is dropped
//! without one of these.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Recipient;
use bourse_protocol::codec::{self, Encoding};
use bourse_protocol::msg as p;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::reply::{now_us, Deliver, Encoded};
use crate::session::{frame, Sub};

/// Queue use past which a connection counts as lagging: three quarters.
const LAG_NUMER: usize = 3;
const LAG_DENOM: usize = 4;

/// Close code for a subscriber that could not keep up (PROTOCOL.md section 6).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;

/// Close code (RFC 6455, internal error) for a connection whose stream
/// messages the server failed to write: it ends rather than go on with a
/// gap it never announced; the client resumes where it was.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

pub use super::queue::{Queue, Refused, Sent, RESERVED_FRAMES};

/// The sending side of a connection: its queue, encoding and owner.
pub struct Outbox {
    /// The connection's number (its place in `Shared::sessions`).
    pub conn: usize,
    pub enc: Encoding,
    /// Whole WebSocket frames (see [`frame`]), written as they are.
    queue: Arc<Queue>,
    /// When a frame was last queued, in microseconds since the epoch.
    last_sent_us: AtomicU64,
    closing: AtomicBool,
    session: Recipient<Deliver>,
    /// Stream messages admitted (a [`Due`] made) and not yet queued, and
    /// their bytes. They count toward the high-water mark: a batch admits
    /// many messages before it queues any, and must not overrun the queue.
    admitted: AtomicUsize,
    admitted_bytes: AtomicUsize,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.queue.producer_gone();
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbox({})", self.conn)
    }
}

impl Outbox {
    /// The outbox of connection `conn`; it counts as one of `queue`'s producers.
    pub fn new(conn: usize, enc: Encoding, queue: Arc<Queue>, session: Recipient<Deliver>) -> Outbox {
        Outbox {
            conn,
            enc,
            queue,
            last_sent_us: AtomicU64::new(now_us()),
            closing: AtomicBool::new(false),
            session,
            admitted: AtomicUsize::new(0),
            admitted_bytes: AtomicUsize::new(0),
        }
    }

    /// The session that owns the connection.
    pub fn session(&self) -> &Recipient<Deliver> {
        &self.session
    }

    /// Past the high-water mark in messages or bytes, counting what is
    /// admitted and not yet queued.
    pub fn lagging(&self) -> bool {
        let (frames, bytes) = self.queue.used();
        let frames = frames + self.admitted.load(Ordering::Acquire);
        let bytes = bytes + self.admitted_bytes.load(Ordering::Acquire);
        frames * LAG_DENOM >= self.queue.msgs_max() * LAG_NUMER || bytes * LAG_DENOM >= self.queue.bytes_max() * LAG_NUMER
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Microseconds since the epoch when a frame was last queued.
    pub fn last_sent_us(&self) -> u64 {
        self.last_sent_us.load(Ordering::Relaxed)
    }

    /// Queues a whole frame.
    pub fn push(&self, m: Bytes) -> Result<(), Refused> {
        self.push_at(m, now_us(), 0)
    }

    /// Queues a whole frame at `now_us`; `made_us` is when a stream message was made (0 otherwise).
    fn push_at(&self, m: Bytes, now_us: u64, made_us: u64) -> Result<(), Refused> {
        if self.closing() {
            return Err(Refused::Closed);
        }
        self.queue.push(m, made_us, false)?;
        self.last_sent_us.store(now_us, Ordering::Relaxed);
        Ok(())
    }

    /// Queues a message encoded for this connection.
    pub fn send_value(&self, v: &Value) -> Result<usize, Refused> {
        let m = self.frame(v);
        let len = m.len();
        self.push(m).map(|()| len)
    }

    fn frame(&self, v: &Value) -> Bytes {
        frame::message(&codec::encode(self.enc, v))
    }

    /// Closes the connection: whatever is queued is written, then the close
    /// frame. Further frames are refused. Returns false when it was closing already.
    pub fn close(&self, code: u16, reason: &str) -> bool {
        self.finish(None, code, reason)
    }

    /// The last frames: an optional notice, then the close. Only the first
    /// caller gets to send them; they go in the queue's reserved places.
    fn finish(&self, notice: Option<&Value>, code: u16, reason: &str) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Some(n) = notice {
            let _ = self.queue.push(self.frame(n), 0, true);
        }
        let _ = self.queue.push(frame::close(code, reason), 0, true);
        true
    }

    /// A slow consumer: the notice (naming the stream, when known), then
    /// close 4008; the session is told to stop.
    pub fn slow_consumer(&self, sub: Option<&str>) {
        let mut n = json!({"op": "notice", "code": "slow_consumer"});
        if let Some(s) = sub {
            n["sub"] = json!(s);
        }
        if self.finish(Some(&n), CLOSE_SLOW_CONSUMER, "slow consumer") {
            crate::telemetry::slow_consumer(crate::telemetry::SLOW_DISCONNECT, self.conn);
            self.session.do_send(Deliver::Stop);
        }
    }

    /// Stream messages admitted for this connection were lost before they
    /// reached it (a fan-out writer failed): close 1011, so that the client
    /// resumes instead of reading on past a gap nobody announced.
    pub fn abandon(&self) {
        if self.finish(None, CLOSE_INTERNAL_ERROR, "stream messages lost; resume") {
            self.session.do_send(Deliver::Stop);
        }
    }
}

/// What a follower did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    Sent,
    /// Merged or noted for later (`conflate`, `resync`), or skipped while a
    /// fresh snapshot is awaited: the owner must call `flush` later.
    Held,
    /// The connection is closed or closing.
    Closed,
}

/// What a flush did.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Nothing was held, or the queue is still past its mark.
    Idle,
    /// The merged delta went out.
    Sent,
    /// The `gap` went out; the owner sends a fresh snapshot next.
    NeedSnapshot,
}

/// One subscription on one connection: where its messages go and what is
/// held back while the client is slow.
#[derive(Debug)]
pub struct Follower {
    pub out: Arc<Outbox>,
    pub sub: Sub,
    /// Seq of the last message queued on this stream (heartbeats read it).
    pub last: Arc<AtomicU64>,
    /// `conflate`: the merged messages not yet sent.
    pending: Option<Value>,
    /// `resync`: the range of seqs dropped, announced with a `gap` once the client catches up.
    gap: Option<(u64, u64)>,
    /// After a `gap`, messages are skipped until the fresh snapshot arrives.
    awaiting_snapshot: bool,
}

impl Follower {
    pub fn new(out: Arc<Outbox>, sub: Sub, last: Arc<AtomicU64>) -> Follower {
        Follower { out, sub, last, pending: None, gap: None, awaiting_snapshot: false }
    }

    /// Something is held back for a later `flush`.
    pub fn holds(&self) -> bool {
        self.pending.is_some() || self.gap.is_some() || self.awaiting_snapshot
    }

    fn refused(&self, r: Refused) -> Offered {
        if r == Refused::Full {
            self.out.slow_consumer(Some(&self.sub.key));
        }
        Offered::Closed
    }

    /// Sends a stream message, or applies the subscription's `on_lag` policy
    /// when the client is not keeping up.
    pub fn offer(&mut self, e: &Arc<Encoded>) -> Offered {
        match self.admit(e) {
            Offered::Sent => {
                let mut sent = Vec::new();
                Due::send_group(&[self.due(e)], &mut sent, &crate::telemetry::md_delivery());
                match sent.first() {
                    Some(&(ch, _, bytes)) => {
                        crate::telemetry::ws_out_channel(ch, bytes);
                        Offered::Sent
                    }
                    None => Offered::Closed,
                }
            }
            other => other,
        }
    }

    /// The message to queue now that `admit` said it may go.
    pub fn due(&self, e: &Arc<Encoded>) -> Due {
        let bytes = e.frame_ref(self.out.enc).len();
        self.out.admitted.fetch_add(1, Ordering::AcqRel);
        self.out.admitted_bytes.fetch_add(bytes, Ordering::AcqRel);
        Due { out: self.out.clone(), last: self.last.clone(), e: e.clone(), order: 0 }
    }

    /// Applies the subscription's `on_lag` policy to a stream message:
    /// `Sent` means it is to be queued now (see `due`); otherwise it was
    /// merged or noted for later, or the connection is gone.
    pub fn admit(&mut self, e: &Arc<Encoded>) -> Offered {
        if self.out.closing() {
            return Offered::Closed;
        }
        if self.awaiting_snapshot {
            if !e.snapshot {
                return Offered::Held;
            }
            self.awaiting_snapshot = false;
        }
        if self.out.lagging() || self.pending.is_some() || self.gap.is_some() {
            match self.sub.on_lag {
                p::OnLag::Conflate => {
                    metrics::counter!(crate::telemetry::SLOW_CONSUMER_TOTAL, "action" => crate::telemetry::SLOW_CONFLATE).increment(1);
                    match self.pending.as_mut() {
                        Some(pend) if !e.snapshot && e.value["type"] == "delta" && pend["type"] == "delta" => merge_levels(pend, &e.value),
                        Some(pend) if !e.snapshot && self.sub.ch == p::Channel::Trades && pend["type"] == "update" => merge_trades(pend, &e.value),
                        Some(pend) => {
                            let prev = pend.get("prev").cloned();
                            *pend = e.value.clone();
                            if let (Some(prev), false) = (prev, e.snapshot) {
                                pend["prev"] = prev;
                            }
                        }
                        None => self.pending = Some(e.value.clone()),
                    }
                    return Offered::Held;
                }
                p::OnLag::Resync if e.snapshot => self.gap = None,
                p::OnLag::Resync => {
                    metrics::counter!(crate::telemetry::SLOW_CONSUMER_TOTAL, "action" => crate::telemetry::SLOW_GAP).increment(1);
                    let first = e.prev.map_or(e.seq, |p| p + 1);
                    self.gap = Some((self.gap.map_or(first, |g| g.0), e.seq));
                    return Offered::Held;
                }
                p::OnLag::Disconnect => {
                    tracing::info!(conn = self.out.conn, stream = %e.key, "slow consumer disconnected");
                    self.out.slow_consumer(Some(&e.key));
                    return Offered::Closed;
                }
            }
        }
        Offered::Sent
    }

    /// Sends what lag held back once the client has caught up: the merged
    /// delta, or a `gap` (after which the owner sends a fresh snapshot).
    pub fn flush(&mut self) -> Flushed {
        if self.out.closing() || self.out.lagging() {
            return Flushed::Idle;
        }
        if let Some(v) = self.pending.take() {
            let seq = v["seq"].as_u64().unwrap_or(0);
            return match self.out.send_value(&v) {
                Ok(len) => {
                    self.last.store(seq, Ordering::Release);
                    crate::telemetry::ws_out(&self.sub.key, len);
                    Flushed::Sent
                }
                Err(r) => {
                    self.refused(r);
                    Flushed::Idle
                }
            };
        }
        if let Some((first, last)) = self.gap.take() {
            let mut g = json!({"ch": self.sub.ch.as_str(), "type": "gap", "lost": [first, last]});
            if let Some(sym) = &self.sub.sym {
                g["sym"] = json!(sym);
            }
            return match self.out.send_value(&g) {
                Ok(len) => {
                    crate::telemetry::ws_out(&self.sub.key, len);
                    self.awaiting_snapshot = true;
                    Flushed::NeedSnapshot
                }
                Err(r) => {
                    self.refused(r);
                    Flushed::Idle
                }
            };
        }
        Flushed::Idle
    }
}

/// A stream message admitted for one subscriber, queued when its batch is
/// done: the market-data actor queues a batch's messages connection by
/// connection, so each connection's writer finds all of them (a book delta
/// and its trades) at once and writes them with one system call. It counts
/// toward its connection's high-water mark from its making until it is
/// dropped (by then it is queued, written, or refused).
pub struct Due {
    out: Arc<Outbox>,
    last: Arc<AtomicU64>,
    e: Arc<Encoded>,
    /// Its place in the batch, which keeps a connection's messages in order
    /// when the batch is sorted by connection.
    pub order: u32,
}

impl Drop for Due {
    fn drop(&mut self) {
        let bytes = self.e.frame_ref(self.out.enc).len();
        self.out.admitted.fetch_sub(1, Ordering::AcqRel);
        self.out.admitted_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl Due {
    pub fn conn(&self) -> usize {
        self.out.conn
    }

    /// The batch order: by connection, then by place in the batch.
    pub fn batch_key(&self) -> (usize, u32) {
        (self.out.conn, self.order)
    }

    /// The stream's metrics label.
    pub fn channel(&self) -> &'static str {
        self.e.channel
    }

    /// The connection this message was admitted for, to close it when the
    /// message is lost (see [`Outbox::abandon`]).
    pub fn outbox(&self) -> &Outbox {
        &self.out
    }
}

/// Messages of one connection sent by [`Due::send_group`]: at most as many
/// as one vectored write takes.
pub const GROUP_MAX: usize = super::queue::IOV_MAX;

impl Due {
    /// Sends one connection's admitted messages, in order, with one write
    /// when the connection is idle (see [`Queue::send`]). Each message sent
    /// is counted into `sent` (channel, messages, bytes); a write made here
    /// is timed into `delivered`; a full queue is a slow consumer. The
    /// frames are borrowed from the messages: only what must wait in the
    /// queue takes a reference of its own.
    pub fn send_group(dues: &[Due], sent: &mut Vec<(&'static str, u64, usize)>, delivered: &metrics::Histogram) {
        let Some(out) = dues.first().map(|d| &d.out) else { return };
        if out.closing() {
            return;
        }
        let enc = out.enc;
        let made_us = dues.iter().map(|d| d.e.made_us).min().unwrap_or(0);
        let (accepted, refused) = match out.queue.send(dues.iter().map(|d| d.e.frame_ref(enc)), made_us) {
            Sent::Written { at_us } => {
                delivered.record(std::time::Duration::from_micros(at_us.saturating_sub(made_us)).as_secs_f64());
                (dues.len(), None)
            }
            Sent::Queued => (dues.len(), None),
            Sent::Refused(n, r) => (n, Some(r)),
        };
        for d in dues.iter().take(accepted) {
            let f = d.e.frame_ref(enc);
            d.last.store(d.e.seq, Ordering::Release);
            // The message's creation time stands for "now" (the heartbeat's clock).
            out.last_sent_us.store(d.e.made_us, Ordering::Relaxed);
            match sent.iter_mut().find(|s| s.0 == d.e.channel) {
                Some(s) => {
                    s.1 += 1;
                    s.2 += f.len();
                }
                None => sent.push((d.e.channel, 1, f.len())),
            }
        }
        if let (Some(Refused::Full), Some(d)) = (refused, dues.get(accepted)) {
            out.slow_consumer(Some(&d.e.key));
        }
    }
}

/// Orders two fixed-scale decimal strings of one instrument numerically.
fn px_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Merges a later `book.l2` delta into a pending one: one chain link from
/// the pending `prev` to the later `seq`, with the later quantity of each level.
fn merge_levels(pending: &mut Value, next: &Value) {
    for (side, best_high) in [("bids", true), ("asks", false)] {
        let mut levels: Vec<(String, String)> = serde_json::from_value(pending[side].clone()).unwrap_or_default();
        let later: Vec<(String, String)> = serde_json::from_value(next[side].clone()).unwrap_or_default();
        for (px, qty) in later {
            match levels.iter_mut().find(|(p, _)| *p == px) {
                Some(l) => l.1 = qty,
                None => levels.push((px, qty)),
            }
        }
        levels.sort_by(|a, b| if best_high { px_cmp(&b.0, &a.0) } else { px_cmp(&a.0, &b.0) });
        pending[side] = json!(levels);
    }
    for k in ["seq", "ts", "cksum"] {
        if let Some(v) = next.get(k) {
            pending[k] = v.clone();
        }
    }
}

/// Merges a later `trades` update into a pending one: every trade, in order,
/// as one chain link from the pending `prev` to the later `seq`.
fn merge_trades(pending: &mut Value, next: &Value) {
    if let (Some(list), Some(more)) = (pending["data"].as_array_mut(), next["data"].as_array()) {
        list.extend(more.iter().cloned());
    }
    for k in ["seq", "ts"] {
        if let Some(v) = next.get(k) {
            pending[k] = v.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::queue::Taken;
    use actix::{Actor, Context, Handler};
    use std::sync::atomic::AtomicUsize;

    /// Stands in for the session: counts `Stop`.
    struct Owner(Arc<AtomicUsize>);

    impl Actor for Owner {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Owner {
        type Result = ();
        fn handle(&mut self, d: Deliver, _ctx: &mut Context<Self>) {
            if matches!(d, Deliver::Stop) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn text(s: &str) -> Bytes {
        frame::frame(frame::OP_TEXT, s.as_bytes())
    }

    fn outbox(frames: usize, bytes: usize, stops: Arc<AtomicUsize>) -> (Arc<Outbox>, Arc<Queue>) {
        let queue = Arc::new(Queue::new(frames, bytes, 1));
        let owner = Owner(stops).start();
        (Arc::new(Outbox::new(7, Encoding::Json, queue.clone(), owner.recipient())), queue)
    }

    /// What the writer would take now, counted off as written.
    async fn drain(q: &Queue) -> Vec<Bytes> {
        let mut t = Taken::default();
        if q.used().0 > 0 {
            q.take(usize::MAX, &mut t).await;
            q.written(t.frames.len(), t.bytes);
        }
        t.frames.into()
    }

    #[actix::test]
    async fn a_client_that_stops_reading_is_told_why_before_the_close() {
        let stops = Arc::new(AtomicUsize::new(0));
        let (out, queue) = outbox(4, 1 << 20, stops.clone());
        for i in 0..4 {
            assert_eq!(out.push(text(&format!("m{i}"))), Ok(()));
        }
        assert!(out.lagging());
        // The queue is full for ordinary frames...
        assert_eq!(out.push(text("m4")), Err(Refused::Full));
        // ...but the notice and the close still fit, once.
        out.slow_consumer(Some("book.l2:BTC-USD:50"));
        out.slow_consumer(Some("trades:BTC-USD"));
        assert!(out.closing());
        assert_eq!(out.push(text("late")), Err(Refused::Closed));
        let got = drain(&queue).await;
        assert_eq!(got.len(), 6, "{got:?}");
        let Some((frame::OP_TEXT, notice)) = frame::parse(&got[4]) else { panic!("{:?}", got[4]) };
        let v: Value = serde_json::from_slice(notice).unwrap();
        assert_eq!(v, json!({"op": "notice", "code": "slow_consumer", "sub": "book.l2:BTC-USD:50"}));
        match frame::parse(&got[5]) {
            Some((frame::OP_CLOSE, p)) => assert_eq!(u16::from_be_bytes([p[0], p[1]]), CLOSE_SLOW_CONSUMER),
            m => panic!("{m:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(stops.load(Ordering::SeqCst), 1, "the session is told to stop once");
    }

    #[actix::test]
    async fn queued_bytes_count_toward_the_high_water_mark() {
        let (out, queue) = outbox(100, 1000, Default::default());
        let (a, b) = (text(&"x".repeat(696)), text(&"x".repeat(98)));
        assert_eq!((a.len(), b.len()), (700, 100), "headers of 4 and 2 bytes");
        out.push(a).unwrap();
        assert!(!out.lagging());
        out.push(b).unwrap();
        assert!(out.lagging(), "800 of 1000 bytes is past three quarters");
        // The writer wrote them.
        assert_eq!(drain(&queue).await.len(), 2);
        assert!(!out.lagging());
    }

    fn trades_update(prev: u64, ids: &[u64]) -> Arc<Encoded> {
        let data: Vec<Value> = ids.iter().map(|id| json!({"id": id, "px": "100", "qty": "1", "taker": "buy", "ts": 1})).collect();
        let v = json!({"ch": "trades", "sym": "X", "type": "update", "epoch": 1, "prev": prev, "seq": ids[ids.len() - 1], "ts": 1, "data": data});
        Arc::new(Encoded::owned("trades:X".into(), ids[ids.len() - 1], v))
    }

    #[actix::test]
    async fn conflated_trades_keep_every_trade_in_one_chain_link() {
        let (out, queue) = outbox(4, 1 << 20, Default::default());
        let sub = Sub { key: "trades:X".into(), ch: p::Channel::Trades, sym: Some("X".into()), depth: 50, interval: None, cksum: false, on_lag: p::OnLag::Conflate };
        let mut f = Follower::new(out.clone(), sub, Default::default());
        // The client is behind: three of four places are taken.
        for _ in 0..3 {
            out.push(text("old")).unwrap();
        }
        assert_eq!(f.offer(&trades_update(10, &[11, 12])), Offered::Held);
        assert_eq!(f.offer(&trades_update(12, &[13])), Offered::Held);
        assert_eq!(f.flush(), Flushed::Idle, "still lagging");
        // The writer catches up.
        assert_eq!(drain(&queue).await.len(), 3);
        assert_eq!(f.flush(), Flushed::Sent);
        let Some(m) = drain(&queue).await.pop() else { panic!("the merged message") };
        let Some((frame::OP_TEXT, t)) = frame::parse(&m) else { panic!("{m:?}") };
        let v: Value = serde_json::from_slice(t).unwrap();
        assert_eq!((v["prev"].as_u64(), v["seq"].as_u64()), (Some(10), Some(13)));
        let ids: Vec<u64> = v["data"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![11, 12, 13]);
        assert_eq!(f.last.load(Ordering::SeqCst), 13);
        assert!(!f.holds());
    }

    #[actix::test]
    async fn a_batch_admits_no_more_than_the_mark_and_never_overruns_the_queue() {
        let stops = Arc::new(AtomicUsize::new(0));
        let (out, queue) = outbox(8, 1 << 20, stops.clone());
        let sub = Sub { key: "trades:X".into(), ch: p::Channel::Trades, sym: Some("X".into()), depth: 50, interval: None, cksum: false, on_lag: p::OnLag::Conflate };
        let mut f = Follower::new(out.clone(), sub, Default::default());
        // One batch: twenty messages offered before any is queued.
        let mut dues = Vec::new();
        let mut held = 0;
        for i in 0..20u64 {
            match f.admit(&trades_update(10 + i, &[11 + i])) {
                Offered::Sent => dues.push(f.due(&trades_update(10 + i, &[11 + i]))),
                Offered::Held => held += 1,
                Offered::Closed => panic!("closed at {i}"),
            }
        }
        assert_eq!((dues.len(), held), (6, 14), "admitted up to three quarters of 8, the rest merged");
        let (mut sent, hist) = (Vec::new(), metrics::histogram!("test_delivery"));
        Due::send_group(&dues, &mut sent, &hist);
        drop(dues);
        assert!(!out.closing(), "not taken for a slow consumer");
        assert_eq!(queue.used().0, 6);
        assert!(out.lagging(), "the six queued still count");
        assert_eq!(drain(&queue).await.len(), 6);
        assert_eq!(f.flush(), Flushed::Sent, "then the merged rest, as one chain link");
        let Some(m) = drain(&queue).await.pop() else { panic!("the merged message") };
        let Some((frame::OP_TEXT, t)) = frame::parse(&m) else { panic!("{m:?}") };
        let v: Value = serde_json::from_slice(t).unwrap();
        assert_eq!((v["prev"].as_u64(), v["seq"].as_u64()), (Some(16), Some(30)));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(stops.load(Ordering::SeqCst), 0);
    }
}
