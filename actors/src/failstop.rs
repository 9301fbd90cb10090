//! Fail-stop for the threads a node cannot run without.
//!
//! Each actor runs on an arbiter thread of its own kind, and a panic ends
//! only that thread: a ledger, instrument or market-data actor that panics
//! (a broken invariant: an `expect` on a decided amount, an overflow check)
//! would leave a node that still accepts connections and answers nothing,
//! or trades without market data. So the server binary installs a panic
//! hook ([`install`]) that, for a panic on a thread marked critical
//! ([`mark_critical`]), logs it and aborts the process: the node stops
//! whole, its supervisor restarts it, and it recovers everything it
//! acknowledged from its event log (written and fsync'd before any answer).
//! Clients see their connection close and resume on this node or another.
//!
//! A panic that its thread catches and handles (a fan-out write, see
//! [`crate::market::writers`]) runs inside [`contained`] and does not stop
//! the node. Tests run nodes in their own process without the hook.

use std::cell::Cell;

thread_local! {
    static CRITICAL: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as one the node cannot lose: a panic on it stops the
/// process (once [`install`] has run). Called by the ledger, instrument and
/// market-data actors when they start, and by the journal thread.
pub fn mark_critical() {
    CRITICAL.with(|c| c.set(true));
}

/// Whether a panic on this thread now would stop the process.
pub fn is_critical() -> bool {
    CRITICAL.with(Cell::get)
}

/// Runs `f`, whose panics the caller catches and handles, with this
/// thread's mark lifted (and put back after, also when `f` panics).
pub fn contained<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CRITICAL.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CRITICAL.with(|c| c.replace(false)));
    f()
}

/// The environment variable of fault injection (debug builds only):
/// `BOURSE_FAULT=ledger-place:N` makes the ledger's thread panic when it
/// takes the (N+1)-th order placement a session sent, so that crash tests
/// can show what a broken invariant there does; `journal-sync:N` makes the
/// journal's (N+1)-th `fdatasync` fail as a full or failing disk's would.
/// Release builds never read it.
pub const FAULT_ENV: &str = "BOURSE_FAULT";

/// A place where a fault can be injected: panics when `BOURSE_FAULT`
/// names `point` and it has been passed the given number of times. Does
/// nothing in release builds.
pub fn fault_point(point: &str) {
    if fault_hit(point) {
        panic!("fault injected at {point} ({FAULT_ENV})");
    }
}

/// Whether a fault is injected at `point` this time: `BOURSE_FAULT` names
/// it and it has been passed the given number of times (the caller makes
/// the failure, e.g. an I/O error). Always false in release builds.
pub fn fault_hit(point: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static FAULT: OnceLock<Option<(String, u64)>> = OnceLock::new();
        static PASSED: AtomicU64 = AtomicU64::new(0);
        let fault = FAULT.get_or_init(|| {
            let v = std::env::var(FAULT_ENV).ok()?;
            let parsed = v.split_once(':').and_then(|(at, n)| Some((at.to_string(), n.parse().ok()?)));
            if parsed.is_none() {
                tracing::warn!(value = %v, "{FAULT_ENV} is not POINT:N (e.g. ledger-place:3); no fault is injected");
            }
            parsed
        });
        if let Some((at, n)) = fault {
            return at == point && PASSED.fetch_add(1, Ordering::Relaxed) == *n;
        }
        false
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = point;
        false
    }
}

/// Installs the process's panic hook: the usual report, then, on a
/// critical thread, an error in the log and an abort.
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if is_critical() {
            let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
            tracing::error!(
                thread,
                panic = %info,
                "a thread the node cannot run without panicked: the process stops (every acknowledged decision is in the event log; restart it to recover)"
            );
            std::process::abort();
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_critical_once_marked_and_not_inside_contained() {
        std::thread::spawn(|| {
            assert!(!is_critical());
            mark_critical();
            assert!(is_critical());
            assert!(!contained(is_critical));
            assert!(is_critical(), "the mark is back after");
            // A panic caught around `contained` puts the mark back too.
            let caught = std::panic::catch_unwind(|| contained(|| panic!("a contained panic (test)")));
            assert!(caught.is_err());
            assert!(is_critical(), "the mark is back after a caught panic");
        })
        .join()
        .expect("the test thread ends");
        assert!(!is_critical(), "marks belong to their thread");
    }
}
