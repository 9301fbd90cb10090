//! The node's password checks: the slow hashes of `auth`,
//! `account.password` and the operators' new passwords, run on the
//! blocking pool a few at a time.
//!
//! A hash costs tens of milliseconds of a core and 19 MiB of memory. Run as
//! each request came, 400 connections sending `auth` together took 405
//! threads and 1.1 GB, and every core, from an exchange whose trading needs
//! them. Here at most `slots` hashes run at once (the machine's cores),
//! the next `waiting_max` (64 a slot) wait their turn in order, holding no
//! thread, and one more is answered `overloaded` at once (retryable): a login flood
//! costs the exchange a bounded share of its cores and memory, and is told
//! to come back rather than queued without end.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Password checks waiting for a slot, at most, for each slot: the last
/// to wait waits about 64 checks' time (about 2 s at 30 ms a check), well
/// within the 5 s of silence after which a client may take its connection
/// for dead (the session sends no heartbeat while its check waits).
pub const WAITING_PER_SLOT: usize = 64;

pub struct PasswordChecks {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    waiting_max: usize,
}

/// Every slot taken and `waiting_max` checks waiting.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

impl PasswordChecks {
    pub fn new(slots: usize, waiting_max: usize) -> Arc<Self> {
        Arc::new(PasswordChecks { slots: Arc::new(Semaphore::new(slots.max(1))), waiting: AtomicUsize::new(0), waiting_max })
    }

    /// As many slots as the machine has cores (two at least).
    pub fn for_this_machine() -> Arc<Self> {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        Self::new(slots, slots * WAITING_PER_SLOT)
    }

    /// Checks waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Runs `check` on the blocking pool once a slot is free: its result,
    /// or `None` if it panicked. `Busy` at once when `waiting_max` checks
    /// are already waiting.
    pub fn run<T, F>(self: &Arc<Self>, check: F) -> Result<impl Future<Output = Option<T>> + use<T, F>, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= self.waiting_max && self.slots.available_permits() == 0 {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let me = self.clone();
        Ok(async move {
            let permit = me.slots.clone().acquire_owned().await;
            me.waiting.fetch_sub(1, Ordering::AcqRel);
            let _permit = permit.ok()?;
            tokio::task::spawn_blocking(check).await.ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn checks_beyond_the_slots_wait_and_beyond_the_queue_are_refused() {
        let gate = PasswordChecks::new(1, 1);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = gate.run(move || held.recv().map(|_| 1)).unwrap();
        let first = tokio::spawn(first);
        // The first holds the one slot.
        while gate.slots.available_permits() != 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn(gate.run(|| 2).unwrap());
        while gate.waiting() != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(|| 3).err(), Some(Busy), "the queue is full");
        assert_eq!(gate.waiting(), 1, "a refused check leaves the queue as it was");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Some(Ok(1)));
        assert_eq!(second.await.unwrap(), Some(2));
        assert_eq!(gate.waiting(), 0);
        assert_eq!(gate.run(|| 4).unwrap().await, Some(4), "room again");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_check_that_panics_gives_none_and_its_slot_back() {
        let gate = PasswordChecks::new(1, 0);
        assert_eq!(gate.run(|| -> u8 { panic!("a failing check") }).unwrap().await, None);
        assert_eq!(gate.run(|| 5).unwrap().await, Some(5));
    }
}
