//! Durability beyond the event log itself: the snapshots that keep
//! recovery short, recovery at start, and the operator's tools that check,
//! copy and rebuild a data directory.
//!
//! A data directory holds the event log (`log/`, see [`crate::storage::log`])
//! and the snapshot store (`snapshots/`, sled). The log is the truth; a
//! snapshot is the state that replaying the log up to some index gives,
//! written by the same `Exchange::apply` on a background thread
//! ([`snapshotter`]) that follows the durable log and never pauses the live
//! actors. Each snapshot carries the log index and batch hash it was taken
//! at ([`envelope`]), so recovery ([`recover`]) can check that the log goes
//! on from exactly there before it replays the rest.
//!
//! * [`envelope`]: the stored snapshot (a header tying it to the log, then
//!   the engine's checksummed state), the stream epoch and the snapshot
//!   catalogue kept as metadata.
//! * [`shared_log`]: the log shared by the journal (its only writer) and the
//!   snapshotter (a reader of committed batches).
//! * [`recover`]: the newest valid snapshot plus the log after it; the
//!   in-flight orders a crash left without their book's answer.
//! * [`snapshotter`]: the background snapshot thread and log retention.
//! * [`view`]: a read-only view of a log directory for the tools, usable
//!   while a server has the log open.
//! * [`backup`]: `bourse backup` and `bourse restore`: one checksummed,
//!   optionally encrypted file with a snapshot and the log after it.
//! * [`check`]: `bourse verify` of a whole data directory or a backup file.
//! * [`audit`]: `bourse audit`: who did what, when, from the admin events.
//! * [`timefmt`]: RFC 3339 times for the tools (the log keeps microseconds).
//! * [`workload`]: a seeded synthetic trading day for tests and benchmarks.

pub mod audit;
pub mod backup;
pub mod check;
pub mod envelope;
pub mod recover;
pub mod shared_log;
pub mod snapshotter;
pub mod timefmt;
pub mod view;
pub mod workload;

use std::path::{Path, PathBuf};

pub use envelope::{SnapshotHeader, EPOCH_FIRST};
pub use recover::{rebuild, recover, Position, Rebuilt, RecoverError, Recovered};
pub use shared_log::{SharedLog, WeakLog};

/// Directory of the event log inside a data directory.
pub const LOG_DIR: &str = "log";
/// Directory of the snapshot store inside a data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// `<data_dir>/log`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(LOG_DIR)
}

/// `<data_dir>/snapshots`.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SNAPSHOTS_DIR)
}

/// Encodes one event as the journal writes it into a log entry.
pub fn encode_event(e: &bourse_engine::Event) -> Vec<u8> {
    rmp_serde::to_vec(e).expect("events encode")
}

/// Decodes one event of a log entry.
pub fn decode_event(bytes: &[u8]) -> Result<bourse_engine::Event, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
