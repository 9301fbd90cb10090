//! Market data and account streams, fed with committed events only, so what
//! a subscriber sees never runs ahead of what is durable.
//!
//! The actor keeps a replica of every book (the same `apply` as everywhere),
//! recent trades, candles, the 24 h ticker window, and for every stream a
//! ring of recent messages for `resume`. A snapshot is taken and the
//! subscriber registered in one step, so the first delta after it has `prev`
//! equal to the snapshot's `seq`. Each message is encoded at most once per
//! encoding and the same bytes go to every subscriber of the stream.
//!
//! Sequence numbers come from the replicated state: a book's version, an
//! instrument's trade ids, an account's stream version. Candle streams are
//! numbered from trade ids too (`2 x trade id` for an update, one less for
//! the final update of the candle the trade closed), so they continue
//! across restarts without being stored.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bourse_engine::{AccountId, Event, EventBody, InstrumentId, OrderBook, Price, Qty, Side};
use bourse_protocol::checksum::book_checksum;
use bourse_protocol::msg::{self as p, cksum_levels, Channel, Interval};
use bourse_protocol::{ErrorBody, ErrorCode};
use serde_json::{json, Value};

use crate::ledger::{LedgerActor, Query};
use crate::reply::{now_us, Deliver, Encoded};
use crate::session::outbox::GROUP_MAX;
use crate::session::{Admitted, Flushed, Follower, Offered, Outbox, Sub};
use crate::wire;
use writers::Writers;

pub mod writers;

/// Trades a `trades` snapshot carries.
pub const TRADES_SNAPSHOT_MAX: usize = 50;
/// Candles a `candles` snapshot carries.
pub const CANDLES_SNAPSHOT_MAX: usize = 100;
/// One-minute candles kept for the 24 h ticker window.
pub const TICKER_MINUTES_MAX: usize = 24 * 60;
/// Recent messages kept per stream for `resume`.
pub const RING_MAX: usize = 1024;
/// How often what lag held back (merged deltas, gaps) is retried.
pub const LAG_FLUSH_EVERY: Duration = Duration::from_millis(20);

type To = Recipient<Deliver>;

#[derive(Message)]
#[rtype(result = "Result<p::SubResult, ErrorBody>")]
pub struct Subscribe {
    pub sub: Sub,
    pub resume: Option<p::Position>,
    pub account: Option<AccountId>,
    /// The connection's queue: public streams are written straight into it.
    pub out: Arc<Outbox>,
    /// Where the last seq queued on the stream is kept for heartbeats.
    pub last: Arc<AtomicU64>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub key: String,
    /// The connection (`Outbox::conn`).
    pub conn: usize,
}

/// A connection closed: forget it everywhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Gone {
    pub conn: usize,
}

/// Events the journal committed, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    pub events: Arc<Vec<Event>>,
    pub account: Vec<(u64, u64, Value)>,
    /// When the journal released them, in microseconds since the epoch:
    /// the `ts` of the stream updates made from them, so a subscriber's
    /// delivery latency counts every step after durability.
    pub committed_us: u64,
}

/// Subscribers of one stream and its recent messages.
#[derive(Default)]
struct Stream {
    subs: Vec<Follower>,
    ring: VecDeque<Arc<Encoded>>,
    /// Seq of the last message sent (or the state a snapshot would show).
    last_seq: u64,
    /// Some subscriber holds messages back (it lags): flush them later.
    held: bool,
}

impl Stream {
    /// Registers a subscriber, first queueing `first` (its snapshot or the
    /// events it resumes from) to it.
    fn join(&mut self, mut f: Follower, first: &[Arc<Encoded>]) {
        for e in first {
            f.offer(e);
        }
        self.held |= f.holds();
        let conn = f.out.conn;
        self.subs.retain(|s| s.out.conn != conn);
        self.subs.push(f);
    }

    fn leave(&mut self, conn: usize) {
        self.subs.retain(|s| s.out.conn != conn);
    }

    /// Admits a message for every subscriber (each by its `on_lag`
    /// policy), adding what is to be queued to `due`, and keeps it for `resume`.
    fn send(&mut self, e: Encoded, due: &mut Admitted) {
        let e = Arc::new(e);
        self.last_seq = e.seq;
        let mut closed = false;
        for s in self.subs.iter_mut() {
            match due.admit(s, &e) {
                Offered::Sent => {}
                Offered::Held => self.held = true,
                Offered::Closed => closed = true,
            }
        }
        if closed {
            self.subs.retain(|s| !s.out.closing());
        }
        if self.ring.len() == RING_MAX {
            self.ring.pop_front();
        }
        self.ring.push_back(e);
    }

    /// Sends what lag held back to subscribers that caught up; returns the
    /// connections that were sent a `gap` and now need a fresh snapshot.
    fn flush(&mut self) -> Vec<usize> {
        let mut need = Vec::new();
        for s in self.subs.iter_mut().filter(|s| s.holds()) {
            if s.flush() == Flushed::NeedSnapshot {
                need.push(s.out.conn);
            }
        }
        self.subs.retain(|s| !s.out.closing());
        self.held = self.subs.iter().any(Follower::holds);
        need
    }

