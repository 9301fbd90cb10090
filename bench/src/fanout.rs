//! The `fanout` scenario: market data to many subscribers while orders
//! flow. S connections subscribe to `book.l2` and `trades` of one
//! instrument; an open-loop order flow on that instrument changes the book
//! (resting orders a few ticks from the mid, inside the subscribed depth,
//! so nearly every change is visible). Every subscriber checks every
//! stream's chain the way PROTOCOL.md section 2 tells a client to: a
//! snapshot starts it, each event must have `prev` equal to the last `seq`
//! received, an older `seq` is ignored, and anything else is a gap. A gap
//! the server announced (`type:"gap"`) is counted apart from one it did not
//! (an unannounced gap, which must never happen); heartbeats' `last` seqs
//! are checked against what arrived, so loss at a quiet tail shows too.
//! Delivery latency is the client's receipt time minus the event's `ts`
//! (same machine, same clock).

use crate::flow::{self, FlowOpts, FlowReport};
use crate::frames::{self, Envelope, Frame, Front};
use crate::machine::{self, CpuMeter, ThreadCpu, ThreadMeter};
use crate::scrape::{BucketSummary, Buckets};
use crate::setup;
use crate::stats::{Counts, Latency, LatencySummary, Samples};
use crate::target::Target;
use crate::wire;
use anyhow::{bail, Context as _};
use bourse_protocol::codec;
use bourse_protocol::msg::{Channel, SubscribeArgs};
use bourse_protocol::Encoding;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{
    self, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig, Message, WebSocket,
};

/// How long a subscriber may take to get both subscriptions answered.
pub const SUBSCRIBE_MS_MAX: u64 = 30_000;
/// How long subscribers keep reading after the flow stops, at most, on top
/// of the grace time (a quiet stream sends a heartbeat every second).
pub const TAIL_MS_MAX: u64 = 5_000;
/// How long a subscriber's connect and handshake may take.
pub const CONNECT_MS_MAX: u64 = 10_000;
/// Readiness events a reader takes from one epoll wait.
pub const EVENTS_MAX: usize = 1_024;
/// A subscriber's read buffer at the start; it grows for a larger frame,
/// up to [`FRAME_BYTES_MAX`].
pub const READ_BUFFER_BYTES: usize = 16 * 1024;
/// The largest frame a subscriber reads.
pub const FRAME_BYTES_MAX: usize = codec::FRAME_BYTES_MAX * 16;
/// Longest epoll wait, so the stop flag and deadlines are seen.
pub const POLL_MS_MAX: u64 = 50;

/// What the `fanout` scenario does.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    pub subscribers: usize,
    /// The instrument; the first trading one when `None`.
    pub sym: Option<String>,
    /// `book.l2` depth subscribed.
    pub depth: u32,
    /// The order flow (its instruments are replaced by `sym`).
    pub flow: FlowOpts,
    /// Funded accounts of the flow; 0 means one per flow connection.
    pub accounts: usize,
    /// How long subscribers keep reading after the flow, for its tail and
    /// a heartbeat.
    pub grace: Duration,
    /// Threads reading the subscribers' sockets.
    pub readers: usize,
    pub mids: BTreeMap<String, String>,
}

impl Default for FanoutOpts {
    fn default() -> Self {
        FanoutOpts {
            subscribers: 100,
            sym: None,
            depth: 50,
            flow: FlowOpts {
                connections: 4,
                offset_ticks_max: Some(20),
                ..FlowOpts::default()
            },
            accounts: 0,
            grace: Duration::from_millis(2_500),
            readers: 2,
            mids: BTreeMap::new(),
        }
    }
}

