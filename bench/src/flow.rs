//! The order-flow engine: C authenticated connections sending a mix of
//! order operations over one or more instruments, with every answer timed.
//!
//! Two ways to pace it:
//!
//! * Open loop ([`Pace::Open`]): a pacer thread fixes every request's
//!   intended send time in advance (R per second in total, evenly spaced or
//!   Poisson, round robin over the connections) whatever the server does.
//!   Latency runs from the intended time, not from when the client got
//!   round to sending, so a stalled server is charged for every request
//!   that queued behind the stall (no coordinated omission). How late the
//!   client itself sent is reported apart (`send_lag`).
//! * Closed loop ([`Pace::Closed`]): each connection keeps W requests
//!   outstanding and sends one more per answer: the exchange's maximum
//!   throughput. Latency runs from the actual send.
//!
//! Each connection has a writer task and a reader task on the two halves of
//! its socket. The request id carries what the reader needs to time and
//! classify the answer without a lookup: bits 0..40 the send time in
//! microseconds since the run's start, bits 40..44 the [`Kind`], bits 44..63
//! a counter. Open orders a connection may cancel or amend are tracked per
//! connection ([`OpenBook`]); connections log in with cancel-on-disconnect
//! so the orders left at the end leave the book with the connection.
//!
//! The mix: resting limit orders a few basis points from the mid, cancels
//! and amends (smaller quantity, which keeps priority, or a new passive
//! price) of this connection's open orders, limit IOC orders crossing the
//! mid (they trade against other connections' resting orders), and market
//! orders. Every account has its own funds; accounts are shared round robin
//! when there are fewer accounts than connections.

use crate::machine::{CpuMeter, ThreadCpu, ThreadMeter};
use crate::setup::{self, Account, InstrumentInfo};
use crate::stats::{Counts, Latency, LatencySummary};
use crate::wire::{self, Client, Ws};
use anyhow::{anyhow, bail, Context as _};
use bourse_protocol::msg::{AmendArgs, CancelArgs, Cod, Empty, OrderStatus, PlaceArgs, Side, Tif};
use bourse_protocol::Encoding;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Intended sends queued for one connection's writer before the pacer
/// counts an overrun (the client, not the server, fell behind).
pub const TOKENS_QUEUED_MAX: usize = 100_000;
/// Requests written before one flush.
pub const WRITE_BATCH_MAX: usize = 256;
/// Connections opened at once while a run starts.
pub const CONNECT_PARALLEL_MAX: usize = 64;
/// Bits of the request id holding the send time in microseconds (12 days).
const ID_TIME_BITS: u32 = 40;
const ID_KIND_BITS: u32 = 4;
const ID_COUNTER_BITS: u32 = 19;
const _: () = assert!(ID_TIME_BITS + ID_KIND_BITS + ID_COUNTER_BITS <= 63);
/// The kind of the last request of a writer: a `ping` that wakes its
/// reader once nothing more is coming. Not counted anywhere.
const FIN_KIND: u64 = 15;

/// One kind of order operation in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A resting limit order (`gtc`) on the passive side of the mid.
    Place,
    Cancel,
    Amend,
    /// A limit `ioc` order crossing the mid.
    Marketable,
    /// A market order.
    Market,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Place,
        Kind::Cancel,
        Kind::Amend,
        Kind::Marketable,
        Kind::Market,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Place => "place",
            Kind::Cancel => "cancel",
            Kind::Amend => "amend",
            Kind::Marketable => "marketable",
            Kind::Market => "market",
        }
    }

    fn bits(self) -> u64 {
        self as u64
    }

    fn from_bits(b: u64) -> Option<Kind> {
        Kind::ALL.get(usize::try_from(b).ok()?).copied()
    }
}

/// Percent weights of each [`Kind`]; they need not add to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    pub place: u32,
    pub cancel: u32,
    pub amend: u32,
    pub marketable: u32,
    pub market: u32,
}

impl Mix {
    /// Most traffic on a real venue is quoting: placing, cancelling and
    /// amending resting orders; a small part takes liquidity.
    pub const REALISTIC: Mix = Mix {
        place: 45,
        cancel: 30,
        amend: 10,
        marketable: 10,
        market: 5,
    };

