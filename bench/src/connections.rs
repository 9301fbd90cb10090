//! The `connections` scenario: N WebSocket connections opened and held,
//! each living on the server's heartbeats (`hb` after every idle second),
//! while one probe connection measures `ping` round trips. The report is
//! how many opened and stayed open, the heartbeat rhythm as clients see it,
//! and the server's resident memory per connection (its `VmRSS` after the
//! connections opened, minus before, over their number).

use crate::flow::CONNECT_PARALLEL_MAX;
use crate::machine::{self, CpuMeter, ThreadCpu, ThreadMeter};
use crate::stats::{Counts, Latency, LatencySummary};
use crate::target::Target;
use crate::wire;
use bourse_protocol::msg::Empty;
use bourse_protocol::Encoding;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// Descriptors the bench needs beside its connections (runtime, files).
pub const OPEN_FILES_SPARE: u64 = 64;
/// Pause between two probe pings.
pub const PROBE_INTERVAL_MS: u64 = 100;
/// Time after the last connection opened before the server's memory is
/// read, so buffers and tasks of the last ones have settled.
pub const SETTLE_MS: u64 = 2_000;

/// What the `connections` scenario does.
#[derive(Debug, Clone)]
pub struct ConnectionsOpts {
    pub connections: usize,
    /// How long all connections are held once open.
    pub hold: Duration,
    /// Handshakes in flight at once.
    pub parallel: usize,
    pub encoding: Encoding,
}

impl Default for ConnectionsOpts {
    fn default() -> Self {
        ConnectionsOpts {
            connections: 1_000,
            hold: Duration::from_secs(10),
            parallel: CONNECT_PARALLEL_MAX,
            encoding: Encoding::MsgPack,
        }
    }
}

/// The result of a `connections` run.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub target: usize,
    pub opened: usize,
    /// Connections still open at the end of the hold.
    pub held: usize,
    pub open_failures: Counts,
    pub drops: Counts,
    /// Seconds to open them all.
    pub open_s: f64,
    /// WebSocket handshake time (TCP connect + upgrade).
    pub handshake: LatencySummary,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub server_rss_per_connection_kib: Option<f64>,
    pub heartbeats: u64,
    /// Heartbeats per held connection per second of the hold.
    pub heartbeats_per_connection_s: f64,
    /// Time between two heartbeats on one connection.
    pub heartbeat_interval: LatencySummary,
    /// `ping` round trips of the probe connection during the hold.
    pub ping: LatencySummary,
    /// Server CPU during the hold, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// Bench and whole-machine CPU during the hold.
    pub client_cpu_pct: Option<f64>,
    pub machine_cpu_pct: Option<f64>,
    /// The server's busiest threads over the same time.
    pub server_threads: Vec<ThreadCpu>,
    pub client_open_files_limit: Option<u64>,
}

impl ConnectionsReport {
    pub fn line(&self) -> String {
        format!(
            "connections: target={} opened={} held={} in {:.1}s | rss/conn={} (before={} after={}) | hb/conn/s={:.2} hb interval {} | probe ping {} | cpu: server={} bench={} machine={} | server threads: {} | failures: {} drops: {}",
            self.target,
            self.opened,
            self.held,
            self.open_s,
            self.server_rss_per_connection_kib
                .map_or_else(|| "?".into(), |k| format!("{k:.1}KiB")),
            kib(self.server_rss_before_kib),
            kib(self.server_rss_after_kib),
            self.heartbeats_per_connection_s,
            self.heartbeat_interval.line(),
            self.ping.line(),
            crate::orders::pct(self.server_cpu_pct),
            crate::orders::pct(self.client_cpu_pct),
            crate::orders::pct(self.machine_cpu_pct),
            crate::machine::threads_line(&self.server_threads),
            self.open_failures.line(),
            self.drops.line(),
        )
    }
}

fn kib(k: Option<u64>) -> String {
    k.map_or_else(|| "?".into(), |k| format!("{:.1}MiB", k as f64 / 1024.0))
}