    /// The messages after `pos`, if the ring still has them all.
    fn since(&self, pos: p::Position, epoch: u64) -> Option<Vec<Arc<Encoded>>> {
        if pos.epoch != epoch {
            return None;
        }
        if pos.seq == self.last_seq {
            return Some(Vec::new());
        }
        let i = self.ring.iter().position(|e| e.prev() == Some(pos.seq))?;
        Some(self.ring.iter().skip(i).cloned().collect())
    }
}

/// A `book.l2` stream at one depth: its stream plus the levels last sent.
struct BookGroup {
    depth: u32,
    cksum: bool,
    stream: Stream,
    bids: Vec<(Price, Qty)>,
    asks: Vec<(Price, Qty)>,
}

#[derive(Clone, Copy, Debug)]
struct Candle {
    start: u64,
    o: Price,
    h: Price,
    l: Price,
    c: Price,
    v: u64,
    n: u64,
    /// The trade id of the candle's last update.
    last_trade: u64,
}

struct AccountSub {
    to: To,
    conn: usize,
    /// Messages up to this seq are in the snapshot; `None` while it is taken.
    from: Option<u64>,
    pending: Vec<Arc<Encoded>>,
    /// A snapshot of state not yet durable, held until the journal has
    /// committed everything it shows.
    held: Option<Arc<Encoded>>,
}

#[derive(Default)]
struct AccountStream {
    subs: Vec<AccountSub>,
    ring: VecDeque<Arc<Encoded>>,
    /// The account's stream version as far as it is durable.
    committed: u64,
}

struct Instrument {
    book: OrderBook,
    trades: VecDeque<Value>,
    /// Per interval: closed candles (oldest first) and the open one.
    candles: BTreeMap<Interval, (VecDeque<Candle>, Option<Candle>)>,
}

pub struct MarketData {
    pub ledger: Addr<LedgerActor>,
    insts: BTreeMap<InstrumentId, Instrument>,
    by_sym: HashMap<String, InstrumentId>,
    groups: HashMap<String, BookGroup>,
    streams: HashMap<String, Stream>,
    accounts: HashMap<AccountId, AccountStream>,
    status_seq: u64,
    instruments_view: Vec<Value>,
    /// The epoch of every stream: a restore from backup starts a new one.
    pub epoch: u64,
    /// Messages admitted for subscribers and not yet sent: sent connection
    /// by connection once the commits waiting in the mailbox are handled
    /// (see `schedule_send`), and before anything is sent another way. A
    /// batch stopped for a waiting commit leaves here what it did not write.
    due: Admitted,
    flush_scheduled: bool,
    /// The commit being handled: when the journal released it.
    committed_us: u64,
    /// The threads that write a batch (see [`writers`]).
    writers: Writers,
    /// Commits published to this actor and not yet handled (the node's
    /// publisher counts one up before it sends, the handler one down): a
    /// batch being written stops for them. One per node, so that in a
    /// process running several nodes one node's commit does not stop
    /// another's batch; exported as this node's market mailbox depth.
    waiting: Arc<AtomicUsize>,
}

/// Sends the admitted messages (sent to itself, so it runs after the
/// commits already waiting in the mailbox).
#[derive(Message)]
#[rtype(result = "()")]
struct SendDue;

impl Handler<SendDue> for MarketData {
    type Result = ();

    fn handle(&mut self, _: SendDue, ctx: &mut Context<Self>) {
        // A commit that arrives meanwhile stops the batch: it is handled,
        // and its messages join those not yet written.
        let waiting = Arc::clone(&self.waiting);
        self.write_due(&|| waiting.load(Ordering::Relaxed) > 0);
        self.schedule_send(ctx);
    }
}

fn cksum(bids: &[(String, String)], asks: &[(String, String)], depth: u32) -> u32 {
    book_checksum(bids, asks, cksum_levels(depth))
}

/// Levels whose quantity changed between `old` and `new`, with `None` for a
/// level that left; best first.
fn diff(old: &[(Price, Qty)], new: &[(Price, Qty)], side: Side) -> Vec<(Price, Option<Qty>)> {
    let o: BTreeMap<Price, Qty> = old.iter().copied().collect();
    let n: BTreeMap<Price, Qty> = new.iter().copied().collect();
    let mut out: Vec<(Price, Option<Qty>)> = Vec::new();
    for (p, q) in &n {
        if o.get(p) != Some(q) {
            out.push((*p, Some(*q)));
        }
    }
    for p in o.keys() {
        if !n.contains_key(p) {
            out.push((*p, None));
        }
    }
    out.sort_by_key(|(p, _)| *p);
    if side == Side::Buy {
        out.reverse();
    }
    out
}

impl MarketData {
    /// Batches are written by `threads` threads, this actor's included
    /// (`limits.fanout_threads`, see [`writers::fanout_threads`]).
    pub fn set_fanout_threads(&mut self, threads: usize) {
        self.writers = Writers::start(threads);
    }

