//! The snapshotter: a thread that follows the durable event log with its
//! own copy of the state, applying every committed batch with the same
//! `apply` as recovery, and writes a snapshot every
//! `snapshot_every_events` events or `snapshot_every_secs` seconds. The live
//! actors are never paused: the snapshotter only reads batches the journal
//! has already synced, through the shared log, a bounded number at a time.
//!
//! After each snapshot it applies log retention: the log keeps at least
//! `log_retention_events` events of history before the newest snapshot.
//! The newest snapshot that old becomes the anchor: whole log segments
//! before it are purged and older snapshots removed, so the oldest kept
//! snapshot plus the log after it always rebuild the state.
//!
//! Order of the steps, so that a crash between any two leaves a directory
//! that recovers: the snapshot is written and flushed, then the catalogue,
//! then log segments go, then older snapshots.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bourse_engine::Exchange;

use super::envelope::{self, CatalogueEntry};
use super::recover::{replay, Position};
use super::shared_log::{SharedLog, WeakLog};
use crate::config::DurabilityConf;
use crate::storage::log::EventLog;
use crate::storage::SnapshotStore;

/// How often the snapshotter looks for newly committed batches.
pub const SNAPSHOT_POLL_MS: u64 = 50;
/// Batches read per lock of the shared log: bounds how long the journal
/// can wait on the snapshotter.
pub const SNAPSHOT_READ_BATCHES_MAX: u64 = 256;
/// After a failed step (a snapshot that could not be saved: a full disk, a
/// store error), the snapshotter tries again after this long, doubling up
/// to `SNAPSHOT_RETRY_MAX` while it keeps failing.
pub const SNAPSHOT_RETRY_FIRST: Duration = Duration::from_secs(1);
pub const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(300);

/// What the snapshotter did; readable while it runs.
#[derive(Debug, Default)]
pub struct SnapshotterStatus {
    /// The last batch applied to its state.
    pub applied_index: AtomicU64,
    /// Index of the newest snapshot written by this process (0 if none).
    pub snapshot_index: AtomicU64,
    pub snapshots_written: AtomicU64,
    /// Set while its last step failed (the exchange goes on; it tries
    /// again, and until it succeeds recovery replays more of the log).
    pub failed: AtomicBool,
    /// Steps that failed.
    pub failures: AtomicU64,
}

/// Everything the thread owns.
pub struct Snapshotter<L, S> {
    log: WeakLog<L>,
    store: S,
    /// The journal's committed index: batches up to it are durable.
    committed: Arc<AtomicU64>,
    /// Set when the journal stopped: nothing more will be committed.
    journal_stopped: Arc<AtomicBool>,
    state: Exchange,
    pos: Position,
    conf: DurabilityConf,
    catalogue: Vec<CatalogueEntry>,
    events_since: u64,
    last_snapshot: Instant,
    /// How old the newest snapshot was when this process started it (by
    /// its last event's time), until this process writes one.
    carried: Duration,
    status: Arc<SnapshotterStatus>,
}

