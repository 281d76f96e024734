//! `cargo xtask <task>`: rollcall's development tasks.
//!
//! * `ci`: everything CI checks: formatting, clippy with warnings as errors, the whole test
//!   suite, and the host built and tested with each connector feature alone.
//! * `new-connector NAME --vendor "Display Name"`: a new connector crate, wired into the
//!   workspace and the host (see `scaffold` and `docs/connectors.md`).
//! * `bench normalize`: the criterion benchmark of every connector's `normalize`.
#![forbid(unsafe_code)]

mod scaffold;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The host's connector features; each must build and register alone.
const CONNECTOR_FEATURES: &[&str] = &[
    // One per line: `cargo xtask new-connector` adds its connector at the end.
    "freshservice",
    "zendesk",
    "highlevel",
    "vcclive",
    "okta",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["new-connector", rest @ ..] => new_connector(rest),
        ["bench", "normalize", rest @ ..] => bench_normalize(rest),
        ["bench", "ingest", rest @ ..] => bench_ingest(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                  fmt, clippy -D warnings, tests, each connector feature alone\n  \
                 new-connector NAME --vendor \"Display Name\"\n                      \
                 a new connector crate, wired into the workspace and the host\n  \
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

fn new_connector(args: &[&str]) -> Result<()> {
    let (name, vendor) = scaffold::parse_args(args)?;
    let root = workspace_root();
    let report = scaffold::new_connector(&root, &name, &vendor)?;
    let relative = |path: &Path| {
        path.strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    eprintln!("created connector {name} ({vendor}):");
    for path in &report.created {
        eprintln!("  + {}", relative(path));
    }
    for path in &report.edited {
        eprintln!("  ~ {}", relative(path));
    }
    if let Err(error) = scaffold::record_in_lockfile(&root) {
        eprintln!("warning: Cargo.lock not updated ({error:#}); run `cargo check` once");
    }
    eprintln!(
        "\nnext: fill in every FILL IN (docs/connectors.md walks through them), then\n  \
         cargo test -p {}\n  cargo xtask ci",
        name.crate_name
    );
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
