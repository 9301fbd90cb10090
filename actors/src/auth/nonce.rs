//! Replay protection for API-key signatures: the timestamp window and the
//! memory of accepted `(key, nonce)` pairs.
//!
//! A signed `auth` carries its own `ts`; the exchange accepts it only within
//! [`TS_WINDOW_US`] (5 s) of its own clock, and accepts each nonce of a key
//! once. Together they make a captured signature useless: inside the window
//! the nonce memory refuses it (`nonce_reused`), outside it the clock does
//! (`ts_outside_window`). That is also why the memory may forget a pair once
//! its `ts` has left the window: a replay of it would be refused by the clock.
//!
//! The memory is a `DashMap` shared by every session, bounded by `nonces_max`.
//! Entries are pruned at most every [`PRUNE_INTERVAL_US`] and whenever the
//! table is full; if it is still full of live entries the attempt is refused
//! as `overloaded` rather than accepted unremembered. Pairs are only recorded
//! after the signature verified, so only key holders can fill it.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::AuthError;

/// How far a signed `ts` may be from the server clock, either way (PROTOCOL.md section 3).
pub const TS_WINDOW_US: u64 = 5_000_000;
/// Default bound on remembered nonces: 10 000 logins per second sustained
/// over the 10 s a pair can stay live (a `ts` up to 5 s ahead, kept until 5 s behind).
pub const NONCES_MAX_DEFAULT: usize = 100_000;
/// Longest nonce accepted, in bytes; a nonce is a client-chosen unique string,
/// and anything longer only costs memory.
pub const NONCE_LEN_MAX: usize = 64;
/// Stale entries are swept at most this often (unless the table is full).
pub const PRUNE_INTERVAL_US: u64 = 1_000_000;

/// Whether `ts_us` is within `window_us` of `now_us`, either way (the bounds
/// themselves are inside). `Err(AuthError::TsOutsideWindow)` otherwise.
pub fn check_ts(ts_us: u64, now_us: u64, window_us: u64) -> Result<(), AuthError> {
    if ts_us.abs_diff(now_us) <= window_us {
        Ok(())
    } else {
        Err(AuthError::TsOutsideWindow)
    }
}

/// The `(key, nonce)` pairs accepted within the timestamp window. Shared by
/// all sessions (`&self` everywhere).
#[derive(Debug)]
pub struct NonceCache {
    /// `(key, nonce)` to the signed `ts_us` it was accepted with.
    seen: DashMap<(String, String), u64>,
    window_us: u64,
    nonces_max: usize,
    /// Server time (us) after which the next sweep is due.
    next_prune_us: AtomicU64,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self::new(TS_WINDOW_US, NONCES_MAX_DEFAULT)
    }
}

impl NonceCache {
    /// A cache for signatures valid within `window_us` of the server clock,
    /// remembering at most `nonces_max` pairs.
    pub fn new(window_us: u64, nonces_max: usize) -> Self {
        assert!(nonces_max > 0, "nonces_max must allow at least one nonce");
        Self {
            seen: DashMap::new(),
            window_us,
            nonces_max,
            next_prune_us: AtomicU64::new(0),
        }
    }

    /// The timestamp window of this cache.
    pub fn window_us(&self) -> u64 {
        self.window_us
    }

    /// [`check_ts`] with this cache's window.
    pub fn check_ts(&self, ts_us: u64, now_us: u64) -> Result<(), AuthError> {
        check_ts(ts_us, now_us, self.window_us)
    }

    /// Accepts `nonce` for `key`, signed at `ts_us`, if it was not accepted
    /// before. Call it only after the signature verified. Checks the window
    /// too, since forgetting old pairs is only safe for timestamps inside it.
    ///
    /// Errors: `BadRequest` for an empty or over-long nonce, `TsOutsideWindow`,
    /// `NonceReused`, and `Overloaded` when `nonces_max` live pairs are held.
    pub fn accept(&self, key: &str, nonce: &str, ts_us: u64, now_us: u64) -> Result<(), AuthError> {
        if nonce.is_empty() || nonce.len() > NONCE_LEN_MAX {
            return Err(AuthError::BadRequest("nonce must be 1 to 64 bytes"));
        }
        self.check_ts(ts_us, now_us)?;
        self.maybe_prune(now_us);
        // Concurrent callers may each pass this check before inserting, so the
        // table can exceed `nonces_max` by at most the number of threads.
        if self.seen.len() >= self.nonces_max {
            self.prune(now_us);
            if self.seen.len() >= self.nonces_max {
                return Err(AuthError::Overloaded);
            }
        }
        match self.seen.entry((key.to_owned(), nonce.to_owned())) {
            Entry::Occupied(_) => Err(AuthError::NonceReused),
            Entry::Vacant(slot) => {
                slot.insert(ts_us);
                Ok(())
            }
        }
    }

    /// Number of remembered pairs.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets every pair whose `ts` is already outside the window at `now_us`:
    /// a replay of it would fail [`check_ts`].
    pub fn prune(&self, now_us: u64) {
        let window_us = self.window_us;
        self.seen
            .retain(|_, ts_us| ts_us.saturating_add(window_us) >= now_us);
    }

