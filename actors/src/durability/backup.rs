//! `bourse backup` and `bourse restore`: a node's data directory as one
//! checksummed file, optionally encrypted, and a data directory rebuilt from
//! such a file, to its end or to a point in time.
//!
//! A backup holds the newest valid snapshot and every log batch after it
//! (or the whole log when there is no snapshot), each batch with the hash
//! the log chained it with. Restoring checks every batch against that
//! chain, the file against its SHA-256, and an encrypted file against its
//! authentication tags, before the restored directory is put in place; it
//! starts a new stream epoch (the old one plus one), so clients holding
//! sequence numbers from before the restore resubscribe from snapshots.
//!
//! # File format (version 1)
//!
//! All integers little-endian.
//!
//! ```text
//! header (32 bytes, never encrypted)
//!      0    8  magic "BOURSEBK"
//!      8    4  format version (u32) = 1
//!     12    4  flags (u32): bit 0 = encrypted
//!     16    8  nonce prefix (random; zero when not encrypted)
//!     24    8  reserved, zero
//!
//! plain stream = body || SHA-256(header || body)
//! body
//!      u32 length, then that many bytes of JSON metadata (BackupMeta)
//!      u64 length, then the stored snapshot (0 bytes when there is none)
//!      per log batch: u8 1, u64 index, 32-byte hash, u32 event count N,
//!                     N times (u32 length, event bytes)
//!      u8 0: end of batches
//! ```
//!
//! Without encryption the plain stream follows the header as it is. With
//! encryption (ChaCha20-Poly1305, 256-bit key) it is cut into frames of at
//! most 1 MiB of plaintext, each `u8 last || u32 sealed length || sealed`,
//! sealed with the nonce `nonce prefix || frame number (u32)` and the
//! associated data `header || last`; exactly the final frame has `last` = 1.
//! A changed, reordered, dropped or appended frame fails authentication.
//!
//! The key is 32 bytes written as 64 hex digits, in the environment variable
//! `BOURSE_BACKUP_KEY` or in a key file.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bourse_engine::Exchange;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::envelope::{self, CatalogueEntry, SnapshotHeader};
use super::recover::{check_anchor, Position, RecoverError, REPLAY_READ_BATCHES_MAX};
use super::view::LogView;
use super::{decode_event, log_dir, snapshots_dir};
use crate::storage::log::{
    batch_hash, EventLog, FileLog, FileLogOptions, Hash, LogError, GENESIS_HASH, PAYLOAD_BYTES_MAX,
};
use crate::storage::snapshot::SNAPSHOT_BYTES_MAX;
use crate::storage::{SledSnapshotStore, SnapshotError, SnapshotStore};

pub const BACKUP_MAGIC: [u8; 8] = *b"BOURSEBK";
pub const BACKUP_FORMAT_VERSION: u32 = 1;
pub const BACKUP_HEADER_BYTES: usize = 32;
const FLAG_ENCRYPTED: u32 = 1;
/// Plaintext bytes per encrypted frame.
pub const FRAME_PLAIN_BYTES_MAX: usize = 1 << 20;
const TAG_BYTES: usize = 16;
/// Largest metadata section a reader accepts.
pub const META_BYTES_MAX: usize = 64 << 10;
/// The environment variable holding the backup key (64 hex digits).
pub const KEY_ENV: &str = "BOURSE_BACKUP_KEY";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the backup is damaged or was changed: {0}. It cannot be restored; use another backup"
    )]
    Damaged(String),
    #[error("backup key: {0}")]
    Key(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("snapshot store: {0}")]
    Store(#[from] SnapshotError),
    #[error(transparent)]
    Recover(#[from] RecoverError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A 256-bit ChaCha20-Poly1305 key.
#[derive(Clone)]
pub struct BackupKey([u8; 32]);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

impl BackupKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BackupKey(bytes)
    }

    /// 64 hex digits (surrounding white space ignored).
    pub fn from_hex(s: &str) -> Result<Self, BackupError> {
        let s = s.trim();
        let bytes = hex::decode(s).map_err(|_| BackupError::Key("not hex digits".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            BackupError::Key(format!(
                "{} bytes; a key is 32 bytes (64 hex digits)",
                b.len()
            ))
        })?;
        Ok(BackupKey(bytes))
    }

    /// The key in `BOURSE_BACKUP_KEY`, if set.
    pub fn from_env() -> Result<Option<Self>, BackupError> {
        match std::env::var(KEY_ENV) {
            Ok(s) => Self::from_hex(&s)
                .map(Some)
                .map_err(|e| BackupError::Key(format!("{KEY_ENV}: {e}"))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(e) => Err(BackupError::Key(format!("{KEY_ENV}: {e}"))),
        }
    }

    /// The key in a file (64 hex digits).
    pub fn from_file(path: &Path) -> Result<Self, BackupError> {
        let s = fs::read_to_string(path).map_err(io_err("read key file", path))?;
        Self::from_hex(&s).map_err(|e| BackupError::Key(format!("{}: {e}", path.display())))
    }

    /// A new random key, as 64 hex digits.
    pub fn generate_hex() -> String {
        let mut k = [0u8; 32];
        SystemRandom::new().fill(&mut k).expect("system random");
        hex::encode(k)
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&aead::CHACHA20_POLY1305, &self.0).expect("32-byte key"))
    }
}

