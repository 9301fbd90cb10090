//! One account's `cl_id` idempotency table: which order a remembered
//! `cl_id` names.
//!
//! A `cl_id` is up to 36 bytes, and the order it names (always in the
//! ledger's order table) holds it already, so the table keeps an 8-byte
//! fingerprint per entry and checks a hit against the order's own `cl_id`:
//! 16 bytes an entry instead of 48, and nothing to rehash but integers when
//! the table grows. Ids of up to 8 bytes are their own fingerprint; longer
//! ones are hashed, and the rare `cl_id` whose fingerprint is taken by
//! another goes to a small exact table.

use rustc_hash::FxHashMap;

use crate::types::{ClId, OrderId};

/// A `cl_id` of at most 8 bytes is its own fingerprint: its bytes (a
/// `cl_id` is ASCII, so the top bit stays clear), read as one word.
fn short(cl: &ClId) -> Option<u64> {
    (cl.as_bytes().len() <= 8).then(|| cl.first_word())
}

/// The fingerprint of a `cl_id`: its bytes when they fit 8, else a hash
/// with the top bit set.
#[cfg(not(test))]
fn fingerprint(cl: &ClId) -> u64 {
    short(cl).unwrap_or_else(|| {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        h.write(cl.as_bytes());
        h.finish() | 1 << 63
    })
}

/// Under test every long `cl_id` has the same fingerprint, so that the
/// exact table for clashing ones is exercised.
#[cfg(test)]
fn fingerprint(cl: &ClId) -> u64 {
    short(cl).unwrap_or(1 << 63)
}

/// `cl_id` -> order. Each `cl_id` is in `by_fp` or in `clash`, never both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClIdIndex {
    by_fp: FxHashMap<u64, OrderId>,
    clash: FxHashMap<ClId, OrderId>,
}

impl ClIdIndex {
    pub fn len(&self) -> usize {
        self.by_fp.len() + self.clash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order `cl` names; `named(id, cl)` says whether known order
    /// `id`'s own `cl_id` is `cl` (compared where the order keeps it, not
    /// copied out).
    pub fn get(&self, cl: &ClId, named: impl Fn(OrderId, &ClId) -> bool) -> Option<OrderId> {
        if let Some(&id) = self.by_fp.get(&fingerprint(cl)) {
            if named(id, cl) {
                return Some(id);
            }
        }
        if self.clash.is_empty() {
            return None;
        }
        self.clash.get(cl).copied()
    }

    /// Makes `cl` name `id` (replacing what it named).
    pub fn insert(&mut self, cl: ClId, id: OrderId, named: impl Fn(OrderId, &ClId) -> bool) {
        use std::collections::hash_map::Entry;
        let fp = fingerprint(&cl);
        // One probe of the table, whether the fingerprint is there or not.
        match self.by_fp.entry(fp) {
            Entry::Vacant(v) => {
                v.insert(id);
                if !self.clash.is_empty() {
                    self.clash.remove(&cl);
                }
            }
            Entry::Occupied(mut o) if named(*o.get(), &cl) => {
                o.insert(id);
            }
            Entry::Occupied(_) => {
                self.clash.insert(cl, id);
            }
        }
    }

    /// Forgets `cl` if it names `id` (whose own `cl_id` is `cl`); true if it did.
    pub fn remove_if(&mut self, cl: &ClId, id: OrderId) -> bool {
        let fp = fingerprint(cl);
        if self.by_fp.get(&fp) == Some(&id) {
            self.by_fp.remove(&fp);
            return true;
        }
        if self.clash.get(cl) == Some(&id) {
            self.clash.remove(cl);
            return true;
        }
        false
    }

    /// Every entry, by `cl_id`.
    pub fn entries(&self, cl_of: impl Fn(OrderId) -> Option<ClId>) -> Vec<(ClId, OrderId)> {
        let mut all: Vec<(ClId, OrderId)> = self
            .by_fp
            .values()
            .map(|&id| (cl_of(id).unwrap_or_default(), id))
            .chain(self.clash.iter().map(|(c, id)| (*c, *id)))
            .collect();
        all.sort_unstable();
        all
    }
}

impl FromIterator<(ClId, OrderId)> for ClIdIndex {
    fn from_iter<I: IntoIterator<Item = (ClId, OrderId)>>(iter: I) -> Self {
        let mut all: Vec<(ClId, OrderId)> = iter.into_iter().collect();
        all.sort_unstable();
        let names: FxHashMap<OrderId, ClId> = all.iter().map(|(c, id)| (*id, *c)).collect();
        let mut t = ClIdIndex::default();
        for (c, id) in all {
            t.insert(c, id, |o, c| names.get(&o) == Some(c));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A short `cl_id`'s fingerprint is its bytes, zero-padded to a word.
    #[test]
    fn short_fingerprint_is_the_padded_bytes() {
        for s in ["a", "ab", "abc-_9", "abcdefg", "abcdefgh"] {
            let mut w = [0u8; 8];
            w[..s.len()].copy_from_slice(s.as_bytes());
            assert_eq!(short(&ClId::new(s).expect("short")), Some(u64::from_le_bytes(w)), "{s}");
        }
        assert_eq!(short(&ClId::new("abcdefghi").expect("short")), None);
    }

    /// Against an exact map, with short ids (their own fingerprints) and
    /// long ones (all clashing under test).
    #[test]
    fn behaves_as_an_exact_map_with_clashing_fingerprints() {
        let mut t = ClIdIndex::default();
        let mut m: BTreeMap<ClId, OrderId> = BTreeMap::new();
        // Each order's own cl_id, as the order table would give it.
        let mut names: FxHashMap<OrderId, ClId> = FxHashMap::default();
        let mut x = 3u64;
        for step in 1..5000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = (x >> 40) % 30;
            let cl = ClId::new(&if n.is_multiple_of(2) { format!("s{n}") } else { format!("long-client-order-{n}") }).expect("short");
            let id = OrderId(step);
            let of = |names: &FxHashMap<OrderId, ClId>| {
                let names = names.clone();
                move |o: OrderId, c: &ClId| names.get(&o) == Some(c)
            };
            assert_eq!(t.get(&cl, of(&names)), m.get(&cl).copied(), "{cl}");
            if x.is_multiple_of(3) {
                if let Some(&old) = m.get(&cl) {
                    assert!(t.remove_if(&cl, old));
                    assert!(!t.remove_if(&cl, old));
                    m.remove(&cl);
                }
            } else {
                names.insert(id, cl);
                t.insert(cl, id, of(&names));
                m.insert(cl, id);
            }
            assert_eq!(t.len(), m.len());
        }
        assert!(!t.clash.is_empty(), "long ids clashed");
        let names2 = names.clone();
        let entries = t.entries(move |o| names2.get(&o).copied());
        assert_eq!(entries, m.iter().map(|(c, id)| (*c, *id)).collect::<Vec<_>>());
        let rebuilt: ClIdIndex = entries.iter().copied().collect();
        assert_eq!(rebuilt.len(), t.len());
        for (c, id) in &m {
            assert_eq!(rebuilt.get(c, |o, c| names.get(&o) == Some(c)), Some(*id));
        }
    }
}