    fn maybe_prune(&self, now_us: u64) {
        let due = self.next_prune_us.load(Ordering::Relaxed);
        if now_us < due {
            return;
        }
        // One caller wins the sweep; the others go on without waiting.
        let next = now_us.saturating_add(PRUNE_INTERVAL_US);
        if self
            .next_prune_us
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.prune(now_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const NOW: u64 = 1_732_051_200_000_000;

    #[test]
    fn window_bounds_are_inside_and_one_us_beyond_is_outside() {
        assert_eq!(check_ts(NOW, NOW, TS_WINDOW_US), Ok(()));
        assert_eq!(check_ts(NOW - 5_000_000, NOW, TS_WINDOW_US), Ok(()));
        assert_eq!(check_ts(NOW + 5_000_000, NOW, TS_WINDOW_US), Ok(()));
        assert_eq!(
            check_ts(NOW - 5_000_001, NOW, TS_WINDOW_US),
            Err(AuthError::TsOutsideWindow)
        );
        assert_eq!(
            check_ts(NOW + 5_000_001, NOW, TS_WINDOW_US),
            Err(AuthError::TsOutsideWindow)
        );
        assert_eq!(
            check_ts(0, NOW, TS_WINDOW_US),
            Err(AuthError::TsOutsideWindow)
        );
        assert_eq!(
            check_ts(u64::MAX, NOW, TS_WINDOW_US),
            Err(AuthError::TsOutsideWindow)
        );
        // Seconds or milliseconds instead of microseconds are far outside.
        assert!(check_ts(NOW / 1_000_000, NOW, TS_WINDOW_US).is_err());
        assert!(check_ts(NOW / 1_000, NOW, TS_WINDOW_US).is_err());
    }

    #[test]
    fn a_nonce_is_accepted_once_per_key() {
        let cache = NonceCache::default();
        assert_eq!(cache.accept("k1", "n1", NOW, NOW), Ok(()));
        assert_eq!(
            cache.accept("k1", "n1", NOW, NOW + 10),
            Err(AuthError::NonceReused)
        );
        // Even with a different ts: the nonce itself is spent.
        assert_eq!(
            cache.accept("k1", "n1", NOW + 1, NOW + 10),
            Err(AuthError::NonceReused)
        );
        assert_eq!(cache.accept("k1", "n2", NOW, NOW + 10), Ok(()));
        assert_eq!(cache.accept("k2", "n1", NOW, NOW + 10), Ok(()));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn accept_checks_the_window_and_the_nonce_shape() {
        let cache = NonceCache::default();
        assert_eq!(
            cache.accept("k", "n", NOW - 5_000_001, NOW),
            Err(AuthError::TsOutsideWindow)
        );
        assert_eq!(
            cache.accept("k", "n", NOW + 5_000_001, NOW),
            Err(AuthError::TsOutsideWindow)
        );
        assert!(matches!(
            cache.accept("k", "", NOW, NOW),
            Err(AuthError::BadRequest(_))
        ));
        let long = "x".repeat(NONCE_LEN_MAX + 1);
        assert!(matches!(
            cache.accept("k", &long, NOW, NOW),
            Err(AuthError::BadRequest(_))
        ));
        assert_eq!(cache.accept("k", &long[..NONCE_LEN_MAX], NOW, NOW), Ok(()));
        // A refused attempt does not spend the nonce.
        assert_eq!(cache.accept("k", "n", NOW, NOW), Ok(()));
    }

    #[test]
    fn replay_is_refused_for_the_whole_life_of_its_timestamp() {
        let cache = NonceCache::default();
        // Signed 5 s in the future: valid until 10 s from now.
        let ts = NOW + TS_WINDOW_US;
        cache.accept("k", "n", ts, NOW).unwrap();
        for now in [NOW + 1, NOW + 4_000_000, NOW + 9_999_999, NOW + 10_000_000] {
            cache.prune(now);
            assert_eq!(
                cache.accept("k", "n", ts, now),
                Err(AuthError::NonceReused),
                "at {now}"
            );
        }
        // Past the window the clock refuses it; the memory may then forget it.
        assert_eq!(
            cache.accept("k", "n", ts, NOW + 10_000_001),
            Err(AuthError::TsOutsideWindow)
        );
        cache.prune(NOW + 10_000_001);
        assert!(cache.is_empty());
    }

    #[test]
    fn stale_entries_are_swept_as_time_passes() {
        let cache = NonceCache::default();
        for i in 0..100 {
            cache.accept("k", &format!("n{i}"), NOW, NOW).unwrap();
        }
        assert_eq!(cache.len(), 100);
        // Some time later, another login triggers the periodic sweep.
        let later = NOW + TS_WINDOW_US + PRUNE_INTERVAL_US + 1;
        cache.accept("k", "fresh", later, later).unwrap();
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn bounded_full_of_live_pairs_refuses_then_recovers() {
        let cache = NonceCache::new(TS_WINDOW_US, 3);
        for n in ["a", "b", "c"] {
            cache.accept("k", n, NOW, NOW).unwrap();
        }
        assert_eq!(
            cache.accept("k", "d", NOW, NOW + 1),
            Err(AuthError::Overloaded)
        );
        assert_eq!(cache.len(), 3);
        // Once the old ones leave the window, a full table sweeps itself.
        let later = NOW + TS_WINDOW_US + 1;
        assert_eq!(cache.accept("k", "d", later, later), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn concurrent_replays_accept_exactly_one() {
        let cache = Arc::new(NonceCache::default());
        let winners: usize = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || usize::from(cache.accept("k", "same", NOW, NOW).is_ok()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(winners, 1);
    }
}
