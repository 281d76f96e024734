use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rollcall::cli::Cli::parse();
    rollcall::cli::init_tracing();
    cli.run()
}
