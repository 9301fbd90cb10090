//! Market data and account streams, fed with committed events only, so what
//! a subscriber sees never runs ahead of what is durable.
//!
//! The actor keeps a replica of every book (the same `apply` as everywhere),
//! the recent trades, and the subscribers of each stream. A snapshot is taken
//! and the subscriber registered in one step, so the first delta after it
//! has `prev` equal to the snapshot's `seq`. Each message is encoded once per
//! encoding and the same bytes go to every subscriber of the stream.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use bourse_engine::{AccountId, Event, EventBody, InstrumentId, OrderBook, Price, Qty, Side};
use bourse_protocol::checksum::book_checksum;
use bourse_protocol::msg::{self as p, Channel};
use bourse_protocol::{ErrorBody, ErrorCode};
use serde_json::{json, Value};

use crate::ledger::{LedgerActor, Query};
use crate::reply::{now_us, Deliver, Encoded};
use crate::session::Sub;
use crate::wire;

/// Trades a `trades` snapshot carries.
pub const TRADES_SNAPSHOT_MAX: usize = 50;
/// Levels per side covered by `cksum`.
pub const CKSUM_LEVELS_MAX: usize = 25;
/// The epoch of every stream until a restore starts a new one.
pub const EPOCH: u64 = 1;

type To = Recipient<Deliver>;

#[derive(Message)]
#[rtype(result = "Result<p::SubResult, ErrorBody>")]
pub struct Subscribe {
    pub sub: Sub,
    pub resume: Option<p::Position>,
    pub account: Option<AccountId>,
    pub enc: bourse_protocol::Encoding,
    pub to: To,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub key: String,
    pub to: To,
}

/// A connection closed: forget it everywhere.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Gone {
    pub to: To,
}

/// Events the journal committed, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed {
    pub events: Arc<Vec<Event>>,
    pub account: Vec<(u64, u64, Value)>,
}

struct BookGroup {
    depth: u32,
    cksum: bool,
    subs: Vec<To>,
    bids: Vec<(Price, Qty)>,
    asks: Vec<(Price, Qty)>,
    last_seq: u64,
}

struct AccountSub {
    to: To,
    /// Messages up to this seq are in the snapshot; `None` while it is taken.
    from: Option<u64>,
    pending: Vec<(u64, Arc<Encoded>)>,
}

pub struct MarketData {
    pub ledger: Addr<LedgerActor>,
    books: BTreeMap<InstrumentId, OrderBook>,
    by_sym: HashMap<String, InstrumentId>,
    groups: HashMap<String, BookGroup>,
    simple: HashMap<String, Vec<To>>,
    trades: HashMap<InstrumentId, VecDeque<Value>>,
    accounts: HashMap<AccountId, Vec<AccountSub>>,
    status_seq: u64,
    instruments_view: Vec<Value>,
}

impl MarketData {
    pub fn new(ledger: Addr<LedgerActor>, books: Vec<OrderBook>, instruments_view: Vec<Value>, status_seq: u64) -> Self {
        let mut md = MarketData {
            ledger,
            books: BTreeMap::new(),
            by_sym: HashMap::new(),
            groups: HashMap::new(),
            simple: HashMap::new(),
            trades: HashMap::new(),
            accounts: HashMap::new(),
            status_seq,
            instruments_view,
        };
        for b in books {
            md.by_sym.insert(b.spec.sym.clone(), b.spec.id);
            md.books.insert(b.spec.id, b);
        }
        md
    }

    fn levels_json(&self, book: &OrderBook, lv: &[(Price, Qty)], zero: bool) -> Vec<(String, String)> {
        lv.iter()
            .map(|(p, q)| (wire::fmt_px(&book.spec, *p), if zero { wire::fmt_qty(&book.spec, Qty(0)) } else { wire::fmt_qty(&book.spec, *q) }))
            .collect()
    }

    fn l2_snapshot(&self, key: &str, g: &BookGroup, book: &OrderBook) -> Value {
        let bids = self.levels_json(book, &g.bids, false);
        let asks = self.levels_json(book, &g.asks, false);
        let mut v = json!({"ch": "book.l2", "sym": book.spec.sym, "type": "snapshot", "epoch": EPOCH, "seq": book.version,
                           "ts": now_us(), "depth": g.depth, "bids": bids, "asks": asks});
        if g.cksum {
            v["cksum"] = json!(cksum(&bids, &asks, g.depth));
        }
        let _ = key;
        v
    }

