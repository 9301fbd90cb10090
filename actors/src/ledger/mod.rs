//! The ledger actor, the exchange's sequencer. It owns every balance and the
//! `cl_id` table: it holds funds before an order reaches its instrument,
//! settles the instrument's outcomes when they come back, and hands every
//! event, in the order balances changed, to the journal. It is the only
//! writer of the event log.
//!
//! It counts every order operation it decides (`bourse_orders_total` by op,
//! result and reject code) and registers each book's in-flight counter as
//! that instrument's mailbox depth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use bourse_engine::ledger::{AccountUpdate, Ledger, PlaceRefusal};
use bourse_engine::{AccountId, AssetId, Command, Event, EventBody, InstrumentId, InstrumentState, OrderId, OrderRef, Reject, Reply};
use bourse_protocol::msg as p;
use bourse_protocol::{ErrorBody, ErrorCode};
use serde_json::{json, Value};

use crate::instrument::{BookOp, InstrumentActor};
use crate::journal::{JournalHandle, Proposal};
use crate::node::Shared;
use crate::reply::{now_us, Answer, Responder, Tally};
use crate::telemetry::{self as t, StageTimer};
use crate::wire;

/// How a successful operator command is answered.
#[derive(Debug, Clone)]
pub enum Shape {
    Empty,
    Instrument,
    State(InstrumentState),
    User(String),
    ApiKey { key: String, secret: Option<String> },
    Available { account: AccountId, asset: AssetId },
}

/// A command from a session (or the node's bootstrap).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    pub cmd: Command,
    pub to: Responder,
    pub shape: Shape,
}

/// What a book decided, from its instrument actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcome {
    pub inst: InstrumentId,
    pub bodies: Vec<EventBody>,
    pub kind: OutcomeKind,
}

pub enum OutcomeKind {
    Placed { order: OrderId, to: Responder },
    Cancelled { order: OrderId, to: Responder, result: Result<(), Reject> },
    Amended { order: OrderId, to: Responder, result: Result<(), Reject> },
    CancelledAll { n: u64, to: Responder },
}

/// Read-only questions answered from the ledger's state.
#[derive(Message)]
#[rtype(result = "Answer")]
pub enum Query {
    Balances(AccountId),
    Orders { account: AccountId, inst: Option<InstrumentId> },
    Fills { account: AccountId, inst: Option<InstrumentId>, before: Option<u64>, limit: usize },
    Instruments,
    /// The account stream's snapshot: balances and open orders, with the stream version.
    AccountSnapshot(AccountId),
    /// The ids of the account's open orders: `{"ids": [..]}`.
    OpenIds(AccountId),
}

pub struct Book {
    pub addr: Addr<InstrumentActor>,
    pub inflight: Arc<AtomicUsize>,
}

pub struct LedgerActor {
    pub ledger: Ledger,
    pub books: Vec<Book>,
    pub journal: JournalHandle,
    pub shared: Arc<Shared>,
    pub arbiters: Vec<ArbiterHandle>,
    pub mailbox_max: usize,
    pub instrument_inflight_max: usize,
    /// What the messages handled since the last flush produced: handed to
    /// the journal as one proposal once the mailbox has been drained.
    pub pending: Proposal,
    pub flush_scheduled: bool,
    /// Amends on their way to their books, by order: how many, and the
    /// price and quantity the book will have made of the order once all
    /// are done. The ledger decides an amend's hold before its book sees
    /// it, so a second amend must be held for on top of the first's result
    /// (the ledger's record of the order still shows the state before),
    /// and nothing is released while one is in flight (it may need what a
    /// release would give back).
    pub amending: HashMap<OrderId, InFlight>,
    /// Stamps the events this ledger records.
    pub clock: EventClock,
}

