//! Property tests: random command streams for several accounts on two
//! instruments (places of every kind, cancels, amends, cancel-alls, deposits,
//! withdrawals, state changes, time jumps past the `cl_id` window).
//!
//! After every command: the exchange's invariants hold (book never crossed
//! at rest, conservation per asset with the fee account included, holds add
//! up), every fill is within both orders' remaining quantity, a refusal
//! changes nothing a client can see, and a replica fed only the events sees
//! the same balances and books. At the end: the replica (a replay from empty)
//! and a replay from a snapshot taken at a random step have the live state's
//! hash, and running the same commands again gives the same events.
//!
//! `PROPTEST_CASES` (default 64) and `BOURSE_PROP_COMMANDS_MAX` (default 200)
//! raise the effort.

mod common;

use bourse_engine::exchange::Listing;
use bourse_engine::*;
use proptest::prelude::*;

use common::{check_fill_within_remaining, visible};

/// Traders in each run (account ids 2..=5; 1 is the operator).
const TRADERS: u64 = 4;
const OPS: AccountId = AccountId(1);
const USD: AssetId = AssetId(1);
const BTC: AssetId = AssetId(2);
const ETH: AssetId = AssetId(3);
/// Prices are drawn around this many ticks.
const MID_PX: i64 = 1000;
/// A microsecond more than the `cl_id` window.
const DAY_AND_MORE_US: u64 = 25 * 3600 * 1_000_000;

#[derive(Clone, Debug)]
enum Kind {
    Limit,
    Market,
    MarketQuote,
}

#[derive(Clone, Debug)]
enum Op {
    Place {
        acct: u64,
        inst: u32,
        buy: bool,
        kind: Kind,
        tif: Option<Tif>,
        px: u64,
        qty: u64,
        budget: u64,
        post_only: bool,
        stp: Stp,
        /// Reuse one of a few `cl_id`s instead of a fresh one.
        reuse_cl: Option<u8>,
    },
    Cancel { acct: u64, inst: u32, pick: u16, by_cl: bool },
    Amend { acct: u64, inst: u32, pick: u16, qty: Option<u64>, px: Option<u64> },
    CancelAll { acct: Option<u64>, inst: Option<u32>, side: Option<bool>, admin: bool },
    Deposit { acct: u64, asset: u32, raw: u32 },
    Withdraw { acct: u64, asset: u32, raw: u32, all: bool },
    SetState { inst: u32, state: InstrumentState },
    /// Time passes beyond the `cl_id` window.
    DayPasses,
}

fn px_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        30 => (-160i64..=160).prop_map(|d| (MID_PX + d) as u64),
        1 => prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(1u64 << 40), Just(u64::MAX / 3)],
    ]
}

