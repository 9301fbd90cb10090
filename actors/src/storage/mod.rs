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
