// The streams the engine bench times, and a server-like run of one: the
// exchange with its book, the command generator, and the chunked run.
// Shared by `engine.rs` and by `bench/engine-ab` (which includes it twice,
// once against each of two engines, so `bourse_engine` is whatever engine
// the includer names so); hence plain comments here, not inner docs.

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
        // Past every `cl_id` the exchange has seen (one per order, in
        // order): each account's `cl_id`s keep rising, as a client's
        // numbered orders do, and none comes back as a duplicate.
        let next_cl = ex.ledger.next_order_id;
        let mut g = Generator {
            ex,
            rng: Rng(seed),
            ts: 1_000_000,
            next_cl,
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

/// Commands a server-like run hands to the exchange at a time.
const CHUNK_MAX: usize = 1_000;

/// The timed part of a server-like run: one chunk of commands that were
/// copied just before (as a server executes a command it has just decoded,
/// in cache). Never inlined, so a profiler can count exactly this part.
///
/// With `k` > 0, each command's first reads are asked for `k` commands
/// before it runs (`Exchange::prefetch`, through the includer's `ahead`),
/// and with `k` > 1 what depends on them one command before it runs
/// (`Exchange::prefetch_next`, through `ahead_next`), as a server holding
/// a batch of decoded commands can.
#[inline(never)]
fn execute_chunk(ex: &mut Exchange, cmds: &mut Vec<(Command, u64)>, events: &mut Vec<Event>, k: usize) {
    let mut d = cmds.drain(..);
    if k > 0 {
        for (c, _) in d.as_slice().iter().take(k) {
            ahead(ex, c);
        }
    }
    loop {
        if k > 0 {
            if let Some((c, _)) = d.as_slice().get(k) {
                ahead(ex, c);
            }
            if k > 1 {
                if let Some((c, _)) = d.as_slice().get(1) {
                    ahead_next(ex, c);
                }
            }
        }
        let Some((c, ts)) = d.next() else { break };
        black_box(ex.execute_into(c, ts, events, None)).ok();
        black_box(&mut *events).clear();
    }
}

/// A server-like run of the whole stream: `CHUNK_MAX` commands at a time
/// are cloned from the stream (every command built afresh, as a decoder
/// builds it) with the clock stopped, then executed with it running. Only
/// the executions are timed. `k`: the lookahead of `execute_chunk`.
fn run_stream_chunked(start: &Exchange, stream: &Stream, k: usize) -> (Duration, Faults) {
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
        execute_chunk(&mut ex, &mut chunk, &mut events, k);
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
