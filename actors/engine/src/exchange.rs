//! The whole exchange as one deterministic state machine: the ledger and
//! every instrument's book, driven by commands, recording events.
//!
//! `execute` runs a command to completion in one step: hold in the ledger,
//! match in the book, settle in the ledger. The actors run the same steps in
//! separate mailboxes (the ledger's and each instrument's); replay, snapshots
//! and tests use this type. `apply` rebuilds state from events alone.

use serde::{Deserialize, Serialize};

use crate::book::{BookImage, OrderBook};
use crate::event::{Credential, Event, EventBody};
use crate::ledger::{AccountUpdate, Ledger, PlaceCmd, PlaceRefusal};
use crate::spec::InstrumentSpec;
use crate::types::*;

/// Refers to an order by its id or by its owner's `cl_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderRef {
    Id(OrderId),
    ClId(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateAsset { name: String, scale: u32, by: AccountId },
    CreateInstrument { listing: Listing, by: AccountId },
    SetState { inst: InstrumentId, state: InstrumentState, by: AccountId },
    CreateUser { user: String, role: Role, password_hash: String, by: AccountId },
    CreateApiKey { account: AccountId, key: String, credential: Credential, by: AccountId },
    /// An operator sets a user's password (its stored hash).
    SetPassword { user: String, password_hash: String, by: AccountId },
    Deposit { account: AccountId, asset: AssetId, amount: Amount, by: AccountId },
    Withdraw { account: AccountId, asset: AssetId, amount: Amount, by: AccountId },
    Place(PlaceCmd),
    Cancel { account: AccountId, inst: InstrumentId, order: OrderRef },
    Amend { account: AccountId, inst: InstrumentId, order: OrderRef, qty: Option<Qty>, px: Option<Price> },
    /// A client's cancel-all (`account` set, halted books passed over) or an
    /// operator's (`admin`, which clears halted books too).
    CancelAll { account: Option<AccountId>, inst: Option<InstrumentId>, side: Option<Side>, admin: bool },
}

/// An instrument to list, with its grids already parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub sym: String,
    pub base: AssetId,
    pub quote: AssetId,
    pub tick_raw: u64,
    pub price_scale: u32,
    pub lot_raw: u64,
    pub qty_scale: u32,
    pub min_qty: Qty,
    pub ref_px: Option<Price>,
    pub band_pct: u32,
    pub maker_fee_bps: u32,
    pub taker_fee_bps: u32,
}

/// What a command did, for its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Done,
    Asset(AssetId),
    Instrument(InstrumentId),
    User(AccountId),
    /// A new order, or the original one when `dup`.
    Placed { order: OrderId, dup: bool },
    Cancelled { order: OrderId },
    Amended { order: OrderId },
    CancelledAll { n: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub result: Result<Reply, Reject>,
}

#[derive(Clone, Debug, Default)]
pub struct Exchange {
    pub ledger: Ledger,
    /// Indexed by `InstrumentId - 1`.
    pub books: Vec<OrderBook>,
    /// The book's decisions for the command being executed, kept between
    /// commands so that its buffer is allocated once.
    scratch: Vec<EventBody>,
}

impl Exchange {
    pub fn new() -> Self {
        Exchange { ledger: Ledger::new(), books: Vec::new(), scratch: Vec::new() }
    }

    pub fn book(&self, inst: InstrumentId) -> Option<&OrderBook> {
        (inst.0 as usize).checked_sub(1).and_then(|i| self.books.get(i))
    }

    pub fn book_by_sym(&self, sym: &str) -> Option<&OrderBook> {
        self.books.iter().find(|b| b.spec.sym == sym)
    }

    /// Carries out one event on the ledger and on the book it concerns.
    pub fn apply(&mut self, e: &Event, out: Option<&mut Vec<AccountUpdate>>) {
        match &e.body {
            EventBody::InstrumentCreated { spec, .. } => self.list(spec),
            EventBody::InstrumentStateSet { inst, .. } => {
                if let Some(b) = (inst.0 as usize).checked_sub(1).and_then(|i| self.books.get_mut(i)) {
                    b.apply(&e.body);
                }
            }
            body => {
                if let Some(inst) = body.book() {
                    self.books[inst.0 as usize - 1].apply(body);
                }
            }
        }
        self.ledger.apply(e.ts, &e.body, out);
    }