/// What one held connection saw.
#[derive(Default)]
struct Held {
    opened: bool,
    held: bool,
    handshake_us: u64,
    heartbeats: u64,
    intervals: Latency,
    open_failure: Option<String>,
    drop: Option<String>,
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, opts: &ConnectionsOpts) -> anyhow::Result<ConnectionsReport> {
    if let Some(limit) = machine::open_files_limit() {
        if limit < opts.connections as u64 + OPEN_FILES_SPARE {
            eprintln!(
                "warning: this process may open {limit} files, fewer than {} connections need: raise it with `ulimit -n`",
                opts.connections
            );
        }
    }
    let rss_before = target.server_pid.and_then(machine::rss_kib);
    let limit = Arc::new(Semaphore::new(opts.parallel.max(1)));
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel::<()>(opts.connections.max(1));
    let end = Arc::new(tokio::sync::OnceCell::<tokio::time::Instant>::new());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let url = target.ws_url.clone();
        let enc = opts.encoding;
        let limit = limit.clone();
        let opened = opened_tx.clone();
        let end = end.clone();
        tasks.push(tokio::spawn(async move {
            hold(&url, enc, limit, opened, end).await
        }));
    }
    drop(opened_tx);
    while opened_rx.recv().await.is_some() {}
    let open_s = started.elapsed().as_secs_f64();

    // Everything is open (or failed): hold, probe, then read the memory.
    let hold_end = tokio::time::Instant::now() + opts.hold;
    let _ = end.set(hold_end);
    let server_cpu = target.server_pid.map(CpuMeter::start);
    let client_cpu = CpuMeter::start(std::process::id());
    let machine_cpu = CpuMeter::machine();
    let threads = target.server_pid.map(ThreadMeter::start);
    let probe = tokio::spawn(probe(target.ws_url.clone(), opts.encoding, hold_end));
    tokio::time::sleep(Duration::from_millis(SETTLE_MS).min(opts.hold)).await;
    let rss_after = target.server_pid.and_then(machine::rss_kib);
    let ping = probe.await?;
    let server_cpu_pct = server_cpu.and_then(|m| m.percent());
    let client_cpu_pct = client_cpu.percent();
    let machine_cpu_pct = machine_cpu.percent();
    let server_threads = threads.map(|t| t.top()).unwrap_or_default();

    let mut report = ConnectionsReport {
        target: opts.connections,
        opened: 0,
        held: 0,
        open_failures: Counts::default(),
        drops: Counts::default(),
        open_s,
        handshake: LatencySummary::default(),
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_rss_per_connection_kib: None,
        heartbeats: 0,
        heartbeats_per_connection_s: 0.0,
        heartbeat_interval: LatencySummary::default(),
        ping,
        server_cpu_pct,
        client_cpu_pct,
        machine_cpu_pct,
        server_threads,
        client_open_files_limit: machine::open_files_limit(),
    };
    let mut handshakes = Latency::new();
    let mut intervals = Latency::new();
    for t in tasks {
        let h = t.await?;
        report.opened += usize::from(h.opened);
        report.held += usize::from(h.held);
        if h.opened {
            handshakes.record_us(h.handshake_us);
        }
        if let Some(f) = h.open_failure {
            report.open_failures.add(&f, 1);
        }
        if let Some(d) = h.drop {
            report.drops.add(&d, 1);
        }
        report.heartbeats += h.heartbeats;
        intervals.merge(&h.intervals);
    }
    report.handshake = handshakes.summary();
    report.heartbeat_interval = intervals.summary();
    if report.held > 0 {
        report.heartbeats_per_connection_s =
            report.heartbeats as f64 / report.held as f64 / opts.hold.as_secs_f64().max(1e-9);
    }
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        if report.opened > 0 {
            report.server_rss_per_connection_kib =
                Some((a as f64 - b as f64) / report.opened as f64);
        }
    }
    Ok(report)
}

/// Opens one connection and holds it until the hold's end, counting
/// heartbeats.
async fn hold(
    url: &str,
    enc: Encoding,
    limit: Arc<Semaphore>,
    opened: tokio::sync::mpsc::Sender<()>,
    end: Arc<tokio::sync::OnceCell<tokio::time::Instant>>,
) -> Held {
    let mut h = Held::default();
    let connected = {
        let _permit = limit.acquire().await;
        let t = Instant::now();
        let r = wire::connect(url, enc, true).await;
        h.handshake_us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        r
    };
    let _ = opened.send(()).await;
    drop(opened);
    let mut ws = match connected {
        Ok(ws) => ws,
        Err(e) => {
            h.open_failure = Some(format!("{e:#}"));
            return h;
        }
    };
    h.opened = true;
    // The hold's end is known once every connection has opened.
    let mut last_hb: Option<Instant> = None;
    let end_at = loop {
        if let Some(e) = end.get() {
            break *e;
        }
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) => continue,
            Ok(m) => {
                if let Some(d) = read_one(m, &mut h, &mut last_hb, false) {
                    h.drop = Some(d);
                    return h;
                }
            }
        }
    };
    loop {
        match tokio::time::timeout_at(end_at, ws.next()).await {
            Err(_) => break,
            Ok(m) => {
                if let Some(d) = read_one(m, &mut h, &mut last_hb, true) {
                    h.drop = Some(d);
                    return h;
                }
            }
        }
    }
    h.held = true;
    let _ = ws.close(None).await;
    h
}

/// Counts one message; a cause when the connection ended.
fn read_one(
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    h: &mut Held,
    last_hb: &mut Option<Instant>,
    counting: bool,
) -> Option<String> {
    let m = match m {
        None => return Some("closed by the server".into()),
        Some(Err(e)) => return Some(format!("receive: {e}")),
        Some(Ok(m)) => m,
    };
    if let Message::Close(c) = &m {
        return Some(format!("closed by the server: {c:?}"));
    }
    let (bytes, binary) = wire::payload(&m)?;
    let inc = wire::decode_incoming(bytes, binary).ok()?;
    if inc.ch.as_deref() == Some("hb") {
        let now = Instant::now();
        if counting {
            h.heartbeats += 1;
            if let Some(prev) = *last_hb {
                h.intervals
                    .record_us(u64::try_from((now - prev).as_micros()).unwrap_or(u64::MAX));
            }
        }
        *last_hb = Some(now);
    }
    None
}

/// Pings every [`PROBE_INTERVAL_MS`] until `end`, timing each round trip.
async fn probe(url: String, enc: Encoding, end: tokio::time::Instant) -> LatencySummary {
    let mut lat = Latency::new();
    let Ok(mut ws) = wire::connect(&url, enc, false).await else {
        return lat.summary();
    };
    let mut id = 0u64;
    while tokio::time::Instant::now() < end {
        id += 1;
        let t = Instant::now();
        if ws
            .send(wire::request(enc, "ping", id, &Empty {}))
            .await
            .is_err()
        {
            break;
        }
        loop {
            let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await else {
                return lat.summary();
            };
            let Some((bytes, binary)) = wire::payload(&m) else {
                continue;
            };
            if let Ok(inc) = wire::decode_incoming(bytes, binary) {
                if inc.response_id() == Some(id) {
                    lat.record_us(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
    }
    let _ = ws.close(None).await;
    lat.summary()
}
