//! One account's `cl_id` idempotency table: which order a remembered
//! `cl_id` names.
//!
//! Most clients number their orders: a prefix and a counter (`b41`, `b42`,
//! ...). Each new `cl_id` of theirs is then greater than every one the
//! account used before, in shortlex order (shorter first, then by bytes),
//! and two things follow:
//! * a new order's `cl_id` is known to be new without reading any table:
//!   `high` is the greatest one taken so far, and sits in the account's
//!   record, which the order reads anyway;
//! * the day's `cl_id`s are kept in the order they were used, which is
//!   their order too: appended to `hist` (a store to its tail, never a
//!   read), and found there by binary search. Each entry carries the time
//!   it was used, so `hist` is also the queue by which they are forgotten
//!   (oldest first); the ledger keeps such a queue only for the others.
//!
//! So a numbered order never reads a cold hash table group, and the day's
//! table does not grow by rehashing. A cancel or amend by `cl_id` pays
//! instead: a binary search of `hist`, a chain of a few dependent reads.
//! Measured, that costs less than what it saves (BENCHMARKS.md, round 12),
//! and less than keeping the open orders' `cl_id`s in a table of their own
//! (one more cold line for every new order and every close).
//!
//! `cl_id`s that do not rise (random ones, a restarted counter, ids longer
//! than 8 bytes) go to a hash table. It keeps an 8-byte fingerprint per
//! entry and checks a hit against the order's own `cl_id` (every
//! remembered order is in the ledger's order table): ids of up to 8 bytes
//! are their own fingerprint, longer ones are hashed, and the rare `cl_id`
//! whose fingerprint is taken by another goes to a small exact table.

use rustc_hash::FxHashMap;

use crate::lazy::Lazy;
use crate::segqueue::SegQueue;
use crate::types::{ClId, OrderId};

/// What a forgotten entry of `hist` names until it reaches the front.
const GONE: OrderId = OrderId(u64::MAX);

/// A `cl_id` of at most 8 bytes is its own fingerprint: its bytes (a
/// `cl_id` is ASCII, so the top bit stays clear), read as one word.
fn short(cl: &ClId) -> Option<u64> {
    (cl.as_bytes().len() <= 8).then(|| cl.first_word())
}

/// The shortlex rank of a `cl_id` of 1 to 8 ASCII bytes, as a word that
/// orders as the ids do: the length in bits 56 to 59, then the bytes' low
/// seven bits, first byte highest. `None` for other ids, which always go
/// to the hash table.
fn rank(cl: &ClId) -> Option<u64> {
    let n = cl.as_bytes().len();
    let w = cl.first_word();
    if n == 0 || n > 8 || w & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    Some((n as u64) << 56 | pack7(w))
}

/// The low seven bits of each byte of `w`, first (lowest) byte highest, as
/// one 56-bit number: the bytes in reading order, then neighbours joined in
/// three steps (pairs, fours, all eight) instead of one byte at a time.
#[inline]
fn pack7(w: u64) -> u64 {
    let x = w.swap_bytes() & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | (x & 0x7f00_7f00_7f00_7f00) >> 1;
    let x = (x & 0x0000_3fff_0000_3fff) | (x & 0x3fff_0000_3fff_0000) >> 2;
    (x & 0x0fff_ffff) | (x & 0x0fff_ffff_0000_0000) >> 4
}

/// The `cl_id` of a rank.
fn unrank(r: u64) -> ClId {
    let n = (r >> 56) as usize;
    let mut b = [0u8; 8];
    for (i, byte) in b.iter_mut().enumerate().take(n) {
        *byte = (r >> (7 * (7 - i)) & 0x7f) as u8;
    }
    ClId::new(std::str::from_utf8(&b[..n]).expect("a rank holds ASCII")).expect("at most 8 bytes")
}

/// The fingerprint of a `cl_id`: its bytes when they fit 8, else a hash
/// with the top bit set.
#[cfg(not(test))]
pub(crate) fn fingerprint(cl: &ClId) -> u64 {
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
pub(crate) fn fingerprint(cl: &ClId) -> u64 {
    short(cl).unwrap_or(1 << 63)
}

/// Where a forgotten `cl_id` was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// In the hash tables: the caller's queue by age holds its order.
    Hashed,
    /// In `hist`, with its time.
    Listed,
}

/// An entry of `hist`: a `cl_id`'s rank, its order, and when it was used.
type Listed = (u64, OrderId, u64);