/// The time events are stamped with: the wall clock, but never earlier
/// than the last event stamped (or recovered from the log). A wall clock
/// stepped back (by NTP, by an operator, on a restart on another host)
/// holds the exchange's time where it was until it catches up, so the log,
/// fills, trades and candles never go back in time, and `bourse restore
/// --until TIME` stops at one point of the history.
///
/// While the wall clock is more than `CLOCK_BEHIND_WARN_US` behind, the
/// node says so in its log, once a minute at most.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventClock {
    last: u64,
    /// Wall time of the last warning that the clock is behind.
    warned: Option<u64>,
}

/// How far the wall clock may be behind the event time before the node
/// warns (a second: an NTP slew never gets there).
pub const CLOCK_BEHIND_WARN_US: u64 = 1_000_000;
/// Warnings that the clock is behind, at most one per this long.
pub const CLOCK_BEHIND_WARN_EVERY_US: u64 = 60_000_000;

impl EventClock {
    /// A clock whose next stamp is no earlier than `last` (the newest
    /// event's time, 0 for none).
    pub fn after(last: u64) -> EventClock {
        EventClock { last, warned: None }
    }

    /// The time for an event recorded when the wall clock reads `now`.
    pub fn stamp(&mut self, now: u64) -> u64 {
        self.last = self.last.max(now);
        self.last
    }

    /// How far behind the event time the wall clock reading `now` is, when
    /// that is past `CLOCK_BEHIND_WARN_US` and no warning was given in the
    /// last `CLOCK_BEHIND_WARN_EVERY_US`.
    pub fn behind_to_warn(&mut self, now: u64) -> Option<u64> {
        let behind = self.last.saturating_sub(now);
        if behind <= CLOCK_BEHIND_WARN_US {
            return None;
        }
        if self.warned.is_some_and(|at| now.abs_diff(at) < CLOCK_BEHIND_WARN_EVERY_US) {
            return None;
        }
        self.warned = Some(now);
        Some(behind)
    }
}

/// The amends of one order on their way to its book.
#[derive(Clone, Copy, Debug, Default)]
pub struct InFlight {
    pub n: u32,
    pub px: Option<bourse_engine::Price>,
    pub qty: Option<bourse_engine::Qty>,
}

/// Hands the staged proposal to the journal (sent to itself, so it runs
/// after the messages already waiting: a drained mailbox is one proposal).
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for LedgerActor {
    type Result = ();

    fn handle(&mut self, _: Flush, _ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        let p = std::mem::take(&mut self.pending);
        self.journal.propose(p);
    }
}

/// The outcomes an instrument produced while draining its mailbox, in order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outcomes(pub Vec<Outcome>);

impl Handler<Outcomes> for LedgerActor {
    type Result = ();

    fn handle(&mut self, m: Outcomes, ctx: &mut Context<Self>) {
        t::LEDGER_MAILBOX.handled();
        let mut prop = Proposal::default();
        for o in m.0 {
            self.outcome(o, &mut prop);
        }
        self.stage(prop, ctx);
    }
}

impl Actor for LedgerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        crate::failstop::mark_critical();
        ctx.set_mailbox_capacity(self.mailbox_max);
    }
}

fn overloaded(what: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::Overloaded, format!("{what} is overloaded; retry shortly"))
}

/// Counts one order operation in `bourse_orders_total`.
fn count(op: &'static str, result: &'static str, code: &'static str) {
    metrics::counter!(t::ORDERS_TOTAL, "op" => op, "result" => result, "code" => code).increment(1);
}

/// Counts an operation refused with `e` (its wire code is the label).
fn count_refused(op: &'static str, e: &ErrorBody) {
    let result = if e.code == ErrorCode::Overloaded { t::RESULT_OVERLOADED } else { t::RESULT_REJECTED };
    count(op, result, e.code.as_str());
}

/// Counts an answered operation: accepted, or refused with its code.
fn count_answer(op: &'static str, a: &Answer) {
    match a {
        Ok(_) => count(op, t::RESULT_ACCEPTED, t::CODE_NONE),
        Err(e) => count_refused(op, e),
    }
}

