//! What ccrd asks of the host it runs on.

/// Keeps transparent huge pages out of this process. The first touch of a
/// huge page makes the kernel zero 2 MB (or compact memory for it) while the
/// touching thread waits: 4–5 ms of kernel time on the routing thread,
/// measured, the worst of its stalls under load (docs/PERFORMANCE.md). The
/// allocator no longer asks for them (mimalloc's `no_thp`); this covers the
/// hosts whose THP setting is `always` too. Fails only on kernels before
/// 3.15, which lack the option, and then changes nothing.
pub fn opt_out_of_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let (disable, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: this prctl takes integers only and changes nothing but
        // this process's THP flag.
        if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, disable, unused, unused, unused) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Keeps the memory the process frees for its own reuse instead of handing
/// it back to the OS. A snapshot's replica frees hundreds of megabytes at
/// a time at a big centre, and the allocator's purge of them (`madvise`,
/// `munmap`) held up the other threads' page faults: round trips of
/// 20–42 ms near each snapshot at 100,000 agents and 1,100,000 contacts;
/// with purging off, the longest are no longer than without snapshots
/// (`benches/benches/snapshot_stall.rs`, `-- --purge` for the default).
/// The cost: resident memory stays at its high-water mark, which the next
/// snapshot reuses.
pub fn keep_freed_memory() {
    /// `mi_option_purge_delay` in the option enum of the mimalloc the
    /// workspace pins (the Rust bindings name no constant for it); -1 is
    /// "never purge".
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one integer option of the allocator; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_opts_out_of_transparent_huge_pages() {
        super::opt_out_of_transparent_huge_pages().expect("prctl");
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("THP_enabled line");
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}
