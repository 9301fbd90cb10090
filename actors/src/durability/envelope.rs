//! A snapshot as it is stored, and the small metadata kept beside it.
//!
//! A stored snapshot is a fixed header that ties it to the event log (the
//! index and hash of the last batch it contains, the number of events up to
//! there, the time of the last one) followed by the engine's encoded state,
//! which ends with its own SHA-256 (`Exchange::encode_snapshot`). The store
//! seals the whole value with another SHA-256, so damage is caught twice.
//!
//! ```text
//! offset size
//!      0    8  magic "BOURSSNP"
//!      8    4  format version (u32 LE) = 1
//!     12    4  reserved, zero
//!     16    8  index (u64 LE): the last log batch the state contains
//!     24   32  hash of that batch (the log's chain value there)
//!     56    8  events_total (u64 LE): events from the first batch to `index`
//!     64    8  last_ts (u64 LE): time of the last event, microseconds since the Unix epoch
//!     72       the engine's snapshot (encoded state || SHA-256 of it)
//! ```
//!
//! Metadata (each a value in the snapshot store's `meta` tree):
//! `epoch` (u64 LE), the epoch of every stream, bumped by a restore; and
//! `snapshot_catalogue` (JSON), the index, event count and time of each
//! stored snapshot, which log retention counts events with.

use bourse_engine::Exchange;
use serde::{Deserialize, Serialize};

use crate::storage::{Hash, SnapshotError, SnapshotStore};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"BOURSSNP";
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
pub const SNAPSHOT_HEADER_BYTES: usize = 72;
const _: () = assert!(SNAPSHOT_HEADER_BYTES == 8 + 4 + 4 + 8 + 32 + 8 + 8);

/// Metadata key of the stream epoch.
pub const EPOCH_KEY: &str = "epoch";
/// The epoch of a data directory that was never restored.
pub const EPOCH_FIRST: u64 = 1;
/// Metadata key of the snapshot catalogue.
pub const CATALOGUE_KEY: &str = "snapshot_catalogue";
/// Entries the catalogue keeps (oldest dropped first); far more than the
/// snapshots retention keeps, and small enough for a metadata value.
pub const CATALOGUE_ENTRIES_MAX: usize = 256;

/// Where in the log a snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The last log batch the state contains.
    pub index: u64,
    /// That batch's hash.
    pub hash: Hash,
    /// Events from the first batch of the log's history up to `index`.
    pub events_total: u64,
    /// Time of the last event (microseconds since the Unix epoch), 0 if none.
    pub last_ts: u64,
}

/// The stored form of `state` taken at `header`.
pub fn encode(header: &SnapshotHeader, state: &Exchange) -> Vec<u8> {
    let body = state.encode_snapshot();
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&header.index.to_le_bytes());
    out.extend_from_slice(&header.hash);
    out.extend_from_slice(&header.events_total.to_le_bytes());
    out.extend_from_slice(&header.last_ts.to_le_bytes());
    debug_assert_eq!(out.len(), SNAPSHOT_HEADER_BYTES);
    out.extend_from_slice(&body);
    out
}

/// The header of a stored snapshot, without decoding the state.
pub fn decode_header(bytes: &[u8]) -> Result<SnapshotHeader, String> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(format!(
            "snapshot of {} bytes is shorter than its header",
            bytes.len()
        ));
    }
    if bytes[0..8] != SNAPSHOT_MAGIC {
        return Err("not a Bourse snapshot (bad magic)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(format!(
            "snapshot format version {version} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION})"
        ));
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[24..56]);
    Ok(SnapshotHeader {
        index: u64_at(16),
        hash,
        events_total: u64_at(56),
        last_ts: u64_at(64),
    })
}

/// The header and the state of a stored snapshot; the state's own
/// checksum is verified.
pub fn decode(bytes: &[u8]) -> Result<(SnapshotHeader, Exchange), String> {
    let header = decode_header(bytes)?;
    let state =
        Exchange::decode_snapshot(&bytes[SNAPSHOT_HEADER_BYTES..]).map_err(|e| e.to_string())?;
    Ok((header, state))
}

/// The stream epoch stored in `store`, if one was stored.
pub fn read_epoch(store: &dyn SnapshotStore) -> Result<Option<u64>, SnapshotError> {
    let Some(bytes) = store.get_meta(EPOCH_KEY)? else {
        return Ok(None);
    };
    match <[u8; 8]>::try_from(bytes.as_slice()) {
        Ok(b) => Ok(Some(u64::from_le_bytes(b))),
        Err(_) => Err(SnapshotError::MetaCorrupt {
            key: EPOCH_KEY.into(),
            reason: format!("{} bytes where a u64 belongs", bytes.len()),
        }),
    }
}

