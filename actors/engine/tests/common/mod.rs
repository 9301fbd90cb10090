//! A small exchange for tests: USD (scale 2) and BTC (scale 8), the
//! instrument BTC-USD (tick 1 USD, lot 0.01 BTC, so one tick x one lot is one
//! cent; maker 10 bps, taker 20 bps), funded traders, and helpers to place,
//! cancel and amend. Every command goes through `Harness::exec`, which checks
//! the exchange's invariants after it and feeds its events to a replica that
//! is rebuilt by `apply` alone, so every test also checks replay.

#![allow(dead_code)]

use bourse_engine::book::Resting;
use bourse_engine::exchange::Listing;
use bourse_engine::*;

/// The operator account that funds traders and lists instruments.
pub const OPS: AccountId = AccountId(1);
/// Satoshis in one lot of BTC-USD (0.01 BTC).
pub const SATS_PER_LOT: u64 = 1_000_000;

/// The listing used unless a test asks for another.
pub fn btc_usd(usd: AssetId, btc: AssetId) -> Listing {
    Listing {
        sym: "BTC-USD".into(),
        base: btc,
        quote: usd,
        tick_raw: 1,
        price_scale: 0,
        lot_raw: 1,
        qty_scale: 2,
        min_qty: Qty(1),
        ref_px: None,
        band_pct: 10,
        maker_fee_bps: 10,
        taker_fee_bps: 20,
    }
}

/// A limit GTC order; change the fields for other kinds.
pub fn lim(account: AccountId, side: Side, px: u64, qty: u64) -> PlaceCmd {
    PlaceCmd {
        account,
        inst: InstrumentId(1),
        cl_id: ClId::default(),
        side,
        kind: OrderType::Limit,
        tif: None,
        px: Some(Price(px)),
        qty: Some(Qty(qty)),
        quote_qty: None,
        post_only: false,
        stp: Stp::CancelNewest,
    }
}

pub fn with_tif(mut c: PlaceCmd, tif: Tif) -> PlaceCmd {
    c.tif = Some(tif);
    c
}

pub fn with_stp(mut c: PlaceCmd, stp: Stp) -> PlaceCmd {
    c.stp = stp;
    c
}

pub fn post_only(mut c: PlaceCmd) -> PlaceCmd {
    c.post_only = true;
    c
}

pub fn with_cl(mut c: PlaceCmd, cl_id: &str) -> PlaceCmd {
    // One too long to hold arrives empty, as the session passes it.
    c.cl_id = ClId::new(cl_id).unwrap_or_default();
    c
}

/// A market order by quantity (IOC).
pub fn mkt(account: AccountId, side: Side, qty: u64) -> PlaceCmd {
    PlaceCmd { kind: OrderType::Market, px: None, ..lim(account, side, 0, qty) }
}

/// A market buy spending at most `budget` cents, fee included.
pub fn mkt_quote(account: AccountId, budget: u64) -> PlaceCmd {
    PlaceCmd { qty: None, quote_qty: Some(Amount(budget)), ..mkt(account, Side::Buy, 0) }
}