/// The result of a `fanout` run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub subscribers: usize,
    pub subscribed: usize,
    pub sym: String,
    pub depth: u32,
    pub encoding: String,
    pub flow: FlowReport,
    /// Book versions per second while the flow ran (seq advance seen by a
    /// subscriber).
    pub book_versions_per_s: f64,
    pub trades_per_s: f64,
    /// Messages received by all subscribers (heartbeats included).
    pub messages: u64,
    pub messages_per_s: f64,
    pub book_events: u64,
    pub trade_events: u64,
    pub snapshots: u64,
    /// Gaps the server announced (`type:"gap"`, on_lag resync).
    pub gaps_announced: u64,
    /// Breaks in a chain nothing announced, and heartbeat seqs ahead of
    /// what arrived. Must be 0.
    pub unannounced_gaps: u64,
    pub heartbeats_checked: u64,
    /// Delivery latency of book deltas and trade events, receipt minus `ts`.
    pub delivery: LatencySummary,
    pub delivery_book: LatencySummary,
    pub delivery_trades: LatencySummary,
    /// The server's share: `bourse_md_delivery_seconds` over the run, from
    /// a stream message being made to its bytes reaching a socket (the
    /// oldest message of each write); `None` if the server does not export it.
    pub server_delivery: Option<BucketSummary>,
    /// `bourse_stage_seconds{stage="md_wait"}` over the run: a commit from
    /// its release until the market-data actor takes it.
    pub server_md_wait: Option<BucketSummary>,
    /// `bourse_stage_seconds{stage="fanout"}` over the run: one batch
    /// written to every subscriber.
    pub server_fanout_batch: Option<BucketSummary>,
    /// `bourse_slow_consumer_total{action="conflate"}` over the run: stream
    /// messages merged into a pending one for a subscriber past its
    /// high-water mark. A merged delta carries its newest change's `ts`, so
    /// the delivery figures do not show how long the older ones waited.
    pub server_conflated: Option<u64>,
    /// Subscribers lost during the run, by cause.
    pub failures: Counts,
    pub server_cpu_pct: Option<f64>,
    pub client_cpu_pct: Option<f64>,
    /// The whole machine's CPU over the same time (see [`crate::flow::FlowReport`]).
    pub machine_cpu_pct: Option<f64>,
    /// The server's busiest threads over the same time.
    pub server_threads: Vec<ThreadCpu>,
}

impl FanoutReport {
    pub fn line(&self) -> String {
        format!(
            "fanout: subs={}/{} {} depth={} flow={}/s enc={} | book_versions={:.0}/s trades={:.0}/s msgs={:.0}/s | delivery {} | server share {} | server md_wait {} | server batch {} | server conflated={} | client send lag p50={}us p99={}us | unannounced_gaps={} gaps_announced={} hb_checked={} failures: {} | cpu: server={} bench={} machine={} | server threads: {}",
            self.subscribed,
            self.subscribers,
            self.sym,
            self.depth,
            self.flow.target_rate_per_s.unwrap_or(0),
            self.encoding,
            self.book_versions_per_s,
            self.trades_per_s,
            self.messages_per_s,
            self.delivery.line(),
            self.server_delivery.as_ref().map_or("-".to_string(), BucketSummary::line),
            self.server_md_wait.as_ref().map_or("-".to_string(), BucketSummary::line),
            self.server_fanout_batch.as_ref().map_or("-".to_string(), BucketSummary::line),
            self.server_conflated.map_or("-".to_string(), |n| n.to_string()),
            self.flow.send_lag.as_ref().map_or(0, |l| l.p50_us),
            self.flow.send_lag.as_ref().map_or(0, |l| l.p99_us),
            self.unannounced_gaps,
            self.gaps_announced,
            self.heartbeats_checked,
            self.failures.line(),
            crate::orders::pct(self.server_cpu_pct),
            crate::orders::pct(self.client_cpu_pct),
            crate::orders::pct(self.machine_cpu_pct),
            crate::machine::threads_line(&self.server_threads),
        )
    }
}

/// One stream's position as a client tracks it.
#[derive(Debug, Default, Clone)]
struct Chain {
    epoch: Option<u64>,
    last: Option<u64>,
    first: Option<u64>,
    /// After an announced gap: a snapshot or the resumed events follow.
    after_gap: bool,
}

/// What one subscriber saw.
#[derive(Default)]
struct SubStats {
    messages: u64,
    book_events: u64,
    trade_events: u64,
    snapshots: u64,
    gaps_announced: u64,
    unannounced: u64,
    hb_checked: u64,
    book: Samples,
    trades: Samples,
    failures: Counts,
    book_chain: Chain,
    trade_chain: Chain,
}

