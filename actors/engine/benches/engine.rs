//! Microbenchmarks of the engine on one thread: `Exchange::execute` with the
//! ledger, fees and events on, on a BTC-USD book of about 10,000 resting
//! orders over about 1,000 price levels, owned by 1,000 accounts.
//!
//! * `add`: a limit order that rests (never crosses).
//! * `cancel`: a cancel of a resting order.
//! * `match`: a marketable order (IOC limit, market by qty, market by
//!   `quote_qty`) taking one to a few makers.
//! * `mixed`: a stream modelled on real order flow, drawn 60% cancels, 25%
//!   adds, 10% marketable orders, 5% amends, with the book held at its size:
//!   every cancel hits a resting order, so when the book is below its size a
//!   drawn cancel becomes an add (a book cannot stay level with more
//!   successful cancels than adds; the realised mix is printed).
//! * `mixed_exact_ratio`: the 60/25/10/5 mix by command kind kept exactly;
//!   the book stays level because a cancel drawn while it is below its size
//!   names an order that has already left it (a cancel that arrives too late,
//!   answered `unknown_order`).
//!
//! Commands are generated (by running them once on a copy) before the timed
//! loop, which appends each command's events to a buffer it keeps
//! (`execute_into`) and clears it after each command;
//! `BOURSE_BENCH_OUTCOMES=1` also times the stream with `execute` (a new
//! event vector per command). Before criterion runs, a latency report times
//! each of 2,000,000 mixed commands with an HDR histogram and prints
//! throughput and p50/p99. `BOURSE_BENCH_OPS` changes the report's length,
//! `BOURSE_BENCH_RUNS` how many server-like runs it takes the median of (5);
//! `BOURSE_BENCH_STREAM=mixed` (or `mixed_exact_ratio`) runs one stream only.
//!
//! The report's main throughput reads every command from the pre-generated
//! stream in memory, so each command's first read is a cache miss; a server
//! executes a command it has just decoded. Beside it the report prints a
//! server-like throughput: the stream handed over `CHUNK_MAX` commands at a
//! time, each chunk cloned (every command built afresh, as a decoder
//! builds it) with the clock stopped just before it runs, only the runs
//! timed.
//!
//! The filter `memory` prints instead what one dependent load costs on the
//! machine, by the size of the memory the loads range over (a pointer
//! chase): where the engine's state stops fitting the caches it can use.
//! The latency report prints the same for 2 and 4 MiB before each stream
//! and at its end (a cache probe): how much of the shared cache the
//! process has at that moment, which on a shared machine changes from
//! moment to moment (BENCHMARKS.md, round 14).

// A benchmark reads the clock around the engine, never inside it.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bourse_engine::exchange::Listing;
use bourse_engine::*;
use criterion::{Criterion, Throughput};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;

/// The server's allocator (`src/main.rs`), so that the bench measures the
/// memory the server runs on: jemalloc backed by transparent huge pages.
/// The feature `bench-system-allocator` leaves it out, for repeatable
/// instruction and miss counts.
#[cfg(not(feature = "bench-system-allocator"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Accounts trading in the benchmark.
const ACCOUNTS: u64 = 1_000;
const OPS: AccountId = AccountId(1);
const USD: AssetId = AssetId(1);
const BTC: AssetId = AssetId(2);
const INST: InstrumentId = InstrumentId(1);
/// The book's middle, in ticks (USD 100,000 per BTC; one lot is 0.01 BTC).
const MID: u64 = 100_000;
/// Price levels on each side of the middle.
const LEVELS_PER_SIDE: u64 = 500;
/// Resting orders the book is built with and held at.
const BOOK_ORDERS: usize = 10_000;
/// Largest resting order, in lots.
const MAKER_QTY_MAX: u64 = 100;
/// Largest marketable order, in lots (so it takes one to a few makers).
const TAKER_QTY_MAX: u64 = 150;
/// Too-late cancels name one of this many recently closed orders.
const GONE_MAX: usize = 4_096;
/// Commands in the latency report.
const REPORT_OPS: usize = 2_000_000;

/// splitmix64: a small deterministic generator, so every run times the same commands.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// 1..=n
    fn upto(&mut self, n: u64) -> u64 {
        1 + self.below(n)
    }
    fn side(&mut self) -> Side {
        if self.next() & 1 == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Add,
    Cancel,
    Marketable,
    Amend,
}