pub struct Harness {
    pub ex: Exchange,
    /// Rebuilt from the events alone.
    pub replica: Exchange,
    /// Every event so far.
    pub log: Vec<Event>,
    pub ts: u64,
    pub usd: AssetId,
    pub btc: AssetId,
    pub inst: InstrumentId,
    next_cl: u64,
    /// Compare the replica's state hash after every command (off for big setups).
    pub hash_every_command: bool,
    /// Check the invariants after every this many commands (1 unless a big
    /// setup would make the checks quadratic).
    pub check_every: u64,
    commands: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness::with_listing(|_| {})
    }

    /// The test exchange with the BTC-USD listing changed by `f`.
    pub fn with_listing(f: impl FnOnce(&mut Listing)) -> Self {
        let mut h = Harness {
            ex: Exchange::new(),
            replica: Exchange::new(),
            log: Vec::new(),
            ts: 1_000_000,
            usd: AssetId(0),
            btc: AssetId(0),
            inst: InstrumentId(0),
            next_cl: 0,
            hash_every_command: true,
            check_every: 1,
            commands: 0,
        };
        let ops = h.ok(Command::CreateUser {
            user: "ops".into(),
            role: Role::Operator,
            password_hash: "x".into(),
            by: FEE_ACCOUNT,
        });
        assert_eq!(ops, Reply::User(OPS));
        let Reply::Asset(usd) = h.ok(Command::CreateAsset { name: "USD".into(), scale: 2, by: OPS }) else {
            panic!("asset")
        };
        let Reply::Asset(btc) = h.ok(Command::CreateAsset { name: "BTC".into(), scale: 8, by: OPS }) else {
            panic!("asset")
        };
        h.usd = usd;
        h.btc = btc;
        let mut listing = btc_usd(usd, btc);
        f(&mut listing);
        let Reply::Instrument(inst) = h.ok(Command::CreateInstrument { listing, by: OPS }) else {
            panic!("instrument")
        };
        assert_eq!(inst, InstrumentId(1));
        h.inst = inst;
        h
    }

    /// Runs a command, checks every invariant after it, and applies its
    /// events to the replica.
    pub fn exec(&mut self, cmd: Command) -> Outcome {
        self.ts += 1;
        let out = self.ex.execute(cmd, self.ts);
        self.commands += 1;
        if self.commands.is_multiple_of(self.check_every) {
            self.ex.check();
            self.check_open_orders_rest();
        }
        for e in &out.events {
            assert_eq!(e.ts, self.ts, "events carry their command's time");
            check_fill_within_remaining(&self.replica, e);
            self.replica.apply(e, None);
        }
        if self.hash_every_command {
            assert_eq!(self.replica.state_hash(), self.ex.state_hash(), "replay differs from the live state");
        }
        self.log.extend(out.events.iter().cloned());
        out
    }

    /// Every open order in the ledger rests in its book (`execute` runs a
    /// command to completion, so nothing is in flight between commands).
    pub fn check_open_orders_rest(&self) {
        let mut in_books: Vec<OrderId> = self.ex.books.iter().flat_map(|b| b.orders()).map(|o| o.id).collect();
        in_books.sort();
        let mut open: Vec<OrderId> = self.ex.ledger.orders.values().filter(|o| o.status.is_open()).map(|o| o.id).collect();
        open.sort();
        assert_eq!(open, in_books, "open orders in the ledger are exactly the resting orders");
        for acc in self.ex.ledger.accounts.values() {
            for id in &acc.open {
                assert!(self.ex.ledger.order(*id).is_some_and(|o| o.status.is_open()));
            }
        }
    }

    /// Checks the replica against the live exchange and a snapshot round trip.
    pub fn verify_replay(&self) {
        assert_eq!(self.replica.state_hash(), self.ex.state_hash(), "replay differs from the live state");
        let snap = Exchange::decode_snapshot(&self.ex.encode_snapshot()).expect("snapshot decodes");
        assert_eq!(snap.state_hash(), self.ex.state_hash(), "snapshot round trip changes the state");
        let mut full = Exchange::new();
        for e in &self.log {
            full.apply(e, None);
        }
        assert_eq!(full.state_hash(), self.ex.state_hash(), "replay of the whole log differs");
    }

    /// Runs a command that must succeed.
    pub fn ok(&mut self, cmd: Command) -> Reply {
        let dbg = format!("{cmd:?}");
        match self.exec(cmd).result {
            Ok(r) => r,
            Err(e) => panic!("{dbg} refused: {e}"),
        }
    }

    /// Runs a command that must be refused with `code`, and checks that it
    /// changed no balance, no order and no book.
    pub fn refused(&mut self, cmd: Command, code: RejectCode) -> Reject {
        let before = self.visible();
        let dbg = format!("{cmd:?}");
        let out = self.exec(cmd);
        match out.result {
            Err(r) => {
                assert_eq!(r.code, code, "{dbg}: {r}");
                assert_eq!(self.visible(), before, "{dbg}: a refused command changed something");
                r
            }
            Ok(r) => panic!("{dbg}: expected {code:?}, got {r:?}"),
        }
    }

    /// What clients can see: balances, open orders and the books.
    pub fn visible(&self) -> Visible {
        visible(&self.ex)
    }

    // ---- accounts -------------------------------------------------------

    /// A trader with `usd_cents` and `btc_sats`.
    pub fn trader(&mut self, name: &str, usd_cents: u64, btc_sats: u64) -> AccountId {
        let Reply::User(a) = self.ok(Command::CreateUser {
            user: name.into(),
            role: Role::Trader,
            password_hash: "x".into(),
            by: OPS,
        }) else {
            panic!("user")
        };
        if usd_cents > 0 {
            self.deposit(a, self.usd, usd_cents);
        }
        if btc_sats > 0 {
            self.deposit(a, self.btc, btc_sats);
        }
        a
    }

    pub fn deposit(&mut self, account: AccountId, asset: AssetId, amount: u64) -> Outcome {
        self.exec(Command::Deposit { account, asset, amount: Amount(amount), by: OPS })
    }

    pub fn withdraw(&mut self, account: AccountId, asset: AssetId, amount: u64) -> Outcome {
        self.exec(Command::Withdraw { account, asset, amount: Amount(amount), by: OPS })
    }

    pub fn set_state(&mut self, state: InstrumentState) {
        self.ok(Command::SetState { inst: self.inst, state, by: OPS });
    }

    pub fn usd(&self, a: AccountId) -> Balance {
        self.ex.ledger.balance(a, self.usd)
    }

    pub fn btc(&self, a: AccountId) -> Balance {
        self.ex.ledger.balance(a, self.btc)
    }

    pub fn fees(&self) -> u64 {
        self.usd(FEE_ACCOUNT).available
    }

    // ---- orders ---------------------------------------------------------

    /// Places `c`, giving it a fresh `cl_id` when it has none.
    pub fn submit(&mut self, mut c: PlaceCmd) -> Outcome {
        if c.cl_id.is_empty() {
            self.next_cl += 1;
            c.cl_id = ClId::new(&format!("c{}", self.next_cl)).expect("short");
        }
        self.exec(Command::Place(c))
    }

    /// Places `c`, which must be accepted; returns its id.
    pub fn place(&mut self, c: PlaceCmd) -> OrderId {
        let dbg = format!("{c:?}");
        match self.submit(c).result {
            Ok(Reply::Placed { order, dup: false }) => order,
            other => panic!("{dbg}: {other:?}"),
        }
    }

    /// A GTC limit order that must be accepted.
    pub fn limit(&mut self, account: AccountId, side: Side, px: u64, qty: u64) -> OrderId {
        self.place(lim(account, side, px, qty))
    }

    /// Places `c`, which must be refused with `code` and change nothing.
    pub fn place_refused(&mut self, mut c: PlaceCmd, code: RejectCode) -> Reject {
        if c.cl_id.is_empty() {
            self.next_cl += 1;
            c.cl_id = ClId::new(&format!("c{}", self.next_cl)).expect("short");
        }
        self.refused(Command::Place(c), code)
    }

    pub fn cancel(&mut self, account: AccountId, id: OrderId) -> Outcome {
        self.exec(Command::Cancel { account, inst: self.inst, order: OrderRef::Id(id) })
    }

    pub fn cancel_cl(&mut self, account: AccountId, cl_id: &str) -> Outcome {
        self.exec(Command::Cancel { account, inst: self.inst, order: OrderRef::ClId(cl_id.into()) })
    }

    pub fn amend(&mut self, account: AccountId, id: OrderId, qty: Option<u64>, px: Option<u64>) -> Outcome {
        self.exec(Command::Amend { account, inst: self.inst, order: OrderRef::Id(id), qty: qty.map(Qty), px: px.map(Price) })
    }

    pub fn cancel_all(&mut self, account: AccountId, side: Option<Side>) -> Outcome {
        self.exec(Command::CancelAll { account: Some(account), inst: Some(self.inst), side, admin: false })
    }

    pub fn admin_cancel_all(&mut self) -> Outcome {
        self.exec(Command::CancelAll { account: None, inst: Some(self.inst), side: None, admin: true })
    }

    pub fn order(&self, id: OrderId) -> OrderState {
        self.ex.ledger.order(id).cloned().unwrap_or_else(|| panic!("order {id:?} is known"))
    }

    pub fn book(&self) -> &OrderBook {
        self.ex.book(self.inst).expect("the book exists")
    }

    /// Order ids resting at one price, in queue order.
    pub fn queue(&self, side: Side, px: u64) -> Vec<OrderId> {
        self.book().orders().into_iter().filter(|o| o.side == side && o.px == Price(px)).map(|o| o.id).collect()
    }

    pub fn best_bid(&self) -> Option<(u64, u64)> {
        self.book().best_bid().map(|(p, q)| (p.0, q.0))
    }

    pub fn best_ask(&self) -> Option<(u64, u64)> {
        self.book().best_ask().map(|(p, q)| (p.0, q.0))
    }
}

