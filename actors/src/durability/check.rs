//! `bourse verify`: checks a data directory from end to end without
//! changing it: every log segment's checksums, indexes and hash chain;
//! every stored snapshot's checksum; that the newest snapshot belongs to
//! the log and holds the state a replay of the log gives at its index; and
//! the replay itself, to the state hash at the log's end. The first problem
//! found is reported with the index of the first bad batch or snapshot.

use std::path::{Path, PathBuf};

use bourse_engine::Exchange;

use super::envelope::{self, SnapshotHeader};
use super::recover::{check_anchor, replay, Position};
use super::view::LogView;
use super::{log_dir, snapshots_dir};
use crate::storage::log::{verify, EventLog, Hash, VerifyReport};
use crate::storage::{SledSnapshotStore, SnapshotInfo, SnapshotStore};

/// One stored snapshot as checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotCheck {
    pub index: u64,
    pub bytes: u64,
    /// Whether the state replayed from the log was compared with it.
    pub compared_with_replay: bool,
}

/// What a data directory holds, found intact.
#[derive(Clone, Debug)]
pub struct DataDirReport {
    pub data_dir: PathBuf,
    pub log: VerifyReport,
    /// `None` when the store could not be opened (a server is running).
    pub snapshots: Option<Vec<SnapshotCheck>>,
    /// Why snapshots were not checked.
    pub snapshots_note: Option<String>,
    pub epoch: Option<u64>,
    /// Where the replay started: 0 for the log's beginning, else a snapshot index.
    pub replay_from: Option<u64>,
    /// The state at the end of the log, if it could be replayed.
    pub position: Option<Position>,
    pub state_hash: Option<Hash>,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct CheckFailure {
    /// The first bad batch or snapshot index, when one can be named.
    pub first_bad_index: Option<u64>,
    pub what: String,
}

fn fail(index: impl Into<Option<u64>>, what: impl Into<String>) -> CheckFailure {
    CheckFailure {
        first_bad_index: index.into(),
        what: what.into(),
    }
}

/// Checks the data directory `data_dir` (see the module docs).
pub fn verify_data_dir(data_dir: &Path) -> Result<DataDirReport, CheckFailure> {
    let logs = log_dir(data_dir);
    if !logs.is_dir() {
        return Err(fail(
            None,
            format!(
                "{} holds no event log ({} is missing)",
                data_dir.display(),
                logs.display()
            ),
        ));
    }
    let log_report = verify(&logs).map_err(|e| fail(e.first_bad_index, e.to_string()))?;
    let mut report = DataDirReport {
        data_dir: data_dir.to_path_buf(),
        log: log_report,
        snapshots: None,
        snapshots_note: None,
        epoch: None,
        replay_from: None,
        position: None,
        state_hash: None,
    };

    // Snapshots: every seal, then the newest in depth.
    let store_dir = snapshots_dir(data_dir);
    let store = if store_dir.is_dir() {
        match SledSnapshotStore::open(&store_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                report.snapshots_note = Some(format!(
                    "not checked: the store cannot be opened ({e}); a running server holds it"
                ));
                None
            }
        }
    } else {
        report.snapshots_note = Some("none stored".into());
        None
    };
    let mut newest: Option<(SnapshotHeader, Exchange)> = None;
    let mut checks = Vec::new();
    if let Some(store) = &store {
        let list: Vec<SnapshotInfo> = store
            .list()
            .map_err(|e| fail(None, format!("snapshot store: {e}")))?;
        if let Some(bad) = list.iter().find(|s| !s.valid) {
            return Err(fail(
                bad.index,
                format!("the snapshot at batch {} fails its checksum; remove it or restore from a backup", bad.index),
            ));
        }
        let latest = store
            .latest()
            .map_err(|e| fail(None, format!("snapshot store: {e}")))?;
        if let Some((index, bytes)) = latest.snapshot {
            let (h, state) = envelope::decode(&bytes).map_err(|e| {
                fail(
                    index,
                    format!("the snapshot at batch {index} does not decode: {e}"),
                )
            })?;
            if h.index != index {
                return Err(fail(
                    index,
                    format!(
                        "the snapshot stored under batch {index} says it was taken at {}",
                        h.index
                    ),
                ));
            }
            newest = Some((h, state));
        }
        report.epoch =
            envelope::read_epoch(store).map_err(|e| fail(None, format!("snapshot store: {e}")))?;
        checks = list
            .iter()
            .map(|s| SnapshotCheck {
                index: s.index,
                bytes: s.bytes,
                compared_with_replay: false,
            })
            .collect();
    }

    // Replay, through a view so a running server's log can be read too.
    let view =
        LogView::open(&logs).map_err(|e| fail(None, format!("reading the event log: {e}")))?;
    let log = view.log();
    if let Some((h, _)) = &newest {
        check_anchor(log, h).map_err(|e| fail(h.index, e.to_string()))?;
    }
    let (mut state, mut pos) = if log.first_index() == 1 {
        report.replay_from = Some(0);
        (Exchange::new(), Position::GENESIS)
    } else {
        match newest.take() {
            Some((h, state)) => {
                report.replay_from = Some(h.index);
                if let Some(c) = checks.iter_mut().find(|c| c.index == h.index) {
                    c.compared_with_replay = true;
                }
                (state, Position::from(h))
            }
            None if store.is_none() => {
                report.snapshots = None;
                return Ok(report);
            }
            None => {
                return Err(fail(
                    log.first_index(),
                    format!(
                        "the event log begins at batch {} but no valid snapshot is stored to start a replay from",
                        log.first_index()
                    ),
                ))
            }
        }
    };
    // A replay from the beginning passes the newest snapshot's index: the
    // state there must be the snapshot's.
    if let Some((h, snap_state)) = &newest {
        let mut mismatch = None;
        replay(log, &mut state, &mut pos, h.index, |_, _, _| {})
            .map_err(|e| fail(pos.index + 1, e.to_string()))?;
        if state.state_hash() != snap_state.state_hash() {
            mismatch = Some(h.index);
        }
        if let Some(index) = mismatch {
            return Err(fail(
                index,
                format!("the snapshot at batch {index} does not hold the state a replay of the log gives there"),
            ));
        }
        if let Some(c) = checks.iter_mut().find(|c| c.index == h.index) {
            c.compared_with_replay = true;
        }
    }
    let last = log.last_index();
    replay(log, &mut state, &mut pos, last, |_, _, _| {})
        .map_err(|e| fail(pos.index + 1, e.to_string()))?;
    report.state_hash = Some(state.state_hash());
    report.position = Some(pos);
    if store.is_some() {
        report.snapshots = Some(checks);
    }
    Ok(report)
}