const KINDS: [Kind; 4] = [Kind::Add, Kind::Cancel, Kind::Marketable, Kind::Amend];

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Add => "add",
        Kind::Cancel => "cancel",
        Kind::Marketable => "marketable",
        Kind::Amend => "amend",
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Every cancel hits; below the book's size a drawn cancel becomes an add.
    Balanced,
    /// The drawn mix exactly; below the book's size a cancel comes too late.
    ExactRatio,
}

/// The commands of a run, with their times and kinds.
struct Stream {
    cmds: Vec<(Command, u64)>,
    kinds: Vec<Kind>,
}

/// Builds commands against a copy of the exchange, tracking which orders rest.
struct Generator {
    ex: Exchange,
    rng: Rng,
    ts: u64,
    next_cl: u64,
    resting: Vec<OrderId>,
    at: FxHashMap<OrderId, usize>,
    /// Resting orders per side (buy, sell), to keep the sides level.
    sides: [usize; 2],
    gone: Vec<(AccountId, OrderId)>,
    gone_next: usize,
}

impl Generator {
    fn new(ex: Exchange, seed: u64) -> Generator {
        let mut g = Generator {
            ex,
            rng: Rng(seed),
            ts: 1_000_000,
            next_cl: 0,
            resting: Vec::new(),
            at: FxHashMap::default(),
            sides: [0, 0],
            gone: Vec::new(),
            gone_next: 0,
        };
        let ids: Vec<OrderId> = g.ex.books.iter().flat_map(|b| b.orders()).map(|o| o.id).collect();
        for id in ids {
            g.track(id);
        }
        g
    }

    fn track(&mut self, id: OrderId) {
        let rests = self.ex.book(INST).and_then(|b| b.get(id)).is_some();
        let side = |g: &Generator| g.ex.ledger.order(id).map_or(0, |o| (o.side == Side::Sell) as usize);
        match (rests, self.at.get(&id).copied()) {
            (true, None) => {
                self.at.insert(id, self.resting.len());
                self.resting.push(id);
                self.sides[side(self)] += 1;
            }
            (false, Some(i)) => {
                self.sides[side(self)] -= 1;
                self.at.remove(&id);
                self.resting.swap_remove(i);
                if let Some(&moved) = self.resting.get(i) {
                    self.at.insert(moved, i);
                }
                let acc = self.ex.ledger.order(id).map_or(OPS, |o| o.account);
                if self.gone.len() < GONE_MAX {
                    self.gone.push((acc, id));
                } else {
                    self.gone[self.gone_next] = (acc, id);
                    self.gone_next = (self.gone_next + 1) % GONE_MAX;
                }
            }
            _ => {}
        }
    }

    /// Runs `cmd` on the copy, notes what it did to the book, and returns it with its time.
    fn push(&mut self, cmd: Command, out: &mut Vec<(Command, u64)>) {
        self.ts += 1;
        let o = self.ex.execute(cmd.clone(), self.ts);
        for e in &o.events {
            match &e.body {
                EventBody::OrderOpened { order, .. }
                | EventBody::OrderClosed { order, .. }
                | EventBody::OrderAmended { order, .. } => self.track(*order),
                EventBody::Traded(t) => self.track(t.maker),
                _ => {}
            }
        }
        out.push((cmd, self.ts));
    }

    fn cl_id(&mut self) -> ClId {
        self.next_cl += 1;
        ClId::new(&format!("b{}", self.next_cl)).expect("short")
    }

    fn account(&mut self) -> AccountId {
        AccountId(2 + self.rng.below(ACCOUNTS))
    }

    /// A resting order's price: `1..=LEVELS_PER_SIDE` ticks away from the
    /// middle, denser near it (the nearer of two uniform draws).
    fn passive_px(&mut self, side: Side) -> Price {
        let off = self.rng.upto(LEVELS_PER_SIDE).min(self.rng.upto(LEVELS_PER_SIDE));
        Price(if side == Side::Buy { MID - off } else { MID + off })
    }

