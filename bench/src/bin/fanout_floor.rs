//! The loopback floor under `bourse-bench fanout` (see `bourse_bench::floor`).
//!
//! ```text
//! cargo run --release -p bourse-bench --bin fanout_floor -- [--connections 1000] [--rate 450] [--size 160]
//! ```

use std::time::Duration;

use bourse_bench::floor::{self, FloorOpts};
use bourse_bench::machine::Machine;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "fanout_floor", about = "Loopback TCP fan-out with no exchange: the floor under `fanout`")]
struct Args {
    /// Connections, each sent every batch.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Batches per second (the exchange sends one per group commit that changed the book).
    #[arg(long, default_value_t = 450)]
    rate: u64,
    /// Bytes per message (each message carries its send time).
    #[arg(long, default_value_t = 160)]
    size: usize,
    /// Messages per batch (a book delta and its trades leave in one write).
    #[arg(long, default_value_t = 1)]
    per_batch: usize,
    /// Writer threads (the exchange's session threads).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Reader threads (the load generator's reader threads).
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!("{}", Machine::detect().line());
    let o = FloorOpts {
        connections: a.connections,
        rate: a.rate,
        size: a.size,
        per_batch: a.per_batch,
        writers: a.writers,
        readers: a.readers,
        duration: Duration::from_secs(a.duration),
    };
    let r = floor::run(&o)?;
    println!("{}", r.line(&o));
    Ok(())
}