impl LedgerActor {
    /// Starts an instrument actor for a book, on the next arbiter.
    pub fn spawn_book(&mut self, book: bourse_engine::OrderBook, me: Addr<LedgerActor>) {
        let arb = &self.arbiters[self.books.len() % self.arbiters.len()];
        let inflight = Arc::new(AtomicUsize::new(0));
        let i2 = inflight.clone();
        t::watch_mailbox(t::ACTOR_INSTRUMENT, Some(&book.spec.sym), &inflight);
        let metrics = crate::instrument::BookMetrics::new(&book.spec.sym);
        let addr = InstrumentActor::start_in_arbiter(arb, move |_| InstrumentActor { book, ledger: me, inflight: i2, metrics, outcomes: Vec::new() });
        self.books.push(Book { addr, inflight });
    }

    fn book(&self, inst: InstrumentId) -> Option<&Book> {
        (inst.0 as usize).checked_sub(1).and_then(|i| self.books.get(i))
    }

    /// Sends a command to a book unless it has `instrument_inflight_max` waiting.
    /// A refused command comes back whole, so its responder can answer.
    #[allow(clippy::result_large_err)]
    fn to_book(&self, inst: InstrumentId, op: BookOp) -> Result<(), (ErrorBody, BookOp)> {
        let Some(b) = self.book(inst) else {
            return Err((ErrorBody::new(ErrorCode::UnknownInstrument, "unknown instrument"), op));
        };
        if b.inflight.fetch_add(1, Ordering::AcqRel) >= self.instrument_inflight_max {
            b.inflight.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!(t::OVERLOADED_TOTAL, "actor" => t::ACTOR_INSTRUMENT).increment(1);
            return Err((overloaded(&self.ledger.instruments[&inst].sym), op));
        }
        b.addr.do_send(op);
        Ok(())
    }

    /// Adds one step's proposal to the pending one and makes sure a flush follows.
    fn stage(&mut self, p: Proposal, ctx: &mut Context<Self>) {
        if p.is_empty() {
            return;
        }
        self.pending.events.extend(p.events);
        self.pending.answers.extend(p.answers);
        self.pending.account.extend(p.account);
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(Flush);
        }
    }

    fn record(&mut self, body: EventBody, p: &mut Proposal) {
        let now = now_us();
        let ts = self.clock.stamp(now);
        if let Some(behind) = self.clock.behind_to_warn(now) {
            tracing::warn!(
                behind_ms = behind / 1_000,
                event_time_us = ts,
                "the wall clock is behind the exchange's last event: events keep that time until the clock catches up (check NTP)"
            );
        }
        let mut updates = Vec::new();
        self.ledger.apply(ts, &body, Some(&mut updates));
        for u in updates {
            p.account.push(self.account_message(ts, u));
        }
        p.events.push(Event { ts, body });
    }

    fn account_message(&self, ts: u64, u: AccountUpdate) -> (u64, u64, Value) {
        account_message(&self.ledger, self.shared.epoch, ts, u)
    }

    fn place_answer(&self, order: OrderId, dup: bool) -> Answer {
        let o = self
            .ledger
            .order(order)
            .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "order vanished"))?;
        let spec = &self.ledger.instruments[&o.inst];
        Ok(serde_json::to_value(p::PlaceRes {
            order_id: o.id.0,
            cl_id: o.cl_id.to_string(),
            status: wire::status(o.status),
            cum_qty: wire::fmt_qty(spec, o.cum),
            reason: o.reason.map(wire::reason),
            dup,
        })
        .expect("encodes"))
    }

    fn status_answer(&self, order: OrderId) -> Answer {
        let o = self.ledger.order(order).ok_or_else(|| ErrorBody::new(ErrorCode::UnknownOrder, "unknown order"))?;
        Ok(json!({"order_id": order.0, "status": wire::status(o.status)}))
    }

    fn resolve(&self, account: AccountId, inst: InstrumentId, r: &OrderRef) -> Result<OrderId, ErrorBody> {
        let id = match r {
            OrderRef::Id(id) => Some(*id),
            OrderRef::ClId(cl) => self.ledger.open_order_by_cl_id(account, cl),
        };
        match id.and_then(|id| self.ledger.order(id)) {
            Some(o) if o.account == account && o.inst == inst && o.status.is_open() => Ok(o.id),
            _ => Err(ErrorBody::new(ErrorCode::UnknownOrder, "no such open order")),
        }
    }

    fn admin_answer(&self, shape: &Shape, reply: &Reply) -> Answer {
        Ok(match shape {
            Shape::Empty => json!({}),
            Shape::Instrument => {
                let Reply::Instrument(id) = reply else { return Ok(json!({})) };
                serde_json::to_value(wire::instrument_view(&self.ledger, &self.ledger.instruments[id])).expect("encodes")
            }
            Shape::State(s) => json!({"state": wire::state_out(*s)}),
            Shape::User(u) => json!({"user": u}),
            Shape::ApiKey { key, secret } => match secret {
                Some(s) => json!({"key": key, "secret": s}),
                None => json!({"key": key}),
            },
            Shape::Available { account, asset } => {
                json!({"available": wire::fmt_amount(&self.ledger, *asset, self.ledger.balance(*account, *asset).available)})
            }
        })
    }
}