    /// Reads `place,cancel,amend,marketable,market` weights.
    pub fn parse(s: &str) -> anyhow::Result<Mix> {
        let w: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                anyhow!("a mix is five whole weights: place,cancel,amend,marketable,market")
            })?;
        let [place, cancel, amend, marketable, market] = w[..] else {
            bail!("a mix is five weights: place,cancel,amend,marketable,market");
        };
        let mix = Mix {
            place,
            cancel,
            amend,
            marketable,
            market,
        };
        if mix.total() == 0 {
            bail!("a mix needs a positive weight");
        }
        Ok(mix)
    }

    fn weights(&self) -> [u32; 5] {
        [
            self.place,
            self.cancel,
            self.amend,
            self.marketable,
            self.market,
        ]
    }

    fn total(&self) -> u32 {
        self.weights().iter().sum()
    }

    fn pick(&self, r: u64) -> Kind {
        let mut x = (r % u64::from(self.total())) as u32;
        for (k, w) in Kind::ALL.into_iter().zip(self.weights()) {
            if x < w {
                return k;
            }
            x -= w;
        }
        Kind::Place
    }
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// `rate` requests per second in total, fixed in advance.
    Open { rate: u64, poisson: bool },
    /// `window` outstanding requests per connection.
    Closed { window: usize },
}

/// What a flow does.
#[derive(Debug, Clone)]
pub struct FlowOpts {
    pub connections: usize,
    pub pace: Pace,
    /// Sending time, warm-up included.
    pub duration: Duration,
    /// The first part of the run, whose answers are not measured.
    pub warmup: Duration,
    pub mix: Mix,
    /// How far from the mid resting orders go, in basis points.
    pub offset_bps_max: u64,
    /// The same in ticks; overrides `offset_bps_max` (a fan-out flow keeps
    /// its changes inside the subscribed depth).
    pub offset_ticks_max: Option<u64>,
    /// How far past the mid marketable orders reach, in basis points.
    pub cross_bps: u64,
    /// The largest order, in minimum order sizes.
    pub size_max: u64,
    /// Open orders a connection keeps; past it, a place becomes a cancel.
    pub open_orders_max: usize,
    pub seed: u64,
    pub encoding: Encoding,
    /// How long answers are awaited after the last send.
    pub drain: Duration,
}

impl Default for FlowOpts {
    fn default() -> Self {
        FlowOpts {
            connections: 8,
            pace: Pace::Open {
                rate: 1_000,
                poisson: false,
            },
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            mix: Mix::REALISTIC,
            offset_bps_max: 50,
            offset_ticks_max: None,
            cross_bps: 100,
            size_max: 5,
            open_orders_max: 500,
            seed: 1,
            encoding: Encoding::MsgPack,
            drain: Duration::from_secs(10),
        }
    }
}

/// The result of a flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    /// `open` or `closed`.
    pub mode: String,
    pub connections: usize,
    pub accounts: usize,
    pub instruments: Vec<String>,
    pub encoding: String,
    pub target_rate_per_s: Option<u64>,
    pub window: Option<usize>,
    pub mix: Mix,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Requests sent, warm-up included.
    pub sent: u64,
    pub answered: u64,
    /// Sent but never answered before the drain time ran out.
    pub unanswered: u64,
    /// Intended sends the client could not even queue (open loop).
    pub overruns: u64,
    /// Answers to requests sent after the warm-up.
    pub measured: u64,
    /// `measured` per second of the measured part: every answer, refusals
    /// included.
    pub throughput_per_s: f64,
    /// Measured answers that were not refusals, per second: the orders,
    /// cancels and amends the exchange carried out.
    pub accepted_per_s: f64,
    /// Successful answers by the order's status.
    pub ok_by_status: Counts,
    /// Refusals by error code.
    pub rejects: Counts,
    /// Requests sent by kind.
    pub sent_by_kind: Counts,
    /// Connection failures by cause.
    pub connection_errors: Counts,
    /// Answer latency of measured requests.
    pub latency: LatencySummary,
    pub latency_by_kind: BTreeMap<String, LatencySummary>,
    /// How late the client sent, against the intended time (open loop).
    pub send_lag: Option<LatencySummary>,
    /// CPU of the server process from the first send to the last answer,
    /// percent of one core (200 = both cores of a 2-core machine).
    pub server_cpu_pct: Option<f64>,
    /// CPU of the bench process over the same time.
    pub client_cpu_pct: Option<f64>,
    /// CPU of the whole machine over the same time, from `/proc/stat`
    /// ticks: near 200% (two cores) it shows the machine was saturated and
    /// what is above server plus bench was other work. Tick sampling
    /// undercounts bursty, partly idle load, so below saturation it can
    /// read less than server plus bench.
    pub machine_cpu_pct: Option<f64>,
    /// The server's busiest threads over the same time.
    pub server_threads: Vec<ThreadCpu>,
}

