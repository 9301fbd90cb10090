//! The order book of one instrument: price levels with FIFO queues, O(1)
//! cancel by order id, best bid and ask cached, and matching by price-time
//! priority.
//!
//! Each level stays in one slot of its side's ladder while it has orders,
//! and each resting order names its slot, so a fill, a cancel or an amend
//! that keeps priority reaches its level without a search. The levels'
//! priority order is a vector of slots with the best last: the best is
//! read without a search and matching walks the vector from its end. A
//! price is found by binary search over a vector of the levels' sort keys
//! alone (eight to a cache line), kept beside it, only when an order
//! arrives or a level empties. A new or emptied level moves only the
//! entries behind it (most levels are made and emptied near the best
//! price), four bytes each besides its key.
//!
//! Every operation has two halves. `decide_*` reads the book and writes the
//! events of the outcome without changing anything; `apply` carries an event
//! out. Live matching is `decide` then `apply`; recovery and replicas only
//! `apply`, so they rebuild exactly the book the live run had.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use crate::event::{EventBody, NewOrder, Trade};
use crate::spec::{FeeAcc, InstrumentSpec};
use crate::types::*;

const NIL: u32 = u32::MAX;
/// Orders resting in one book; the slab index is a u32.
pub const BOOK_ORDERS_MAX: usize = (u32::MAX - 1) as usize;

/// A resting order in the book's slab: one cache line, aligned, so that
/// reading or relinking an order touches one line. Its maker fee
/// accumulator (32 bytes) is kept apart, in `OrderBook::fees`, and only
/// once it is not zero (`fee_held`: the order has traded, or re-entered
/// after fills): an order that has not traded reads and writes nothing
/// there.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Node {
    id: OrderId,
    account: AccountId,
    side: Side,
    px: Price,
    qty: Qty,
    leaves: Qty,
    post_only: bool,
    stp: Stp,
    /// Whether `fees` holds this order's accumulator; zero if not.
    fee_held: bool,
    prev: u32,
    next: u32,
    /// The slot of its level in its side's ladder.
    level: u32,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    px: Price,
    head: u32,
    tail: u32,
    /// Sum of `leaves` of the level's orders, in lots.
    total: u64,
    count: u32,
}

/// One side's price levels. Each level stays in one slot of `slots` while
/// it has orders, and a resting order names its slot (`Node::level`), so a
/// fill or a cancel reaches its level without a search; the order of the
/// levels by priority is kept apart, best last (bids by increasing price,
/// asks by decreasing price), and is searched only when a level is made or
/// emptied, where removing one shifts four bytes an entry besides its key.
#[derive(Clone, Debug)]
struct Ladder {
    /// Asks: a lower price is better.
    asks: bool,
    /// `rank` of each level's price, in priority order: what a search reads.
    keys: Vec<u64>,
    /// Each level's slot in `slots`, in the order of `keys`.
    order: Vec<u32>,
    slots: Vec<Level>,
    /// Slots of `slots` no level holds.
    free: Vec<u32>,
}

impl Ladder {
    fn new(asks: bool) -> Ladder {
        Ladder { asks, keys: Vec::new(), order: Vec::new(), slots: Vec::new(), free: Vec::new() }
    }

    /// The sort key: increasing towards the best price.
    #[inline]
    fn rank(&self, px: Price) -> u64 {
        if self.asks {
            !px.0
        } else {
            px.0
        }
    }

    #[inline]
    fn find(&self, px: Price) -> Result<usize, usize> {
        self.keys.binary_search(&self.rank(px))
    }

    fn get(&self, px: Price) -> Option<&Level> {
        self.find(px).ok().map(|i| &self.slots[self.order[i] as usize])
    }