    fn publish_simple(&self, key: &str, seq: u64, v: &Value) {
        if let Some(subs) = self.simple.get(key) {
            let e = Arc::new(Encoded::new(key.to_string(), seq, v));
            for s in subs {
                s.do_send(Deliver::Stream(e.clone()));
            }
        }
    }

    fn l1(&self, book: &OrderBook) -> Value {
        let side = |b: Option<(Price, Qty)>| b.map(|(p, q)| json!([wire::fmt_px(&book.spec, p), wire::fmt_qty(&book.spec, q)]));
        json!({"ch": "book.l1", "sym": book.spec.sym, "epoch": EPOCH, "seq": book.version, "ts": now_us(),
               "data": {"bid": side(book.best_bid()), "ask": side(book.best_ask())}})
    }

    fn trades_snapshot(&self, inst: InstrumentId) -> Value {
        let book = &self.books[&inst];
        let data: Vec<&Value> = self.trades.get(&inst).map(|t| t.iter().collect()).unwrap_or_default();
        json!({"ch": "trades", "sym": book.spec.sym, "type": "snapshot", "epoch": EPOCH, "seq": book.trade_id, "ts": now_us(), "data": data})
    }

    fn status_snapshot(&self) -> Value {
        json!({"ch": "status", "type": "snapshot", "epoch": EPOCH, "seq": self.status_seq, "ts": now_us(),
               "data": {"instruments": self.instruments_view}})
    }

    /// Brings every book group of `inst` up to date and sends its delta.
    fn refresh_groups(&mut self, inst: InstrumentId) {
        let book = &self.books[&inst];
        let prefix = format!("book.l2:{}:", book.spec.sym);
        let keys: Vec<String> = self.groups.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
        for key in keys {
            let g = self.groups.get(&key).expect("listed");
            let depth = g.depth as usize;
            let bids = book.levels(Side::Buy, depth);
            let asks = book.levels(Side::Sell, depth);
            let db = diff(&g.bids, &bids, true);
            let da = diff(&g.asks, &asks, false);
            if db.is_empty() && da.is_empty() {
                continue;
            }
            let fmt = |v: &[(Price, Option<Qty>)]| -> Vec<(String, String)> {
                v.iter().map(|(p, q)| (wire::fmt_px(&book.spec, *p), wire::fmt_qty(&book.spec, q.unwrap_or(Qty(0))))).collect()
            };
            let mut v = json!({"ch": "book.l2", "sym": book.spec.sym, "type": "delta", "epoch": EPOCH, "prev": g.last_seq,
                               "seq": book.version, "ts": now_us(), "bids": fmt(&db), "asks": fmt(&da)});
            if g.cksum {
                let b = self.levels_json(book, &bids, false);
                let a = self.levels_json(book, &asks, false);
                v["cksum"] = json!(cksum(&b, &a, g.depth));
            }
            let e = Arc::new(Encoded::new(key.clone(), book.version, &v));
            let g = self.groups.get_mut(&key).expect("listed");
            for s in &g.subs {
                s.do_send(Deliver::Stream(e.clone()));
            }
            g.bids = bids;
            g.asks = asks;
            g.last_seq = book.version;
        }
    }
}

/// Levels whose quantity changed between `old` and `new` (best first), with
/// `None` for a level that left.
fn diff(old: &[(Price, Qty)], new: &[(Price, Qty)], _bids: bool) -> Vec<(Price, Option<Qty>)> {
    let o: BTreeMap<Price, Qty> = old.iter().copied().collect();
    let n: BTreeMap<Price, Qty> = new.iter().copied().collect();
    let mut out = Vec::new();
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
    out
}

fn cksum(bids: &[(String, String)], asks: &[(String, String)], depth: u32) -> u32 {
    let n = if depth == 10 { 10 } else { CKSUM_LEVELS_MAX };
    book_checksum(bids, asks, n)
}

impl Actor for MarketData {
    type Context = Context<Self>;
}

impl Handler<Committed> for MarketData {
    type Result = ();

