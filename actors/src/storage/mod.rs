//! Durable storage of the exchange: the event log ([`log`]), which is the
//! journal and audit trail that every state is rebuilt from, and the snapshot
//! store ([`snapshot`]), which holds states at a log index plus small
//! metadata. This module is the only code that touches log files or imports
//! sled; the rest of the exchange sees the [`EventLog`] and [`SnapshotStore`]
//! traits, each with a durable and an in-memory implementation that pass one
//! shared conformance suite.

pub mod log;
pub mod snapshot;

pub use log::{
    batch_hash, verify, Corruption, Entry, EventLog, FileLog, FileLogOptions, Hash, LogError,
    MemLog, Recovery, TornTail, VerifyError, VerifyReport, GENESIS_HASH,
};
pub use snapshot::{
    Latest, MemSnapshotStore, SkippedSnapshot, SledSnapshotStore, SnapshotError, SnapshotInfo,
    SnapshotStore,
};

/// Whether `e` says the disk is full (`ENOSPC`, or a quota's `EDQUOT`).
pub fn io_disk_full(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}