impl FlowReport {
    /// The answers refused, over all answers.
    pub fn reject_share(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.rejects.total() as f64 / self.answered as f64
        }
    }
}

/// A small seeded generator (SplitMix64): reproducible flows from `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential variate of mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// One of a connection's open orders.
#[derive(Debug, Clone, Copy)]
struct OpenOrder {
    order_id: u64,
    inst: usize,
    side: Side,
    px_ticks: u64,
    qty_lots: u64,
}

/// A connection's view of its own orders.
#[derive(Debug, Default)]
struct OpenBook {
    open: Vec<OpenOrder>,
    /// Places in flight, by request id.
    placing: HashMap<u64, OpenOrder>,
    /// Amends in flight: request id to order id.
    amending: HashMap<u64, u64>,
}

impl OpenBook {
    fn remove(&mut self, order_id: u64) {
        if let Some(i) = self.open.iter().position(|o| o.order_id == order_id) {
            self.open.swap_remove(i);
        }
    }
}

/// What the writer and reader of one connection share.
struct ConnShared {
    book: Mutex<OpenBook>,
    /// Requests the writer has handed to the socket.
    sent: AtomicU64,
    writer_done: AtomicBool,
    window: Option<Semaphore>,
}

/// The run's clock and limits.
struct RunClock {
    start: Instant,
    warmup_us: u64,
    end_us: u64,
}

impl RunClock {
    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

fn pack_id(counter: u64, kind: u64, time_us: u64) -> u64 {
    let counter = counter & ((1 << ID_COUNTER_BITS) - 1);
    (counter << (ID_TIME_BITS + ID_KIND_BITS))
        | ((kind & ((1 << ID_KIND_BITS) - 1)) << ID_TIME_BITS)
        | (time_us & ((1 << ID_TIME_BITS) - 1))
}

fn unpack_id(id: u64) -> (u64, u64) {
    (
        (id >> ID_TIME_BITS) & ((1 << ID_KIND_BITS) - 1),
        id & ((1 << ID_TIME_BITS) - 1),
    )
}

/// Makes one connection's requests.
struct Gen {
    enc: Encoding,
    tag: String,
    conn: usize,
    counter: u64,
    rng: Rng,
    instruments: Arc<Vec<InstrumentInfo>>,
    offset_max: Vec<u64>,
    cross: Vec<u64>,
    mix: Mix,
    size_max: u64,
    open_orders_max: usize,
    sent_by_kind: [u64; 5],
}

impl Gen {
    fn cl_id(&self) -> String {
        format!("{}{:x}x{:x}", self.tag, self.conn, self.counter)
    }