    fn handle(&mut self, m: Committed, ctx: &mut Context<Self>) {
        let mut touched: Vec<InstrumentId> = Vec::new();
        let mut trades: BTreeMap<InstrumentId, Vec<Value>> = BTreeMap::new();
        let mut status_changed = false;
        for e in m.events.iter() {
            match &e.body {
                EventBody::InstrumentCreated { spec, .. } => {
                    self.by_sym.insert(spec.sym.clone(), spec.id);
                    self.books.insert(spec.id, OrderBook::new((**spec).clone()));
                    status_changed = true;
                }
                EventBody::InstrumentStateSet { inst, .. } => {
                    if let Some(b) = self.books.get_mut(inst) {
                        b.apply(&e.body);
                    }
                    status_changed = true;
                }
                body => {
                    if let Some(inst) = body.book() {
                        let b = self.books.get_mut(&inst).expect("book exists");
                        b.apply(body);
                        if let EventBody::Traded(t) = body {
                            let v = json!({"id": t.trade_id, "px": wire::fmt_px(&b.spec, t.px), "qty": wire::fmt_qty(&b.spec, t.qty),
                                           "taker": wire::side_out(t.taker_side), "ts": e.ts});
                            trades.entry(inst).or_default().push(v);
                        }
                        if !touched.contains(&inst) {
                            touched.push(inst);
                        }
                    }
                }
            }
        }
        for inst in touched {
            self.refresh_groups(inst);
            let book = &self.books[&inst];
            let key = format!("book.l1:{}", book.spec.sym);
            if self.simple.contains_key(&key) {
                let v = self.l1(book);
                self.publish_simple(&key, book.version, &v);
            }
        }
        for (inst, list) in trades {
            let book = &self.books[&inst];
            let first = list[0]["id"].as_u64().unwrap_or(1);
            let last = book.trade_id;
            let key = format!("trades:{}", book.spec.sym);
            let v = json!({"ch": "trades", "sym": book.spec.sym, "epoch": EPOCH, "prev": first - 1, "seq": last, "ts": now_us(), "data": list});
            self.publish_simple(&key, last, &v);
            let ring = self.trades.entry(inst).or_default();
            for t in list {
                if ring.len() == TRADES_SNAPSHOT_MAX {
                    ring.pop_front();
                }
                ring.push_back(t);
            }
        }
        if status_changed {
            // The status view comes from the ledger's specs, which have these events.
            let fut = self.ledger.send(Query::Instruments);
            ctx.spawn(fut.into_actor(self).map(|r, act, _ctx| {
                if let Ok(Ok(v)) = r {
                    act.status_seq += 1;
                    act.instruments_view = v["instruments"].as_array().cloned().unwrap_or_default();
                    let view = json!({"ch": "status", "type": "update", "epoch": EPOCH, "prev": act.status_seq - 1, "seq": act.status_seq,
                                      "ts": now_us(), "data": {"instruments": act.instruments_view}});
                    act.publish_simple("status", act.status_seq, &view);
                }
            }));
        }
        for (account, seq, msg) in m.account {
            if let Some(subs) = self.accounts.get_mut(&AccountId(account)) {
                let e = Arc::new(Encoded::new("account".into(), seq, &msg));
                for s in subs.iter_mut() {
                    match s.from {
                        Some(from) if seq > from => s.to.do_send(Deliver::Stream(e.clone())),
                        Some(_) => {}
                        None => s.pending.push((seq, e.clone())),
                    }
                }
            }
        }
    }
}

impl Handler<Subscribe> for MarketData {
    type Result = ResponseActFuture<Self, Result<p::SubResult, ErrorBody>>;

