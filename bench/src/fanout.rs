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

use crate::flow::{self, FlowOpts, FlowReport, CONNECT_PARALLEL_MAX};
use crate::machine::{self, CpuMeter, ThreadCpu, ThreadMeter};
use crate::scrape::{BucketSummary, Buckets};
use crate::setup;
use crate::stats::{Counts, Latency, LatencySummary, Samples};
use crate::target::Target;
use crate::wire::{self, Ws};
use anyhow::bail;
use bourse_protocol::msg::{Channel, SubscribeArgs};
use bourse_protocol::Encoding;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// How long a subscriber may take to get both subscriptions answered.
pub const SUBSCRIBE_MS_MAX: u64 = 30_000;
/// How long subscribers keep reading after the flow stops, at most, on top
/// of the grace time (a quiet stream sends a heartbeat every second).
pub const TAIL_MS_MAX: u64 = 5_000;

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
            "fanout: subs={}/{} {} depth={} flow={}/s enc={} | book_versions={:.0}/s trades={:.0}/s msgs={:.0}/s | delivery {} | server share {} | client send lag p50={}us p99={}us | unannounced_gaps={} gaps_announced={} hb_checked={} failures: {} | cpu: server={} bench={} machine={} | server threads: {}",
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

    // Subscribers first, all subscribed before the flow starts.
    let stop = Arc::new(AtomicBool::new(false));
    let limit = Arc::new(Semaphore::new(CONNECT_PARALLEL_MAX));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(opts.subscribers.max(1));
    let mut subs = Vec::with_capacity(opts.subscribers);
    for _ in 0..opts.subscribers {
        let url = target.ws_url.clone();
        let sym = inst.sym.clone();
        let depth = opts.depth;
        let stop = stop.clone();
        let limit = limit.clone();
        let ready = ready_tx.clone();
        subs.push(tokio::spawn(async move {
            subscriber(&url, enc, &sym, depth, stop, limit, ready).await
        }));
    }
    drop(ready_tx);
    let mut subscribed = 0;
    while let Some(ok) = ready_rx.recv().await {
        subscribed += usize::from(ok);
    }
    if subscribed == 0 && opts.subscribers > 0 {
        bail!("no subscriber could subscribe");
    }

    let sockets =
        flow::connect_traders(&target.ws_url, enc, &prep.accounts, opts.flow.connections).await?;
    let delivery_before = server_delivery(&target.ws_url).await;
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
    let server_delivery = server_delivery(&target.ws_url).await.map(|after| after.since(delivery_before.as_ref()).summary_us());
    stop.store(true, Ordering::Release);

    let mut all = SubStats::default();
    let mut book_delivery = Latency::new();
    let mut trade_delivery = Latency::new();
    let mut versions = 0u64;
    let mut trades = 0u64;
    for s in subs {
        let s = s.await?;
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
        failures: all.failures,
        server_cpu_pct,
        client_cpu_pct,
        machine_cpu_pct,
        server_threads,
    })
}

/// The server's delivery histogram now, if it exports one.
async fn server_delivery(ws_url: &str) -> Option<Buckets> {
    let text = crate::scrape::metrics_text(ws_url).await.ok()?;
    Buckets::parse(&text, "bourse_md_delivery_seconds")
}