    /// `account_seqs`: every account's stream version in the recovered (durable) state.
    pub fn new(
        ledger: Addr<LedgerActor>,
        books: Vec<OrderBook>,
        instruments_view: Vec<Value>,
        status_seq: u64,
        account_seqs: Vec<(AccountId, u64)>,
        waiting: Arc<AtomicUsize>,
    ) -> Self {
        let mut md = MarketData {
            ledger,
            insts: BTreeMap::new(),
            by_sym: HashMap::new(),
            groups: HashMap::new(),
            streams: HashMap::new(),
            accounts: HashMap::new(),
            status_seq,
            instruments_view,
            epoch: 1,
            due: Admitted::default(),
            flush_scheduled: false,
            committed_us: 0,
            writers: Writers::start(1),
            waiting,
        };
        for b in books {
            md.add_instrument(b);
        }
        for (a, seq) in account_seqs {
            md.accounts.entry(a).or_default().committed = seq;
        }
        md
    }

    fn add_instrument(&mut self, book: OrderBook) {
        book_size(&book);
        self.by_sym.insert(book.spec.sym.clone(), book.spec.id);
        let candles = Interval::ALL.into_iter().map(|i| (i, (VecDeque::new(), None))).collect();
        self.insts.insert(book.spec.id, Instrument { book, trades: VecDeque::new(), candles });
    }

    /// Fills the accounts' rings with their private-stream messages
    /// `(account, seq, message)` from before a restart, each account's in
    /// order, so that `subscribe` with `resume` replays them.
    pub fn warm_accounts(&mut self, messages: Vec<(u64, u64, Value)>) {
        for (account, seq, msg) in messages {
            let a = self.accounts.entry(AccountId(account)).or_default();
            push_ring(&mut a.ring, Arc::new(Encoded::owned("account".into(), seq, msg)), RING_MAX);
        }
    }

    /// Rebuilds recent trades, candles and the ticker window from events the
    /// books already contain (recovery), without sending anything. The
    /// trades also go to each instrument's `trades` ring, one message a
    /// trade chained by trade id, so that a subscriber resumes that stream
    /// across the restart without losing a trade (call after setting
    /// `epoch`).
    pub fn warm(&mut self, events: &[Event]) {
        let epoch = self.epoch;
        for e in events {
            if let EventBody::Traded(t) = &e.body {
                if let Some(i) = self.insts.get_mut(&t.inst) {
                    let v = trade_json(&i.book, t, e.ts);
                    push_ring(&mut i.trades, v.clone(), TRADES_SNAPSHOT_MAX);
                    for interval in Interval::ALL {
                        roll_candle(i, interval, t.trade_id, t.px, t.qty, e.ts);
                    }
                    let key = format!("trades:{}", i.book.spec.sym);
                    let msg = json!({"ch": "trades", "sym": i.book.spec.sym, "type": "update", "epoch": epoch, "prev": t.trade_id - 1,
                                     "seq": t.trade_id, "ts": e.ts, "data": [v]});
                    self.streams.entry(key.clone()).or_default().send(Encoded::owned(key, t.trade_id, msg), &mut self.due);
                }
            }
        }
    }

    fn levels_json(book: &OrderBook, lv: &[(Price, Qty)]) -> Vec<(String, String)> {
        lv.iter().map(|(p, q)| (wire::fmt_px(&book.spec, *p), wire::fmt_qty(&book.spec, *q))).collect()
    }

    fn l2_snapshot(g: &BookGroup, book: &OrderBook, epoch: u64) -> Value {
        let bids = Self::levels_json(book, &g.bids);
        let asks = Self::levels_json(book, &g.asks);
        let mut v = json!({"ch": "book.l2", "sym": book.spec.sym, "type": "snapshot", "epoch": epoch, "seq": g.stream.last_seq,
                           "ts": now_us(), "depth": g.depth, "bids": bids, "asks": asks});
        if g.cksum {
            v["cksum"] = json!(cksum(&bids, &asks, g.depth));
        }
        v
    }

    fn l1(book: &OrderBook, epoch: u64, ts: u64) -> Value {
        let side = |b: Option<(Price, Qty)>| b.map(|(p, q)| json!([wire::fmt_px(&book.spec, p), wire::fmt_qty(&book.spec, q)]));
        json!({"ch": "book.l1", "sym": book.spec.sym, "type": "update", "epoch": epoch, "seq": book.version, "ts": ts,
               "data": {"bid": side(book.best_bid()), "ask": side(book.best_ask())}})
    }

