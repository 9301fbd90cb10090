//! A connection's bounded outbound queue and the `on_lag` policy of each
//! subscription on it.
//!
//! The queue feeds the connection's writer task. Two parties send on it:
//! the session (answers, heartbeats, notices, the account stream) and the
//! market-data actor, which sends public stream messages straight to it,
//! so a book delta reaches a thousand sockets without a thousand trips
//! through session mailboxes. A connection with nothing queued gets the
//! market-data actor's messages written by that actor at once
//! ([`Admitted`], [`Queue::send`]). Every frame shares the
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

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use actix::Recipient;
use bourse_protocol::codec::{self, Encoding};
use bourse_protocol::msg as p;
use bytes::Bytes;
use rustc_hash::FxHashMap;
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
        }
    }

    /// The session that owns the connection.
    pub fn session(&self) -> &Recipient<Deliver> {
        &self.session
    }

    /// Past the high-water mark in messages or bytes.
    pub fn lagging(&self) -> bool {
        self.load().past_mark(0, 0)
    }

    /// How full the queue is now.
    fn load(&self) -> Load {
        let (frames, bytes) = self.queue.used();
        Load { frames, bytes, frames_max: self.queue.msgs_max(), bytes_max: self.queue.bytes_max() }
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

/// A queue's use and limits, as read at one moment.
#[derive(Clone, Copy, Debug)]
struct Load {
    frames: usize,
    bytes: usize,
    frames_max: usize,
    bytes_max: usize,
}

impl Load {
    /// Past the high-water mark once `frames` more frames of `bytes` are
    /// queued.
    fn past_mark(&self, frames: usize, bytes: usize) -> bool {
        (self.frames + frames) * LAG_DENOM >= self.frames_max * LAG_NUMER || (self.bytes + bytes) * LAG_DENOM >= self.bytes_max * LAG_NUMER
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
    /// The batch (its generation) in which this follower's connection has
    /// the place `batch_conn` and its `last` the place `batch_last`
    /// (`NOT_YET` until a message is admitted for it; see [`Admitted`]).
    batch: u64,
    batch_conn: u32,
    batch_last: u32,
    /// `out.conn`, kept here: the outbox's lines are written by the threads
    /// that write to the connection, and a batch reads this for every message.
    conn: usize,
}

impl Follower {
    pub fn new(out: Arc<Outbox>, sub: Sub, last: Arc<AtomicU64>) -> Follower {
        let conn = out.conn;
        Follower { out, sub, last, pending: None, gap: None, awaiting_snapshot: false, batch: 0, batch_conn: 0, batch_last: NOT_YET, conn }
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
                let one = [(&**e, &*self.last)];
                send_group(&self.out, one.iter().copied(), &mut sent, &crate::telemetry::md_delivery());
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

    /// Applies the subscription's `on_lag` policy to a stream message:
    /// `Sent` means it is to be queued now; otherwise it was merged or
    /// noted for later, or the connection is gone.
    pub fn admit(&mut self, e: &Arc<Encoded>) -> Offered {
        self.admit_as(e, self.out.closing(), Outbox::lagging)
    }

    /// [`Follower::admit`] for a connection that is `closing` or not and
    /// that `lagging` tells is past its high-water mark.
    fn admit_as(&mut self, e: &Arc<Encoded>, closing: bool, lagging: impl FnOnce(&Outbox) -> bool) -> Offered {
        if closing {
            return Offered::Closed;
        }
        if self.awaiting_snapshot {
            if !e.snapshot {
                return Offered::Held;
            }
            self.awaiting_snapshot = false;
        }
        if self.pending.is_some() || self.gap.is_some() || lagging(&self.out) {
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

/// Generations of [`Admitted`] batches, unique in the process, so that a
/// follower's place in a batch is never taken for its place in another.
static BATCH_GENERATION: AtomicU64 = AtomicU64::new(1);

/// A follower's `last` has no place in the batch yet.
const NOT_YET: u32 = u32::MAX;

/// A connection in a batch: its outbox, whether it was closing and how
/// full its queue was when the batch first came to it, what the batch
/// admitted for it, and where its messages start once grouped.
struct Admits {
    out: Arc<Outbox>,
    enc: Encoding,
    closing: bool,
    load: Load,
    frames: usize,
    bytes: usize,
    start: usize,
}

/// One message admitted for one subscriber: places in the batch's lists.
#[derive(Clone, Copy, Default)]
struct Item {
    conn: u32,
    msg: u32,
    last: u32,
}

/// The stream messages one batch of the market-data actor admitted, queued
/// when the batch is done, connection by connection, so that each
/// connection's writer finds all of them (a book delta and its trades) at
/// once and writes them with one system call.
///
/// Each message, each connection and each subscription's heartbeat position
/// is held once per batch; a message admitted for a subscriber is three
/// numbers. What a connection has admitted counts toward its high-water
/// mark here, so a batch never overruns a queue, without a counter shared
/// with the writers being touched per message. Grouping by connection is
/// one counting pass (connections are numbered in the order they first
/// appear in the batch).
pub struct Admitted {
    msgs: Vec<Arc<Encoded>>,
    conns: Vec<Admits>,
    /// Where each subscription's last queued seq is kept (heartbeats read it).
    lasts: Vec<Arc<AtomicU64>>,
    /// In the order admitted.
    items: Vec<Item>,
    /// By connection, each connection's in the order admitted.
    grouped: Vec<Item>,
    /// By connection number (`Outbox::conn`, never reused): its place in
    /// `conns`. Looked up once per follower per batch (the follower keeps it).
    slot: FxHashMap<usize, u32>,
    generation: u64,
}

impl Default for Admitted {
    fn default() -> Self {
        Admitted {
            msgs: Vec::new(),
            conns: Vec::new(),
            lasts: Vec::new(),
            items: Vec::new(),
            grouped: Vec::new(),
            slot: FxHashMap::default(),
            generation: BATCH_GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Admitted {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Messages admitted, all subscribers counted.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The place of `f`'s connection in this batch, kept by `f` for the
    /// rest of the batch.
    fn conn(&mut self, f: &mut Follower) -> usize {
        if f.batch == self.generation {
            return f.batch_conn as usize;
        }
        let c = match self.slot.get(&f.conn) {
            Some(&c) => c,
            None => {
                let out = &f.out;
                let (closing, load) = (out.closing(), out.load());
                self.conns.push(Admits { out: out.clone(), enc: out.enc, closing, load, frames: 0, bytes: 0, start: 0 });
                let c = u32::try_from(self.conns.len() - 1).expect("connections fit in u32");
                self.slot.insert(f.conn, c);
                c
            }
        };
        f.batch = self.generation;
        f.batch_conn = c;
        f.batch_last = NOT_YET;
        c as usize
    }

    /// Applies `f`'s `on_lag` policy to `e`, counting what this batch has
    /// admitted for its connection; when it may go, adds it to the batch.
    ///
    /// A connection's state is read once a batch, when the batch first
    /// comes to it (the lines it is on are written by the threads that
    /// write to it): frames its writer sends meanwhile count as still
    /// queued, and a close meanwhile is found when the batch is sent.
    pub fn admit(&mut self, f: &mut Follower, e: &Arc<Encoded>) -> Offered {
        let c = self.conn(f);
        let a = &self.conns[c];
        let offered = f.admit_as(e, a.closing, |_| a.load.past_mark(a.frames, a.bytes));
        match offered {
            Offered::Sent => {}
            Offered::Held => return offered,
            Offered::Closed => {
                // It may have closed just now (a slow consumer, `disconnect`).
                self.conns[c].closing = true;
                return offered;
            }
        }
        let msg = match self.msgs.last() {
            Some(m) if Arc::ptr_eq(m, e) => self.msgs.len() - 1,
            _ => {
                self.msgs.push(e.clone());
                self.msgs.len() - 1
            }
        };
        if f.batch_last == NOT_YET {
            self.lasts.push(f.last.clone());
            f.batch_last = u32::try_from(self.lasts.len() - 1).expect("subscriptions fit in u32");
        }
        let a = &mut self.conns[c];
        a.frames += 1;
        a.bytes += e.frame_ref(a.enc).len();
        let place = |n: usize| u32::try_from(n).expect("a batch fits in u32");
        self.items.push(Item { conn: place(c), msg: place(msg), last: f.batch_last });
        offered
    }

    /// Puts the messages in connection order (each connection's in the
    /// order admitted) and cuts them into groups of at most `group_max`
    /// messages of one connection, in that order.
    pub fn group(&mut self, group_max: usize, groups: &mut Vec<Range<usize>>) {
        groups.clear();
        let mut at = 0;
        for a in self.conns.iter_mut() {
            a.start = at;
            at += a.frames;
            let mut g = a.start;
            while g < at {
                let end = (g + group_max.max(1)).min(at);
                groups.push(g..end);
                g = end;
            }
        }
        self.grouped.clear();
        self.grouped.resize(self.items.len(), Item::default());
        for it in &self.items {
            let a = &mut self.conns[it.conn as usize];
            self.grouped[a.start] = *it;
            a.start += 1;
        }
    }

    /// The connection of a group made by [`Admitted::group`], as its place
    /// in this batch (which tells connections apart without reading their
    /// outboxes).
    pub fn group_conn(&self, g: &Range<usize>) -> usize {
        self.grouped[g.start].conn as usize
    }

    /// The connection of a group made by [`Admitted::group`].
    pub fn group_outbox(&self, g: &Range<usize>) -> &Outbox {
        &self.conns[self.grouped[g.start].conn as usize].out
    }

    /// Sends one group made by [`Admitted::group`] (see [`send_group`]).
    pub fn send_group(&self, g: Range<usize>, sent: &mut Vec<(&'static str, u64, usize)>, delivered: &metrics::Histogram) {
        let items = &self.grouped[g];
        let Some(first) = items.first() else { return };
        let out = &self.conns[first.conn as usize].out;
        send_group(out, items.iter().map(|it| (&*self.msgs[it.msg as usize], &*self.lasts[it.last as usize])), sent, delivered);
    }

    /// Admits again, into this batch (a new one, or one holding only what
    /// was carried before), the messages of `from`'s groups `groups` (made
    /// by [`Admitted::group`], not written): each connection's in the
    /// order they were admitted, ahead of anything admitted here later. A
    /// connection's queue and closing state are read afresh.
    pub fn carry(&mut self, from: &Admitted, groups: &[Range<usize>]) {
        let mut msg_at = vec![NOT_YET; from.msgs.len()];
        let mut last_at = vec![NOT_YET; from.lasts.len()];
        let place = |n: usize| u32::try_from(n).expect("a batch fits in u32");
        for g in groups {
            for it in &from.grouped[g.clone()] {
                let a = &from.conns[it.conn as usize];
                let c = match self.slot.get(&a.out.conn) {
                    Some(&c) => c as usize,
                    None => {
                        let out = &a.out;
                        self.conns.push(Admits { out: out.clone(), enc: a.enc, closing: out.closing(), load: out.load(), frames: 0, bytes: 0, start: 0 });
                        self.slot.insert(out.conn, place(self.conns.len() - 1));
                        self.conns.len() - 1
                    }
                };
                let m = &mut msg_at[it.msg as usize];
                if *m == NOT_YET {
                    self.msgs.push(from.msgs[it.msg as usize].clone());
                    *m = place(self.msgs.len() - 1);
                }
                let l = &mut last_at[it.last as usize];
                if *l == NOT_YET {
                    self.lasts.push(from.lasts[it.last as usize].clone());
                    *l = place(self.lasts.len() - 1);
                }
                let a = &mut self.conns[c];
                a.frames += 1;
                a.bytes += from.msgs[it.msg as usize].frame_ref(a.enc).len();
                self.items.push(Item { conn: place(c), msg: *m, last: *l });
            }
        }
    }

    /// Empties the batch for the next one (its room kept).
    pub fn clear(&mut self) {
        self.slot.clear();
        self.conns.clear();
        self.msgs.clear();
        self.lasts.clear();
        self.items.clear();
        self.grouped.clear();
        self.generation = BATCH_GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

/// Messages of one connection sent by [`send_group`]: at most as many as
/// one vectored write takes.
pub const GROUP_MAX: usize = super::queue::IOV_MAX;

/// Sends one connection's messages (each with where its subscription's last
/// queued seq is kept), in order, with one write when the connection is
/// idle (see [`Queue::send`]). Each message sent is counted into `sent`
/// (channel, messages, bytes); a write made here is timed into
/// `delivered`; a full queue is a slow consumer. The frames are borrowed
/// from the messages: only what must wait in the queue takes a reference of
/// its own.
fn send_group<'a, I>(out: &Outbox, msgs: I, sent: &mut Vec<(&'static str, u64, usize)>, delivered: &metrics::Histogram)
where
    I: ExactSizeIterator<Item = (&'a Encoded, &'a AtomicU64)> + Clone,
{
    if out.closing() || msgs.len() == 0 {
        return;
    }
    let enc = out.enc;
    let made_us = msgs.clone().map(|(e, _)| e.made_us).min().unwrap_or(0);
    let (accepted, refused) = match out.queue.send(msgs.clone().map(|(e, _)| e.frame_ref(enc)), made_us) {
        Sent::Written { at_us } => {
            delivered.record(std::time::Duration::from_micros(at_us.saturating_sub(made_us)).as_secs_f64());
            (msgs.len(), None)
        }
        Sent::Queued => (msgs.len(), None),
        Sent::Refused(n, r) => (n, Some(r)),
    };
    let mut newest = None;
    for (e, last) in msgs.clone().take(accepted) {
        let f = e.frame_ref(enc);
        last.store(e.seq, Ordering::Release);
        newest = Some(e.made_us);
        match sent.iter_mut().find(|s| s.0 == e.channel) {
            Some(s) => {
                s.1 += 1;
                s.2 += f.len();
            }
            None => sent.push((e.channel, 1, f.len())),
        }
    }
    if let Some(t) = newest {
        // The message's creation time stands for "now" (the heartbeat's clock).
        out.last_sent_us.store(t, Ordering::Relaxed);
    }
    if let (Some(Refused::Full), Some((e, _))) = (refused, msgs.clone().nth(accepted)) {
        out.slow_consumer(Some(&e.key));
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
        let mut batch = Admitted::default();
        let mut held = 0;
        for i in 0..20u64 {
            match batch.admit(&mut f, &trades_update(10 + i, &[11 + i])) {
                Offered::Sent => {}
                Offered::Held => held += 1,
                Offered::Closed => panic!("closed at {i}"),
            }
        }
        assert_eq!((batch.len(), held), (6, 14), "admitted up to three quarters of 8, the rest merged");
        assert_eq!(queue.used().0, 0, "nothing queued before the batch is sent");
        let (mut sent, hist, mut groups) = (Vec::new(), metrics::histogram!("test_delivery"), Vec::new());
        batch.group(GROUP_MAX, &mut groups);
        assert_eq!(groups, vec![0..6]);
        batch.send_group(0..6, &mut sent, &hist);
        batch.clear();
        assert_eq!(f.last.load(Ordering::SeqCst), 16);
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
