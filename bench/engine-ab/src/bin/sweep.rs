//! A neighbour that sweeps memory: reads and writes one word of every
//! cache line of a buffer of `MiB` mebibytes (64 unless given), over and
//! over, until killed. Run on the machine's other core while a bench runs
//! on one, it takes the shared cache from the bench, as other work on a
//! shared host can:
//!
//!     taskset -c 1 ./target/release/sweep 64 & taskset -c 0 <bench> ...
//!
//! It takes that cache only while the host runs both cores beside one
//! last-level cache, which the machine cannot see: read a run beside it
//! with the engine bench's cache probe (BENCHMARKS.md, rounds 19 and 20).

use std::hint::black_box;

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let words = mib << 17;
    let mut buf: Vec<u64> = (0..words as u64).collect();
    let mut sum = 0u64;
    loop {
        // Each load and store made as written (none merged or left out).
        let mut i = 0;
        while i < words {
            sum = sum.wrapping_add(black_box(buf[i]));
            buf[i] = black_box(sum);
            i += 8;
        }
    }
}