    fn ticker(i: &Instrument, now: u64, epoch: u64) -> Value {
        let book = &i.book;
        let spec = &book.spec;
        let fmt = |p: Price| wire::fmt_px(spec, p);
        let from = now.saturating_sub(Interval::D1.micros());
        let (hist, open) = &i.candles[&Interval::M1];
        let window: Vec<&Candle> = hist.iter().chain(open.iter()).filter(|c| c.start + Interval::M1.micros() > from).collect();
        let open_24h = window.first().map(|c| fmt(c.o));
        let high = window.iter().map(|c| c.h).max().map(fmt);
        let low = window.iter().map(|c| c.l).min().map(fmt);
        let vol: u64 = window.iter().map(|c| c.v).sum();
        json!({"ch": "ticker", "sym": spec.sym, "type": "update", "epoch": epoch, "seq": book.version, "ts": now,
               "data": {"last": book.last_px.map(fmt), "bid": book.best_bid().map(|b| fmt(b.0)), "ask": book.best_ask().map(|a| fmt(a.0)),
                        "open_24h": open_24h, "high_24h": high, "low_24h": low, "volume_24h": wire::fmt_qty(spec, Qty(vol))}})
    }

    fn candle_json(book: &OrderBook, c: &Candle, closed: bool) -> Value {
        let s = &book.spec;
        json!({"start": c.start, "o": wire::fmt_px(s, c.o), "h": wire::fmt_px(s, c.h), "l": wire::fmt_px(s, c.l),
               "c": wire::fmt_px(s, c.c), "v": wire::fmt_qty(s, Qty(c.v)), "n": c.n, "closed": closed})
    }

    fn candles_snapshot(i: &Instrument, interval: Interval, epoch: u64) -> (u64, Value) {
        let (hist, open) = &i.candles[&interval];
        let mut data: Vec<Value> = hist.iter().rev().take(CANDLES_SNAPSHOT_MAX).rev().map(|c| Self::candle_json(&i.book, c, true)).collect();
        if let Some(c) = open {
            data.push(Self::candle_json(&i.book, c, false));
            if data.len() > CANDLES_SNAPSHOT_MAX {
                data.remove(0);
            }
        }
        let seq = candle_seq(i, interval);
        (seq, json!({"ch": "candles", "sym": i.book.spec.sym, "interval": interval.as_str(), "type": "snapshot", "epoch": epoch,
                     "seq": seq, "ts": now_us(), "data": data}))
    }

    fn trades_snapshot(i: &Instrument, epoch: u64) -> Value {
        json!({"ch": "trades", "sym": i.book.spec.sym, "type": "snapshot", "epoch": epoch, "seq": i.book.trade_id, "ts": now_us(),
               "data": i.trades})
    }

    fn status_snapshot(&self) -> Value {
        let epoch = self.epoch;
        json!({"ch": "status", "type": "snapshot", "epoch": epoch, "seq": self.status_seq, "ts": now_us(),
               "data": {"instruments": self.instruments_view}})
    }

    /// Brings every `book.l2` stream of `inst` up to date, sending its delta.
    fn refresh_books(&mut self, inst: InstrumentId) {
        let epoch = self.epoch;
        let ts = self.committed_us;
        let book = &self.insts[&inst].book;
        let prefix = format!("book.l2:{}:", book.spec.sym);
        for (key, g) in self.groups.iter_mut().filter(|(k, _)| k.starts_with(&prefix)) {
            let depth = g.depth as usize;
            let bids = book.levels(Side::Buy, depth);
            let asks = book.levels(Side::Sell, depth);
            let db = diff(&g.bids, &bids, Side::Buy);
            let da = diff(&g.asks, &asks, Side::Sell);
            if db.is_empty() && da.is_empty() {
                continue;
            }
            let fmt = |v: &[(Price, Option<Qty>)]| -> Vec<(String, String)> {
                v.iter().map(|(p, q)| (wire::fmt_px(&book.spec, *p), wire::fmt_qty(&book.spec, q.unwrap_or(Qty(0))))).collect()
            };
            let mut v = json!({"ch": "book.l2", "sym": book.spec.sym, "type": "delta", "epoch": epoch, "prev": g.stream.last_seq,
                               "seq": book.version, "ts": ts, "depth": g.depth, "bids": fmt(&db), "asks": fmt(&da)});
            if g.cksum {
                v["cksum"] = json!(cksum(&Self::levels_json(book, &bids), &Self::levels_json(book, &asks), g.depth));
            }
            g.bids = bids;
            g.asks = asks;
            g.stream.send(Encoded::owned(stream_key(key), book.version, v), &mut self.due);
        }
    }

    /// Sends what the batch admitted, connection by connection (in order
    /// within each): an idle connection gets all of it in one write made
    /// here, a busy one has it queued for its writer, woken once.
    fn send_due(&mut self) {
        self.write_due(&|| false);
    }

    /// [`MarketData::send_due`], stopping early when `yield_now` says so:
    /// what was not written stays admitted, ahead of what comes next.
    fn write_due(&mut self, yield_now: &dyn Fn() -> bool) {
        self.flush_scheduled = false;
        if self.due.is_empty() {
            // Connections looked at and admitted nothing (all held back).
            self.due.clear();
            return;
        }
        let started = std::time::Instant::now();
        // Counted once per channel, not once per subscriber.
        let sent = self.writers.write_or_yield(&mut self.due, GROUP_MAX, yield_now);
        crate::telemetry::observe_stage(crate::telemetry::STAGE_FANOUT, started.elapsed());
        for (ch, n, bytes) in sent {
            crate::telemetry::ws_out_many(ch, n, bytes);
        }
    }