    fn handle(&mut self, m: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        let key = m.sub.key.clone();
        let snapshot = |mode_key: String| p::SubResult { sub: mode_key, mode: p::SubMode::Snapshot, from_seq: None, reason: m.resume.map(|_| p::REASON_RESUME_UNAVAILABLE.to_string()) };
        let inst = m.sub.sym.as_ref().and_then(|s| self.by_sym.get(s).copied());
        let send = |to: &To, key: &str, seq: u64, v: &Value| to.do_send(Deliver::Stream(Arc::new(Encoded::new(key.to_string(), seq, v))));
        let res: Result<p::SubResult, ErrorBody> = match (m.sub.ch, inst) {
            (Channel::BookL2, Some(inst)) => {
                let book = &self.books[&inst];
                let depth = m.sub.depth as usize;
                let version = book.version;
                let gkey = if m.sub.cksum { key.clone() } else { format!("{key}:nock") };
                let bids = book.levels(Side::Buy, depth);
                let asks = book.levels(Side::Sell, depth);
                let g = self.groups.entry(gkey.clone()).or_insert_with(|| BookGroup {
                    depth: m.sub.depth,
                    cksum: m.sub.cksum,
                    subs: Vec::new(),
                    bids: bids.clone(),
                    asks: asks.clone(),
                    last_seq: version,
                });
                if g.last_seq != version {
                    // Bring the group's existing subscribers to this version
                    // (nothing in their depth changed) so all share one chain.
                    let empty = json!({"ch": "book.l2", "sym": m.sub.sym, "type": "delta", "epoch": EPOCH, "prev": g.last_seq,
                                       "seq": version, "ts": now_us(), "bids": [], "asks": []});
                    let e = Arc::new(Encoded::new(key.clone(), version, &empty));
                    for s in &g.subs {
                        s.do_send(Deliver::Stream(e.clone()));
                    }
                    g.last_seq = version;
                }
                g.subs.retain(|s| s != &m.to);
                g.subs.push(m.to.clone());
                let g = &self.groups[&gkey];
                let v = self.l2_snapshot(&key, g, book);
                send(&m.to, &key, version, &v);
                Ok(snapshot(key))
            }
            (Channel::BookL1, Some(inst)) | (Channel::Trades, Some(inst)) => {
                let v = if m.sub.ch == Channel::BookL1 { self.l1(&self.books[&inst]) } else { self.trades_snapshot(inst) };
                let seq = v["seq"].as_u64().unwrap_or(0);
                let subs = self.simple.entry(key.clone()).or_default();
                subs.retain(|s| s != &m.to);
                subs.push(m.to.clone());
                send(&m.to, &key, seq, &v);
                Ok(snapshot(key))
            }
            (Channel::Status, _) => {
                let v = self.status_snapshot();
                let subs = self.simple.entry(key.clone()).or_default();
                subs.retain(|s| s != &m.to);
                subs.push(m.to.clone());
                send(&m.to, &key, self.status_seq, &v);
                Ok(snapshot(key))
            }
            (Channel::Account, _) => {
                let Some(account) = m.account else {
                    return Box::pin(fut::ready(Err(ErrorBody::new(ErrorCode::AuthRequired, "log in first"))));
                };
                let subs = self.accounts.entry(account).or_default();
                subs.retain(|s| s.to != m.to);
                subs.push(AccountSub { to: m.to.clone(), from: None, pending: Vec::new() });
                let to = m.to.clone();
                let fut = self.ledger.send(Query::AccountSnapshot(account));
                let res = snapshot(key);
                return Box::pin(fut.into_actor(self).map(move |r, act, _ctx| {
                    let v = match r {
                        Ok(Ok(v)) => v,
                        _ => return Err(ErrorBody::new(ErrorCode::Internal, "ledger unavailable")),
                    };
                    let seq = v["seq"].as_u64().unwrap_or(0);
                    let snap = json!({"ch": "account", "type": "snapshot", "epoch": EPOCH, "seq": seq, "ts": now_us(),
                                      "data": {"balances": v["balances"], "orders": v["orders"]}});
                    to.do_send(Deliver::Stream(Arc::new(Encoded::new("account".into(), seq, &snap))));
                    if let Some(s) = act.accounts.get_mut(&account).and_then(|v| v.iter_mut().find(|s| s.to == to)) {
                        s.from = Some(seq);
                        for (q, e) in s.pending.drain(..) {
                            if q > seq {
                                to.do_send(Deliver::Stream(e));
                            }
                        }
                    }
                    Ok(res)
                }));
            }
            (Channel::Candles | Channel::Ticker, Some(_)) => {
                Err(ErrorBody::bad_request(format!("{} is not served by this node yet", m.sub.ch.as_str())))
            }
            (_, None) => Err(ErrorBody::new(ErrorCode::UnknownInstrument, "unknown instrument")),
        };
        Box::pin(fut::ready(res))
    }
}

impl Handler<Unsubscribe> for MarketData {
    type Result = ();

    fn handle(&mut self, m: Unsubscribe, _ctx: &mut Context<Self>) {
        for (k, g) in self.groups.iter_mut() {
            if *k == m.key || k.strip_suffix(":nock") == Some(m.key.as_str()) {
                g.subs.retain(|s| s != &m.to);
            }
        }
        if let Some(s) = self.simple.get_mut(&m.key) {
            s.retain(|s| s != &m.to);
        }
        if m.key == "account" {
            for subs in self.accounts.values_mut() {
                subs.retain(|s| s.to != m.to);
            }
        }
    }
}

impl Handler<Gone> for MarketData {
    type Result = ();

    fn handle(&mut self, m: Gone, _ctx: &mut Context<Self>) {
        for g in self.groups.values_mut() {
            g.subs.retain(|s| s != &m.to);
        }
        for s in self.simple.values_mut() {
            s.retain(|s| s != &m.to);
        }
        for subs in self.accounts.values_mut() {
            subs.retain(|s| s.to != m.to);
        }
    }
}