    fn add(&mut self) -> Command {
        // Three adds in four go to the thinner side, so that takers eating
        // one side more than the other do not empty it.
        let thinner = if self.sides[0] <= self.sides[1] { Side::Buy } else { Side::Sell };
        let side = if self.rng.below(4) == 0 { thinner.opposite() } else { thinner };
        let px = self.passive_px(side);
        let qty = Qty(self.rng.upto(MAKER_QTY_MAX));
        let account = self.account();
        let cl_id = self.cl_id();
        Command::Place(PlaceCmd {
            account,
            inst: INST,
            cl_id,
            side,
            kind: OrderType::Limit,
            tif: None,
            px: Some(px),
            qty: Some(qty),
            quote_qty: None,
            post_only: false,
            stp: Stp::CancelNewest,
        })
    }

    fn marketable(&mut self) -> Command {
        let side = self.rng.side();
        let lots = self.rng.upto(TAKER_QTY_MAX);
        let account = self.account();
        let cl_id = self.cl_id();
        let mut c = PlaceCmd {
            account,
            inst: INST,
            cl_id,
            side,
            kind: OrderType::Market,
            tif: None,
            px: None,
            qty: Some(Qty(lots)),
            quote_qty: None,
            post_only: false,
            stp: Stp::CancelNewest,
        };
        match self.rng.below(10) {
            // An IOC limit a little beyond the far end of the book.
            0..=4 => {
                c.kind = OrderType::Limit;
                c.tif = Some(Tif::Ioc);
                let reach = LEVELS_PER_SIDE + 100;
                c.px = Some(Price(if side == Side::Buy { MID + reach } else { MID - reach }));
            }
            // A market order by quantity.
            5..=6 => {}
            // A market buy by quote amount (fee included), about `lots`
            // lots' worth; a market sell by quantity otherwise.
            _ => {
                if side == Side::Buy {
                    c.qty = None;
                    c.quote_qty = Some(Amount(lots * MID));
                }
            }
        }
        Command::Place(c)
    }

    /// A random resting order, or `None` when the book is empty.
    fn some_resting(&mut self) -> Option<(OrderId, AccountId)> {
        if self.resting.is_empty() {
            return None;
        }
        let id = self.resting[self.rng.below(self.resting.len() as u64) as usize];
        let account = self.ex.ledger.order(id).expect("resting order is known").account;
        Some((id, account))
    }

    fn cancel(&mut self) -> Option<Command> {
        let (id, account) = self.some_resting()?;
        // One cancel in five names the order by the client's own id.
        let order = if self.rng.below(5) == 0 {
            OrderRef::ClId(self.ex.ledger.order(id).expect("known").cl_id.to_string())
        } else {
            OrderRef::Id(id)
        };
        Some(Command::Cancel { account, inst: INST, order })
    }

    fn late_cancel(&mut self) -> Option<Command> {
        if self.gone.is_empty() {
            return None;
        }
        let (account, id) = self.gone[self.rng.below(self.gone.len() as u64) as usize];
        Some(Command::Cancel { account, inst: INST, order: OrderRef::Id(id) })
    }

    fn amend(&mut self) -> Option<Command> {
        let (id, account) = self.some_resting()?;
        let o = self.ex.book(INST).and_then(|b| b.get(id)).expect("rests");
        let (qty, px) = if o.leaves.0 > 1 && self.rng.below(2) == 0 {
            // Smaller: keeps its place in the queue.
            (Some(Qty(o.qty.0 - self.rng.upto(o.leaves.0 - 1))), None)
        } else {
            // Another price on its own side: goes to the back of a queue.
            (None, Some(self.passive_px(o.side)))
        };
        Some(Command::Amend { account, inst: INST, order: OrderRef::Id(id), qty, px })
    }

    /// `n` commands of one kind (cancels and amends stop when the book is empty).
    fn only(&mut self, kind: Kind, n: usize) -> Stream {
        let mut cmds = Vec::with_capacity(n);
        for _ in 0..n {
            let c = match kind {
                Kind::Add => Some(self.add()),
                Kind::Cancel => self.cancel(),
                Kind::Marketable => Some(self.marketable()),
                Kind::Amend => self.amend(),
            };
            match c {
                Some(c) => self.push(c, &mut cmds),
                None => break,
            }
        }
        let kinds = vec![kind; cmds.len()];
        Stream { cmds, kinds }
    }