impl SubStats {
    /// Applies one stream event's position to its chain.
    fn position(&mut self, book: bool, snapshot: bool, epoch: u64, prev: Option<u64>, seq: u64) {
        let chain = if book {
            &mut self.book_chain
        } else {
            &mut self.trade_chain
        };
        if snapshot {
            self.snapshots += 1;
            *chain = Chain {
                epoch: Some(epoch),
                last: Some(seq),
                first: chain.first.or(Some(seq)),
                after_gap: false,
            };
            return;
        }
        let Some(last) = chain.last else {
            // An event before any snapshot: the stream did not start as
            // the protocol says.
            self.unannounced += 1;
            return;
        };
        if chain.epoch != Some(epoch) {
            self.unannounced += 1;
        } else if prev == Some(last) {
            // In order.
        } else if seq <= last {
            return; // Already applied.
        } else {
            self.unannounced += 1;
        }
        chain.epoch = Some(epoch);
        chain.last = Some(seq);
        chain.after_gap = false;
    }
}

/// Runs the scenario against `target`.
pub async fn run(target: &Target, opts: &FanoutOpts) -> anyhow::Result<FanoutReport> {
    let n_accounts = if opts.accounts == 0 {
        opts.flow.connections
    } else {
        opts.accounts
    };
    let only: Vec<String> = opts.sym.iter().cloned().collect();
    let mut prep = setup::prepare(target, "bench-", n_accounts, &only, 0, &opts.mids).await?;
    prep.instruments.truncate(1);
    let inst = prep.instruments[0].clone();
    let enc = opts.flow.encoding;

    // Subscribers first, all subscribed before the flow starts. They are
    // read by threads of their own, each waiting on its share of the
    // sockets with epoll: the measuring client then costs little more than
    // the reads themselves, and its runtime's scheduling is not part of the
    // latency it measures.
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Ready::default());
    let mut readers = Vec::with_capacity(opts.readers);
    for r in 0..opts.readers.max(1) {
        let n = (opts.subscribers + opts.readers.max(1) - 1 - r) / opts.readers.max(1);
        let (url, sym, depth) = (target.ws_url.clone(), inst.sym.clone(), opts.depth);
        let (stop, ready) = (stop.clone(), ready.clone());
        readers.push(
            std::thread::Builder::new()
                .name(format!("fanout-reader-{r}"))
                .spawn(move || read_subscribers(&url, enc, &sym, depth, n, &stop, &ready))?,
        );
    }
    let deadline = Instant::now() + Duration::from_millis(SUBSCRIBE_MS_MAX);
    while ready.settled() < opts.subscribers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let subscribed = ready.ok.load(Ordering::Acquire);
    if subscribed == 0 && opts.subscribers > 0 {
        stop.store(true, Ordering::Release);
        bail!("no subscriber could subscribe");
    }

    let sockets =
        flow::connect_traders(&target.ws_url, enc, &prep.accounts, opts.flow.connections).await?;
    let before = ServerTimes::scrape(&target.ws_url).await;
    let server = target.server_pid.map(CpuMeter::start);
    let client = CpuMeter::start(std::process::id());
    let machine_cpu = CpuMeter::machine();
    let threads = target.server_pid.map(ThreadMeter::start);
    let started = Instant::now();
    let flow_report = flow::run_on(
        sockets,
        prep.accounts.len(),
        &prep.instruments,
        &opts.flow,
        target.server_pid,
    )
    .await?;
    let flow_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(opts.grace).await;
    let server_cpu_pct = server.and_then(|m| m.percent());
    let client_cpu_pct = client.percent();
    let machine_cpu_pct = machine_cpu.percent();
    let server_threads = threads.map(|t| t.top()).unwrap_or_default();
    let after = ServerTimes::scrape(&target.ws_url).await;
    let run = |f: fn(&ServerTimes) -> &Option<Buckets>| f(&after).as_ref().map(|a| a.since(f(&before).as_ref()).summary_us());
    let (server_delivery, server_md_wait, server_fanout_batch) = (run(|t| &t.delivery), run(|t| &t.md_wait), run(|t| &t.batch));
    let server_conflated = after.conflated.map(|a| a.saturating_sub(before.conflated.unwrap_or(0)));
    stop.store(true, Ordering::Release);

    let mut all = SubStats::default();
    let mut book_delivery = Latency::new();
    let mut trade_delivery = Latency::new();
    let mut versions = 0u64;
    let mut trades = 0u64;
    let mut subs = Vec::with_capacity(opts.subscribers);
    for r in readers {
        let got = tokio::task::spawn_blocking(move || r.join())
            .await?
            .map_err(|_| anyhow::anyhow!("a subscriber reader panicked"))?;
        subs.extend(got);
    }
    for s in subs {
        // The seq advance one subscriber saw; the largest, in case some
        // subscriber left early.
        let span = |c: &Chain| c.last.zip(c.first).map_or(0, |(l, f)| l.saturating_sub(f));
        versions = versions.max(span(&s.book_chain));
        trades = trades.max(span(&s.trade_chain));
        all.messages += s.messages;
        all.book_events += s.book_events;
        all.trade_events += s.trade_events;
        all.snapshots += s.snapshots;
        all.gaps_announced += s.gaps_announced;
        all.unannounced += s.unannounced;
        all.hb_checked += s.hb_checked;
        all.failures.merge(&s.failures);
        book_delivery.merge(&s.book.into_latency());
        trade_delivery.merge(&s.trades.into_latency());
    }
    let mut delivery = book_delivery.clone();
    delivery.merge(&trade_delivery);
    Ok(FanoutReport {
        subscribers: opts.subscribers,
        subscribed,
        sym: inst.sym.clone(),
        depth: opts.depth,
        encoding: enc.subprotocol().into(),
        flow: flow_report,
        book_versions_per_s: versions as f64 / flow_s,
        trades_per_s: trades as f64 / flow_s,
        messages: all.messages,
        messages_per_s: all.messages as f64 / (flow_s + opts.grace.as_secs_f64()),
        book_events: all.book_events,
        trade_events: all.trade_events,
        snapshots: all.snapshots,
        gaps_announced: all.gaps_announced,
        unannounced_gaps: all.unannounced,
        heartbeats_checked: all.hb_checked,
        delivery: delivery.summary(),
        delivery_book: book_delivery.summary(),
        delivery_trades: trade_delivery.summary(),
        server_delivery,
        server_md_wait,
        server_fanout_batch,
        server_conflated,
        failures: all.failures,
        server_cpu_pct,
        client_cpu_pct,
        machine_cpu_pct,
        server_threads,
    })
}