    /// The slot of the level at `px`, made empty first if there is none.
    fn entry(&mut self, px: Price) -> u32 {
        match self.find(px) {
            Ok(i) => self.order[i],
            Err(i) => {
                let level = Level { px, head: NIL, tail: NIL, total: 0, count: 0 };
                let s = match self.free.pop() {
                    Some(s) => {
                        self.slots[s as usize] = level;
                        s
                    }
                    None => {
                        self.slots.push(level);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.keys.insert(i, self.rank(px));
                self.order.insert(i, s);
                s
            }
        }
    }

    /// Drops the level in slot `s`, which has no orders left.
    fn remove(&mut self, s: u32) {
        let i = self.find(self.slots[s as usize].px).expect("level exists");
        debug_assert_eq!(self.order[i], s);
        self.keys.remove(i);
        self.order.remove(i);
        self.free.push(s);
    }

    #[inline]
    fn best(&self) -> Option<Price> {
        self.keys.last().map(|&k| Price(if self.asks { !k } else { k }))
    }

    #[inline]
    fn best_level(&self) -> Option<&Level> {
        self.order.last().map(|&s| &self.slots[s as usize])
    }

    /// Levels best first.
    fn best_first(&self) -> impl Iterator<Item = &Level> + '_ {
        self.order.iter().rev().map(|&s| &self.slots[s as usize])
    }

    /// Levels worst first (bids by increasing price, asks by decreasing).
    fn worst_first(&self) -> impl Iterator<Item = &Level> + '_ {
        self.order.iter().map(|&s| &self.slots[s as usize])
    }
}

/// Where each resting order is in the slab, by order id: a hash table of
/// slab slots alone (four bytes an entry), whose key is the id in the slot's
/// node. A lookup reads the node it finds to compare ids, and every caller
/// reads that node next anyway; an entry a quarter the size of an
/// (id, slot) pair keeps the table small enough to stay in cache beside the
/// slab (for a book of 10,000 orders, 16,384 buckets: 80 KiB with their
/// control bytes, where (id, slot) pairs take 272).
#[derive(Clone, Debug, Default)]
struct SlotIndex(HashTable<u32>);

#[inline]
fn hash_id(id: OrderId) -> u64 {
    FxBuildHasher.hash_one(id.0)
}

impl SlotIndex {
    fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    fn get(&self, nodes: &[Node], id: OrderId) -> Option<u32> {
        self.0.find(hash_id(id), |&i| nodes[i as usize].id == id).copied()
    }

    /// Adds order `id` in `slot`, whose node holds it already.
    #[inline]
    fn insert(&mut self, nodes: &[Node], id: OrderId, slot: u32) {
        debug_assert_eq!(nodes[slot as usize].id, id);
        debug_assert!(self.get(nodes, id).is_none(), "order {id:?} already rests");
        self.0.insert_unique(hash_id(id), slot, |&i| hash_id(nodes[i as usize].id));
    }

    /// Removes order `id` (its node still holding it); its slot.
    #[inline]
    fn remove(&mut self, nodes: &[Node], id: OrderId) -> Option<u32> {
        match self.0.find_entry(hash_id(id), |&i| nodes[i as usize].id == id) {
            Ok(e) => Some(e.remove().0),
            Err(_) => None,
        }
    }
}

/// A resting order as seen from outside the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resting {
    pub id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub px: Price,
    pub qty: Qty,
    pub leaves: Qty,
    pub post_only: bool,
    pub stp: Stp,
    pub fee: FeeAcc,
}

/// An incoming order ready to match: a new order, or an amended one re-entering.
#[derive(Clone, Copy, Debug)]
pub struct Taker {
    pub id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub kind: OrderType,
    pub tif: Tif,
    pub post_only: bool,
    pub stp: Stp,
    /// Limit price (limit orders).
    pub px: Option<Price>,
    /// Quantity still to fill; `None` when bounded by `budget` only.
    pub qty: Option<Qty>,
    /// Quantity already filled before (amends); total = qty + filled.
    pub filled: Qty,
    /// Quote budget of a market buy by `quote_qty`.
    pub budget: Option<Amount>,
    /// Price a market buy reserved at.
    pub reserve_px: Option<Price>,
    pub fee: FeeAcc,
}

#[derive(Clone, Debug)]
pub struct OrderBook {
    pub spec: InstrumentSpec,
    bids: Ladder,
    asks: Ladder,
    best_bid: Option<Price>,
    best_ask: Option<Price>,
    nodes: Vec<Node>,
    /// The maker fee accumulator of the order in each slot of `nodes`,
    /// where its `fee_held` says so.
    fees: Vec<FeeAcc>,
    free: Vec<u32>,
    index: SlotIndex,
    /// Book version: bumped by every event that changes the book.
    pub version: u64,
    /// Id of the last trade; trade ids are gapless per instrument.
    pub trade_id: u64,
    pub last_px: Option<Price>,
}

fn crosses(side: Side, limit: Price, level: Price) -> bool {
    match side {
        Side::Buy => level <= limit,
        Side::Sell => level >= limit,
    }
}