/// What a backup holds, as written in its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupMeta {
    pub format: u32,
    /// When the backup was written (microseconds since the Unix epoch).
    pub created_us: u64,
    /// The stream epoch of the node backed up.
    pub epoch: u64,
    /// The snapshot's index, or 0 when the batches start at the log's beginning.
    pub base_index: u64,
    /// Hex hash of batch `base_index` (zeros for 0).
    pub base_hash: String,
    /// Events up to `base_index`.
    pub base_events_total: u64,
    /// Time of the snapshot's last event (0 without a snapshot).
    pub base_last_ts: u64,
    pub last_index: u64,
    pub last_hash: String,
    pub events_total: u64,
    pub encrypted: bool,
}

/// What was written or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub meta: BackupMeta,
    pub bytes: u64,
    /// The state hash at `meta.last_index` (when the backup was replayed).
    pub state_hash: Option<Hash>,
}

// ------------------------------------------------------------ streams

fn header_bytes(encrypted: bool, nonce_prefix: [u8; 8]) -> [u8; BACKUP_HEADER_BYTES] {
    let mut h = [0u8; BACKUP_HEADER_BYTES];
    h[0..8].copy_from_slice(&BACKUP_MAGIC);
    h[8..12].copy_from_slice(&BACKUP_FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(if encrypted { FLAG_ENCRYPTED } else { 0 }).to_le_bytes());
    h[16..24].copy_from_slice(&nonce_prefix);
    h
}