/// The server's own market-data histograms at one moment (each `None`
/// if the server does not export it).
#[derive(Default)]
struct ServerTimes {
    delivery: Option<Buckets>,
    md_wait: Option<Buckets>,
    batch: Option<Buckets>,
    conflated: Option<u64>,
}

impl ServerTimes {
    async fn scrape(ws_url: &str) -> ServerTimes {
        let Ok(text) = crate::scrape::metrics_text(ws_url).await else { return ServerTimes::default() };
        ServerTimes {
            delivery: Buckets::parse(&text, "bourse_md_delivery_seconds"),
            md_wait: Buckets::parse_labelled(&text, "bourse_stage_seconds", "stage=\"md_wait\""),
            batch: Buckets::parse_labelled(&text, "bourse_stage_seconds", "stage=\"fanout\""),
            // The series appears at the first merge: none yet is none merged.
            conflated: Some(crate::scrape::counter(&text, "bourse_slow_consumer_total", "action=\"conflate\"").unwrap_or(0)),
        }
    }
}

/// Subscribers that got both answers, and those that gave up.
#[derive(Default)]
struct Ready {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

impl Ready {
    fn settled(&self) -> usize {
        self.ok.load(Ordering::Acquire) + self.failed.load(Ordering::Acquire)
    }
}

/// One subscriber's connection on a reader thread. tungstenite does the
/// handshake and writes the requests, pongs and the close; what the server
/// sends is read into `buf` and parsed there ([`frames`]). Under mio's
/// edge-triggered epoll a read that returns less than it asked for has
/// emptied the socket, and any later data raises a new readiness event, so
/// the reader does not make the read that would only answer `WouldBlock`.
struct Conn {
    ws: WebSocket<TcpStream>,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    st: SubStats,
    answered: u8,
    done: bool,
}

impl Conn {
    /// Reads the socket until it is empty, handling every whole frame.
    fn pump(&mut self, keys: &[String; 2], tailing: bool, ready: &Ready) {
        let mut received = 0;
        let mut drained = false;
        loop {
            loop {
                match frames::front(&self.buf[self.start..self.end]) {
                    Front::Frame(f, used) => {
                        if f.opcode == frames::OP_PING {
                            // Best effort: a pong that does not fit now stays
                            // queued in tungstenite until the next write.
                            let _ = self.ws.send(Message::Pong(f.payload.to_vec().into()));
                        }
                        let step = self.st.frame(&f, received, keys, &mut self.answered);
                        self.start += used;
                        match step {
                            Step::Go => {}
                            Step::Subscribed => {
                                ready.ok.fetch_add(1, Ordering::AcqRel);
                            }
                            Step::Heartbeat => self.done = tailing,
                            Step::Stop => {
                                if self.answered < 2 {
                                    ready.failed.fetch_add(1, Ordering::AcqRel);
                                }
                                self.done = true;
                            }
                        }
                        if self.done {
                            return;
                        }
                    }
                    Front::Partial(need) => {
                        if need > FRAME_BYTES_MAX {
                            self.fail("receive: frame larger than the client reads", ready);
                            return;
                        }
                        if self.start > 0 && self.start + need > self.buf.len() / 2 {
                            self.buf.copy_within(self.start..self.end, 0);
                            self.end -= self.start;
                            self.start = 0;
                        }
                        if need > self.buf.len() {
                            self.buf.resize(need.next_power_of_two().min(FRAME_BYTES_MAX), 0);
                        }
                        break;
                    }
                    Front::Bad(why) => {
                        self.fail(&format!("receive: {why}"), ready);
                        return;
                    }
                }
            }
            if drained {
                return;
            }
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
            let room = self.buf.len() - self.end;
            match std::io::Read::read(self.ws.get_mut(), &mut self.buf[self.end..]) {
                Ok(0) => {
                    self.fail("receive: the server closed the connection", ready);
                    return;
                }
                Ok(n) => {
                    self.end += n;
                    received = machine::now_us();
                    // A short read emptied the socket: handle what came,
                    // then wait for epoll.
                    drained = n < room;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&format!("receive: {e}"), ready);
                    return;
                }
            }
        }
    }

