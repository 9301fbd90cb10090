//! The floor under the `fanout` scenario on this machine: the same shape of
//! traffic (a batch of small messages to every one of N loopback TCP
//! connections, R batches a second, read by a client on the same cores)
//! with no exchange, no WebSocket and no decoding. Writer threads write
//! each batch to their share of the sockets in a sweep; reader threads wait
//! on their share with epoll (mio) and time each message from the writer's
//! stamp in it to its receipt. What it measures is what the kernel's
//! loopback TCP and the scheduler cost for this fan-out, which no server on
//! this machine can beat; `bourse-bench fanout` is compared with it
//! (`src/bin/fanout_floor.rs` is its command line).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::machine::{now_us, CpuMeter};
use crate::stats::{Latency, LatencySummary};

/// Events taken from one epoll wait.
const EVENTS_MAX: usize = 1024;
/// Bytes read from a socket at a time.
const READ_BYTES_MAX: usize = 64 * 1024;
/// How long readers go on after the last batch, for what is in flight.
const DRAIN_MS_MAX: u64 = 500;

/// What the floor sends.
#[derive(Debug, Clone)]
pub struct FloorOpts {
    /// Connections, each sent every batch.
    pub connections: usize,
    /// Batches per second.
    pub rate: u64,
    /// Bytes per message (at least 8: each message carries its send time).
    pub size: usize,
    /// Messages per batch, written to a socket in one write.
    pub per_batch: usize,
    pub writers: usize,
    pub readers: usize,
    pub duration: Duration,
}

/// What the floor measured.
#[derive(Debug, Clone)]
pub struct FloorReport {
    /// Writes made (batches x connections).
    pub writes: u64,
    /// Messages received, each timed.
    pub messages: u64,
    /// Reads that returned data.
    pub reads: u64,
    /// Seconds from the first batch to the last write.
    pub sent_s: f64,
    pub delivery: LatencySummary,
    /// Time one writer took to write one batch to its share.
    pub sweep: LatencySummary,
    pub cpu_pct: Option<f64>,
}

impl FloorReport {
    pub fn line(&self, o: &FloorOpts) -> String {
        format!(
            "fanout_floor: connections={} rate={}/s size={}B per_batch={} writers={} readers={} | writes={:.0}/s msgs={:.0}/s reads={:.0}/s | delivery {} | writer sweep {} | cpu {}",
            o.connections,
            o.rate,
            o.size,
            o.per_batch,
            o.writers,
            o.readers,
            self.writes as f64 / self.sent_s,
            self.messages as f64 / self.sent_s,
            self.reads as f64 / self.sent_s,
            self.delivery.line(),
            self.sweep.line(),
            self.cpu_pct.map_or("-".to_string(), |p| format!("{p:.0}%")),
        )
    }
}

/// Opens the connections, sends for `o.duration` and reads everything back.
pub fn run(o: &FloorOpts) -> anyhow::Result<FloorReport> {
    anyhow::ensure!(
        o.size >= 8 && o.per_batch > 0 && o.writers > 0 && o.readers > 0 && o.rate > 0,
        "size is at least 8 and the counts are positive"
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut clients = Vec::with_capacity(o.connections);
    let mut servers = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
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
    let mut shares: Vec<Vec<TcpStream>> = (0..o.readers).map(|_| Vec::new()).collect();
    for (i, c) in clients.into_iter().enumerate() {
        shares[i % o.readers].push(c);
    }
    for share in shares {
        let stop = stop.clone();
        let size = o.size;
        readers.push(std::thread::spawn(move || read_share(share, size, &stop)));
    }

    // Writers: each sweeps its share of the server sockets once per batch.
    let mut writers = Vec::new();
    let mut shares: Vec<Vec<TcpStream>> = (0..o.writers).map(|_| Vec::new()).collect();
    for (i, s) in servers.into_iter().enumerate() {
        shares[i % o.writers].push(s);
    }
    let period = Duration::from_nanos(1_000_000_000 / o.rate);
    let batches = u64::try_from(o.duration.as_nanos() / period.as_nanos().max(1)).unwrap_or(u64::MAX);
    for mut share in shares {
        let (size, per_batch) = (o.size, o.per_batch);
        writers.push(std::thread::spawn(move || -> std::io::Result<(Latency, u64)> {
            let mut sweep = Latency::new();
            let mut writes = 0u64;
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
                    writes += 1;
                }
                sweep.record_us(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Ok((sweep, writes))
        }));
    }
    let mut sweep = Latency::new();
    let mut writes = 0;
    for w in writers {
        let (s, n) = w.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        sweep.merge(&s);
        writes += n;
    }
    let sent_s = started.elapsed().as_secs_f64();
    let expected = writes * o.per_batch as u64;
    std::thread::sleep(Duration::from_millis(DRAIN_MS_MAX));
    stop.store(true, Ordering::Release);
    let mut lat = Latency::new();
    let (mut messages, mut reads) = (0u64, 0u64);
    for r in readers {
        let (l, m, n) = r.join().map_err(|_| anyhow::anyhow!("a reader panicked"))??;
        lat.merge(&l);
        messages += m;
        reads += n;
    }
    anyhow::ensure!(messages <= expected, "received {messages} messages of {expected} sent");
    Ok(FloorReport {
        writes,
        messages,
        reads,
        sent_s,
        delivery: lat.summary(),
        sweep: sweep.summary(),
        cpu_pct: cpu.percent(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_sent_is_received_and_timed() {
        let o = FloorOpts {
            connections: 20,
            rate: 200,
            size: 64,
            per_batch: 3,
            writers: 2,
            readers: 2,
            duration: Duration::from_millis(300),
        };
        let r = run(&o).expect("floor run");
        assert_eq!(r.writes, 20 * 60, "{r:?}");
        assert_eq!(r.messages, r.writes * 3, "{r:?}");
        assert_eq!(r.delivery.count, r.messages, "{r:?}");
        assert!(r.reads > 0 && r.reads <= r.writes, "{r:?}");
    }
}