    /// `n` commands drawn 60% cancel, 25% add, 10% marketable, 5% amend.
    fn mixed(&mut self, n: usize, mix: Mix) -> Stream {
        let mut cmds = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        while cmds.len() < n {
            let mut kind = match self.rng.below(100) {
                0..=59 => Kind::Cancel,
                60..=84 => Kind::Add,
                85..=94 => Kind::Marketable,
                _ => Kind::Amend,
            };
            let below_size = self.resting.len() < BOOK_ORDERS;
            if kind == Kind::Cancel && below_size && mix == Mix::Balanced {
                kind = Kind::Add;
            }
            let c = match kind {
                Kind::Add => Some(self.add()),
                Kind::Cancel if below_size => self.late_cancel(),
                Kind::Cancel => self.cancel(),
                Kind::Marketable => Some(self.marketable()),
                Kind::Amend => self.amend(),
            };
            if let Some(c) = c {
                self.push(c, &mut cmds);
                kinds.push(kind);
            }
        }
        Stream { cmds, kinds }
    }
}

/// The exchange with 1,000 funded accounts and a book of `BOOK_ORDERS`
/// resting orders, spread evenly over `LEVELS_PER_SIDE` levels a side.
fn exchange_with_book() -> Exchange {
    let mut ex = Exchange::new();
    let mut ts = 1;
    let mut must = |ex: &mut Exchange, c: Command| {
        ts += 1;
        let dbg = format!("{c:?}");
        if let Err(e) = ex.execute(c, ts).result {
            panic!("{dbg}: {e}");
        }
    };
    let user = |name: String, role| Command::CreateUser { user: name, role, password_hash: "x".into(), by: FEE_ACCOUNT };
    must(&mut ex, user("ops".into(), Role::Operator));
    must(&mut ex, Command::CreateAsset { name: "USD".into(), scale: 2, by: OPS });
    must(&mut ex, Command::CreateAsset { name: "BTC".into(), scale: 8, by: OPS });
    must(
        &mut ex,
        Command::CreateInstrument {
            listing: Listing {
                sym: "BTC-USD".into(),
                base: BTC,
                quote: USD,
                tick_raw: 1,
                price_scale: 0,
                lot_raw: 1,
                qty_scale: 2,
                min_qty: Qty(1),
                ref_px: Some(Price(MID)),
                band_pct: 10,
                maker_fee_bps: 10,
                taker_fee_bps: 20,
            },
            by: OPS,
        },
    );
    for i in 0..ACCOUNTS {
        must(&mut ex, user(format!("trader{i}"), Role::Trader));
        let account = AccountId(2 + i);
        // USD 10 billion and 1 million BTC each: never short of funds.
        must(&mut ex, Command::Deposit { account, asset: USD, amount: Amount(1_000_000_000_000), by: OPS });
        must(&mut ex, Command::Deposit { account, asset: BTC, amount: Amount(100_000_000_000_000), by: OPS });
    }
    let mut g = Generator::new(ex, 7);
    g.only(Kind::Add, BOOK_ORDERS);
    let book = g.ex.book(INST).expect("listed");
    assert_eq!(book.order_count(), BOOK_ORDERS);
    g.ex
}

/// The timed loop: each command executed with its events appended to a
/// buffer kept between commands (as the ledger's batch on its way to the
/// log is), then the events dropped. Never inlined, so a profiler can count
/// exactly this part.
#[inline(never)]
fn execute_all(ex: &mut Exchange, cmds: Vec<(Command, u64)>) {
    let mut events = Vec::new();
    for (c, ts) in cmds {
        black_box(ex.execute_into(c, ts, &mut events, None)).ok();
        black_box(&mut events).clear();
    }
}

/// Commands a server-like run hands to the exchange at a time.
const CHUNK_MAX: usize = 1_000;

/// The timed part of a server-like run: one chunk of commands that were
/// copied just before (as a server executes a command it has just decoded,
/// in cache). Never inlined, so a profiler can count exactly this part.
#[inline(never)]
fn execute_chunk(ex: &mut Exchange, cmds: &mut Vec<(Command, u64)>, events: &mut Vec<Event>) {
    for (c, ts) in cmds.drain(..) {
        black_box(ex.execute_into(c, ts, events, None)).ok();
        black_box(&mut *events).clear();
    }
}