    fn fail(&mut self, why: &str, ready: &Ready) {
        self.st.failures.add(why, 1);
        if self.answered < 2 {
            ready.failed.fetch_add(1, Ordering::AcqRel);
        }
        self.done = true;
    }
}

/// What one message meant for its subscriber.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Go,
    /// Both subscriptions answered.
    Subscribed,
    /// A heartbeat arrived.
    Heartbeat,
    /// The subscriber is finished (closed, refused, failed).
    Stop,
}

/// Connects and subscribes `n` subscribers, then reads them all until the
/// flow stops and each has seen a heartbeat after it (or the tail time
/// runs out). Returns what each saw.
fn read_subscribers(
    url: &str,
    enc: Encoding,
    sym: &str,
    depth: u32,
    n: usize,
    stop: &AtomicBool,
    ready: &Ready,
) -> Vec<SubStats> {
    let keys = [format!("book.l2:{sym}:{depth}"), format!("trades:{sym}")];
    let mut out = Vec::with_capacity(n);
    let poll = Poll::new();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let c = poll
            .as_ref()
            .map_err(|e| anyhow::anyhow!("epoll: {e}"))
            .and_then(|p| subscribe(url, enc, sym, depth).map(|ws| (p, ws)))
            .and_then(|(p, ws)| {
                let fd = ws.get_ref().as_raw_fd();
                p.registry()
                    .register(&mut SourceFd(&fd), Token(conns.len()), Interest::READABLE)
                    .map_err(|e| anyhow::anyhow!("epoll register: {e}"))?;
                Ok(ws)
            });
        match c {
            Ok(ws) => conns.push(Conn {
                ws,
                buf: vec![0; READ_BUFFER_BYTES],
                start: 0,
                end: 0,
                st: SubStats::default(),
                answered: 0,
                done: false,
            }),
            Err(e) => {
                let mut st = SubStats::default();
                st.failures.add(&format!("subscribe: {e:#}"), 1);
                ready.failed.fetch_add(1, Ordering::AcqRel);
                out.push(st);
            }
        }
    }
    let Ok(mut poll) = poll else {
        return out;
    };
    let mut events = Events::with_capacity(EVENTS_MAX);
    let subscribe_deadline = Instant::now() + Duration::from_millis(SUBSCRIBE_MS_MAX);
    let mut tail_deadline: Option<Instant> = None;
    let mut open = conns.len();
    // Every socket is read once at the start: an answer may have arrived
    // before its registration.
    let mut due: Vec<usize> = (0..conns.len()).collect();
    while open > 0 {
        if tail_deadline.is_none() && stop.load(Ordering::Acquire) {
            tail_deadline = Some(Instant::now() + Duration::from_millis(TAIL_MS_MAX));
        }
        let now = Instant::now();
        if tail_deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now >= subscribe_deadline {
            for c in conns.iter_mut().filter(|c| !c.done && c.answered < 2) {
                c.st.failures.add("subscribe: no answer in time", 1);
                c.done = true;
                open -= 1;
                ready.failed.fetch_add(1, Ordering::AcqRel);
            }
        }
        for i in due.drain(..) {
            let c = &mut conns[i];
            if c.done {
                continue;
            }
            c.pump(&keys, tail_deadline.is_some(), ready);
            if c.done {
                open -= 1;
                let fd = c.ws.get_ref().as_raw_fd();
                let _ = poll.registry().deregister(&mut SourceFd(&fd));
            }
        }
        if open == 0 {
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(POLL_MS_MAX))) {
            if e.kind() != ErrorKind::Interrupted {
                for c in conns.iter_mut().filter(|c| !c.done) {
                    c.st.failures.add(&format!("epoll: {e}"), 1);
                }
                break;
            }
        }
        due.extend(events.iter().map(|e| e.token().0));
    }
    for mut c in conns {
        if c.answered < 2 && !c.done {
            ready.failed.fetch_add(1, Ordering::AcqRel);
        }
        let _ = c.ws.get_ref().set_nonblocking(false);
        let _ = c.ws.get_ref().set_write_timeout(Some(Duration::from_millis(100)));
        let _ = c.ws.close(None);
        let _ = c.ws.flush();
        out.push(c.st);
    }
    out
}

