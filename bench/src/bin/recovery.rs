//! Durability benchmarks, without the network: the event log's group
//! commit (throughput, batch size, `fdatasync` latency) and recovery time
//! of a data directory of 1 and 10 million events, from the log alone and
//! from a recent snapshot.
//!
//! The events are what the engine decides for a synthetic trading day
//! (`bourse_actors::durability::workload`: limit orders around the last
//! price, some crossing, cancels, amends), one log batch per command, as the
//! journal writes them. Recovery is `bourse_actors::durability::recover`,
//! the code a starting node runs.
//!
//! ```text
//! cargo run --release -p bourse-bench --bin recovery -- [--events 1000000,10000000] [--commit-secs 5]
//! ```

// Rates and sizes in the report are measurements, not money.
#![allow(clippy::float_arithmetic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bourse_actors::config::DurabilityConf;
use bourse_actors::durability::envelope::{self, CatalogueEntry, SnapshotHeader};
use bourse_actors::durability::workload::Workload;
use bourse_actors::durability::{encode_event, log_dir, recover, snapshots_dir};
use bourse_actors::storage::log::{EventLog, FileLog, FileLogOptions};
use bourse_actors::storage::{SledSnapshotStore, SnapshotStore};
use bourse_bench::machine::Machine;
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
#[command(name = "recovery", about = "Event-log commit and recovery benchmarks")]
struct Args {
    /// Where the logs are written (removed afterwards unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Event counts of the recovery runs.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    events: Vec<u64>,
    /// Log batches per group commit (one fdatasync each) in the commit runs.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
    groups: Vec<usize>,
    /// Seconds per commit run.
    #[arg(long, default_value_t = 5)]
    commit_secs: u64,
    /// Events after the recent snapshot in the snapshot runs.
    #[arg(long, default_value_t = 100_000)]
    tail_events: u64,
    /// Traders of the synthetic day.
    #[arg(long, default_value_t = 50)]
    traders: usize,
    #[arg(long)]
    skip_commit: bool,
    #[arg(long)]
    skip_recovery: bool,
    /// Keep the generated data directories.
    #[arg(long)]
    keep: bool,
}

