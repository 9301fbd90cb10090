//! Two engines in one process: this checkout's (`new`) and the revision
//! `./old.sh` set up (`old`), each given the engine bench's streams
//! (`actors/engine/benches/common/streams.rs`, included once against each)
//! and timed server-like, in turn, the order alternating from round to
//! round. Prints each round's ops/s and old/new time, and the medians.
//!
//! First, one untimed pass of each stream on each engine checks that both
//! made the same events and book, and prints how much memory the
//! exchange's state grew by over the stream (the allocator's bytes, net).
//!
//! `AB_OPS` commands a stream (1,000,000), `AB_REPS` rounds (5).
//! `AB_INTERLEAVE=1` runs the two engines in lockstep instead, a chunk
//! each in turn, each on its own exchange (README.md).
//! `AB_COUNT=<kind>` instead runs one kind's commands once on the new
//! engine alone, for an instruction count (README.md).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::time::Duration;

/// jemalloc, as the server and the engine bench, counting net bytes while
/// `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static NET: AtomicI64 = AtomicI64::new(0);

fn note(delta: i64) {
    if COUNTING.load(Relaxed) {
        NET.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call is passed on to jemalloc unchanged; counting only adds.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as i64);
        unsafe { tikv_jemallocator::Jemalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as i64));
        unsafe { tikv_jemallocator::Jemalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note(n as i64 - l.size() as i64);
        unsafe { tikv_jemallocator::Jemalloc.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

macro_rules! engine {
    ($m:ident, $k:ident, $($hook:item)*) => {
        #[allow(dead_code)]
        mod $m {
            use std::hint::black_box;
            use std::time::{Duration, Instant};

            use $k as bourse_engine;
            use bourse_engine::exchange::Listing;
            use bourse_engine::*;
            use rustc_hash::FxHashMap;

            include!("../../../actors/engine/benches/common/streams.rs");

            $($hook)*

            pub struct Setup {
                start: Exchange,
                streams: Vec<Stream>,
            }

            /// The exchange with its book, and the `mixed` and exact-mix
            /// streams of the engine bench's latency report (same seeds).
            pub fn setup(ops: usize) -> Setup {
                let start = exchange_with_book();
                let streams = vec![
                    Generator::new(start.clone(), 11).mixed(ops, Mix::Balanced),
                    Generator::new(start.clone(), 13).mixed(ops, Mix::ExactRatio),
                ];
                Setup { start, streams }
            }

            /// The time of a server-like run, and the page faults in it.
            pub fn run(s: &Setup, i: usize) -> (Duration, String) {
                let (d, f) = run_stream_chunked(&s.start, &s.streams[i], lookahead());
                (d, f.to_string())
            }

            /// One exchange run a chunk at a time, for runs of the two
            /// engines interleaved chunk by chunk.
            pub struct Stepper {
                ex: Exchange,
                events: Vec<Event>,
                chunk: Vec<(Command, u64)>,
            }

            impl Stepper {
                pub fn new(s: &Setup) -> Stepper {
                    Stepper { ex: s.start.clone(), events: Vec::new(), chunk: Vec::with_capacity(CHUNK_MAX) }
                }

                /// Runs chunk `c` of stream `i`, server-like; its time, or
                /// `None` past the stream's end.
                pub fn step(&mut self, s: &Setup, i: usize, c: usize) -> Option<Duration> {
                    let part = s.streams[i].cmds.chunks(CHUNK_MAX).nth(c)?;
                    self.chunk.extend_from_slice(part);
                    black_box(&mut self.chunk);
                    let t = Instant::now();
                    execute_chunk(&mut self.ex, &mut self.chunk, &mut self.events, lookahead());
                    Some(t.elapsed())
                }
            }

            /// The commands of one kind (`add`, `cancel`, `marketable`,
            /// `amend`; adds and amends `n`, marketable orders `n / 10`,
            /// cancels the whole book) or `mixed`, executed once by
            /// `counted`, for an instruction count of it alone.
            pub fn count(kind: &str, n: usize) {
                let start = exchange_with_book();
                let mut g = Generator::new(start.clone(), 1);
                let stream = match kind {
                    "add" => g.only(Kind::Add, n),
                    "cancel" => g.only(Kind::Cancel, BOOK_ORDERS),
                    "marketable" => g.only(Kind::Marketable, n / 10),
                    "amend" => g.only(Kind::Amend, n),
                    "mixed" => Generator::new(start.clone(), 11).mixed(n, Mix::Balanced),
                    "mixed_exact_ratio" => Generator::new(start.clone(), 13).mixed(n, Mix::ExactRatio),
                    "mixed_by_kind" => Generator::new(start.clone(), 11).mixed(n, Mix::Balanced),
                    other => panic!("no such kind: {other}"),
                };
                let mut ex = start.clone();
                if kind == "mixed_by_kind" {
                    by_kind(&mut ex, &stream);
                    for k in KINDS {
                        let n = stream.kinds.iter().filter(|&&x| x == k).count();
                        println!("{}: {n} commands", kind_name(k));
                    }
                } else {
                    counted(&mut ex, &stream);
                }
                println!("{kind}: {} commands executed once", stream.cmds.len());
            }

            /// `mixed`, each command executed by the function of its kind,
            /// so that callgrind's inclusive cost of `k_add`, `k_cancel`,
            /// `k_marketable` and `k_amend` splits the stream's count by
            /// kind, in the state the mix leaves (not the one-kind streams'
            /// growing or emptying book).
            #[inline(never)]
            fn by_kind(ex: &mut Exchange, stream: &Stream) {
                let mut events = Vec::with_capacity(64);
                for ((c, ts), k) in stream.cmds.iter().cloned().zip(&stream.kinds) {
                    match k {
                        Kind::Add => k_add(ex, c, ts, &mut events),
                        Kind::Cancel => k_cancel(ex, c, ts, &mut events),
                        Kind::Marketable => k_marketable(ex, c, ts, &mut events),
                        Kind::Amend => k_amend(ex, c, ts, &mut events),
                    }
                    events.clear();
                }
            }

            // Four copies of one body: each marks itself differently, or the
            // linker folds them into one function.
            #[inline(never)]
            fn k_add(ex: &mut Exchange, c: Command, ts: u64, events: &mut Vec<Event>) {
                black_box(1u8);
                black_box(ex.execute_into(c, ts, events, None)).ok();
            }
            #[inline(never)]
            fn k_cancel(ex: &mut Exchange, c: Command, ts: u64, events: &mut Vec<Event>) {
                black_box(2u16);
                black_box(ex.execute_into(c, ts, events, None)).ok();
            }
            #[inline(never)]
            fn k_marketable(ex: &mut Exchange, c: Command, ts: u64, events: &mut Vec<Event>) {
                black_box(3u32);
                black_box(ex.execute_into(c, ts, events, None)).ok();
            }
            #[inline(never)]
            fn k_amend(ex: &mut Exchange, c: Command, ts: u64, events: &mut Vec<Event>) {
                black_box(4u64);
                black_box(ex.execute_into(c, ts, events, None)).ok();
            }

            /// Never inlined: `valgrind --tool=callgrind
            /// --toggle-collect='engine_ab::new::counted'` counts it alone.
            #[inline(never)]
            fn counted(ex: &mut Exchange, stream: &Stream) {
                let mut events = Vec::with_capacity(64);
                for (c, ts) in stream.cmds.iter().cloned() {
                    black_box(ex.execute_into(c, ts, &mut events, None)).ok();
                    events.clear();
                }
            }

            /// Events, trades and resting orders at the end, and the bytes
            /// the exchange's state grew by, over one untimed pass.
            pub fn check(s: &Setup, i: usize) -> (usize, usize, usize, i64) {
                let mut ex = s.start.clone();
                let mut events = Vec::with_capacity(64);
                let (mut n, mut trades) = (0, 0);
                crate::NET.store(0, std::sync::atomic::Ordering::Relaxed);
                crate::COUNTING.store(true, std::sync::atomic::Ordering::Relaxed);
                for (c, ts) in s.streams[i].cmds.iter().cloned() {
                    ex.execute_into(c, ts, &mut events, None).ok();
                    n += events.len();
                    trades += events.iter().filter(|e| matches!(e.body, EventBody::Traded(_))).count();
                    events.clear();
                }
                crate::COUNTING.store(false, std::sync::atomic::Ordering::Relaxed);
                let grown = crate::NET.load(std::sync::atomic::Ordering::Relaxed);
                (n, trades, ex.book(INST).expect("listed").order_count(), grown)
            }
        }
    };
}

/// Commands ahead of the one running whose first reads a server-like run
/// asks for (`Exchange::prefetch`): `AB_AHEAD`, 0 (not at all) unless set.
fn ahead_k() -> usize {
    static K: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *K.get_or_init(|| env("AB_AHEAD", 0))
}

/// Whether the new side takes `prefetch_next`'s second step: `AB_NEXT`,
/// 1 (yes) unless set to 0.
fn ahead_next_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| env("AB_NEXT", 1) == 1)
}