async fn subscriber(
    url: &str,
    enc: Encoding,
    sym: &str,
    depth: u32,
    stop: Arc<AtomicBool>,
    limit: Arc<Semaphore>,
    ready: tokio::sync::mpsc::Sender<bool>,
) -> SubStats {
    let mut st = SubStats::default();
    let ws = {
        let _permit = limit.acquire().await;
        subscribe(url, enc, sym, depth).await
    };
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            st.failures.add(&format!("subscribe: {e:#}"), 1);
            let _ = ready.send(false).await;
            return st;
        }
    };
    let mut ready = Some(ready);
    let mut answered = 0;
    let subscribe_deadline = tokio::time::Instant::now() + Duration::from_millis(SUBSCRIBE_MS_MAX);
    let book_key = format!("book.l2:{sym}:{depth}");
    let trades_key = format!("trades:{sym}");
    let mut tail_deadline: Option<tokio::time::Instant> = None;
    loop {
        if tail_deadline.is_none() && stop.load(Ordering::Acquire) {
            tail_deadline = Some(tokio::time::Instant::now() + Duration::from_millis(TAIL_MS_MAX));
        }
        let deadline = if ready.is_some() {
            Some(subscribe_deadline)
        } else {
            tail_deadline
        };
        let m = match deadline {
            None => ws.next().await,
            Some(d) => match tokio::time::timeout_at(d, ws.next()).await {
                Ok(m) => m,
                Err(_) => {
                    if ready.is_some() {
                        st.failures.add("subscribe: no answer in time", 1);
                    }
                    break;
                }
            },
        };
        let m = match m {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                st.failures.add(&format!("receive: {e}"), 1);
                break;
            }
            None => {
                st.failures.add("closed by the server", 1);
                break;
            }
        };
        let received = machine::now_us();
        let Some((bytes, binary)) = wire::payload(&m) else {
            if let Message::Close(c) = &m {
                st.failures.add(&format!("closed by the server: {c:?}"), 1);
                break;
            }
            continue;
        };
        st.messages += 1;
        let Ok(inc) = wire::decode_incoming(bytes, binary) else {
            st.failures.add("undecodable frame", 1);
            continue;
        };
        if inc.is_response() {
            if inc.ok != Some(true) {
                let code = inc.err.map(|e| e.code.into_owned()).unwrap_or_default();
                st.failures.add(&format!("subscribe refused: {code}"), 1);
                break;
            }
            answered += 1;
            if answered == 2 {
                if let Some(r) = ready.take() {
                    let _ = r.send(true).await;
                }
            }
            continue;
        }
        let ch = inc.ch.as_deref().unwrap_or("");
        let kind = inc.kind.as_deref().unwrap_or("");
        if ch == "hb" {
            // A heartbeat comes after a second with nothing else sent on
            // the connection, so everything it counts has arrived before it.
            if let Some(last) = &inc.last {
                for (key, chain) in [(&book_key, &st.book_chain), (&trades_key, &st.trade_chain)] {
                    if let (Some(sent), Some(got)) = (last.get(key.as_str()), chain.last) {
                        st.hb_checked += 1;
                        if *sent > got && !chain.after_gap {
                            st.unannounced += 1;
                        }
                    }
                }
            }
            if tail_deadline.is_some() {
                break;
            }
            continue;
        }
        let book = match ch {
            "book.l2" => true,
            "trades" => false,
            _ => continue,
        };
        if kind == "gap" {
            st.gaps_announced += 1;
            let chain = if book {
                &mut st.book_chain
            } else {
                &mut st.trade_chain
            };
            if let Some([_, last_lost]) = inc.lost {
                chain.last = Some(last_lost);
            }
            chain.after_gap = true;
            continue;
        }
        let (Some(epoch), Some(seq)) = (inc.epoch, inc.seq) else {
            st.failures.add("event without epoch or seq", 1);
            continue;
        };
        let snapshot = kind == "snapshot";
        st.position(book, snapshot, epoch, inc.prev, seq);
        if snapshot {
            continue;
        }
        if let Some(ts) = inc.ts {
            let lat = received.saturating_sub(ts);
            if book {
                st.book_events += 1;
                st.book.record_us(lat);
            } else {
                st.trade_events += 1;
                st.trades.record_us(lat);
            }
        }
    }
    if let Some(r) = ready.take() {
        let _ = r.send(false).await;
    }
    let _ = ws.close(None).await;
    st
}

/// Connects and asks for `book.l2` (at `depth`) and `trades` of `sym`; the
/// answers and the in-band snapshots are read by the subscriber's loop.
async fn subscribe(url: &str, enc: Encoding, sym: &str, depth: u32) -> anyhow::Result<Ws> {
    // A small read buffer: tungstenite zero-fills the whole buffer before
    // every read, and a thousand readers of small frames would spend a
    // third of the client's CPU on that with the default 128 KiB.
    let mut ws = wire::connect(url, enc, true).await?;
    let book = SubscribeArgs {
        ch: Channel::BookL2,
        sym: vec![sym.to_owned()],
        depth: Some(depth),
        interval: None,
        cksum: false,
        on_lag: None,
        resume: None,
    };
    let trades = SubscribeArgs {
        ch: Channel::Trades,
        depth: None,
        ..book.clone()
    };
    ws.feed(wire::request(enc, "subscribe", 1, &book)).await?;
    ws.send(wire::request(enc, "subscribe", 2, &trades)).await?;
    Ok(ws)
}