/// `cl_id` -> order. Each `cl_id` is in exactly one of `hist`, `by_fp`
/// and `clash`, and every one that has a rank ranks at most `high`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClIdIndex {
    /// The greatest rank that entered `hist` (0: none yet); it never falls.
    high: u64,
    /// Entries of `hist` not forgotten.
    hist_live: usize,
    /// When `hist`'s front entry was used (0 when it is empty), so that a
    /// new order sees whether it is due to be forgotten without reading it.
    hist_oldest: u64,
    /// Rising `cl_id`s by rank with their orders and times, in the order
    /// used; an entry forgotten before it reaches the front names `GONE`
    /// (the front never does).
    hist: SegQueue<Listed>,
    /// The hash tables, made at the first `cl_id` that does not rise.
    hashed: Lazy<Hashed>,
}

/// `cl_id`s that do not rise: by fingerprint, and the few whose
/// fingerprint another took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Hashed {
    by_fp: FxHashMap<u64, OrderId>,
    clash: FxHashMap<ClId, OrderId>,
}

impl ClIdIndex {
    pub fn len(&self) -> usize {
        self.hist_live + self.hashed.get().map_or(0, |h| h.by_fp.len() + h.clash.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order of `hist`'s entry for rank `r`, if it has one (maybe `GONE`).
    fn hist_get(&self, r: u64) -> Option<OrderId> {
        self.hist.first_not(|e| e.0 < r).filter(|e| e.0 == r).map(|e| e.1)
    }

    /// Entries of `hist`, which keeps its own times.
    pub fn hist_len(&self) -> usize {
        self.hist_live
    }

    /// When the oldest entry of `hist` was used, if it has one.
    pub fn hist_oldest(&self) -> Option<u64> {
        (self.hist_live > 0).then_some(self.hist_oldest)
    }

    /// The order of `hist`'s oldest entry.
    pub fn hist_front(&self) -> Option<OrderId> {
        self.hist.front().map(|e| e.1)
    }

    /// Forgets `hist`'s oldest entry; the order it named.
    pub fn pop_hist_front(&mut self) -> Option<OrderId> {
        let (_, id, _) = self.hist.pop_front()?;
        self.hist_live -= 1;
        self.hist_front_changed();
        Some(id)
    }

    /// Drops the forgotten entries at the front of `hist` and re-reads its oldest time.
    fn hist_front_changed(&mut self) {
        while self.hist.front().is_some_and(|e| e.1 == GONE) {
            self.hist.pop_front();
        }
        self.hist_oldest = self.hist.front().map_or(0, |e| e.2);
    }

    /// `hist`'s entries, oldest first: (time used, order).
    pub fn hist_entries(&self) -> impl Iterator<Item = (u64, OrderId)> + '_ {
        self.hist.iter().filter(|e| e.1 != GONE).map(|e| (e.2, e.1))
    }

    /// The order `cl` names; `named(id, cl)` says whether known order
    /// `id`'s own `cl_id` is `cl` (compared where the order keeps it, not
    /// copied out).
    pub fn get(&self, cl: &ClId, named: impl Fn(OrderId, &ClId) -> bool) -> Option<OrderId> {
        let ranked = rank(cl);
        if ranked.is_some_and(|r| r > self.high) {
            // Above every ranked cl_id held: new, with no table read.
            return None;
        }
        if let Some(h) = self.hashed.get() {
            if let Some(&id) = h.by_fp.get(&fingerprint(cl)) {
                if named(id, cl) {
                    return Some(id);
                }
            }
            if !h.clash.is_empty() {
                if let Some(&id) = h.clash.get(cl) {
                    return Some(id);
                }
            }
        }
        // A closed order's rising cl_id.
        let r = ranked?;
        self.hist_get(r).filter(|&id| id != GONE)
    }

    /// Makes `cl`, new or forgotten, name `id`, an order accepted at
    /// `ts`. True if `hist` took it, with its time; false if the caller is
    /// to queue it by age.
    pub fn insert(&mut self, cl: ClId, id: OrderId, ts: u64, named: impl Fn(OrderId, &ClId) -> bool) -> bool {
        if let Some(r) = rank(&cl) {
            if r > self.high {
                if self.hist.is_empty() {
                    self.hist_oldest = ts;
                }
                self.hist.push_back((r, id, ts));
                self.hist_live += 1;
                self.high = r;
                return true;
            }
        }
        self.insert_hashed(cl, id, named);
        false
    }

    /// Makes `cl` name `id` in the hash tables.
    pub fn insert_hashed(&mut self, cl: ClId, id: OrderId, named: impl Fn(OrderId, &ClId) -> bool) {
        use std::collections::hash_map::Entry;
        let fp = fingerprint(&cl);
        let h = self.hashed.force();
        // One probe of the table, whether the fingerprint is there or not.
        match h.by_fp.entry(fp) {
            Entry::Vacant(v) => {
                v.insert(id);
                if !h.clash.is_empty() {
                    h.clash.remove(&cl);
                }
            }
            Entry::Occupied(mut o) if named(*o.get(), &cl) => {
                o.insert(id);
            }
            Entry::Occupied(_) => {
                h.clash.insert(cl, id);
            }
        }
    }

    /// Forgets `cl` if it names `id` (whose own `cl_id` is `cl`); where it
    /// was kept, if it did.
    pub fn remove_if(&mut self, cl: &ClId, id: OrderId) -> Option<Kept> {
        if let Some(h) = self.hashed.get_mut() {
            let fp = fingerprint(cl);
            if h.by_fp.get(&fp) == Some(&id) {
                h.by_fp.remove(&fp);
                return Some(Kept::Hashed);
            }
            if !h.clash.is_empty() && h.clash.get(cl) == Some(&id) {
                h.clash.remove(cl);
                return Some(Kept::Hashed);
            }
        }
        let r = rank(cl)?;
        match self.hist.first_not_mut(|e| e.0 < r) {
            Some(e) if (e.0, e.1) == (r, id) => e.1 = GONE,
            _ => return None,
        }
        self.hist_live -= 1;
        self.hist_front_changed();
        Some(Kept::Listed)
    }

    /// Every entry, by `cl_id`.
    pub fn entries(&self, cl_of: impl Fn(OrderId) -> Option<ClId>) -> Vec<(ClId, OrderId)> {
        let hashed = self.hashed.get().into_iter();
        let mut all: Vec<(ClId, OrderId)> = hashed
            .clone()
            .flat_map(|h| h.by_fp.values())
            .map(|&id| (cl_of(id).unwrap_or_default(), id))
            .chain(hashed.flat_map(|h| h.clash.iter()).map(|(c, id)| (*c, *id)))
            .chain(self.hist.iter().filter(|e| e.1 != GONE).map(|&(r, id, _)| (unrank(r), id)))
            .collect();
        all.sort_unstable();
        all
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

    /// Against an exact map, with short ids drawn again and again (their
    /// own fingerprints), long ones (all clashing under test) and a rising
    /// counter (`hist`), which removals, closes and re-uses also reach.
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
            let cl = ClId::new(&match n % 3 {
                0 => format!("s{n}"),
                1 => format!("long-client-order-{n}"),
                _ if x.is_multiple_of(5) => format!("c{}", step.saturating_sub(x >> 54)),
                _ => format!("c{step}"),
            })
            .expect("short");
            let id = OrderId(step);
            let of = |names: &FxHashMap<OrderId, ClId>| {
                let names = names.clone();
                move |o: OrderId, c: &ClId| names.get(&o) == Some(c)
            };
            assert_eq!(t.get(&cl, of(&names)), m.get(&cl).copied(), "{cl}");
            match (x >> 20) % 3 {
                // Forget it (a refused order, or its time is up).
                0 => {
                    if let Some(&old) = m.get(&cl) {
                        let listed = t.hist_entries().any(|e| e.1 == old);
                        let kept = if listed { Kept::Listed } else { Kept::Hashed };
                        assert_eq!(t.remove_if(&cl, old), Some(kept));
                        assert_eq!(t.remove_if(&cl, old), None);
                        m.remove(&cl);
                    }
                }
                // A new order, as the ledger adds one: only for a cl_id not remembered.
                _ => {
                    if let std::collections::btree_map::Entry::Vacant(v) = m.entry(cl) {
                        names.insert(id, cl);
                        let listed = t.insert(cl, id, step, of(&names));
                        assert_eq!(listed, t.hist_entries().any(|e| e.1 == id));
                        v.insert(id);
                    }
                }
            }
            assert_eq!(t.len(), m.len());
        }
        assert!(t.hashed.get().is_some_and(|h| !h.clash.is_empty()), "long ids clashed");
        assert!(t.hist.len() > 100 && t.high > 0, "the counter took hist");
        assert!(t.hist.iter().any(|e| e.1 == GONE), "some were forgotten out of turn");
        for (c, id) in &m {
            assert_eq!(t.get(c, |o, c| names.get(&o) == Some(c)), Some(*id), "{c}");
        }
        let names2 = names.clone();
        let entries = t.entries(move |o| names2.get(&o).copied());
        assert_eq!(entries, m.iter().map(|(c, id)| (*c, *id)).collect::<Vec<_>>());
        // Forgotten in the order used: hist's entries by time, each
        // named by its cl_id until then.
        let mut last = 0;
        while let Some(id) = t.hist_front() {
            let ts = t.hist_oldest().expect("not empty");
            assert!(ts >= last);
            last = ts;
            let c = names[&id];
            assert_eq!(t.get(&c, |o, c| names.get(&o) == Some(c)), Some(id));
            assert_eq!(t.pop_hist_front(), Some(id));
            assert_eq!(t.get(&c, |o, c| names.get(&o) == Some(c)), None, "{c}");
        }
        assert_eq!((t.hist_len(), t.hist_oldest(), t.hist.len()), (0, None, 0));
    }