    /// The next request, sent at `time_us` (intended or actual).
    fn next(&mut self, time_us: u64, book: &mut OpenBook) -> Message {
        self.counter += 1;
        let mut kind = self.mix.pick(self.rng.next_u64());
        if kind == Kind::Place && book.open.len() >= self.open_orders_max {
            kind = Kind::Cancel;
        }
        if matches!(kind, Kind::Cancel | Kind::Amend) && book.open.is_empty() {
            kind = Kind::Place;
        }
        self.sent_by_kind[kind as usize] += 1;
        let id = pack_id(self.counter, kind.bits(), time_us);
        let instruments = self.instruments.clone();
        match kind {
            Kind::Place => {
                let i = self.rng.below(instruments.len() as u64) as usize;
                let inst = &instruments[i];
                let side = self.side();
                let off = 1 + self.rng.below(self.offset_max[i]);
                let px = match side {
                    Side::Buy => inst.mid_ticks.saturating_sub(off).max(1),
                    Side::Sell => inst.mid_ticks + off,
                };
                let lots = self.lots(inst);
                book.placing.insert(
                    id,
                    OpenOrder {
                        order_id: 0,
                        inst: i,
                        side,
                        px_ticks: px,
                        qty_lots: lots,
                    },
                );
                let args = PlaceArgs::limit(
                    &self.cl_id(),
                    &inst.sym,
                    side,
                    &inst.px(px),
                    &inst.qty(lots),
                );
                wire::request(self.enc, "order.place", id, &args)
            }
            Kind::Cancel => {
                let j = self.rng.below(book.open.len() as u64) as usize;
                let o = book.open.swap_remove(j);
                let args = CancelArgs {
                    sym: instruments[o.inst].sym.clone(),
                    order_id: Some(o.order_id),
                    cl_id: None,
                };
                wire::request(self.enc, "order.cancel", id, &args)
            }
            Kind::Amend => {
                let j = self.rng.below(book.open.len() as u64) as usize;
                let reduce = self.rng.below(2) == 0;
                let o = &mut book.open[j];
                let inst = &instruments[o.inst];
                let mut args = AmendArgs {
                    sym: inst.sym.clone(),
                    order_id: Some(o.order_id),
                    cl_id: None,
                    qty: None,
                    px: None,
                };
                if reduce && o.qty_lots > inst.min_qty_lots {
                    o.qty_lots -= inst.min_qty_lots;
                    args.qty = Some(inst.qty(o.qty_lots));
                } else {
                    // A new price on the same side of the mid, so the
                    // amended order still rests.
                    let step = 1 + self.rng.next_u64() % 3;
                    let max = self.offset_max[o.inst];
                    let mid = inst.mid_ticks;
                    let (lo, hi) = match o.side {
                        Side::Buy => (mid.saturating_sub(max).max(1), mid.saturating_sub(1).max(1)),
                        Side::Sell => (mid + 1, mid + max),
                    };
                    let mut px = if self.rng.next_u64() & 1 == 0 {
                        o.px_ticks + step
                    } else {
                        o.px_ticks.saturating_sub(step)
                    }
                    .clamp(lo, hi);
                    if px == o.px_ticks {
                        px = if px > lo { px - 1 } else { (px + 1).min(hi) };
                    }
                    o.px_ticks = px;
                    args.px = Some(inst.px(px));
                }
                book.amending.insert(id, o.order_id);
                wire::request(self.enc, "order.amend", id, &args)
            }
            Kind::Marketable | Kind::Market => {
                let i = self.rng.below(instruments.len() as u64) as usize;
                let inst = &instruments[i];
                let side = self.side();
                let lots = self.lots(inst);
                let qty = inst.qty(lots);
                let cl_id = self.cl_id();
                let args = if kind == Kind::Market {
                    PlaceArgs::market(&cl_id, &inst.sym, side, &qty)
                } else {
                    let px = match side {
                        Side::Buy => inst.mid_ticks + self.cross[i],
                        Side::Sell => inst.mid_ticks.saturating_sub(self.cross[i]).max(1),
                    };
                    PlaceArgs {
                        tif: Some(Tif::Ioc),
                        ..PlaceArgs::limit(&cl_id, &inst.sym, side, &inst.px(px), &qty)
                    }
                };
                wire::request(self.enc, "order.place", id, &args)
            }
        }
    }

    fn side(&mut self) -> Side {
        if self.rng.next_u64() & 1 == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn lots(&mut self, inst: &InstrumentInfo) -> u64 {
        inst.min_qty_lots * (1 + self.rng.below(self.size_max))
    }

    fn fin(&mut self, time_us: u64) -> Message {
        self.counter += 1;
        wire::request(
            self.enc,
            "ping",
            pack_id(self.counter, FIN_KIND, time_us),
            &Empty {},
        )
    }
}

/// What one connection's reader counted.
#[derive(Default)]
struct ReaderStats {
    answered: u64,
    measured: u64,
    measured_ok: u64,
    ok_by_status: Counts,
    rejects: Counts,
    errors: Counts,
    latency: Latency,
    by_kind: [Latency; 5],
    unanswered: u64,
}

/// What one connection's writer counted.
#[derive(Default)]
struct WriterStats {
    sent_by_kind: [u64; 5],
    send_lag: Latency,
    errors: Counts,
}

/// Opens `n` connections logged in round robin as `accounts`, with
/// cancel-on-disconnect for the orders placed through each.
pub async fn connect_traders(
    url: &str,
    enc: Encoding,
    accounts: &[Account],
    n: usize,
) -> anyhow::Result<Vec<Ws>> {
    if accounts.is_empty() {
        bail!("a flow needs at least one account");
    }
    let limit = Arc::new(Semaphore::new(CONNECT_PARALLEL_MAX));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let url = url.to_owned();
        let account = accounts[i % accounts.len()].clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let mut c = Client::connect(&url, enc).await?;
            setup::login(&mut c, &account, Cod::Connection).await?;
            anyhow::Ok(c.into_ws())
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await?.context("open a trading connection")?);
    }
    Ok(out)
}