    /// Sends the batch once the mailbox is drained: every commit waiting
    /// behind this one joins the same writes.
    fn schedule_send(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled && !self.due.is_empty() {
            self.flush_scheduled = true;
            ctx.notify(SendDue);
        }
    }

    fn stream(&mut self, key: &str) -> &mut Stream {
        self.streams.entry(key.to_string()).or_default()
    }

    fn publish(&mut self, key: &str, seq: u64, v: Value) {
        match self.streams.get_mut(key) {
            Some(s) => s.send(Encoded::owned(key.to_string(), seq, v), &mut self.due),
            None => {
                // Nobody listens yet: keep the position so a first snapshot chains.
                self.stream(key).last_seq = seq;
            }
        }
    }
}

/// A group key names its stream (`book.l2:SYM:DEPTH`) plus whether it carries checksums.
fn stream_key(group_key: &str) -> String {
    group_key.strip_suffix(":nock").unwrap_or(group_key).to_string()
}

fn push_ring<T>(ring: &mut VecDeque<T>, v: T, max: usize) {
    if ring.len() == max {
        ring.pop_front();
    }
    ring.push_back(v);
}

fn trade_json(book: &OrderBook, t: &bourse_engine::Trade, ts: u64) -> Value {
    json!({"id": t.trade_id, "px": wire::fmt_px(&book.spec, t.px), "qty": wire::fmt_qty(&book.spec, t.qty),
           "taker": wire::side_out(t.taker_side), "ts": ts})
}

/// The candle stream's version: from the trade id of its last update.
fn candle_seq(i: &Instrument, interval: Interval) -> u64 {
    let (hist, open) = &i.candles[&interval];
    match (open, hist.back()) {
        (Some(c), _) => 2 * c.last_trade,
        (None, Some(c)) => 2 * c.last_trade + 1,
        (None, None) => 0,
    }
}

/// Adds a trade to an interval's candles; returns the candle it closed, if any.
fn roll_candle(i: &mut Instrument, interval: Interval, trade_id: u64, px: Price, qty: Qty, ts: u64) -> Option<Candle> {
    let start = interval.start_of(ts);
    let history_max = if interval == Interval::M1 { TICKER_MINUTES_MAX } else { CANDLES_SNAPSHOT_MAX };
    let (hist, open) = i.candles.get_mut(&interval).expect("every interval");
    let mut closed = None;
    if let Some(c) = open {
        if c.start < start {
            closed = open.take();
            push_ring(hist, closed.expect("taken"), history_max);
        }
    }
    match open {
        Some(c) => {
            c.h = c.h.max(px);
            c.l = c.l.min(px);
            c.c = px;
            c.v += qty.0;
            c.n += 1;
            c.last_trade = trade_id;
        }
        None => *open = Some(Candle { start, o: px, h: px, l: px, c: px, v: qty.0, n: 1, last_trade: trade_id }),
    }
    closed
}

impl Actor for MarketData {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        crate::failstop::mark_critical();
        ctx.run_interval(LAG_FLUSH_EVERY, |act, _ctx| act.flush_held());
    }
}

impl Handler<Committed> for MarketData {
    type Result = ();

