//! Rate limits (`rate_limited` with `retry_after_ms`, PROTOCOL.md sections 2 and 8).
//!
//! Two limits, both GCRA (`governor`), which behaves like a token bucket that
//! refills continuously and never sleeps or spawns anything:
//!
//! * per connection, on every message: one client cannot make its session
//!   actor spin, whatever it sends;
//! * per account, on orders placed and amended (a batch counts each of its
//!   orders): opening more connections does not buy an account more order
//!   throughput. Cancels (`order.cancel`, `order.cancel_all`,
//!   `order.cancel_after`) pass it: they only take risk off, and an account
//!   at its limit must still be able to pull its orders; the connection's
//!   limit still counts them. This limiter is shared by all sessions (its
//!   state is a `DashMap` keyed by account), so it lives behind an `Arc`.
//!
//! A refused call says how long until the same call would pass, rounded up to
//! whole milliseconds; the session stays open. The limiters take a `governor`
//! clock so tests can move time by hand; production uses governor's default
//! monotonic clock.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

/// Default order operations per second per account (also the burst).
pub const ORDERS_PER_S_PER_ACCOUNT_DEFAULT: u32 = 500;
/// Default messages per second per connection (also the burst): room for an
/// account's whole order allowance plus subscriptions and pings.
pub const MESSAGES_PER_S_PER_CONNECTION_DEFAULT: u32 = 1_000;
/// Default size past which idle accounts are swept from the per-account table.
pub const ACCOUNTS_MAX_DEFAULT: usize = 100_000;

/// A refusal: the number of milliseconds (at least 1) until the same call would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfterMs(pub u64);

/// How much each limiter allows. Each rate is also its burst: a quiet client
/// may send a full second's worth at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateQuotas {
    /// Order operations (place, cancel, amend) per second for one account.
    pub orders_per_s_per_account: NonZeroU32,
    /// Messages of any kind per second on one connection.
    pub messages_per_s_per_connection: NonZeroU32,
    /// The per-account table is swept of idle accounts when it grows past
    /// this; it stays larger only while that many accounts are all trading.
    pub accounts_max: usize,
}

impl Default for RateQuotas {
    fn default() -> Self {
        Self {
            orders_per_s_per_account: nonzero(ORDERS_PER_S_PER_ACCOUNT_DEFAULT),
            messages_per_s_per_connection: nonzero(MESSAGES_PER_S_PER_CONNECTION_DEFAULT),
            accounts_max: ACCOUNTS_MAX_DEFAULT,
        }
    }
}

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("a rate must be positive"),
    }
}

/// The per-account order limiter, shared by every session.
pub struct AccountLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    accounts_max: usize,
    /// Table size that triggers the next sweep (doubles while all accounts are busy).
    sweep_at: AtomicUsize,
}

impl AccountLimiter<DefaultClock> {
    /// A limiter on the real monotonic clock.
    pub fn new(quotas: &RateQuotas) -> Self {
        Self::with_clock(quotas, DefaultClock::default())
    }
}

impl<C: Clock> AccountLimiter<C> {
    /// A limiter on `clock`.
    pub fn with_clock(quotas: &RateQuotas, clock: C) -> Self {
        let quota = Quota::per_second(quotas.orders_per_s_per_account);
        Self {
            limiter: RateLimiter::dashmap_with_clock(quota, clock),
            accounts_max: quotas.accounts_max,
            sweep_at: AtomicUsize::new(quotas.accounts_max),
        }
    }

    /// Counts one order operation of `account`.
    pub fn check(&self, account: &str) -> Result<(), RetryAfterMs> {
        self.check_n(account, NonZeroU32::MIN)
    }

    /// Counts `n` orders of `account` at once (an `order.batch`): all pass
    /// or none. More than the quota's burst never passes; it is refused as
    /// the quota's whole period away.
    pub fn check_n(&self, account: &str, n: NonZeroU32) -> Result<(), RetryAfterMs> {
        let outcome = self.limiter.check_key_n(&account.to_owned(), n);
        self.maybe_sweep();
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refusal)) => Err(retry_after(&refusal, self.limiter.clock())),
            Err(_) => Err(RetryAfterMs(1_000)),
        }
    }

    /// Number of accounts with limiter state.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no account has limiter state.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops the state of accounts whose allowance is full again (idle ones):
    /// they behave exactly like new ones.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn maybe_sweep(&self) {
        let len = self.limiter.len();
        if len <= self.sweep_at.load(Ordering::Relaxed) {
            return;
        }
        self.sweep();
        // If most accounts are busy the table cannot shrink: wait for it to
        // double before sweeping again, so the sweep's cost stays amortised.
        let next = self.accounts_max.max(self.limiter.len().saturating_mul(2));
        self.sweep_at.store(next, Ordering::Relaxed);
    }
}

