//! The instrument actor: one per instrument, owning its `OrderBook`. It
//! matches what the ledger sends it (orders whose funds are already held,
//! cancels, amends, cancel-alls), applies the outcome to its book and sends
//! the outcome's events back to the ledger in the order it produced them.
//! Instruments run on several arbiters, so matching uses every core.
//!
//! Each counts its trades and traded lots, exports whether it is trading,
//! and times its matching (stage `match`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use bourse_engine::{AccountId, CancelReason, EventBody, InstrumentState, NewOrder, OrderBook, OrderId, Price, Qty, Reject, Side};

use crate::ledger::{LedgerActor, Outcome, OutcomeKind, Outcomes};
use crate::reply::Responder;
use crate::telemetry::{self as t, StageTimer};

/// One instrument's metric handles, registered (at 0) when its actor is made.
pub struct BookMetrics {
    trades: metrics::Counter,
    lots: metrics::Counter,
    trading: metrics::Gauge,
}

impl BookMetrics {
    pub fn new(sym: &str) -> BookMetrics {
        t::install();
        let sym = sym.to_string();
        BookMetrics {
            trades: metrics::counter!(t::TRADES_TOTAL, "sym" => sym.clone()),
            lots: metrics::counter!(t::TRADED_LOTS_TOTAL, "sym" => sym.clone()),
            trading: metrics::gauge!(t::INSTRUMENT_TRADING, "sym" => sym),
        }
    }

    fn state(&self, state: InstrumentState) {
        self.trading.set(if state == InstrumentState::Trading { 1.0 } else { 0.0 });
    }
}

pub struct InstrumentActor {
    pub book: OrderBook,
    pub ledger: Addr<LedgerActor>,
    /// Commands sent to this instrument and not yet handled; the ledger
    /// refuses new ones with `overloaded` past `instrument_mailbox_max`.
    pub inflight: Arc<AtomicUsize>,
    pub metrics: BookMetrics,
    /// Outcomes of the messages handled since the last flush.
    pub outcomes: Vec<Outcome>,
}

/// Sends the collected outcomes to the ledger in one message (sent to
/// itself, so it runs once the waiting messages have been handled).
#[derive(Message)]
#[rtype(result = "()")]
struct FlushOutcomes;

impl Handler<FlushOutcomes> for InstrumentActor {
    type Result = ();

    fn handle(&mut self, _: FlushOutcomes, _ctx: &mut Context<Self>) {
        let batch = std::mem::take(&mut self.outcomes);
        if !batch.is_empty() {
            // Outcomes bypass the ledger's mailbox limit: they are already bounded
            // by the commands admitted upstream, and an outcome is never dropped.
            t::LEDGER_MAILBOX.enqueued();
            self.ledger.do_send(Outcomes(batch));
        }
    }
}

impl Actor for InstrumentActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        crate::failstop::mark_critical();
        self.metrics.trades.increment(0);
        self.metrics.lots.increment(0);
        self.metrics.state(self.book.spec.state);
    }
}

/// A command for one book, from the ledger.
#[derive(Message)]
#[rtype(result = "()")]
pub enum BookOp {
    Match { order: Box<NewOrder>, to: Responder },
    Cancel { account: Option<AccountId>, order: OrderId, reason: CancelReason, admin: bool, to: Responder },
    /// What the ledger held for it beforehand is its to release once the
    /// amend is answered (`LedgerActor::amending`).
    Amend { account: AccountId, order: OrderId, qty: Option<Qty>, px: Option<Price>, to: Responder },
    CancelAll { account: Option<AccountId>, side: Option<Side>, admin: bool, to: Responder },
    SetState { state: InstrumentState },
}

impl Handler<BookOp> for InstrumentActor {
    type Result = ();

    fn handle(&mut self, op: BookOp, ctx: &mut Context<Self>) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        let _stage = StageTimer::start(t::STAGE_MATCH);
        let inst = self.book.spec.id;
        let mut bodies = Vec::new();
        let kind = match op {
            BookOp::Match { order, to } => {
                self.book.decide_place(&order, &mut bodies);
                OutcomeKind::Placed { order: order.id, to }
            }
            BookOp::Cancel { account, order, reason, admin, to } => {
                let result = self.book.decide_cancel(account, order, reason, admin).map(|e| bodies.push(e));
                OutcomeKind::Cancelled { order, to, result }
            }
            BookOp::Amend { account, order, qty, px, to } => {
                let result = self.book.decide_amend(account, order, qty, px, &mut bodies);
                OutcomeKind::Amended { order, to, result }
            }
            BookOp::CancelAll { account, side, admin, to } => {
                self.book.decide_cancel_all(account, side, admin, &mut bodies);
                OutcomeKind::CancelledAll { n: bodies.len() as u64, to }
            }
            BookOp::SetState { state } => {
                self.book.apply(&EventBody::InstrumentStateSet { inst, state, by: AccountId(0) });
                self.metrics.state(state);
                return;
            }
        };
        for b in &bodies {
            self.book.apply(b);
            if let EventBody::Traded(tr) = b {
                self.metrics.trades.increment(1);
                self.metrics.lots.increment(tr.qty.0);
            }
        }
        if cfg!(debug_assertions) {
            self.book.check();
        }
        if self.outcomes.is_empty() {
            ctx.notify(FlushOutcomes);
        }
        self.outcomes.push(Outcome { inst, bodies, kind });
    }
}

/// A refusal from a book, for answers.
pub fn refused(r: &Reject) -> bourse_protocol::ErrorBody {
    crate::wire::reject(r)
}
