//! The journal: makes the ledger's event batches durable, once per group,
//! then releases what waited on them, in order: first the answers, then the
//! market data and account streams. Nothing leaves the exchange before the
//! events behind it are durable.
//!
//! It runs on its own thread. The ledger hands it proposals through a
//! bounded channel; the thread takes every proposal waiting (up to
//! `commit_events_max` events), appends each as one log entry, syncs once
//! (one `fdatasync` for the whole group), then releases them.
//!
//! A log that cannot take a group (an append or a sync fails: a full disk,
//! an I/O error) stops the node: the state has run ahead of what is
//! durable, and after a failed `fdatasync` what reached the disk is not
//! known. Every answer waiting (the failed group's and those queued behind
//! it) is `internal` with outcome `unknown`, nothing more is acknowledged,
//! and the thread panics; it is a critical thread, so the process aborts
//! (`failstop`) and a restart recovers from what the log holds. A client
//! reconciles by `cl_id`.
//!
//! Its metrics: flush duration and batch size per group, events and bytes
//! made durable, the log's length, the queue of proposals waiting (the
//! journal's mailbox depth) and each proposal's time from hand-over to
//! durable (stage `journal`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_engine::Event;

use crate::reply::{Answer, Responder};
use crate::storage::log::EventLog;
use crate::telemetry;

/// Proposals waiting for the journal before the ledger blocks: this bounds
/// how far the live state runs ahead of durability.
pub const PROPOSALS_QUEUED_MAX: usize = 65_536;

/// How long a journal that cannot write gives the sessions to send their
/// `unknown` answers before the process stops.
pub const STOP_GRACE: Duration = Duration::from_millis(300);

/// What one ledger step produced: its events, the answers waiting on them,
/// and the stream messages to publish after the commit.
#[derive(Default)]
pub struct Proposal {
    pub events: Vec<Event>,
    pub answers: Vec<(Responder, Answer)>,
    /// Account-stream messages `(account, seq, message)`.
    pub account: Vec<(u64, u64, serde_json::Value)>,
    /// When the proposal was handed to the journal (set by `propose`).
    pub proposed: Option<Instant>,
}

impl Proposal {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.answers.is_empty() && self.account.is_empty()
    }
}

/// Receives what was committed, in commit order.
pub trait Publisher: Send + 'static {
    /// Called before the answers of a group are released, so that a client
    /// told of a change can use it at once (a new user can log in).
    fn learn(&mut self, _events: &[Event]) {}
    /// Called after the answers: market data and account streams.
    fn publish(&mut self, index: u64, events: Arc<Vec<Event>>, account: Vec<(u64, u64, serde_json::Value)>);
}

pub struct JournalHandle {
    tx: SyncSender<Proposal>,
    pub committed: Arc<AtomicU64>,
    pub stopped: Arc<std::sync::atomic::AtomicBool>,
    /// Proposals handed over and not yet taken by the journal thread.
    pub queued: Arc<AtomicUsize>,
}

impl Clone for JournalHandle {
    fn clone(&self) -> Self {
        JournalHandle {
            tx: self.tx.clone(),
            committed: self.committed.clone(),
            stopped: self.stopped.clone(),
            queued: self.queued.clone(),
        }
    }
}