fn qty_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        30 => 1u64..=30,
        1 => prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64 << 40)],
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let acct = 2u64..2 + TRADERS;
    let inst = prop_oneof![20 => 1u32..=2, 1 => Just(3u32)];
    let tif = prop_oneof![Just(None), Just(Some(Tif::Gtc)), Just(Some(Tif::Ioc)), Just(Some(Tif::Fok))];
    let stp = prop_oneof![Just(Stp::CancelNewest), Just(Stp::CancelOldest), Just(Stp::CancelBoth)];
    let kind = prop_oneof![14 => Just(Kind::Limit), 3 => Just(Kind::Market), 3 => Just(Kind::MarketQuote)];
    let place = (
        acct.clone(),
        inst.clone(),
        any::<bool>(),
        kind,
        tif,
        px_strategy(),
        qty_strategy(),
        1u64..=60_000,
        prop::bool::weighted(0.15),
        stp,
        prop::option::weighted(0.2, 0u8..8),
    )
        .prop_map(|(acct, inst, buy, kind, tif, px, qty, budget, post_only, stp, reuse_cl)| Op::Place {
            acct,
            inst,
            buy,
            kind,
            tif,
            px,
            qty,
            budget,
            post_only,
            stp,
            reuse_cl,
        });
    let cancel = (acct.clone(), inst.clone(), any::<u16>(), prop::bool::weighted(0.3))
        .prop_map(|(acct, inst, pick, by_cl)| Op::Cancel { acct, inst, pick, by_cl });
    let amend = (
        acct.clone(),
        inst.clone(),
        any::<u16>(),
        prop::option::weighted(0.6, qty_strategy()),
        prop::option::weighted(0.6, px_strategy()),
    )
        .prop_map(|(acct, inst, pick, qty, px)| Op::Amend { acct, inst, pick, qty, px });
    let cancel_all = (
        prop::option::weighted(0.9, acct.clone()),
        prop::option::weighted(0.7, inst.clone()),
        prop::option::of(any::<bool>()),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(acct, inst, side, admin)| Op::CancelAll { acct, inst, side, admin });
    let deposit = (acct.clone(), 1u32..=3, any::<u32>()).prop_map(|(acct, asset, raw)| Op::Deposit { acct, asset, raw });
    let withdraw = (acct, 1u32..=3, any::<u32>(), prop::bool::weighted(0.2))
        .prop_map(|(acct, asset, raw, all)| Op::Withdraw { acct, asset, raw, all });
    let state = prop_oneof![
        4 => Just(InstrumentState::Trading),
        1 => Just(InstrumentState::CancelOnly),
        1 => Just(InstrumentState::Halted),
    ];
    let set_state = (1u32..=2, state).prop_map(|(inst, state)| Op::SetState { inst, state });
    prop_oneof![
        50 => place,
        15 => cancel,
        12 => amend,
        3 => cancel_all,
        5 => deposit,
        4 => withdraw,
        2 => set_state,
        1 => Just(Op::DayPasses),
    ]
}

/// An amount of `asset` from raw random bits: cents of USD, or a few lots
/// of a base asset plus odd units.
fn amount(asset: AssetId, raw: u32) -> u64 {
    match asset {
        USD => u64::from(raw % 300_001),
        BTC => u64::from(raw % 21) * 1_000_000 + u64::from(raw % 7),
        _ => u64::from(raw % 21) * 100_000_000 + u64::from(raw % 7),
    }
}

struct Run {
    ex: Exchange,
    replica: Exchange,
    log: Vec<Event>,
    commands: Vec<(Command, u64)>,
    ts: u64,
    next_cl: u64,
    /// Every order id ever issued, for cancels and amends of closed orders.
    issued: Vec<OrderId>,
    snapshot: Option<(Vec<u8>, usize, [u8; 32])>,
}

impl Run {
    fn new() -> Run {
        let mut r = Run {
            ex: Exchange::new(),
            replica: Exchange::new(),
            log: Vec::new(),
            commands: Vec::new(),
            ts: 1_000_000,
            next_cl: 0,
            issued: Vec::new(),
            snapshot: None,
        };
        let user = |name: &str, role| Command::CreateUser { user: name.into(), role, password_hash: "x".into(), by: FEE_ACCOUNT };
        r.must(user("ops", Role::Operator));
        for (name, scale) in [("USD", 2), ("BTC", 8), ("ETH", 8)] {
            r.must(Command::CreateAsset { name: name.into(), scale, by: OPS });
        }
        r.must(Command::CreateInstrument {
            listing: Listing {
                sym: "BTC-USD".into(),
                base: BTC,
                quote: USD,
                tick_raw: 1,
                price_scale: 0,
                lot_raw: 1,
                qty_scale: 2,
                min_qty: Qty(1),
                ref_px: Some(Price(MID_PX as u64)),
                band_pct: 10,
                maker_fee_bps: 10,
                taker_fee_bps: 20,
            },
            by: OPS,
        });
        // 0.05 USD ticks and whole-ETH lots (5 cents per tick-lot), no
        // reference price, no maker fee, a minimum of 2 lots.
        r.must(Command::CreateInstrument {
            listing: Listing {
                sym: "ETH-USD".into(),
                base: ETH,
                quote: USD,
                tick_raw: 5,
                price_scale: 2,
                lot_raw: 1,
                qty_scale: 0,
                min_qty: Qty(2),
                ref_px: None,
                band_pct: 50,
                maker_fee_bps: 0,
                taker_fee_bps: 30,
            },
            by: OPS,
        });
        for i in 0..TRADERS {
            r.must(user(&format!("t{i}"), Role::Trader));
            let a = AccountId(2 + i);
            r.must(Command::Deposit { account: a, asset: USD, amount: Amount(2_000_000), by: OPS });
            r.must(Command::Deposit { account: a, asset: BTC, amount: Amount(30_000_000), by: OPS });
            r.must(Command::Deposit { account: a, asset: ETH, amount: Amount(3_000_000_000), by: OPS });
        }
        r
    }