/// The per-connection message limiter, owned by one session.
pub struct ConnectionLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl<C: Clock> ConnectionLimiter<C> {
    /// A limiter on `clock`.
    pub fn with_clock(quotas: &RateQuotas, clock: C) -> Self {
        let quota = Quota::per_second(quotas.messages_per_s_per_connection);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
        }
    }

    /// Counts one message.
    pub fn check(&self) -> Result<(), RetryAfterMs> {
        self.limiter
            .check()
            .map_err(|refusal| retry_after(&refusal, self.limiter.clock()))
    }
}

/// One connection's limits: its own message limiter and the shared account limiter.
pub struct RateLimits<C: Clock = DefaultClock> {
    connection: ConnectionLimiter<C>,
    accounts: Arc<AccountLimiter<C>>,
}

impl RateLimits<DefaultClock> {
    /// The limits of a new connection, on the real monotonic clock.
    pub fn new(quotas: &RateQuotas, accounts: Arc<AccountLimiter<DefaultClock>>) -> Self {
        Self::with_clock(quotas, accounts, DefaultClock::default())
    }
}

impl<C: Clock> RateLimits<C> {
    /// The limits of a new connection, on `clock`.
    pub fn with_clock(quotas: &RateQuotas, accounts: Arc<AccountLimiter<C>>, clock: C) -> Self {
        Self {
            connection: ConnectionLimiter::with_clock(quotas, clock),
            accounts,
        }
    }

    /// Counts one message on this connection.
    pub fn check_message(&self) -> Result<(), RetryAfterMs> {
        self.connection.check()
    }

    /// Counts one order operation of `account`.
    pub fn check_order(&self, account: &str) -> Result<(), RetryAfterMs> {
        self.accounts.check(account)
    }

    /// Counts one incoming message, and when `account` is given (an order
    /// operation of that account) one order too. The message counts even if
    /// the order limit then refuses it: it was received and handled.
    pub fn check(&self, account: Option<&str>) -> Result<(), RetryAfterMs> {
        self.check_message()?;
        match account {
            Some(account) => self.check_order(account),
            None => Ok(()),
        }
    }
}

