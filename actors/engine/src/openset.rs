//! The ids of one account's open orders, in increasing order.
//!
//! Most accounts have a few open orders: up to `OPEN_INLINE_MAX` ids are
//! kept inside the account's own record (no pointer to follow on every
//! order event); past that the set moves to a B-tree. It iterates and
//! encodes as a sorted sequence, exactly as a `BTreeSet` does.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::OrderId;

/// Open orders an account keeps inline before its set moves to a B-tree.
pub const OPEN_INLINE_MAX: usize = 32;

// The inline variant is the large one on purpose: it is what saves the
// pointer chase.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, ids: [OrderId; OPEN_INLINE_MAX] },
    Tree(BTreeSet<OrderId>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSet(Repr);

impl Default for OpenSet {
    fn default() -> Self {
        OpenSet(Repr::Inline { len: 0, ids: [OrderId(0); OPEN_INLINE_MAX] })
    }
}

impl OpenSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => *len as usize,
            Repr::Tree(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &OrderId) -> bool {
        match &self.0 {
            Repr::Inline { len, ids } => ids[..*len as usize].binary_search(id).is_ok(),
            Repr::Tree(t) => t.contains(id),
        }
    }

    /// Adds `id`; false if it was there. The common case (a new order,
    /// whose id is the account's largest, into a set with room) is inline;
    /// the rest is `insert_other`.
    #[inline]
    pub fn insert(&mut self, id: OrderId) -> bool {
        if let Repr::Inline { len, ids } = &mut self.0 {
            let n = *len as usize;
            // Order ids grow: a new order almost always goes last.
            if n < OPEN_INLINE_MAX && (n == 0 || ids[n - 1] < id) {
                ids[n] = id;
                *len += 1;
                return true;
            }
        }
        self.insert_other(id)
    }

    #[inline(never)]
    fn insert_other(&mut self, id: OrderId) -> bool {
        match &mut self.0 {
            Repr::Inline { len, ids } => {
                let n = *len as usize;
                let at = match ids[..n].binary_search(&id) {
                    Ok(_) => return false,
                    Err(at) => at,
                };
                if n < OPEN_INLINE_MAX {
                    ids.copy_within(at..n, at + 1);
                    ids[at] = id;
                    *len += 1;
                    return true;
                }
                let mut t: BTreeSet<OrderId> = ids.iter().copied().collect();
                t.insert(id);
                self.0 = Repr::Tree(t);
                true
            }
            Repr::Tree(t) => t.insert(id),
        }
    }

    /// Removes `id`; false if it was not there. A tree that shrinks to
    /// half the inline size goes back inline (in `remove_from_tree`, kept
    /// out of line so that the inline case is small enough to inline).
    #[inline]
    pub fn remove(&mut self, id: &OrderId) -> bool {
        match &mut self.0 {
            Repr::Inline { len, ids } => {
                let n = *len as usize;
                match ids[..n].binary_search(id) {
                    Ok(at) => {
                        // At most `OPEN_INLINE_MAX` ids: moved one by one
                        // rather than by a call to memmove.
                        for i in at..n - 1 {
                            ids[i] = ids[i + 1];
                        }
                        *len -= 1;
                        true
                    }
                    Err(_) => false,
                }
            }
            Repr::Tree(_) => self.remove_from_tree(id),
        }
    }

    #[inline(never)]
    fn remove_from_tree(&mut self, id: &OrderId) -> bool {
        match &mut self.0 {
            Repr::Inline { .. } => unreachable!("called for a tree"),
            Repr::Tree(t) => {
                let had = t.remove(id);
                if t.len() <= OPEN_INLINE_MAX / 2 {
                    *self = t.iter().copied().collect();
                }
                had
            }
        }
    }

    /// The ids in increasing order.
    pub fn iter(&self) -> OpenIter<'_> {
        match &self.0 {
            Repr::Inline { len, ids } => OpenIter::Inline(ids[..*len as usize].iter()),
            Repr::Tree(t) => OpenIter::Tree(t.iter()),
        }
    }
}

pub enum OpenIter<'a> {
    Inline(std::slice::Iter<'a, OrderId>),
    Tree(std::collections::btree_set::Iter<'a, OrderId>),
}

impl<'a> Iterator for OpenIter<'a> {
    type Item = &'a OrderId;
    fn next(&mut self) -> Option<&'a OrderId> {
        match self {
            OpenIter::Inline(i) => i.next(),
            OpenIter::Tree(i) => i.next(),
        }
    }
}

impl<'a> IntoIterator for &'a OpenSet {
    type Item = &'a OrderId;
    type IntoIter = OpenIter<'a>;
    fn into_iter(self) -> OpenIter<'a> {
        self.iter()
    }
}

impl FromIterator<OrderId> for OpenSet {
    fn from_iter<I: IntoIterator<Item = OrderId>>(iter: I) -> Self {
        let mut s = OpenSet::new();
        for id in iter {
            s.insert(id);
        }
        s
    }
}

impl Serialize for OpenSet {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for OpenSet {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        Ok(BTreeSet::<OrderId>::deserialize(de)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a `BTreeSet` through growth past the inline size and back.
    #[test]
    fn behaves_as_a_sorted_set_inline_and_as_a_tree() {
        let mut s = OpenSet::new();
        let mut m = BTreeSet::new();
        let mut x = 7u64;
        for step in 0..4000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let id = OrderId((x >> 33) % 80);
            // Grow for a while, then shrink.
            let add = if step < 2000 { !x.is_multiple_of(3) } else { x.is_multiple_of(3) };
            if add {
                assert_eq!(s.insert(id), m.insert(id));
            } else {
                assert_eq!(s.remove(&id), m.remove(&id));
            }
            assert_eq!(s.len(), m.len());
            assert!(s.iter().eq(m.iter()));
            assert_eq!(s.contains(&id), m.contains(&id));
        }
        let enc = rmp_serde::to_vec(&s).expect("encodes");
        assert_eq!(enc, rmp_serde::to_vec(&m).expect("encodes"));
        let back: OpenSet = rmp_serde::from_slice(&enc).expect("decodes");
        assert!(back.iter().eq(m.iter()));
    }
}