/// A server-like run of the whole stream: `CHUNK_MAX` commands at a time
/// are cloned from the stream (every command built afresh, as a decoder
/// builds it) with the clock stopped, then executed with it running. Only
/// the executions are timed.
fn run_stream_chunked(start: &Exchange, stream: &Stream) -> (Duration, Faults) {
    let mut ex = start.clone();
    let mut events = Vec::new();
    let mut chunk: Vec<(Command, u64)> = Vec::with_capacity(CHUNK_MAX);
    let mut total = Duration::ZERO;
    let mut faults = Faults::default();
    for part in stream.cmds.chunks(CHUNK_MAX) {
        chunk.extend_from_slice(part);
        black_box(&mut chunk);
        let before = minor_faults();
        let t = Instant::now();
        execute_chunk(&mut ex, &mut chunk, &mut events);
        total += t.elapsed();
        faults.add(before, minor_faults());
    }
    (total, faults)
}

/// Minor page faults of this process so far (Linux), read outside the
/// timed parts: each is the kernel handing over a page of memory never
/// touched before (cleared first), which a run growing into new memory
/// pays for inside its time (BENCHMARKS.md, round 17).
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses): state, ppid, pgrp, session,
    // tty, tpgid, flags, minflt.
    stat.get(stat.rfind(')')? + 2..)?.split(' ').nth(7)?.parse().ok()
}

/// Minor page faults counted over the timed parts of a run (`None` where
/// the system does not tell).
#[derive(Clone, Copy, Default)]
struct Faults(Option<u64>);

impl Faults {
    fn add(&mut self, before: Option<u64>, after: Option<u64>) {
        if let (Some(b), Some(a)) = (before, after) {
            self.0 = Some(self.0.unwrap_or(0) + a.saturating_sub(b));
        }
    }
}

impl std::fmt::Display for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n} minor page faults"),
            None => write!(f, "page faults not known"),
        }
    }
}

/// The same with `execute`: a new event vector per command, dropped with
/// its outcome.
#[inline(never)]
fn execute_all_outcomes(ex: &mut Exchange, cmds: Vec<(Command, u64)>) {
    for (c, ts) in cmds {
        black_box(ex.execute(c, ts));
    }
}

fn run_stream(start: &Exchange, stream: &Stream) -> (Duration, Faults) {
    let mut ex = start.clone();
    let cmds = stream.cmds.clone();
    let mut faults = Faults::default();
    let before = minor_faults();
    let t = Instant::now();
    execute_all(&mut ex, cmds);
    let d = t.elapsed();
    faults.add(before, minor_faults());
    (d, faults)
}

fn run_stream_outcomes(start: &Exchange, stream: &Stream) -> Duration {
    let mut ex = start.clone();
    let cmds = stream.cmds.clone();
    let t = Instant::now();
    execute_all_outcomes(&mut ex, cmds);
    t.elapsed()
}

/// Times `iters` commands of `stream`, restarting from `start` each time the stream runs out.
fn time_stream(start: &Exchange, stream: &Stream, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(stream.cmds.len());
        let mut ex = start.clone();
        let cmds: Vec<(Command, u64)> = stream.cmds[..n].to_vec();
        let t = Instant::now();
        execute_all(&mut ex, cmds);
        total += t.elapsed();
        left -= n;
    }
    total
}