impl JournalHandle {
    /// Hands a proposal over; blocks only when the journal is
    /// `PROPOSALS_QUEUED_MAX` proposals behind (back-pressure on the ledger).
    pub fn propose(&self, mut p: Proposal) {
        if p.is_empty() {
            return;
        }
        p.proposed = Some(Instant::now());
        // Counted before sending, so the thread never takes it first.
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(p) {
            Ok(()) => {}
            Err(TrySendError::Full(p)) => {
                metrics::counter!(telemetry::JOURNAL_BACKPRESSURE_TOTAL).increment(1);
                if self.tx.send(p).is_err() {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts the journal thread over `log`.
pub fn start<L: EventLog + Send + 'static>(
    mut log: L,
    durable: bool,
    commit_events_max: usize,
    mut publisher: Box<dyn Publisher>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
) -> JournalHandle {
    // The node's metrics start with its journal: nothing is recorded before.
    telemetry::install();
    let (tx, rx) = sync_channel::<Proposal>(PROPOSALS_QUEUED_MAX);
    let committed = Arc::new(AtomicU64::new(log.last_index()));
    let queued = Arc::new(AtomicUsize::new(0));
    telemetry::watch_mailbox(telemetry::ACTOR_JOURNAL, None, &queued);
    metrics::gauge!(telemetry::LOG_ENTRIES).set(log_entries(&log) as f64);
    let handle = JournalHandle { tx, committed: committed.clone(), stopped: stopped.clone(), queued: queued.clone() };
    std::thread::Builder::new()
        .name("bourse-journal".into())
        .spawn(move || {
            crate::failstop::mark_critical();
            run(&mut log, durable, commit_events_max, &rx, &mut *publisher, &committed, &stopped, &queued)
        })
        .expect("journal thread starts");
    handle
}

/// Entries in `log` (0 when empty).
fn log_entries<L: EventLog + ?Sized>(log: &L) -> u64 {
    let (first, last) = (log.first_index(), log.last_index());
    if last == 0 || last < first {
        0
    } else {
        last - first.max(1) + 1
    }
}

#[allow(clippy::too_many_arguments)]
fn run<L: EventLog>(
    log: &mut L,
    durable: bool,
    commit_events_max: usize,
    rx: &Receiver<Proposal>,
    publisher: &mut dyn Publisher,
    committed: &AtomicU64,
    stopped: &std::sync::atomic::AtomicBool,
    queued: &AtomicUsize,
) {
    let mut group: Vec<Proposal> = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(p) => group.push(p),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let mut events = group[0].events.len();
        while events < commit_events_max {
            match rx.try_recv() {
                Ok(p) => {
                    events += p.events.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        queued.fetch_sub(group.len(), Ordering::Relaxed);
        let started = Instant::now();
        let mut indexes = Vec::with_capacity(group.len());
        let mut bytes = 0u64;
        for p in &group {
            if p.events.is_empty() {
                indexes.push(None);
                continue;
            }
            let encoded: Vec<Vec<u8>> =
                p.events.iter().map(|e| rmp_serde::to_vec(e).expect("events encode")).collect();
            bytes += encoded.iter().map(|e| e.len() as u64).sum::<u64>();
            match log.append(&encoded) {
                Ok(i) => indexes.push(Some(i)),
                Err(e) => stop("append", &e, group, rx, stopped),
            }
        }
        let appended = indexes.iter().any(Option::is_some);
        if durable && appended {
            let synced = if crate::failstop::fault_hit("journal-sync") {
                Err(crate::storage::log::LogError::Io {
                    op: "sync",
                    path: "(fault injected: BOURSE_FAULT)".into(),
                    source: std::io::Error::other("injected"),
                })
            } else {
                log.sync()
            };
            if let Err(e) = synced {
                stop("sync", &e, group, rx, stopped);
            }
        }
        metrics::histogram!(telemetry::JOURNAL_FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(telemetry::JOURNAL_BATCH_EVENTS).record(events as f64);
        metrics::counter!(telemetry::JOURNAL_EVENTS_TOTAL).increment(events as u64);
        metrics::counter!(telemetry::JOURNAL_WRITTEN_BYTES_TOTAL).increment(bytes);
        metrics::gauge!(telemetry::LOG_ENTRIES).set(log_entries(log) as f64);
        committed.store(log.last_index(), Ordering::Release);
        for p in &group {
            if let Some(at) = p.proposed {
                telemetry::observe_stage(telemetry::STAGE_JOURNAL, at.elapsed());
            }
        }
        for p in &group {
            publisher.learn(&p.events);
        }
        for (p, index) in group.drain(..).zip(indexes) {
            for (to, a) in p.answers {
                to.send(a);
            }
            if !p.events.is_empty() || !p.account.is_empty() {
                publisher.publish(index.unwrap_or(0), Arc::new(p.events), p.account);
            }
        }
    }
}

/// A log that failed to `op` a group: nothing more is acknowledged, every
/// answer waiting (the group's, then those queued behind it) is `internal`
/// with outcome `unknown`, and after `STOP_GRACE` the thread panics (the
/// node stops; see the module docs).
fn stop(op: &str, e: &crate::storage::log::LogError, group: Vec<Proposal>, rx: &Receiver<Proposal>, stopped: &std::sync::atomic::AtomicBool) -> ! {
    stopped.store(true, Ordering::Release);
    tracing::error!(
        error = %e,
        "event log {op} failed: the exchange acknowledges nothing more and stops; what waited is answered with outcome unknown (restart to recover from the log)"
    );
    let unknown = bourse_protocol::ErrorBody::new(
        bourse_protocol::ErrorCode::Internal,
        "the event log could not be written: the outcome is unknown; reconcile by cl_id once the exchange is back",
    )
    .with_outcome(bourse_protocol::Outcome::Unknown);
    let mut waiting = 0usize;
    for p in group.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
        for (to, _) in p.answers {
            to.send(Err(unknown.clone()));
            waiting += 1;
        }
    }
    tracing::error!(answers = waiting, "answered with outcome unknown");
    std::thread::sleep(STOP_GRACE);
    panic!("the event log could not be written ({op}): {e}");
}

/// Reads every event of a log, in order, for recovery.
pub fn read_all<L: EventLog + ?Sized>(log: &L) -> Result<Vec<Event>, String> {
    let (first, last) = (log.first_index(), log.last_index());
    let mut out = Vec::new();
    if last == 0 || last < first {
        return Ok(out);
    }
    let step = 4096;
    let mut at = first.max(1);
    while at <= last {
        let to = (at + step - 1).min(last);
        for entry in log.read(at..=to).map_err(|e| e.to_string())? {
            for bytes in entry.events {
                out.push(rmp_serde::from_slice(&bytes).map_err(|e| format!("entry {}: {e}", entry.index))?);
            }
        }
        at = to + 1;
    }
    Ok(out)
}