fn nonce(prefix: &[u8; 8], frame: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(prefix);
    n[8..].copy_from_slice(&frame.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

fn frame_aad(header: &[u8; BACKUP_HEADER_BYTES], last: bool) -> [u8; BACKUP_HEADER_BYTES + 1] {
    let mut a = [0u8; BACKUP_HEADER_BYTES + 1];
    a[..BACKUP_HEADER_BYTES].copy_from_slice(header);
    a[BACKUP_HEADER_BYTES] = last as u8;
    a
}

/// Writes the header, then the body (hashed, sealed in frames if a key is given).
struct BackupWriter<W: Write> {
    out: W,
    header: [u8; BACKUP_HEADER_BYTES],
    hasher: digest::Context,
    key: Option<LessSafeKey>,
    nonce_prefix: [u8; 8],
    pending: Vec<u8>,
    frame: u32,
    written: u64,
}

impl<W: Write> BackupWriter<W> {
    fn new(mut out: W, key: Option<&BackupKey>) -> io::Result<Self> {
        let mut nonce_prefix = [0u8; 8];
        if key.is_some() {
            SystemRandom::new()
                .fill(&mut nonce_prefix)
                .map_err(|_| io::Error::other("system random failed"))?;
        }
        let header = header_bytes(key.is_some(), nonce_prefix);
        out.write_all(&header)?;
        let mut hasher = digest::Context::new(&digest::SHA256);
        hasher.update(&header);
        Ok(BackupWriter {
            out,
            header,
            hasher,
            key: key.map(BackupKey::aead),
            nonce_prefix,
            pending: Vec::with_capacity(FRAME_PLAIN_BYTES_MAX),
            frame: 0,
            written: BACKUP_HEADER_BYTES as u64,
        })
    }

    fn body(&mut self, data: &[u8]) -> io::Result<()> {
        self.hasher.update(data);
        self.emit(data)
    }

    fn emit(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.key.is_none() {
            self.written += data.len() as u64;
            return self.out.write_all(data);
        }
        while !data.is_empty() {
            let take = (FRAME_PLAIN_BYTES_MAX - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == FRAME_PLAIN_BYTES_MAX {
                self.seal_frame(false)?;
            }
        }
        Ok(())
    }

    fn seal_frame(&mut self, last: bool) -> io::Result<()> {
        let key = self.key.as_ref().expect("only with a key");
        let mut sealed = std::mem::take(&mut self.pending);
        key.seal_in_place_append_tag(
            nonce(&self.nonce_prefix, self.frame),
            Aad::from(frame_aad(&self.header, last)),
            &mut sealed,
        )
        .map_err(|_| io::Error::other("sealing a backup frame failed"))?;
        self.frame = self
            .frame
            .checked_add(1)
            .expect("backup frame count fits in u32");
        self.out.write_all(&[last as u8])?;
        self.out.write_all(&(sealed.len() as u32).to_le_bytes())?;
        self.out.write_all(&sealed)?;
        self.written += 5 + sealed.len() as u64;
        sealed.clear();
        self.pending = sealed;
        Ok(())
    }

    /// Writes the checksum (and the last frame) and returns the output.
    fn finish(mut self) -> io::Result<(W, u64)> {
        let sum = self.hasher.clone().finish();
        self.emit(sum.as_ref())?;
        if self.key.is_some() {
            self.seal_frame(true)?;
        }
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// Reads and checks the header, then hands out the body (opening frames if
/// encrypted) while hashing it.
struct BackupReader<R: Read> {
    inp: R,
    header: [u8; BACKUP_HEADER_BYTES],
    hasher: digest::Context,
    key: Option<LessSafeKey>,
    encrypted: bool,
    nonce_prefix: [u8; 8],
    buf: Vec<u8>,
    at: usize,
    frame: u32,
    last_seen: bool,
    /// Offset in the plain stream, for messages.
    offset: u64,
}

fn damaged(msg: impl Into<String>) -> BackupError {
    BackupError::Damaged(msg.into())
}

impl<R: Read> BackupReader<R> {
    fn new(mut inp: R, key: Option<&BackupKey>) -> Result<Self, BackupError> {
        let mut header = [0u8; BACKUP_HEADER_BYTES];
        inp.read_exact(&mut header)
            .map_err(|_| damaged("the file is shorter than a backup header"))?;
        if header[0..8] != BACKUP_MAGIC {
            return Err(damaged("not a Bourse backup (bad magic)"));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != BACKUP_FORMAT_VERSION {
            return Err(BackupError::Refused(format!(
                "backup format version {version} is not supported (this build reads {BACKUP_FORMAT_VERSION})"
            )));
        }
        let flags = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if flags & !FLAG_ENCRYPTED != 0 || header[24..32] != [0u8; 8] {
            return Err(damaged(
                "unknown flags or non-zero reserved bytes in the header",
            ));
        }
        let encrypted = flags & FLAG_ENCRYPTED != 0;
        if encrypted && key.is_none() {
            return Err(BackupError::Key(format!(
                "the backup is encrypted: give its key in {KEY_ENV} or with --key-file"
            )));
        }
        let mut nonce_prefix = [0u8; 8];
        nonce_prefix.copy_from_slice(&header[16..24]);
        let mut hasher = digest::Context::new(&digest::SHA256);
        hasher.update(&header);
        Ok(BackupReader {
            inp,
            header,
            hasher,
            key: if encrypted {
                key.map(BackupKey::aead)
            } else {
                None
            },
            encrypted,
            nonce_prefix,
            buf: Vec::new(),
            at: 0,
            frame: 0,
            last_seen: false,
            offset: 0,
        })
    }

    fn next_frame(&mut self) -> Result<(), BackupError> {
        if self.last_seen {
            return Err(damaged(format!(
                "the data ends early (byte {} of the contents)",
                self.offset
            )));
        }
        let mut head = [0u8; 5];
        self.inp.read_exact(&mut head).map_err(|_| {
            damaged(format!(
                "the file ends inside frame {} (truncated?)",
                self.frame
            ))
        })?;
        let last = match head[0] {
            0 => false,
            1 => true,
            _ => return Err(damaged(format!("frame {} has a bad marker", self.frame))),
        };
        let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
        if !(TAG_BYTES..=FRAME_PLAIN_BYTES_MAX + TAG_BYTES).contains(&len) {
            return Err(damaged(format!(
                "frame {} has an impossible length {len}",
                self.frame
            )));
        }
        self.buf.resize(len, 0);
        self.inp.read_exact(&mut self.buf).map_err(|_| {
            damaged(format!(
                "the file ends inside frame {} (truncated?)",
                self.frame
            ))
        })?;
        let key = self.key.as_ref().expect("encrypted reader has a key");
        let plain_len = key
            .open_in_place(
                nonce(&self.nonce_prefix, self.frame),
                Aad::from(frame_aad(&self.header, last)),
                &mut self.buf,
            )
            .map_err(|_| {
                BackupError::Damaged(format!(
                    "frame {} fails authentication (wrong key, or the file was changed)",
                    self.frame
                ))
            })?
            .len();
        self.buf.truncate(plain_len);
        self.at = 0;
        self.frame += 1;
        self.last_seen = last;
        Ok(())
    }

    /// Reads exactly `out.len()` bytes of the plain stream.
    fn raw(&mut self, out: &mut [u8]) -> Result<(), BackupError> {
        if !self.encrypted {
            self.inp.read_exact(out).map_err(|_| {
                damaged(format!(
                    "the file ends early (byte {} of the contents; truncated?)",
                    self.offset
                ))
            })?;
            self.offset += out.len() as u64;
            return Ok(());
        }
        let mut filled = 0;
        while filled < out.len() {
            if self.at == self.buf.len() {
                self.next_frame()?;
                continue;
            }
            let n = (self.buf.len() - self.at).min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&self.buf[self.at..self.at + n]);
            self.at += n;
            filled += n;
        }
        self.offset += out.len() as u64;
        Ok(())
    }

    fn body(&mut self, out: &mut [u8]) -> Result<(), BackupError> {
        self.raw(out)?;
        self.hasher.update(out);
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, BackupError> {
        let mut b = [0u8; 1];
        self.body(&mut b)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> Result<u32, BackupError> {
        let mut b = [0u8; 4];
        self.body(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        let mut b = [0u8; 8];
        self.body(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self, len: usize) -> Result<Vec<u8>, BackupError> {
        let mut v = vec![0u8; len];
        self.body(&mut v)?;
        Ok(v)
    }

    /// Checks the SHA-256 after the body and that nothing follows it.
    fn finish(mut self) -> Result<(), BackupError> {
        let computed = self.hasher.clone().finish();
        let mut stored = [0u8; 32];
        self.raw(&mut stored)?;
        if stored.as_slice() != computed.as_ref() {
            return Err(damaged("its SHA-256 checksum does not match its contents"));
        }
        if self.encrypted && (!self.last_seen || self.at != self.buf.len()) {
            return Err(damaged(
                "data follows the checksum, or the final frame is missing",
            ));
        }
        let mut probe = [0u8; 1];
        match self.inp.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(damaged("bytes follow the end of the backup")),
            Err(e) => Err(damaged(format!("reading past the end: {e}"))),
        }
    }
}

/// One log batch as a backup holds it.
struct BackupEntry {
    index: u64,
    hash: Hash,
    events: Vec<Vec<u8>>,
}

fn write_entry<W: Write>(
    w: &mut BackupWriter<W>,
    index: u64,
    hash: &Hash,
    events: &[Vec<u8>],
) -> io::Result<()> {
    let mut head = Vec::with_capacity(1 + 8 + 32 + 4);
    head.push(1u8);
    head.extend_from_slice(&index.to_le_bytes());
    head.extend_from_slice(hash);
    head.extend_from_slice(&(events.len() as u32).to_le_bytes());
    w.body(&head)?;
    for e in events {
        w.body(&(e.len() as u32).to_le_bytes())?;
        w.body(e)?;
    }
    Ok(())
}

fn read_entry<R: Read>(r: &mut BackupReader<R>) -> Result<Option<BackupEntry>, BackupError> {
    match r.u8()? {
        0 => return Ok(None),
        1 => {}
        t => {
            return Err(damaged(format!(
                "unknown record tag {t} at byte {}",
                r.offset - 1
            )))
        }
    }
    let index = r.u64()?;
    let mut hash = [0u8; 32];
    r.body(&mut hash)?;
    let n = r.u32()? as usize;
    if n > PAYLOAD_BYTES_MAX / 4 {
        return Err(damaged(format!("batch {index} claims {n} events")));
    }
    let mut events = Vec::with_capacity(n);
    let mut total = 0usize;
    for _ in 0..n {
        let len = r.u32()? as usize;
        total += 4 + len;
        if total > PAYLOAD_BYTES_MAX {
            return Err(damaged(format!(
                "batch {index} is larger than a log batch can be"
            )));
        }
        events.push(r.bytes(len)?);
    }
    Ok(Some(BackupEntry {
        index,
        hash,
        events,
    }))
}

/// A backup's snapshot: its header, its state, and its stored bytes.
type BackupSnapshot = (SnapshotHeader, Exchange, Vec<u8>);

/// The metadata and snapshot at the start of a backup.
fn read_head<R: Read>(
    r: &mut BackupReader<R>,
) -> Result<(BackupMeta, Option<BackupSnapshot>), BackupError> {
    let len = r.u32()? as usize;
    if len > META_BYTES_MAX {
        return Err(damaged(format!("metadata of {len} bytes")));
    }
    let meta: BackupMeta =
        serde_json::from_slice(&r.bytes(len)?).map_err(|e| damaged(format!("metadata: {e}")))?;
    if meta.format != BACKUP_FORMAT_VERSION {
        return Err(damaged(format!("metadata names format {}", meta.format)));
    }
    let snap_len = r.u64()?;
    if snap_len > SNAPSHOT_BYTES_MAX as u64 {
        return Err(damaged(format!("a snapshot of {snap_len} bytes")));
    }
    let snapshot = if snap_len == 0 {
        if meta.base_index != 0 {
            return Err(damaged(
                "batches start after a snapshot the backup does not hold",
            ));
        }
        None
    } else {
        let bytes = r.bytes(snap_len as usize)?;
        let (h, state) =
            envelope::decode(&bytes).map_err(|e| damaged(format!("its snapshot: {e}")))?;
        if h.index != meta.base_index || hex::encode(h.hash) != meta.base_hash {
            return Err(damaged("its snapshot is not the one its metadata names"));
        }
        Some((h, state, bytes))
    };
    Ok((meta, snapshot))
}

fn parse_hash(s: &str) -> Result<Hash, BackupError> {
    hex::decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| damaged(format!("bad hash {s:?} in metadata")))
}

// ------------------------------------------------------------ backup

/// Writes a backup of the stopped node in `data_dir` to `out` (through a
/// temporary file beside it, renamed into place once complete and synced).
pub fn backup(
    data_dir: &Path,
    out: &Path,
    key: Option<&BackupKey>,
) -> Result<BackupSummary, BackupError> {
    let store_dir = snapshots_dir(data_dir);
    let logs = log_dir(data_dir);
    if !logs.is_dir() {
        return Err(BackupError::Refused(format!(
            "{} holds no event log",
            data_dir.display()
        )));
    }
    let store = open_store_stopped(&store_dir)?;
    let view = LogView::open(&logs)?;
    let log = view.log();
    let latest = store.latest()?;
    for s in &latest.skipped {
        tracing::warn!(index = s.index, reason = %s.reason, "passing over a damaged snapshot");
    }
    let (snapshot, base) = match latest.snapshot {
        Some((index, bytes)) => {
            let (h, _) = envelope::decode(&bytes).map_err(|e| {
                BackupError::Refused(format!(
                    "the snapshot at batch {index} does not decode: {e}"
                ))
            })?;
            check_anchor(log, &h)?;
            (Some(bytes), Position::from(h))
        }
        None if log.first_index() > 1 => {
            return Err(RecoverError::Inconsistent(format!(
                "the event log begins at batch {} but no valid snapshot is stored",
                log.first_index()
            ))
            .into())
        }
        None => (None, Position::GENESIS),
    };
    let epoch = envelope::read_epoch(&store)?.unwrap_or(envelope::EPOCH_FIRST);
    drop(store);

    let tmp = out.with_file_name(format!(
        ".{}.partial",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("backup")
    ));
    let file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    let result = (|| -> Result<BackupSummary, BackupError> {
        let mut w = BackupWriter::new(BufWriter::with_capacity(1 << 20, file), key)
            .map_err(io_err("write", &tmp))?;
        let last_index = log.last_index();
        // The metadata needs the event count, known only after a pass over
        // the batches; count first (a read of the page-cached log).
        let mut events_total = base.events_total;
        let mut at = base.index;
        while at < last_index {
            let to = last_index.min(at + REPLAY_READ_BATCHES_MAX);
            for e in log.read(at + 1..=to)? {
                events_total += e.events.len() as u64;
            }
            at = to;
        }
        let meta = BackupMeta {
            format: BACKUP_FORMAT_VERSION,
            created_us: crate::reply::now_us(),
            epoch,
            base_index: base.index,
            base_hash: hex::encode(base.hash),
            base_events_total: base.events_total,
            base_last_ts: base.last_ts,
            last_index,
            last_hash: hex::encode(log.last_hash()),
            events_total,
            encrypted: key.is_some(),
        };
        let meta_bytes = serde_json::to_vec(&meta).expect("metadata encodes");
        let wr = io_err("write", &tmp);
        (|| -> io::Result<()> {
            w.body(&(meta_bytes.len() as u32).to_le_bytes())?;
            w.body(&meta_bytes)?;
            let snap = snapshot.as_deref().unwrap_or(&[]);
            w.body(&(snap.len() as u64).to_le_bytes())?;
            w.body(snap)
        })()
        .map_err(wr)?;
        let mut at = base.index;
        while at < last_index {
            let to = last_index.min(at + REPLAY_READ_BATCHES_MAX);
            for e in log.read(at + 1..=to)? {
                write_entry(&mut w, e.index, &e.hash, &e.events).map_err(io_err("write", &tmp))?;
            }
            at = to;
        }
        w.body(&[0u8]).map_err(io_err("write", &tmp))?;
        let (buf, bytes) = w.finish().map_err(io_err("write", &tmp))?;
        let file = buf.into_inner().map_err(|e| BackupError::Io {
            op: "write",
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        Ok(BackupSummary {
            meta,
            bytes,
            state_hash: None,
        })
    })();
    match result {
        Ok(summary) => {
            fs::rename(&tmp, out).map_err(io_err("rename", &tmp))?;
            sync_parent(out)?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens the snapshot store of a node that must be stopped (sled allows one
/// process at a time).
fn open_store_stopped(dir: &Path) -> Result<SledSnapshotStore, BackupError> {
    if !dir.is_dir() {
        return Err(BackupError::Refused(format!(
            "{} holds no snapshot store",
            dir.display()
        )));
    }
    SledSnapshotStore::open(dir).map_err(|e| {
        BackupError::Refused(format!(
            "cannot open the snapshot store {} ({e}); if a bourse server is running on this data \
             directory, stop it first: backups are taken from a stopped node",
            dir.display()
        ))
    })
}

fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", &parent))
}

// ------------------------------------------------------------ verify

/// Reads a whole backup: checks its checksum (or frames), its hash chain,
/// and replays it; returns its metadata and the final state hash.
pub fn verify_backup(file: &Path, key: Option<&BackupKey>) -> Result<BackupSummary, BackupError> {
    let f = File::open(file).map_err(io_err("open", file))?;
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = BackupReader::new(BufReader::with_capacity(1 << 20, f), key)?;
    let (meta, snapshot) = read_head(&mut r)?;
    let (mut state, mut pos) = match snapshot {
        Some((h, state, _)) => (state, Position::from(h)),
        None => (Exchange::new(), Position::GENESIS),
    };
    while let Some(entry) = read_entry(&mut r)? {
        check_entry(&pos, &entry)?;
        apply_entry(&mut state, &mut pos, &entry)?;
    }
    r.finish()?;
    check_end(&meta, &pos)?;
    Ok(BackupSummary {
        meta,
        bytes,
        state_hash: Some(state.state_hash()),
    })
}

fn check_entry(pos: &Position, entry: &BackupEntry) -> Result<(), BackupError> {
    if entry.index != pos.index + 1 {
        return Err(damaged(format!(
            "batch {} follows batch {}",
            entry.index, pos.index
        )));
    }
    if batch_hash(&pos.hash, entry.index, &entry.events) != entry.hash {
        return Err(damaged(format!(
            "batch {} does not match its hash (hash chain broken)",
            entry.index
        )));
    }
    Ok(())
}

fn apply_entry(
    state: &mut Exchange,
    pos: &mut Position,
    entry: &BackupEntry,
) -> Result<Vec<bourse_engine::Event>, BackupError> {
    let events = entry
        .events
        .iter()
        .map(|b| {
            decode_event(b).map_err(|reason| RecoverError::Decode {
                index: entry.index,
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for e in &events {
        state.apply(e, None);
    }
    pos.index = entry.index;
    pos.hash = entry.hash;
    pos.events_total += events.len() as u64;
    if let Some(e) = events.last() {
        pos.last_ts = e.ts;
    }
    Ok(events)
}

fn check_end(meta: &BackupMeta, pos: &Position) -> Result<(), BackupError> {
    if pos.index != meta.last_index || hex::encode(pos.hash) != meta.last_hash {
        return Err(damaged(format!(
            "its batches end at {} but its metadata says {}",
            pos.index, meta.last_index
        )));
    }
    if pos.events_total != meta.events_total {
        return Err(damaged("its event count differs from its metadata"));
    }
    Ok(())
}

// ------------------------------------------------------------ restore

/// How far a restore replays the backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Every batch.
    End,
    /// Batches up to and including this index.
    Index(u64),
    /// Batches whose events all happened at or before this time
    /// (microseconds since the Unix epoch); the first batch with a later
    /// event, and everything after it, is left out.
    Time(u64),
}

/// What a restore rebuilt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    pub meta: BackupMeta,
    /// The last batch of the restored log.
    pub position: Position,
    pub state_hash: Hash,
    /// The new stream epoch.
    pub epoch: u64,
    /// Batches of the backup left out by `until`.
    pub batches_left_out: u64,
}

/// Rebuilds the data directory `data_dir` (which must hold no log or
/// snapshots yet) from the backup `file`, up to `until`.
pub fn restore(
    file: &Path,
    key: Option<&BackupKey>,
    data_dir: &Path,
    until: Until,
) -> Result<RestoreSummary, BackupError> {
    let (logs, snaps) = (log_dir(data_dir), snapshots_dir(data_dir));
    for d in [&logs, &snaps] {
        if d.exists()
            && fs::read_dir(d)
                .map(|mut r| r.next().is_some())
                .unwrap_or(true)
        {
            return Err(BackupError::Refused(format!(
                "{} already exists: restore into a new or empty data directory",
                d.display()
            )));
        }
    }
    let f = File::open(file).map_err(io_err("open", file))?;
    let mut r = BackupReader::new(BufReader::with_capacity(1 << 20, f), key)?;
    let (meta, snapshot) = read_head(&mut r)?;
    let base_hash = parse_hash(&meta.base_hash)?;
    match until {
        Until::Index(n) if n < meta.base_index => {
            return Err(BackupError::Refused(format!(
                "the backup starts from a snapshot at batch {}; it cannot restore to batch {n}",
                meta.base_index
            )))
        }
        Until::Index(n) if n > meta.last_index => {
            return Err(BackupError::Refused(format!(
                "the backup ends at batch {}; it cannot restore to batch {n}",
                meta.last_index
            )))
        }
        Until::Time(t) if meta.base_index > 0 && meta.base_last_ts > t => {
            return Err(BackupError::Refused(format!(
                "the backup starts from a snapshot taken at {}; it cannot restore to {}",
                super::timefmt::format_us(meta.base_last_ts),
                super::timefmt::format_us(t)
            )))
        }
        _ => {}
    }

    fs::create_dir_all(data_dir).map_err(io_err("create directory", data_dir))?;
    let staging = data_dir.join(format!(".restore-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let result = (|| -> Result<RestoreSummary, BackupError> {
        let (mut log, _) = FileLog::open(staging.join(super::LOG_DIR), FileLogOptions::default())?;
        let (mut state, mut pos, snapshot_bytes) = match snapshot {
            Some((h, state, bytes)) => {
                log.reset_to(h.index, h.hash)?;
                (state, Position::from(h), Some(bytes))
            }
            None => (Exchange::new(), Position::GENESIS, None),
        };
        debug_assert_eq!(
            pos.hash,
            if meta.base_index == 0 {
                GENESIS_HASH
            } else {
                base_hash
            }
        );
        // The chain is followed to the end of the file even past `until`,
        // so a damaged backup is refused whatever point is asked for.
        let mut chain = pos;
        let mut including = true;
        let mut left_out = 0u64;
        while let Some(entry) = read_entry(&mut r)? {
            check_entry(&chain, &entry)?;
            chain.index = entry.index;
            chain.hash = entry.hash;
            chain.events_total += entry.events.len() as u64;
            if including {
                including = match until {
                    Until::End => true,
                    Until::Index(n) => entry.index <= n,
                    Until::Time(t) => {
                        let mut all_before = true;
                        for b in &entry.events {
                            let e = decode_event(b).map_err(|reason| RecoverError::Decode {
                                index: entry.index,
                                reason,
                            })?;
                            all_before &= e.ts <= t;
                        }
                        all_before
                    }
                };
            }
            if !including {
                left_out += 1;
                continue;
            }
            apply_entry(&mut state, &mut pos, &entry)?;
            let index = log.append(&entry.events)?;
            assert_eq!(
                index, entry.index,
                "a restored log keeps the backup's indexes"
            );
        }
        r.finish()?;
        check_end(&meta, &chain)?;
        log.sync()?;
        assert_eq!(
            log.last_hash(),
            pos.hash,
            "the restored log chains as the original did"
        );
        drop(log);

        let epoch = meta.epoch + 1;
        let store = SledSnapshotStore::open(staging.join(super::SNAPSHOTS_DIR))?;
        if let Some(bytes) = snapshot_bytes {
            store.save(meta.base_index, &bytes)?;
            let h = envelope::decode_header(&bytes).map_err(damaged)?;
            envelope::write_catalogue(&store, &[CatalogueEntry::from(&h)])?;
        }
        envelope::write_epoch(&store, epoch)?;
        drop(store);
        Ok(RestoreSummary {
            meta: meta.clone(),
            position: pos,
            state_hash: state.state_hash(),
            epoch,
            batches_left_out: left_out,
        })
    })();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    for (name, to) in [(super::LOG_DIR, &logs), (super::SNAPSHOTS_DIR, &snaps)] {
        if to.exists() {
            fs::remove_dir(to).map_err(io_err("remove empty directory", to))?;
        }
        let from = staging.join(name);
        fs::rename(&from, to).map_err(io_err("rename", &from))?;
    }
    fs::remove_dir_all(&staging).map_err(io_err("remove", &staging))?;
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", data_dir))?;
    Ok(summary)
}
