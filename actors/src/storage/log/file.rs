//! The event log in a directory of segment files: appending and syncing
//! batches, rolling segments, truncating and purging, the recovery scan run
//! on open (which cuts a torn tail and refuses corruption), and [`verify`],
//! the read-only check behind `bourse verify`. The byte layout is in the
//! parent module's documentation and in `format`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{
    self, decode_segment_header, encode_record, encode_segment_header, hash_payload,
    parse_segment_file_name, payload_events, read_record, read_u32, read_u64, segment_file_name,
    summarize_payload, RecordRead, SegmentHeader, PAYLOAD_BYTES_MAX, PAYLOAD_FIXED_BYTES,
    RECORD_BYTES_MIN, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_TMP_SUFFIX,
};
use super::{check_batch, check_range, Corruption, Entry, EventLog, Hash, LogError, GENESIS_HASH};

/// Name of the lock file held while a process has the log open.
const LOCK_FILE: &str = "LOCK";

/// Settings of a file log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLogOptions {
    /// A segment is closed and a new one started when the next record would
    /// take it past this size. Smaller segments let `purge_before` free
    /// space sooner; larger ones mean fewer files. A single record larger
    /// than this gets a segment of its own.
    pub segment_bytes_max: u64,
}

/// 64 MiB: an open scans a segment in one read, and a purge frees space in
/// steps of this size.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;

impl Default for FileLogOptions {
    fn default() -> Self {
        FileLogOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
        }
    }
}

/// What a crash left unfinished at the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Byte offset of the first incomplete or damaged record.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// The index the first dropped record would have had.
    pub first_lost_index: u64,
    pub reason: String,
}

/// What [`FileLog::open`] found and did; the caller logs it (see `Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub dir: PathBuf,
    pub segments: usize,
    pub first_index: u64,
    pub last_index: u64,
    /// The torn tail that was cut off, if any. Those batches were never
    /// synced and so never acknowledged.
    pub torn_tail: Option<TornTail>,
    /// Segments being created when the process stopped (`*.seg.tmp`), removed.
    pub stray_files_removed: Vec<PathBuf>,
    /// True if the directory held no log and a new one was started.
    pub created: bool,
}

impl Recovery {
    /// Byte offset at which a torn tail was cut off, if one was.
    pub fn torn_tail_truncated_at(&self) -> Option<u64> {
        self.torn_tail.as_ref().map(|t| t.offset)
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event log {}: {} batches {}..={} in {} segment(s)",
            self.dir.display(),
            if self.created { "created," } else { "opened," },
            self.first_index,
            self.last_index,
            self.segments
        )?;
        if let Some(t) = &self.torn_tail {
            write!(
                f,
                "; torn tail cut off at byte {} of {} ({} bytes from batch {} on: {}); \
                 those batches were never synced, so never acknowledged",
                t.offset,
                t.segment.display(),
                t.bytes,
                t.first_lost_index,
                t.reason
            )?;
        }
        if !self.stray_files_removed.is_empty() {
            write!(
                f,
                "; removed {} unfinished segment file(s)",
                self.stray_files_removed.len()
            )?;
        }
        Ok(())
    }
}

/// A log that [`verify`] found intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub segments: usize,
    pub first_index: u64,
    pub last_index: u64,
    pub batches: u64,
    pub events: u64,
    pub bytes: u64,
    /// Hash of the last batch (or of the base the log starts after).
    pub last_hash: Hash,
    /// An unfinished last record left by a crash; opening the log cuts it off.
    pub torn_tail: Option<TornTail>,
    /// `*.seg.tmp` files: segments whose creation was interrupted.
    pub stray_files: Vec<PathBuf>,
}

/// The first damage [`verify`] found. Batches before `first_bad_index` are intact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "event log verification failed at batch index {first_bad_index} (segment {}, byte offset \
     {offset}): {reason}. Batches before {first_bad_index} are intact. Restore this node from a \
     backup (`bourse restore`) or, in a cluster, rebuild it from a healthy peer",
    segment.display()
)]
pub struct VerifyError {
    pub first_bad_index: u64,
    pub segment: PathBuf,
    pub offset: u64,
    pub reason: String,
}