    fn must(&mut self, c: Command) {
        let dbg = format!("{c:?}");
        let out = self.exec(c);
        assert!(out.result.is_ok(), "{dbg}: {:?}", out.result);
    }

    fn exec(&mut self, c: Command) -> Outcome {
        self.ts += 1;
        let before = visible(&self.ex);
        let bands: Vec<Option<(Price, Price)>> =
            self.ex.books.iter().map(|b| b.reference().map(|r| b.spec.band(r))).collect();
        let dup_place = matches!(&c, Command::Place(_));
        self.commands.push((c.clone(), self.ts));
        let out = self.ex.execute(c, self.ts);
        self.ex.check();
        // Every open order rests in its book and nothing else does.
        let mut resting: Vec<OrderId> = self.ex.books.iter().flat_map(|b| b.orders()).map(|o| o.id).collect();
        resting.sort();
        let mut open: Vec<OrderId> = self.ex.ledger.orders.values().filter(|o| o.status.is_open()).map(|o| o.id).collect();
        open.sort();
        assert_eq!(open, resting, "open orders are exactly the resting ones");
        for e in &out.events {
            assert_eq!(e.ts, self.ts);
            check_fill_within_remaining(&self.replica, e);
            if let EventBody::OrderAccepted { order } = &e.body {
                self.issued.push(order.id);
            }
            self.replica.apply(e, None);
        }
        match &out.result {
            Err(r) => assert_eq!(visible(&self.ex), before, "refusal {r} changed something"),
            Ok(Reply::Placed { dup: true, .. }) => {
                assert!(dup_place && out.events.is_empty(), "a duplicate records nothing");
            }
            Ok(_) => {}
        }
        assert_eq!(visible(&self.replica), visible(&self.ex), "the replica differs after {out:?}");
        self.check_market_end(&out, &bands);
        self.log.extend(out.events.iter().cloned());
        out
    }