/// Runs a flow on already logged-in connections (see [`connect_traders`]).
pub async fn run_on(
    sockets: Vec<Ws>,
    accounts: usize,
    instruments: &[InstrumentInfo],
    opts: &FlowOpts,
    server_pid: Option<u32>,
) -> anyhow::Result<FlowReport> {
    if instruments.is_empty() {
        bail!("a flow needs at least one instrument");
    }
    let n = sockets.len();
    let instruments = Arc::new(instruments.to_vec());
    let offset_max: Vec<u64> = instruments
        .iter()
        .map(|i| {
            opts.offset_ticks_max
                .unwrap_or_else(|| i.bps_ticks(opts.offset_bps_max))
                .max(1)
        })
        .collect();
    let cross: Vec<u64> = instruments
        .iter()
        .map(|i| i.bps_ticks(opts.cross_bps))
        .collect();
    let tag = run_tag();
    let server_cpu = server_pid.map(CpuMeter::start);
    let client_cpu = CpuMeter::start(std::process::id());
    let machine_cpu = CpuMeter::machine();
    let threads = server_pid.map(ThreadMeter::start);
    let clock = Arc::new(RunClock {
        start: Instant::now(),
        warmup_us: dur_us(opts.warmup),
        end_us: dur_us(opts.duration),
    });
    let overruns = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (c, ws) in sockets.into_iter().enumerate() {
        let shared = Arc::new(ConnShared {
            book: Mutex::new(OpenBook::default()),
            sent: AtomicU64::new(0),
            writer_done: AtomicBool::new(false),
            window: match opts.pace {
                Pace::Closed { window } => Some(Semaphore::new(window.max(1))),
                Pace::Open { .. } => None,
            },
        });
        let gen = Gen {
            enc: opts.encoding,
            tag: tag.clone(),
            conn: c,
            counter: 0,
            rng: Rng::new(opts.seed.wrapping_mul(0x1000_0001).wrapping_add(c as u64)),
            instruments: instruments.clone(),
            offset_max: offset_max.clone(),
            cross: cross.clone(),
            mix: opts.mix,
            size_max: opts.size_max.max(1),
            open_orders_max: opts.open_orders_max.max(1),
            sent_by_kind: [0; 5],
        };
        let (sink, stream) = ws.split();
        readers.push(tokio::spawn(read_answers(
            stream,
            shared.clone(),
            clock.clone(),
            opts.drain,
        )));
        match opts.pace {
            Pace::Open { .. } => {
                let (tx, rx) = mpsc::channel(TOKENS_QUEUED_MAX);
                senders.push(tx);
                writers.push(tokio::spawn(write_open(
                    sink,
                    rx,
                    gen,
                    shared,
                    clock.clone(),
                )));
            }
            Pace::Closed { .. } => {
                writers.push(tokio::spawn(write_closed(sink, gen, shared, clock.clone())));
            }
        }
    }
    let pacer = match opts.pace {
        Pace::Open { rate, poisson } => {
            let clock = clock.clone();
            let overruns = overruns.clone();
            let seed = opts.seed;
            Some(tokio::task::spawn_blocking(move || {
                pace(&clock, rate, poisson, seed, &senders, &overruns)
            }))
        }
        Pace::Closed { .. } => None,
    };
    if let Some(p) = pacer {
        p.await?;
    }
    let mut w_all = WriterStats::default();
    let mut sinks = Vec::with_capacity(n);
    for w in writers {
        let (w, sink) = w.await?;
        sinks.push(sink);
        for (a, b) in w_all.sent_by_kind.iter_mut().zip(w.sent_by_kind) {
            *a += b;
        }
        w_all.send_lag.merge(&w.send_lag);
        w_all.errors.merge(&w.errors);
    }
    let mut r_all = ReaderStats::default();
    let mut streams = Vec::with_capacity(n);
    for r in readers {
        let (r, stream) = r.await?;
        streams.push(stream);
        r_all.answered += r.answered;
        r_all.measured += r.measured;
        r_all.measured_ok += r.measured_ok;
        r_all.unanswered += r.unanswered;
        r_all.ok_by_status.merge(&r.ok_by_status);
        r_all.rejects.merge(&r.rejects);
        r_all.errors.merge(&r.errors);
        r_all.latency.merge(&r.latency);
        for (a, b) in r_all.by_kind.iter_mut().zip(&r.by_kind) {
            a.merge(b);
        }
    }
    let server_cpu_pct = server_cpu.and_then(|m| m.percent());
    let client_cpu_pct = client_cpu.percent();
    let machine_cpu_pct = machine_cpu.percent();
    let server_threads = threads.map(|t| t.top()).unwrap_or_default();
    close_all(sinks, streams).await;
    let mut sent_by_kind = Counts::default();
    let mut latency_by_kind = BTreeMap::new();
    for k in Kind::ALL {
        sent_by_kind.add(k.name(), w_all.sent_by_kind[k as usize]);
        let h = &r_all.by_kind[k as usize];
        if h.count() > 0 {
            latency_by_kind.insert(k.name().to_owned(), h.summary());
        }
    }
    let mut connection_errors = w_all.errors;
    connection_errors.merge(&r_all.errors);
    let measured_s = opts.duration.saturating_sub(opts.warmup).as_secs_f64();
    let (mode, rate, window) = match opts.pace {
        Pace::Open { rate, .. } => ("open", Some(rate), None),
        Pace::Closed { window } => ("closed", None, Some(window)),
    };
    Ok(FlowReport {
        mode: mode.into(),
        connections: n,
        accounts,
        instruments: instruments.iter().map(|i| i.sym.clone()).collect(),
        encoding: opts.encoding.subprotocol().into(),
        target_rate_per_s: rate,
        window,
        mix: opts.mix,
        duration_s: opts.duration.as_secs_f64(),
        warmup_s: opts.warmup.as_secs_f64(),
        sent: sent_by_kind.total(),
        answered: r_all.answered,
        unanswered: r_all.unanswered,
        overruns: overruns.load(Ordering::Relaxed),
        measured: r_all.measured,
        throughput_per_s: if measured_s > 0.0 {
            r_all.measured as f64 / measured_s
        } else {
            0.0
        },
        accepted_per_s: if measured_s > 0.0 {
            r_all.measured_ok as f64 / measured_s
        } else {
            0.0
        },
        ok_by_status: r_all.ok_by_status,
        rejects: r_all.rejects,
        sent_by_kind,
        connection_errors,
        latency: r_all.latency.summary(),
        latency_by_kind,
        send_lag: rate.map(|_| w_all.send_lag.summary()),
        server_cpu_pct,
        client_cpu_pct,
        machine_cpu_pct,
        server_threads,
    })
}

