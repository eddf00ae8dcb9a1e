//! Software prefetch: a search that reads many independent cache lines asks
//! for all of them first, so that their misses overlap instead of being
//! waited for one after another. At the benchmark's size the lines a search
//! reads are rarely in the core's own caches, and waiting for them is most
//! of a decision's time.

/// Asks the CPU to start loading the cache line holding `ptr`. A hint only:
/// any address is allowed, dangling or out of bounds, and nothing is read
/// that the program sees.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` cannot fault and has no effect the program can
    // observe, whatever the address; SSE is part of every x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
