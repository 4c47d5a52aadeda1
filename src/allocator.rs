//! How the service's allocators give memory back: mimalloc (the binary's `#[global_allocator]`)
//! for Rust's allocations, and the C library's malloc, which SQLite allocates its page caches
//! with.
//!
//! mimalloc's defaults keep what was freed for a second before returning it to the system, and
//! commit its arenas eagerly, so that a purge only marks pages reusable instead of unmapping
//! them: after a burst of videos whose actors then passivate, RSS stayed at the burst's peak
//! (270 MB after 100k videos, where glibc's malloc left about 200 MB). Purging at once and
//! committing on demand left 131 MB at the same webhook throughput (docs/benchmarks.md).
//!
//! mimalloc v3 also frees a thread's emptied pages only when that thread collects, every
//! 10,000 allocations that miss its free lists by default. A worker thread that goes quiet after
//! a burst kept its pages: on a faster host, where more actors were alive at the burst's end,
//! 250-305 MB stayed after all of them passivated. Collecting ten times as often left 88-224 MB,
//! at the same throughput (docs/benchmarks.md, 2026-12-06, third session).

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` of `mi_option_e` (mimalloc.h,
/// v3): libmimalloc-sys names only some of the options. A test checks these are the options
/// meant, by their documented defaults.
const ARENA_EAGER_COMMIT: mi_option_t = 4;
const PURGE_DELAY: mi_option_t = 15;
const GENERIC_COLLECT: mi_option_t = 34;

/// Milliseconds between freeing memory and returning it to the system.
const PROMPT_PURGE_DELAY_MS: std::ffi::c_long = 0;

/// Allocations that miss a thread's free lists between two collections of its pages. mimalloc
/// looks at this count every 1,000 such allocations, so no lower value collects more often.
const FREQUENT_COLLECT_ALLOCATIONS: std::ffi::c_long = 1_000;

/// Call first thing in `main` (the binary does for `serve`, before its runtime starts
/// threads): freed memory goes back to the system at once, arenas reserved from here on
/// commit their pages as they are used, and each thread collects its emptied pages often. Not
/// for short batch runs such as `video-status rebuild`, which reuse their memory page after
/// page and pay for every return.
/// mimalloc's own environment variables (`MIMALLOC_PURGE_DELAY`, ...) still win: an option
/// set there is left as it is.
pub fn return_freed_memory_promptly() {
    for (option, variable, value) in [
        (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", PROMPT_PURGE_DELAY_MS),
        (
            GENERIC_COLLECT,
            "MIMALLOC_GENERIC_COLLECT",
            FREQUENT_COLLECT_ALLOCATIONS,
        ),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: `mi_option_set` stores an integer into mimalloc's option table; any
            // value is valid for these options, and mimalloc reads them with atomic loads.
            unsafe { mi_option_set(option, value) };
        }
    }
}

/// Bytes of free memory glibc may keep at the top of a heap before it gives them back.
const C_HEAP_TRIM_THRESHOLD: std::ffi::c_int = 64 << 20;

/// Keeps the C heap's freed pages mapped instead of giving them back to the system past glibc's
/// default 128 KiB. Why: a read transaction that finds the database changed since its last one
/// empties its connection's page cache (one `free` per page), and the next read `malloc`s the
/// pages again, growing the heap and faulting its pages in anew. Walking the log beside the
/// rebuild's writes did that for every page read: 3-4% of a rebuild's CPU went to `sysmalloc`,
/// page faults and `madvise`, a third of that after this (docs/benchmarks.md). What this keeps
/// is bounded by SQLite's own peak (each connection's `cache_size`), not by this threshold.
/// Returns false where the C library has no such setting or refused it; nothing else changes
/// then.
pub fn keep_freed_c_heap_mapped() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` sets a malloc tunable under glibc's own lock; any value is valid
        // for M_TRIM_THRESHOLD.
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, C_HEAP_TRIM_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    fn option(option: mi_option_t) -> std::ffi::c_long {
        // SAFETY: reads an integer from mimalloc's option table.
        unsafe { mi_option_get(option) }
    }

    /// Asserts `option`'s value unless `variable` sets it from the environment.
    fn assert_unless_set(option: mi_option_t, variable: &str, expected: std::ffi::c_long) {
        if std::env::var_os(variable).is_none() {
            assert_eq!(self::option(option), expected, "{variable}");
        }
    }

    #[test]
    fn the_option_numbers_are_the_options_meant() {
        // Read before any test sets them (nothing in the test binary does): mimalloc's
        // defaults on Linux, 2 (eagerly, where the system overcommits), 1,000 ms and 10,000
        // allocations.
        assert_unless_set(ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 2);
        assert_unless_set(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 1_000);
        assert_unless_set(GENERIC_COLLECT, "MIMALLOC_GENERIC_COLLECT", 10_000);
        return_freed_memory_promptly();
        assert_unless_set(ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0);
        assert_unless_set(PURGE_DELAY, "MIMALLOC_PURGE_DELAY", PROMPT_PURGE_DELAY_MS);
        assert_unless_set(
            GENERIC_COLLECT,
            "MIMALLOC_GENERIC_COLLECT",
            FREQUENT_COLLECT_ALLOCATIONS,
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_trim_threshold() {
        assert!(keep_freed_c_heap_mapped());
    }
}