impl Handler<Submit> for LedgerActor {
    type Result = ();

    fn handle(&mut self, m: Submit, ctx: &mut Context<Self>) {
        let _stage = StageTimer::start(t::STAGE_LEDGER);
        let mut prop = Proposal::default();
        let Submit { cmd, to, shape } = m;
        // Sessions count their commands into the mailbox; the node's own
        // (answered on a channel) are not counted.
        if !matches!(to, Responder::Channel(_)) {
            t::LEDGER_MAILBOX.handled();
        }
        match cmd {
            Command::Place(c) => {
                if !matches!(to, Responder::Channel(_)) {
                    crate::failstop::fault_point("ledger-place");
                }
                let inst = c.inst;
                match self.ledger.decide_place(&c) {
                    Err(PlaceRefusal::Duplicate(id)) => {
                        count(t::OP_PLACE, t::RESULT_DUPLICATE, t::CODE_NONE);
                        prop.answers.push((to, self.place_answer(id, true)))
                    }
                    Err(PlaceRefusal::Reject(r)) => {
                        count(t::OP_PLACE, t::RESULT_REJECTED, wire::code(r.code).as_str());
                        prop.answers.push((to, Err(wire::reject(&r))))
                    }
                    Ok(accepted) => {
                        let EventBody::OrderAccepted { order } = &accepted else { unreachable!("accepted") };
                        let order = order.clone();
                        // Admission first, so an overloaded book holds nothing.
                        let Some(b) = self.book(inst) else {
                            let e = ErrorBody::new(ErrorCode::UnknownInstrument, "unknown instrument");
                            count_refused(t::OP_PLACE, &e);
                            to.send(Err(e));
                            return;
                        };
                        if b.inflight.load(Ordering::Acquire) >= self.instrument_inflight_max {
                            metrics::counter!(t::OVERLOADED_TOTAL, "actor" => t::ACTOR_INSTRUMENT).increment(1);
                            let e = overloaded(&self.ledger.instruments[&inst].sym);
                            count_refused(t::OP_PLACE, &e);
                            to.send(Err(e));
                            return;
                        }
                        self.record(accepted, &mut prop);
                        // Cannot fail after the check above (one writer); answer anyway.
                        if let Err((e, BookOp::Match { to, .. })) = self.to_book(inst, BookOp::Match { order, to }) {
                            count_refused(t::OP_PLACE, &e);
                            prop.answers.push((to, Err(e)));
                        }
                    }
                }
            }
            Command::Cancel { account, inst, order } => match self.resolve(account, inst, &order) {
                Err(e) => {
                    count_refused(t::OP_CANCEL, &e);
                    prop.answers.push((to, Err(e)))
                }
                Ok(id) => {
                    let op = BookOp::Cancel { account: Some(account), order: id, reason: bourse_engine::CancelReason::User, admin: false, to };
                    if let Err((e, BookOp::Cancel { to, .. })) = self.to_book(inst, op) {
                        count_refused(t::OP_CANCEL, &e);
                        prop.answers.push((to, Err(e)));
                    }
                }
            },
            Command::Amend { account, inst, order, qty, px } => {
                let id = match self.resolve(account, inst, &order) {
                    Ok(id) => id,
                    Err(e) => {
                        count_refused(t::OP_AMEND, &e);
                        prop.answers.push((to, Err(e)));
                        self.stage(prop, ctx);
                        return;
                    }
                };
                // Held for what the order is once every amend before this
                // one is done too.
                let before = self.amending.get(&id).copied().unwrap_or_default();
                match self.ledger.decide_amend_hold(account, id, qty.or(before.qty), px.or(before.px)) {
                    Err(r) => {
                        count(t::OP_AMEND, t::RESULT_REJECTED, wire::code(r.code).as_str());
                        prop.answers.push((to, Err(wire::reject(&r))))
                    }
                    Ok(hold) => {
                        let Some(b) = self.book(inst) else { return };
                        if b.inflight.load(Ordering::Acquire) >= self.instrument_inflight_max {
                            metrics::counter!(t::OVERLOADED_TOTAL, "actor" => t::ACTOR_INSTRUMENT).increment(1);
                            let e = overloaded(&self.ledger.instruments[&inst].sym);
                            count_refused(t::OP_AMEND, &e);
                            to.send(Err(e));
                            return;
                        }
                        if let Some(h) = hold {
                            self.record(h, &mut prop);
                        }
                        let op = BookOp::Amend { account, order: id, qty, px, to };
                        match self.to_book(inst, op) {
                            Ok(()) => {
                                let f = self.amending.entry(id).or_default();
                                (f.n, f.qty, f.px) = (f.n + 1, qty.or(f.qty), px.or(f.px));
                            }
                            Err((e, BookOp::Amend { to, .. })) => {
                                count_refused(t::OP_AMEND, &e);
                                prop.answers.push((to, Err(e)));
                                // What was held for it goes back, unless
                                // another amend is on its way.
                                if !self.amending.contains_key(&id) {
                                    if let Some(release) = self.ledger.decide_release(id) {
                                        self.record(release, &mut prop);
                                    }
                                }
                            }
                            Err(_) => unreachable!("the op handed back is the amend"),
                        }
                    }
                }
            }
            Command::CancelAll { account, inst, side, admin } => {
                let targets: Vec<InstrumentId> = match inst {
                    Some(i) if self.book(i).is_none() => {
                        let e = ErrorBody::new(ErrorCode::UnknownInstrument, "unknown instrument");
                        count_refused(t::OP_CANCEL_ALL, &e);
                        to.send(Err(e));
                        return;
                    }
                    Some(i) => vec![i],
                    None => self.ledger.instruments.keys().copied().collect(),
                };
                count(t::OP_CANCEL_ALL, t::RESULT_ACCEPTED, t::CODE_NONE);
                let tally = Tally::new(targets.len(), to);
                for i in targets {
                    // Cancels are never refused for load: they only shrink the book.
                    let b = self.book(i).expect("checked");
                    b.inflight.fetch_add(1, Ordering::AcqRel);
                    b.addr.do_send(BookOp::CancelAll { account, side, admin, to: Responder::Part(tally.clone()) });
                }
            }
            admin => match self.ledger.decide_admin(admin) {
                Err(r) => prop.answers.push((to, Err(wire::reject(&r)))),
                Ok((e, reply)) => {
                    let created = match &e {
                        EventBody::InstrumentCreated { spec, .. } => Some((**spec).clone()),
                        _ => None,
                    };
                    let state = match &e {
                        EventBody::InstrumentStateSet { inst, state, .. } => Some((*inst, *state)),
                        _ => None,
                    };
                    self.record(e, &mut prop);
                    if let Some(spec) = created {
                        self.spawn_book(bourse_engine::OrderBook::new(spec), ctx.address());
                    }
                    if let Some((inst, state)) = state {
                        if let Some(b) = self.book(inst) {
                            b.inflight.fetch_add(1, Ordering::AcqRel);
                            b.addr.do_send(BookOp::SetState { state });
                        }
                    }
                    let a = self.admin_answer(&shape, &reply);
                    prop.answers.push((to, a));
                }
            },
        }
        self.stage(prop, ctx);
    }
}