/// Server-like runs of each stream in the latency report:
/// `BOURSE_BENCH_RUNS`, 5 unless set.
fn server_like_runs() -> usize {
    std::env::var("BOURSE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(5)
}

fn per_sec(ops: u64, d: Duration) -> u64 {
    (ops as u128 * 1_000_000_000 / d.as_nanos().max(1)) as u64
}

/// Throughput of the whole stream, then each command timed on its own.
fn report(name: &str, start: &Exchange, stream: &Stream) {
    let n = stream.cmds.len() as u64;
    let (bulk, bulk_faults) = run_stream(start, stream);
    // Runs of one process differ from one another by up to two times on
    // a shared machine (BENCHMARKS.md, rounds 8 and 17): the server-like
    // figure is the median of several, with the fastest and slowest.
    let mut chunked: Vec<(Duration, Faults)> = (0..server_like_runs()).map(|_| run_stream_chunked(start, stream)).collect();
    chunked.sort_by_key(|r| r.0);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    let mut by_kind: Vec<Histogram<u64>> = KINDS.iter().map(|_| all.clone()).collect();
    let mut ex = start.clone();
    let cmds = stream.cmds.clone();
    let (mut events, mut trades) = (0u64, 0u64);
    // The slowest command: (ns, index, kind, orders the ledger then knew).
    let mut slowest = (0u64, 0usize, Kind::Add, 0usize);
    let mut buf = Vec::new();
    for (i, ((c, ts), kind)) in cmds.into_iter().zip(&stream.kinds).enumerate() {
        let t = Instant::now();
        black_box(ex.execute_into(c, ts, &mut buf, None)).ok();
        let run = t.elapsed();
        // Counted with the clock stopped; the events' drop is timed.
        events += buf.len() as u64;
        trades += buf.iter().filter(|e| matches!(e.body, EventBody::Traded(_))).count() as u64;
        let t = Instant::now();
        black_box(&mut buf).clear();
        let ns = (run + t.elapsed()).as_nanos() as u64;
        if ns > slowest.0 {
            slowest = (ns, i, *kind, ex.ledger.orders.len());
        }
        all.saturating_record(ns.max(1));
        by_kind[KINDS.iter().position(|k| k == kind).expect("a kind")].saturating_record(ns.max(1));
    }
    let book = ex.book(INST).expect("listed");
    println!(
        "{name}: {n} ops in {:.3?} ({bulk_faults}): {} ops/s on one thread; per op p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns (timed one by one)",
        bulk,
        per_sec(n, bulk),
        all.value_at_quantile(0.50),
        all.value_at_quantile(0.99),
        all.value_at_quantile(0.999),
        all.max(),
    );
    let mix: Vec<String> = KINDS
        .iter()
        .zip(&by_kind)
        .map(|(k, h)| {
            format!(
                "{} {}.{}% p50 {} ns p99 {} ns",
                kind_name(*k),
                h.len() * 100 / n.max(1),
                h.len() * 1000 / n.max(1) % 10,
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99)
            )
        })
        .collect();
    println!("{name}: mix {}", mix.join("; "));
    let (median, median_faults) = chunked[chunked.len() / 2];
    println!(
        "{name}: server-like, commands copied {CHUNK_MAX} at a time just before they run (only the runs timed): {} ops/s, the median of {} runs ({median_faults} in it; fastest {}, slowest {} ops/s)",
        per_sec(n, median),
        chunked.len(),
        per_sec(n, chunked[0].0),
        per_sec(n, chunked[chunked.len() - 1].0),
    );
    if std::env::var_os("BOURSE_BENCH_OUTCOMES").is_some() {
        let d = run_stream_outcomes(start, stream);
        println!("{name}: with `execute` (a new event vector per command): {} ops/s", per_sec(n, d));
    }
    println!(
        "{name}: slowest command #{} ({}, {} ns) with {} orders in the ledger's order table ({} at the end)",
        slowest.1,
        kind_name(slowest.2),
        slowest.0,
        slowest.3,
        ex.ledger.orders.len()
    );
    println!(
        "{name}: book {} orders on {} levels at the end; {} events, {} trades",
        book.order_count(),
        book.levels(Side::Buy, 0).len() + book.levels(Side::Sell, 0).len(),
        events,
        trades
    );
}

fn latency_report(ops: usize) {
    let t = Instant::now();
    let start = exchange_with_book();
    let book = start.book(INST).expect("listed");
    println!(
        "engine latency report: book of {} orders on {} levels, {} accounts, fees on (setup {:.1?})",
        book.order_count(),
        book.levels(Side::Buy, 0).len() + book.levels(Side::Sell, 0).len(),
        ACCOUNTS,
        t.elapsed()
    );
    // `BOURSE_BENCH_STREAM` names one stream to run alone (for a profile of it).
    const STREAMS: [(&str, u64, Mix); 2] = [("mixed", 11, Mix::Balanced), ("mixed_exact_ratio", 13, Mix::ExactRatio)];
    let only = std::env::var("BOURSE_BENCH_STREAM").ok();
    if let Some(o) = only.as_deref().filter(|o| !STREAMS.iter().any(|s| s.0 == *o)) {
        panic!("BOURSE_BENCH_STREAM={o}: no such stream (mixed, mixed_exact_ratio)");
    }
    for (name, seed, mix) in STREAMS {
        if only.as_deref().is_none_or(|o| o == name) {
            let stream = Generator::new(start.clone(), seed).mixed(ops, mix);
            cache_probe(&format!("before {name}"));
            report(name, &start, &stream);
        }
    }
    cache_probe("at the end");
    // Whether the allocator's huge pages are in effect (zero when jemalloc
    // was built without `.cargo/config.toml`'s `malloc_conf`).
    let huge = std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("AnonHugePages:")).map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")));
    println!("engine latency report: anonymous memory in huge pages at the end: {}", huge.as_deref().unwrap_or("unknown"));
}

