//! The floor under the `fanout` scenario on this machine: the same shape of
//! traffic (a batch of small messages to every one of N loopback TCP
//! connections, R batches a second, read by a client on the same cores)
//! with no exchange, no WebSocket and no decoding. Writer threads write
//! each batch to their share of the sockets in a sweep; reader threads wait
//! on their share with epoll (mio) and time each message from the writer's
//! stamp in it to its receipt. What it measures is what the kernel's
//! loopback TCP and the scheduler cost for this fan-out, which no server on
//! this machine can beat; `bourse-bench fanout` is compared with it.
//!
//! ```text
//! cargo run --release -p bourse-bench --bin fanout_floor -- [--connections 1000] [--rate 450] [--size 160]
//! ```

// Rates and percentages in the report are measurements, not money.
#![allow(clippy::float_arithmetic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_bench::machine::{now_us, CpuMeter, Machine};
use bourse_bench::stats::Latency;
use clap::Parser;
use mio::{Events, Interest, Poll, Token};

/// Events taken from one epoll wait.
const EVENTS_MAX: usize = 1024;
/// Bytes read from a socket at a time.
const READ_BYTES_MAX: usize = 64 * 1024;

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
    /// Reader threads (the load generator's runtime threads).
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.size >= 8 && a.writers > 0 && a.readers > 0 && a.rate > 0, "bad arguments");
    println!("{}", Machine::detect().line());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut clients = Vec::with_capacity(a.connections);
    let mut servers = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        let c = TcpStream::connect(addr)?;
        let (s, _) = listener.accept()?;
        c.set_nodelay(true)?;
        s.set_nodelay(true)?;
        clients.push(c);
        servers.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cpu = CpuMeter::start(std::process::id());
    let started = Instant::now();

    // Readers: each owns every `readers`-th client socket.
    let mut readers = Vec::new();
    let mut shares: Vec<Vec<TcpStream>> = (0..a.readers).map(|_| Vec::new()).collect();
    for (i, c) in clients.into_iter().enumerate() {
        shares[i % a.readers].push(c);
    }
    for share in shares {
        let stop = stop.clone();
        let size = a.size;
        readers.push(std::thread::spawn(move || read_share(share, size, &stop)));
    }

    // Writers: each sweeps its share of the server sockets once per batch.
    let mut writers = Vec::new();
    let mut shares: Vec<Vec<TcpStream>> = (0..a.writers).map(|_| Vec::new()).collect();
    for (i, s) in servers.into_iter().enumerate() {
        shares[i % a.writers].push(s);
    }
    let period = Duration::from_nanos(1_000_000_000 / a.rate);
    let batches = a.rate * a.duration;
    for mut share in shares {
        let (size, per_batch) = (a.size, a.per_batch);
        writers.push(std::thread::spawn(move || -> std::io::Result<Latency> {
            let mut sweep = Latency::new();
            let mut buf = vec![0u8; size * per_batch];
            for b in 0..batches {
                let due = started + period * u32::try_from(b).unwrap_or(u32::MAX);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let t0 = Instant::now();
                let ts = now_us().to_le_bytes();
                for m in buf.chunks_mut(size) {
                    m[..8].copy_from_slice(&ts);
                }
                for s in share.iter_mut() {
                    s.write_all(&buf)?;
                }
                sweep.record_us(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Ok(sweep)
        }));
    }
    let mut sweep = Latency::new();
    for w in writers {
        let s = w.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        sweep.merge(&s);
    }
    let sent_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let mut lat = Latency::new();
    let mut msgs = 0u64;
    let mut reads = 0u64;
    for r in readers {
        let (l, m, n) = r.join().map_err(|_| anyhow::anyhow!("a reader panicked"))??;
        lat.merge(&l);
        msgs += m;
        reads += n;
    }
    let cpu = cpu.percent().map_or("-".to_string(), |p| format!("{p:.0}%"));
    println!(
        "fanout_floor: connections={} rate={}/s size={}B per_batch={} writers={} readers={} | writes={:.0}/s msgs={:.0}/s reads={:.0}/s | delivery {} | writer sweep {} | cpu {}",
        a.connections,
        a.rate,
        a.size,
        a.per_batch,
        a.writers,
        a.readers,
        (batches as f64 * a.connections as f64) / sent_s,
        msgs as f64 / sent_s,
        reads as f64 / sent_s,
        lat.summary().line(),
        sweep.summary().line(),
        cpu,
    );
    Ok(())
}

/// Reads a share of the client sockets until `stop`: every message's delay
/// from its stamp, the messages and the reads that returned data.
fn read_share(share: Vec<TcpStream>, size: usize, stop: &AtomicBool) -> std::io::Result<(Latency, u64, u64)> {
    let mut poll = Poll::new()?;
    let mut socks = Vec::with_capacity(share.len());
    for (i, s) in share.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut s = mio::net::TcpStream::from_std(s);
        poll.registry().register(&mut s, Token(i), Interest::READABLE)?;
        socks.push((s, Vec::<u8>::new()));
    }
    let mut events = Events::with_capacity(EVENTS_MAX);
    let mut buf = vec![0u8; READ_BYTES_MAX];
    let (mut lat, mut msgs, mut reads) = (Latency::new(), 0u64, 0u64);
    while !stop.load(Ordering::Acquire) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let (s, rest) = &mut socks[ev.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        reads += 1;
                        let now = now_us();
                        rest.extend_from_slice(&buf[..n]);
                        let whole = rest.len() / size * size;
                        for m in rest[..whole].chunks(size) {
                            let mut ts = [0u8; 8];
                            ts.copy_from_slice(&m[..8]);
                            lat.record_us(now.saturating_sub(u64::from_le_bytes(ts)));
                            msgs += 1;
                        }
                        rest.drain(..whole);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok((lat, msgs, reads))
}
