use std::process::ExitCode;

use clap::Parser;

// See the workspace manifest: allocations cross threads on the ingest path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Each command installs its log format: `serve` after reading its configuration.
    rollcall::cli::Cli::parse().run()
}