/// Connects and runs a flow.
pub async fn run(
    url: &str,
    accounts: &[Account],
    instruments: &[InstrumentInfo],
    opts: &FlowOpts,
    server_pid: Option<u32>,
) -> anyhow::Result<FlowReport> {
    let sockets = connect_traders(url, opts.encoding, accounts, opts.connections).await?;
    run_on(sockets, accounts.len(), instruments, opts, server_pid).await
}

/// How long closing the connections at the end of a flow may take.
pub const CLOSE_MS_MAX: u64 = 5_000;

/// Closes the flow's connections (their orders leave the book with them).
async fn close_all(sinks: Vec<SplitSink<Ws, Message>>, streams: Vec<SplitStream<Ws>>) {
    let closing = sinks.into_iter().zip(streams).filter_map(|(sink, stream)| {
        let mut ws = sink.reunite(stream).ok()?;
        Some(async move {
            let _ = ws.close(None).await;
        })
    });
    let all = futures_util::future::join_all(closing);
    let _ = tokio::time::timeout(Duration::from_millis(CLOSE_MS_MAX), all).await;
}

/// A short tag making this run's `cl_id`s unique on an account that has
/// seen earlier runs (the exchange remembers `cl_id`s for 24 h).
fn run_tag() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut v = crate::machine::now_us() ^ (u64::from(std::process::id()) << 40);
    let mut s = String::new();
    for _ in 0..9 {
        s.push(DIGITS[(v % 36) as usize] as char);
        v /= 36;
    }
    s.push('-');
    s
}

fn dur_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The pacer: hands each connection's writer the intended send times, round
/// robin, `rate` per second in total, until the run's end.
fn pace(
    clock: &RunClock,
    rate: u64,
    poisson: bool,
    seed: u64,
    senders: &[mpsc::Sender<u64>],
    overruns: &AtomicU64,
) {
    let rate = rate.max(1);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut k: u64 = 0;
    let mut next_us: f64 = 0.0;
    let interval_us = 1e6 / rate as f64;
    loop {
        let now = clock.now_us();
        while next_us as u64 <= now {
            let t = next_us as u64;
            if t >= clock.end_us {
                return;
            }
            let tx = &senders[(k % senders.len() as u64) as usize];
            if tx.try_send(t).is_err() {
                overruns.fetch_add(1, Ordering::Relaxed);
            }
            k += 1;
            next_us = if poisson {
                next_us + rng.exp(interval_us)
            } else {
                k as f64 * interval_us
            };
        }
        std::thread::sleep(Duration::from_micros((next_us as u64).saturating_sub(now)));
    }
}

