//! Telemetry: every metric the exchange exports, in one table, and the
//! Prometheus recorder that renders them at `/metrics`.
//!
//! [`METRICS`] names each metric with its kind, unit, labels, help text and,
//! for histograms, its buckets; [`install`] registers that table with a
//! Prometheus recorder (histograms with explicit buckets, never summaries),
//! adds process metrics (CPU, memory, file descriptors) and
//! `bourse_build_info`, and starts the upkeep thread that drains histogram
//! samples. Process metrics use the standard names (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...) read by
//! `metrics-process` at each scrape; CPU time is rendered with its
//! fractional seconds (a `metrics` counter would keep whole seconds only).
//! The actors call the small functions below (or the `metrics`
//! macros with the name constants), so a metric's name and label values
//! are written once.
//!
//! Labels stay low-cardinality: instrument symbol, op, reject code, stage,
//! actor kind, channel, role. Never a user, account, connection or request
//! id: those go in log lines ([`response_sent`], [`slow_consumer`]).
//!
//! The recorder is process-wide: a process runs one node. Where several
//! run in one process (tests), counters add up and a gauge shows the value
//! its last writer set.
//!
//! Mailbox depths are sampled, not pushed: instrument mailboxes and the
//! journal queue and market data's mailbox are counters their owners already
//! keep ([`watch_mailbox`]), the ledger's is counted by its senders and
//! receiver ([`LEDGER_MAILBOX`]). Sampling happens at
//! every scrape and every [`UPKEEP_EVERY`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use bourse_protocol::msg::{Channel, Role};
use bourse_protocol::{ReqId, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::Value;

// ------------------------------------------------------------ names

/// Time from reading an order request off the socket to writing its answer.
pub const ORDER_ACK_SECONDS: &str = "bourse_order_ack_seconds";
/// Time spent in one stage of the order path (label `stage`).
pub const STAGE_SECONDS: &str = "bourse_stage_seconds";
/// Market-data delivery: from a stream message being made to its bytes
/// being handed to a subscriber's socket.
pub const MD_DELIVERY_SECONDS: &str = "bourse_md_delivery_seconds";
/// Order operations decided by the ledger and the books.
pub const ORDERS_TOTAL: &str = "bourse_orders_total";
/// Commands refused with `overloaded` because a mailbox was full.
pub const OVERLOADED_TOTAL: &str = "bourse_overloaded_total";
/// Requests refused with `rate_limited`.
pub const RATE_LIMITED_TOTAL: &str = "bourse_rate_limited_total";
/// Failed logins.
pub const AUTH_FAILURES_TOTAL: &str = "bourse_auth_failures_total";
/// Trades per instrument.
pub const TRADES_TOTAL: &str = "bourse_trades_total";
/// Traded quantity per instrument, in lots.
pub const TRADED_LOTS_TOTAL: &str = "bourse_traded_lots_total";
/// 1 while an instrument is in state `trading`, else 0.
pub const INSTRUMENT_TRADING: &str = "bourse_instrument_trading";
/// The last market-data sequence (book version) published per instrument.
pub const MD_SEQ: &str = "bourse_md_seq";
/// Orders resting in an instrument's book.
pub const BOOK_ORDERS: &str = "bourse_book_orders";
/// Price levels of an instrument's book, by side.
pub const BOOK_LEVELS: &str = "bourse_book_levels";
/// Messages waiting in an actor's mailbox.
pub const MAILBOX_DEPTH: &str = "bourse_mailbox_depth";
/// One group commit: append plus fdatasync.
pub const JOURNAL_FLUSH_SECONDS: &str = "bourse_journal_flush_seconds";
/// Events in one group commit.
pub const JOURNAL_BATCH_EVENTS: &str = "bourse_journal_batch_events";
/// Events made durable.
pub const JOURNAL_EVENTS_TOTAL: &str = "bourse_journal_events_total";
/// Encoded event bytes appended to the log.
pub const JOURNAL_WRITTEN_BYTES_TOTAL: &str = "bourse_journal_written_bytes_total";
/// Times the ledger waited because the journal queue was full.
pub const JOURNAL_BACKPRESSURE_TOTAL: &str = "bourse_journal_backpressure_total";
/// Entries (group commits) in the event log.
pub const LOG_ENTRIES: &str = "bourse_log_entries";
/// Seconds since the newest snapshot was taken.
pub const SNAPSHOT_AGE_SECONDS: &str = "bourse_snapshot_age_seconds";
/// Time to build and save one snapshot.
pub const SNAPSHOT_SECONDS: &str = "bourse_snapshot_seconds";
/// The log index the newest snapshot was taken at.
pub const SNAPSHOT_INDEX: &str = "bourse_snapshot_index";
/// Times the snapshotter failed (it then stops until a restart).
pub const SNAPSHOT_FAILURES_TOTAL: &str = "bourse_snapshot_failures_total";
/// Open WebSocket sessions by role.
pub const WS_CONNECTIONS: &str = "bourse_ws_connections";
/// WebSocket messages received, by channel.
pub const WS_MESSAGES_IN_TOTAL: &str = "bourse_ws_messages_in_total";
/// WebSocket messages sent, by channel.
pub const WS_MESSAGES_OUT_TOTAL: &str = "bourse_ws_messages_out_total";
/// WebSocket payload bytes received, by channel.
pub const WS_BYTES_IN_TOTAL: &str = "bourse_ws_bytes_in_total";
/// WebSocket payload bytes sent, by channel.
pub const WS_BYTES_OUT_TOTAL: &str = "bourse_ws_bytes_out_total";
/// WebSocket handshakes refused.
pub const WS_REFUSED_TOTAL: &str = "bourse_ws_refused_total";
/// Subscribers that fell behind, by what was done about it.
pub const SLOW_CONSUMER_TOTAL: &str = "bourse_slow_consumer_total";
/// Always 1; the label says which version runs.
pub const BUILD_INFO: &str = "bourse_build_info";
/// 1 while the node accepts orders (`/readyz` would answer 200).
pub const READY: &str = "bourse_ready";

// ------------------------------------------------------------ label values

/// `stage`: decoding a request frame in the session.
pub const STAGE_DECODE: &str = "decode";
/// `stage`: the ledger's handling of a command (holds, admission).
pub const STAGE_LEDGER: &str = "ledger";
/// `stage`: a book deciding and applying one command.
pub const STAGE_MATCH: &str = "match";
/// `stage`: a proposal from hand-over to the journal until it is durable.
pub const STAGE_JOURNAL: &str = "journal";
/// `stage`: market data turning a committed batch into stream messages.
pub const STAGE_PUBLISH: &str = "publish";
/// `stage`: a committed batch, from its release by the journal until the
/// market-data actor takes it (it waits while the batch before it is written).
pub const STAGE_MD_WAIT: &str = "md_wait";
/// `stage`: one market-data batch written (or queued) to every subscriber.
pub const STAGE_FANOUT: &str = "fanout";
pub const STAGES: [&str; 7] = [STAGE_DECODE, STAGE_LEDGER, STAGE_MATCH, STAGE_JOURNAL, STAGE_PUBLISH, STAGE_MD_WAIT, STAGE_FANOUT];

/// `actor` kinds of [`MAILBOX_DEPTH`] and [`OVERLOADED_TOTAL`].
pub const ACTOR_LEDGER: &str = "ledger";
pub const ACTOR_INSTRUMENT: &str = "instrument";
pub const ACTOR_JOURNAL: &str = "journal";
pub const ACTOR_MARKET: &str = "market";
/// Not an actor: the node's password checks (`session::hashing`), refused when full.
pub const ACTOR_PASSWORD_CHECKS: &str = "password_checks";

/// `action` of [`SLOW_CONSUMER_TOTAL`]: updates merged for a lagging subscriber.
pub const SLOW_CONFLATE: &str = "conflate";
/// A lagging subscriber was told of a gap and resynchronised.
pub const SLOW_GAP: &str = "gap";
/// A subscriber that stopped reading was disconnected.
pub const SLOW_DISCONNECT: &str = "disconnect";
/// A socket took nothing for `WRITE_STALL_MAX` and was dropped.
pub const SLOW_STALLED: &str = "stalled";

/// `role` of [`WS_CONNECTIONS`] before a session logs in.
pub const ROLE_ANONYMOUS: &str = "anonymous";

/// `op` of [`ORDERS_TOTAL`].
pub const OP_PLACE: &str = "place";
pub const OP_CANCEL: &str = "cancel";
pub const OP_AMEND: &str = "amend";
pub const OP_CANCEL_ALL: &str = "cancel_all";
/// `result` of [`ORDERS_TOTAL`].
pub const RESULT_ACCEPTED: &str = "accepted";
pub const RESULT_REJECTED: &str = "rejected";
pub const RESULT_DUPLICATE: &str = "duplicate";
pub const RESULT_OVERLOADED: &str = "overloaded";
/// `code` of [`ORDERS_TOTAL`] when nothing was refused.
pub const CODE_NONE: &str = "none";

/// `channel` of requests and their answers; stream messages use the
/// stream's channel name (`book.l2`, `trades`, `account`, ...).
pub const CHANNEL_REQUEST: &str = "request";
pub const CHANNEL_RESPONSE: &str = "response";

// ------------------------------------------------------------ buckets

/// Order acknowledgement: a durable answer takes one group commit (an
/// fdatasync, ~0.1-10 ms on SSDs); the tail shows queueing.
pub const ACK_SECONDS_BUCKETS: &[f64] =
    &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Stages run from microseconds (decode, match) to milliseconds (journal).
pub const STAGE_SECONDS_BUCKETS: &[f64] = &[
    0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 1.0,
];
/// Group commit: one fdatasync plus the appends.
pub const FLUSH_SECONDS_BUCKETS: &[f64] =
    &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Snapshots: a small exchange's state takes milliseconds, a large one seconds.
pub const SNAPSHOT_SECONDS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Events per group commit, up to the default `commit_events_max` (8192).
pub const BATCH_EVENTS_BUCKETS: &[f64] =
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

// ------------------------------------------------------------ the table

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Upper bounds of a histogram's buckets; empty for the others.
    pub buckets: &'static [f64],
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricSpec {
    MetricSpec { name, kind: Kind::Counter, unit: None, labels, help, buckets: &[] }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricSpec {
    MetricSpec { name, kind: Kind::Gauge, unit: None, labels, help, buckets: &[] }
}

const fn histogram(
    name: &'static str,
    unit: Option<Unit>,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: &'static [f64],
) -> MetricSpec {
    MetricSpec { name, kind: Kind::Histogram, unit, labels, help, buckets }
}

/// Every metric of the exchange itself (process metrics come from
/// `metrics-process`: `process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, ...).
pub const METRICS: &[MetricSpec] = &[
    histogram(
        ORDER_ACK_SECONDS,
        Some(Unit::Seconds),
        &["result"],
        "Time from reading an order request (place, cancel, amend, cancel-all, batch) to writing its answer, after its events are durable.",
        ACK_SECONDS_BUCKETS,
    ),
    histogram(
        STAGE_SECONDS,
        Some(Unit::Seconds),
        &["stage"],
        "Time spent in one stage of the order path: decode, ledger, match, journal (hand-over to durable), publish (market data), md_wait (a commit waiting for the market-data actor), fanout (one market-data batch written to its subscribers, or the part written before a waiting commit stopped it).",
        STAGE_SECONDS_BUCKETS,
    ),
    histogram(
        MD_DELIVERY_SECONDS,
        Some(Unit::Seconds),
        &[],
        "Time from the market-data actor making a stream message to a subscriber's writer handing it to the socket (the oldest stream message of each write).",
        STAGE_SECONDS_BUCKETS,
    ),
    counter(ORDERS_TOTAL, &["op", "result", "code"], "Order operations by op, result (accepted, rejected, duplicate, overloaded) and reject code."),
    counter(OVERLOADED_TOTAL, &["actor"], "Commands refused with overloaded because an actor's mailbox was full."),
    counter(RATE_LIMITED_TOTAL, &["scope"], "Requests refused with rate_limited, by limit (connection, account)."),
    counter(AUTH_FAILURES_TOTAL, &["code"], "Failed logins by error code."),
    counter(TRADES_TOTAL, &["sym"], "Trades per instrument."),
    counter(TRADED_LOTS_TOTAL, &["sym"], "Traded quantity per instrument, in lots."),
    gauge(INSTRUMENT_TRADING, &["sym"], "1 while the instrument is in state trading, 0 when halted or cancel-only."),
    gauge(MD_SEQ, &["sym"], "The last market-data sequence (book version) published for the instrument."),
    gauge(BOOK_ORDERS, &["sym"], "Orders resting in the instrument's book."),
    gauge(BOOK_LEVELS, &["sym", "side"], "Price levels of the instrument's book, by side (buy, sell)."),
    gauge(MAILBOX_DEPTH, &["actor", "sym"], "Messages waiting in an actor's mailbox, by actor kind (instrument mailboxes also by sym)."),
    histogram(
        JOURNAL_FLUSH_SECONDS,
        Some(Unit::Seconds),
        &[],
        "Duration of one group commit: appending its entries and one fdatasync.",
        FLUSH_SECONDS_BUCKETS,
    ),
    histogram(JOURNAL_BATCH_EVENTS, None, &[], "Events made durable by one group commit.", BATCH_EVENTS_BUCKETS),
    counter(JOURNAL_EVENTS_TOTAL, &[], "Events made durable."),
    counter(JOURNAL_WRITTEN_BYTES_TOTAL, &[], "Encoded event bytes appended to the event log."),
    counter(JOURNAL_BACKPRESSURE_TOTAL, &[], "Times the ledger waited because the journal's queue was full."),
    gauge(LOG_ENTRIES, &[], "Entries in the event log (each one ledger step's events)."),
    gauge(SNAPSHOT_AGE_SECONDS, &[], "Seconds since the newest state snapshot was taken."),
    histogram(SNAPSHOT_SECONDS, Some(Unit::Seconds), &[], "Time to build and save one state snapshot.", SNAPSHOT_SECONDS_BUCKETS),
    gauge(SNAPSHOT_INDEX, &[], "The event log index the newest snapshot was taken at."),
    counter(SNAPSHOT_FAILURES_TOTAL, &[], "Snapshot steps that failed (each is tried again; until one works, recovery replays more log)."),
    gauge(WS_CONNECTIONS, &["role"], "Open WebSocket sessions by role (anonymous until login)."),
    counter(WS_MESSAGES_IN_TOTAL, &["channel"], "WebSocket messages received."),
    counter(WS_MESSAGES_OUT_TOTAL, &["channel"], "WebSocket messages sent, by channel (response or the stream's channel)."),
    counter(WS_BYTES_IN_TOTAL, &["channel"], "WebSocket payload bytes received."),
    counter(WS_BYTES_OUT_TOTAL, &["channel"], "WebSocket payload bytes sent, by channel."),
    counter(WS_REFUSED_TOTAL, &["reason"], "WebSocket handshakes refused, by reason."),
    counter(SLOW_CONSUMER_TOTAL, &["action"], "Subscribers that fell behind, by action (conflate, gap, disconnect, stalled)."),
    gauge(BUILD_INFO, &["version"], "Always 1; the version label names the running build."),
    gauge(READY, &[], "1 while the node accepts orders (journal open, instruments loaded), else 0."),
];

/// The entry of [`METRICS`] named `name`.
pub fn spec(name: &str) -> Option<&'static MetricSpec> {
    METRICS.iter().find(|m| m.name == name)
}

// ------------------------------------------------------------ the recorder

/// How often histogram samples are drained and mailbox depths sampled
/// without a scrape (samples waiting for a drain hold memory).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Mailboxes watched at once (one per instrument and journal of every node
/// in the process); more are not sampled.
pub const MAILBOX_WATCHES_MAX: usize = 65_536;

struct Telemetry {
    handle: PrometheusHandle,
}

/// Process metrics kept as gauges (CPU time is rendered apart).
const PROCESS_GAUGES: [(&str, &str); 7] = [
    ("process_open_fds", "Number of open file descriptors."),
    ("process_max_fds", "Maximum number of open file descriptors (0: unlimited)."),
    ("process_virtual_memory_bytes", "Virtual memory size in bytes."),
    ("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes (0: unlimited)."),
    ("process_resident_memory_bytes", "Resident memory size in bytes."),
    ("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds."),
    ("process_threads", "Number of OS threads in the process."),
];

static TELEMETRY: OnceLock<Option<Telemetry>> = OnceLock::new();

/// Installs the Prometheus recorder once per process; later calls are free.
/// Returns whether this process's metrics are rendered (false when another
/// recorder was installed first).
pub fn install() -> bool {
    TELEMETRY.get_or_init(build).is_some()
}

fn build() -> Option<Telemetry> {
    let mut builder = PrometheusBuilder::new();
    for m in METRICS.iter().filter(|m| m.kind == Kind::Histogram) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(m.name.to_string()), m.buckets)
            .expect("every histogram has buckets");
    }
    let handle = match builder.install_recorder() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
            return None;
        }
    };
    for m in METRICS {
        match (m.kind, m.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(m.name, u, m.help),
            (Kind::Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(m.name, u, m.help),
            (Kind::Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
    for (name, help) in PROCESS_GAUGES {
        metrics::describe_gauge!(name, help);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    preregister();
    handle.run_upkeep();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new().name("bourse-telemetry".into()).spawn(move || loop {
        std::thread::sleep(UPKEEP_EVERY);
        sample();
        upkeep.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "telemetry upkeep thread did not start; histograms drain at scrapes only");
    }
    Some(Telemetry { handle })
}

/// Series that exist from the start with value 0, so dashboards and
/// alerts see a flat line rather than nothing.
fn preregister() {
    metrics::counter!(ORDERS_TOTAL, "op" => OP_PLACE, "result" => RESULT_ACCEPTED, "code" => CODE_NONE).absolute(0);
    for actor in [ACTOR_LEDGER, ACTOR_INSTRUMENT, ACTOR_PASSWORD_CHECKS] {
        metrics::counter!(OVERLOADED_TOTAL, "actor" => actor).absolute(0);
    }
    for actor in [ACTOR_LEDGER, ACTOR_JOURNAL, ACTOR_MARKET] {
        metrics::gauge!(MAILBOX_DEPTH, "actor" => actor).set(0.0);
    }
    for scope in ["connection", "account"] {
        metrics::counter!(RATE_LIMITED_TOTAL, "scope" => scope).absolute(0);
    }
    for action in [SLOW_CONFLATE, SLOW_GAP, SLOW_DISCONNECT, SLOW_STALLED] {
        metrics::counter!(SLOW_CONSUMER_TOTAL, "action" => action).absolute(0);
    }
    for role in [ROLE_ANONYMOUS, "trader", "operator", "viewer"] {
        metrics::gauge!(WS_CONNECTIONS, "role" => role).increment(0.0);
    }
    for reason in ["connections_max", "node"] {
        metrics::counter!(WS_REFUSED_TOTAL, "reason" => reason).absolute(0);
    }
    for stage in STAGES {
        let _ = metrics::histogram!(STAGE_SECONDS, "stage" => stage);
    }
    for result in ["ok", "error"] {
        let _ = metrics::histogram!(ORDER_ACK_SECONDS, "result" => result);
    }
    let _ = metrics::histogram!(JOURNAL_FLUSH_SECONDS);
    let _ = metrics::histogram!(MD_DELIVERY_SECONDS);
    let _ = metrics::histogram!(JOURNAL_BATCH_EVENTS);
    metrics::counter!(JOURNAL_EVENTS_TOTAL).absolute(0);
    metrics::counter!(JOURNAL_WRITTEN_BYTES_TOTAL).absolute(0);
    metrics::counter!(JOURNAL_BACKPRESSURE_TOTAL).absolute(0);
    metrics::counter!(SNAPSHOT_FAILURES_TOTAL).absolute(0);
}

/// The Prometheus text exposition of every metric, with mailbox depths,
/// snapshot age and process metrics read now. Empty when another recorder
/// owns this process.
pub fn render() -> String {
    install();
    let Some(Some(t)) = TELEMETRY.get() else { return String::new() };
    sample();
    let cpu = process_sample();
    t.handle.run_upkeep();
    let mut text = t.handle.render();
    if let Some(cpu) = cpu {
        text.push_str(&format!(
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total {cpu}\n"
        ));
    }
    text
}

/// Reads this process's figures into the process gauges; returns its CPU
/// time in seconds.
fn process_sample() -> Option<f64> {
    let m = metrics_process::collector::collect();
    let values = [m.open_fds, m.max_fds, m.virtual_memory_bytes, m.virtual_memory_max_bytes, m.resident_memory_bytes, m.start_time_seconds, m.threads];
    for ((name, _), v) in PROCESS_GAUGES.iter().zip(values) {
        if let Some(v) = v {
            metrics::gauge!(*name).set(v as f64);
        }
    }
    m.cpu_seconds_total
}

// ------------------------------------------------------------ mailboxes

/// A mailbox depth counted by its senders ([`Depth::enqueued`]) and its
/// receiver ([`Depth::handled`]), for mailboxes that do not expose a length.
pub struct Depth(AtomicI64);

impl Depth {
    pub const fn new() -> Depth {
        Depth(AtomicI64::new(0))
    }
    pub fn enqueued(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn handled(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Messages waiting (never below 0: a receiver may count a message
    /// before its sender did).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed).max(0) as u64
    }
}

impl Default for Depth {
    fn default() -> Self {
        Depth::new()
    }
}

/// The ledger's mailbox: session commands (counted by the session when
/// accepted, by the ledger when handled; commands of the node itself are
/// not counted) and book outcomes.
pub static LEDGER_MAILBOX: Depth = Depth::new();

struct Watch {
    actor: &'static str,
    sym: Option<String>,
    depth: Weak<AtomicUsize>,
}

static WATCHES: Mutex<Vec<Watch>> = Mutex::new(Vec::new());

/// Samples `depth` (kept up to date by its owner) as the mailbox depth of
/// `actor` (and `sym`) for as long as the owner holds it. Several nodes in
/// one process add up.
pub fn watch_mailbox(actor: &'static str, sym: Option<&str>, depth: &Arc<AtomicUsize>) {
    let mut w = WATCHES.lock().unwrap_or_else(PoisonError::into_inner);
    w.retain(|x| x.depth.strong_count() > 0);
    if w.len() >= MAILBOX_WATCHES_MAX {
        tracing::warn!(actor, "MAILBOX_WATCHES_MAX reached; this mailbox's depth is not exported");
        return;
    }
    w.push(Watch { actor, sym: sym.map(str::to_string), depth: Arc::downgrade(depth) });
}

static SNAPSHOT_AT_US: AtomicU64 = AtomicU64::new(0);

/// Records that a state snapshot taken at `unix_us` (microseconds since the
/// epoch) exists; [`SNAPSHOT_AGE_SECONDS`] is then exported, measured from
/// the newest one at each scrape.
pub fn snapshot_taken_at(unix_us: u64) {
    SNAPSHOT_AT_US.fetch_max(unix_us, Ordering::Relaxed);
}

fn sample() {
    metrics::gauge!(MAILBOX_DEPTH, "actor" => ACTOR_LEDGER).set(LEDGER_MAILBOX.get() as f64);
    let mut sums: BTreeMap<(&'static str, Option<String>), usize> = BTreeMap::new();
    {
        let mut w = WATCHES.lock().unwrap_or_else(PoisonError::into_inner);
        for x in w.iter() {
            // A gone mailbox reads 0 once, so its last depth does not linger.
            let n = x.depth.upgrade().map_or(0, |d| d.load(Ordering::Relaxed));
            *sums.entry((x.actor, x.sym.clone())).or_default() += n;
        }
        w.retain(|x| x.depth.strong_count() > 0);
    }
    for ((actor, sym), n) in sums {
        match sym {
            Some(sym) => metrics::gauge!(MAILBOX_DEPTH, "actor" => actor, "sym" => sym).set(n as f64),
            None => metrics::gauge!(MAILBOX_DEPTH, "actor" => actor).set(n as f64),
        }
    }
    let at = SNAPSHOT_AT_US.load(Ordering::Relaxed);
    if at > 0 {
        let age_us = crate::reply::now_us().saturating_sub(at);
        metrics::gauge!(SNAPSHOT_AGE_SECONDS).set(Duration::from_micros(age_us).as_secs_f64());
    }
}

// ------------------------------------------------------------ stages

/// Records `d` as time spent in `stage`.
pub fn observe_stage(stage: &'static str, d: Duration) {
    metrics::histogram!(STAGE_SECONDS, "stage" => stage).record(d.as_secs_f64());
}

/// Runs `f`, recording its duration as time spent in `stage`.
pub fn stage<T>(stage: &'static str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    observe_stage(stage, started.elapsed());
    out
}

/// Records the time from its creation to its drop as time spent in a stage.
#[must_use = "the stage ends when the timer is dropped"]
pub struct StageTimer {
    stage: &'static str,
    started: Instant,
}

impl StageTimer {
    pub fn start(stage: &'static str) -> StageTimer {
        StageTimer { stage, started: Instant::now() }
    }
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        observe_stage(self.stage, self.started.elapsed());
    }
}

// ------------------------------------------------------------ sessions

fn role_label(role: Option<Role>) -> &'static str {
    match role {
        None => ROLE_ANONYMOUS,
        Some(Role::Trader) => "trader",
        Some(Role::Operator) => "operator",
        Some(Role::Viewer) => "viewer",
    }
}

/// A WebSocket session started (anonymous until it logs in).
pub fn ws_opened() {
    metrics::gauge!(WS_CONNECTIONS, "role" => ROLE_ANONYMOUS).increment(1.0);
}

/// A session logged in (`from` None, `to` its role) or out (the reverse).
pub fn ws_role_changed(from: Option<Role>, to: Option<Role>) {
    metrics::gauge!(WS_CONNECTIONS, "role" => role_label(from)).decrement(1.0);
    metrics::gauge!(WS_CONNECTIONS, "role" => role_label(to)).increment(1.0);
}

/// A session ended with `role` (None: never logged in, or logged out).
pub fn ws_closed(conn: usize, role: Option<Role>) {
    let role = role_label(role);
    metrics::gauge!(WS_CONNECTIONS, "role" => role).decrement(1.0);
    tracing::debug!(conn, role, "connection closed");
}

/// A request frame of `bytes` was read.
pub fn ws_in(bytes: usize) {
    metrics::counter!(WS_MESSAGES_IN_TOTAL, "channel" => CHANNEL_REQUEST).increment(1);
    metrics::counter!(WS_BYTES_IN_TOTAL, "channel" => CHANNEL_REQUEST).increment(bytes as u64);
}

/// `channel` of heartbeats and notices.
pub const CHANNEL_HB: &str = "hb";
pub const CHANNEL_NOTICE: &str = "notice";

/// The channel label of a stream key (`book.l2:BTC-USD:10` is `book.l2`);
/// anything else is `other`, so a label value is always one of a fixed few.
pub fn channel_of(key: &str) -> &'static str {
    let name = key.split(':').next().unwrap_or_default();
    match name {
        CHANNEL_HB => CHANNEL_HB,
        CHANNEL_NOTICE => CHANNEL_NOTICE,
        _ => Channel::from_name(name).map_or("other", Channel::as_str),
    }
}

/// The outbound message and byte counters of one channel label.
type OutCounters = (&'static str, metrics::Counter, metrics::Counter);

/// The outbound message and byte counters of each channel label, registered
/// once: a message sent to a subscriber costs two atomic adds, not a lookup
/// or a lock.
fn out_counters(channel: &'static str) -> &'static OutCounters {
    static CACHE: std::sync::OnceLock<Vec<OutCounters>> = std::sync::OnceLock::new();
    let all = CACHE.get_or_init(|| {
        let labels = Channel::ALL.iter().map(|c| c.as_str()).chain([CHANNEL_HB, CHANNEL_NOTICE, "other"]);
        labels
            .map(|c| (c, metrics::counter!(WS_MESSAGES_OUT_TOTAL, "channel" => c), metrics::counter!(WS_BYTES_OUT_TOTAL, "channel" => c)))
            .collect()
    });
    all.iter().find(|(c, _, _)| *c == channel).unwrap_or(&all[all.len() - 1])
}

/// A stream message of stream `key`, `bytes` long, was queued for a client.
pub fn ws_out(key: &str, bytes: usize) {
    ws_out_channel(channel_of(key), bytes);
}

/// A message of channel label `channel` (see [`channel_of`]), `bytes` long,
/// was queued for a client.
pub fn ws_out_channel(channel: &'static str, bytes: usize) {
    ws_out_many(channel, 1, bytes);
}

/// `n` messages of `channel`, `bytes` in all, queued to connections.
pub fn ws_out_many(channel: &'static str, n: u64, bytes: usize) {
    let (_, m, b) = out_counters(channel);
    m.increment(n);
    b.increment(bytes as u64);
}

struct ReqIdField<'a>(Option<&'a ReqId>);

impl std::fmt::Display for ReqIdField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("-"),
            Some(ReqId::Num(n)) => write!(f, "{n}"),
            Some(ReqId::Str(s)) => f.write_str(s),
        }
    }
}

/// An answer of `bytes` was queued on connection `conn`. Refusals are logged
/// at debug with the connection and the request id, which tie the line to
/// the client's request.
pub fn response_sent(conn: usize, r: &Response<Value>, bytes: usize) {
    metrics::counter!(WS_MESSAGES_OUT_TOTAL, "channel" => CHANNEL_RESPONSE).increment(1);
    metrics::counter!(WS_BYTES_OUT_TOTAL, "channel" => CHANNEL_RESPONSE).increment(bytes as u64);
    if let Some(e) = &r.err {
        tracing::debug!(conn, req = %ReqIdField(r.id.as_ref()), code = e.code.as_str(), msg = %e.msg, "request refused");
    }
}

/// An order answer released by the journal reached its session: records
/// the time since the request was read (`ts_in`).
pub fn order_acked(r: &Response<Value>) {
    let us = crate::reply::now_us().saturating_sub(r.ts_in);
    let result = if r.ok { "ok" } else { "error" };
    metrics::histogram!(ORDER_ACK_SECONDS, "result" => result).record(Duration::from_micros(us).as_secs_f64());
}

/// The delivery histogram, for a connection's writer to keep rather than
/// look it up for every write.
pub fn md_delivery() -> metrics::Histogram {
    metrics::histogram!(MD_DELIVERY_SECONDS)
}

/// A write to a subscriber's socket carried a stream message made at `made_us`.
pub fn md_delivered_to(h: &metrics::Histogram, made_us: u64) {
    let us = crate::reply::now_us().saturating_sub(made_us);
    h.record(Duration::from_micros(us).as_secs_f64());
}

/// A subscriber on connection `conn` fell behind and `action` was taken.
pub fn slow_consumer(action: &'static str, conn: usize) {
    metrics::counter!(SLOW_CONSUMER_TOTAL, "action" => action).increment(1);
    tracing::info!(conn, action, "slow consumer");
}

// ------------------------------------------------------------ market data

/// The market-data actor took a committed batch off its mailbox (its
/// depth is counted by the node's own counter, watched per node); the
/// returned timer measures the publish stage until it is dropped.
pub fn market_committed() -> StageTimer {
    StageTimer::start(STAGE_PUBLISH)
}

/// Market data published `seq` for `sym`.
pub fn md_seq(sym: &str, seq: u64) {
    metrics::gauge!(MD_SEQ, "sym" => sym.to_string()).set(seq as f64);
}

/// The size of `sym`'s book: its resting orders and its levels a side.
pub fn book_size(sym: &str, orders: usize, bid_levels: usize, ask_levels: usize) {
    metrics::gauge!(BOOK_ORDERS, "sym" => sym.to_string()).set(orders as f64);
    metrics::gauge!(BOOK_LEVELS, "sym" => sym.to_string(), "side" => "buy").set(bid_levels as f64);
    metrics::gauge!(BOOK_LEVELS, "sym" => sym.to_string(), "side" => "sell").set(ask_levels as f64);
}

/// Whether the node accepts orders, as `/readyz` says.
pub fn set_ready(ready: bool) {
    metrics::gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("bourse_"), "{}", m.name);
            assert!(m.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{}", m.name);
            assert_eq!(m.kind == Kind::Counter, m.name.ends_with("_total"), "{}: only counters end in _total", m.name);
            for unit in ["_ms", "_us", "_millis", "_micros", "_kb", "_mb"] {
                assert!(!m.name.contains(unit), "{}: base units only", m.name);
            }
            if m.unit == Some(Unit::Seconds) {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(!m.help.is_empty(), "{}", m.name);
            for l in m.labels {
                for banned in ["user", "account", "conn", "connection", "peer", "id", "order", "session", "cl_id"] {
                    assert_ne!(*l, banned, "{}: label {l} is unbounded", m.name);
                }
            }
            if m.kind == Kind::Histogram {
                assert!(!m.buckets.is_empty(), "{}", m.name);
                assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}: buckets increase", m.name);
            } else {
                assert!(m.buckets.is_empty(), "{}", m.name);
            }
        }
    }

    #[test]
    fn channel_labels_are_a_fixed_set() {
        assert_eq!(channel_of("book.l2:BTC-USD:10"), "book.l2");
        assert_eq!(channel_of("trades:ETH-USD"), "trades");
        assert_eq!(channel_of("account"), "account");
        assert_eq!(channel_of("status"), "status");
        assert_eq!(channel_of("hb"), "hb");
        assert_eq!(channel_of("nonsense:x"), "other");
        assert_eq!(channel_of(""), "other");
    }

    #[test]
    fn depth_never_reads_below_zero() {
        let d = Depth::new();
        d.handled();
        assert_eq!(d.get(), 0);
        d.enqueued();
        d.enqueued();
        assert_eq!(d.get(), 1);
        d.enqueued();
        assert_eq!(d.get(), 2);
    }

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// The recorder is process-wide: this test owns the assertions about
    /// what it renders.
    #[test]
    fn renders_histograms_with_buckets_process_metrics_and_build_info() {
        assert!(install());
        observe_stage(STAGE_MATCH, Duration::from_micros(30));
        metrics::histogram!(JOURNAL_FLUSH_SECONDS).record(0.003);
        let inflight = Arc::new(AtomicUsize::new(7));
        watch_mailbox(ACTOR_INSTRUMENT, Some("TEST-SYM"), &inflight);
        snapshot_taken_at(crate::reply::now_us() - 2_000_000);
        let noted = Instant::now();
        let text = render();
        assert!(text.contains("bourse_stage_seconds_bucket{stage=\"match\",le=\"0.00005\"} 1"), "{text}");
        assert!(text.contains("bourse_journal_flush_seconds_bucket{le=\"0.005\"}"), "{text}");
        assert!(!text.contains("quantile="), "histograms, not summaries: {text}");
        assert!(text.contains(&format!("bourse_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
        assert!(text.contains("bourse_mailbox_depth{actor=\"instrument\",sym=\"TEST-SYM\"} 7"), "{text}");
        assert!(text.contains("# HELP bourse_orders_total "), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
        let cpu = sample_value(&text, "process_cpu_seconds_total").expect("cpu time");
        // Spin a fifth of a second: CPU time is kept to the clock tick, not whole seconds.
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let later = sample_value(&render(), "process_cpu_seconds_total").expect("cpu time");
        assert!(later > cpu, "{cpu} then {later}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"), "{text}");
        // The gauge follows the newest snapshot in the process; a test that
        // runs beside this one may take one after the one noted above, so
        // the age is at most two seconds (plus the time since), never more.
        let age = sample_value(&text, "bourse_snapshot_age_seconds").expect("snapshot age exported");
        // Seconds as the exposition format gives them (a float), not money.
        #[allow(clippy::float_arithmetic)]
        let most = 2.0 + noted.elapsed().as_secs_f64() + 0.5;
        assert!((0.0..most).contains(&age), "{age}");
        drop(inflight);
        let text = render();
        assert!(text.contains("bourse_mailbox_depth{actor=\"instrument\",sym=\"TEST-SYM\"} 0"), "a gone mailbox reads 0: {text}");
    }
}