// The new engine looks `AB_AHEAD` commands ahead; the old one too when
// built with `--features old-ahead` (it must have `Exchange::prefetch`
// and `Exchange::prefetch_next`), else never.
engine!(old, eng_old,
    #[cfg(feature = "old-ahead")]
    fn lookahead() -> usize { crate::ahead_k() }
    #[cfg(feature = "old-ahead")]
    fn ahead(ex: &Exchange, c: &Command) { ex.prefetch(c) }
    #[cfg(feature = "old-ahead")]
    fn ahead_next(ex: &Exchange, c: &Command) { ex.prefetch_next(c) }
    #[cfg(not(feature = "old-ahead"))]
    fn lookahead() -> usize { 0 }
    #[cfg(not(feature = "old-ahead"))]
    fn ahead(_: &Exchange, _: &Command) {}
    #[cfg(not(feature = "old-ahead"))]
    fn ahead_next(_: &Exchange, _: &Command) {}
);
engine!(new, eng_new,
    fn lookahead() -> usize { crate::ahead_k() }
    fn ahead(ex: &Exchange, c: &Command) {
        match crate::ahead_part() {
            crate::Part::All => ex.prefetch(c),
            crate::Part::Ledger => ex.ledger.prefetch(c),
            crate::Part::Book => ex.prefetch_book(c),
        }
    }
    fn ahead_next(ex: &Exchange, c: &Command) {
        if crate::ahead_next_on() && crate::ahead_part() != crate::Part::Ledger {
            ex.prefetch_next(c)
        }
    }
);

