//! The `cl_id` idempotency tables: which order a remembered `cl_id` names,
//! for every account, and when each was used.
//!
//! Every `cl_id` taken goes to the tail of one log (`ClLog`), in the order
//! used, each entry linked to its account's previous one: the log's tail,
//! which every new order writes, is one place in memory, written in order.
//! (Kept in a queue per account, each new order wrote to the cold tail of
//! its own account's queue: a tenth of a `mixed` stream's time,
//! BENCHMARKS.md, round 18.) The log is also the order in which `cl_id`s
//! are forgotten, oldest first, once the window has passed.
//!
//! Most clients number their orders: a prefix and a counter (`b41`, `b42`,
//! ...). Each new `cl_id` of theirs is then greater than every one the
//! account used before, in shortlex order (shorter first, then by bytes),
//! and two things follow:
//! * a new order's `cl_id` is known to be new without reading any table:
//!   `high` is the greatest one taken so far, and sits in the account's
//!   record, which the order reads anyway;
//! * along an account's links, newest first, such `cl_id`s fall: a repeated
//!   one is found by walking back from the account's newest entry, or from
//!   one of its marks (its every `MARK_EVERY`th entry, with the greatest
//!   rank up to it), at most `MARK_EVERY` entries.
//!
//! `cl_id`s that do not rise (random ones, a restarted counter, ids longer
//! than 8 bytes) are in the log too, for their time, and are found through
//! a hash table. It keeps an 8-byte fingerprint per entry and checks a hit
//! against the order's own `cl_id` (every remembered order is in the
//! ledger's order table): ids of up to 8 bytes are their own fingerprint,
//! longer ones are hashed, and the rare `cl_id` whose fingerprint is taken
//! by another goes to a small exact table.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::lazy::Lazy;
use crate::types::{AccountId, ClId, OrderId};

/// What an entry forgotten out of turn names until it reaches the front.
const GONE: OrderId = OrderId(u64::MAX);
/// No entry.
const NONE: u64 = u64::MAX;
/// The rank of an entry whose `cl_id` the hash tables keep: below every
/// `cl_id`'s rank (a rank holds the length, at least 1, in bits 56 to 59).
const HASHED: u64 = 0;
/// Entries per block of the log. The log grows a block at a time and never
/// copies what it holds to grow.
const BLOCK: usize = 4096;
/// An account marks every `MARK_EVERY`th of its entries.
pub const MARK_EVERY: u64 = 16;

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

/// One `cl_id` taken: its rank (`HASHED` when the hash tables keep it),
/// its order (`GONE` once forgotten out of turn), and the place of its
/// account's previous entry (`NONE` for the first). When it was used and
/// by whom are in the order's record, which the ledger keeps while the
/// `cl_id` is remembered: 24 bytes an entry, what each new order writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    rank: u64,
    pub id: OrderId,
    prev: u64,
}

impl Entry {
    /// Whether it was forgotten out of turn.
    pub fn gone(&self) -> bool {
        self.id == GONE
    }
}

/// Every account's remembered `cl_id`s in the order used. Places count
/// from the first entry ever taken; those before `front` are forgotten.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClLog {
    /// The place of `blocks[0][0]`.
    start: u64,
    /// The place of the oldest entry kept.
    front: u64,
    /// The place the next entry takes.
    end: u64,
    blocks: VecDeque<Vec<Entry>>,
    /// When the front entry's order was accepted, once the ledger has
    /// looked (0 until then): a new order sees that nothing is due to be
    /// forgotten without reading that order's record.
    pub front_ts: u64,
}

