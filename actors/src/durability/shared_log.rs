//! The event log shared between its one writer, the journal thread, and
//! the snapshotter, which reads batches the journal has made durable.
//!
//! Every call takes the lock for its own duration only. The snapshotter
//! reads at most `SNAPSHOT_READ_BATCHES_MAX` batches per call, so the
//! journal waits at most for one such read; the snapshotter holds only a
//! [`WeakLog`], so the log (and its directory lock) closes when the journal
//! lets go of it.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::storage::log::{Entry, EventLog, Hash, LogError};

/// An event log behind a lock, cloneable; itself an [`EventLog`].
pub struct SharedLog<L>(Arc<Mutex<L>>);

impl<L> Clone for SharedLog<L> {
    fn clone(&self) -> Self {
        SharedLog(self.0.clone())
    }
}

/// A handle that does not keep the log open.
pub struct WeakLog<L>(Weak<Mutex<L>>);

impl<L> Clone for WeakLog<L> {
    fn clone(&self) -> Self {
        WeakLog(self.0.clone())
    }
}

impl<L> WeakLog<L> {
    /// The log, if its owner still holds it.
    pub fn upgrade(&self) -> Option<SharedLog<L>> {
        self.0.upgrade().map(SharedLog)
    }
}

impl<L: EventLog> SharedLog<L> {
    pub fn new(log: L) -> Self {
        SharedLog(Arc::new(Mutex::new(log)))
    }

    pub fn downgrade(&self) -> WeakLog<L> {
        WeakLog(Arc::downgrade(&self.0))
    }

    /// The log itself, for the length of the guard.
    pub fn lock(&self) -> MutexGuard<'_, L> {
        // A panic while holding the lock leaves the log in an unknown
        // state: no one may go on writing it.
        self.0.lock().expect("event log lock poisoned by a panic")
    }
}

impl<L: EventLog> EventLog for SharedLog<L> {
    fn append(&mut self, batch: &[Vec<u8>]) -> Result<u64, LogError> {
        self.lock().append(batch)
    }
    fn sync(&mut self) -> Result<(), LogError> {
        self.lock().sync()
    }
    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<Entry>, LogError> {
        self.lock().read(range)
    }
    fn truncate_after(&mut self, index: u64) -> Result<(), LogError> {
        self.lock().truncate_after(index)
    }
    fn purge_before(&mut self, index: u64) -> Result<(), LogError> {
        self.lock().purge_before(index)
    }
    fn reset_to(&mut self, base_index: u64, base_hash: Hash) -> Result<(), LogError> {
        self.lock().reset_to(base_index, base_hash)
    }
    fn first_index(&self) -> u64 {
        self.lock().first_index()
    }
    fn last_index(&self) -> u64 {
        self.lock().last_index()
    }
    fn last_hash(&self) -> Hash {
        self.lock().last_hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemLog;

    #[test]
    fn clones_share_one_log_and_weak_handles_do_not_keep_it() {
        let mut a = SharedLog::new(MemLog::new());
        let b = a.clone();
        let weak = a.downgrade();
        a.append(&[b"x".to_vec()]).unwrap();
        assert_eq!(b.last_index(), 1);
        assert_eq!(
            weak.upgrade().unwrap().read(1..=1).unwrap()[0].events,
            vec![b"x".to_vec()]
        );
        drop(a);
        assert!(weak.upgrade().is_some());
        drop(b);
        assert!(
            weak.upgrade().is_none(),
            "the log closes with its last owner"
        );
    }
}
