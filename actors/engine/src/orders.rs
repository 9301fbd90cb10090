//! The ledger's order table: every order it knows, open or ended (an ended
//! order is kept while its `cl_id` is remembered), by order id.
//!
//! Order ids are handed out in increasing order, so the table is a queue of
//! fixed-size chunks indexed by `id - base`: a lookup is the chunk, its presence
//! bit and the record (one line of it for what resolving reads), an order
//! ends in place (no move between tables), a new order goes at the back and
//! the table never copies itself to grow. Chunks at the front are dropped as
//! their orders are forgotten; when only a few orders are left in the front
//! chunk (orders open for longer than the `cl_id` window, or ended orders of
//! an account that placed nothing since), they move to a small hash map so
//! that they do not keep the chunk alive.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::ledger::OrderState;
use crate::spec::FeeAcc;
use crate::types::{AccountId, Amount, AssetId, ClId, InstrumentId, OrderId, OrderStatus, OrderType, Qty, Side, Tif};

/// Orders per chunk.
pub const ORDER_CHUNK_MAX: usize = 4096;
/// A front chunk holding this few orders or fewer hands them to the
/// overflow map and is dropped.
const CHUNK_SPARSE_MAX: usize = ORDER_CHUNK_MAX / 16;
/// Words of a chunk's presence bitmap.
const CHUNK_WORDS: usize = ORDER_CHUNK_MAX / 64;

/// What a slot holds before its order arrives (or after it is forgotten):
/// never read as an order, since its bit in `present` is clear.
fn vacant() -> OrderState {
    OrderState {
        fee: FeeAcc::default(),
        account: AccountId(0),
        hold: Amount(0),
        inst: InstrumentId(0),
        hold_asset: AssetId(0),
        status: OrderStatus::Cancelled,
        reason: None,
        resting: false,
        side: Side::Buy,
        kind: OrderType::Limit,
        tif: Tif::Gtc,
        post_only: false,
        cum: Qty(0),
        qty: None,
        id: OrderId(0),
        px: None,
        ts: 0,
        cl_id: ClId::default(),
    }
}

/// `slots` has room for `ORDER_CHUNK_MAX` orders from the start (it never
/// reallocates) but is filled only as far as the newest order in it: a slot
/// is first written when its order arrives, so a new order's record goes to
/// memory no one touched before (no clearing pass, no read of the old slot),
/// and a slot past the end is an unknown order.
///
/// Whether a slot holds an order is a bit in `present` (512 bytes a chunk,
/// read often enough to stay in cache), not an `Option` around the record:
/// the `Option`'s tag would sit in the record's own niche (the tag of `px`,
/// in another cache line than the fields resolving an order reads), so
/// every lookup of a cold order would read two lines of it instead of one.
#[derive(Debug)]
struct Chunk {
    live: usize,
    present: [u64; CHUNK_WORDS],
    slots: Vec<OrderState>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk { live: 0, present: [0; CHUNK_WORDS], slots: Vec::with_capacity(ORDER_CHUNK_MAX) }
    }

    #[inline]
    fn has(&self, i: usize) -> bool {
        self.present[i / 64] & 1 << (i % 64) != 0
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&OrderState> {
        (i < self.slots.len() && self.has(i)).then(|| &self.slots[i])
    }

    #[inline]
    fn get_mut(&mut self, i: usize) -> Option<&mut OrderState> {
        (i < self.slots.len() && self.has(i)).then(|| &mut self.slots[i])
    }

    /// Puts `o` in slot `i`; the order it replaces, if any.
    fn put(&mut self, i: usize, o: OrderState) -> Option<OrderState> {
        if i >= self.slots.len() {
            // A new order: ids grow, so it almost always goes right at the end.
            self.slots.resize_with(i, vacant);
            self.slots.push(o);
            let spare = self.slots.spare_capacity_mut();
            crate::ahead::tail(spare, 4);
            crate::ahead::tail(spare, 5);
        } else if self.has(i) {
            return Some(std::mem::replace(&mut self.slots[i], o));
        } else {
            self.slots[i] = o;
        }
        self.present[i / 64] |= 1 << (i % 64);
        self.live += 1;
        None
    }

    fn take(&mut self, i: usize) -> Option<OrderState> {
        if i >= self.slots.len() || !self.has(i) {
            return None;
        }
        self.present[i / 64] &= !(1 << (i % 64));
        self.live -= 1;
        Some(std::mem::replace(&mut self.slots[i], vacant()))
    }

    /// The orders held, by slot.
    fn orders(&self) -> impl Iterator<Item = &OrderState> + '_ {
        self.slots.iter().enumerate().filter(|(i, _)| self.has(*i)).map(|(_, o)| o)
    }
}

impl Clone for Chunk {
    /// A copy keeps the room for the whole chunk.
    fn clone(&self) -> Chunk {
        let mut slots = Vec::with_capacity(ORDER_CHUNK_MAX);
        slots.extend_from_slice(&self.slots);
        Chunk { live: self.live, present: self.present, slots }
    }
}

