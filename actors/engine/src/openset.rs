//! The ids of one account's open orders, in increasing order, each with
//! its `cl_id`'s tag.
//!
//! Most accounts have a few open orders: up to `OPEN_INLINE_MAX` ids are
//! kept inside the account's own record (no pointer to follow on every
//! order event); past that the set moves to a B-tree. It iterates and
//! encodes as a sorted sequence of ids, exactly as a `BTreeSet` does.
//!
//! The tag of an open order is one byte of its `cl_id`'s fingerprint while
//! the `cl_id` is remembered, 0 once it is forgotten (`NO_TAG`). A cancel or
//! amend by `cl_id` can only name an open order, so it looks for the tag
//! here, in the account's record, instead of searching the day's `cl_id`s
//! (BENCHMARKS.md, round 15). Tags are not encoded: the ledger sets them
//! again from its `cl_id` table when it decodes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::OrderId;

/// A `cl_id`'s tag: one byte of its fingerprint, never `NO_TAG`.
pub type Tag = u8;

/// The tag of an order whose `cl_id` is no longer remembered.
pub const NO_TAG: Tag = 0;

/// Open orders an account keeps inline before its set moves to a B-tree.
pub const OPEN_INLINE_MAX: usize = 32;

// The inline variant is the large one on purpose: it is what saves the
// pointer chase.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Inline(Inline),
    Tree(BTreeMap<OrderId, Tag>),
}

