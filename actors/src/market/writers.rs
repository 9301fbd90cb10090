//! The threads that write the market-data actor's batches to subscribers'
//! sockets: the actor's own thread and `limits.fanout_threads - 1` helpers.
//!
//! A batch is the admitted messages sorted by connection, each
//! connection's messages one group. It is cut into as many runs of whole
//! groups as there are threads; the helpers write theirs while the actor writes the first, and
//! the actor waits for all of them before it goes on. So a batch is written
//! whole before anything else the actor sends (a snapshot, a held delta),
//! and each connection's messages stay in order. A write of a few hundred
//! sockets takes milliseconds of kernel time per thread; cut in two it
//! takes half as long on two cores.

use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::session::Due;

/// What one thread sent: per channel, messages and bytes.
pub type SentCounts = Vec<(&'static str, u64, usize)>;

/// Groups a batch needs before it is cut between threads: a smaller one
/// is written by the actor alone (handing it over would cost more).
pub const SPLIT_GROUPS_MIN: usize = 64;

/// A run of a batch: messages, and each group's place among them.
struct Run {
    dues: Vec<Due>,
    groups: Vec<Range<usize>>,
}

impl Run {
    fn write(&self, sent: &mut SentCounts, delivered: &metrics::Histogram) {
        write_groups(&self.dues, &self.groups, sent, delivered);
    }
}

fn write_groups(dues: &[Due], groups: &[Range<usize>], sent: &mut SentCounts, delivered: &metrics::Histogram) {
    for g in groups {
        Due::send_group(&dues[g.clone()], sent, delivered);
    }
}

struct Helper {
    jobs: SyncSender<Run>,
    done: Receiver<SentCounts>,
}

/// The helper threads; dropping this ends them.
pub struct Writers {
    helpers: Vec<Helper>,
}

impl Writers {
    /// `threads` writers in all: the caller's thread and `threads - 1` helpers.
    pub fn start(threads: usize) -> Writers {
        let mut helpers = Vec::new();
        for i in 1..threads.max(1) {
            let (jobs, job_rx) = sync_channel::<Run>(1);
            let (done_tx, done) = sync_channel::<SentCounts>(1);
            let spawned = std::thread::Builder::new().name(format!("bourse-fanout-{i}")).spawn(move || {
                let delivered = crate::telemetry::md_delivery();
                while let Ok(run) = job_rx.recv() {
                    let mut sent = SentCounts::new();
                    run.write(&mut sent, &delivered);
                    drop(run);
                    if done_tx.send(sent).is_err() {
                        return;
                    }
                }
            });
            match spawned {
                Ok(_) => helpers.push(Helper { jobs, done }),
                Err(e) => tracing::warn!(error = %e, "a fan-out writer thread did not start; fewer write the batches"),
            }
        }
        Writers { helpers }
    }

    /// Writes `dues` (sorted by connection, in order within each; a
    /// group is at most `group_max` of one connection's messages) and
    /// returns what was sent, once all of it is written or queued; `dues`
    /// is left empty.
    pub fn write(&self, dues: &mut Vec<Due>, group_max: usize) -> SentCounts {
        let mut groups: Vec<Range<usize>> = Vec::new();
        for (i, d) in dues.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if dues[g.start].conn() == d.conn() && g.len() < group_max => g.end = i + 1,
                _ => groups.push(i..i + 1),
            }
        }
        let delivered = crate::telemetry::md_delivery();
        let mut sent = SentCounts::new();
        let threads = if groups.len() >= SPLIT_GROUPS_MIN { self.helpers.len() + 1 } else { 1 };
        let per = groups.len().div_ceil(threads);
        let mut handed = Vec::new();
        for h in self.helpers.iter().take(threads - 1).rev() {
            let at = groups.len().saturating_sub(per);
            if at == groups.len() {
                continue;
            }
            let mut run_groups = groups.split_off(at);
            let first = run_groups[0].start;
            for g in run_groups.iter_mut() {
                *g = g.start - first..g.end - first;
            }
            let run = Run { dues: dues.split_off(first), groups: run_groups };
            match h.jobs.send(run) {
                Ok(()) => handed.push(h),
                // The helper is gone: its run is written here after the rest.
                Err(e) => {
                    let back = e.0;
                    back.write(&mut sent, &delivered);
                }
            }
        }
        write_groups(dues, &groups, &mut sent, &delivered);
        dues.clear();
        for h in handed {
            if let Ok(theirs) = h.done.recv() {
                for (ch, n, bytes) in theirs {
                    match sent.iter_mut().find(|s| s.0 == ch) {
                        Some(s) => {
                            s.1 += n;
                            s.2 += bytes;
                        }
                        None => sent.push((ch, n, bytes)),
                    }
                }
            }
        }
        sent
    }
}

/// The fan-out writers to run: `configured`, or with 0 the machine's cores.
pub fn fanout_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
