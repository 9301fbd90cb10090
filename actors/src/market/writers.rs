//! The threads that write the market-data actor's batches to subscribers'
//! sockets: the actor's own thread and `limits.fanout_threads - 1` helpers.
//!
//! A batch is each connection's admitted messages, one group per
//! connection. It is cut into as many runs of whole groups as there are
//! threads; the helpers write theirs while the actor writes the first, and
//! the actor waits for all of them before it goes on. So a batch is written
//! whole before anything else the actor sends (a snapshot, a held delta),
//! and each connection's messages stay in order. A write of a few hundred
//! sockets takes milliseconds of kernel time per thread; cut in two it
//! takes half as long on two cores.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::session::Due;

/// What one thread sent: per channel, messages and bytes.
pub type SentCounts = Vec<(&'static str, u64, usize)>;

/// Groups a batch needs before it is cut between threads: a smaller one
/// is written by the actor alone (handing it over would cost more).
pub const SPLIT_GROUPS_MIN: usize = 64;

struct Helper {
    jobs: SyncSender<Vec<Vec<Due>>>,
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
            let (jobs, job_rx) = sync_channel::<Vec<Vec<Due>>>(1);
            let (done_tx, done) = sync_channel::<SentCounts>(1);
            let spawned = std::thread::Builder::new().name(format!("bourse-fanout-{i}")).spawn(move || {
                let delivered = crate::telemetry::md_delivery();
                while let Ok(mut groups) = job_rx.recv() {
                    let mut sent = SentCounts::new();
                    for g in groups.iter_mut() {
                        Due::send_group(g, &mut sent, &delivered);
                    }
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

    /// Writes every group (each one connection's messages, in order) and
    /// returns what was sent; returns when all of it is written or queued.
    pub fn write(&self, mut groups: Vec<Vec<Due>>) -> SentCounts {
        let delivered = crate::telemetry::md_delivery();
        let mut sent = SentCounts::new();
        let threads = if groups.len() >= SPLIT_GROUPS_MIN { self.helpers.len() + 1 } else { 1 };
        let per = groups.len().div_ceil(threads);
        let mut handed = Vec::new();
        for h in self.helpers.iter().take(threads - 1).rev() {
            let at = groups.len().saturating_sub(per);
            let run = groups.split_off(at);
            if run.is_empty() {
                continue;
            }
            match h.jobs.send(run) {
                Ok(()) => handed.push(h),
                // The helper is gone: its run comes back to be written here.
                Err(e) => groups.extend(e.0),
            }
        }
        for g in groups.iter_mut() {
            Due::send_group(g, &mut sent, &delivered);
        }
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
