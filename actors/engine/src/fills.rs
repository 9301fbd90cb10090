//! Every account's fills in one log, in the order they happened, each
//! linked to its account's previous fill.
//!
//! A trade writes two fills, one per side, usually of two accounts whose
//! histories were not touched for a while. Kept in a queue per account,
//! each fill went to the cold tail of its own account's queue, and every
//! few dozen fills that queue took a new block. Here both go to the
//! log's tail, which every trade writes: one place in memory, written in
//! order. What an account needs to find its own fills, newest first, is
//! its newest fill's place in the log and how many of its fills are kept,
//! in a small table by account, and each fill's link to the one before it.
//!
//! An account keeps its newest `FILLS_PER_ACCOUNT_MAX` fills. An older
//! fill is dead: it is dropped when it reaches the front of the log, and
//! when the log holds more dead fills than live ones behind a live fill
//! at its front (an account that stopped trading long ago), the live ones
//! are copied to a new log and relinked. Each fill is copied at most once
//! per doubling of the log, so the cost per fill stays constant.
//!
//! The log is kept in blocks of `BLOCK` entries: it grows a block at a
//! time and never copies what it holds to grow. (In one growing buffer it
//! gained nothing: copying the whole log at each doubling cost what the
//! log saved. BENCHMARKS.md, round 16.)

use std::collections::VecDeque;

use crate::dense::DenseMap;
use crate::ledger::{Fill, FILLS_PER_ACCOUNT_MAX};
use crate::types::AccountId;

/// No earlier fill.
const NONE: u64 = u64::MAX;
/// The log is compacted only past this many entries.
const COMPACT_MIN: usize = 1 << 16;
/// Entries per block of the log. The log grows a block at a time and
/// never copies what it holds to grow.
const BLOCK: usize = 4096;

#[derive(Clone, Debug)]
struct Entry {
    fill: Fill,
    account: AccountId,
    /// The place of the account's previous fill.
    prev: u64,
}

/// An account's fills: where the newest is, its id, and how many are kept.
#[derive(Clone, Copy, Debug)]
struct Head {
    newest: u64,
    newest_id: u64,
    kept: usize,
}

impl Default for Head {
    fn default() -> Self {
        Head { newest: NONE, newest_id: 0, kept: 0 }
    }
}

#[derive(Clone, Debug, Default)]
pub struct FillLog {
    /// The place of the first block's first entry; places only grow until
    /// a compaction.
    base: u64,
    /// Blocks of `BLOCK` entries, the last one filling.
    blocks: VecDeque<Vec<Entry>>,
    /// Entries of the first block already dropped.
    head: usize,
    /// Entries from the first one not dropped to the newest.
    len: usize,
    heads: DenseMap<AccountId, Head>,
    /// Fills kept, over all accounts.
    live: usize,
}