/// Batches pre-generated for the commit runs (cycled).
const COMMIT_POOL_BATCHES_MAX: usize = 200_000;
/// Batches written per sync while generating a recovery data directory.
const GENERATE_GROUP_BATCHES_MAX: u64 = 512;
/// First event time of the synthetic day (2026-11-20T00:00:00Z).
const DAY_START_US: u64 = 1_795_132_800_000_000;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("bourse-bench-recovery"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
    println!("{}", Machine::detect().line());
    println!("data: {} ({})", base.display(), filesystem(&base));
    println!();
    if !args.skip_commit {
        commit_runs(&args, &base)?;
    }
    if !args.skip_recovery {
        for &n in &args.events {
            recovery_run(&args, &base, n)?;
        }
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}

/// `df -T` of the directory, for the record.
fn filesystem(dir: &Path) -> String {
    std::process::Command::new("df")
        .args(["--output=source,fstype"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown file system".into())
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

// ------------------------------------------------------------ commit

fn commit_runs(args: &Args, base: &Path) -> anyhow::Result<()> {
    let mut w = Workload::new(1, args.traders, DAY_START_US);
    let pool: Vec<Vec<Vec<u8>>> = (0..COMMIT_POOL_BATCHES_MAX)
        .map(|_| w.next_batch().iter().map(encode_event).collect())
        .collect();
    let pool_events: usize = pool.iter().map(Vec::len).sum();
    let pool_bytes: usize = pool.iter().flatten().map(Vec::len).sum();
    println!(
        "## Event log group commit ({} s per row; batches from the synthetic day: {:.2} events and {:.0} bytes per batch)",
        args.commit_secs,
        pool_events as f64 / pool.len() as f64,
        pool_bytes as f64 / pool.len() as f64
    );
    println!();
    println!("| batches per commit | events per fdatasync | events/s | MB/s | fdatasync p50 | p99 | max | commit (append+sync) p50 | p99 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &group in &args.groups {
        let dir = base.join(format!("commit-{group}"));
        let (mut log, _) = FileLog::open(&dir, FileLogOptions::default())?;
        let mut sync_h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut commit_h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let (mut events, mut bytes, mut commits, mut at) = (0u64, 0u64, 0u64, 0usize);
        let run = Duration::from_secs(args.commit_secs);
        let started = Instant::now();
        while started.elapsed() < run {
            let t0 = Instant::now();
            for _ in 0..group {
                let b = &pool[at % pool.len()];
                at += 1;
                log.append(b)?;
                events += b.len() as u64;
                bytes += b.iter().map(|e| e.len() as u64).sum::<u64>();
            }
            let t1 = Instant::now();
            log.sync()?;
            let t2 = Instant::now();
            sync_h.record(us(t2 - t1).max(1))?;
            commit_h.record(us(t2 - t0).max(1))?;
            commits += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "| {group} | {:.1} | {:.0} | {:.1} | {} µs | {} µs | {} µs | {} µs | {} µs |",
            events as f64 / commits as f64,
            events as f64 / secs,
            bytes as f64 / secs / 1e6,
            sync_h.value_at_quantile(0.5),
            sync_h.value_at_quantile(0.99),
            sync_h.max(),
            commit_h.value_at_quantile(0.5),
            commit_h.value_at_quantile(0.99),
        );
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    Ok(())
}

// ------------------------------------------------------------ recovery

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn recovery_run(args: &Args, base: &Path, target_events: u64) -> anyhow::Result<()> {
    let data = base.join(format!("recovery-{target_events}"));
    let conf = DurabilityConf::default();
    let snapshot_at = target_events.saturating_sub(args.tail_events);

    // Generate the day into the log; take the snapshot on the way.
    let started = Instant::now();
    let mut w = Workload::new(2, args.traders, DAY_START_US);
    let (mut log, _) = FileLog::open(
        log_dir(&data),
        FileLogOptions {
            segment_bytes_max: conf.segment_bytes_max,
        },
    )?;
    let (mut events, mut last_ts) = (0u64, 0u64);
    let mut snapshot: Option<(SnapshotHeader, Vec<u8>, Duration)> = None;
    while events < target_events {
        let batch = w.next_batch();
        events += batch.len() as u64;
        last_ts = batch.last().map_or(last_ts, |e| e.ts);
        let encoded: Vec<Vec<u8>> = batch.iter().map(encode_event).collect();
        let index = log.append(&encoded)?;
        if index % GENERATE_GROUP_BATCHES_MAX == 0 {
            log.sync()?;
        }
        if snapshot.is_none() && events >= snapshot_at {
            let t = Instant::now();
            let header = SnapshotHeader {
                index,
                hash: log.last_hash(),
                events_total: events,
                last_ts,
            };
            let bytes = envelope::encode(&header, w.state());
            snapshot = Some((header, bytes, t.elapsed()));
        }
    }
    log.sync()?;
    let batches = log.last_index();
    drop(log);
    let final_hash = w.state().state_hash();
    let open_orders: usize = w.state().books.iter().map(|b| b.orders().len()).sum();
    let known_orders = w.state().ledger.orders.len();
    drop(w);
    let log_bytes = dir_bytes(&log_dir(&data));
    let (header, snap_bytes, encode_time) = snapshot.expect("a snapshot was taken");
    println!(
        "## Recovery of {events} events ({batches} batches, {:.0} MiB of log, {known_orders} orders in the ledger, {open_orders} resting), generated in {:.1} s",
        log_bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    println!();

    // 1. The log alone.
    let t = Instant::now();
    let (scan, _) = FileLog::open(log_dir(&data), FileLogOptions::default())?;
    let scan_time = t.elapsed();
    drop(scan);
    let t = Instant::now();
    let r = recover(&data, &conf)?;
    let full_time = t.elapsed();
    anyhow::ensure!(
        r.state.exchange.state_hash() == final_hash,
        "replay differs from the generated state"
    );
    anyhow::ensure!(r.state.replayed_events == events, "all events replayed");
    drop(r);

    // 2. A recent snapshot, with the whole log still there (opening the log
    //    still checks every segment).
    let t = Instant::now();
    {
        let store = SledSnapshotStore::open(snapshots_dir(&data))?;
        store.save(header.index, &snap_bytes)?;
        envelope::write_catalogue(&store, &[CatalogueEntry::from(&header)])?;
    }
    let save_time = t.elapsed();
    let (read_time, decode_time) = {
        let t = Instant::now();
        let store = SledSnapshotStore::open(snapshots_dir(&data))?;
        let (_, bytes) = store
            .latest()?
            .snapshot
            .context("the snapshot reads back")?;
        let read = t.elapsed();
        let t = Instant::now();
        let decoded = envelope::decode(&bytes).map_err(anyhow::Error::msg)?;
        let decode = t.elapsed();
        drop(decoded);
        (read, decode)
    };
    let t = Instant::now();
    let r = recover(&data, &conf)?;
    let snap_full_time = t.elapsed();
    anyhow::ensure!(
        r.state.snapshot.map(|s| s.index) == Some(header.index),
        "recovery started from the snapshot"
    );
    anyhow::ensure!(
        r.state.exchange.state_hash() == final_hash,
        "snapshot + tail differs from the generated state"
    );
    let tail = r.state.replayed_events;
    drop(r);

    // 3. The same snapshot, with the log before it purged (retention 0).
    {
        let (mut log, _) = FileLog::open(log_dir(&data), FileLogOptions::default())?;
        log.purge_before(header.index + 1)?;
    }
    let purged_bytes = dir_bytes(&log_dir(&data));
    let t = Instant::now();
    let r = recover(&data, &conf)?;
    let snap_purged_time = t.elapsed();
    anyhow::ensure!(
        r.state.exchange.state_hash() == final_hash,
        "purged log + snapshot differs from the generated state"
    );
    let purged_replayed = r.state.replayed_events;
    drop(r);

    println!("| recovery of {events} events | time | what it did |");
    println!("|---|---:|---|");
    println!(
        "| log only | {} ms | open and check {:.0} MiB of log ({} ms), replay {events} events ({:.2} M events/s) |",
        ms(full_time),
        log_bytes as f64 / (1 << 20) as f64,
        ms(scan_time),
        events as f64 / full_time.as_secs_f64() / 1e6
    );
    println!(
        "| snapshot {} events back, whole log kept | {} ms | check the whole log, load a {:.1} MiB snapshot, replay {tail} events |",
        events - header.events_total,
        ms(snap_full_time),
        snap_bytes.len() as f64 / (1 << 20) as f64,
    );
    println!(
        "| snapshot {} events back, log before it purged | {} ms | check {:.0} MiB of log, load the snapshot, replay {purged_replayed} events |",
        events - header.events_total,
        ms(snap_purged_time),
        purged_bytes as f64 / (1 << 20) as f64,
    );
    println!();
    println!(
        "snapshot: {:.1} MiB, encoded in {} ms, saved to sled (with flush) in {} ms; loading it: sled open and read with checksum {} ms, decode with checksum {} ms",
        snap_bytes.len() as f64 / (1 << 20) as f64,
        ms(encode_time),
        ms(save_time),
        ms(read_time),
        ms(decode_time)
    );
    println!();
    if !args.keep {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}