    fn handle(&mut self, m: Committed, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        self.committed_us = m.committed_us;
        if m.committed_us != 0 {
            crate::telemetry::observe_stage(
                crate::telemetry::STAGE_MD_WAIT,
                std::time::Duration::from_micros(now_us().saturating_sub(m.committed_us)),
            );
        }
        // A commit sent without being counted (none is, outside tests) leaves the count at 0.
        let _ = self.waiting.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let _publish = crate::telemetry::market_committed();
        let mut touched: Vec<InstrumentId> = Vec::new();
        let mut trades: BTreeMap<InstrumentId, Vec<Value>> = BTreeMap::new();
        let mut status_changed = 0u64;
        for e in m.events.iter() {
            match &e.body {
                EventBody::InstrumentCreated { spec, .. } => {
                    self.add_instrument(OrderBook::new((**spec).clone()));
                    status_changed += 1;
                }
                EventBody::InstrumentStateSet { inst, .. } => {
                    if let Some(i) = self.insts.get_mut(inst) {
                        i.book.apply(&e.body);
                    }
                    status_changed += 1;
                }
                body => {
                    let Some(inst) = body.book() else { continue };
                    let i = self.insts.get_mut(&inst).expect("book exists");
                    i.book.apply(body);
                    if let EventBody::Traded(t) = body {
                        let v = trade_json(&i.book, t, e.ts);
                        trades.entry(inst).or_default().push(v.clone());
                        push_ring(&mut i.trades, v, TRADES_SNAPSHOT_MAX);
                        for interval in Interval::ALL {
                            let key = format!("candles:{}:{}", i.book.spec.sym, interval.as_str());
                            let prev = candle_seq(i, interval);
                            let closed = roll_candle(i, interval, t.trade_id, t.px, t.qty, e.ts);
                            let mut msgs = Vec::new();
                            if let Some(c) = closed {
                                let seq = 2 * t.trade_id - 1;
                                msgs.push((seq, json!({"ch": "candles", "sym": i.book.spec.sym, "interval": interval.as_str(), "type": "update",
                                    "epoch": epoch, "prev": prev, "seq": seq, "ts": e.ts, "data": Self::candle_json(&i.book, &c, true)})));
                            }
                            let open = i.candles[&interval].1.expect("a trade opens a candle");
                            let last = msgs.last().map_or(prev, |(s, _)| *s);
                            msgs.push((2 * t.trade_id, json!({"ch": "candles", "sym": i.book.spec.sym, "interval": interval.as_str(), "type": "update",
                                "epoch": epoch, "prev": last, "seq": 2 * t.trade_id, "ts": e.ts, "data": Self::candle_json(&i.book, &open, false)})));
                            if let Some(s) = self.streams.get_mut(&key) {
                                for (seq, v) in msgs {
                                    s.send(Encoded::owned(key.clone(), seq, v), &mut self.due);
                                }
                            }
                        }
                    }
                    if !touched.contains(&inst) {
                        touched.push(inst);
                    }
                }
            }
        }
        for inst in touched {
            self.refresh_books(inst);
            let i = &self.insts[&inst];
            let sym = i.book.spec.sym.clone();
            let version = i.book.version;
            crate::telemetry::md_seq(&sym, version);
            book_size(&i.book);
            let l1_key = format!("book.l1:{sym}");
            let l1 = self.streams.contains_key(&l1_key).then(|| Self::l1(&i.book, epoch, m.committed_us));
            let t_key = format!("ticker:{sym}");
            let ticker = self.streams.contains_key(&t_key).then(|| Self::ticker(i, m.committed_us, epoch));
            if let Some(v) = l1 {
                self.publish(&l1_key, version, v);
            }
            if let Some(v) = ticker {
                self.publish(&t_key, version, v);
            }
        }
        for (inst, list) in trades {
            let book = &self.insts[&inst].book;
            let first = list[0]["id"].as_u64().unwrap_or(1);
            let last = book.trade_id;
            let key = format!("trades:{}", book.spec.sym);
            let v = json!({"ch": "trades", "sym": book.spec.sym, "type": "update", "epoch": epoch, "prev": first - 1, "seq": last, "ts": m.committed_us, "data": list});
            if let Some(s) = self.streams.get_mut(&key) {
                s.send(Encoded::owned(key.clone(), last, v), &mut self.due);
            }
        }
        if status_changed > 0 {
            // The status view comes from the ledger's specs, which have these events.
            let fut = self.ledger.send(Query::Instruments);
            ctx.spawn(fut.into_actor(self).map(move |r, act, _ctx| {
                if let Ok(Ok(v)) = r {
                    act.status_seq += status_changed;
                    act.instruments_view = v["instruments"].as_array().cloned().unwrap_or_default();
                    let view = json!({"ch": "status", "type": "update", "epoch": epoch, "prev": act.status_seq - status_changed, "seq": act.status_seq,
                                      "ts": now_us(), "data": {"instruments": act.instruments_view}});
                    let seq = act.status_seq;
                    act.streams.entry("status".into()).or_default().send(Encoded::owned("status".into(), seq, view), &mut act.due);
                    act.send_due();
                }
            }));
        }
        self.schedule_send(ctx);
        for (account, seq, msg) in m.account {
            let a = self.accounts.entry(AccountId(account)).or_default();
            a.committed = a.committed.max(seq);
            let e = Arc::new(Encoded::owned("account".into(), seq, msg));
            push_ring(&mut a.ring, e.clone(), RING_MAX);
            for s in a.subs.iter_mut() {
                match (s.from, s.held.is_some()) {
                    (Some(from), true) if seq >= from => {
                        let snap = s.held.take().expect("held");
                        s.to.do_send(Deliver::Stream(snap));
                        for p in s.pending.drain(..).filter(|p| p.seq > from) {
                            s.to.do_send(Deliver::Stream(p));
                        }
                        if seq > from {
                            s.to.do_send(Deliver::Stream(e.clone()));
                        }
                    }
                    (Some(_), true) => s.pending.push(e.clone()),
                    (Some(from), false) if seq > from => s.to.do_send(Deliver::Stream(e.clone())),
                    (Some(_), false) => {}
                    (None, _) => s.pending.push(e.clone()),
                }
            }
        }
    }
}

fn resumed(key: String, from: &[Arc<Encoded>]) -> p::SubResult {
    p::SubResult { sub: key, mode: p::SubMode::Resumed, from_seq: from.first().map(|e| e.seq), reason: None }
}

/// The key of the `book.l2` group a subscription belongs to (with or without checksums).
fn group_key(sub: &Sub) -> String {
    if sub.cksum {
        sub.key.clone()
    } else {
        format!("{}:nock", sub.key)
    }
}