impl OrderBook {
    pub fn new(spec: InstrumentSpec) -> Self {
        OrderBook {
            spec,
            bids: Ladder::new(false),
            asks: Ladder::new(true),
            best_bid: None,
            best_ask: None,
            nodes: Vec::new(),
            fees: Vec::new(),
            free: Vec::new(),
            index: SlotIndex::default(),
            version: 0,
            trade_id: 0,
            last_px: None,
        }
    }

    pub fn best_bid(&self) -> Option<(Price, Qty)> {
        self.bids.best_level().map(|l| (l.px, Qty(l.total)))
    }
    pub fn best_ask(&self) -> Option<(Price, Qty)> {
        self.asks.best_level().map(|l| (l.px, Qty(l.total)))
    }
    pub fn order_count(&self) -> usize {
        self.index.len()
    }
    /// Price levels on `side`.
    pub fn level_count(&self, side: Side) -> usize {
        match side {
            Side::Buy => self.bids.order.len(),
            Side::Sell => self.asks.order.len(),
        }
    }
    #[inline]
    pub fn get(&self, id: OrderId) -> Option<Resting> {
        self.index.get(&self.nodes, id).map(|i| self.resting(i))
    }

    /// Asks for the node of order `id` (of every node its index bucket
    /// might name), reading the index but no node.
    #[inline]
    pub fn prefetch_order(&self, id: OrderId) {
        let _ = self.index.0.find(hash_id(id), |&i| {
            if let Some(n) = self.nodes.get(i as usize) {
                crate::ahead::read(n);
            }
            false
        });
    }

    /// Asks for what removing order `id` touches besides its node, reading
    /// the node: its neighbours in its level, and the level.
    #[inline]
    pub fn prefetch_links(&self, id: OrderId) {
        if let Some(i) = self.index.get(&self.nodes, id) {
            let n = &self.nodes[i as usize];
            for j in [n.prev, n.next] {
                if let Some(m) = self.nodes.get(j as usize) {
                    crate::ahead::read(m);
                }
            }
            let ladder = match n.side {
                Side::Buy => &self.bids,
                Side::Sell => &self.asks,
            };
            if let Some(l) = ladder.slots.get(n.level as usize) {
                crate::ahead::read(l);
            }
        }
    }

    /// The account of order `id` if it rests here: what deciding a cancel
    /// reads (the index and the node's account).
    #[inline]
    pub fn owner(&self, id: OrderId) -> Option<AccountId> {
        self.index.get(&self.nodes, id).map(|i| self.nodes[i as usize].account)
    }
    fn resting(&self, i: u32) -> Resting {
        let n = &self.nodes[i as usize];
        Resting {
            id: n.id,
            account: n.account,
            side: n.side,
            px: n.px,
            qty: n.qty,
            leaves: n.leaves,
            post_only: n.post_only,
            stp: n.stp,
            fee: self.fee_of(i as usize),
        }
    }

    /// The maker fee accumulator of the order in slot `i`.
    #[inline]
    fn fee_of(&self, i: usize) -> FeeAcc {
        if self.nodes[i].fee_held {
            self.fees[i]
        } else {
            FeeAcc::default()
        }
    }

    /// The reference price of the band: the last trade, else the listing's.
    pub fn reference(&self) -> Option<Price> {
        self.last_px.or(self.spec.ref_px)
    }

    /// Aggregated levels, best first: `(price, total lots)`; `depth` 0 is all.
    pub fn levels(&self, side: Side, depth: usize) -> Vec<(Price, Qty)> {
        let take = if depth == 0 { usize::MAX } else { depth };
        let ladder = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        ladder.best_first().take(take).map(|l| (l.px, Qty(l.total))).collect()
    }

    /// Total resting lots at one price.
    pub fn level_qty(&self, side: Side, px: Price) -> Qty {
        let m = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        Qty(m.get(px).map_or(0, |l| l.total))
    }

    /// Every resting order, level by level best first, FIFO within a level.
    pub fn orders(&self) -> Vec<Resting> {
        let mut out = Vec::with_capacity(self.index.len());
        for l in self.bids.best_first().chain(self.asks.best_first()) {
            let mut i = l.head;
            while i != NIL {
                out.push(self.resting(i));
                i = self.nodes[i as usize].next;
            }
        }
        out
    }