impl FillLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `fill` as `account`'s newest. Its id must be one more than
    /// the account's previous fill's.
    pub fn push(&mut self, account: AccountId, fill: Fill) {
        let h = self.heads.or_default(account);
        debug_assert!(h.kept == 0 || fill.fill_id == h.newest_id + 1, "fill ids rise by one per account");
        let at = self.base + (self.head + self.len) as u64;
        let prev = if h.kept == 0 { NONE } else { h.newest };
        h.newest = at;
        h.newest_id = fill.fill_id;
        if h.kept < FILLS_PER_ACCOUNT_MAX {
            h.kept += 1;
            self.live += 1;
        }
        let full = h.kept == FILLS_PER_ACCOUNT_MAX;
        if self.blocks.back().is_none_or(|b| b.len() == BLOCK) {
            self.blocks.push_back(Vec::with_capacity(BLOCK));
        }
        let b = self.blocks.back_mut().expect("a block");
        b.push(Entry { fill, account, prev });
        crate::ahead::tail(b.spare_capacity_mut(), 8);
        self.len += 1;
        if full {
            self.trim();
        }
    }

    /// Whether an entry is still among its account's kept fills.
    fn is_live(&self, e: &Entry) -> bool {
        self.heads.get(&e.account).is_some_and(|h| h.newest_id - e.fill.fill_id < h.kept as u64)
    }

    /// Drops dead fills from the front; compacts when dead fills held
    /// behind a live one outnumber the live.
    fn trim(&mut self) {
        while self.len > 0 && !self.is_live(&self.blocks[0][self.head]) {
            self.head += 1;
            self.len -= 1;
            if self.head == BLOCK {
                self.blocks.pop_front();
                self.base += BLOCK as u64;
                self.head = 0;
            }
        }
        if self.len >= COMPACT_MIN && self.len >= 2 * self.live {
            self.compact();
        }
    }

    /// The entry at place `at`.
    #[inline]
    fn at(&self, at: u64) -> &Entry {
        let o = (at - self.base) as usize;
        &self.blocks[o / BLOCK][o % BLOCK]
    }


    /// Keeps only live fills, in their order, relinked.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.blocks);
        let skip = std::mem::take(&mut self.head);
        self.base = 0;
        self.len = 0;
        let mut last: DenseMap<AccountId, u64> = DenseMap::new();
        for mut e in old.into_iter().flatten().skip(skip) {
            if !self.is_live(&e) {
                continue;
            }
            let prev = last.or_insert_with(e.account, || NONE);
            e.prev = *prev;
            *prev = self.len as u64;
            if self.blocks.back().is_none_or(|b| b.len() == BLOCK) {
                self.blocks.push_back(Vec::with_capacity(BLOCK));
            }
            self.blocks.back_mut().expect("a block").push(e);
            self.len += 1;
        }
        for (a, at) in last.iter() {
            if let Some(h) = self.heads.get_mut(a) {
                h.newest = *at;
            }
        }
    }

    /// An account's kept fills, newest first.
    pub fn newest_first(&self, account: AccountId) -> impl Iterator<Item = &Fill> + '_ {
        let h = self.heads.get(&account).copied().unwrap_or_default();
        let mut at = h.newest;
        (0..h.kept).map(move |_| {
            let e = self.at(at);
            at = e.prev;
            &e.fill
        })
    }

    /// An account's kept fills, oldest first.
    pub fn oldest_first(&self, account: AccountId) -> Vec<&Fill> {
        let mut v: Vec<&Fill> = self.newest_first(account).collect();
        v.reverse();
        v
    }

    /// Fills an account keeps.
    pub fn len_of(&self, account: AccountId) -> usize {
        self.heads.get(&account).map_or(0, |h| h.kept)
    }

    /// Fills in the log, live and dead.
    pub fn log_len(&self) -> usize {
        self.len
    }

    /// A log of each account's fills (oldest first), as snapshots keep them.
    /// They go in by time, as near as the fills say (each account's own in
    /// their order, whatever their times). Refused unless each account's
    /// fill ids rise by one, as the ledger numbers them.
    pub fn from_accounts(accounts: impl IntoIterator<Item = (AccountId, Vec<Fill>)>) -> Result<Self, String> {
        use std::cmp::Reverse;
        let accounts: Vec<(AccountId, Vec<Fill>)> = accounts.into_iter().collect();
        for (a, fills) in &accounts {
            if !fills.windows(2).all(|w| w[0].fill_id.checked_add(1) == Some(w[1].fill_id)) {
                return Err(format!("{a:?}'s fill ids do not rise by one"));
            }
        }
        let mut lists: Vec<(AccountId, std::vec::IntoIter<Fill>)> =
            accounts.into_iter().map(|(a, f)| (a, f.into_iter())).collect();
        let mut next: std::collections::BinaryHeap<Reverse<(u64, u64, usize)>> = std::collections::BinaryHeap::new();
        let mut heads: Vec<Option<Fill>> = Vec::with_capacity(lists.len());
        for (k, (_, it)) in lists.iter_mut().enumerate() {
            let f = it.next();
            if let Some(f) = &f {
                next.push(Reverse((f.ts, f.trade_id, k)));
            }
            heads.push(f);
        }
        let mut log = FillLog::new();
        while let Some(Reverse((_, _, k))) = next.pop() {
            let f = heads[k].take().expect("a list's next fill");
            log.push(lists[k].0, f);
            if let Some(f) = lists[k].1.next() {
                next.push(Reverse((f.ts, f.trade_id, k)));
                heads[k] = Some(f);
            }
        }
        Ok(log)
    }

    /// Asserts that each account's kept fills are linked newest first with
    /// ids falling by one, and that the live count is their sum.
    pub fn check(&self) {
        let mut live = 0;
        for (a, h) in self.heads.iter() {
            let ids: Vec<u64> = self.newest_first(*a).map(|f| f.fill_id).collect();
            assert_eq!(ids.len(), h.kept);
            assert!(ids.windows(2).all(|w| w[0] == w[1] + 1), "{a:?}'s fills are linked in order");
            assert!(ids.first().is_none_or(|&id| id == h.newest_id));
            live += h.kept;
        }
        assert_eq!(live, self.live);
    }
}

