//! Recovery: the state of the exchange rebuilt from a data directory. The
//! newest snapshot whose checksums verify is loaded, the log is checked to
//! go on from exactly the batch the snapshot was taken at (same index, same
//! hash), and the batches after it are replayed by the same `apply` that
//! built the snapshot. Without a snapshot the whole log is replayed from
//! its first batch.
//!
//! Opening the log cuts a torn tail (batches written but never synced, so
//! never acknowledged) and refuses corruption anywhere else; both are
//! reported here in words an operator can act on.
//!
//! After a crash the log may also end with orders the ledger accepted
//! (funds held) whose book never answered: the crash came between the two
//! steps. Nobody was told about them. [`Recovered::settle_orphans`] closes
//! them as rejected (`market_closed`, the exchange having stopped), which
//! releases their funds and their `cl_id`, in one new log batch, before any
//! actor starts.
//!
//! Replay also keeps what the batches after the snapshot said to each
//! account's private stream ([`AccountTail`], the newest
//! [`ACCOUNT_TAIL_MAX`] messages an account), so that a client whose
//! connection dropped with the process resumes its `account` stream from
//! where it was instead of starting from a snapshot.

use std::path::{Path, PathBuf};

use std::collections::{HashMap, VecDeque};

use bourse_engine::{AccountId, AccountUpdate, Event, EventBody, Exchange, RejectCode};

use super::envelope::{self, SnapshotHeader};
use super::{decode_event, encode_event, log_dir, snapshots_dir};
use crate::config::DurabilityConf;
use crate::storage::log::{
    Entry, EventLog, FileLog, FileLogOptions, Hash, LogError, Recovery, GENESIS_HASH,
};
use crate::storage::{SkippedSnapshot, SledSnapshotStore, SnapshotError, SnapshotStore};

/// Batches read from the log per call while replaying: bounds the memory
/// one read takes.
pub const REPLAY_READ_BATCHES_MAX: u64 = 4_096;

/// A point in the log's history: the last batch applied and what led there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The last batch applied (0 before the first).
    pub index: u64,
    /// Its hash (the chain value the next batch must name).
    pub hash: Hash,
    /// Events applied from the beginning of the history up to `index`.
    pub events_total: u64,
    /// Time of the last event applied, 0 if none.
    pub last_ts: u64,
}

impl Position {
    /// Before the first batch of a log that was never reset.
    pub const GENESIS: Position = Position {
        index: 0,
        hash: GENESIS_HASH,
        events_total: 0,
        last_ts: 0,
    };

    pub fn header(&self) -> SnapshotHeader {
        SnapshotHeader {
            index: self.index,
            hash: self.hash,
            events_total: self.events_total,
            last_ts: self.last_ts,
        }
    }
}

impl From<SnapshotHeader> for Position {
    fn from(h: SnapshotHeader) -> Self {
        Position {
            index: h.index,
            hash: h.hash,
            events_total: h.events_total,
            last_ts: h.last_ts,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Log(LogError),
    #[error(
        "the disk holding {} is {} ({cause}). {} and start again: nothing acknowledged is lost \
         (the event log holds it)",
        path.display(),
        why.state(),
        why.advice()
    )]
    Unwritable { path: PathBuf, why: crate::storage::Unwritable, cause: String },
    #[error(
        "snapshot store {}: {source}. Is another bourse running on this data directory? \
         If the store is damaged, restore this node from a backup (`bourse restore`)",
        path.display()
    )]
    Store {
        path: PathBuf,
        #[source]
        source: SnapshotError,
    },
    #[error("snapshot store: {0}. If the store is damaged, restore this node from a backup (`bourse restore`)")]
    Snapshots(#[from] SnapshotError),
    #[error(
        "the data directory is inconsistent: {0}. The exchange will not start on it. Run \
         `bourse verify` for details, then restore this node from a backup (`bourse restore`)"
    )]
    Inconsistent(String),
    #[error(
        "event log batch {index}: an event does not decode ({reason}). The log's checksums \
         hold, so this build cannot read what an incompatible one wrote; run the version that \
         wrote the log, or restore from a backup"
    )]
    Decode { index: u64, reason: String },
}

impl From<LogError> for RecoverError {
    fn from(e: LogError) -> RecoverError {
        match (&e, e.unwritable()) {
            (LogError::Io { path, .. }, Some(why)) => RecoverError::Unwritable { path: path.clone(), why, cause: e.to_string() },
            _ => RecoverError::Log(e),
        }
    }
}