    /// Resting orders of one account (optionally one side), in book order.
    pub fn orders_of(&self, account: Option<AccountId>, side: Option<Side>) -> Vec<Resting> {
        self.orders()
            .into_iter()
            .filter(|o| account.is_none_or(|a| a == o.account) && side.is_none_or(|s| s == o.side))
            .collect()
    }

    // ---- decide -------------------------------------------------------

    /// Decides a new order the ledger accepted: trades, then rest or close;
    /// or a rejection (with nothing else) when it cannot be taken.
    pub fn decide_place(&self, o: &NewOrder, out: &mut Vec<EventBody>) {
        let inst = self.spec.id;
        let reject = |code| EventBody::OrderRejected { inst, order: o.id, code };
        if self.spec.state != InstrumentState::Trading {
            out.push(reject(RejectCode::MarketClosed));
            return;
        }
        let taker = Taker {
            id: o.id,
            account: o.account,
            side: o.side,
            kind: o.kind,
            tif: o.tif,
            post_only: o.post_only,
            stp: o.stp,
            px: o.px,
            qty: o.qty,
            filled: Qty(0),
            budget: o.quote_qty,
            reserve_px: o.reserve_px,
            fee: FeeAcc::default(),
        };
        if let Err(code) = self.decide_taker(&taker, out) {
            out.push(reject(code));
        }
    }

    /// Matches `t` against the book, appending its events; on a refusal
    /// nothing is appended and the code is returned.
    fn decide_taker(&self, t: &Taker, out: &mut Vec<EventBody>) -> Result<(), RejectCode> {
        let spec = &self.spec;
        let band = self.reference().map(|r| spec.band(r));
        if let (Some(px), Some((lo, hi))) = (t.px, band) {
            if px < lo || px > hi {
                return Err(RejectCode::PriceBand);
            }
        }
        let (best_opp, opp) = match t.side {
            Side::Buy => (self.best_ask, &self.asks),
            Side::Sell => (self.best_bid, &self.bids),
        };
        if t.post_only {
            if let (Some(px), Some(b)) = (t.px, best_opp) {
                if crosses(t.side, px, b) {
                    return Err(RejectCode::PostOnlyWouldTake);
                }
            }
        }
        // The price this order may not pass, and whether the band set it.
        let band_edge = band.map(|(lo, hi)| if t.side == Side::Buy { hi } else { lo });
        let (limit, limit_is_band) = match (t.kind, t.px) {
            (OrderType::Limit, Some(px)) => (Some(px), false),
            _ => {
                let edge = match (band_edge, t.reserve_px) {
                    (Some(b), Some(r)) => Some(b.min(r)),
                    (b, r) => b.or(r),
                };
                (edge, edge.is_some())
            }
        };

        let start = out.len();
        let mut rem = t.qty;
        let mut budget = t.budget;
        let mut fee = t.fee;
        let mut filled = t.filled;
        let mut trade_id = self.trade_id;
        let mut end: Option<(OrderStatus, Option<CancelReason>)> = None;
        let mut stopped_by_limit = false;
        let mut budget_short = false;

        'levels: for level in opp.best_first() {
            let px = level.px;
            if rem == Some(Qty(0)) {
                break;
            }
            if let Some(l) = limit {
                if !crosses(t.side, l, px) {
                    stopped_by_limit = true;
                    break;
                }
            }
            let mut i = level.head;
            while i != NIL {
                let (m, m_fee) = (&self.nodes[i as usize], self.fee_of(i as usize));
                i = m.next;
                if m.account == t.account {
                    match t.stp {
                        Stp::CancelNewest => {
                            end = Some((OrderStatus::Cancelled, Some(CancelReason::SelfTrade)));
                            break 'levels;
                        }
                        Stp::CancelOldest | Stp::CancelBoth => {
                            out.push(EventBody::OrderClosed {
                                inst: spec.id,
                                order: m.id,
                                status: OrderStatus::Cancelled,
                                reason: Some(CancelReason::SelfTrade),
                            });
                            if t.stp == Stp::CancelBoth {
                                end = Some((OrderStatus::Cancelled, Some(CancelReason::SelfTrade)));
                                break 'levels;
                            }
                            continue;
                        }
                    }
                }
                let mut q = m.leaves.0;
                if let Some(r) = rem {
                    q = q.min(r.0);
                }
                if let Some(b) = budget {
                    q = q.min(self.affordable(px, b, fee));
                    if q == 0 {
                        budget_short = true;
                        break 'levels;
                    }
                }
                // The budget, not the maker, bounds this fill: what is left
                // of it cannot buy one more lot at this price.
                let budget_cut = budget.is_some() && q < m.leaves.0 && rem.is_none_or(|r| q < r.0);
                let notional = spec.notional(px, Qty(q)).ok_or(RejectCode::BadRequest)?;
                let (maker_fee, _) = m_fee.charge(notional, spec.maker_fee_bps).ok_or(RejectCode::BadRequest)?;
                let (taker_fee, fee2) = fee.charge(notional, spec.taker_fee_bps).ok_or(RejectCode::BadRequest)?;
                fee = fee2;
                if let Some(b) = budget.as_mut() {
                    // affordable() guarantees the budget covers notional + fee.
                    b.0 -= notional.0 + taker_fee.0;
                }
                trade_id += 1;
                out.push(EventBody::Traded(Trade {
                    inst: spec.id,
                    trade_id,
                    px,
                    qty: Qty(q),
                    maker: m.id,
                    taker: t.id,
                    maker_account: m.account,
                    taker_account: t.account,
                    taker_side: t.side,
                    maker_fee,
                    taker_fee,
                }));
                filled.0 += q;
                if let Some(r) = rem.as_mut() {
                    r.0 -= q;
                    if r.0 == 0 {
                        break 'levels;
                    }
                }
                if budget_cut {
                    budget_short = true;
                    break 'levels;
                }
            }
        }