impl LedgerActor {
    /// Settles one book outcome: its events, then its answer.
    fn outcome(&mut self, m: Outcome, prop: &mut Proposal) {
        // What an amended order (its amend made or refused), or a taker
        // that rests what is left, no longer needs is released
        // (`Ledger::decide_release`), once no amend of it is in flight.
        let release = match &m.kind {
            OutcomeKind::Amended { order, .. } => {
                // Every amend handed to a book was counted; a miss would be
                // a bookkeeping fault, not worth stopping the exchange for.
                debug_assert!(self.amending.contains_key(order), "an amend of {order:?} in flight");
                if let Some(f) = self.amending.get_mut(order) {
                    f.n -= 1;
                    if f.n == 0 {
                        self.amending.remove(order);
                    }
                }
                Some(*order)
            }
            OutcomeKind::Placed { order, .. } if bourse_engine::exchange::rests_after_trading(&m.bodies, *order) => Some(*order),
            _ => None,
        }
        .filter(|order| !self.amending.contains_key(order));
        let mut rejected = None;
        for b in m.bodies {
            if let EventBody::OrderRejected { code, .. } = &b {
                rejected = Some(*code);
            }
            self.record(b, prop);
        }
        if let Some(release) = release.and_then(|order| self.ledger.decide_release(order)) {
            self.record(release, prop);
        }
        if cfg!(debug_assertions) {
            self.ledger.check();
        }
        let (to, answer) = match m.kind {
            OutcomeKind::Placed { order, to } => match rejected {
                Some(code) => {
                    count(t::OP_PLACE, t::RESULT_REJECTED, wire::code(code).as_str());
                    (to, Err(ErrorBody::new(wire::code(code), bourse_engine::exchange::reject_text(code))))
                }
                None => {
                    count(t::OP_PLACE, t::RESULT_ACCEPTED, t::CODE_NONE);
                    let a = self.place_answer(order, false);
                    (to, a)
                }
            },
            OutcomeKind::Cancelled { order, to, result } => {
                let a = result.map_err(|r| wire::reject(&r)).and_then(|()| self.status_answer(order));
                count_answer(t::OP_CANCEL, &a);
                (to, a)
            }
            OutcomeKind::Amended { order, to, result } => {
                let a = result.map_err(|r| wire::reject(&r)).and_then(|()| self.status_answer(order));
                count_answer(t::OP_AMEND, &a);
                (to, a)
            }
            OutcomeKind::CancelledAll { n, to } => (to, Ok(json!({"cancelled": n}))),
        };
        prop.answers.push((to, answer));
    }
}

