use std::process::ExitCode;

use clap::Parser;

// See the workspace manifest: allocations cross threads on the ingest path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    without_transparent_huge_pages();
    // Each command installs its log format: `serve` after reading its configuration.
    rollcall::cli::Cli::parse().run()
}

/// Turns transparent huge pages off for this process (Linux) unless `MIMALLOC_ALLOW_THP` is
/// set (then mimalloc decides, as it reads that variable at start).
///
/// Why: mimalloc asks for huge pages on its arenas, and each first touch of one makes the
/// kernel zero 2 MiB, most of which a request's short-lived allocations never use; the
/// ingest profile had `clear_page_erms` at 6-8 % of the daemon's CPU, and without huge pages
/// the same traffic took 5 % less CPU per event (docs/benchmarks.md, "Transparent huge
/// pages"). `prctl(PR_SET_THP_DISABLE)` covers a host whose THP mode is `always` too, where
/// mimalloc's `no_thp` build feature (which only stops its own `madvise`) would not.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Best effort: an old kernel without the prctl keeps its default, nothing else changes.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}