    /// A new instrument's empty book. Out of line: it is rare, and the
    /// copy of the listing would otherwise enlarge `apply`'s stack frame
    /// for every event.
    #[inline(never)]
    fn list(&mut self, spec: &InstrumentSpec) {
        assert_eq!(spec.id.0 as usize, self.books.len() + 1, "instrument ids are dense");
        self.books.push(OrderBook::new(spec.clone()));
    }

    /// Records the release of what order `id` holds beyond its need, if
    /// anything (`Ledger::decide_release`). Out of line: it follows only
    /// amends and takers that rest, and a copy of `record` inlined here
    /// would weigh on every command's code.
    #[inline(never)]
    fn release_excess(&mut self, id: OrderId, ts: u64, events: &mut Vec<Event>, out: &mut Option<&mut Vec<AccountUpdate>>) {
        if let Some(release) = self.ledger.decide_release(id) {
            self.record(ts, release, events, out);
        }
    }

    fn record(&mut self, ts: u64, body: EventBody, events: &mut Vec<Event>, out: &mut Option<&mut Vec<AccountUpdate>>) {
        let e = Event { ts, body };
        self.apply(&e, out.as_deref_mut());
        events.push(e);
    }

    /// Asks for the memory `cmd` will read first (its account's record,
    /// and for a cancel or amend by id the order's record and book node),
    /// changing nothing. A caller holding a batch of commands calls it a
    /// few commands ahead of executing each, so that those reads, which
    /// miss the cache when the state outgrows it, overlap the commands
    /// before instead of stalling this one: one or two ahead did best on
    /// the bench's book, eight gave most of the gain back (BENCHMARKS.md,
    /// round 21). Two ahead, then `prefetch_next` one ahead.
    #[inline]
    pub fn prefetch(&self, cmd: &Command) {
        self.ledger.prefetch(cmd);
        self.prefetch_book(cmd);
    }

    /// The book's part of `prefetch`: a cancel's or amend's node, for a
    /// cancel or amend by id.
    #[inline]
    pub fn prefetch_book(&self, cmd: &Command) {
        if let Command::Cancel { inst, order: OrderRef::Id(id), .. } | Command::Amend { inst, order: OrderRef::Id(id), .. } = cmd {
            if let Some(b) = self.book(*inst) {
                b.prefetch_order(*id);
            }
        }
    }

    /// The second step of `prefetch`, for the command that runs next: asks
    /// for what a cancel by id touches once its first reads are in, by
    /// reading them (the order's node, in cache by then): the order's
    /// neighbours in its level and the level. About 2% on the bench's
    /// `mixed`, more beside a neighbour that takes the shared cache
    /// (BENCHMARKS.md, round 21).
    #[inline]
    pub fn prefetch_next(&self, cmd: &Command) {
        if let Command::Cancel { inst, order: OrderRef::Id(id), .. } = cmd {
            if let Some(b) = self.book(*inst) {
                b.prefetch_links(*id);
            }
        }
    }

    pub fn execute(&mut self, cmd: Command, ts: u64) -> Outcome {
        self.execute_with(cmd, ts, None)
    }

    /// Decides `cmd` at time `ts`, applies its events and returns them;
    /// private-stream messages go to `out` when given.
    pub fn execute_with(&mut self, cmd: Command, ts: u64, mut out: Option<&mut Vec<AccountUpdate>>) -> Outcome {
        let mut events = Vec::new();
        let result = self.decide_and_apply(cmd, ts, &mut events, &mut out);
        Outcome { events, result }
    }

    /// Decides `cmd` at time `ts` and applies its events, appending them to
    /// `events` (a buffer the caller keeps between commands, as a batch of
    /// events on its way to the log is); private-stream messages go to `out`
    /// when given. The same as `execute_with` but for where the events go.
    pub fn execute_into(
        &mut self,
        cmd: Command,
        ts: u64,
        events: &mut Vec<Event>,
        mut out: Option<&mut Vec<AccountUpdate>>,
    ) -> Result<Reply, Reject> {
        self.decide_and_apply(cmd, ts, events, &mut out)
    }