impl RecoverError {
    fn store(path: &Path) -> impl FnOnce(SnapshotError) -> RecoverError + '_ {
        move |source| {
            if let Some(why) = source.unwritable() {
                return RecoverError::Unwritable { path: path.to_path_buf(), why, cause: source.to_string() };
            }
            RecoverError::Store {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Messages an account's private stream keeps for resuming after a restart:
/// as many as the market-data actor's ring keeps of it live.
pub const ACCOUNT_TAIL_MAX: usize = crate::market::RING_MAX;

/// The newest private-stream messages of each account that replay met, in
/// order, with each one's event time: at most [`ACCOUNT_TAIL_MAX`] an
/// account.
#[derive(Default)]
pub struct AccountTail {
    pub accounts: HashMap<AccountId, VecDeque<(u64, AccountUpdate)>>,
}

impl AccountTail {
    fn push(&mut self, ts: u64, u: AccountUpdate) {
        let q = self.accounts.entry(u.account()).or_default();
        if q.len() == ACCOUNT_TAIL_MAX {
            q.pop_front();
        }
        q.push_back((ts, u));
    }

    /// Applies `e` to `state`, keeping what it says to accounts.
    fn apply(&mut self, state: &mut Exchange, e: &Event, buf: &mut Vec<AccountUpdate>) {
        state.apply(e, Some(buf));
        for u in buf.drain(..) {
            self.push(e.ts, u);
        }
    }
}

/// The state a log and a snapshot store give.
pub struct Rebuilt {
    pub exchange: Exchange,
    /// The snapshot replay started from, if any.
    pub snapshot: Option<SnapshotHeader>,
    /// Newer snapshots whose checksums failed (passed over).
    pub skipped: Vec<SkippedSnapshot>,
    /// Where the state stands: the log's last batch.
    pub position: Position,
    /// Batches and events replayed after the snapshot.
    pub replayed_batches: u64,
    pub replayed_events: u64,
    /// What the replayed batches said to each account.
    pub account_tail: AccountTail,
}

/// Decodes the events of one log entry.
pub fn entry_events(entry: &Entry) -> Result<Vec<Event>, RecoverError> {
    entry
        .events
        .iter()
        .map(|b| {
            decode_event(b).map_err(|reason| RecoverError::Decode {
                index: entry.index,
                reason,
            })
        })
        .collect()
}

/// Applies the batches after `pos` up to `to` to `state`, advancing `pos`;
/// `each` sees every batch with its events once applied.
pub fn replay<L: EventLog + ?Sized>(
    log: &L,
    state: &mut Exchange,
    pos: &mut Position,
    to: u64,
    each: impl FnMut(&Entry, &[Event], &Exchange),
) -> Result<(), RecoverError> {
    replay_keeping(log, state, pos, to, None, each)
}

/// [`replay`], keeping in `tail` what the batches say to accounts.
fn replay_keeping<L: EventLog + ?Sized>(
    log: &L,
    state: &mut Exchange,
    pos: &mut Position,
    to: u64,
    mut tail: Option<&mut AccountTail>,
    mut each: impl FnMut(&Entry, &[Event], &Exchange),
) -> Result<(), RecoverError> {
    let mut buf = Vec::new();
    while pos.index < to {
        let end = to.min(pos.index + REPLAY_READ_BATCHES_MAX);
        for entry in log.read(pos.index + 1..=end)? {
            if entry.index != pos.index + 1 || entry.prev_hash != pos.hash {
                return Err(RecoverError::Inconsistent(format!(
                    "event log batch {} does not follow batch {} (index or hash chain)",
                    entry.index, pos.index
                )));
            }
            let events = entry_events(&entry)?;
            for e in &events {
                match tail.as_deref_mut() {
                    Some(t) => t.apply(state, e, &mut buf),
                    None => state.apply(e, None),
                }
            }
            pos.index = entry.index;
            pos.hash = entry.hash;
            pos.events_total += events.len() as u64;
            if let Some(e) = events.last() {
                pos.last_ts = e.ts;
            }
            each(&entry, &events, state);
        }
    }
    Ok(())
}

/// Checks that `log` goes on from the snapshot taken at `h`: it holds the
/// batch after it (or ends exactly there), with the hash chain intact.
pub fn check_anchor<L: EventLog + ?Sized>(log: &L, h: &SnapshotHeader) -> Result<(), RecoverError> {
    let (first, last) = (log.first_index(), log.last_index());
    if h.index > last {
        return Err(RecoverError::Inconsistent(format!(
            "the newest snapshot is at batch {}, but the event log ends at batch {last}: \
             batches the snapshot contains are missing from the log",
            h.index
        )));
    }
    if h.index + 1 < first {
        return Err(RecoverError::Inconsistent(format!(
            "the event log begins at batch {first}, but the newest usable snapshot is at batch {}: \
             batches {}..={} are missing",
            h.index,
            h.index + 1,
            first - 1
        )));
    }
    let hash_there = if h.index >= first {
        log.read(h.index..=h.index)?[0].hash
    } else if last >= first {
        log.read(first..=first)?[0].prev_hash
    } else {
        log.last_hash()
    };
    if hash_there != h.hash {
        return Err(RecoverError::Inconsistent(format!(
            "the snapshot at batch {} does not belong to this event log (the log's hash at that \
             batch is {}, the snapshot's is {})",
            h.index,
            hex::encode(hash_there),
            hex::encode(h.hash)
        )));
    }
    Ok(())
}

/// The newest valid snapshot of `store` (if any) plus the rest of `log`.
pub fn rebuild<L: EventLog + ?Sized>(
    log: &L,
    store: &dyn SnapshotStore,
) -> Result<Rebuilt, RecoverError> {
    let latest = store.latest()?;
    for s in &latest.skipped {
        tracing::warn!(index = s.index, reason = %s.reason, "passing over a damaged snapshot");
    }
    let (state, snapshot, pos) = match latest.snapshot {
        Some((index, bytes)) => {
            let (h, state) = envelope::decode(&bytes).map_err(|e| {
                RecoverError::Inconsistent(format!(
                    "the snapshot at batch {index} does not decode: {e}"
                ))
            })?;
            if h.index != index {
                return Err(RecoverError::Inconsistent(format!(
                    "the snapshot stored under batch {index} says it was taken at batch {}",
                    h.index
                )));
            }
            check_anchor(log, &h)?;
            (state, Some(h), Position::from(h))
        }
        None => {
            let first = log.first_index();
            if first > 1 {
                return Err(RecoverError::Inconsistent(format!(
                    "the event log begins at batch {first} (earlier batches were removed after a \
                     snapshot), but no valid snapshot is stored"
                )));
            }
            (Exchange::new(), None, Position::GENESIS)
        }
    };
    let mut rebuilt = Rebuilt {
        exchange: state,
        snapshot,
        skipped: latest.skipped,
        position: pos,
        replayed_batches: 0,
        replayed_events: 0,
        account_tail: AccountTail::default(),
    };
    let to = log.last_index();
    let (mut batches, mut events) = (0u64, 0u64);
    replay_keeping(
        log,
        &mut rebuilt.exchange,
        &mut rebuilt.position,
        to,
        Some(&mut rebuilt.account_tail),
        |_, evs, _| {
            batches += 1;
            events += evs.len() as u64;
        },
    )?;
    rebuilt.replayed_batches = batches;
    rebuilt.replayed_events = events;
    Ok(rebuilt)
}

/// A node's data directory, recovered and open.
pub struct Recovered {
    pub state: Rebuilt,
    /// The open event log (its directory is locked while it is open).
    pub log: FileLog,
    /// What opening the log found (torn tail, removed files).
    pub log_report: Recovery,
    pub store: SledSnapshotStore,
    /// The epoch of every stream.
    pub epoch: u64,
}

/// Opens the data directory and rebuilds the state from it, logging what
/// was found (a torn tail as a warning).
pub fn recover(data_dir: &Path, conf: &DurabilityConf) -> Result<Recovered, RecoverError> {
    std::fs::create_dir_all(data_dir).map_err(|source| LogError::Io {
        op: "create directory",
        path: data_dir.to_path_buf(),
        source,
    })?;
    let started = std::time::Instant::now();
    let store_dir = snapshots_dir(data_dir);
    let store = SledSnapshotStore::open(&store_dir).map_err(RecoverError::store(&store_dir))?;
    let (log, log_report) = FileLog::open(
        log_dir(data_dir),
        FileLogOptions {
            segment_bytes_max: conf.segment_bytes_max,
        },
    )?;
    if let Some(t) = &log_report.torn_tail {
        tracing::warn!(
            segment = %t.segment.display(),
            offset = t.offset,
            first_lost_index = t.first_lost_index,
            "event log had a torn tail (an unfinished last batch, never synced, so never \
             acknowledged); cut at the last whole batch: {log_report}"
        );
    } else {
        tracing::info!("{log_report}");
    }
    let state = rebuild(&log, &store).map_err(|e| match e {
        RecoverError::Snapshots(source) => RecoverError::store(&store_dir)(source),
        other => other,
    })?;
    let epoch = match envelope::read_epoch(&store).map_err(RecoverError::store(&store_dir))? {
        Some(e) => e,
        None => {
            envelope::write_epoch(&store, envelope::EPOCH_FIRST)
                .map_err(RecoverError::store(&store_dir))?;
            envelope::EPOCH_FIRST
        }
    };
    // The state hash is not computed here: it encodes the whole state,
    // which costs as much as loading a snapshot. The snapshotter logs it
    // from its copy once the node runs.
    tracing::info!(
        snapshot_index = state.snapshot.map(|s| s.index),
        replayed_batches = state.replayed_batches,
        replayed_events = state.replayed_events,
        last_index = state.position.index,
        events_total = state.position.events_total,
        epoch,
        ms = started.elapsed().as_millis() as u64,
        "recovered to index {}",
        state.position.index
    );
    Ok(Recovered {
        state,
        log,
        log_report,
        store,
        epoch,
    })
}

/// The orders `state` holds funds for that never reached their book: open,
/// not resting. Between log batches this only happens when a crash came
/// between the ledger's acceptance and the book's answer.
pub fn orphans(state: &Exchange) -> Vec<EventBody> {
    let mut out: Vec<(u64, EventBody)> = state
        .ledger
        .orders
        .values()
        .filter(|o| o.status.is_open() && !o.resting)
        .map(|o| {
            (
                o.id.0,
                EventBody::OrderRejected {
                    inst: o.inst,
                    order: o.id,
                    code: RejectCode::MarketClosed,
                },
            )
        })
        .collect();
    out.sort_by_key(|(id, _)| *id);
    out.into_iter().map(|(_, b)| b).collect()
}

impl Recovered {
    /// Rejects the orders a crash left between the ledger and their book
    /// (see the module docs) in one durable log batch stamped `now`, or
    /// the log's last event's time if that is later (event times never go
    /// back: `EventClock`), and applies it. Returns how many there were.
    pub fn settle_orphans(&mut self, now: u64) -> Result<usize, RecoverError> {
        let bodies = orphans(&self.state.exchange);
        if bodies.is_empty() {
            return Ok(0);
        }
        let ts = now.max(self.state.position.last_ts);
        let events: Vec<Event> = bodies.into_iter().map(|body| Event { ts, body }).collect();
        let encoded: Vec<Vec<u8>> = events.iter().map(encode_event).collect();
        let index = self.log.append(&encoded)?;
        self.log.sync()?;
        let mut buf = Vec::new();
        for e in &events {
            self.state.account_tail.apply(&mut self.state.exchange, e, &mut buf);
        }
        let pos = &mut self.state.position;
        pos.index = index;
        pos.hash = self.log.last_hash();
        pos.events_total += events.len() as u64;
        pos.last_ts = ts;
        tracing::warn!(
            orders = events.len(),
            index,
            "rejected orders a crash left between the ledger and their book (never acknowledged; \
             their funds and cl_ids are released)"
        );
        Ok(events.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start that fails on a full or read-only disk says so and what to
    /// do, not to look for another process or restore from a backup.
    #[test]
    fn a_full_or_read_only_disk_at_start_is_named_as_such() {
        let log = RecoverError::from(LogError::Io { op: "write", path: "/data/log/1.seg".into(), source: std::io::Error::from_raw_os_error(28) });
        assert!(matches!(log, RecoverError::Unwritable { .. }), "{log}");
        let text = log.to_string();
        assert!(text.contains("the disk holding /data/log/1.seg is full") && text.contains("Free space"), "{text}");
        let store = RecoverError::store(Path::new("/data/snapshots"))(SnapshotError::Store {
            op: "open",
            source: Box::new(std::io::Error::from_raw_os_error(28)),
        });
        let text = store.to_string();
        assert!(text.contains("the disk holding /data/snapshots is full") && !text.contains("restore"), "{text}");
        let ro = RecoverError::store(Path::new("/data/snapshots"))(SnapshotError::Store {
            op: "save",
            source: Box::new(std::io::Error::from_raw_os_error(30)),
        });
        let text = ro.to_string();
        assert!(text.contains("the disk holding /data/snapshots is read-only") && text.contains("writable"), "{text}");
        let other = RecoverError::store(Path::new("/data/snapshots"))(SnapshotError::KeepZero);
        assert!(matches!(other, RecoverError::Store { .. }), "{other}");
    }
}