impl Handler<Query> for LedgerActor {
    type Result = MessageResult<Query>;

    fn handle(&mut self, q: Query, _ctx: &mut Context<Self>) -> MessageResult<Query> {
        let l = &self.ledger;
        MessageResult(Ok(match q {
            Query::Balances(a) => json!({"balances": wire::balances(l, a)}),
            Query::Orders { account, inst } => {
                let orders: Vec<p::OrderView> = l.open_orders(account, inst).into_iter().map(|o| wire::order_view(l, o)).collect();
                json!({"orders": orders})
            }
            Query::Fills { account, inst, before, limit } => {
                let fills: Vec<p::FillView> = l
                    .fills(account, inst, before, limit)
                    .into_iter()
                    .map(|f| {
                        let cl = l.order(f.order).map(|o| o.cl_id).unwrap_or_default();
                        wire::fill_view(l, f, &cl)
                    })
                    .collect();
                json!({"fills": fills})
            }
            Query::Instruments => {
                let v: Vec<p::InstrumentView> = l.instruments.values().map(|s| wire::instrument_view(l, s)).collect();
                json!({"instruments": v})
            }
            Query::AccountSnapshot(a) => {
                let orders: Vec<p::OrderView> = l.open_orders(a, None).into_iter().map(|o| wire::order_view(l, o)).collect();
                let seq = l.accounts.get(&a).map_or(0, |s| s.seq);
                json!({"seq": seq, "balances": wire::balances(l, a), "orders": orders})
            }
            Query::OpenIds(a) => json!({"ids": l.open_orders(a, None).into_iter().map(|o| o.id.0).collect::<Vec<_>>()}),
        }))
    }
}