impl MarketData {
    /// A stream's snapshot as of now, with its seq.
    fn snapshot_for(&self, sub: &Sub) -> Option<(u64, Value)> {
        let epoch = self.epoch;
        let inst = sub.sym.as_ref().and_then(|s| self.by_sym.get(s)).map(|i| &self.insts[i]);
        match (sub.ch, inst) {
            (Channel::BookL2, Some(i)) => {
                let g = self.groups.get(&group_key(sub))?;
                Some((g.stream.last_seq, Self::l2_snapshot(g, &i.book, epoch)))
            }
            (Channel::Trades, Some(i)) => Some((i.book.trade_id, Self::trades_snapshot(i, epoch))),
            (Channel::Candles, Some(i)) => Some(Self::candles_snapshot(i, sub.interval.unwrap_or(Interval::M1), epoch)),
            (Channel::BookL1, Some(i)) => Some((i.book.version, Self::l1(&i.book, epoch, now_us()))),
            (Channel::Ticker, Some(i)) => Some((i.book.version, Self::ticker(i, now_us(), epoch))),
            (Channel::Status, _) => Some((self.status_seq, self.status_snapshot())),
            _ => None,
        }
    }

    /// Sends what lag held back; a subscriber sent a `gap` gets a fresh snapshot.
    fn flush_held(&mut self) {
        // What is admitted goes first: the held messages come after it.
        self.send_due();
        let mut need: Vec<(String, bool, usize)> = Vec::new();
        for (k, g) in self.groups.iter_mut().filter(|(_, g)| g.stream.held) {
            need.extend(g.stream.flush().into_iter().map(|c| (k.clone(), true, c)));
        }
        for (k, st) in self.streams.iter_mut().filter(|(_, st)| st.held) {
            need.extend(st.flush().into_iter().map(|c| (k.clone(), false, c)));
        }
        for (k, group, conn) in need {
            let stream = if group { self.groups.get(&k).map(|g| &g.stream) } else { self.streams.get(&k) };
            let Some(sub) = stream.and_then(|st| st.subs.iter().find(|f| f.out.conn == conn)).map(|f| f.sub.clone()) else { continue };
            let Some((seq, v)) = self.snapshot_for(&sub) else { continue };
            let e = Arc::new(Encoded::owned(sub.key.clone(), seq, v));
            let stream = if group { self.groups.get_mut(&k).map(|g| &mut g.stream) } else { self.streams.get_mut(&k) };
            if let Some(st) = stream {
                if let Some(f) = st.subs.iter_mut().find(|f| f.out.conn == conn) {
                    f.offer(&e);
                    st.held |= f.holds();
                }
            }
        }
    }
}

impl Handler<Subscribe> for MarketData {
    type Result = ResponseActFuture<Self, Result<p::SubResult, ErrorBody>>;