/// The count and the tags first, so that the tags lie next to the count,
/// which every insert, removal and lookup reads anyway (a first form, with
/// 8-byte tags after the ids, added a cold array to every removal).
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq)]
struct Inline {
    len: u8,
    tags: [Tag; OPEN_INLINE_MAX],
    ids: [OrderId; OPEN_INLINE_MAX],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSet(Repr);

impl Default for OpenSet {
    fn default() -> Self {
        OpenSet(Repr::Inline(Inline { len: 0, ids: [OrderId(0); OPEN_INLINE_MAX], tags: [NO_TAG; OPEN_INLINE_MAX] }))
    }
}

impl OpenSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline(Inline { len, .. }) => *len as usize,
            Repr::Tree(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks for the lines of an inline set: its count and tags, and its ids.
    #[inline]
    pub fn prefetch(&self) {
        if let Repr::Inline(Inline { len, ids, .. }) = &self.0 {
            crate::ahead::read(len);
            for k in (0..OPEN_INLINE_MAX).step_by(8) {
                crate::ahead::read(&ids[k]);
            }
        }
    }

    pub fn contains(&self, id: &OrderId) -> bool {
        match &self.0 {
            Repr::Inline(Inline { len, ids, .. }) => ids[..*len as usize].binary_search(id).is_ok(),
            Repr::Tree(t) => t.contains_key(id),
        }
    }

    /// Adds `id` with `tag`; false (and nothing changed) if it was there.
    /// The common case (a new order, whose id is the account's largest,
    /// into a set with room) is inline; the rest is `insert_other`.
    #[inline]
    pub fn insert(&mut self, id: OrderId, tag: Tag) -> bool {
        if let Repr::Inline(Inline { len, ids, tags }) = &mut self.0 {
            let n = *len as usize;
            // Order ids grow: a new order almost always goes last.
            if n < OPEN_INLINE_MAX && (n == 0 || ids[n - 1] < id) {
                ids[n] = id;
                tags[n] = tag;
                *len += 1;
                return true;
            }
        }
        self.insert_other(id, tag)
    }

    #[inline(never)]
    fn insert_other(&mut self, id: OrderId, tag: Tag) -> bool {
        match &mut self.0 {
            Repr::Inline(Inline { len, ids, tags }) => {
                let n = *len as usize;
                let at = match ids[..n].binary_search(&id) {
                    Ok(_) => return false,
                    Err(at) => at,
                };
                if n < OPEN_INLINE_MAX {
                    ids.copy_within(at..n, at + 1);
                    tags.copy_within(at..n, at + 1);
                    ids[at] = id;
                    tags[at] = tag;
                    *len += 1;
                    return true;
                }
                let mut t: BTreeMap<OrderId, Tag> = ids.iter().copied().zip(tags.iter().copied()).collect();
                t.insert(id, tag);
                self.0 = Repr::Tree(t);
                true
            }
            Repr::Tree(t) => match t.entry(id) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(tag);
                    true
                }
            },
        }
    }

    /// Sets the tag of `id`, if it is in the set.
    pub fn set_tag(&mut self, id: &OrderId, tag: Tag) {
        match &mut self.0 {
            Repr::Inline(Inline { len, ids, tags }) => {
                if let Ok(at) = ids[..*len as usize].binary_search(id) {
                    tags[at] = tag;
                }
            }
            Repr::Tree(t) => {
                if let Some(v) = t.get_mut(id) {
                    *v = tag;
                }
            }
        }
    }

    /// The tag of `id`, if it is in the set.
    pub fn tag(&self, id: &OrderId) -> Option<Tag> {
        match &self.0 {
            Repr::Inline(Inline { len, ids, tags }) => ids[..*len as usize].binary_search(id).ok().map(|at| tags[at]),
            Repr::Tree(t) => t.get(id).copied(),
        }
    }

    /// The ids tagged `tag`, newest first (`tag` is never `NO_TAG`), while
    /// the set is inline; `None` once it is a tree, which would be read
    /// whole: an account with that many open orders is looked up in its
    /// `cl_id` table instead.
    pub fn tagged(&self, tag: Tag) -> Option<impl Iterator<Item = OrderId> + '_> {
        debug_assert_ne!(tag, NO_TAG);
        match &self.0 {
            Repr::Inline(Inline { len, ids, tags }) => {
                let n = *len as usize;
                Some(ids[..n].iter().zip(&tags[..n]).rev().filter(move |e| *e.1 == tag).map(|e| *e.0))
            }
            Repr::Tree(_) => None,
        }
    }

    /// Removes `id`; false if it was not there. A tree that shrinks to
    /// half the inline size goes back inline (in `remove_from_tree`, kept
    /// out of line so that the inline case is small enough to inline).
    #[inline]
    pub fn remove(&mut self, id: &OrderId) -> bool {
        match &mut self.0 {
            Repr::Inline(Inline { len, ids, tags }) => {
                let n = *len as usize;
                match ids[..n].binary_search(id) {
                    Ok(at) => {
                        // At most `OPEN_INLINE_MAX` ids: moved one by one
                        // rather than by a call to memmove.
                        for i in at..n - 1 {
                            ids[i] = ids[i + 1];
                            tags[i] = tags[i + 1];
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
            Repr::Inline(Inline { .. }) => unreachable!("called for a tree"),
            Repr::Tree(t) => {
                let had = t.remove(id).is_some();
                if t.len() <= OPEN_INLINE_MAX / 2 {
                    let mut s = OpenSet::new();
                    for (id, tag) in t.iter() {
                        s.insert(*id, *tag);
                    }
                    *self = s;
                }
                had
            }
        }
    }

    /// The ids in increasing order.
    pub fn iter(&self) -> OpenIter<'_> {
        match &self.0 {
            Repr::Inline(Inline { len, ids, .. }) => OpenIter::Inline(ids[..*len as usize].iter()),
            Repr::Tree(t) => OpenIter::Tree(t.keys()),
        }
    }
}

pub enum OpenIter<'a> {
    Inline(std::slice::Iter<'a, OrderId>),
    Tree(std::collections::btree_map::Keys<'a, OrderId, Tag>),
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

/// Untagged: the ledger tags the ids afterwards.
impl FromIterator<OrderId> for OpenSet {
    fn from_iter<I: IntoIterator<Item = OrderId>>(iter: I) -> Self {
        let mut s = OpenSet::new();
        for id in iter {
            s.insert(id, NO_TAG);
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

    /// Against a `BTreeMap` of id to tag through growth past the inline
    /// size and back, with tags cleared on the way.
    #[test]
    fn behaves_as_a_sorted_map_of_tags_inline_and_as_a_tree() {
        let mut s = OpenSet::new();
        let mut m: BTreeMap<OrderId, Tag> = BTreeMap::new();
        let mut x = 7u64;
        for step in 0..4000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let id = OrderId((x >> 33) % 80);
            // Few distinct tags, so that several ids share one.
            let tag = 1 + ((x >> 20) % 5) as Tag;
            // Grow for a while, then shrink.
            let add = if step < 2000 { !x.is_multiple_of(3) } else { x.is_multiple_of(3) };
            if x.is_multiple_of(11) {
                s.set_tag(&id, NO_TAG);
                if let Some(t) = m.get_mut(&id) {
                    *t = NO_TAG;
                }
            } else if add {
                let had = m.contains_key(&id);
                if !had {
                    m.insert(id, tag);
                }
                assert_eq!(s.insert(id, tag), !had);
            } else {
                assert_eq!(s.remove(&id), m.remove(&id).is_some());
            }
            assert_eq!(s.len(), m.len());
            assert!(s.iter().eq(m.keys()));
            assert_eq!(s.contains(&id), m.contains_key(&id));
            assert_eq!(s.tag(&id), m.get(&id).copied());
            let want: Vec<OrderId> = m.iter().rev().filter(|e| *e.1 == tag).map(|e| *e.0).collect();
            match s.tagged(tag) {
                Some(found) => assert_eq!(found.collect::<Vec<_>>(), want),
                None => assert!(m.len() > OPEN_INLINE_MAX / 2, "only a tree answers None"),
            }
        }
        let enc = rmp_serde::to_vec(&s).expect("encodes");
        let ids: BTreeSet<OrderId> = m.keys().copied().collect();
        assert_eq!(enc, rmp_serde::to_vec(&ids).expect("encodes"));
        let back: OpenSet = rmp_serde::from_slice(&enc).expect("decodes");
        assert!(back.iter().eq(m.keys()));
        assert!(m.keys().all(|id| back.tag(id) == Some(NO_TAG)), "decoded untagged");
    }
}
