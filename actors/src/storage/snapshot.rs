//! The snapshot store: the exchange's state at a log index (built by `apply`
//! from the durable log) and small metadata such as the Raft vote, the
//! membership and the snapshot index. [`SnapshotStore`] is the interface;
//! [`SledSnapshotStore`] keeps it in sled 0.34 and [`MemSnapshotStore`] in
//! memory; both pass the same conformance suite.
//!
//! sled syncs on its own only every 500 ms, so every write here ends with an
//! explicit `flush()` (fsync) before it returns. Each value carries a SHA-256
//! checksum, so a snapshot damaged on disk is skipped (and reported) in
//! favour of an older one, rather than loaded.
//!
//! # Layout in sled
//!
//! ```text
//! tree "snapshots"  key:   index, u64 big-endian (keys sort by index)
//!                   value: 0x01 (format version) || SHA-256(index as u64 big-endian || bytes) || bytes
//! tree "meta"       key:   the metadata key, UTF-8
//!                   value: 0x01 (format version) || SHA-256(key length as u32 little-endian || key || bytes) || bytes
//! ```
//!
//! The checksum covers the key, so a value found under the wrong key is
//! rejected too. [`MemSnapshotStore`] seals its values the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::digest;

/// Largest snapshot accepted: bounds what one `latest()` loads into memory.
pub const SNAPSHOT_BYTES_MAX: usize = 1 << 30;
/// Largest metadata value: metadata is small by contract (votes, membership).
pub const META_BYTES_MAX: usize = 64 << 10;
/// Longest metadata key.
pub const META_KEY_BYTES_MAX: usize = 128;

const SEAL_VERSION: u8 = 1;
const SEAL_HEADER_BYTES: usize = 1 + 32;
const SNAPSHOTS_TREE: &str = "snapshots";
const META_TREE: &str = "meta";
/// The node's session tokens, by their hashes (see `SledSnapshotStore::sessions`).
const SESSIONS_TREE: &str = "sessions";

/// A snapshot found by [`SnapshotStore::latest`] whose checksum failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedSnapshot {
    pub index: u64,
    pub reason: String,
}

/// The newest snapshot that verifies, and the newer ones that did not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latest {
    /// `(index, bytes)` of the newest valid snapshot.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Damaged snapshots newer than it, newest first; the caller logs them.
    pub skipped: Vec<SkippedSnapshot>,
}

/// One stored snapshot as listed by [`SnapshotStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub index: u64,
    /// Size of the snapshot bytes (without the checksum).
    pub bytes: u64,
    /// Whether its checksum verifies.
    pub valid: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot store {op} failed: {source}")]
    Store {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("snapshot of {bytes} bytes exceeds the limit of {max} bytes")]
    SnapshotTooLarge { bytes: usize, max: usize },
    #[error("metadata key of {bytes} bytes exceeds the limit of {max} bytes")]
    MetaKeyTooLong { bytes: usize, max: usize },
    #[error("metadata value of {bytes} bytes exceeds the limit of {max} bytes")]
    MetaTooLarge { bytes: usize, max: usize },
    #[error("metadata {key:?} is damaged ({reason}); restore this node from a backup or rebuild it from a healthy peer")]
    MetaCorrupt { key: String, reason: String },
    #[error("prune must keep at least one snapshot")]
    KeepZero,
}

/// Where snapshots and metadata are kept. Every write is durable when it
/// returns. Shared between the state machine and the Raft storage, so it
/// takes `&self`.
pub trait SnapshotStore: Send + Sync {
    /// Stores the snapshot taken at log `index` (replacing one at the same index).
    fn save(&self, index: u64, bytes: &[u8]) -> Result<(), SnapshotError>;

    /// The newest snapshot whose checksum verifies; damaged newer ones are
    /// skipped, logged as warnings and returned in [`Latest::skipped`].
    fn latest(&self) -> Result<Latest, SnapshotError>;

    /// Every stored snapshot, oldest first, with its checksum verified.
    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError>;

    /// Removes every snapshot older than the `keep` newest valid ones and
    /// returns how many were removed. Damaged snapshots newer than those stay
    /// for inspection until they too are older.
    fn prune(&self, keep: usize) -> Result<usize, SnapshotError>;

