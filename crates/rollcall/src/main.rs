use std::process::ExitCode;

use clap::Parser;

// See the workspace manifest: allocations cross threads on the ingest path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = rollcall::cli::Cli::parse();
    rollcall::cli::init_tracing();
    cli.run()
}