    fn decide_and_apply(
        &mut self,
        cmd: Command,
        ts: u64,
        events: &mut Vec<Event>,
        out: &mut Option<&mut Vec<AccountUpdate>>,
    ) -> Result<Reply, Reject> {
        match cmd {
            Command::CreateAsset { .. }
            | Command::CreateInstrument { .. }
            | Command::SetState { .. }
            | Command::CreateUser { .. }
            | Command::CreateApiKey { .. }
            | Command::SetPassword { .. }
            | Command::Deposit { .. }
            | Command::Withdraw { .. } => {
                let (e, reply) = self.ledger.decide_admin(cmd)?;
                self.record(ts, e, events, out);
                Ok(reply)
            }
            Command::Place(c) => {
                let accepted = match self.ledger.decide_place(&c) {
                    Ok(e) => e,
                    Err(PlaceRefusal::Duplicate(order)) => return Ok(Reply::Placed { order, dup: true }),
                    Err(PlaceRefusal::Reject(r)) => return Err(r),
                };
                let EventBody::OrderAccepted { order } = &accepted else { unreachable!() };
                // The book decides from its own state, which the acceptance
                // (a ledger event) does not change: decide first, then record both.
                let mut bodies = std::mem::take(&mut self.scratch);
                bodies.clear();
                self.books[c.inst.0 as usize - 1].decide_place(order, &mut bodies);
                let id = order.id;
                self.record(ts, accepted, events, out);
                // A taker that rests what is left keeps only what the rest
                // needs: its resting is the book's last event, with fewer
                // lots left than it has.
                let rests_after_trading = rests_after_trading(&bodies, id);
                let mut rejected = None;
                for b in bodies.drain(..) {
                    if let EventBody::OrderRejected { code, .. } = &b {
                        rejected = Some(*code);
                    }
                    self.record(ts, b, events, out);
                }
                self.scratch = bodies;
                if rests_after_trading {
                    self.release_excess(id, ts, events, out);
                }
                match rejected {
                    Some(code) => Err(Reject::new(code, reject_text(code))),
                    None => Ok(Reply::Placed { order: id, dup: false }),
                }
            }
            Command::Cancel { account, inst, order } => {
                let id = match order {
                    // An open order rests in its book (a command runs to
                    // completion), so the book alone can say that `id` is
                    // not this account's open order there: a cancel that
                    // comes too late is answered without reading the
                    // ledger's record of an order long gone. One that rests
                    // is resolved as before (its record is read now, beside
                    // the book's node, rather than after it).
                    OrderRef::Id(id) if self.book(inst).and_then(|b| b.owner(id)) != Some(account) => {
                        debug_assert!(self.resolve(account, inst, &order).is_err(), "order {id:?} is open");
                        return Err(no_open_order());
                    }
                    _ => self.resolve(account, inst, &order)?,
                };
                let book = self.book(inst).ok_or_else(|| Reject::new(RejectCode::UnknownInstrument, "unknown instrument"))?;
                let e = book.decide_cancel(Some(account), id, CancelReason::User, false)?;
                self.record(ts, e, events, out);
                Ok(Reply::Cancelled { order: id })
            }
            Command::Amend { account, inst, order, qty, px } => {
                let id = self.resolve(account, inst, &order)?;
                let mut bodies = std::mem::take(&mut self.scratch);
                bodies.clear();
                let book = self.book(inst).ok_or_else(|| Reject::new(RejectCode::UnknownInstrument, "unknown instrument"))?;
                // The book's checks first, so a refused amend records nothing.
                book.decide_amend(account, id, qty, px, &mut bodies)?;
                if let Some(hold) = self.ledger.decide_amend_hold(account, id, qty, px)? {
                    self.record(ts, hold, events, out);
                }
                for b in bodies.drain(..) {
                    self.record(ts, b, events, out);
                }
                self.scratch = bodies;
                self.release_excess(id, ts, events, out);
                Ok(Reply::Amended { order: id })
            }
            Command::CancelAll { account, inst, side, admin } => {
                let mut bodies = Vec::new();
                for b in &self.books {
                    if inst.is_none_or(|i| i == b.spec.id) {
                        b.decide_cancel_all(account, side, admin, &mut bodies);
                    }
                }
                if let Some(i) = inst {
                    self.book(i).ok_or_else(|| Reject::new(RejectCode::UnknownInstrument, "unknown instrument"))?;
                }
                let n = bodies.len() as u64;
                for b in bodies {
                    self.record(ts, b, events, out);
                }
                Ok(Reply::CancelledAll { n })
            }
        }
    }