impl ClLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries kept, forgotten ones among them until they reach the front.
    pub fn len(&self) -> usize {
        (self.end - self.front) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.front
    }

    #[inline]
    fn get(&self, at: u64) -> Option<&Entry> {
        if at < self.front || at >= self.end {
            return None;
        }
        let i = (at - self.start) as usize;
        self.blocks.get(i / BLOCK).and_then(|b| b.get(i % BLOCK))
    }

    fn get_mut(&mut self, at: u64) -> Option<&mut Entry> {
        if at < self.front || at >= self.end {
            return None;
        }
        let i = (at - self.start) as usize;
        self.blocks.get_mut(i / BLOCK).and_then(|b| b.get_mut(i % BLOCK))
    }

    #[inline]
    fn push(&mut self, e: Entry) -> u64 {
        if self.blocks.back().is_none_or(|b| b.len() == BLOCK) {
            self.blocks.push_back(Vec::with_capacity(BLOCK));
        }
        let b = self.blocks.back_mut().expect("a block");
        b.push(e);
        crate::ahead::tail(b.spare_capacity_mut(), 16);
        self.end += 1;
        self.end - 1
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&Entry> {
        self.get(self.front)
    }

    /// Takes the oldest entry off.
    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = *self.get(self.front)?;
        self.front += 1;
        self.front_ts = 0;
        if self.front - self.start == BLOCK as u64 {
            self.blocks.pop_front();
            self.start += BLOCK as u64;
        }
        Some(e)
    }

    /// Forgets the entry at `at` out of turn: it names `GONE` until it
    /// reaches the front. What it was.
    fn take(&mut self, at: u64) -> Option<Entry> {
        let e = self.get_mut(at)?;
        let was = *e;
        e.id = GONE;
        Some(was)
    }

    /// Every entry kept, oldest first (forgotten ones included).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        let skip = (self.front - self.start) as usize;
        self.blocks.iter().flatten().skip(skip)
    }

    /// Checks that the log holds what it counts, its orders in the order
    /// used (order ids rise with time).
    pub fn check(&self) {
        assert_eq!(self.entries().count(), self.len(), "the log holds what it counts");
        let ids: Vec<OrderId> = self.entries().filter(|e| !e.gone()).map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the order used");
    }
}

/// One account's `cl_id`s: `high`, the hash tables, and where its entries
/// are in the log. Every `cl_id` it remembers is in the hash tables or
/// ranked in the log (not both), and every rank in the log is at most
/// `high`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClIdIndex {
    /// The greatest rank that entered the log (0: none yet); it never falls.
    high: u64,
    /// The place of the account's newest entry (`NONE`: none).
    newest: u64,
    /// Entries in the log not forgotten.
    live: usize,
    /// Entries ever taken, which numbers them for the marks.
    taken: u64,
    /// (`high` after it, place) of every `MARK_EVERY`th entry, oldest first.
    marks: VecDeque<(u64, u64)>,
    /// The hash tables, made at the first `cl_id` that does not rise.
    hashed: Lazy<Hashed>,
}

impl Default for ClIdIndex {
    fn default() -> Self {
        ClIdIndex { high: 0, newest: NONE, live: 0, taken: 0, marks: VecDeque::new(), hashed: Lazy::default() }
    }
}

/// `cl_id`s that do not rise: by fingerprint, and the few whose
/// fingerprint another took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Hashed {
    by_fp: FxHashMap<u64, OrderId>,
    clash: FxHashMap<ClId, OrderId>,
}

impl ClIdIndex {
    /// Entries of the account in the log, not forgotten.
    pub fn live(&self) -> usize {
        self.live
    }

    /// The place of the log entry ranked `r`, if there is one: walked back
    /// from the first mark at or above it, or from the newest entry.
    fn find(&self, r: u64, log: &ClLog) -> Option<u64> {
        let m = self.marks.partition_point(|m| m.0 < r);
        let mut at = self.marks.get(m).map_or(self.newest, |m| m.1);
        while let Some(e) = log.get(at) {
            if e.rank == r {
                return (e.id != GONE).then_some(at);
            }
            if e.rank != HASHED && e.rank < r {
                return None;
            }
            at = e.prev;
        }
        None
    }

    /// The place of the account's entry for order `id`, walked back from
    /// the newest (a refused order's, which is at or near it).
    fn find_id(&self, id: OrderId, log: &ClLog) -> Option<u64> {
        let mut at = self.newest;
        while let Some(e) = log.get(at) {
            if e.id == id {
                return Some(at);
            }
            at = e.prev;
        }
        None
    }

    /// The order `cl` names; `named(id, cl)` says whether known order
    /// `id`'s own `cl_id` is `cl` (compared where the order keeps it, not
    /// copied out).
    pub fn get(&self, cl: &ClId, named: impl Fn(OrderId, &ClId) -> bool, log: &ClLog) -> Option<OrderId> {
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
        let at = self.find(ranked?, log)?;
        log.get(at).map(|e| e.id)
    }