/// Checks every segment of the log in `dir` (CRCs, index continuity, the hash
/// chain) without changing anything.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, VerifyError> {
    let dir = dir.as_ref();
    let scan = scan(dir).map_err(|e| VerifyError {
        first_bad_index: e.index,
        segment: e.path,
        offset: 0,
        reason: format!("cannot {}: {}", e.op, e.source),
    })?;
    let mut torn_tail = None;
    if let Some(damage) = scan.damage {
        if !damage.torn {
            return Err(VerifyError {
                first_bad_index: damage.index,
                segment: damage.segment,
                offset: damage.offset,
                reason: damage.reason,
            });
        }
        torn_tail = Some(damage.into_torn_tail());
    }
    let first_index = scan.segments.first().map_or(1, |s| s.first_index);
    let last_index = scan.segments.last().map_or(0, |s| s.next_index() - 1);
    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        segments: scan.segments.len(),
        first_index,
        last_index,
        batches: scan.segments.iter().map(|s| s.offsets.len() as u64).sum(),
        events: scan.events,
        bytes: scan.bytes,
        last_hash: scan.last_hash,
        torn_tail,
        stray_files: scan.tmp_files,
    })
}

/// One segment file as held in memory: where its records start.
#[derive(Debug)]
struct Segment {
    first_index: u64,
    /// Hash of batch `first_index - 1`, from the header.
    base_hash: Hash,
    path: PathBuf,
    /// Byte offset of each record; record `first_index + i` is at `offsets[i]`.
    offsets: Vec<u64>,
    /// End of the last whole record (the file length once recovered).
    end: u64,
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }

    fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// The event log kept in segment files; see the parent module for the format.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    options: FileLogOptions,
    /// In index order; never empty. Only the last one is written to.
    segments: Vec<Segment>,
    /// The last segment, open for reading and writing.
    active: File,
    last_hash: Hash,
    /// Records were written to `active` since its last `fdatasync`.
    unsynced: bool,
    /// Set when a write, sync or file operation failed half way: what is on
    /// disk is then unknown, and only a restart (which recovers from disk)
    /// makes the log usable again.
    poisoned: Option<String>,
    /// Reused buffer for encoding one record.
    encode_buf: Vec<u8>,
    /// Held for the log's lifetime; the flock is released when it closes.
    _lock: File,
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, checks it from end to end, and
    /// cuts off a torn tail. Corruption is an error naming the segment, byte
    /// offset and batch index.
    pub fn open(
        dir: impl AsRef<Path>,
        options: FileLogOptions,
    ) -> Result<(FileLog, Recovery), LogError> {
        assert!(
            options.segment_bytes_max > (SEGMENT_HEADER_BYTES + RECORD_BYTES_MIN) as u64,
            "segment_bytes_max must leave room for a header and a record"
        );
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let lock = lock_dir(&dir)?;

        let mut stray_files_removed = Vec::new();
        let mut dir_changed = false;
        let Listing {
            segments: mut names,
            tmp_files,
        } = list_dir(&dir).map_err(|e| LogError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        if names.is_empty() {
            // A `.seg.tmp` with a whole header and no segment beside it is the
            // new first segment of a `reset_to` (or of a new log) that was
            // interrupted after the old segments were gone: install it.
            if let Some((first_index, tmp)) = tmp_files
                .iter()
                .filter_map(|tmp| whole_tmp_segment(tmp).map(|i| (i, tmp.clone())))
                .max()
            {
                let path = dir.join(segment_file_name(first_index));
                fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
                names.push((first_index, path));
                dir_changed = true;
            }
        }
        for tmp in tmp_files {
            if tmp.exists() {
                fs::remove_file(&tmp).map_err(io_err("remove", &tmp))?;
                stray_files_removed.push(tmp);
                dir_changed = true;
            }
        }
        let created = names.is_empty();
        if created {
            create_segment(&dir, 1, GENESIS_HASH)?;
            dir_changed = true;
        }
        if dir_changed {
            sync_dir(&dir)?;
        }

        let scan = scan(&dir).map_err(|e| LogError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        let segments = scan.segments;
        let mut torn_tail = None;
        if let Some(damage) = scan.damage {
            if !damage.torn {
                return Err(Corruption {
                    segment: damage.segment,
                    offset: damage.offset,
                    index: damage.index,
                    reason: damage.reason,
                }
                .into());
            }
            let file = open_rw(&damage.segment)?;
            file.set_len(damage.offset)
                .map_err(io_err("truncate torn tail of", &damage.segment))?;
            file.sync_data()
                .map_err(io_err("fdatasync", &damage.segment))?;
            torn_tail = Some(damage.into_torn_tail());
        }
        let last = segments.last().expect("a log has at least one segment");
        let active = open_rw(&last.path)?;
        let log = FileLog {
            dir: dir.clone(),
            options,
            segments,
            active,
            last_hash: scan.last_hash,
            unsynced: false,
            poisoned: None,
            encode_buf: Vec::new(),
            _lock: lock,
        };
        let recovery = Recovery {
            dir,
            segments: log.segments.len(),
            first_index: log.first_index(),
            last_index: log.last_index(),
            torn_tail,
            stray_files_removed,
            created,
        };
        Ok((log, recovery))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> FileLogOptions {
        self.options
    }

    /// Number of segment files the log spans.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn check_usable(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(cause) => Err(LogError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the log unusable and passes the error on.
    fn poison(&mut self, err: LogError) -> LogError {
        self.poisoned = Some(err.to_string());
        err
    }

    fn active_path(&self) -> &Path {
        &self.segments.last().expect("never empty").path
    }

    fn sync_active(&mut self) -> Result<(), LogError> {
        if self.unsynced {
            if let Err(e) = self.active.sync_data() {
                let err = io_err("fdatasync", self.active_path())(e);
                return Err(self.poison(err));
            }
            self.unsynced = false;
        }
        Ok(())
    }

    /// Closes the active segment and starts the next. The active segment is
    /// made durable first, so that only the last segment can ever have a
    /// torn tail.
    fn roll(&mut self) -> Result<(), LogError> {
        self.sync_active()?;
        let first_index = self.next_index();
        let (file, path) = create_segment(&self.dir, first_index, self.last_hash)?;
        self.segments.push(Segment {
            first_index,
            base_hash: self.last_hash,
            path,
            offsets: Vec::new(),
            end: SEGMENT_HEADER_BYTES as u64,
        });
        self.active = file;
        Ok(())
    }

    fn next_index(&self) -> u64 {
        self.segments.last().expect("never empty").next_index()
    }

    /// Reads and checks the records `from..=to` (positions in segment `pos`).
    fn read_segment(
        &self,
        pos: usize,
        from: usize,
        to: usize,
        prev_hash: &mut Option<Hash>,
        out: &mut Vec<Entry>,
    ) -> Result<(), LogError> {
        let seg = &self.segments[pos];
        let start = seg.offsets[from];
        let end = seg.offsets.get(to + 1).copied().unwrap_or(seg.end);
        let mut buf = vec![0u8; (end - start) as usize];
        let opened;
        let file = if pos + 1 == self.segments.len() {
            &self.active
        } else {
            opened = File::open(&seg.path).map_err(io_err("open", &seg.path))?;
            &opened
        };
        file.read_exact_at(&mut buf, start)
            .map_err(io_err("read", &seg.path))?;
        for i in from..=to {
            let index = seg.first_index + i as u64;
            let offset = seg.offsets[i];
            let corrupt = |reason: String| Corruption {
                segment: seg.path.clone(),
                offset,
                index,
                reason: format!("{reason} (the record changed on disk after it was checked)"),
            };
            let at = (offset - start) as usize;
            let payload = match read_record(&buf[at..]) {
                RecordRead::Whole { payload, .. } => payload,
                bad => return Err(corrupt(bad.describe()).into()),
            };
            let summary = summarize_payload(payload).map_err(corrupt)?;
            if summary.index != index {
                return Err(corrupt(format!("record holds index {}", summary.index)).into());
            }
            let expected_prev = match prev_hash {
                Some(hash) => *hash,
                None if i == 0 => seg.base_hash,
                None => summary.prev_hash, // first batch read: nothing read before it to compare
            };
            if summary.prev_hash != expected_prev {
                return Err(corrupt("hash chain broken".to_string()).into());
            }
            let hash = hash_payload(payload);
            out.push(Entry {
                index,
                prev_hash: summary.prev_hash,
                hash,
                events: payload_events(payload, summary.event_count),
            });
            *prev_hash = Some(hash);
        }
        Ok(())
    }
}

impl EventLog for FileLog {
    fn append(&mut self, batch: &[Vec<u8>]) -> Result<u64, LogError> {
        self.check_usable()?;
        let payload_bytes = check_batch(batch)?;
        let record_bytes = (RECORD_HEADER_BYTES + payload_bytes) as u64;
        let seg = self.segments.last().expect("never empty");
        if !seg.is_empty() && seg.end + record_bytes > self.options.segment_bytes_max {
            self.roll()?;
        }
        let index = self.next_index();
        assert!(index < u64::MAX, "log index overflow");
        self.encode_buf.clear();
        let hash = encode_record(index, &self.last_hash, batch, &mut self.encode_buf);
        // Check the record before it is written, as a reader will check it.
        debug_assert!(matches!(
            read_record(&self.encode_buf),
            RecordRead::Whole { record_bytes: n, payload }
                if n == self.encode_buf.len() && format::payload_index(payload) == index
        ));
        let seg = self.segments.last_mut().expect("never empty");
        let at = seg.end;
        if let Err(e) = self.active.write_all_at(&self.encode_buf, at) {
            let err = io_err("write", &seg.path)(e);
            // Cut whatever part of the record reached the file, so the next
            // append starts at a record boundary.
            return match self.active.set_len(at) {
                Ok(()) => Err(err),
                Err(_) => Err(self.poison(err)),
            };
        }
        seg.offsets.push(at);
        seg.end += record_bytes;
        self.last_hash = hash;
        self.unsynced = true;
        Ok(index)
    }

    fn sync(&mut self) -> Result<(), LogError> {
        self.check_usable()?;
        self.sync_active()
    }

    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<Entry>, LogError> {
        if !check_range(&range, self.first_index(), self.last_index())? {
            return Ok(Vec::new());
        }
        let (start, end) = (*range.start(), *range.end());
        let mut out = Vec::with_capacity((end - start + 1) as usize);
        let mut pos = self.segments.partition_point(|s| s.first_index <= start) - 1;
        let mut index = start;
        let mut prev_hash = None;
        while index <= end {
            let seg = &self.segments[pos];
            let upto = end.min(seg.next_index() - 1);
            let from = (index - seg.first_index) as usize;
            let to = (upto - seg.first_index) as usize;
            self.read_segment(pos, from, to, &mut prev_hash, &mut out)?;
            index = upto + 1;
            pos += 1;
        }
        Ok(out)
    }

    fn truncate_after(&mut self, index: u64) -> Result<(), LogError> {
        self.check_usable()?;
        if index >= self.last_index() {
            return Ok(());
        }
        let first = self.first_index();
        if index + 1 < first {
            return Err(LogError::TruncateBeforeFirst { index, first });
        }
        let new_last_hash = if index >= first {
            self.read(index..=index)?[0].hash
        } else {
            self.segments[0].base_hash
        };
        // Segment `keep` holds batch index + 1; later ones go, newest first,
        // so that a crash part way leaves a prefix of the log.
        let keep = self
            .segments
            .partition_point(|s| s.first_index <= index + 1)
            - 1;
        let was_active = keep + 1 == self.segments.len();
        while self.segments.len() > keep + 1 {
            let seg = self.segments.pop().expect("len checked");
            if let Err(e) = fs::remove_file(&seg.path) {
                let err = io_err("remove", &seg.path)(e);
                return Err(self.poison(err));
            }
        }
        let seg = self.segments.last_mut().expect("never empty");
        let keep_records = (index + 1 - seg.first_index) as usize;
        let cut = seg.offsets[keep_records];
        seg.offsets.truncate(keep_records);
        seg.end = cut;
        let path = seg.path.clone();
        let result = (|| {
            if !was_active {
                self.active = open_rw(&path)?;
            }
            self.active
                .set_len(cut)
                .map_err(io_err("truncate", &path))?;
            self.active
                .sync_data()
                .map_err(io_err("fdatasync", &path))?;
            sync_dir(&self.dir)
        })();
        if let Err(err) = result {
            return Err(self.poison(err));
        }
        self.last_hash = new_last_hash;
        self.unsynced = false;
        Ok(())
    }

    fn purge_before(&mut self, index: u64) -> Result<(), LogError> {
        self.check_usable()?;
        // Oldest first, so that a crash part way leaves a suffix of the log.
        let mut removed = 0;
        while removed + 1 < self.segments.len() && self.segments[removed + 1].first_index <= index {
            let path = &self.segments[removed].path;
            if let Err(e) = fs::remove_file(path) {
                let err = io_err("remove", path)(e);
                self.segments.drain(..removed);
                return Err(self.poison(err));
            }
            removed += 1;
        }
        if removed > 0 {
            self.segments.drain(..removed);
            if let Err(err) = sync_dir(&self.dir) {
                return Err(self.poison(err));
            }
        }
        Ok(())
    }

    fn reset_to(&mut self, base_index: u64, base_hash: Hash) -> Result<(), LogError> {
        self.check_usable()?;
        let first_index = base_index.checked_add(1).expect("log index overflow");
        let (file, tmp, path) = write_tmp_segment(&self.dir, first_index, base_hash)?;
        let result = (|| {
            // Newest first: a crash part way leaves a prefix of the old log
            // (the `.seg.tmp` is then removed on open); a crash after the
            // last removal leaves only the new segment, installed on open.
            while let Some(seg) = self.segments.pop() {
                fs::remove_file(&seg.path).map_err(io_err("remove", &seg.path))?;
            }
            fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
            sync_dir(&self.dir)
        })();
        if let Err(err) = result {
            return Err(self.poison(err));
        }
        self.segments.push(Segment {
            first_index,
            base_hash,
            path,
            offsets: Vec::new(),
            end: SEGMENT_HEADER_BYTES as u64,
        });
        self.active = file;
        self.last_hash = base_hash;
        self.unsynced = false;
        Ok(())
    }

    fn first_index(&self) -> u64 {
        self.segments[0].first_index
    }

    fn last_index(&self) -> u64 {
        self.next_index() - 1
    }

    fn last_hash(&self) -> Hash {
        self.last_hash
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn open_rw(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))
}

/// Makes file creations, renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    match fs2::FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(file),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
            Err(LogError::Locked {
                dir: dir.to_path_buf(),
            })
        }
        Err(e) => Err(io_err("lock", &path)(e)),
    }
}