    /// The three-step packing agrees with packing one byte at a time.
    #[test]
    fn packing_takes_each_bytes_low_seven_bits_first_byte_highest() {
        let one_at_a_time = |w: u64| (0..8).fold(0u64, |r, i| r << 7 | (w >> (8 * i) & 0x7f));
        let mut w = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            assert_eq!(pack7(w), one_at_a_time(w), "{w:#x}");
            w ^= w << 13;
            w ^= w >> 7;
            w ^= w << 17;
        }
        for w in [0, u64::MAX, 0x7f7f_7f7f_7f7f_7f7f, 0x01, 0x7f << 56, 0x8080_8080_8080_8080] {
            assert_eq!(pack7(w), one_at_a_time(w), "{w:#x}");
        }
    }

    /// Ranks order ids as shortlex does (length first, then bytes), and
    /// give each ranked id back.
    #[test]
    fn rank_is_shortlex_and_exact() {
        let ids = ["a", "z", "00", "b9", "b10", "b11", "b99", "b100", "zzzzzzz", "-_AZaz09", "b1234567"];
        let ranks: Vec<u64> = ids.iter().map(|s| rank(&ClId::new(s).expect("short")).expect("ranked")).collect();
        for (i, (a, ra)) in ids.iter().zip(&ranks).enumerate() {
            assert_eq!(unrank(*ra).as_str(), *a);
            for (b, rb) in ids.iter().zip(&ranks).skip(i + 1) {
                let shortlex = (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes()));
                assert_eq!(ra.cmp(rb), shortlex, "{a} {b}");
            }
        }
        assert_eq!(rank(&ClId::new("b12345678").expect("short")), None, "nine bytes");
        assert_eq!(rank(&ClId::new("é").expect("short")), None, "not ASCII");
        assert_eq!(rank(&ClId::default()), None, "empty");
    }

    /// A counter's ids never reach the hash tables: `hist` keeps them all.
    #[test]
    fn a_counter_stays_out_of_the_hash_tables() {
        let none = |_: OrderId, _: &ClId| -> bool { panic!("no hash table entry to check") };
        let cl = |k: u64| ClId::new(&format!("b{k}")).expect("short");
        let mut t = ClIdIndex::default();
        for k in 1..=300 {
            assert_eq!(t.get(&cl(k), none), None);
            assert!(t.insert(cl(k), OrderId(k), 1000 + k, none));
        }
        assert_eq!((t.hashed.get().map_or(0, |h| h.by_fp.len()), t.hist_live), (0, 300));
        for k in 1..=300 {
            assert_eq!(t.get(&cl(k), none), Some(OrderId(k)));
        }
        // Above `high`: new; below it but never used: unknown.
        assert_eq!(t.get(&cl(301), none), None);
        assert_eq!(t.get(&ClId::new("a5").expect("short"), none), None);
        // Forgotten out of turn, then in turn: the front goes, the middle
        // stays as a gap until it reaches the front.
        assert_eq!(t.remove_if(&cl(150), OrderId(150)), Some(Kept::Listed));
        assert_eq!(t.remove_if(&cl(150), OrderId(150)), None);
        assert_eq!(t.get(&cl(150), none), None);
        for k in 1..150 {
            assert_eq!(t.remove_if(&cl(k), OrderId(k)), Some(Kept::Listed));
        }
        assert_eq!(t.hist.front(), Some(&(rank(&cl(151)).expect("ranked"), OrderId(151), 1151)));
        assert_eq!((t.hist_oldest(), t.hist_front()), (Some(1151), Some(OrderId(151))));
        assert_eq!((t.len(), t.hashed.get().map_or(0, |h| h.by_fp.len())), (150, 0));
        // A forgotten one used again goes to the hash table.
        let named = |id: OrderId, c: &ClId| id == OrderId(1000) && c.as_str() == "b150";
        assert!(!t.insert(cl(150), OrderId(1000), 5000, named));
        assert_eq!(t.get(&cl(150), named), Some(OrderId(1000)));
        assert_eq!((t.len(), t.hashed.get().map_or(0, |h| h.by_fp.len())), (151, 1));
    }
}