    /// The open order an `OrderRef` names in `inst` for `account`.
    pub fn resolve(&self, account: AccountId, inst: InstrumentId, r: &OrderRef) -> Result<OrderId, Reject> {
        let id = match r {
            OrderRef::Id(id) => Some(*id),
            OrderRef::ClId(cl) => self.ledger.open_order_by_cl_id(account, cl),
        };
        // The id found, not the record's copy of it: resolving reads only
        // the record's block of account, instrument and state.
        match id.and_then(|id| Some((id, self.ledger.order(id)?))) {
            Some((id, o)) if o.account == account && o.inst == inst && o.status.is_open() => Ok(id),
            _ => Err(no_open_order()),
        }
    }

    /// Asserts every invariant of the ledger and the books.
    pub fn check(&self) {
        self.ledger.check();
        for b in &self.books {
            b.check();
            for o in b.orders() {
                let l = self.ledger.order(o.id).expect("a resting order is known to the ledger");
                assert!(l.status.is_open() && l.resting, "{:?} rests but the ledger has it {:?}", o.id, l.status);
                assert_eq!(l.qty, Some(o.qty));
                assert_eq!(l.cum.0 + o.leaves.0, o.qty.0);
            }
        }
    }

    // ---- snapshots ----------------------------------------------------

    pub fn image(&self) -> ExchangeImage {
        ExchangeImage { ledger: self.ledger.clone(), books: self.books.iter().map(|b| b.image()).collect() }
    }

    pub fn from_image(img: ExchangeImage) -> Self {
        Exchange {
            ledger: img.ledger,
            books: img.books.into_iter().map(OrderBook::from_image).collect(),
            scratch: Vec::new(),
        }
    }

    /// SHA-256 of the state's canonical encoding.
    pub fn state_hash(&self) -> [u8; 32] {
        let bytes = rmp_serde::to_vec(&self.image()).expect("state encodes");
        let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
        d.as_ref().try_into().expect("32 bytes")
    }