/// What one dependent load costs on this machine, by how much memory the
/// loads range over: a chase through a random cycle of slots one cache
/// line apart, in memory from the bench's allocator (jemalloc with huge
/// pages). Run with the filter `memory`.
fn memory_report() {
    println!("memory report: one dependent load at a time, over slots 64 bytes apart in a random cycle");
    let mut rng = Rng(3);
    for kib in [256usize, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 262144] {
        println!("memory report: {kib:>7} KiB: {} a load", tenths_ns(chase(&mut rng, kib, 4_000_000)));
    }
}

/// Nanoseconds a dependent load takes, chasing `loads` times through a
/// random cycle over `kib` KiB (slots one cache line apart), in tenths.
fn chase(rng: &mut Rng, kib: usize, loads: usize) -> u128 {
    // Eight words a slot: the next slot's index in the first.
    let slots = kib * 1024 / 64;
    let mut order: Vec<usize> = (0..slots).collect();
    for i in (1..slots).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut mem = vec![0usize; slots * 8];
    for w in 0..slots {
        mem[order[w] * 8] = order[(w + 1) % slots] * 8;
    }
    drop(order);
    let mut at = 0usize;
    for _ in 0..loads / 4 {
        at = mem[at];
    }
    let t = Instant::now();
    for _ in 0..loads {
        at = mem[at];
    }
    let d = t.elapsed();
    black_box(at);
    d.as_nanos() * 10 / loads as u128
}

fn tenths_ns(tenths: u128) -> String {
    format!("{}.{} ns", tenths / 10, tenths % 10)
}

/// One line of what a dependent load costs over 2 and 4 MiB, in this
/// process now: how much of the shared last-level cache it has at this
/// moment (on the `AMD EPYC` VM of BENCHMARKS.md, 4 MiB fits at some
/// moments and not at others).
fn cache_probe(when: &str) {
    let mut rng = Rng(3);
    let two = chase(&mut rng, 2048, 1_000_000);
    let four = chase(&mut rng, 4096, 1_000_000);
    println!("engine latency report: cache probe {when}: a dependent load over 2 MiB {}, over 4 MiB {}", tenths_ns(two), tenths_ns(four));
}

/// `div` shortens the streams (for `cargo test --benches`).
fn benches(c: &mut Criterion, div: usize) {
    let start = exchange_with_book();
    let streams = [
        ("add", Generator::new(start.clone(), 1).only(Kind::Add, 50_000 / div)),
        ("cancel", Generator::new(start.clone(), 2).only(Kind::Cancel, BOOK_ORDERS / div)),
        ("match", Generator::new(start.clone(), 3).only(Kind::Marketable, 2_000 / div)),
        ("amend", Generator::new(start.clone(), 4).only(Kind::Amend, 50_000 / div)),
        ("mixed", Generator::new(start.clone(), 5).mixed(200_000 / div, Mix::Balanced)),
        ("mixed_exact_ratio", Generator::new(start.clone(), 6).mixed(200_000 / div, Mix::ExactRatio)),
    ];
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, stream) in &streams {
        g.bench_function(*name, |b| b.iter_custom(|iters| time_stream(&start, stream, iters)));
    }
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benchmarking = args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if filters.iter().any(|f| f.as_str() == "memory") {
        memory_report();
        return;
    }
    if filters.is_empty() || filters.iter().any(|f| "latency".contains(f.as_str())) {
        // Under `cargo test --benches` a short report only checks that it runs.
        let ops = if benchmarking {
            std::env::var("BOURSE_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(REPORT_OPS)
        } else {
            2_000
        };
        latency_report(ops);
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, if benchmarking { 1 } else { 100 });
    c.final_summary();
}
