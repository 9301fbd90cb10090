//! The event log: the exchange's journal and audit trail. It owns the
//! durable, append-only sequence of event batches that the ledger sequences
//! and the journal commits; replaying it rebuilds the exchange's state.
//!
//! A batch is one log entry: a list of opaque encoded events with an index
//! (1, 2, 3, ... without gaps) and a SHA-256 hash chained to the batch before
//! it, so that any change to history is detected by `bourse verify`.
//! [`EventLog`] is the interface; [`FileLog`] keeps the log in segment files
//! and [`MemLog`] keeps it in memory (tests and the non-durable mode). Both
//! compute the same hashes and pass the same conformance suite.
//!
//! # Writing and durability
//!
//! [`EventLog::append`] writes one batch and returns its index but does not
//! make it durable; [`EventLog::sync`] makes every batch appended so far
//! durable with one `fdatasync`. The journal appends a group of batches, syncs
//! once (group commit), and only then releases the replies behind them.
//!
//! # On-disk format (version 1)
//!
//! All integers are little-endian. A log is a directory:
//!
//! ```text
//! LOCK                          held (flock, exclusive) while a process has the log open
//! 00000000000000000001.seg      segment whose first batch has index 1
//! 00000000000000004711.seg      next segment: first batch 4711
//! 00000000000000004711.seg.tmp  only while a segment is being created; removed on open
//! ```
//!
//! A segment file name is the index of its first batch as 20 decimal digits
//! plus `.seg`. A segment is a 64-byte header followed by records:
//!
//! ```text
//! offset size  segment header
//!      0    8  magic "BOURSLOG"
//!      8    4  format version (u32) = 1
//!     12    4  reserved, zero
//!     16    8  first_index (u64): index of the segment's first batch, equal to the file name
//!     24   32  prev_hash: hash of batch first_index-1 (32 zero bytes before batch 1)
//!     56    4  reserved, zero
//!     60    4  CRC32C (Castagnoli) of bytes 0..60
//!     64       records, back to back, up to the end of the file
//!
//! record
//!      0    4  payload length L (u32), 44 <= L <= 64 MiB
//!      4    4  CRC32C of the L payload bytes
//!      8    L  payload:
//!                0   32  prev_hash: hash of the previous batch
//!               32    8  index (u64)
//!               40    4  event count N (u32)
//!               44       N times: event length (u32), event bytes
//! ```
//!
//! The hash of a batch is SHA-256 of its payload, that is of
//! `prev_hash || index || N || (len || event)*`. The first batch's prev_hash
//! is 32 zero bytes unless the log was reset to start after a snapshot.
//!
//! A valid log satisfies: every header and record CRC matches; each file name
//! equals its header's first_index; within a segment indexes rise by one from
//! first_index; each segment's first_index is the previous segment's last
//! index plus one and its header prev_hash is that batch's hash; each record's
//! prev_hash is the hash of the batch before it (or the header's prev_hash for
//! a segment's first record). Only the last segment is ever written to: a
//! segment is synced before the next one is created, and a new segment is
//! written as `.seg.tmp`, synced, and renamed into place, so a header is
//! always whole.
//!
//! # Recovery
//!
//! A crash can leave the last records of the last segment incomplete or with
//! a bad CRC (written, never synced, so never acknowledged). [`FileLog::open`]
//! cuts such a torn tail off and reports it in [`Recovery`]. A record that is
//! incomplete, has an impossible length or fails its CRC is a torn tail only
//! if it is in the last segment and no whole record with a matching CRC and
//! an index at or after the bad one's starts at any later byte offset of that
//! file. Anything else is corruption: damage followed by valid records, any
//! damage in an earlier segment or in a header, a record with a valid CRC
//! but the wrong index or prev_hash, a missing segment. `open` refuses such a
//! log with an error naming the segment file, byte offset and batch index,
//! and leaves the files as they are. [`verify`] performs the same checks
//! without changing anything, for `bourse verify`; it reports a torn tail
//! without failing.
//!
//! `LOCK` is held with `flock`, so a second process (or a second open in the
//! same process) is refused while the log is open. A child process forked
//! while the log is open shares that lock until it calls `exec`.

mod file;
mod format;
mod mem;

#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;
use std::path::PathBuf;

pub use file::{
    verify, FileLog, FileLogOptions, Recovery, TornTail, VerifyError, VerifyReport,
    SEGMENT_BYTES_MAX_DEFAULT,
};
pub use format::{
    segment_file_name, FORMAT_VERSION, PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};
pub use mem::MemLog;

/// A SHA-256 hash of a batch.
pub type Hash = [u8; 32];

/// The prev_hash of batch 1 of a log that was never reset.
pub const GENESIS_HASH: Hash = [0u8; 32];

/// One batch as read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    /// Hash of batch `index - 1`.
    pub prev_hash: Hash,
    /// SHA-256 of this batch's payload (see the module docs).
    pub hash: Hash,
    pub events: Vec<Vec<u8>>,
}