async fn write_open(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<u64>,
    mut gen: Gen,
    shared: Arc<ConnShared>,
    clock: Arc<RunClock>,
) -> (WriterStats, SplitSink<Ws, Message>) {
    let mut stats = WriterStats::default();
    'run: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(intended) = next {
            let now = clock.now_us();
            if intended >= clock.warmup_us {
                stats.send_lag.record_us(now.saturating_sub(intended));
            }
            let msg = {
                let mut book = shared
                    .book
                    .lock()
                    .expect("a poisoned lock is a panic elsewhere");
                gen.next(intended, &mut book)
            };
            shared.sent.fetch_add(1, Ordering::Release);
            if let Err(e) = sink.feed(msg).await {
                stats.errors.add(&format!("send: {e}"), 1);
                break 'run;
            }
            batch += 1;
            next = if batch < WRITE_BATCH_MAX {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = sink.flush().await {
            stats.errors.add(&format!("send: {e}"), 1);
            break;
        }
    }
    finish_writer(&mut sink, &mut gen, &shared, &clock, &mut stats).await;
    (stats, sink)
}

async fn write_closed(
    mut sink: SplitSink<Ws, Message>,
    mut gen: Gen,
    shared: Arc<ConnShared>,
    clock: Arc<RunClock>,
) -> (WriterStats, SplitSink<Ws, Message>) {
    let mut stats = WriterStats::default();
    let window = shared
        .window
        .as_ref()
        .expect("a closed-loop connection has a window");
    let end = clock.start + Duration::from_micros(clock.end_us);
    'run: loop {
        match tokio::time::timeout_at(end.into(), window.acquire()).await {
            Ok(Ok(p)) => p.forget(),
            _ => break,
        }
        let mut batch = 0;
        loop {
            let now = clock.now_us();
            let msg = {
                let mut book = shared
                    .book
                    .lock()
                    .expect("a poisoned lock is a panic elsewhere");
                gen.next(now, &mut book)
            };
            shared.sent.fetch_add(1, Ordering::Release);
            if let Err(e) = sink.feed(msg).await {
                stats.errors.add(&format!("send: {e}"), 1);
                break 'run;
            }
            batch += 1;
            if batch >= WRITE_BATCH_MAX || now >= clock.end_us {
                break;
            }
            match window.try_acquire() {
                Ok(p) => p.forget(),
                Err(_) => break,
            }
        }
        if let Err(e) = sink.flush().await {
            stats.errors.add(&format!("send: {e}"), 1);
            break;
        }
        if clock.now_us() >= clock.end_us {
            break;
        }
    }
    finish_writer(&mut sink, &mut gen, &shared, &clock, &mut stats).await;
    (stats, sink)
}

async fn finish_writer(
    sink: &mut SplitSink<Ws, Message>,
    gen: &mut Gen,
    shared: &ConnShared,
    clock: &RunClock,
    stats: &mut WriterStats,
) {
    stats.sent_by_kind = gen.sent_by_kind;
    shared.writer_done.store(true, Ordering::Release);
    // Wakes the reader, which then waits for what is still unanswered.
    let _ = sink.send(gen.fin(clock.now_us())).await;
}