#[derive(Clone, Debug, Default)]
pub struct OrderTable {
    /// The id of the first slot of the first chunk (a multiple of `ORDER_CHUNK_MAX`).
    base: u64,
    chunks: VecDeque<Chunk>,
    /// Orders older than `base`.
    old: FxHashMap<OrderId, OrderState>,
    len: usize,
}

impl OrderTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Orders known (open and ended).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn at(&self, id: OrderId) -> Option<(usize, usize)> {
        let off = id.0.checked_sub(self.base)?;
        let c = (off / ORDER_CHUNK_MAX as u64) as usize;
        (c < self.chunks.len()).then_some((c, (off % ORDER_CHUNK_MAX as u64) as usize))
    }

    #[inline]
    pub fn get(&self, id: &OrderId) -> Option<&OrderState> {
        match self.at(*id) {
            Some((c, i)) => self.chunks[c].get(i),
            None if self.old.is_empty() => None,
            None => self.old.get(id),
        }
    }

    /// Asks for the lines of order `id`'s record, if it is in a chunk.
    #[inline]
    pub fn prefetch(&self, id: OrderId) {
        if let Some((c, i)) = self.at(id) {
            if let Some(o) = self.chunks[c].slots.get(i) {
                crate::ahead::read(o);
                crate::ahead::read(&o.cl_id);
            }
        }
    }

    /// The order, to change.
    #[inline]
    pub fn get_mut(&mut self, id: &OrderId) -> Option<&mut OrderState> {
        match self.at(*id) {
            Some((c, i)) => self.chunks[c].get_mut(i),
            None if self.old.is_empty() => None,
            None => self.old.get_mut(id),
        }
    }

    pub fn contains_key(&self, id: &OrderId) -> bool {
        self.get(id).is_some()
    }

    /// Adds or replaces an order.
    pub fn insert(&mut self, o: OrderState) -> Option<OrderState> {
        let id = o.id;
        if self.chunks.is_empty() && self.old.is_empty() {
            self.base = id.0 - id.0 % ORDER_CHUNK_MAX as u64;
        }
        let old = if id.0 < self.base {
            self.old.insert(id, o)
        } else {
            let c = ((id.0 - self.base) / ORDER_CHUNK_MAX as u64) as usize;
            while self.chunks.len() <= c {
                self.chunks.push_back(Chunk::new());
            }
            let i = ((id.0 - self.base) % ORDER_CHUNK_MAX as u64) as usize;
            self.chunks[c].put(i, o)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, id: &OrderId) -> Option<OrderState> {
        let o = match self.at(*id) {
            Some((c, i)) => self.chunks[c].take(i),
            None => self.old.remove(id),
        }?;
        self.len -= 1;
        self.trim();
        Some(o)
    }

    /// Drops front chunks that are empty, handing a sparse one's orders to `old`.
    fn trim(&mut self) {
        while self.chunks.len() > 1 && self.chunks[0].live <= CHUNK_SPARSE_MAX {
            let chunk = self.chunks.pop_front().expect("a front chunk");
            for o in chunk.orders() {
                self.old.insert(o.id, o.clone());
            }
            self.base += ORDER_CHUNK_MAX as u64;
        }
        if self.chunks.len() == 1 && self.chunks[0].live == 0 && self.old.is_empty() {
            self.chunks.clear();
        }
    }

    /// Every order, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &OrderState> + '_ {
        self.old.values().chain(self.chunks.iter().flat_map(|c| c.orders()))
    }

    /// Every order by id.
    pub fn sorted(&self) -> Vec<&OrderState> {
        let mut old: Vec<&OrderState> = self.old.values().collect();
        old.sort_unstable_by_key(|o| o.id);
        old.extend(self.chunks.iter().flat_map(|c| c.orders()));
        old
    }
}

impl std::ops::Index<&OrderId> for OrderTable {
    type Output = OrderState;
    fn index(&self, id: &OrderId) -> &OrderState {
        self.get(id).expect("order is known")
    }
}

impl PartialEq for OrderTable {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.sorted() == other.sorted()
    }
}

impl Eq for OrderTable {}

