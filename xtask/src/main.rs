//! `cargo xtask <task>`: rollcall's development tasks.
//!
//! * `ci`: everything CI checks: formatting, clippy with warnings as errors, the whole test
//!   suite, and the host built and tested with each connector feature alone.
//! * `bench normalize`: the criterion benchmark of every connector's `normalize`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The host's connector features; each must build and register alone.
const CONNECTOR_FEATURES: &[&str] = &["freshservice", "zendesk", "highlevel", "vcclive"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["bench", "normalize", rest @ ..] => bench_normalize(rest),
        ["bench", "ingest", rest @ ..] => bench_ingest(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                  fmt, clippy -D warnings, tests, each connector feature alone\n  \
                 bench normalize     criterion benchmark of every connector's normalize\n  \
                 bench ingest [--seconds N] [--concurrency N]\n                      \
                 bounded load run of the release daemon over loopback"
            );
            bail!("unknown task {:?}", args)
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<()> {
    let started = Instant::now();
    eprintln!("==> cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    eprintln!(
        "<== cargo {} ({:.0?})",
        args.first().copied().unwrap_or(""),
        started.elapsed()
    );
    Ok(())
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])?;
    // Each connector feature alone: the host builds, and registers exactly that connector
    // (the `registers_exactly_the_connectors_of_the_enabled_features` unit test).
    for feature in CONNECTOR_FEATURES {
        cargo(&[
            "test",
            "--package",
            "rollcall",
            "--lib",
            "--locked",
            "--no-default-features",
            "--features",
            feature,
            "--",
            "registers_exactly_the_connectors_of_the_enabled_features",
        ])?;
    }
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

fn bench_ingest(extra: &[&str]) -> Result<()> {
    let extra = extra.strip_prefix(&["--"]).unwrap_or(extra);
    cargo(&[
        "build",
        "--release",
        "--package",
        "rollcall",
        "--bin",
        "rollcall",
    ])?;
    let binary = workspace_root().join("target/release/rollcall");
    let binary = binary.to_string_lossy().into_owned();
    let mut args = vec![
        "run",
        "--release",
        "--package",
        "rollcall",
        "--example",
        "ingest_load",
        "--",
        "--binary",
        &binary,
    ];
    args.extend_from_slice(extra);
    cargo(&args)
}

fn bench_normalize(extra: &[&str]) -> Result<()> {
    let extra = extra.strip_prefix(&["--"]).unwrap_or(extra);
    let mut args = vec!["bench", "--package", "rollcall", "--bench", "normalize"];
    if !extra.is_empty() {
        args.push("--");
        args.extend_from_slice(extra);
    }
    cargo(&args)
}