    /// Stores a small metadata value under `key`.
    fn put_meta(&self, key: &str, bytes: &[u8]) -> Result<(), SnapshotError>;

    /// The metadata value under `key`; a damaged value is an error.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, SnapshotError>;
}

/// `version || SHA-256(context || bytes) || bytes`.
fn seal(context: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_HEADER_BYTES + bytes.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(&checksum(context, bytes));
    out.extend_from_slice(bytes);
    out
}

fn unseal<'a>(context: &[u8], value: &'a [u8]) -> Result<&'a [u8], String> {
    if value.len() < SEAL_HEADER_BYTES {
        return Err(format!("value of {} bytes is too short", value.len()));
    }
    if value[0] != SEAL_VERSION {
        return Err(format!("unknown format version {}", value[0]));
    }
    let bytes = &value[SEAL_HEADER_BYTES..];
    if value[1..SEAL_HEADER_BYTES] != checksum(context, bytes) {
        return Err("SHA-256 checksum mismatch".to_string());
    }
    Ok(bytes)
}

fn checksum(context: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(context);
    ctx.update(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn snapshot_context(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn meta_context(key: &str) -> Vec<u8> {
    let mut context = Vec::with_capacity(4 + key.len());
    context.extend_from_slice(&(key.len() as u32).to_le_bytes());
    context.extend_from_slice(key.as_bytes());
    context
}

fn check_snapshot(bytes: &[u8]) -> Result<(), SnapshotError> {
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(SnapshotError::SnapshotTooLarge {
            bytes: bytes.len(),
            max: SNAPSHOT_BYTES_MAX,
        });
    }
    Ok(())
}

fn check_meta(key: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
    if key.len() > META_KEY_BYTES_MAX {
        return Err(SnapshotError::MetaKeyTooLong {
            bytes: key.len(),
            max: META_KEY_BYTES_MAX,
        });
    }
    if bytes.len() > META_BYTES_MAX {
        return Err(SnapshotError::MetaTooLarge {
            bytes: bytes.len(),
            max: META_BYTES_MAX,
        });
    }
    Ok(())
}

/// Raw access to sealed values, shared by both stores so that `latest`,
/// `list` and `prune` behave identically.
trait Backend {
    /// Snapshot indexes, newest first.
    fn indexes_desc(&self) -> Result<Vec<u64>, SnapshotError>;
    fn sealed_snapshot(&self, index: u64) -> Result<Option<Vec<u8>>, SnapshotError>;
    /// Removes snapshots and makes the removal durable.
    fn remove_snapshots(&self, indexes: &[u64]) -> Result<(), SnapshotError>;
}

fn latest_of(backend: &impl Backend) -> Result<Latest, SnapshotError> {
    let mut latest = Latest::default();
    for index in backend.indexes_desc()? {
        let Some(sealed) = backend.sealed_snapshot(index)? else {
            continue; // removed meanwhile
        };
        match unseal(&snapshot_context(index), &sealed) {
            Ok(bytes) => {
                latest.snapshot = Some((index, bytes.to_vec()));
                break;
            }
            Err(reason) => {
                tracing::warn!(index, %reason, "skipping a damaged snapshot; an older one will be used");
                latest.skipped.push(SkippedSnapshot { index, reason });
            }
        }
    }
    Ok(latest)
}

fn list_of(backend: &impl Backend) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    let mut list = Vec::new();
    for index in backend.indexes_desc()?.into_iter().rev() {
        let Some(sealed) = backend.sealed_snapshot(index)? else {
            continue;
        };
        let valid = unseal(&snapshot_context(index), &sealed).is_ok();
        list.push(SnapshotInfo {
            index,
            bytes: sealed.len().saturating_sub(SEAL_HEADER_BYTES) as u64,
            valid,
        });
    }
    Ok(list)
}

fn prune_of(backend: &impl Backend, keep: usize) -> Result<usize, SnapshotError> {
    if keep == 0 {
        return Err(SnapshotError::KeepZero);
    }
    let mut valid_seen = 0;
    let mut doomed = Vec::new();
    for index in backend.indexes_desc()? {
        if valid_seen >= keep {
            doomed.push(index);
            continue;
        }
        if let Some(sealed) = backend.sealed_snapshot(index)? {
            if unseal(&snapshot_context(index), &sealed).is_ok() {
                valid_seen += 1;
            }
        }
    }
    if !doomed.is_empty() {
        backend.remove_snapshots(&doomed)?;
    }
    Ok(doomed.len())
}

/// Snapshots and metadata in a sled database directory.
pub struct SledSnapshotStore {
    path: PathBuf,
    db: sled::Db,
    snapshots: sled::Tree,
    meta: sled::Tree,
}

impl std::fmt::Debug for SledSnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledSnapshotStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SnapshotError {
    /// Whether the store failed because its disk cannot be written (full,
    /// read-only), and why.
    pub fn unwritable(&self) -> Option<crate::storage::Unwritable> {
        let SnapshotError::Store { source, .. } = self else {
            return None;
        };
        match source.downcast_ref::<sled::Error>() {
            Some(sled::Error::Io(e)) => crate::storage::io_unwritable(e),
            _ => source.downcast_ref::<std::io::Error>().and_then(crate::storage::io_unwritable),
        }
    }
}

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> SnapshotError {
    move |e| SnapshotError::Store {
        op,
        source: Box::new(e),
    }
}

/// How long `SledSnapshotStore::open` waits for sled's file lock.
pub const LOCK_WAIT_MS: u64 = 2_000;

impl SledSnapshotStore {
    /// Opens (or creates) the store in the directory `path`. While sled's
    /// file lock is held it tries again, for at most [`LOCK_WAIT_MS`]: a
    /// process forked between the store's last close and this open (a test
    /// that kills a child process, a backup tool) holds a copy of the lock
    /// until it execs. A store that stays locked (another server on the
    /// same directory) is still refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        let path = path.as_ref().to_path_buf();
        let start = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(&path).open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && start.elapsed() < std::time::Duration::from_millis(LOCK_WAIT_MS) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                r => break r.map_err(sled_err("open"))?,
            }
        };
        let snapshots = db
            .open_tree(SNAPSHOTS_TREE)
            .map_err(sled_err("open tree"))?;
        let meta = db.open_tree(META_TREE).map_err(sled_err("open tree"))?;
        Ok(SledSnapshotStore {
            path,
            db,
            snapshots,
            meta,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tree the node keeps its session tokens in
    /// (`auth::token::TokenStore::keep_in`). Backups do not carry it.
    pub fn sessions(&self) -> Result<sled::Tree, SnapshotError> {
        self.db.open_tree(SESSIONS_TREE).map_err(sled_err("open tree"))
    }

    /// Writes every tree to disk and fsyncs (sled does it only every 500 ms).
    fn flush(&self) -> Result<(), SnapshotError> {
        self.db.flush().map_err(sled_err("flush"))?;
        Ok(())
    }

    /// Overwrites a stored snapshot's value with a damaged copy.
    #[cfg(test)]
    fn damage_snapshot(&self, index: u64) {
        let mut value = self
            .snapshots
            .get(index.to_be_bytes())
            .unwrap()
            .unwrap()
            .to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        self.snapshots.insert(index.to_be_bytes(), value).unwrap();
        self.flush().unwrap();
    }
}

impl Backend for SledSnapshotStore {
    fn indexes_desc(&self) -> Result<Vec<u64>, SnapshotError> {
        let mut indexes = Vec::new();
        for key in self.snapshots.iter().keys().rev() {
            let key = key.map_err(sled_err("read"))?;
            match <[u8; 8]>::try_from(key.as_ref()) {
                Ok(bytes) => indexes.push(u64::from_be_bytes(bytes)),
                Err(_) => {
                    tracing::warn!(key = ?key.as_ref(), "ignoring a snapshot key that is not an index")
                }
            }
        }
        Ok(indexes)
    }

    fn sealed_snapshot(&self, index: u64) -> Result<Option<Vec<u8>>, SnapshotError> {
        Ok(self
            .snapshots
            .get(index.to_be_bytes())
            .map_err(sled_err("read"))?
            .map(|v| v.to_vec()))
    }

    fn remove_snapshots(&self, indexes: &[u64]) -> Result<(), SnapshotError> {
        for index in indexes {
            self.snapshots
                .remove(index.to_be_bytes())
                .map_err(sled_err("remove"))?;
        }
        self.flush()
    }
}

impl SnapshotStore for SledSnapshotStore {
    fn save(&self, index: u64, bytes: &[u8]) -> Result<(), SnapshotError> {
        check_snapshot(bytes)?;
        let sealed = seal(&snapshot_context(index), bytes);
        self.snapshots
            .insert(index.to_be_bytes(), sealed)
            .map_err(sled_err("write"))?;
        self.flush()
    }

    fn latest(&self) -> Result<Latest, SnapshotError> {
        latest_of(self)
    }

    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        list_of(self)
    }

    fn prune(&self, keep: usize) -> Result<usize, SnapshotError> {
        prune_of(self, keep)
    }

    fn put_meta(&self, key: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        check_meta(key, bytes)?;
        self.meta
            .insert(key.as_bytes(), seal(&meta_context(key), bytes))
            .map_err(sled_err("write"))?;
        self.flush()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, SnapshotError> {
        let Some(sealed) = self.meta.get(key.as_bytes()).map_err(sled_err("read"))? else {
            return Ok(None);
        };
        unseal(&meta_context(key), &sealed)
            .map(|bytes| Some(bytes.to_vec()))
            .map_err(|reason| SnapshotError::MetaCorrupt {
                key: key.to_string(),
                reason,
            })
    }
}

/// Snapshots and metadata in memory, sealed as in sled; for tests and the
/// non-durable mode.
#[derive(Debug, Default)]
pub struct MemSnapshotStore {
    snapshots: Mutex<BTreeMap<u64, Vec<u8>>>,
    meta: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemSnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<u8>>> {
        self.snapshots.lock().expect("snapshot map lock poisoned")
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.meta.lock().expect("metadata map lock poisoned")
    }

    /// Flips a bit of a stored snapshot's value.
    #[cfg(test)]
    fn damage_snapshot(&self, index: u64) {
        let mut snapshots = self.snapshots();
        let value = snapshots.get_mut(&index).unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x01;
    }
}

impl Backend for MemSnapshotStore {
    fn indexes_desc(&self) -> Result<Vec<u64>, SnapshotError> {
        Ok(self.snapshots().keys().rev().copied().collect())
    }

    fn sealed_snapshot(&self, index: u64) -> Result<Option<Vec<u8>>, SnapshotError> {
        Ok(self.snapshots().get(&index).cloned())
    }

    fn remove_snapshots(&self, indexes: &[u64]) -> Result<(), SnapshotError> {
        let mut snapshots = self.snapshots();
        for index in indexes {
            snapshots.remove(index);
        }
        Ok(())
    }
}

impl SnapshotStore for MemSnapshotStore {
    fn save(&self, index: u64, bytes: &[u8]) -> Result<(), SnapshotError> {
        check_snapshot(bytes)?;
        self.snapshots()
            .insert(index, seal(&snapshot_context(index), bytes));
        Ok(())
    }

    fn latest(&self) -> Result<Latest, SnapshotError> {
        latest_of(self)
    }

    fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        list_of(self)
    }

    fn prune(&self, keep: usize) -> Result<usize, SnapshotError> {
        prune_of(self, keep)
    }

    fn put_meta(&self, key: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        check_meta(key, bytes)?;
        self.meta()
            .insert(key.to_string(), seal(&meta_context(key), bytes));
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, SnapshotError> {
        let meta = self.meta();
        let Some(sealed) = meta.get(key) else {
            return Ok(None);
        };
        unseal(&meta_context(key), sealed)
            .map(|bytes| Some(bytes.to_vec()))
            .map_err(|reason| SnapshotError::MetaCorrupt {
                key: key.to_string(),
                reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A store error whose cause is a full or read-only disk says so (sled
    /// reports it as its `Io` error); other errors do not.
    #[test]
    fn a_full_or_read_only_disk_is_told_apart_from_other_store_errors() {
        use crate::storage::Unwritable;
        let full = sled_err("open")(sled::Error::Io(std::io::Error::from_raw_os_error(28)));
        assert_eq!(full.unwritable(), Some(Unwritable::Full), "{full}");
        let quota = sled_err("save")(sled::Error::Io(std::io::Error::from_raw_os_error(122)));
        assert_eq!(quota.unwritable(), Some(Unwritable::Full), "{quota}");
        let ro = sled_err("save")(sled::Error::Io(std::io::Error::from_raw_os_error(30)));
        assert_eq!(ro.unwritable(), Some(Unwritable::ReadOnly), "{ro}");
        let denied = sled_err("open")(sled::Error::Io(std::io::Error::from_raw_os_error(13)));
        assert_eq!(denied.unwritable(), None, "{denied}");
        assert_eq!(SnapshotError::KeepZero.unwritable(), None);
        let log_full = crate::storage::LogError::Io { op: "write", path: "x.seg".into(), source: std::io::Error::from_raw_os_error(28) };
        assert_eq!(log_full.unwritable(), Some(Unwritable::Full));
        let log_other = crate::storage::LogError::Io { op: "write", path: "x.seg".into(), source: std::io::Error::other("eio") };
        assert_eq!(log_other.unwritable(), None);
    }

    /// The behaviour every snapshot store must have. `damage` corrupts a
    /// stored snapshot; `reopen` closes the store and opens it again.
    fn conformance_suite<S: SnapshotStore>(
        make: impl Fn() -> S,
        damage: impl Fn(&S, u64),
        reopen: impl Fn(S) -> S,
    ) {
        let store = make();
        assert_eq!(store.latest().unwrap(), Latest::default());
        assert!(store.list().unwrap().is_empty());
        assert_eq!(store.get_meta("vote").unwrap(), None);
        assert_eq!(store.prune(1).unwrap(), 0);

        // Saved out of order; latest is the highest index.
        store.save(5, b"state at 5").unwrap();
        store.save(10, b"state at 10").unwrap();
        store.save(7, b"state at 7").unwrap();
        let latest = store.latest().unwrap();
        assert_eq!(latest.snapshot, Some((10, b"state at 10".to_vec())));
        assert!(latest.skipped.is_empty());
        let indexes: Vec<u64> = store.list().unwrap().iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![5, 7, 10]);
        assert!(store.list().unwrap().iter().all(|s| s.valid));
        assert_eq!(store.list().unwrap()[0].bytes, b"state at 5".len() as u64);

        // Saving the same index again replaces it.
        store.save(10, b"state at 10, again").unwrap();
        assert_eq!(
            store.latest().unwrap().snapshot,
            Some((10, b"state at 10, again".to_vec()))
        );

        // An empty snapshot is a snapshot.
        store.save(1, b"").unwrap();
        store.put_meta("vote", b"term 3, node 2").unwrap();
        store.put_meta("membership", &[0u8; 100]).unwrap();
        store.put_meta("vote", b"term 4, node 1").unwrap();

        let store = reopen(store);
        assert_eq!(
            store.latest().unwrap().snapshot,
            Some((10, b"state at 10, again".to_vec()))
        );
        assert_eq!(
            store.get_meta("vote").unwrap(),
            Some(b"term 4, node 1".to_vec())
        );
        assert_eq!(store.get_meta("membership").unwrap(), Some(vec![0u8; 100]));
        assert_eq!(store.get_meta("absent").unwrap(), None);
        let indexes: Vec<u64> = store.list().unwrap().iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![1, 5, 7, 10]);

        // A damaged newest snapshot is skipped and reported.
        damage(&store, 10);
        let latest = store.latest().unwrap();
        assert_eq!(latest.snapshot, Some((7, b"state at 7".to_vec())));
        assert_eq!(latest.skipped.len(), 1);
        assert_eq!(latest.skipped[0].index, 10);
        assert!(
            latest.skipped[0].reason.contains("checksum"),
            "{:?}",
            latest.skipped
        );
        let list = store.list().unwrap();
        assert!(!list.iter().find(|s| s.index == 10).unwrap().valid);

        // Prune keeps the newest valid snapshots and the damaged newer one.
        assert!(matches!(store.prune(0), Err(SnapshotError::KeepZero)));
        assert_eq!(store.prune(2).unwrap(), 1); // removes 1
        let indexes: Vec<u64> = store.list().unwrap().iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![5, 7, 10]);
        assert_eq!(store.prune(1).unwrap(), 1); // removes 5
        let store = reopen(store);
        let indexes: Vec<u64> = store.list().unwrap().iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![7, 10]);
        assert_eq!(
            store.latest().unwrap().snapshot,
            Some((7, b"state at 7".to_vec()))
        );

        // A new valid snapshot wins again, and prune then drops everything older.
        store.save(12, b"state at 12").unwrap();
        assert_eq!(
            store.latest().unwrap().snapshot,
            Some((12, b"state at 12".to_vec()))
        );
        assert_eq!(store.prune(1).unwrap(), 2);
        let indexes: Vec<u64> = store.list().unwrap().iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![12]);

        // Every snapshot damaged: nothing to load, everything reported.
        damage(&store, 12);
        let latest = store.latest().unwrap();
        assert_eq!(latest.snapshot, None);
        assert_eq!(latest.skipped.len(), 1);

        // Limits.
        let long_key = "k".repeat(META_KEY_BYTES_MAX + 1);
        assert!(matches!(
            store.put_meta(&long_key, b""),
            Err(SnapshotError::MetaKeyTooLong { .. })
        ));
        assert!(matches!(
            store.put_meta("big", &vec![0u8; META_BYTES_MAX + 1]),
            Err(SnapshotError::MetaTooLarge { .. })
        ));
        store.put_meta("edge", &vec![9u8; META_BYTES_MAX]).unwrap();
        assert_eq!(
            store.get_meta("edge").unwrap().unwrap().len(),
            META_BYTES_MAX
        );
    }

    fn temp_path(tag: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::env::temp_dir().join(format!(
            "bourse-snapshot-test-{}-{tag}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }

    #[test]
    fn mem_store_conforms() {
        conformance_suite(
            MemSnapshotStore::new,
            MemSnapshotStore::damage_snapshot,
            |s| s,
        );
    }

    #[test]
    fn sled_store_conforms() {
        let path = temp_path("conformance");
        conformance_suite(
            || SledSnapshotStore::open(&path).unwrap(),
            SledSnapshotStore::damage_snapshot,
            |store| {
                let path = store.path().to_path_buf();
                drop(store);
                // A child process forked by another test (the event log's
                // kill-9 test) may briefly hold a copy of sled's file lock:
                // `open` waits for it.
                SledSnapshotStore::open(&path).unwrap_or_else(|e| panic!("reopen {}: {e}", path.display()))
            },
        );
        std::fs::remove_dir_all(&path).unwrap();
    }

    /// `open` waits for a lock released soon after (as a forked child's
    /// copy is), and refuses one that stays held.
    #[test]
    fn open_waits_for_a_lock_released_soon_and_refuses_one_held() {
        let path = temp_path("lock-wait");
        let held = SledSnapshotStore::open(&path).unwrap();
        held.put_meta("k", b"v").unwrap();
        let started = std::time::Instant::now();
        assert!(SledSnapshotStore::open(&path).is_err(), "a second open of a held store");
        assert!(started.elapsed() >= std::time::Duration::from_millis(LOCK_WAIT_MS));
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let store = SledSnapshotStore::open(&path).expect("opened once the lock is released");
        assert_eq!(store.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
        release.join().unwrap();
        drop(store);
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn damaged_metadata_is_an_error() {
        let store = MemSnapshotStore::new();
        store.put_meta("vote", b"term 1").unwrap();
        let good = store.meta().get("vote").cloned().unwrap();
        // A value moved to another key does not verify there.
        store.meta().insert("other".to_string(), good.clone());
        assert!(matches!(
            store.get_meta("other"),
            Err(SnapshotError::MetaCorrupt { .. })
        ));
        // A flipped bit anywhere is detected.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            store.meta().insert("vote".to_string(), bad);
            assert!(
                matches!(
                    store.get_meta("vote"),
                    Err(SnapshotError::MetaCorrupt { .. })
                ),
                "flip at {at} accepted"
            );
        }
    }

    #[test]
    fn snapshot_checksum_covers_the_index() {
        let sealed = seal(&snapshot_context(3), b"state");
        assert_eq!(unseal(&snapshot_context(3), &sealed), Ok(&b"state"[..]));
        assert!(unseal(&snapshot_context(4), &sealed).is_err());
        assert!(unseal(&snapshot_context(3), &sealed[..10]).is_err());
    }

    #[test]
    fn stores_are_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SledSnapshotStore>();
        assert_send_sync::<MemSnapshotStore>();
        assert_send_sync::<Box<dyn SnapshotStore>>();
    }
}