impl SubStats {
    /// Takes one frame: the subscription answers, heartbeats (checked
    /// against the chains), gaps, snapshots and events (chained and timed).
    fn frame(&mut self, f: &Frame<'_>, received: u64, keys: &[String; 2], answered: &mut u8) -> Step {
        if !f.fin || f.opcode == frames::OP_CONTINUATION {
            self.failures.add("a fragmented message (the server sends whole ones)", 1);
            return Step::Stop;
        }
        let binary = match f.opcode {
            frames::OP_BINARY => true,
            frames::OP_TEXT => false,
            frames::OP_CLOSE => {
                let code = f.payload.get(..2).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                let reason = String::from_utf8_lossy(f.payload.get(2..).unwrap_or_default());
                self.failures.add(&format!("closed by the server: {code} {reason}"), 1);
                return Step::Stop;
            }
            frames::OP_PING | frames::OP_PONG => return Step::Go,
            _ => {
                self.failures.add("a frame of an unknown opcode", 1);
                return Step::Stop;
            }
        };
        self.messages += 1;
        if binary {
            match frames::envelope(f.payload) {
                Ok(env) if !env.response => return self.event(&env, received, keys),
                Ok(_) => {}
                Err(_) => {
                    self.failures.add("undecodable frame", 1);
                    return Step::Go;
                }
            }
        }
        let Ok(inc) = wire::decode_incoming(f.payload, binary) else {
            self.failures.add("undecodable frame", 1);
            return Step::Go;
        };
        if inc.is_response() {
            if inc.ok != Some(true) {
                let code = inc.err.map(|e| e.code.into_owned()).unwrap_or_default();
                self.failures.add(&format!("subscribe refused: {code}"), 1);
                return Step::Stop;
            }
            *answered += 1;
            return if *answered == 2 { Step::Subscribed } else { Step::Go };
        }
        let env = Envelope {
            response: false,
            ch: inc.ch.as_deref().unwrap_or("").as_bytes(),
            kind: inc.kind.as_deref().unwrap_or("").as_bytes(),
            epoch: inc.epoch,
            prev: inc.prev,
            seq: inc.seq,
            ts: inc.ts,
            lost: inc.lost,
            last: inc.last.iter().flatten().map(|(k, v)| (k.as_bytes(), *v)).collect(),
        };
        self.event(&env, received, keys)
    }

