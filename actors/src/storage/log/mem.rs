//! The event log held in memory: the same indexes, hashes and truncation
//! rules as the file log, without durability. It serves tests and the
//! non-durable mode.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use super::{batch_hash, check_batch, check_range, Entry, EventLog, Hash, LogError, GENESIS_HASH};

#[derive(Debug)]
pub struct MemLog {
    /// Index of the batch just before `entries[0]` (0 for a new log).
    base_index: u64,
    /// Hash of batch `base_index`.
    base_hash: Hash,
    entries: VecDeque<Entry>,
}

impl Default for MemLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemLog {
    pub fn new() -> Self {
        MemLog {
            base_index: 0,
            base_hash: GENESIS_HASH,
            entries: VecDeque::new(),
        }
    }
}

impl EventLog for MemLog {
    fn append(&mut self, batch: &[Vec<u8>]) -> Result<u64, LogError> {
        check_batch(batch)?;
        let index = self
            .last_index()
            .checked_add(1)
            .expect("log index overflow");
        let prev_hash = self.last_hash();
        let hash = batch_hash(&prev_hash, index, batch);
        self.entries.push_back(Entry {
            index,
            prev_hash,
            hash,
            events: batch.to_vec(),
        });
        Ok(index)
    }

    fn sync(&mut self) -> Result<(), LogError> {
        Ok(())
    }

    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<Entry>, LogError> {
        if !check_range(&range, self.first_index(), self.last_index())? {
            return Ok(Vec::new());
        }
        let from = (range.start() - self.base_index - 1) as usize;
        let to = (range.end() - self.base_index - 1) as usize;
        Ok(self.entries.range(from..=to).cloned().collect())
    }

    fn truncate_after(&mut self, index: u64) -> Result<(), LogError> {
        if index >= self.last_index() {
            return Ok(());
        }
        if index < self.base_index {
            return Err(LogError::TruncateBeforeFirst {
                index,
                first: self.first_index(),
            });
        }
        self.entries.truncate((index - self.base_index) as usize);
        Ok(())
    }

    fn purge_before(&mut self, index: u64) -> Result<(), LogError> {
        while self.entries.front().is_some_and(|e| e.index < index) {
            let dropped = self.entries.pop_front().expect("front checked");
            self.base_index = dropped.index;
            self.base_hash = dropped.hash;
        }
        Ok(())
    }

    fn reset_to(&mut self, base_index: u64, base_hash: Hash) -> Result<(), LogError> {
        self.entries.clear();
        self.base_index = base_index;
        self.base_hash = base_hash;
        Ok(())
    }

    fn first_index(&self) -> u64 {
        self.base_index + 1
    }

    fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    fn last_hash(&self) -> Hash {
        self.entries.back().map_or(self.base_hash, |e| e.hash)
    }
}