fn retry_after<C: Clock>(refusal: &NotUntil<C::Instant>, clock: &C) -> RetryAfterMs {
    let wait = refusal.wait_time_from(clock.now());
    let ms = wait.as_micros().div_ceil(1_000);
    RetryAfterMs(u64::try_from(ms).unwrap_or(u64::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    fn quotas(orders: u32, messages: u32) -> RateQuotas {
        RateQuotas {
            orders_per_s_per_account: nonzero(orders),
            messages_per_s_per_connection: nonzero(messages),
            accounts_max: 16,
        }
    }

    #[test]
    fn account_limit_refuses_the_extra_order_then_recovers() {
        let clock = FakeRelativeClock::default();
        let limiter = AccountLimiter::with_clock(&quotas(3, 100), clock.clone());
        for _ in 0..3 {
            assert_eq!(limiter.check("alice"), Ok(()));
        }
        // One every 333.3 ms refills; the fourth must wait that long.
        assert_eq!(limiter.check("alice"), Err(RetryAfterMs(334)));
        // Other accounts are unaffected.
        assert_eq!(limiter.check("bob"), Ok(()));
        clock.advance(Duration::from_millis(200));
        assert_eq!(limiter.check("alice"), Err(RetryAfterMs(134)));
        clock.advance(Duration::from_millis(134));
        assert_eq!(limiter.check("alice"), Ok(()));
        assert!(limiter.check("alice").is_err());
    }

    #[test]
    fn a_batch_counts_each_of_its_orders_all_or_none() {
        let clock = FakeRelativeClock::default();
        let limiter = AccountLimiter::with_clock(&quotas(5, 100), clock.clone());
        assert_eq!(limiter.check_n("alice", nonzero(3)), Ok(()));
        // Three more do not fit in the two left: none is taken.
        assert_eq!(limiter.check_n("alice", nonzero(3)), Err(RetryAfterMs(200)));
        assert_eq!(limiter.check_n("alice", nonzero(2)), Ok(()));
        assert!(limiter.check("alice").is_err());
        // More than the burst never fits.
        assert_eq!(limiter.check_n("bob", nonzero(6)), Err(RetryAfterMs(1_000)));
        assert_eq!(limiter.check_n("bob", nonzero(5)), Ok(()));
    }

    #[test]
    fn connection_limit_applies_to_every_message() {
        let clock = FakeRelativeClock::default();
        let accounts = Arc::new(AccountLimiter::with_clock(&quotas(100, 2), clock.clone()));
        let conn = RateLimits::with_clock(&quotas(100, 2), Arc::clone(&accounts), clock.clone());
        assert_eq!(conn.check(None), Ok(()));
        assert_eq!(conn.check(Some("alice")), Ok(()));
        let Err(RetryAfterMs(ms)) = conn.check(None) else {
            panic!("third message in the same instant passed")
        };
        assert_eq!(ms, 500);
        // A second connection has its own allowance.
        let other = RateLimits::with_clock(&quotas(100, 2), Arc::clone(&accounts), clock.clone());
        assert_eq!(other.check(None), Ok(()));
        clock.advance(Duration::from_millis(500));
        assert_eq!(conn.check(None), Ok(()));
    }

    #[test]
    fn account_limit_is_shared_across_connections() {
        let clock = FakeRelativeClock::default();
        let q = quotas(2, 100);
        let accounts = Arc::new(AccountLimiter::with_clock(&q, clock.clone()));
        let a = RateLimits::with_clock(&q, Arc::clone(&accounts), clock.clone());
        let b = RateLimits::with_clock(&q, Arc::clone(&accounts), clock.clone());
        assert_eq!(a.check(Some("alice")), Ok(()));
        assert_eq!(b.check(Some("alice")), Ok(()));
        assert_eq!(b.check(Some("alice")), Err(RetryAfterMs(500)));
        assert_eq!(a.check_order("alice"), Err(RetryAfterMs(500)));
        // Plain messages are still fine on both.
        assert_eq!(a.check(None), Ok(()));
        assert_eq!(b.check_message(), Ok(()));
    }

    #[test]
    fn idle_accounts_are_swept_past_accounts_max() {
        let clock = FakeRelativeClock::default();
        let limiter = AccountLimiter::with_clock(&quotas(1, 100), clock.clone());
        for i in 0..16 {
            limiter.check(&format!("u{i}")).unwrap();
        }
        assert_eq!(limiter.len(), 16);
        clock.advance(Duration::from_secs(2));
        // The 17th account pushes the table past its bound: the idle ones go.
        limiter.check("late").unwrap();
        assert!(limiter.len() <= 1, "{} accounts kept", limiter.len());
        // A swept account starts with a full allowance, like a new one.
        assert_eq!(limiter.check("u0"), Ok(()));
        assert!(limiter.check("u0").is_err());
    }

    #[test]
    fn busy_accounts_are_kept_and_keep_their_state() {
        let clock = FakeRelativeClock::default();
        let limiter = AccountLimiter::with_clock(&quotas(1, 100), clock.clone());
        for i in 0..20 {
            limiter.check(&format!("u{i}")).unwrap();
        }
        // None is idle yet, so no sweep may reset anyone's allowance.
        assert_eq!(limiter.len(), 20);
        assert!(limiter.check("u0").is_err());
    }

    #[test]
    fn real_clock_refusal_then_pass_after_the_advised_wait() {
        let q = quotas(20, 20);
        let accounts = Arc::new(AccountLimiter::new(&q));
        let conn = RateLimits::new(&q, Arc::clone(&accounts));
        for _ in 0..20 {
            conn.check_order("alice").unwrap();
        }
        let Err(RetryAfterMs(ms)) = conn.check_order("alice") else {
            panic!("21st order passed")
        };
        assert!((1..=50).contains(&ms), "retry after {ms} ms");
        std::thread::sleep(Duration::from_millis(ms + 5));
        assert_eq!(conn.check_order("alice"), Ok(()));
    }
}
