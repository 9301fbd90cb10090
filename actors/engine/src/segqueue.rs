//! A first-in first-out queue kept in blocks, for per-account histories that
//! grow one entry at a time (the order an account's `cl_id`s were used in).
//!
//! A queue in one buffer grows by copying everything it holds into a buffer
//! twice as large; for a history that is written once and read rarely, that
//! copy is most of what keeping it costs (it reads and writes cold memory).
//! Here a full block is set aside and a new one started instead, and nothing
//! already queued moves. The block being filled sits in the queue itself, so
//! appending follows one pointer, as with a `VecDeque`. Blocks double in size
//! from `SEG_BLOCK_MIN` up to `SEG_BLOCK_MAX` entries, so a short history
//! stays small and a long one costs one block header per `SEG_BLOCK_MAX`
//! entries. It iterates, compares and encodes as the sequence of its entries,
//! oldest first, exactly as a `VecDeque` does.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Entries in a queue's first block.
pub const SEG_BLOCK_MIN: usize = 4;
/// Entries in a block at most.
pub const SEG_BLOCK_MAX: usize = 64;

#[derive(Clone)]
pub struct SegQueue<T> {
    /// Blocks set aside when full, oldest first; none is empty.
    full: VecDeque<VecDeque<T>>,
    /// The newest block, which new entries go to.
    tail: VecDeque<T>,
    len: usize,
}

impl<T> Default for SegQueue<T> {
    fn default() -> Self {
        SegQueue { full: VecDeque::new(), tail: VecDeque::new(), len: 0 }
    }
}

impl<T> SegQueue<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `x` as the newest entry; never moves the entries queued.
    #[inline]
    pub fn push_back(&mut self, x: T) {
        if self.tail.len() == self.tail.capacity() {
            self.new_tail();
        }
        self.tail.push_back(x);
        self.len += 1;
    }

    /// Sets the full tail block aside and starts a new one.
    fn new_tail(&mut self) {
        let size = self.len.next_power_of_two().clamp(SEG_BLOCK_MIN, SEG_BLOCK_MAX);
        let old = std::mem::replace(&mut self.tail, VecDeque::with_capacity(size));
        if !old.is_empty() {
            self.full.push_back(old);
        }
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&T> {
        match self.full.front() {
            Some(b) => b.front(),
            None => self.tail.front(),
        }
    }

    /// Takes the oldest entry.
    pub fn pop_front(&mut self) -> Option<T> {
        let x = match self.full.front_mut() {
            Some(b) => {
                let x = b.pop_front();
                if b.is_empty() {
                    self.full.pop_front();
                }
                x
            }
            None => self.tail.pop_front(),
        };
        if x.is_some() {
            self.len -= 1;
        }
        x
    }

    /// Entries oldest first (`.rev()` for newest first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.full.iter().flat_map(|b| b.iter()).chain(self.tail.iter())
    }

    /// Where the first entry for which `before` is false is, where `before`
    /// is true for a prefix of the queue and false after it (as for
    /// `slice::partition_point`): its block (`full.len()` for the tail) and
    /// its place there, by a binary search of the blocks by their newest
    /// entries, then of one block.
    fn first_not_at(&self, before: impl Fn(&T) -> bool) -> (usize, usize) {
        let bi = self.full.partition_point(|b| b.back().is_some_and(&before));
        (bi, self.full.get(bi).unwrap_or(&self.tail).partition_point(&before))
    }

    /// The first entry, oldest first, for which `before` is false (see
    /// `first_not_at`).
    pub fn first_not(&self, before: impl Fn(&T) -> bool) -> Option<&T> {
        let (bi, i) = self.first_not_at(before);
        self.full.get(bi).unwrap_or(&self.tail).get(i)
    }

    /// `first_not`, to change it.
    pub fn first_not_mut(&mut self, before: impl Fn(&T) -> bool) -> Option<&mut T> {
        let (bi, i) = self.first_not_at(before);
        match self.full.get_mut(bi) {
            Some(b) => b.get_mut(i),
            None => self.tail.get_mut(i),
        }
    }

    /// Takes the newest entry that `f` accepts, searching from the newest.
    pub fn remove_newest(&mut self, mut f: impl FnMut(&T) -> bool) -> Option<T> {
        if let Some(i) = self.tail.iter().rposition(&mut f) {
            self.len -= 1;
            return self.tail.remove(i);
        }
        for bi in (0..self.full.len()).rev() {
            let b = &mut self.full[bi];
            if let Some(i) = b.iter().rposition(&mut f) {
                let x = b.remove(i);
                if b.is_empty() {
                    self.full.remove(bi);
                }
                self.len -= 1;
                return x;
            }
        }
        None
    }

    /// Keeps only the entries `f` accepts, in order.
    pub fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        let SegQueue { full, tail, .. } = std::mem::take(self);
        for x in full.into_iter().flatten().chain(tail) {
            if f(&x) {
                self.push_back(x);
            }
        }
    }
}