    fn handle(&mut self, m: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        // A snapshot sent now must not pass what is admitted already.
        self.send_due();
        let epoch = self.epoch;
        let key = m.sub.key.clone();
        let snapshot = |k: String| p::SubResult {
            sub: k,
            mode: p::SubMode::Snapshot,
            from_seq: None,
            reason: m.resume.map(|_| p::REASON_RESUME_UNAVAILABLE.to_string()),
        };
        let inst = m.sub.sym.as_ref().and_then(|s| self.by_sym.get(s).copied());
        let follower = Follower::new(m.out.clone(), m.sub.clone(), m.last.clone());
        let res: Result<p::SubResult, ErrorBody> = match (m.sub.ch, inst) {
            (Channel::BookL2, Some(inst)) => {
                let book = &self.insts[&inst].book;
                let depth = m.sub.depth as usize;
                let g = self.groups.entry(group_key(&m.sub)).or_insert_with(|| BookGroup {
                    depth: m.sub.depth,
                    cksum: m.sub.cksum,
                    stream: Stream { last_seq: book.version, ..Default::default() },
                    bids: book.levels(Side::Buy, depth),
                    asks: book.levels(Side::Sell, depth),
                });
                if let Some(from) = m.resume.and_then(|pos| g.stream.since(pos, epoch)) {
                    g.stream.join(follower, &from);
                    Ok(resumed(key, &from))
                } else {
                    let v = Self::l2_snapshot(g, book, epoch);
                    let e = Arc::new(Encoded::owned(key.clone(), g.stream.last_seq, v));
                    g.stream.join(follower, &[e]);
                    Ok(snapshot(key))
                }
            }
            (Channel::Trades | Channel::Candles | Channel::BookL1 | Channel::Ticker | Channel::Status, _) => {
                let Some((seq, v)) = self.snapshot_for(&m.sub) else {
                    return Box::pin(fut::ready(Err(ErrorBody::new(ErrorCode::UnknownInstrument, "unknown instrument"))));
                };
                // book.l1 and ticker are latest-wins: no chain to resume.
                let chained = !matches!(m.sub.ch, Channel::BookL1 | Channel::Ticker);
                let s = self.streams.entry(key.clone()).or_default();
                if s.ring.is_empty() || m.sub.ch == Channel::Status {
                    s.last_seq = seq;
                }
                match m.resume.filter(|_| chained).and_then(|pos| s.since(pos, epoch)) {
                    Some(from) => {
                        s.join(follower, &from);
                        Ok(resumed(key, &from))
                    }
                    None => {
                        s.join(follower, &[Arc::new(Encoded::owned(key.clone(), seq, v))]);
                        Ok(snapshot(key))
                    }
                }
            }
            (Channel::Account, _) => {
                let Some(account) = m.account else {
                    return Box::pin(fut::ready(Err(ErrorBody::new(ErrorCode::AuthRequired, "log in first"))));
                };
                let a = self.accounts.entry(account).or_default();
                let (to, conn) = (m.out.session().clone(), m.out.conn);
                a.subs.retain(|s| s.conn != conn);
                // Resume from the ring when it holds everything after the client's seq.
                // The ring ends at the committed version (after a restart it
                // holds what replay met), so a client at that version resumes
                // with nothing to replay, even when the ring is empty.
                if let Some(pos) = m.resume.filter(|p| p.epoch == epoch) {
                    let last = a.committed;
                    let first = a.ring.front().map_or(last + 1, |e| e.seq);
                    if pos.seq + 1 >= first && pos.seq <= last {
                        let from: Vec<Arc<Encoded>> = a.ring.iter().filter(|e| e.seq > pos.seq).cloned().collect();
                        for e in &from {
                            to.do_send(Deliver::Stream(e.clone()));
                        }
                        a.subs.push(AccountSub { to, conn, from: Some(last), pending: Vec::new(), held: None });
                        return Box::pin(fut::ready(Ok(resumed(key, &from))));
                    }
                }
                a.subs.push(AccountSub { to: to.clone(), conn, from: None, pending: Vec::new(), held: None });
                let fut = self.ledger.send(Query::AccountSnapshot(account));
                let res = snapshot(key);
                return Box::pin(fut.into_actor(self).map(move |r, act, _ctx| {
                    let v = match r {
                        Ok(Ok(v)) => v,
                        _ => return Err(ErrorBody::new(ErrorCode::Internal, "ledger unavailable")),
                    };
                    let seq = v["seq"].as_u64().unwrap_or(0);
                    let snap = json!({"ch": "account", "type": "snapshot", "epoch": epoch, "seq": seq, "ts": now_us(),
                                      "data": {"balances": v["balances"], "orders": v["orders"]}});
                    let snap = Arc::new(Encoded::owned("account".into(), seq, snap));
                    let Some(a) = act.accounts.get_mut(&account) else { return Ok(res) };
                    let committed = a.committed;
                    if let Some(s) = a.subs.iter_mut().find(|s| s.conn == conn) {
                        s.from = Some(seq);
                        if committed >= seq {
                            to.do_send(Deliver::Stream(snap));
                            for e in s.pending.drain(..) {
                                if e.seq > seq {
                                    to.do_send(Deliver::Stream(e));
                                }
                            }
                        } else {
                            // The ledger runs ahead of durability: the snapshot waits
                            // for the journal to commit what it shows.
                            s.pending.retain(|e| e.seq > seq);
                            s.held = Some(snap);
                        }
                    }
                    Ok(res)
                }));
            }
            (_, None) => Err(ErrorBody::new(ErrorCode::UnknownInstrument, "unknown instrument")),
        };
        Box::pin(fut::ready(res))
    }
}

impl Handler<Unsubscribe> for MarketData {
    type Result = ();

    fn handle(&mut self, m: Unsubscribe, _ctx: &mut Context<Self>) {
        // Nothing admitted before the unsubscribe arrives after its answer.
        self.send_due();
        for (k, g) in self.groups.iter_mut() {
            if stream_key(k) == m.key {
                g.stream.leave(m.conn);
            }
        }
        if let Some(s) = self.streams.get_mut(&m.key) {
            s.leave(m.conn);
        }
        if m.key == crate::session::ACCOUNT_STREAM {
            for a in self.accounts.values_mut() {
                a.subs.retain(|s| s.conn != m.conn);
            }
        }
    }
}

impl Handler<Gone> for MarketData {
    type Result = ();

    fn handle(&mut self, m: Gone, _ctx: &mut Context<Self>) {
        for g in self.groups.values_mut() {
            g.stream.leave(m.conn);
        }
        for s in self.streams.values_mut() {
            s.leave(m.conn);
        }
        for a in self.accounts.values_mut() {
            a.subs.retain(|s| s.conn != m.conn);
        }
    }
}

/// Exports the size of `book` (`bourse_book_orders`, `bourse_book_levels`).
fn book_size(book: &OrderBook) {
    use bourse_engine::Side;
    crate::telemetry::book_size(&book.spec.sym, book.order_count(), book.level_count(Side::Buy), book.level_count(Side::Sell));
}