/// What clients can see of an exchange: balances, open orders, books.
pub type Visible = (Vec<(AccountId, AssetId, Balance)>, Vec<OrderState>, Vec<Vec<Resting>>);

pub fn visible(ex: &Exchange) -> Visible {
    let mut bals = Vec::new();
    for (acc, a) in &ex.ledger.accounts {
        for (asset, b) in a.balances.iter() {
            bals.push((*acc, asset, *b));
        }
    }
    let mut open: Vec<OrderState> = ex.ledger.orders.values().filter(|o| o.status.is_open()).cloned().collect();
    open.sort_by_key(|o| o.id);
    (bals, open, ex.books.iter().map(|b| b.orders()).collect())
}

/// The trades of an outcome.
pub fn trades(out: &Outcome) -> Vec<Trade> {
    out.events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Traded(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// `(px, qty, maker)` of each trade of an outcome.
pub fn prints(out: &Outcome) -> Vec<(u64, u64, OrderId)> {
    trades(out).iter().map(|t| (t.px.0, t.qty.0, t.maker)).collect()
}

/// The closing status and reason an outcome gives an order.
pub fn closed(out: &Outcome, id: OrderId) -> Option<(OrderStatus, Option<CancelReason>)> {
    out.events.iter().find_map(|e| match &e.body {
        EventBody::OrderClosed { order, status, reason, .. } if *order == id => Some((*status, *reason)),
        _ => None,
    })
}

/// The id of a placed order.
pub fn placed(out: &Outcome) -> OrderId {
    match &out.result {
        Ok(Reply::Placed { order, .. }) => *order,
        other => panic!("not placed: {other:?}"),
    }
}

/// Before `e` is applied to `state`: a trade fills no more than what its
/// maker has resting and what its taker still has to fill.
pub fn check_fill_within_remaining(state: &Exchange, e: &Event) {
    let EventBody::Traded(t) = &e.body else { return };
    assert!(t.qty.0 > 0, "a trade has a positive quantity");
    let book = state.book(t.inst).expect("trade in a listed instrument");
    let maker = book.get(t.maker).expect("the maker rests in the book");
    assert!(t.qty <= maker.leaves, "trade {t:?} exceeds the maker's leaves {:?}", maker.leaves);
    assert_eq!(maker.px, t.px, "trades print at the maker's price");
    assert!(book.get(t.taker).is_none(), "the taker does not rest while it takes");
    let taker = state.ledger.order(t.taker).expect("the taker is known");
    assert!(taker.status.is_open(), "the taker is open");
    if let Some(q) = taker.qty {
        assert!(t.qty.0 <= q.0 - taker.cum.0, "trade {t:?} exceeds the taker's remaining {}", q.0 - taker.cum.0);
    }
    if let Some(px) = taker.px {
        match t.taker_side {
            Side::Buy => assert!(t.px <= px, "a buy trades at or below its limit"),
            Side::Sell => assert!(t.px >= px, "a sell trades at or above its limit"),
        }
    }
    assert_ne!(t.maker_account, t.taker_account, "no self trade");
}