impl<T> FromIterator<T> for SegQueue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut q = SegQueue::new();
        for x in iter {
            q.push_back(x);
        }
        q
    }
}

impl<T: PartialEq> PartialEq for SegQueue<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for SegQueue<T> {}

impl<T: fmt::Debug> fmt::Debug for SegQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Serialize> Serialize for SegQueue<T> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SegQueue<T> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        Ok(Vec::<T>::deserialize(de)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffers(q: &SegQueue<u64>) -> Vec<*const u64> {
        q.full.iter().chain(std::iter::once(&q.tail)).map(|b| b.as_slices().0.as_ptr()).collect()
    }

    /// Against a `VecDeque` under pushes, pops and removals: the same
    /// entries in the same order, no empty block set aside, the same
    /// encoding; a push never moves a block that holds entries.
    #[test]
    fn behaves_as_a_vecdeque_and_never_moves_its_entries() {
        let mut q: SegQueue<u64> = SegQueue::new();
        let mut m: VecDeque<u64> = VecDeque::new();
        let mut x = 5u64;
        for step in 0..20_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            match (x >> 40) % 10 {
                0..=5 => {
                    let before = buffers(&q);
                    let kept = q.full.len() + usize::from(!q.tail.is_empty());
                    q.push_back(step);
                    m.push_back(step);
                    let after = buffers(&q);
                    assert_eq!(&after[..kept], &before[..kept], "no block moved");
                }
                6..=8 => assert_eq!(q.pop_front(), m.pop_front()),
                _ => {
                    let k = (x >> 20) % 7;
                    let got = q.remove_newest(|v| v % 7 == k);
                    let at = m.iter().rposition(|v| v % 7 == k);
                    assert_eq!(got, at.and_then(|i| m.remove(i)));
                }
            }
            assert_eq!(q.len(), m.len());
            assert_eq!(q.front(), m.front());
            assert!(q.full.iter().all(|b| !b.is_empty() && b.capacity() <= 2 * SEG_BLOCK_MAX));
            // The entries rise, so a search by value finds what a scan does.
            let v = step.saturating_sub((x >> 8) % 300);
            assert_eq!(q.first_not(|e| *e < v), m.iter().find(|e| **e >= v), "{v}");
            assert_eq!(q.first_not_mut(|e| *e < v).copied(), m.iter().find(|e| **e >= v).copied());
            if step % 1000 == 0 {
                assert!(q.iter().eq(m.iter()));
                assert!(q.iter().rev().eq(m.iter().rev()));
            }
        }
        let enc = rmp_serde::to_vec(&q).expect("encodes");
        assert_eq!(enc, rmp_serde::to_vec(&m).expect("encodes"), "encodes as a VecDeque");
        let back: SegQueue<u64> = rmp_serde::from_slice(&enc).expect("decodes");
        assert_eq!(back, q);
        let mut copy = q.clone();
        assert_eq!(copy, q);
        copy.push_back(1);
        assert_ne!(copy, q);
        q.retain(|v| v % 2 == 0);
        m.retain(|v| v % 2 == 0);
        assert!(q.iter().eq(m.iter()));
        assert_eq!(q.len(), m.len());
    }
}