    /// Makes `cl`, new or forgotten, name `id`, a new order of this
    /// account, and appends it to the log.
    pub fn insert(&mut self, cl: ClId, id: OrderId, named: impl Fn(OrderId, &ClId) -> bool, log: &mut ClLog) {
        let r = match rank(&cl) {
            Some(r) if r > self.high => {
                self.high = r;
                r
            }
            _ => {
                self.insert_hashed(cl, id, named);
                HASHED
            }
        };
        let at = log.push(Entry { rank: r, id, prev: self.newest });
        self.newest = at;
        self.live += 1;
        self.taken += 1;
        if self.taken.is_multiple_of(MARK_EVERY) {
            self.marks.push_back((self.high, at));
        }
    }

    /// Makes `cl` name `id` in the hash tables (without a time: a `cl_id`
    /// older encodings kept so is never forgotten).
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

    /// Takes `cl` out of the hash tables if it names `id` there.
    fn unhash(&mut self, cl: &ClId, id: OrderId) -> bool {
        let Some(h) = self.hashed.get_mut() else { return false };
        let fp = fingerprint(cl);
        if h.by_fp.get(&fp) == Some(&id) {
            h.by_fp.remove(&fp);
            return true;
        }
        if !h.clash.is_empty() && h.clash.get(cl) == Some(&id) {
            h.clash.remove(cl);
            return true;
        }
        false
    }

    /// Forgets `cl` if it names `id` (whose own `cl_id` is `cl`), out of
    /// turn (a refused order's); whether it did.
    pub fn remove_if(&mut self, cl: &ClId, id: OrderId, log: &mut ClLog) -> bool {
        let at = if self.unhash(cl, id) {
            match self.find_id(id, log) {
                Some(at) => Some(at),
                // Kept without a time.
                None => return true,
            }
        } else {
            rank(cl).and_then(|r| self.find(r, log)).filter(|&at| log.get(at).is_some_and(|e| e.id == id))
        };
        let Some(at) = at else { return false };
        log.take(at);
        self.live -= 1;
        true
    }

    /// Forgets entry `e` of this account, taken off the log (its time is
    /// up, or the account is at its limit); `cl` is its order's `cl_id`.
    /// Marks of entries the log no longer keeps go too, so that an account
    /// that stopped trading does not keep them.
    pub fn forget(&mut self, e: &Entry, cl: &ClId, log: &ClLog) {
        if e.rank == HASHED {
            self.unhash(cl, e.id);
        }
        self.live -= 1;
        while self.marks.front().is_some_and(|m| m.1 < log.front) {
            self.marks.pop_front();
        }
    }

    /// Takes the account's oldest entry off the log out of turn (the
    /// account is at its limit): walked back from its first mark still in
    /// the log, or from its newest entry, and on from the marks after it
    /// if every entry there was forgotten.
    pub fn take_oldest(&mut self, log: &mut ClLog) -> Option<Entry> {
        let ends = self.marks.iter().map(|m| m.1).filter(|&at| at >= log.front).chain(std::iter::once(self.newest));
        let mut after = log.front;
        for end in ends {
            let mut at = end;
            let mut oldest = None;
            while let Some(e) = log.get(at).filter(|_| at >= after) {
                if e.id != GONE {
                    oldest = Some(at);
                }
                at = e.prev;
            }
            if let Some(at) = oldest {
                return log.take(at);
            }
            after = end.saturating_add(1);
        }
        None
    }

    /// The account's orders in the log not forgotten, oldest first.
    pub fn by_age(&self, log: &ClLog) -> Vec<OrderId> {
        let mut all = Vec::with_capacity(self.live);
        let mut at = self.newest;
        while let Some(e) = log.get(at) {
            if e.id != GONE {
                all.push(e.id);
            }
            at = e.prev;
        }
        all.reverse();
        all
    }

