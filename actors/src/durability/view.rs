//! A read-only view of an event log directory, for the tools (`verify`,
//! `backup`, `audit`), usable while a server has the log open and locked.
//!
//! The view is a private directory beside the log holding hard links to
//! every closed segment (the log never writes a segment again once it has
//! moved on) and a copy of the last one, which may still grow. A
//! [`FileLog`] opened there reads, checks and, if the copy ends in the
//! middle of a batch being written, cuts that torn tail in the copy only.
//! Nothing in the real log directory is ever written. The view removes its
//! directory when dropped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::log::{Corruption, FileLog, FileLogOptions, LogError, Recovery};

/// Attempts at taking a view while segments are being rolled or purged
/// under it.
pub const VIEW_ATTEMPTS_MAX: usize = 5;

static VIEWS: AtomicU64 = AtomicU64::new(0);

/// A log as it stood when the view was taken.
pub struct LogView {
    log: FileLog,
    report: Recovery,
    source: PathBuf,
    dir: PathBuf,
}

impl LogView {
    /// Takes a view of the log in `source`.
    pub fn open(source: &Path) -> Result<LogView, LogError> {
        let mut last_err = None;
        for _ in 0..VIEW_ATTEMPTS_MAX {
            match Self::try_open(source) {
                Ok(v) => return Ok(v),
                // A segment vanished between listing and linking: purged. Again.
                Err(LogError::Io {
                    source: e,
                    op,
                    path,
                }) if e.kind() == io::ErrorKind::NotFound && path != source => {
                    last_err = Some(LogError::Io {
                        source: e,
                        op,
                        path,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn try_open(source: &Path) -> Result<LogView, LogError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io { op, path, source }
        };
        let mut segments: Vec<String> = fs::read_dir(source)
            .map_err(io("list directory", source))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_segment_name(n))
            .collect();
        segments.sort();
        let Some(last) = segments.pop() else {
            return Err(LogError::Io {
                op: "find segments in",
                path: source.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotFound, "no event log here"),
            });
        };
        let dir = view_dir(source);
        fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
        let guard = RemoveOnDrop(dir.clone());
        for name in &segments {
            let (from, to) = (source.join(name), dir.join(name));
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).map_err(io("copy", &from))?;
            }
        }
        let from = source.join(&last);
        fs::copy(&from, dir.join(&last)).map_err(io("copy", &from))?;
        let (log, report) =
            FileLog::open(&dir, FileLogOptions::default()).map_err(|e| match e {
                LogError::Corrupt(c) => LogError::Corrupt(Corruption {
                    segment: source.join(c.segment.file_name().unwrap_or_default()),
                    ..c
                }),
                other => other,
            })?;
        std::mem::forget(guard);
        Ok(LogView {
            log,
            report,
            source: source.to_path_buf(),
            dir,
        })
    }

    pub fn log(&self) -> &FileLog {
        &self.log
    }

    /// What opening the copy found (a torn tail is named by the view's path).
    pub fn report(&self) -> &Recovery {
        &self.report
    }

    /// The real log directory.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

impl Drop for LogView {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn is_segment_name(name: &str) -> bool {
    name.len() == 24 && name.ends_with(".seg") && name[..20].bytes().all(|b| b.is_ascii_digit())
}

/// A fresh directory beside the log (same file system, so hard links work),
/// or under the temporary folder when the log's parent is not writable.
fn view_dir(source: &Path) -> PathBuf {
    let n = VIEWS.fetch_add(1, Ordering::Relaxed);
    let name = format!(".log-view-{}-{n}", std::process::id());
    match source.parent() {
        Some(parent) if writable(parent) => parent.join(name),
        _ => std::env::temp_dir().join(format!("bourse{name}")),
    }
}

fn writable(dir: &Path) -> bool {
    fs::metadata(dir)
        .map(|m| !m.permissions().readonly())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::EventLog;

    #[test]
    fn reads_a_locked_log_and_leaves_it_untouched() {
        let base = std::env::temp_dir().join(format!("bourse-view-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("log");
        let (mut log, _) = FileLog::open(
            &dir,
            FileLogOptions {
                segment_bytes_max: 4096,
            },
        )
        .unwrap();
        for i in 0..200u32 {
            log.append(&[i.to_le_bytes().to_vec(), vec![7u8; 40]])
                .unwrap();
        }
        log.sync().unwrap();
        assert!(log.segment_count() > 2);
        // A half-written record at the end, as while a batch is being written.
        let last_seg = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .max()
            .unwrap();
        let before = fs::read(&last_seg).unwrap();
        let mut torn = before.clone();
        torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
        fs::write(&last_seg, &torn).unwrap();

        let view = LogView::open(&dir).unwrap();
        assert_eq!(view.log().last_index(), 200);
        assert_eq!(
            view.log().read(7..=7).unwrap()[0].events[0],
            6u32.to_le_bytes().to_vec()
        );
        assert!(view.report().torn_tail.is_some());
        assert_eq!(
            fs::read(&last_seg).unwrap(),
            torn,
            "the real log is not changed"
        );
        let view_dir = view.dir.clone();
        drop(view);
        assert!(!view_dir.exists());
        drop(log);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn corruption_names_the_real_segment() {
        let base = std::env::temp_dir().join(format!("bourse-view-test2-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("log");
        {
            let (mut log, _) = FileLog::open(
                &dir,
                FileLogOptions {
                    segment_bytes_max: 4096,
                },
            )
            .unwrap();
            for i in 0..200u32 {
                log.append(&[i.to_le_bytes().to_vec(), vec![7u8; 40]])
                    .unwrap();
            }
            log.sync().unwrap();
        }
        let first = dir.join("00000000000000000001.seg");
        let mut bytes = fs::read(&first).unwrap();
        bytes[200] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        match LogView::open(&dir) {
            Err(LogError::Corrupt(c)) => assert_eq!(c.segment, first),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a damaged log was accepted"),
        }
        let _ = fs::remove_dir_all(&base);
    }
}
