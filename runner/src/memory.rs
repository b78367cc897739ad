//! The daemon's resident memory. glibc's malloc keeps what a burst of work freed (the first
//! fold of a year of history, a `/metrics` text of 1,000 runbooks, a dashboard page) in its
//! arenas, one per thread that ever contended, up to eight per core: a long-running daemon's
//! memory would stay at its busiest moment's for good. Measured in `docs/BENCHMARKS.md`.

/// One arena per core (glibc's default is eight), set before the runtime starts its threads:
/// threads running at once still rarely wait for each other's arena.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // SAFETY: mallopt only changes the allocator's tunables; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, i32::try_from(cores).unwrap_or(i32::MAX));
        }
    }
}

/// Hands the heap pages freed since the last call back to the system (every arena's free
/// blocks, not only the top of the heap, which is all glibc gives back by itself).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it touches no live block.
    unsafe {
        libc::malloc_trim(0);
    }
}