/// The hash a batch gets in every log implementation.
pub fn batch_hash(prev_hash: &Hash, index: u64, events: &[Vec<u8>]) -> Hash {
    let mut payload = Vec::with_capacity(format::payload_len(events).unwrap_or(0));
    format::encode_payload_into(index, prev_hash, events, &mut payload);
    format::hash_payload(&payload)
}

/// The durable log of event batches. One writer (the journal's thread) owns
/// it; reads happen on the same owner.
pub trait EventLog {
    /// Writes one batch as the next entry and returns its index
    /// (`last_index() + 1`). Not durable until [`EventLog::sync`].
    fn append(&mut self, batch: &[Vec<u8>]) -> Result<u64, LogError>;

    /// Makes every appended batch durable (one `fdatasync` for a file log).
    fn sync(&mut self) -> Result<(), LogError>;

    /// The batches with indexes in `range`, in order. An empty range gives an
    /// empty list; a range reaching outside `first_index()..=last_index()` is
    /// [`LogError::OutOfRange`]. The caller bounds the range it asks for.
    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<Entry>, LogError>;

    /// Drops every batch after `index` (a Raft leader's conflicting suffix),
    /// durably. `index >= last_index()` changes nothing; `index` below
    /// `first_index() - 1` is [`LogError::TruncateBeforeFirst`].
    fn truncate_after(&mut self, index: u64) -> Result<(), LogError>;

    /// Drops batches before `index` that a snapshot covers, durably. A file
    /// log drops only whole segments lying wholly before `index` and always
    /// keeps its last segment, so `first_index()` may stay below `index`;
    /// `last_index()` and `last_hash()` never change.
    fn purge_before(&mut self, index: u64) -> Result<(), LogError>;

    /// Drops every batch and restarts the log after a snapshot: the next
    /// append gets `base_index + 1` and chains to `base_hash`. Durable when it
    /// returns; a crash during it leaves either the old log (possibly a
    /// prefix of it) or the new empty one.
    fn reset_to(&mut self, base_index: u64, base_hash: Hash) -> Result<(), LogError>;

    /// Index of the first batch held, or `last_index() + 1` if none is held.
    fn first_index(&self) -> u64;

    /// Index of the last batch appended (0 for a new log).
    fn last_index(&self) -> u64;

    /// Hash of the last batch appended (the base hash if none is held).
    fn last_hash(&self) -> Hash;
}

/// Where and how the log is damaged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "event log is corrupt: segment {}, byte offset {offset}, batch index {index}: {reason}. \
     The exchange will not start on a damaged log. Run `bourse verify` on the log directory \
     to find the first bad batch, then restore this node from a backup (`bourse restore`) \
     or, in a cluster, rebuild it from a healthy peer",
    segment.display()
)]
pub struct Corruption {
    pub segment: PathBuf,
    pub offset: u64,
    /// The index of the batch that is bad or was expected at `offset`.
    pub index: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log I/O error: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    #[error(
        "event log {} is locked by another process (is another bourse running on this data directory?)",
        dir.display()
    )]
    Locked { dir: PathBuf },
    #[error("batch of {bytes} payload bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { bytes: u64, max: u64 },
    #[error("batches {start}..={end} requested, the log holds {first}..={last}")]
    OutOfRange {
        start: u64,
        end: u64,
        first: u64,
        last: u64,
    },
    #[error("cannot truncate after batch {index}: the log begins at {first} (earlier batches were purged)")]
    TruncateBeforeFirst { index: u64, first: u64 },
    #[error(
        "event log is unusable after a failed write or fdatasync ({cause}); restart the process \
         so that it recovers from what is durable"
    )]
    Poisoned { cause: String },
}

impl LogError {
    /// Whether the log failed because its disk cannot be written (full,
    /// read-only), and why.
    pub fn unwritable(&self) -> Option<crate::storage::Unwritable> {
        match self {
            LogError::Io { source, .. } => crate::storage::io_unwritable(source),
            _ => None,
        }
    }
}

/// Checks a read range against what a log holds; `Ok(false)` for an empty range.
fn check_range(range: &RangeInclusive<u64>, first: u64, last: u64) -> Result<bool, LogError> {
    let (start, end) = (*range.start(), *range.end());
    if start > end {
        return Ok(false);
    }
    if start < first || end > last {
        return Err(LogError::OutOfRange {
            start,
            end,
            first,
            last,
        });
    }
    Ok(true)
}

/// Checks a batch's size before it is encoded.
fn check_batch(batch: &[Vec<u8>]) -> Result<usize, LogError> {
    match format::payload_len(batch) {
        Some(len) if len <= format::PAYLOAD_BYTES_MAX => Ok(len),
        len => Err(LogError::BatchTooLarge {
            bytes: len.map_or(u64::MAX, |l| l as u64),
            max: format::PAYLOAD_BYTES_MAX as u64,
        }),
    }
}