    /// A market order ends `filled`, `market` (the other side ran out),
    /// `price_band` (the rest lies beyond the band edge) or `self_trade`;
    /// a `quote_qty` buy ends `filled` only when what is left of its budget
    /// cannot buy one more lot at the best remaining ask.
    /// `bands` are the books' bands when the command came in.
    fn check_market_end(&self, out: &Outcome, bands: &[Option<(Price, Price)>]) {
        let Some(o) = out.events.iter().find_map(|e| match &e.body {
            EventBody::OrderAccepted { order } if order.kind == OrderType::Market => Some(order.clone()),
            _ => None,
        }) else {
            return;
        };
        let Some((status, reason)) = common::closed(out, o.id) else { return };
        let book = self.ex.book(o.inst).expect("listed");
        let spec = &book.spec;
        let band = bands[o.inst.0 as usize - 1];
        let best = match o.side {
            Side::Buy => book.best_ask(),
            Side::Sell => book.best_bid(),
        };
        match (status, reason) {
            (OrderStatus::Cancelled, Some(CancelReason::Market)) => {
                assert_eq!(best, None, "a market order ended 'market' with liquidity left: {o:?}");
            }
            (OrderStatus::Cancelled, Some(CancelReason::PriceBand)) => {
                let (lo, hi) = band.expect("a band stopped it");
                let (px, _) = best.expect("liquidity beyond the band");
                let edge = match o.side {
                    Side::Buy => hi.min(o.reserve_px.unwrap_or(hi)),
                    Side::Sell => lo,
                };
                match o.side {
                    Side::Buy => assert!(px > edge, "stopped at {edge:?} with an ask at {px:?}"),
                    Side::Sell => assert!(px < edge, "stopped at {edge:?} with a bid at {px:?}"),
                }
            }
            (OrderStatus::Filled, None) => {
                let Some(budget) = o.quote_qty else { return };
                let spent: u64 = common::trades(out)
                    .iter()
                    .filter(|t| t.taker == o.id)
                    .map(|t| spec.notional(t.px, t.qty).unwrap().0 + t.taker_fee.0)
                    .sum();
                assert!(spent <= budget.0, "spent {spent} of a budget of {budget:?}");
                let left = budget.0 - spent;
                let fee = self.ex.ledger.order(o.id).expect("known").fee;
                if let Some((px, _)) = best {
                    if band.is_none_or(|(_, hi)| px <= hi) {
                        // A lot whose value overflows is beyond any budget.
                        let cost = spec
                            .notional(px, Qty(1))
                            .and_then(|n| fee.with(n, spec.taker_fee_bps).map(|f| n.0 as u128 + f.0 as u128));
                        if let Some(cost) = cost {
                            assert!(cost > left as u128, "{left} left could buy one more lot at {px:?} for {cost}: {o:?}");
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn snapshot_now(&mut self) {
        self.snapshot = Some((self.ex.encode_snapshot(), self.log.len(), self.ex.state_hash()));
    }

    /// Mostly one of `acct`'s open orders in `inst`; sometimes any order
    /// ever issued (closed, or another account's) or one never issued.
    fn pick(&self, acct: AccountId, inst: InstrumentId, pick: u16) -> OrderId {
        let open = self.ex.ledger.open_orders(acct, Some(inst));
        let p = pick as usize / 4;
        if pick % 4 != 3 && !open.is_empty() {
            open[p % open.len()].id
        } else if !self.issued.is_empty() && !p.is_multiple_of(4) {
            self.issued[p % self.issued.len()]
        } else {
            OrderId(1_000_000 + p as u64)
        }
    }

    fn run(&mut self, op: &Op) {
        let cmd = match op.clone() {
            Op::Place { acct, inst, buy, kind, tif, px, qty, budget, post_only, stp, reuse_cl } => {
                let cl_id = match reuse_cl {
                    Some(k) => format!("r{k}"),
                    None => {
                        self.next_cl += 1;
                        format!("c{}", self.next_cl)
                    }
                };
                let side = if buy { Side::Buy } else { Side::Sell };
                let (kind, px, qty, quote_qty) = match kind {
                    Kind::Limit => (OrderType::Limit, Some(Price(px)), Some(Qty(qty)), None),
                    Kind::Market => (OrderType::Market, None, Some(Qty(qty)), None),
                    Kind::MarketQuote => (OrderType::Market, None, None, Some(Amount(budget))),
                };
                Command::Place(PlaceCmd {
                    account: AccountId(acct),
                    inst: InstrumentId(inst),
                    cl_id: ClId::new(&cl_id).expect("short"),
                    side,
                    kind,
                    tif,
                    px,
                    qty,
                    quote_qty,
                    post_only,
                    stp,
                })
            }
            Op::Cancel { acct, inst, pick, by_cl } => {
                let (account, inst) = (AccountId(acct), InstrumentId(inst));
                let id = self.pick(account, inst, pick);
                let order = match (by_cl, self.ex.ledger.order(id)) {
                    (true, Some(o)) => OrderRef::ClId(o.cl_id.to_string()),
                    _ => OrderRef::Id(id),
                };
                Command::Cancel { account, inst, order }
            }
            Op::Amend { acct, inst, pick, qty, px } => {
                let (account, inst) = (AccountId(acct), InstrumentId(inst));
                let id = self.pick(account, inst, pick);
                Command::Amend { account, inst, order: OrderRef::Id(id), qty: qty.map(Qty), px: px.map(Price) }
            }
            Op::CancelAll { acct, inst, side, admin } => Command::CancelAll {
                account: acct.map(AccountId),
                inst: inst.map(InstrumentId),
                side: side.map(|b| if b { Side::Buy } else { Side::Sell }),
                admin,
            },
            Op::Deposit { acct, asset, raw } => {
                let asset = AssetId(asset);
                Command::Deposit { account: AccountId(acct), asset, amount: Amount(amount(asset, raw)), by: OPS }
            }
            Op::Withdraw { acct, asset, raw, all } => {
                let (account, asset) = (AccountId(acct), AssetId(asset));
                let amount = if all { self.ex.ledger.balance(account, asset).available } else { amount(asset, raw) };
                Command::Withdraw { account, asset, amount: Amount(amount), by: OPS }
            }
            Op::SetState { inst, state } => Command::SetState { inst: InstrumentId(inst), state, by: OPS },
            Op::DayPasses => {
                self.ts += DAY_AND_MORE_US;
                return;
            }
        };
        self.exec(cmd);
    }

    fn finish(&self) {
        let live = self.ex.state_hash();
        assert_eq!(self.replica.state_hash(), live, "replay from empty differs from the live state");
        let (snap, at, hash) = self.snapshot.as_ref().expect("a snapshot was taken");
        let mut s = Exchange::decode_snapshot(snap).expect("the snapshot decodes");
        assert_eq!(s.state_hash(), *hash, "the snapshot decodes to the state it encoded");
        for e in &self.log[*at..] {
            s.apply(e, None);
        }
        s.check();
        assert_eq!(s.state_hash(), live, "replay from the snapshot differs from the live state");
        // The same commands at the same times give the same events.
        let mut again = Exchange::new();
        let mut events = Vec::with_capacity(self.log.len());
        for (c, ts) in &self.commands {
            events.extend(again.execute(c.clone(), *ts).events);
        }
        assert!(events == self.log, "the same commands gave different events");
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn commands_max() -> usize {
    std::env::var("BOURSE_PROP_COMMANDS_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_command_streams_keep_every_invariant_and_replay_exactly(
        ops in prop::collection::vec(op_strategy(), 1..=commands_max()),
        snap_at in any::<prop::sample::Index>(),
    ) {
        let mut run = Run::new();
        let snap_step = snap_at.index(ops.len() + 1);
        for (i, op) in ops.iter().enumerate() {
            if i == snap_step {
                run.snapshot_now();
            }
            run.run(op);
        }
        if snap_step == ops.len() {
            run.snapshot_now();
        }
        run.finish();
    }
}

/// The property above sees trades only when random prices cross; this
/// stream keeps both sides near one price so that most places trade.
#[test]
fn a_dense_crossing_stream_keeps_every_invariant() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config { cases: cases() / 4 + 1, ..Config::default() });
    let op = (2u64..2 + TRADERS, any::<bool>(), 995u64..=1005, 1u64..=12, 0u8..10, any::<u16>());
    runner
        .run(&prop::collection::vec(op, 1..=commands_max()), |ops| {
            let mut run = Run::new();
            run.snapshot_now();
            for (acct, buy, px, qty, what, pick) in ops {
                let op = match what {
                    0..=5 => Op::Place {
                        acct,
                        inst: 1,
                        buy,
                        kind: Kind::Limit,
                        tif: None,
                        px,
                        qty,
                        budget: 0,
                        post_only: false,
                        stp: [Stp::CancelNewest, Stp::CancelOldest, Stp::CancelBoth][pick as usize % 3],
                        reuse_cl: None,
                    },
                    6 => Op::Place {
                        acct,
                        inst: 1,
                        buy,
                        kind: if pick % 2 == 0 { Kind::Market } else { Kind::MarketQuote },
                        tif: if pick % 5 == 0 { Some(Tif::Fok) } else { None },
                        px,
                        qty,
                        budget: u64::from(pick) * 3,
                        post_only: false,
                        stp: Stp::CancelNewest,
                        reuse_cl: None,
                    },
                    7 | 8 => Op::Amend {
                        acct,
                        inst: 1,
                        pick: pick & !3,
                        qty: (pick % 3 != 0).then_some(qty),
                        px: (pick % 3 != 1).then_some(px),
                    },
                    _ => Op::Cancel { acct, inst: 1, pick: pick & !3, by_cl: false },
                };
                run.run(&op);
            }
            run.finish();
            Ok(())
        })
        .unwrap();
}