    /// A snapshot: the encoded state followed by its SHA-256.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut bytes = rmp_serde::to_vec(&self.image()).expect("state encodes");
        let d = ring::digest::digest(&ring::digest::SHA256, &bytes);
        bytes.extend_from_slice(d.as_ref());
        bytes
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        if bytes.len() < 32 {
            return Err(SnapshotError::Truncated);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        let d = ring::digest::digest(&ring::digest::SHA256, body);
        if d.as_ref() != sum {
            return Err(SnapshotError::Checksum);
        }
        let img: ExchangeImage = rmp_serde::from_slice(body).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        Ok(Exchange::from_image(img))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is truncated")]
    Truncated,
    #[error("snapshot checksum does not match")]
    Checksum,
    #[error("snapshot does not decode: {0}")]
    Decode(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExchangeImage {
    pub ledger: Ledger,
    pub books: Vec<BookImage>,
}

/// Whether the book's decisions on new order `id` end with it resting
/// after it traded (fewer lots left than it has).
pub fn rests_after_trading(bodies: &[EventBody], id: OrderId) -> bool {
    matches!(bodies.last(), Some(EventBody::OrderOpened { order, qty, leaves, .. }) if *order == id && leaves < qty)
}

fn no_open_order() -> Reject {
    Reject::new(RejectCode::UnknownOrder, "no such open order")
}

/// The message of a book's refusal.
pub fn reject_text(code: RejectCode) -> &'static str {
    match code {
        RejectCode::MarketClosed => "the instrument is not trading",
        RejectCode::PriceBand => "price outside the instrument's band",
        RejectCode::PostOnlyWouldTake => "post-only order would take liquidity",
        RejectCode::FokUnfilled => "fill-or-kill order cannot be filled in full",
        RejectCode::InsufficientFunds => "quote_qty cannot buy one lot at the best ask",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::PlaceCmd;

    /// BTC (asset 2) against USD (asset 1), priced around 100.
    fn btc_usd() -> Listing {
        Listing {
            sym: "BTC-USD".into(), base: AssetId(2), quote: AssetId(1), tick_raw: 1, price_scale: 0, lot_raw: 1, qty_scale: 2,
            min_qty: Qty(1), ref_px: Some(Price(100)), band_pct: 50, maker_fee_bps: 10, taker_fee_bps: 20,
        }
    }

    /// A GTC limit order of account `acc` on BTC-USD.
    fn limit(acc: u64, side: Side, px: u64, qty: u64, cl: &str) -> Command {
        Command::Place(PlaceCmd {
            account: AccountId(acc), inst: InstrumentId(1), cl_id: ClId::new(cl).expect("short"), side, kind: OrderType::Limit, tif: None,
            px: Some(Price(px)), qty: Some(Qty(qty)), quote_qty: None, post_only: false, stp: Stp::CancelNewest,
        })
    }

    /// BTC-USD listed, and two traders: account 1 with USD, account 2 with BTC.
    fn two_traders() -> Vec<Command> {
        let admin = AccountId(0);
        vec![
            Command::CreateAsset { name: "USD".into(), scale: 2, by: admin },
            Command::CreateAsset { name: "BTC".into(), scale: 8, by: admin },
            Command::CreateInstrument { listing: btc_usd(), by: admin },
            Command::CreateUser { user: "a".into(), role: Role::Trader, password_hash: String::new(), by: admin },
            Command::CreateUser { user: "b".into(), role: Role::Trader, password_hash: String::new(), by: admin },
            Command::Deposit { account: AccountId(1), asset: AssetId(1), amount: Amount(10_000_000), by: admin },
            Command::Deposit { account: AccountId(2), asset: AssetId(2), amount: Amount(1_000_000_000), by: admin },
        ]
    }

    /// `execute_into` appends exactly the events `execute` returns and
    /// leaves the same state, command after command into one buffer.
    #[test]
    fn execute_into_appends_what_execute_returns() {
        let place = limit;
        let mut cmds = two_traders();
        cmds.push(place(1, Side::Buy, 100, 10, "x"));
        cmds.push(place(1, Side::Buy, 99, 10, "y"));
        cmds.push(place(2, Side::Sell, 99, 15, "z"));
        cmds.push(place(2, Side::Sell, 200, 1, "far"));
        cmds.push(Command::Cancel { account: AccountId(1), inst: InstrumentId(1), order: OrderRef::ClId("y".into()) });
        cmds.push(Command::Cancel { account: AccountId(1), inst: InstrumentId(1), order: OrderRef::ClId("y".into()) });
        let (mut a, mut b) = (Exchange::new(), Exchange::new());
        let (mut all, mut buf) = (Vec::new(), Vec::new());
        for (i, c) in cmds.into_iter().enumerate() {
            let ts = 1 + i as u64;
            let o = a.execute(c.clone(), ts);
            let before = buf.len();
            let r = b.execute_into(c, ts, &mut buf, None);
            assert_eq!(r, o.result);
            assert_eq!(&buf[before..], &o.events[..]);
            all.extend(o.events);
        }
        assert!(all.iter().any(|e| matches!(e.body, EventBody::Traded(_))));
        assert_eq!(buf, all);
        assert_eq!(a.state_hash(), b.state_hash());
    }

    /// Asking ahead for a command's memory changes nothing and never
    /// fails, whatever the command names: a run that asks before every
    /// command (and for commands naming unknown accounts, instruments and
    /// orders) ends in the same state as one that does not.
    #[test]
    fn prefetch_changes_nothing() {
        let place = limit;
        let mut cmds = two_traders();
        for k in 0..40u64 {
            cmds.push(place(1, Side::Buy, 90 + k % 10, 1 + k % 3, &format!("b{k}")));
            cmds.push(place(2, Side::Sell, 101 + k % 7, 2, &format!("s{k}")));
            if k % 4 == 3 {
                cmds.push(Command::Cancel { account: AccountId(1), inst: InstrumentId(1), order: OrderRef::Id(OrderId(k * 2 - 1)) });
                cmds.push(place(2, Side::Sell, 95, 3, &format!("t{k}")));
                cmds.push(Command::Amend { account: AccountId(2), inst: InstrumentId(1), order: OrderRef::ClId(format!("s{k}")), qty: Some(Qty(1)), px: None });
            }
        }
        let strays = [
            Command::Cancel { account: AccountId(77), inst: InstrumentId(1), order: OrderRef::Id(OrderId(3)) },
            Command::Cancel { account: AccountId(1), inst: InstrumentId(0), order: OrderRef::Id(OrderId(1)) },
            Command::Cancel { account: AccountId(1), inst: InstrumentId(9), order: OrderRef::Id(OrderId(u64::MAX)) },
            Command::Amend { account: AccountId(2), inst: InstrumentId(1), order: OrderRef::Id(OrderId(0)), qty: None, px: None },
            place(99, Side::Buy, 100, 1, "z"),
        ];
        let (mut a, mut b) = (Exchange::new(), Exchange::new());
        for (i, c) in cmds.into_iter().enumerate() {
            let ts = 1 + i as u64;
            for s in &strays {
                b.prefetch(s);
                b.prefetch_next(s);
            }
            b.prefetch(&c);
            b.prefetch_next(&c);
            let (x, y) = (a.execute(c.clone(), ts), b.execute(c, ts));
            assert_eq!(x, y);
        }
        assert_eq!(a.state_hash(), b.state_hash());
        assert!(a.book(InstrumentId(1)).expect("listed").order_count() > 10, "the book has resting orders to ask for");
    }

    /// An account at the limit of remembered `cl_id`s forgets the oldest
    /// first, whichever queue keeps it (a counter's `cl_id`s, and others
    /// at random), and a snapshot taken there decodes to the same state,
    /// which then forgets the same next one.
    #[test]
    fn the_cl_id_limit_forgets_the_oldest_first() {
        use crate::ledger::CL_IDS_PER_ACCOUNT_MAX;
        let admin = AccountId(0);
        let listing = btc_usd();
        let mut ex = Exchange::new();
        let mut ts = 0;
        let mut run = |ex: &mut Exchange, c: Command| {
            ts += 1;
            ex.execute(c, ts).result.expect("accepted");
        };
        run(&mut ex, Command::CreateAsset { name: "USD".into(), scale: 2, by: admin });
        run(&mut ex, Command::CreateAsset { name: "BTC".into(), scale: 8, by: admin });
        run(&mut ex, Command::CreateInstrument { listing, by: admin });
        run(&mut ex, Command::CreateUser { user: "a".into(), role: Role::Trader, password_hash: String::new(), by: admin });
        let acc = AccountId(1);
        run(&mut ex, Command::Deposit { account: acc, asset: AssetId(1), amount: Amount(1_000_000_000), by: admin });
        // One order in three has a cl_id that does not rise.
        let cl = |k: usize| if k % 3 == 2 { format!("r{:x}", (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) } else { format!("c{k}") };
        // IOC into an empty book: accepted, closed, remembered.
        let ioc = |k: usize| {
            Command::Place(PlaceCmd {
                account: acc, inst: InstrumentId(1), cl_id: ClId::new(&cl(k)).expect("short"), side: Side::Buy, kind: OrderType::Limit,
                tif: Some(Tif::Ioc), px: Some(Price(100)), qty: Some(Qty(1)), quote_qty: None, post_only: false, stp: Stp::CancelNewest,
            })
        };
        let over = 7;
        let mut events = Vec::new();
        for k in 0..CL_IDS_PER_ACCOUNT_MAX + over {
            ts += 1;
            ex.execute_into(ioc(k), ts, &mut events, None).expect("placed");
            events.clear();
        }
        let known = |ex: &Exchange, k: usize| ex.ledger.order_by_cl_id(acc, &cl(k)).is_some();
        assert!((0..over).all(|k| !known(&ex, k)), "the oldest are forgotten");
        assert!((over..over + 10).all(|k| known(&ex, k)));
        assert!(known(&ex, CL_IDS_PER_ACCOUNT_MAX + over - 1));
        let mut back = Exchange::decode_snapshot(&ex.encode_snapshot()).expect("decodes");
        assert_eq!(back.state_hash(), ex.state_hash());
        for e in [&mut ex, &mut back] {
            e.execute_into(ioc(CL_IDS_PER_ACCOUNT_MAX + over), ts + 1, &mut events, None).expect("placed");
            events.clear();
            assert!(!known(e, over) && known(e, over + 1), "the next oldest goes");
        }
        assert_eq!(back.state_hash(), ex.state_hash());
    }

    /// An account with `OPEN_ORDERS_PER_ACCOUNT_MAX` open orders may not
    /// rest another (on any instrument), changing nothing; it can still
    /// trade with IOC and market orders, and one cancel lets one more rest.
    #[test]
    fn an_account_at_its_open_order_limit_rests_no_more() {
        use crate::ledger::OPEN_ORDERS_PER_ACCOUNT_MAX;
        let mut ex = Exchange::new();
        let mut ts = 0;
        let mut run = |ex: &mut Exchange, c: Command| {
            ts += 1;
            ex.execute(c, ts)
        };
        for c in two_traders() {
            run(&mut ex, c).result.expect("set up");
        }
        for k in 0..OPEN_ORDERS_PER_ACCOUNT_MAX as u64 {
            run(&mut ex, limit(1, Side::Buy, 60 + k % 30, 1, &format!("b{k}"))).result.expect("rests");
        }
        run(&mut ex, limit(2, Side::Sell, 140, 1, "s0")).result.expect("another account rests");
        let before = ex.state_hash();
        let over = run(&mut ex, limit(1, Side::Buy, 70, 1, "over"));
        assert_eq!(over.result.map_err(|r| r.code), Err(RejectCode::TooManyOpenOrders));
        assert!(over.events.is_empty());
        assert_eq!(ex.state_hash(), before, "a refused order changes nothing");
        let post_only = Command::Place(PlaceCmd {
            account: AccountId(1), inst: InstrumentId(1), cl_id: ClId::new("po").expect("short"), side: Side::Buy, kind: OrderType::Limit,
            tif: None, px: Some(Price(80)), qty: Some(Qty(1)), quote_qty: None, post_only: true, stp: Stp::CancelNewest,
        });
        assert_eq!(run(&mut ex, post_only).result.map_err(|r| r.code), Err(RejectCode::TooManyOpenOrders));
        // An IOC that takes the ask and a market buy into an empty side
        // both pass: neither can rest.
        let ioc = Command::Place(PlaceCmd {
            account: AccountId(1), inst: InstrumentId(1), cl_id: ClId::new("ioc").expect("short"), side: Side::Buy, kind: OrderType::Limit,
            tif: Some(Tif::Ioc), px: Some(Price(140)), qty: Some(Qty(1)), quote_qty: None, post_only: false, stp: Stp::CancelNewest,
        });
        let taken = run(&mut ex, ioc);
        assert!(taken.result.is_ok() && taken.events.iter().any(|e| matches!(e.body, EventBody::Traded(_))), "{taken:?}");
        let market = Command::Place(PlaceCmd {
            account: AccountId(1), inst: InstrumentId(1), cl_id: ClId::new("mkt").expect("short"), side: Side::Buy, kind: OrderType::Market,
            tif: None, px: None, qty: None, quote_qty: Some(Amount(10_000)), post_only: false, stp: Stp::CancelNewest,
        });
        assert!(run(&mut ex, market).result.is_ok());
        assert_eq!(ex.ledger.open_orders(AccountId(1), None).len(), OPEN_ORDERS_PER_ACCOUNT_MAX);
        let gone = run(&mut ex, Command::Cancel { account: AccountId(1), inst: InstrumentId(1), order: OrderRef::ClId("b0".into()) });
        assert!(gone.result.is_ok());
        run(&mut ex, limit(1, Side::Buy, 70, 1, "again")).result.expect("room for one more");
        assert_eq!(run(&mut ex, limit(1, Side::Buy, 70, 1, "again2")).result.map_err(|r| r.code), Err(RejectCode::TooManyOpenOrders));
        ex.check();
    }

    /// An amend that lowers an order's price or quantity releases what it
    /// held beyond its new need, as one `HoldReleased` after the book's
    /// events; one that raises them holds more first; a refused amend
    /// changes neither. Replaying the events gives the same state.
    #[test]
    fn an_amend_down_releases_what_the_order_no_longer_needs() {
        let mut ex = Exchange::new();
        let mut all = Vec::new();
        let mut ts = 0;
        let mut run = |ex: &mut Exchange, c: Command, all: &mut Vec<Event>| {
            ts += 1;
            let o = ex.execute(c, ts);
            all.extend(o.events.clone());
            o
        };
        for c in two_traders() {
            run(&mut ex, c, &mut all).result.expect("set up");
        }
        let usd = |ex: &Exchange| ex.ledger.balance(AccountId(1), AssetId(1));
        let btc = |ex: &Exchange| ex.ledger.balance(AccountId(2), AssetId(2));
        let amend = |acc: u64, cl: &str, qty: Option<u64>, px: Option<u64>| Command::Amend {
            account: AccountId(acc), inst: InstrumentId(1), order: OrderRef::ClId(cl.into()), qty: qty.map(Qty), px: px.map(Price),
        };
        // A buy of 10 lots at 100 (a lot is 0.01 BTC, the price in whole USD):
        // 10.00 USD of notional and 0.02 of worst-case fee (20 bps).
        run(&mut ex, limit(1, Side::Buy, 100, 10, "b"), &mut all).result.expect("rests");
        assert_eq!(usd(&ex).held, 1_002);
        let down = run(&mut ex, amend(1, "b", None, Some(90)), &mut all);
        assert!(down.result.is_ok());
        assert!(matches!(down.events.last().map(|e| &e.body), Some(EventBody::HoldReleased { amount: Amount(100), .. })), "{down:?}");
        assert_eq!((usd(&ex).held, usd(&ex).available), (902, 10_000_000 - 902));
        run(&mut ex, amend(1, "b", Some(5), None), &mut all).result.expect("amended");
        assert_eq!(usd(&ex).held, 451);
        let up = run(&mut ex, amend(1, "b", Some(8), Some(95)), &mut all);
        assert!(matches!(up.events.first().map(|e| &e.body), Some(EventBody::HoldAdded { .. })), "{up:?}");
        assert!(!up.events.iter().any(|e| matches!(e.body, EventBody::HoldReleased { .. })));
        assert_eq!(usd(&ex).held, 762);
        // A sell of 10 lots holds 10 lots of BTC; half of it is released.
        run(&mut ex, limit(2, Side::Sell, 120, 10, "s"), &mut all).result.expect("rests");
        let held = btc(&ex).held;
        run(&mut ex, amend(2, "s", Some(5), None), &mut all).result.expect("amended");
        assert_eq!(btc(&ex).held, held / 2);
        // An amend that crosses trades first; what is left is released
        // down to the rest's need (none once it has filled).
        run(&mut ex, limit(2, Side::Sell, 96, 3, "s2"), &mut all).result.expect("rests");
        let cross = run(&mut ex, amend(1, "b", None, Some(97)), &mut all);
        assert!(cross.events.iter().any(|e| matches!(e.body, EventBody::Traded(_))), "{cross:?}");
        ex.check();
        let mut back = Exchange::new();
        for e in &all {
            back.apply(e, None);
        }
        assert_eq!(back.state_hash(), ex.state_hash());
    }

    /// A buy that trades below its price and rests the rest releases the
    /// difference at once (one `HoldReleased` after the book's events);
    /// one that rests without trading, or fills completely, releases
    /// nothing that way.
    #[test]
    fn a_taker_that_rests_keeps_only_what_its_rest_needs() {
        let mut ex = Exchange::new();
        for (i, c) in two_traders().into_iter().enumerate() {
            ex.execute(c, i as u64 + 1).result.expect("set up");
        }
        ex.execute(limit(2, Side::Sell, 96, 3, "s"), 10).result.expect("rests");
        let o = ex.execute(limit(1, Side::Buy, 100, 8, "b"), 11);
        assert!(matches!(o.events.last().map(|e| &e.body), Some(EventBody::HoldReleased { .. })), "{o:?}");
        // 5 lots left at 100: 500 cents, and the fee the whole order may
        // still add: ceil(20 bps of 288 + 500) = 2, less the 1 paid.
        assert_eq!(ex.ledger.balance(AccountId(1), AssetId(1)).held, 501);
        let rest = ex.execute(limit(1, Side::Buy, 90, 2, "r"), 12);
        assert!(!rest.events.iter().any(|e| matches!(e.body, EventBody::HoldReleased { .. })));
        ex.check();
    }
}
