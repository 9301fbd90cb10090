//! Hints that memory is about to be read or written.

use std::mem::MaybeUninit;

/// Asks for the cache line where `spare[k]` starts, ahead of a write to
/// it, if there is such an element: for a buffer written in order
/// (`Vec::spare_capacity_mut`), the place `k` elements past its end.
#[inline(always)]
pub fn tail<T>(spare: &[MaybeUninit<T>], k: usize) {
    if let Some(x) = spare.get(k) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
        safe_arch::prefetch_et0(x);
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
        let _ = x;
    }
}

/// Asks for the cache line holding `x`, ahead of a read of it.
#[inline(always)]
pub fn read<T>(x: &T) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    safe_arch::prefetch_t0(x);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = x;
}