        let done = rem == Some(Qty(0));
        // A `quote_qty` buy is filled in full once its budget is spent.
        let budget_spent = budget_short && filled.0 > 0;
        if t.tif == Tif::Fok && !done && !budget_spent {
            out.truncate(start);
            return Err(RejectCode::FokUnfilled);
        }
        if budget_short && filled.0 == 0 {
            // A quote budget that cannot buy one lot at the best ask.
            out.truncate(start);
            return Err(RejectCode::InsufficientFunds);
        }
        let (status, reason) = if done {
            (OrderStatus::Filled, None)
        } else if let Some(e) = end {
            e
        } else if budget_short {
            (OrderStatus::Filled, None)
        } else {
            match t.kind {
                OrderType::Market if stopped_by_limit && limit_is_band => {
                    (OrderStatus::Cancelled, Some(CancelReason::PriceBand))
                }
                OrderType::Market => (OrderStatus::Cancelled, Some(CancelReason::Market)),
                OrderType::Limit if t.tif == Tif::Gtc => {
                    out.push(EventBody::OrderOpened {
                        inst: spec.id,
                        order: t.id,
                        account: t.account,
                        side: t.side,
                        px: t.px.expect("limit order has a price"),
                        qty: Qty(filled.0 + rem.expect("limit order has a qty").0),
                        leaves: rem.expect("limit order has a qty"),
                        post_only: t.post_only,
                        stp: t.stp,
                        fee,
                    });
                    return Ok(());
                }
                OrderType::Limit => (OrderStatus::Cancelled, Some(CancelReason::Ioc)),
            }
        };
        out.push(EventBody::OrderClosed { inst: spec.id, order: t.id, status, reason });
        Ok(())
    }

    /// Lots a quote budget buys at `px`, fees included.
    fn affordable(&self, px: Price, budget: Amount, fee: FeeAcc) -> u64 {
        let per_lot = (px.0 as u128) * (self.spec.quote_per_tick_lot as u128);
        if per_lot == 0 {
            return 0;
        }
        let bps = self.spec.taker_fee_bps as u128;
        // First guess ignoring rounding, plus one (the order's earlier fills
        // may have rounded its fees up already, so this fill's fee can be
        // below its share), then step down until it fits.
        let (num, den) = ((budget.0 as u128) * 10_000, per_lot * (10_000 + bps));
        // A 64-bit division when both fit (the 128-bit one is a call).
        let guess = match (u64::try_from(num), u64::try_from(den)) {
            (Ok(n), Ok(d)) => (n / d) as u128,
            _ => num / den,
        } + 1;
        let mut q = guess.min(u64::MAX as u128) as u64;
        loop {
            if q == 0 {
                return 0;
            }
            let cost = self
                .spec
                .notional(px, Qty(q))
                .and_then(|n| fee.with(n, self.spec.taker_fee_bps).map(|f| n.0 as u128 + f.0 as u128));
            match cost {
                Some(c) if c <= budget.0 as u128 => return q,
                _ => q -= 1,
            }
        }
    }

    /// Decides a cancel by order id. `admin` may cancel in a halted book.
    pub fn decide_cancel(
        &self,
        account: Option<AccountId>,
        id: OrderId,
        reason: CancelReason,
        admin: bool,
    ) -> Result<EventBody, Reject> {
        if self.spec.state == InstrumentState::Halted && !admin {
            return Err(Reject::new(RejectCode::MarketClosed, format!("{} is halted", self.spec.sym)));
        }
        match self.owner(id) {
            Some(owner) if account.is_none_or(|a| a == owner) => Ok(EventBody::OrderClosed {
                inst: self.spec.id,
                order: id,
                status: OrderStatus::Cancelled,
                reason: Some(reason),
            }),
            _ => Err(Reject::new(RejectCode::UnknownOrder, format!("no open order {}", id.0))),
        }
    }

    /// Decides a cancel-all of an account's (or every) resting order, optionally one side.
    /// A halted book refuses clients and passes over silently (empty list); `admin` clears it.
    pub fn decide_cancel_all(
        &self,
        account: Option<AccountId>,
        side: Option<Side>,
        admin: bool,
        out: &mut Vec<EventBody>,
    ) {
        if self.spec.state == InstrumentState::Halted && !admin {
            return;
        }
        let reason = if admin { CancelReason::Admin } else { CancelReason::User };
        for o in self.orders_of(account, side) {
            out.push(EventBody::OrderClosed {
                inst: self.spec.id,
                order: o.id,
                status: OrderStatus::Cancelled,
                reason: Some(reason),
            });
        }
    }

    /// Decides an amend: new total `qty` and/or `px`.
    pub fn decide_amend(
        &self,
        account: AccountId,
        id: OrderId,
        qty: Option<Qty>,
        px: Option<Price>,
        out: &mut Vec<EventBody>,
    ) -> Result<(), Reject> {
        if self.spec.state != InstrumentState::Trading {
            return Err(Reject::new(RejectCode::MarketClosed, format!("{} is not trading", self.spec.sym)));
        }
        // The node alone: its fee accumulator is read only if it re-enters.
        let (slot, o) = match self.index.get(&self.nodes, id) {
            Some(i) if self.nodes[i as usize].account == account => (i as usize, &self.nodes[i as usize]),
            _ => return Err(Reject::new(RejectCode::UnknownOrder, format!("no open order {}", id.0))),
        };
        if qty.is_none() && px.is_none() {
            return Err(Reject::new(RejectCode::BadRequest, "amend needs qty or px"));
        }
        if px.is_some_and(|p| p.0 == 0) {
            return Err(Reject::new(RejectCode::BadRequest, "px must be positive"));
        }
        let cum = o.qty.0 - o.leaves.0;
        let new_qty = qty.unwrap_or(o.qty);
        if new_qty.0 <= cum {
            return Err(Reject::new(
                RejectCode::InvalidAmend,
                format!("new qty must exceed the filled {cum} lots"),
            ));
        }
        let new_px = px.unwrap_or(o.px);
        let keep = new_px == o.px && new_qty <= o.qty;
        if keep {
            out.push(EventBody::OrderAmended { inst: self.spec.id, order: id, px: new_px, qty: new_qty, keep_priority: true });
            return Ok(());
        }
        // Re-enter as a taker; the book is read as if the order had left it
        // (it cannot trade with itself: same account).
        let t = Taker {
            id,
            account,
            side: o.side,
            kind: OrderType::Limit,
            tif: Tif::Gtc,
            post_only: o.post_only,
            stp: o.stp,
            px: Some(new_px),
            qty: Some(Qty(new_qty.0 - cum)),
            filled: Qty(cum),
            budget: None,
            reserve_px: None,
            fee: self.fee_of(slot),
        };
        let start = out.len();
        out.push(EventBody::OrderAmended { inst: self.spec.id, order: id, px: new_px, qty: new_qty, keep_priority: false });
        // The order rests on its own side and matching reads only the
        // opposite side, so it cannot meet itself.
        match self.decide_taker(&t, out) {
            Ok(()) => Ok(()),
            Err(code) => {
                out.truncate(start);
                Err(Reject::new(code, format!("amend refused: {}", code.as_str())))
            }
        }
    }

    // ---- apply --------------------------------------------------------

    /// Carries out one event; events about other books are ignored.
    pub fn apply(&mut self, e: &EventBody) {
        match e {
            EventBody::OrderOpened { inst, order, account, side, px, qty, leaves, post_only, stp, fee } if *inst == self.spec.id => {
                self.insert(Node {
                    id: *order,
                    account: *account,
                    side: *side,
                    px: *px,
                    qty: *qty,
                    leaves: *leaves,
                    post_only: *post_only,
                    stp: *stp,
                    fee_held: false,
                    prev: NIL,
                    next: NIL,
                    level: NIL,
                }, *fee);
                self.version += 1;
            }
            EventBody::Traded(t) if t.inst == self.spec.id => {
                assert_eq!(t.trade_id, self.trade_id + 1, "trade ids are gapless");
                self.trade_id = t.trade_id;
                self.last_px = Some(t.px);
                let i = self.index.get(&self.nodes, t.maker).expect("maker rests in the book");
                let notional = self.spec.notional(t.px, t.qty).expect("decided notional fits");
                let fee = self.fee_of(i as usize).charge(notional, self.spec.maker_fee_bps).expect("decided fee fits").1;
                self.fees[i as usize] = fee;
                let n = &mut self.nodes[i as usize];
                n.fee_held = true;
                assert!(n.leaves >= t.qty, "fill within the maker's leaves");
                n.leaves.0 -= t.qty.0;
                let (side, s, left) = (n.side, n.level, n.leaves);
                if left.0 == 0 {
                    self.index.remove(&self.nodes, t.maker);
                    self.unlink(i, t.qty.0);
                } else {
                    self.level_mut(side, s).total -= t.qty.0;
                }
                self.version += 1;
            }
            EventBody::OrderClosed { inst, order, .. } if *inst == self.spec.id => {
                if let Some(i) = self.index.remove(&self.nodes, *order) {
                    self.unlink(i, 0);
                    self.version += 1;
                }
            }
            EventBody::OrderAmended { inst, order, px, qty, keep_priority } if *inst == self.spec.id => {
                let i = self.index.get(&self.nodes, *order).expect("amended order rests in the book");
                if *keep_priority {
                    let n = &mut self.nodes[i as usize];
                    let cum = n.qty.0 - n.leaves.0;
                    let old = n.leaves.0;
                    n.qty = *qty;
                    n.leaves = Qty(qty.0 - cum);
                    let (side, p, s, new) = (n.side, n.px, n.level, n.leaves.0);
                    let l = self.level_mut(side, s);
                    l.total = l.total - old + new;
                    debug_assert_eq!(*px, p);
                } else {
                    self.index.remove(&self.nodes, *order);
                    self.unlink(i, 0);
                }
                self.version += 1;
            }
            EventBody::InstrumentStateSet { inst, state, .. } if *inst == self.spec.id => {
                self.spec.state = *state;
            }
            _ => {}
        }
    }

    /// The level in slot `s` of `side`'s ladder.
    #[inline]
    fn level_mut(&mut self, side: Side, s: u32) -> &mut Level {
        let m = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        &mut m.slots[s as usize]
    }

    fn insert(&mut self, mut node: Node, fee: FeeAcc) {
        assert!(self.index.len() < BOOK_ORDERS_MAX, "book full");
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.nodes.push(node);
                self.fees.push(FeeAcc::default());
                (self.nodes.len() - 1) as u32
            }
        };
        // A new order's accumulator is zero; one re-entering after fills
        // (an amend) brings its own.
        node.fee_held = fee != FeeAcc::default();
        if node.fee_held {
            self.fees[i as usize] = fee;
        }
        let (side, px, leaves) = (node.side, node.px, node.leaves.0);
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let s = levels.entry(px);
        let level = &mut levels.slots[s as usize];
        node.level = s;
        node.prev = level.tail;
        node.next = NIL;
        let old_tail = level.tail;
        if level.head == NIL {
            level.head = i;
        }
        level.tail = i;
        level.total += leaves;
        level.count += 1;
        self.nodes[i as usize] = node;
        if old_tail != NIL {
            self.nodes[old_tail as usize].next = i;
        }
        self.index.insert(&self.nodes, node.id, i);
        match side {
            Side::Buy if self.best_bid.is_none_or(|b| px > b) => self.best_bid = Some(px),
            Side::Sell if self.best_ask.is_none_or(|a| px < a) => self.best_ask = Some(px),
            _ => {}
        }
    }

    /// Takes the order in slot `i` out of its level and frees the slot;
    /// `taken` lots (its last fill) come off the level's total besides its
    /// leaves. The caller has removed it from the index.
    fn unlink(&mut self, i: u32, taken: u64) {
        let n = &self.nodes[i as usize];
        let (prev, next, side, s, leaves) = (n.prev, n.next, n.side, n.level, n.leaves);
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = &mut levels.slots[s as usize];
        if level.head == i {
            level.head = next;
        }
        if level.tail == i {
            level.tail = prev;
        }
        level.total -= leaves.0 + taken;
        level.count -= 1;
        if level.count == 0 {
            levels.remove(s);
            match side {
                Side::Buy => self.best_bid = self.bids.best(),
                Side::Sell => self.best_ask = self.asks.best(),
            }
        }
        self.free.push(i);
    }

    /// Checks the book's invariants; used by tests and debug builds.
    pub fn check(&self) {
        if let (Some(b), Some(a)) = (self.best_bid, self.best_ask) {
            assert!(b < a, "book crossed at rest: bid {b:?} >= ask {a:?}");
        }
        assert_eq!(self.best_bid, self.bids.best());
        assert_eq!(self.best_ask, self.asks.best());
        for ladder in [&self.bids, &self.asks] {
            assert!(ladder.keys.windows(2).all(|w| w[0] < w[1]), "levels sorted");
            assert!(ladder.keys.iter().copied().eq(ladder.worst_first().map(|l| ladder.rank(l.px))), "keys match levels");
            assert_eq!(ladder.order.len() + ladder.free.len(), ladder.slots.len(), "every slot a level's or free");
            let mut used = vec![false; ladder.slots.len()];
            for &s in ladder.order.iter().chain(&ladder.free) {
                assert!(!std::mem::replace(&mut used[s as usize], true), "slot {s} used twice");
            }
        }
        let mut count = 0;
        for (ladder, l, s) in [&self.bids, &self.asks].into_iter().flat_map(|m| m.order.iter().map(move |&s| (m, &m.slots[s as usize], s))) {
            let (mut i, mut total, mut c, mut prev) = (l.head, 0u64, 0u32, NIL);
            assert_eq!(ladder.get(l.px).map(|x| x.px), Some(l.px));
            while i != NIL {
                let n = &self.nodes[i as usize];
                assert_eq!(n.px, l.px);
                assert_eq!(n.level, s, "order {:?} names its level's slot", n.id);
                assert_eq!(n.prev, prev);
                assert_eq!(self.index.get(&self.nodes, n.id), Some(i), "the index finds order {:?} in its slot", n.id);
                assert!(n.leaves.0 > 0 && n.leaves <= n.qty);
                total += n.leaves.0;
                c += 1;
                prev = i;
                i = n.next;
            }
            assert_eq!(l.tail, prev);
            assert_eq!((total, c), (l.total, l.count));
            count += c as usize;
        }
        assert_eq!(count, self.index.len());
    }
}

/// The book as data, for snapshots: orders in priority order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookImage {
    pub spec: InstrumentSpec,
    pub orders: Vec<Resting>,
    pub version: u64,
    pub trade_id: u64,
    pub last_px: Option<Price>,
}

impl OrderBook {
    pub fn image(&self) -> BookImage {
        BookImage {
            spec: self.spec.clone(),
            orders: self.orders(),
            version: self.version,
            trade_id: self.trade_id,
            last_px: self.last_px,
        }
    }

    pub fn from_image(img: BookImage) -> Self {
        let mut b = OrderBook::new(img.spec);
        for o in img.orders {
            b.insert(Node {
                id: o.id,
                account: o.account,
                side: o.side,
                px: o.px,
                qty: o.qty,
                leaves: o.leaves,
                post_only: o.post_only,
                stp: o.stp,
                fee_held: false,
                prev: NIL,
                next: NIL,
                level: NIL,
            }, o.fee);
        }
        b.version = img.version;
        b.trade_id = img.trade_id;
        b.last_px = img.last_px;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node is one cache line, and each slot of the slab starts one.
    #[test]
    fn a_node_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Node>(), 64);
        assert_eq!(std::mem::align_of::<Node>(), 64);
    }
}