impl<L, S> Snapshotter<L, S>
where
    L: EventLog + Send + 'static,
    S: SnapshotStore + 'static,
{
    /// A snapshotter whose state is `state` at `pos` (what recovery gave).
    pub fn new(
        log: WeakLog<L>,
        store: S,
        committed: Arc<AtomicU64>,
        journal_stopped: Arc<AtomicBool>,
        state: Exchange,
        pos: Position,
        conf: DurabilityConf,
    ) -> Self {
        let catalogue = envelope::read_catalogue(&store);
        // What the log holds after the newest snapshot counts toward the
        // next one across restarts, in events and in time: a node restarted
        // more often than `snapshot_every_secs` (a crash loop, a chaos run)
        // still writes snapshots, so recovery and the log stay bounded.
        // With no snapshot yet, every event of the log counts, and time
        // counts from this start.
        let newest = catalogue.iter().max_by_key(|c| c.index);
        let events_since = pos.events_total.saturating_sub(newest.map_or(0, |c| c.events_total));
        let carried = newest.map_or(Duration::ZERO, |c| Duration::from_micros(crate::reply::now_us().saturating_sub(c.last_ts)));
        Snapshotter {
            log,
            store,
            committed,
            journal_stopped,
            state,
            pos,
            conf,
            catalogue,
            events_since,
            last_snapshot: Instant::now(),
            carried,
            status: Arc::new(SnapshotterStatus::default()),
        }
    }

    pub fn status(&self) -> Arc<SnapshotterStatus> {
        self.status.clone()
    }

    /// Runs on a thread of its own until the log closes or the journal stops.
    pub fn spawn(self) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("bourse-snapshots".into())
            .spawn(move || self.run())
            .expect("snapshot thread starts")
    }

    fn run(mut self) {
        self.status
            .applied_index
            .store(self.pos.index, Ordering::Release);
        // The state recovery replayed, as `bourse verify` computes it offline.
        tracing::info!(
            "recovered state at index {}: state_hash={}",
            self.pos.index,
            hex::encode(self.state.state_hash())
        );
        // After a failure: when to try again, and the wait that led there.
        let mut retry: Option<(Instant, Duration)> = None;
        loop {
            std::thread::sleep(Duration::from_millis(SNAPSHOT_POLL_MS));
            if self.journal_stopped.load(Ordering::Acquire) {
                tracing::info!("journal stopped; the snapshotter stops");
                return;
            }
            if retry.is_some_and(|(at, _)| Instant::now() < at) {
                continue;
            }
            match self.step() {
                Ok(true) => {
                    if retry.take().is_some() {
                        self.status.failed.store(false, Ordering::Release);
                        tracing::info!(index = self.pos.index, "the snapshotter works again");
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    let wait = retry.map_or(SNAPSHOT_RETRY_FIRST, |(_, w)| (w * 2).min(SNAPSHOT_RETRY_MAX));
                    retry = Some((Instant::now() + wait, wait));
                    self.status.failed.store(true, Ordering::Release);
                    self.status.failures.fetch_add(1, Ordering::AcqRel);
                    metrics::counter!("bourse_snapshot_failures_total").increment(1);
                    tracing::error!(
                        error = %e,
                        retry_in_s = wait.as_secs(),
                        "a snapshot step failed; the exchange goes on (recovery replays the log \
                         from the last snapshot written), and the snapshotter tries again"
                    );
                }
            }
        }
    }

    /// Catches up with the committed log and writes a snapshot when one is
    /// due. `Ok(false)` once the log has closed.
    pub fn step(&mut self) -> Result<bool, String> {
        let Some(log) = self.log.upgrade() else {
            return Ok(false);
        };
        let committed = self.committed.load(Ordering::Acquire);
        while self.pos.index < committed {
            let to = committed.min(self.pos.index + SNAPSHOT_READ_BATCHES_MAX);
            let mut events = 0u64;
            replay(&log, &mut self.state, &mut self.pos, to, |_, evs, _| {
                events += evs.len() as u64
            })
            .map_err(|e| e.to_string())?;
            self.events_since += events;
        }
        self.status
            .applied_index
            .store(self.pos.index, Ordering::Release);
        let due = self.events_since >= self.conf.snapshot_every_events
            || (self.events_since > 0
                && self.last_snapshot.elapsed() + self.carried
                    >= Duration::from_secs(self.conf.snapshot_every_secs));
        if due {
            self.write_snapshot()?;
            self.retain(&log)?;
        }
        Ok(true)
    }

    /// Writes the snapshot at the current position.
    pub fn write_snapshot(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let header = self.pos.header();
        let bytes = envelope::encode(&header, &self.state);
        self.store
            .save(header.index, &bytes)
            .map_err(|e| format!("saving the snapshot: {e}"))?;
        self.catalogue.retain(|c| c.index < header.index);
        self.catalogue.push(CatalogueEntry::from(&header));
        envelope::write_catalogue(&self.store, &self.catalogue)
            .map_err(|e| format!("saving the snapshot catalogue: {e}"))?;
        self.events_since = 0;
        self.last_snapshot = Instant::now();
        self.carried = Duration::ZERO;
        self.status
            .snapshot_index
            .store(header.index, Ordering::Release);
        self.status.snapshots_written.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!("bourse_snapshot_index").set(header.index as f64);
        crate::telemetry::snapshot_taken_at(crate::reply::now_us());
        metrics::histogram!("bourse_snapshot_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(
            index = header.index,
            events_total = header.events_total,
            bytes = bytes.len(),
            ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        Ok(())
    }

    /// Purges the log before the retention anchor and the snapshots older
    /// than it (see the module docs).
    fn retain(&mut self, log: &SharedLog<L>) -> Result<(), String> {
        let Some(newest) = self.catalogue.last().copied() else {
            return Ok(());
        };
        let retention = self.conf.log_retention_events;
        let Some(anchor) = self
            .catalogue
            .iter()
            .rev()
            .find(|c| newest.events_total.saturating_sub(c.events_total) >= retention)
            .copied()
        else {
            return Ok(());
        };
        let (before, after) = {
            let mut log = log.lock();
            let before = log.first_index();
            log.purge_before(anchor.index + 1)
                .map_err(|e| format!("purging the log: {e}"))?;
            (before, log.first_index())
        };
        let keep = self
            .store
            .list()
            .map_err(|e| format!("listing snapshots: {e}"))?
            .iter()
            .filter(|s| s.valid && s.index >= anchor.index)
            .count()
            .max(1);
        let removed = self
            .store
            .prune(keep)
            .map_err(|e| format!("removing old snapshots: {e}"))?;
        self.catalogue.retain(|c| c.index >= anchor.index);
        if after != before || removed > 0 {
            envelope::write_catalogue(&self.store, &self.catalogue)
                .map_err(|e| format!("saving the snapshot catalogue: {e}"))?;
            tracing::info!(
                anchor = anchor.index,
                log_first_index = after,
                snapshots_removed = removed,
                "log retention: history before the anchor snapshot removed"
            );
        }
        Ok(())
    }
}