    /// Takes one stream message (not a response).
    fn event(&mut self, e: &Envelope<'_>, received: u64, keys: &[String; 2]) -> Step {
        if e.ch == b"hb" {
            // A heartbeat comes after a second with nothing else sent on
            // the connection, so everything it counts has arrived before it.
            for (key, chain) in [(&keys[0], &self.book_chain), (&keys[1], &self.trade_chain)] {
                let sent = e.last.iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| *v);
                if let (Some(sent), Some(got)) = (sent, chain.last) {
                    self.hb_checked += 1;
                    if sent > got && !chain.after_gap {
                        self.unannounced += 1;
                    }
                }
            }
            return Step::Heartbeat;
        }
        let book = match e.ch {
            b"book.l2" => true,
            b"trades" => false,
            _ => return Step::Go,
        };
        if e.kind == b"gap" {
            self.gaps_announced += 1;
            let chain = if book { &mut self.book_chain } else { &mut self.trade_chain };
            if let Some([_, last_lost]) = e.lost {
                chain.last = Some(last_lost);
            }
            chain.after_gap = true;
            return Step::Go;
        }
        let (Some(epoch), Some(seq)) = (e.epoch, e.seq) else {
            self.failures.add("event without epoch or seq", 1);
            return Step::Go;
        };
        let snapshot = e.kind == b"snapshot";
        self.position(book, snapshot, epoch, e.prev, seq);
        if snapshot {
            return Step::Go;
        }
        if let Some(ts) = e.ts {
            let lat = received.saturating_sub(ts);
            if book {
                self.book_events += 1;
                self.book.record_us(lat);
            } else {
                self.trade_events += 1;
                self.trades.record_us(lat);
            }
        }
        Step::Go
    }
}

/// Connects (blocking, bounded by [`CONNECT_MS_MAX`]) and asks for
/// `book.l2` (at `depth`) and `trades` of `sym`; returns the socket
/// non-blocking, its answers and snapshots still to be read.
fn subscribe(url: &str, enc: Encoding, sym: &str, depth: u32) -> anyhow::Result<WebSocket<TcpStream>> {
    let mut req = url.into_client_request().with_context(|| format!("bad url {url}"))?;
    if req.uri().scheme_str() != Some("ws") {
        bail!("the fanout subscribers speak plain ws://, not {url}");
    }
    let host = req.uri().host().unwrap_or("127.0.0.1").to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(enc.subprotocol()));
    let addr = (host.as_str(), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} has no address"))?;
    let limit = Duration::from_millis(CONNECT_MS_MAX);
    let tcp = TcpStream::connect_timeout(&addr, limit)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(limit))?;
    tcp.set_write_timeout(Some(limit))?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(FRAME_BYTES_MAX))
        // A small read buffer: tungstenite zero-fills the whole buffer
        // before every read, and a thousand readers of small frames would
        // spend a third of the client's CPU on that with the default 128 KiB.
        .read_buffer_size(wire::READ_BUFFER_SMALL_BYTES);
    let (mut ws, resp) = tungstenite::client::client_with_config(req, tcp, Some(config))
        .map_err(|e| anyhow::anyhow!("handshake: {e}"))?;
    let got = resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok());
    if got != Some(enc.subprotocol()) {
        bail!("the server answered subprotocol {got:?}, asked {}", enc.subprotocol());
    }
    let book = SubscribeArgs {
        ch: Channel::BookL2,
        sym: vec![sym.to_owned()],
        depth: Some(depth),
        interval: None,
        cksum: false,
        on_lag: None,
        resume: None,
    };
    let trades = SubscribeArgs { ch: Channel::Trades, depth: None, ..book.clone() };
    ws.send(wire::request(enc, "subscribe", 1, &book))?;
    ws.send(wire::request(enc, "subscribe", 2, &trades))?;
    // From here the reader reads the socket itself. tungstenite has
    // buffered nothing past the handshake: the server sends nothing
    // before these requests.
    ws.get_ref().set_nonblocking(true)?;
    Ok(ws)
}