impl FromIterator<OrderState> for OrderTable {
    fn from_iter<I: IntoIterator<Item = OrderState>>(iter: I) -> Self {
        let mut all: Vec<OrderState> = iter.into_iter().collect();
        all.sort_unstable_by_key(|o| o.id);
        let mut t = OrderTable::new();
        for o in all {
            t.insert(o);
        }
        t.trim();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::FeeAcc;
    use crate::types::*;

    fn order(id: u64, status: OrderStatus) -> OrderState {
        OrderState {
            id: OrderId(id),
            account: AccountId(1),
            inst: InstrumentId(1),
            cl_id: ClId::new(&format!("c{id}")).expect("short"),
            side: Side::Buy,
            kind: OrderType::Limit,
            tif: Tif::Gtc,
            post_only: false,
            px: Some(Price(1)),
            qty: Some(Qty(1)),
            cum: Qty(0),
            status,
            reason: None,
            hold_asset: AssetId(1),
            hold: Amount(0),
            fee: FeeAcc::default(),
            resting: false,
            ts: id,
        }
    }

    /// A chunk is filled only as far as its newest order: ids skipped in
    /// between are unknown until they arrive, and a copy of the table keeps
    /// each chunk's room, so it does not reallocate as orders arrive.
    #[test]
    fn slots_are_written_as_orders_arrive() {
        let mut t = OrderTable::new();
        assert!(t.insert(order(5, OrderStatus::New)).is_none());
        assert!(t.insert(order(9, OrderStatus::New)).is_none());
        assert_eq!(t.chunks[0].slots.len(), 10);
        for id in [6, 7, 8, 10, 4000] {
            assert!(t.get(&OrderId(id)).is_none(), "order {id}");
            assert!(t.remove(&OrderId(id)).is_none());
        }
        assert!(t.insert(order(7, OrderStatus::New)).is_none());
        assert_eq!(t.len(), 3);
        assert_eq!(t.chunks[0].slots.len(), 10, "a gap is filled in place");
        let mut copy = t.clone();
        assert_eq!(copy.chunks[0].slots.capacity(), ORDER_CHUNK_MAX);
        let at = copy.chunks[0].slots.as_ptr();
        for id in 10..ORDER_CHUNK_MAX as u64 {
            assert!(copy.insert(order(id, OrderStatus::Filled)).is_none());
        }
        assert_eq!(copy.chunks[0].slots.as_ptr(), at, "no reallocation");
        assert!(copy.insert(order(ORDER_CHUNK_MAX as u64, OrderStatus::New)).is_none());
        assert_eq!(copy.chunks.len(), 2);
        assert!(t != copy);
    }

    /// A slot's order is known only while its presence bit is set: a
    /// forgotten order is unknown (its slot holds no order any more), a
    /// replaced one comes back whole, and a slot refilled later is known again.
    #[test]
    fn presence_is_the_bit_not_the_record() {
        let mut t = OrderTable::new();
        for id in 1..=130u64 {
            assert!(t.insert(order(id, OrderStatus::New)).is_none());
        }
        let mut changed = order(64, OrderStatus::Filled);
        changed.cum = Qty(1);
        let old = t.insert(changed.clone()).expect("replaced");
        assert_eq!((old.id, old.status), (OrderId(64), OrderStatus::New));
        assert_eq!(t.get(&OrderId(64)), Some(&changed));
        assert_eq!(t.remove(&OrderId(65)).map(|o| o.id), Some(OrderId(65)));
        assert!(t.get(&OrderId(65)).is_none());
        assert!(t.get_mut(&OrderId(65)).is_none());
        assert!(t.remove(&OrderId(65)).is_none());
        assert_eq!(t.len(), 129);
        assert_eq!(t.values().count(), 129);
        assert!(t.sorted().iter().all(|o| o.id != OrderId(65)));
        assert!(t.insert(order(65, OrderStatus::New)).is_none());
        assert_eq!(t.get(&OrderId(65)).map(|o| o.status), Some(OrderStatus::New));
        assert_eq!(t.len(), 130);
    }

    /// Orders left in a front chunk after most of it was forgotten move to
    /// the overflow map; every order stays reachable by id, and a table
    /// rebuilt from its orders (as from a snapshot) equals it.
    #[test]
    fn sparse_front_chunks_are_dropped_and_their_orders_stay_known() {
        let mut t = OrderTable::new();
        let first = 5u64;
        let n = 3 * ORDER_CHUNK_MAX as u64;
        for id in first..first + n {
            let status = if id % 1000 == 0 { OrderStatus::New } else { OrderStatus::Filled };
            assert!(t.insert(order(id, status)).is_none());
        }
        assert_eq!((t.len(), t.chunks.len(), t.base), (n as usize, 4, 0));
        // Forget every ended order of the first two chunks.
        let cut = 2 * ORDER_CHUNK_MAX as u64;
        for id in first..cut {
            if id % 1000 != 0 {
                assert!(t.remove(&OrderId(id)).is_some());
            }
        }
        assert_eq!(t.base, cut, "both front chunks dropped");
        assert_eq!(t.old.len(), (first..cut).filter(|id| id % 1000 == 0).count());
        for id in first..first + n {
            let known = t.get(&OrderId(id)).map(|o| o.id);
            let expect = (id >= cut || id % 1000 == 0).then_some(OrderId(id));
            assert_eq!(known, expect, "order {id}");
        }
        assert!(t.get(&OrderId(first + n)).is_none());
        let ids: Vec<u64> = t.sorted().iter().map(|o| o.id.0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids.len(), t.len());
        let rebuilt: OrderTable = t.values().cloned().collect();
        assert!(rebuilt == t);
        // An old order can still change and go.
        t.get_mut(&OrderId(1000)).expect("kept").status = OrderStatus::Cancelled;
        assert_eq!(t[&OrderId(1000)].status, OrderStatus::Cancelled);
        assert!(t.remove(&OrderId(1000)).is_some());
        assert!(t.get(&OrderId(1000)).is_none());
        assert!(rebuilt != t);
    }
}