/// Stores the stream epoch (durable when it returns).
pub fn write_epoch(store: &dyn SnapshotStore, epoch: u64) -> Result<(), SnapshotError> {
    store.put_meta(EPOCH_KEY, &epoch.to_le_bytes())
}

/// One stored snapshot as the catalogue remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueEntry {
    pub index: u64,
    pub events_total: u64,
    pub last_ts: u64,
}

impl From<&SnapshotHeader> for CatalogueEntry {
    fn from(h: &SnapshotHeader) -> Self {
        CatalogueEntry {
            index: h.index,
            events_total: h.events_total,
            last_ts: h.last_ts,
        }
    }
}

/// The catalogue, oldest first. A damaged or unreadable one is reported and
/// read as empty: it only guides retention, which then keeps more.
pub fn read_catalogue(store: &dyn SnapshotStore) -> Vec<CatalogueEntry> {
    match store.get_meta(CATALOGUE_KEY) {
        Ok(None) => Vec::new(),
        Ok(Some(bytes)) => match serde_json::from_slice::<Vec<CatalogueEntry>>(&bytes) {
            Ok(mut list) => {
                list.sort_by_key(|c| c.index);
                list.dedup_by_key(|c| c.index);
                list
            }
            Err(e) => {
                tracing::warn!(error = %e, "snapshot catalogue does not decode; log retention starts over");
                Vec::new()
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "snapshot catalogue unreadable; log retention starts over");
            Vec::new()
        }
    }
}

/// Stores the catalogue, keeping its newest [`CATALOGUE_ENTRIES_MAX`] entries.
pub fn write_catalogue(
    store: &dyn SnapshotStore,
    list: &[CatalogueEntry],
) -> Result<(), SnapshotError> {
    let from = list.len().saturating_sub(CATALOGUE_ENTRIES_MAX);
    let bytes = serde_json::to_vec(&list[from..]).expect("catalogue encodes");
    store.put_meta(CATALOGUE_KEY, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemSnapshotStore;

    #[test]
    fn snapshot_round_trips_and_damage_is_refused() {
        let mut ex = Exchange::new();
        ex.execute(
            bourse_engine::Command::CreateAsset {
                name: "USD".into(),
                scale: 2,
                by: bourse_engine::AccountId(0),
            },
            7,
        )
        .result
        .unwrap();
        let header = SnapshotHeader {
            index: 42,
            hash: [9u8; 32],
            events_total: 1,
            last_ts: 7,
        };
        let bytes = encode(&header, &ex);
        let (h, back) = decode(&bytes).unwrap();
        assert_eq!(h, header);
        assert_eq!(back.state_hash(), ex.state_hash());
        assert_eq!(decode_header(&bytes).unwrap(), header);

        let mut bad = bytes.clone();
        let last = bad.len() - 40;
        bad[last] ^= 1;
        assert!(
            decode(&bad).is_err(),
            "a flipped state byte is caught by the engine checksum"
        );
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(decode(&bad).unwrap_err().contains("magic"));
        let mut bad = bytes.clone();
        bad[8] = 2;
        assert!(decode(&bad).unwrap_err().contains("version 2"));
        assert!(decode(&bytes[..10]).is_err());
    }

    #[test]
    fn epoch_and_catalogue_persist() {
        let store = MemSnapshotStore::new();
        assert_eq!(read_epoch(&store).unwrap(), None);
        write_epoch(&store, 3).unwrap();
        assert_eq!(read_epoch(&store).unwrap(), Some(3));
        store.put_meta(EPOCH_KEY, b"xyz").unwrap();
        assert!(read_epoch(&store).is_err());

        assert!(read_catalogue(&store).is_empty());
        let many: Vec<CatalogueEntry> = (1..=CATALOGUE_ENTRIES_MAX as u64 + 5)
            .map(|i| CatalogueEntry {
                index: i * 10,
                events_total: i * 100,
                last_ts: i,
            })
            .collect();
        write_catalogue(&store, &many).unwrap();
        let back = read_catalogue(&store);
        assert_eq!(back.len(), CATALOGUE_ENTRIES_MAX);
        assert_eq!(back.last(), many.last());
        assert_eq!(back[0].index, 60);
        store.put_meta(CATALOGUE_KEY, b"not json").unwrap();
        assert!(read_catalogue(&store).is_empty());
    }
}
