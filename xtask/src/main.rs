//! `cargo xtask <task>`: rollcall's development tasks.
//!
//! * `ci`: everything CI checks: formatting, clippy with warnings as errors, the whole test
//!   suite, and the host built and tested with each connector feature alone.
//! * `new-connector NAME --vendor "Display Name"`: a new connector crate, wired into the
//!   workspace and the host (see `scaffold` and `docs/connectors.md`).
//! * `bench normalize`: the criterion benchmark of every connector's `normalize`.
//! * `bench ingest [--compare | --history N]`: bounded load runs of the release daemon over
//!   loopback (the `ingest_load` example); `--compare` also builds the axum + SQLite baseline
//!   and installs the fastify baseline from the npm registry (`benches/baselines/`).
//! * `bench delivery`: a delivery worker and the HTTP sink against a local receiver that
//!   answers in 100 ms: 5,000 events for 500 users at concurrency 1 and 16, per-user order
//!   checked at the receiver (the `delivery_load` example).
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
        ["bench", "delivery", rest @ ..] => bench_delivery(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 ci                  fmt, clippy -D warnings, tests, each connector feature alone, otlp,\n                      \
                 no PostgreSQL client without its features\n  \
                 new-connector NAME --vendor \"Display Name\"\n                      \
                 a new connector crate, wired into the workspace and the host\n  \
                 bench normalize     criterion benchmark of every connector's normalize\n  \
                 bench ingest [--seconds N] [--concurrency N]\n                      \
                 bounded load run of the release daemon over loopback\n  \
                 bench ingest --store postgres [--replicas N] [--postgres URL]\n                      \
                 the same on PostgreSQL, N replicas sharing one schema\n  \
                 bench ingest --compare [--seconds N] [--concurrency N]\n                      \
                 rollcall, an axum + SQLite receiver and fastify, side by side\n  \
                 bench ingest --history N [--minutes M] [--concurrency N]\n                      \
                 N events into rollcall; throughput per tenth of the run"
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
    // OpenTelemetry export (off by default): clippy, and its test against a local receiver.
    cargo(&[
        "clippy",
        "--package",
        "rollcall",
        "--all-targets",
        "--locked",
        "--features",
        "otlp",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&[
        "test",
        "--package",
        "rollcall",
        "--locked",
        "--features",
        "otlp",
        "--test",
        "traces",
    ])?;
    no_postgres_client_without_its_features()?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// A build with `--no-default-features` and one connector must not link a PostgreSQL
/// client: the PostgreSQL store and sink are features of their own.
fn no_postgres_client_without_its_features() -> Result<()> {
    let args = [
        "tree",
        "--package",
        "rollcall",
        "--locked",
        "--no-default-features",
        "--features",
        "zendesk",
        "--edges",
        "normal",
        "--prefix",
        "none",
    ];
    eprintln!("==> cargo {}", args.join(" "));
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .context("cannot run cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    if let Some(line) = tree
        .lines()
        .find(|line| line.starts_with("tokio-postgres ") || line.starts_with("postgres-protocol "))
    {
        bail!("a --no-default-features --features zendesk build links {line}: the PostgreSQL client must stay behind the postgres-store and sink-postgres features");
    }
    eprintln!("<== no PostgreSQL client without its features");
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

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `--compare` and `--history` also need the axum + SQLite baseline (a server, and the tool
/// that checkpoints a stopped server's database); `--compare` the fastify baseline too.
/// `bench delivery`: the `delivery_load` example (a real worker and HTTP sink against a
/// local receiver with a fixed latency), in release mode.
fn bench_delivery(extra: &[&str]) -> Result<()> {
    let mut args = vec![
        "run",
        "--release",
        "--package",
        "rollcall",
        "--example",
        "delivery_load",
        "--",
    ];
    args.extend(extra.iter().copied().filter(|arg| *arg != "--"));
    cargo(&args)
}

fn bench_ingest(extra: &[&str]) -> Result<()> {
    // `cargo xtask bench ingest -- --seconds 3` and `... --compare -- --seconds 3` both work.
    let extra: Vec<&str> = extra.iter().copied().filter(|arg| *arg != "--").collect();
    let compare = extra.contains(&"--compare");
    let history = extra.contains(&"--history");
    cargo(&[
        "build",
        "--release",
        "--package",
        "rollcall",
        "--bin",
        "rollcall",
    ])?;
    let release = target_dir().join("release");
    let mut args: Vec<String> = [
        "run",
        "--release",
        "--package",
        "rollcall",
        "--example",
        "ingest_load",
        "--",
        "--binary",
    ]
    .map(String::from)
    .to_vec();
    args.push(release.join("rollcall").to_string_lossy().into_owned());
    if compare || history {
        cargo(&["build", "--release", "--package", "baseline-axum-sqlite"])?;
        args.push("--axum-sqlite".to_owned());
        args.push(
            release
                .join("baseline-axum-sqlite")
                .to_string_lossy()
                .into_owned(),
        );
    }
    if compare {
        let fastify = workspace_root().join("benches/baselines/fastify");
        install_fastify(&fastify)?;
        args.push("--fastify".to_owned());
        args.push(fastify.to_string_lossy().into_owned());
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cargo(&args)
}

/// `npm ci` in the fastify baseline when its node_modules is missing or older than its
/// lockfile; Node 20 or later.
fn install_fastify(dir: &Path) -> Result<()> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .context("the fastify baseline needs Node.js 20 or later (`node` on PATH)")?;
    let version = String::from_utf8_lossy(&version.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .with_context(|| format!("cannot read node --version: {version}"))?;
    if major < 20 {
        bail!("the fastify baseline needs Node.js 20 or later, found {version}");
    }
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    let locked = modified(&dir.join("package-lock.json"));
    if installed.is_some() && installed >= locked {
        eprintln!("==> fastify baseline: node_modules up to date");
        return Ok(());
    }
    eprintln!("==> npm ci (benches/baselines/fastify)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("cannot run npm")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    Ok(())
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