/// Writes a segment holding only its header as `<name>.tmp` and syncs it.
fn write_tmp_segment(
    dir: &Path,
    first_index: u64,
    prev_hash: Hash,
) -> Result<(File, PathBuf, PathBuf), LogError> {
    let name = segment_file_name(first_index);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    let header = encode_segment_header(&SegmentHeader {
        first_index,
        prev_hash,
    });
    file.write_all(&header).map_err(io_err("write", &tmp))?;
    file.sync_data().map_err(io_err("fdatasync", &tmp))?;
    Ok((file, tmp, path))
}

/// Creates a new empty segment durably: header written to a `.tmp` file,
/// synced, renamed into place, directory synced.
fn create_segment(
    dir: &Path,
    first_index: u64,
    prev_hash: Hash,
) -> Result<(File, PathBuf), LogError> {
    let (file, tmp, path) = write_tmp_segment(dir, first_index, prev_hash)?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// The first index of a `.seg.tmp` file whose header is whole and matches its name.
fn whole_tmp_segment(tmp: &Path) -> Option<u64> {
    let name = tmp.file_name()?.to_str()?;
    let first_index = parse_segment_file_name(name.strip_suffix(".tmp")?)?;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    File::open(tmp).ok()?.read_exact_at(&mut header, 0).ok()?;
    let header = decode_segment_header(&header).ok()?;
    (header.first_index == first_index).then_some(first_index)
}

/// An I/O failure while scanning, with the batch index the scan had reached.
struct ScanIo {
    op: &'static str,
    path: PathBuf,
    index: u64,
    source: io::Error,
}

/// The files of a log directory that belong to the log.
struct Listing {
    /// Segment files with their first index, in index order.
    segments: Vec<(u64, PathBuf)>,
    /// `.seg.tmp` files.
    tmp_files: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, ScanIo> {
    let io = |op, source| ScanIo {
        op,
        path: dir.to_path_buf(),
        index: 0,
        source,
    };
    let mut segments = Vec::new();
    let mut tmp_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io("list directory", e))? {
        let entry = entry.map_err(|e| io("list directory", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first_index) = parse_segment_file_name(name) {
            segments.push((first_index, entry.path()));
        } else if name.ends_with(SEGMENT_TMP_SUFFIX) {
            tmp_files.push(entry.path());
        }
    }
    segments.sort();
    tmp_files.sort();
    Ok(Listing {
        segments,
        tmp_files,
    })
}

/// The first problem a scan found.
struct Damage {
    segment: PathBuf,
    offset: u64,
    index: u64,
    reason: String,
    /// Bytes from `offset` to the end of the file.
    bytes: u64,
    /// An unfinished write at the very end of the log, not corruption.
    torn: bool,
}

impl Damage {
    fn into_torn_tail(self) -> TornTail {
        TornTail {
            segment: self.segment,
            offset: self.offset,
            bytes: self.bytes,
            first_lost_index: self.index,
            reason: self.reason,
        }
    }
}

struct Scan {
    /// Segments up to and including the damaged one (holding its whole
    /// records before the damage).
    segments: Vec<Segment>,
    /// Hash of the last whole batch before any damage.
    last_hash: Hash,
    events: u64,
    bytes: u64,
    damage: Option<Damage>,
    tmp_files: Vec<PathBuf>,
}

/// Reads every segment of `dir` and checks headers, records, index
/// continuity and the hash chain, stopping at the first damage.
fn scan(dir: &Path) -> Result<Scan, ScanIo> {
    let Listing {
        segments: names,
        tmp_files,
    } = list_dir(dir)?;
    let count = names.len();
    let mut scan = Scan {
        segments: Vec::with_capacity(count),
        last_hash: GENESIS_HASH,
        events: 0,
        bytes: 0,
        damage: None,
        tmp_files,
    };
    for (pos, (name_index, path)) in names.into_iter().enumerate() {
        let is_last = pos + 1 == count;
        let expected = scan.segments.last().map(Segment::next_index);
        let buf = fs::read(&path).map_err(|source| ScanIo {
            op: "read",
            path: path.clone(),
            index: expected.unwrap_or(name_index),
            source,
        })?;
        scan.bytes += buf.len() as u64;
        let file_len = buf.len() as u64;
        let damage = |offset: u64, index: u64, reason: String, torn: bool| Damage {
            segment: path.clone(),
            offset,
            index,
            reason,
            bytes: file_len - offset.min(file_len),
            torn,
        };
        let header = match decode_segment_header(&buf) {
            Ok(header) => header,
            Err(reason) => {
                scan.damage = Some(damage(0, expected.unwrap_or(name_index), reason, false));
                return Ok(scan);
            }
        };
        if header.first_index != name_index {
            let reason = format!(
                "segment header says its first batch is {}, its file name says {name_index}",
                header.first_index
            );
            scan.damage = Some(damage(0, expected.unwrap_or(name_index), reason, false));
            return Ok(scan);
        }
        match expected {
            Some(expected) if header.first_index != expected => {
                let reason = format!(
                    "batches are missing or overlap: this segment starts at {}, the previous one ends at {}",
                    header.first_index,
                    expected - 1
                );
                scan.damage = Some(damage(0, expected, reason, false));
                return Ok(scan);
            }
            Some(expected) if header.prev_hash != scan.last_hash => {
                let reason = format!(
                    "hash chain broken: the segment header's prev_hash is not the hash of batch {}",
                    expected - 1
                );
                scan.damage = Some(damage(0, expected, reason, false));
                return Ok(scan);
            }
            Some(_) => {}
            None => scan.last_hash = header.prev_hash,
        }
        let mut seg = Segment {
            first_index: header.first_index,
            base_hash: header.prev_hash,
            path: path.clone(),
            offsets: Vec::new(),
            end: SEGMENT_HEADER_BYTES as u64,
        };
        let mut off = SEGMENT_HEADER_BYTES;
        while off < buf.len() {
            let index = seg.next_index();
            let payload = match read_record(&buf[off..]) {
                RecordRead::Whole {
                    payload,
                    record_bytes,
                } => {
                    off += record_bytes;
                    payload
                }
                bad => {
                    let torn = is_last && !later_record_follows(&buf, off, index);
                    scan.damage = Some(damage(off as u64, index, bad.describe(), torn));
                    seg.end = off as u64;
                    scan.segments.push(seg);
                    return Ok(scan);
                }
            };
            let record_off = (off - RECORD_HEADER_BYTES - payload.len()) as u64;
            let summary = match summarize_payload(payload) {
                Ok(summary) => summary,
                Err(reason) => {
                    scan.damage = Some(damage(record_off, index, reason, false));
                    return Ok(scan);
                }
            };
            if summary.index != index {
                let reason = format!(
                    "record holds batch index {} where {index} belongs",
                    summary.index
                );
                scan.damage = Some(damage(record_off, index, reason, false));
                return Ok(scan);
            }
            if summary.prev_hash != scan.last_hash {
                let reason = format!(
                    "hash chain broken: prev_hash is not the hash of batch {}",
                    index - 1
                );
                scan.damage = Some(damage(record_off, index, reason, false));
                return Ok(scan);
            }
            scan.last_hash = hash_payload(payload);
            scan.events += u64::from(summary.event_count);
            seg.offsets.push(record_off);
        }
        seg.end = off as u64;
        scan.segments.push(seg);
    }
    Ok(scan)
}

/// Whether a whole record with a matching CRC and an index at or after
/// `next_index` starts anywhere after `bad_off`. If one does, the bad record
/// at `bad_off` is damage in the middle of the log, not an unfinished write
/// at its end.
fn later_record_follows(buf: &[u8], bad_off: usize, next_index: u64) -> bool {
    // No more records than this fit after the damage; larger indexes are noise.
    let later_records_max = ((buf.len() - bad_off) / RECORD_BYTES_MIN) as u64 + 1;
    let last_start = match buf.len().checked_sub(RECORD_BYTES_MIN) {
        Some(last) => last,
        None => return false,
    };
    for p in bad_off + 1..=last_start {
        let len = read_u32(buf, p) as usize;
        if !(PAYLOAD_FIXED_BYTES..=PAYLOAD_BYTES_MAX).contains(&len)
            || buf.len() - p - RECORD_HEADER_BYTES < len
        {
            continue;
        }
        let index = read_u64(buf, p + RECORD_HEADER_BYTES + 32);
        if index < next_index || index - next_index > later_records_max {
            continue;
        }
        if matches!(read_record(&buf[p..]), RecordRead::Whole { .. }) {
            return true;
        }
    }
    false
}