/// An account's private-stream message for `u`, made at event time `ts`:
/// `(account, seq, message)`. The same for a message made live and for one
/// made again by replay after a restart (`durability::recover::AccountTail`).
pub fn account_message(l: &Ledger, epoch: u64, ts: u64, u: AccountUpdate) -> (u64, u64, Value) {
    let (account, seq, kind, data) = match u {
        AccountUpdate::Order { account, seq, order } => {
            (account, seq, "order", serde_json::to_value(wire::order_view(l, &order)).expect("encodes"))
        }
        AccountUpdate::Fill { account, seq, fill, order } => {
            let spec = &l.instruments[&fill.inst];
            let mut v = serde_json::to_value(wire::fill_view(l, &fill, &order.cl_id)).expect("encodes");
            v["cum_qty"] = json!(wire::fmt_qty(spec, order.cum));
            v["leaves_qty"] = json!(wire::fmt_qty(spec, order.leaves()));
            v["status"] = json!(wire::status(order.status));
            (account, seq, "fill", v)
        }
        AccountUpdate::Balance { account, seq, asset, balance } => {
            let a = &l.assets[&asset];
            (
                account,
                seq,
                "balance",
                json!({"asset": a.name, "available": bourse_protocol::decimal::format(balance.available, a.scale),
                       "held": bourse_protocol::decimal::format(balance.held, a.scale)}),
            )
        }
    };
    let msg = json!({"ch": "account", "epoch": epoch, "prev": seq - 1, "seq": seq, "ts": ts, "type": kind, "data": data});
    (account.0, seq, msg)
}

#[cfg(test)]
mod tests {
    use super::EventClock;

    /// A wall clock that steps back holds the stamps where they were until
    /// it catches up; one recovered from a log goes on from its end.
    #[test]
    fn event_stamps_never_go_back() {
        let mut c = EventClock::default();
        assert_eq!(c.stamp(1_000), 1_000);
        assert_eq!(c.stamp(2_000), 2_000);
        assert_eq!(c.stamp(1_500), 2_000, "the clock stepped back");
        assert_eq!(c.stamp(2_000), 2_000);
        assert_eq!(c.stamp(2_001), 2_001, "caught up");
        let mut r = EventClock::after(5_000);
        assert_eq!(r.stamp(4_000), 5_000, "a log ending ahead of the clock");
        assert_eq!(r.stamp(6_000), 6_000);
    }

    /// A clock more than a second behind is reported, once a minute.
    #[test]
    fn a_clock_far_behind_is_reported_once_a_minute() {
        let t0 = 1_800_000_000_000_000u64;
        let mut c = EventClock::after(t0 + 10_000_000);
        assert_eq!(c.behind_to_warn(t0), Some(10_000_000));
        assert_eq!(c.behind_to_warn(t0 + 1_000_000), None, "not again within the minute");
        assert_eq!(c.behind_to_warn(t0 + 9_500_000), None, "half a second behind");
        let mut c = EventClock::after(t0 + 120_000_000);
        assert!(c.behind_to_warn(t0).is_some());
        assert_eq!(c.behind_to_warn(t0 + 60_000_000), Some(60_000_000), "a minute later, still behind");
        let mut slewed = EventClock::after(t0 + 500_000);
        assert_eq!(slewed.behind_to_warn(t0), None);
    }
}