/// Which of the new side's hints a lookahead run gives: `AB_PART`, `all`
/// (`Exchange::prefetch`) unless set to `ledger` (`Ledger::prefetch`
/// only) or `book` (the book's only, what an instrument actor asks for).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    Ledger,
    Book,
}

fn ahead_part() -> Part {
    static P: std::sync::OnceLock<Part> = std::sync::OnceLock::new();
    *P.get_or_init(|| match std::env::var("AB_PART") {
        Err(_) => Part::All,
        Ok(v) => match v.as_str() {
            "all" => Part::All,
            "ledger" => Part::Ledger,
            "book" => Part::Book,
            _ => {
                eprintln!("engine-ab: AB_PART={v:?}: expected all, ledger or book");
                std::process::exit(2);
            }
        },
    })
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The median of sorted `v`: for an even count, the mean of the middle two.
fn median(v: &[f64]) -> f64 {
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn per_sec(ops: usize, d: Duration) -> u128 {
    ops as u128 * 1_000_000_000 / d.as_nanos().max(1)
}

fn main() {
    ahead_part(); // a bad `AB_PART` stops the run before it starts
    let ops = env("AB_OPS", 1_000_000);
    if let Ok(kind) = std::env::var("AB_COUNT") {
        new::count(&kind, ops);
        return;
    }
    let reps = env("AB_REPS", 5);
    let (o, n) = (old::setup(ops), new::setup(ops));
    let names = ["mixed", "mixed_exact_ratio"];
    for (i, name) in names.iter().enumerate() {
        let (a, b) = (old::check(&o, i), new::check(&n, i));
        println!("{name}: (events, trades, resting orders at the end) old {:?}, new {:?}", (a.0, a.1, a.2), (b.0, b.1, b.2));
        assert_eq!((a.0, a.1, a.2), (b.0, b.1, b.2), "the two engines made different events or books");
        println!("{name}: the state grew by {} bytes (old), {} bytes (new)", a.3, b.3);
    }
    if std::env::var("AB_INTERLEAVE").is_ok() {
        // Both engines in lockstep, a chunk each in turn (which goes first
        // alternating), so that both meet the machine's same moments.
        for (i, name) in names.iter().enumerate() {
            let mut v = Vec::new();
            for _ in 0..reps {
                let (mut a, mut b) = (old::Stepper::new(&o), new::Stepper::new(&n));
                let (mut to, mut tn) = (Duration::ZERO, Duration::ZERO);
                for c in 0.. {
                    let (x, y) = if c % 2 == 0 {
                        let x = a.step(&o, i, c);
                        (x, b.step(&n, i, c))
                    } else {
                        let y = b.step(&n, i, c);
                        (a.step(&o, i, c), y)
                    };
                    match (x, y) {
                        (Some(x), Some(y)) => {
                            to += x;
                            tn += y;
                        }
                        _ => break,
                    }
                }
                println!("{name}: old {}k ops/s, new {}k ops/s, old/new time {:.3}", per_sec(ops, to) / 1000, per_sec(ops, tn) / 1000, to.as_secs_f64() / tn.as_secs_f64());
                v.push(to.as_secs_f64() / tn.as_secs_f64());
            }
            v.sort_by(f64::total_cmp);
            let all: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
            println!("{name}: interleaved, old/new time, median {:.3} of {}", median(&v), all.join(", "));
        }
        return;
    }
    let mut ratios = vec![Vec::new(); names.len()];
    for r in 0..reps {
        for (i, name) in names.iter().enumerate() {
            let ((to, fo), (tn, fnew)) = if r % 2 == 0 {
                let a = old::run(&o, i);
                (a, new::run(&n, i))
            } else {
                let b = new::run(&n, i);
                (old::run(&o, i), b)
            };
            let q = to.as_secs_f64() / tn.as_secs_f64();
            ratios[i].push(q);
            println!(
                "round {r} {name}: old {}k ops/s ({fo}), new {}k ops/s ({fnew}), old/new time {q:.3}",
                per_sec(ops, to) / 1000,
                per_sec(ops, tn) / 1000
            );
        }
    }
    for (name, mut v) in names.iter().zip(ratios).filter(|(_, v)| !v.is_empty()) {
        v.sort_by(f64::total_cmp);
        let all: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
        println!("{name}: old/new time, median {:.3} of {}", median(&v), all.join(", "));
    }
}