async fn read_answers(
    mut stream: SplitStream<Ws>,
    shared: Arc<ConnShared>,
    clock: Arc<RunClock>,
    drain: Duration,
) -> (ReaderStats, SplitStream<Ws>) {
    let mut st = ReaderStats::default();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        if shared.writer_done.load(Ordering::Acquire) {
            if st.answered >= shared.sent.load(Ordering::Acquire) {
                break;
            }
            drain_deadline.get_or_insert_with(|| tokio::time::Instant::now() + drain);
        }
        let m = match drain_deadline {
            None => stream.next().await,
            Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                Ok(m) => m,
                Err(_) => break,
            },
        };
        let m = match m {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                st.errors.add(&format!("receive: {e}"), 1);
                break;
            }
            None => {
                st.errors.add("closed by the server", 1);
                break;
            }
        };
        let Some((bytes, binary)) = wire::payload(&m) else {
            if let Message::Close(c) = &m {
                st.errors.add(&format!("closed by the server: {c:?}"), 1);
                break;
            }
            continue;
        };
        let inc = match wire::decode_incoming(bytes, binary) {
            Ok(i) => i,
            Err(_) => {
                st.errors.add("undecodable frame", 1);
                continue;
            }
        };
        if !inc.is_response() {
            if inc.op.as_deref() == Some("notice") {
                let code = inc.code.as_deref().unwrap_or("?");
                st.errors.add(&format!("notice: {code}"), 1);
            }
            continue;
        }
        let Some(id) = inc.response_id() else {
            st.errors.add("answer without an id", 1);
            continue;
        };
        let (kind_bits, sent_us) = unpack_id(id);
        if kind_bits == FIN_KIND {
            continue;
        }
        let Some(kind) = Kind::from_bits(kind_bits) else {
            st.errors.add("answer to an unknown request", 1);
            continue;
        };
        let now = clock.now_us();
        st.answered += 1;
        if let Some(w) = &shared.window {
            w.add_permits(1);
        }
        if sent_us >= clock.warmup_us {
            let lat = now.saturating_sub(sent_us);
            st.measured += 1;
            st.measured_ok += u64::from(inc.ok == Some(true));
            st.latency.record_us(lat);
            st.by_kind[kind as usize].record_us(lat);
        }
        let mut book = shared
            .book
            .lock()
            .expect("a poisoned lock is a panic elsewhere");
        if inc.ok == Some(true) {
            let status = inc.res.as_ref().and_then(|r| r.status);
            st.ok_by_status.add(status_name(status), 1);
            match kind {
                Kind::Place | Kind::Marketable | Kind::Market => {
                    if let Some(mut o) = book.placing.remove(&id) {
                        if let (Some(order_id), Some(s)) =
                            (inc.res.as_ref().and_then(|r| r.order_id), status)
                        {
                            if s.is_open() {
                                o.order_id = order_id;
                                book.open.push(o);
                            }
                        }
                    }
                }
                Kind::Amend => {
                    if let Some(order_id) = book.amending.remove(&id) {
                        if status.is_some_and(|s| !s.is_open()) {
                            book.remove(order_id);
                        }
                    }
                }
                Kind::Cancel => {}
            }
        } else {
            let code = inc.err.as_ref().map_or("no_error_code", |e| &e.code);
            st.rejects.add(code, 1);
            book.placing.remove(&id);
            if let Some(order_id) = book.amending.remove(&id) {
                // Filled or gone meanwhile: stop targeting it.
                book.remove(order_id);
            }
        }
    }
    st.unanswered = shared
        .sent
        .load(Ordering::Acquire)
        .saturating_sub(st.answered);
    (st, stream)
}

fn status_name(s: Option<OrderStatus>) -> &'static str {
    match s {
        Some(OrderStatus::New) => "new",
        Some(OrderStatus::PartiallyFilled) => "partially_filled",
        Some(OrderStatus::Filled) => "filled",
        Some(OrderStatus::Cancelled) => "cancelled",
        None => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_kind_and_time() {
        for (c, k, t) in [
            (1, 0, 0),
            (524_287, 4, (1 << 40) - 1),
            (524_288, 15, 12_345),
        ] {
            let id = pack_id(c, k, t);
            assert!(id < 1 << 63);
            assert_eq!(unpack_id(id), (k, t));
        }
    }

    #[test]
    fn the_mix_picks_by_weight() {
        let m = Mix::parse("1,0,0,0,3").unwrap();
        let mut n = [0u32; 5];
        let mut rng = Rng::new(7);
        for _ in 0..4000 {
            n[m.pick(rng.next_u64()) as usize] += 1;
        }
        assert_eq!(n[1] + n[2] + n[3], 0);
        assert!((800..1200).contains(&n[0]), "{n:?}");
        assert!(Mix::parse("1,2,3").is_err());
        assert!(Mix::parse("0,0,0,0,0").is_err());
    }

    #[test]
    fn run_tags_fit_client_order_ids() {
        let t = run_tag();
        // Up to 65,536 connections and 2^40 requests each.
        let longest = format!("{t}{:x}x{:x}", 0xffff, (1u64 << 40) - 1);
        assert!(bourse_protocol::msg::valid_cl_id(&longest), "{longest}");
    }
}
