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

/// Why a disk cannot take the node's writes, when an I/O error says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unwritable {
    /// `ENOSPC`, or a quota's `EDQUOT`.
    Full,
    /// `EROFS`: a filesystem mounted (or fallen back to) read-only.
    ReadOnly,
}

impl Unwritable {
    pub fn state(self) -> &'static str {
        match self {
            Unwritable::Full => "full",
            Unwritable::ReadOnly => "read-only",
        }
    }

    /// What an operator does about it.
    pub fn advice(self) -> &'static str {
        match self {
            Unwritable::Full => "Free space on it",
            Unwritable::ReadOnly => "Make it writable again (remount it, or check the device)",
        }
    }
}

/// Whether `e` says the disk cannot be written, and why.
pub fn io_unwritable(e: &std::io::Error) -> Option<Unwritable> {
    const EROFS: i32 = 30;
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::StorageFull, _) | (_, Some(ENOSPC | EDQUOT)) => Some(Unwritable::Full),
        (std::io::ErrorKind::ReadOnlyFilesystem, _) | (_, Some(EROFS)) => Some(Unwritable::ReadOnly),
        _ => None,
    }
}
