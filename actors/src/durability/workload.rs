//! A seeded synthetic trading day for recovery tests and benchmarks: an
//! operator bootstraps assets, two instruments and funded traders, then
//! traders place limit orders around the last price (some crossing, so
//! trades happen), cancel and amend them. Every command is decided by the
//! engine (`Exchange::execute`), so the events are exactly what a live
//! exchange records, one log batch per command.

use bourse_engine::ledger::PlaceCmd;
use bourse_engine::{
    AccountId, Amount, AssetId, Command, Event, Exchange, InstrumentId, Listing, OrderId, OrderRef,
    OrderType, Price, Qty, Role, Side, Stp, Tif,
};

/// Microseconds between two commands of the workload.
pub const TS_STEP_US: u64 = 10_000;
/// Commands tried per batch before giving up on finding one that records
/// events (a refused command records none).
pub const ATTEMPTS_MAX: usize = 64;

/// The workload's state and generator.
pub struct Workload {
    state: Exchange,
    rng: u64,
    ts: u64,
    traders: Vec<AccountId>,
    insts: Vec<InstrumentId>,
    next_cl: u64,
    setup: Vec<Vec<Event>>,
}

impl Workload {
    /// Bootstraps an exchange with `traders` funded accounts; the
    /// bootstrap's batches come first from [`Workload::next_batch`].
    pub fn new(seed: u64, traders: usize, start_ts: u64) -> Workload {
        let mut w = Workload {
            state: Exchange::new(),
            rng: seed.max(1),
            ts: start_ts,
            traders: Vec::new(),
            insts: Vec::new(),
            next_cl: 0,
            setup: Vec::new(),
        };
        let root = AccountId(0);
        w.run(Command::CreateUser {
            user: "admin".into(),
            role: Role::Operator,
            password_hash: "x".into(),
            by: root,
        });
        let admin = w.state.ledger.users["admin"].account;
        for (name, scale) in [("USD", 2), ("BTC", 8), ("ETH", 8)] {
            w.run(Command::CreateAsset {
                name: name.into(),
                scale,
                by: admin,
            });
        }
        let (usd, btc, eth) = (AssetId(1), AssetId(2), AssetId(3));
        for (sym, base, tick_raw, price_scale, ref_px) in [
            ("BTC-USD", btc, 1, 0, 60_000),
            ("ETH-USD", eth, 1, 0, 3_000),
        ] {
            let listing = Listing {
                sym: sym.into(),
                base,
                quote: usd,
                tick_raw,
                price_scale,
                lot_raw: 1,
                qty_scale: 2,
                min_qty: Qty(1),
                ref_px: Some(Price(ref_px)),
                band_pct: 10,
                maker_fee_bps: 5,
                taker_fee_bps: 10,
            };
            w.run(Command::CreateInstrument { listing, by: admin });
        }
        w.insts = w.state.ledger.instruments.keys().copied().collect();
        for i in 0..traders {
            w.run(Command::CreateUser {
                user: format!("trader{i}"),
                role: Role::Trader,
                password_hash: "x".into(),
                by: admin,
            });
            let account = w.state.ledger.users[&format!("trader{i}")].account;
            for (asset, amount) in [
                (usd, 100_000_000_000_000u64),
                (btc, 100_000_000_000_000),
                (eth, 100_000_000_000_000),
            ] {
                w.run(Command::Deposit {
                    account,
                    asset,
                    amount: Amount(amount),
                    by: admin,
                });
            }
            w.traders.push(account);
        }
        w.setup.reverse();
        w
    }

    fn run(&mut self, cmd: Command) {
        self.ts += TS_STEP_US;
        let out = self.state.execute(cmd, self.ts);
        out.result.expect("bootstrap commands succeed");
        self.setup.push(out.events);
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// The state after every batch handed out so far.
    pub fn state(&self) -> &Exchange {
        &self.state
    }

    /// The events of the next command (one log batch), never empty.
    pub fn next_batch(&mut self) -> Vec<Event> {
        if let Some(b) = self.setup.pop() {
            return b;
        }
        for _ in 0..ATTEMPTS_MAX {
            self.ts += TS_STEP_US;
            let cmd = self.command();
            let out = self.state.execute(cmd, self.ts);
            if !out.events.is_empty() {
                return out.events;
            }
        }
        panic!("the workload found no command that records events");
    }

    fn command(&mut self) -> Command {
        let a = self.below(self.traders.len() as u64) as usize;
        let i = self.below(self.insts.len() as u64) as usize;
        let (account, inst) = (self.traders[a], self.insts[i]);
        let roll = self.below(100);
        let open: Vec<OrderId> = self.state.ledger.accounts[&account]
            .open
            .iter()
            .copied()
            .collect();
        if roll < 35 && !open.is_empty() {
            let order = open[self.below(open.len() as u64) as usize];
            let inst = self.state.ledger.orders[&order].inst;
            return Command::Cancel {
                account,
                inst,
                order: OrderRef::Id(order),
            };
        }
        if roll < 40 && !open.is_empty() {
            let order = open[self.below(open.len() as u64) as usize];
            let o = &self.state.ledger.orders[&order];
            let (inst, cum) = (o.inst, o.cum.0);
            let qty = Qty(cum + 1 + self.below(20));
            return Command::Amend {
                account,
                inst,
                order: OrderRef::Id(order),
                qty: Some(qty),
                px: None,
            };
        }
        let spec = &self.state.ledger.instruments[&inst];
        let mid = self
            .state
            .ledger
            .last_px
            .get(&inst)
            .copied()
            .or(spec.ref_px)
            .map_or(1000, |p| p.0);
        let side = if self.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        // Within 1% of the last price: a buy above it or a sell below it trades.
        let spread = (mid / 100).max(1);
        let off = self.below(spread * 2 + 1) as i64 - spread as i64;
        let px = Price((mid as i64 + off).max(1) as u64);
        let qty = Qty(1 + self.below(20));
        self.next_cl += 1;
        Command::Place(PlaceCmd {
            account,
            inst,
            cl_id: bourse_engine::ClId::new(&format!("w{}", self.next_cl)).expect("short"),
            side,
            kind: OrderType::Limit,
            tif: Some(Tif::Gtc),
            px: Some(px),
            qty: Some(qty),
            quote_qty: None,
            post_only: false,
            stp: Stp::CancelNewest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_engine::EventBody;

    #[test]
    fn the_workload_trades_and_is_deterministic() {
        let mut a = Workload::new(7, 4, 1_000);
        let mut b = Workload::new(7, 4, 1_000);
        let mut trades = 0;
        let mut replay = Exchange::new();
        for _ in 0..2_000 {
            let batch = a.next_batch();
            assert_eq!(batch, b.next_batch());
            for e in &batch {
                trades += matches!(e.body, EventBody::Traded(_)) as u32;
                replay.apply(e, None);
            }
        }
        assert!(trades > 100, "only {trades} trades");
        a.state().check();
        assert_eq!(
            replay.state_hash(),
            a.state().state_hash(),
            "replaying the batches gives the same state"
        );
    }
}