    /// Every entry, by `cl_id`.
    pub fn entries(&self, cl_of: impl Fn(OrderId) -> Option<ClId>, log: &ClLog) -> Vec<(ClId, OrderId)> {
        let hashed = self.hashed.get().into_iter();
        let mut all: Vec<(ClId, OrderId)> = hashed
            .clone()
            .flat_map(|h| h.by_fp.values())
            .map(|&id| (cl_of(id).unwrap_or_default(), id))
            .chain(hashed.flat_map(|h| h.clash.iter()).map(|(c, id)| (*c, *id)))
            .collect();
        let mut at = self.newest;
        while let Some(e) = log.get(at) {
            if e.rank != HASHED && e.id != GONE {
                all.push((unrank(e.rank), e.id));
            }
            at = e.prev;
        }
        all.sort_unstable();
        all
    }

    /// Checks the account's links and marks against the log: `live` of its
    /// entries, ranks falling and at most `high` along the links; `mine`
    /// says whether an order is the account's.
    pub fn check(&self, account: AccountId, log: &ClLog, mine: impl Fn(OrderId) -> bool) {
        let (mut live, mut last, mut at) = (0, u64::MAX, self.newest);
        while let Some(e) = log.get(at) {
            assert!(e.id == GONE || mine(e.id), "{account:?}'s links stay among its entries");
            if e.rank != HASHED {
                assert!(e.rank <= self.high && e.rank < last, "ranks fall along the links, from at most high");
                last = e.rank;
            }
            live += usize::from(e.id != GONE);
            assert!(e.prev == NONE || e.prev < at, "links go back");
            at = e.prev;
        }
        assert_eq!(live, self.live, "{account:?} has as many entries as it counts");
        assert!(self.marks.iter().zip(self.marks.iter().skip(1)).all(|(a, b)| a.0 <= b.0 && a.1 < b.1), "marks rise");
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
    /// counter (ranked in the log), for two accounts sharing one log, which
    /// refusals (out of turn), the window (from the log's front) and the
    /// limit (an account's oldest) all reach.
    #[test]
    fn behaves_as_an_exact_map_with_clashing_fingerprints() {
        let mut log = ClLog::new();
        let mut t = [ClIdIndex::default(), ClIdIndex::default()];
        let mut m: [BTreeMap<ClId, OrderId>; 2] = [BTreeMap::new(), BTreeMap::new()];
        // Each order's own cl_id, as the order table would give it.
        let mut names: FxHashMap<OrderId, ClId> = FxHashMap::default();
        // Each order's account and time, as its record would give them.
        let mut whose: FxHashMap<OrderId, (usize, u64)> = FxHashMap::default();
        let mut x = 3u64;
        let mut due = 0;
        let mut clashed = [false; 2];
        let mut gone_at_front = 0;
        for step in 1..8000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let k = (x >> 60) as usize % 2;
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
            assert_eq!(t[k].get(&cl, of(&names), &log), m[k].get(&cl).copied(), "{cl}");
            match (x >> 20) % 7 {
                // Refused: forgotten out of turn.
                0 => {
                    if let Some(&old) = m[k].get(&cl) {
                        assert!(t[k].remove_if(&cl, old, &mut log));
                        assert!(!t[k].remove_if(&cl, old, &mut log));
                        m[k].remove(&cl);
                    }
                }
                // The window: what was used before `due` is forgotten.
                1 => {
                    due += (x >> 10) % 40;
                    while let Some(e) = log.front().copied().filter(|e| e.gone() || whose[&e.id].1 < due) {
                        log.pop_front();
                        gone_at_front += usize::from(e.gone());
                        if !e.gone() {
                            let i = whose[&e.id].0;
                            let c = names[&e.id];
                            t[i].forget(&e, &c, &log);
                            assert_eq!(m[i].remove(&c), Some(e.id), "the oldest goes first");
                        }
                    }
                }
                // The limit: the account's oldest is forgotten.
                2 if x.is_multiple_of(3) => {
                    if let Some(e) = t[k].take_oldest(&mut log) {
                        let c = names[&e.id];
                        t[k].forget(&e, &c, &log);
                        let oldest = m[k].iter().min_by_key(|e| e.1).map(|e| (*e.0, *e.1));
                        assert_eq!(oldest, Some((c, e.id)), "the account's oldest goes");
                        m[k].remove(&c);
                    }
                }
                // A new order, as the ledger adds one: only for a cl_id not remembered.
                _ => {
                    if let std::collections::btree_map::Entry::Vacant(v) = m[k].entry(cl) {
                        names.insert(id, cl);
                        whose.insert(id, (k, step));
                        t[k].insert(cl, id, of(&names), &mut log);
                        v.insert(id);
                    }
                }
            }
            if step % 97 == 0 {
                for (i, t) in t.iter().enumerate() {
                    t.check(AccountId(i as u64 + 1), &log, |o| whose[&o].0 == i);
                    assert_eq!(t.live(), m[i].len());
                    clashed[i] |= t.hashed.get().is_some_and(|h| !h.clash.is_empty());
                }
            }
        }
        assert_eq!(clashed, [true, true], "long ids clashed");
        for (i, t) in t.iter().enumerate() {
            assert!(t.taken > 10 * MARK_EVERY && t.high > 0, "the counter was ranked, and marked");
            for (c, id) in &m[i] {
                assert_eq!(t.get(c, |o, c| names.get(&o) == Some(c), &log), Some(*id), "{c}");
            }
            let names2 = names.clone();
            let entries = t.entries(move |o| names2.get(&o).copied(), &log);
            assert_eq!(entries, m[i].iter().map(|(c, id)| (*c, *id)).collect::<Vec<_>>());
            let mut by_age: Vec<OrderId> = m[i].values().copied().collect();
            by_age.sort_unstable();
            assert_eq!(t.by_age(&log), by_age);
        }
        assert!(gone_at_front > 0, "some forgotten out of turn reached the front");
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

    /// A counter's ids never reach the hash tables: the log ranks them all,
    /// and a repeated one is found within `MARK_EVERY` entries of a mark.
    #[test]
    fn a_counter_stays_out_of_the_hash_tables() {
        let none = |_: OrderId, _: &ClId| -> bool { panic!("no hash table entry to check") };
        let cl = |k: u64| ClId::new(&format!("b{k}")).expect("short");
        let mut log = ClLog::new();
        let mut t = ClIdIndex::default();
        for k in 1..=300 {
            assert_eq!(t.get(&cl(k), none, &log), None);
            t.insert(cl(k), OrderId(k), none, &mut log);
        }
        assert_eq!((t.hashed.get().map_or(0, |h| h.by_fp.len()), t.live()), (0, 300));
        assert_eq!(t.marks.len(), 300 / MARK_EVERY as usize);
        for k in 1..=300 {
            assert_eq!(t.get(&cl(k), none, &log), Some(OrderId(k)));
        }
        // Above `high`: new; below it but never used: unknown.
        assert_eq!(t.get(&cl(301), none, &log), None);
        assert_eq!(t.get(&ClId::new("a5").expect("short"), none, &log), None);
        // Forgotten out of turn: a gap until it reaches the front.
        assert!(t.remove_if(&cl(150), OrderId(150), &mut log));
        assert!(!t.remove_if(&cl(150), OrderId(150), &mut log));
        assert_eq!(t.get(&cl(150), none, &log), None);
        // Then the oldest, in turn, out to the gap and past it.
        for k in 1..=151 {
            let e = log.pop_front().expect("kept");
            if k == 150 {
                assert_eq!(e.id, GONE);
                continue;
            }
            assert_eq!(e.id, OrderId(k));
            t.forget(&e, &cl(k), &log);
        }
        assert_eq!(t.get(&cl(151), none, &log), None);
        assert_eq!(t.get(&cl(152), none, &log), Some(OrderId(152)));
        assert_eq!((t.live(), log.len()), (149, 149));
        assert_eq!(t.marks.len(), 300 / MARK_EVERY as usize - 151 / MARK_EVERY as usize, "the forgotten entries' marks went");
        t.check(AccountId(1), &log, |_| true);
        // A forgotten one used again goes to the hash table.
        let named = |id: OrderId, c: &ClId| id == OrderId(1000) && c.as_str() == "b150";
        t.insert(cl(150), OrderId(1000), named, &mut log);
        assert_eq!(t.get(&cl(150), named, &log), Some(OrderId(1000)));
        assert_eq!((t.live(), t.hashed.get().map_or(0, |h| h.by_fp.len())), (150, 1));
        t.check(AccountId(1), &log, |_| true);
    }
}