/// Two logs are equal when every account keeps the same fills, whatever
/// their places (a log rebuilt from a snapshot orders two accounts' fills
/// of one moment by account).
impl PartialEq for FillLog {
    fn eq(&self, other: &Self) -> bool {
        let accounts = |l: &FillLog| l.heads.iter().filter(|(_, h)| h.kept > 0).map(|(a, _)| *a).collect::<Vec<_>>();
        let mine = accounts(self);
        mine == accounts(other) && mine.iter().all(|a| self.newest_first(*a).eq(other.newest_first(*a)))
    }
}

impl Eq for FillLog {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Liquidity;
    use crate::types::{Amount, InstrumentId, OrderId, Price, Qty, Side};

    fn fill(id: u64, trade: u64) -> Fill {
        Fill {
            fill_id: id,
            trade_id: trade,
            order: OrderId(trade),
            inst: InstrumentId(1),
            side: Side::Buy,
            px: Price(1),
            qty: Qty(1),
            fee: Amount(0),
            liq: Liquidity::Maker,
            ts: trade,
        }
    }

    /// Each account finds its own fills, newest first, among others'; past
    /// the limit it keeps the newest; a quiet account's fills at the front
    /// stay while a busy one's old fills are compacted away, and the log
    /// stays within twice the fills kept.
    #[test]
    fn accounts_keep_their_newest_fills_and_the_log_stays_bounded() {
        let (quiet, busy, other) = (AccountId(1), AccountId(2), AccountId(3));
        let mut log = FillLog::new();
        let mut next = [0u64; 4];
        fn push(log: &mut FillLog, next: &mut [u64; 4], a: AccountId, t: u64) {
            next[a.0 as usize] += 1;
            log.push(a, fill(next[a.0 as usize], t));
        }
        push(&mut log, &mut next, quiet, 0);
        push(&mut log, &mut next, quiet, 1);
        let n = 3 * FILLS_PER_ACCOUNT_MAX as u64 + COMPACT_MIN as u64;
        for t in 2..n {
            push(&mut log, &mut next, busy, t);
            if t % 7 == 0 {
                push(&mut log, &mut next, other, t);
            }
            if t % 5000 == 0 {
                log.check();
            }
        }
        log.check();
        assert_eq!(log.oldest_first(quiet).iter().map(|f| f.fill_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(log.len_of(busy), FILLS_PER_ACCOUNT_MAX);
        let ids: Vec<u64> = log.newest_first(busy).map(|f| f.fill_id).collect();
        assert_eq!(ids[0], next[2]);
        assert_eq!(*ids.last().expect("kept"), next[2] - FILLS_PER_ACCOUNT_MAX as u64 + 1);
        assert!(log.log_len() <= 2 * (2 + 2 * FILLS_PER_ACCOUNT_MAX) + COMPACT_MIN, "log of {}", log.log_len());
        assert!(log.log_len() < n as usize - 2, "dead fills behind the quiet account's were dropped");
        // Rebuilt from each account's fills, as from a snapshot: equal.
        let rebuilt = FillLog::from_accounts(
            [quiet, busy, other].map(|a| (a, log.oldest_first(a).into_iter().cloned().collect())),
        )
        .expect("in order");
        rebuilt.check();
        assert!(rebuilt == log);
        // An account's fills go back in their order even where times and
        // trade ids (each instrument's own) do not rise with them.
        let odd = vec![fill(1, 9), fill(2, 3), fill(3, 5)];
        let back = FillLog::from_accounts([(quiet, odd.clone()), (busy, vec![fill(1, 4)])]).expect("in order");
        back.check();
        assert_eq!(back.oldest_first(quiet).into_iter().cloned().collect::<Vec<_>>(), odd);
        // A snapshot whose fills are out of order (or skip an id) is refused.
        for bad in [vec![fill(2, 1), fill(1, 2)], vec![fill(1, 1), fill(3, 2)], vec![fill(u64::MAX, 1), fill(0, 2)]] {
            assert!(FillLog::from_accounts([(quiet, bad)]).is_err());
        }
        let mut changed = rebuilt.clone();
        push(&mut changed, &mut next, quiet, n);
        assert!(changed != log);
    }
}
