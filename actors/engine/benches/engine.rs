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
//! timed; and the same runs, alternating with those, with each command's
//! first reads asked for `LOOKAHEAD` commands before it runs
//! (`Exchange::prefetch`) and what they lead to one command before
//! (`Exchange::prefetch_next`), as a caller holding a batch can
//! (criterion's `mixed_ahead` is `mixed` so run).
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

/// Commands in the latency report.
const REPORT_OPS: usize = 2_000_000;

include!("common/streams.rs");

/// How many commands ahead the latency report's second server-like figure
/// asks for a command's first reads (BENCHMARKS.md, round 21: 1 and 2
/// did best, 8 gave back most of the gain); what they lead to is asked
/// for one command ahead.
const LOOKAHEAD: usize = 2;

fn ahead(ex: &Exchange, c: &Command) {
    ex.prefetch(c);
}

fn ahead_next(ex: &Exchange, c: &Command) {
    ex.prefetch_next(c);
}

/// The timed loop: each command executed with its events appended to a
/// buffer kept between commands (as the ledger's batch on its way to the
/// log is), then the events dropped. Never inlined, so a profiler can count
/// exactly this part. `k`: the lookahead of `execute_chunk`, which runs it.
#[inline(never)]
fn execute_all(ex: &mut Exchange, mut cmds: Vec<(Command, u64)>, k: usize) {
    let mut events = Vec::new();
    execute_chunk(ex, &mut cmds, &mut events, k);
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
    execute_all(&mut ex, cmds, 0);
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

/// Times `iters` commands of `stream`, restarting from `start` each time
/// the stream runs out; `k`: the lookahead of `execute_chunk`.
fn time_stream(start: &Exchange, stream: &Stream, iters: u64, k: usize) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(stream.cmds.len());
        let mut ex = start.clone();
        let cmds: Vec<(Command, u64)> = stream.cmds[..n].to_vec();
        let t = Instant::now();
        execute_all(&mut ex, cmds, k);
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
    // Without and with lookahead in turn, so that both meet the
    // machine's same moments.
    let (mut chunked, mut ahead) = (Vec::new(), Vec::new());
    for _ in 0..server_like_runs() {
        chunked.push(run_stream_chunked(start, stream, 0));
        ahead.push(run_stream_chunked(start, stream, LOOKAHEAD));
    }
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
    let server_like = |how: &str, mut runs: Vec<(Duration, Faults)>| {
        runs.sort_by_key(|r| r.0);
        let (median, median_faults) = runs[runs.len() / 2];
        println!(
            "{name}: server-like, {how}: {} ops/s, the median of {} runs ({median_faults} in it; fastest {}, slowest {} ops/s)",
            per_sec(n, median),
            runs.len(),
            per_sec(n, runs[0].0),
            per_sec(n, runs[runs.len() - 1].0),
        );
    };
    server_like(&format!("commands copied {CHUNK_MAX} at a time just before they run (only the runs timed)"), chunked);
    server_like(&format!("each command's first reads asked for {LOOKAHEAD} commands ahead, what they lead to one ahead (`Exchange::prefetch`, `prefetch_next`)"), ahead);
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

/// The processor as `/proc/cpuinfo` names it: a virtual machine's model
/// name may hide the part, but its family and model tell one generation
/// from another (AMD family 25 model 17 is Zen 4), so that runs on two
/// machines of one class are not taken for one.
fn processor() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.split_once(':').filter(|(n, _)| n.trim() == k).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    format!(
        "{} (family {} model {} stepping {}), {cores} cores, avx512f {}",
        field("model name"),
        field("cpu family"),
        field("model"),
        field("stepping"),
        if field("flags").split(' ').any(|f| f == "avx512f") { "yes" } else { "no" }
    )
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
    println!("engine latency report: processor {}", processor());
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
        g.bench_function(*name, |b| b.iter_custom(|iters| time_stream(&start, stream, iters, 0)));
    }
    // `mixed` looking ahead as the report's second server-like figure does.
    let mixed = &streams[4].1;
    g.bench_function("mixed_ahead", |b| b.iter_custom(|iters| time_stream(&start, mixed, iters, LOOKAHEAD)));
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
