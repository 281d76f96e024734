//! `rollcall` commands.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rollcall_core::{Delivery, ErrorCode, SourceOptions, Timestamp};
use serde_json::json;

/// rollcall turns SaaS vendors' user-lifecycle webhooks into one verified, unified stream of
/// user events.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the connectors compiled into this binary.
    Connectors {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Normalize one vendor payload offline and print its unified events, one JSON per line.
    ///
    /// On bad input it exits 1 and prints `{"error": {"code", "message", "path"}}` to stderr.
    Normalize {
        /// The connector to use (see `rollcall connectors`).
        #[arg(long)]
        connector: String,
        /// The source id to stamp on the events (defaults to the connector name).
        #[arg(long)]
        source: Option<String>,
        /// The payload file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Connectors { json } => list_connectors(json),
            Command::Normalize {
                connector,
                source,
                file,
            } => normalize(&connector, source, file),
        }
    }
}

/// Logs go to stderr so that stdout stays machine-readable.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROLLCALL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();
}

fn list_connectors(as_json: bool) -> ExitCode {
    let registrations = rollcall_core::registrations();
    let mut out = io::stdout().lock();
    let written = if as_json {
        let list: Vec<_> = registrations
            .iter()
            .map(|r| json!({"name": r.name, "vendor": r.vendor, "event_types": r.event_types}))
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(list))
    } else {
        let width = registrations
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let vendor_width = registrations
            .iter()
            .map(|r| r.vendor.len())
            .max()
            .unwrap_or(6)
            .max(6);
        (|| {
            writeln!(out, "{:width$}  {:vendor_width$}  EVENT TYPES", "NAME", "VENDOR")?;
            for r in &registrations {
                writeln!(
                    out,
                    "{:width$}  {:vendor_width$}  {}",
                    r.name,
                    r.vendor,
                    r.event_types.join(", ")
                )?;
            }
            Ok::<_, io::Error>(())
        })()
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

/// Prints `{"error": {...}}` to stderr and returns exit code 1.
fn fail(code: ErrorCode, message: String, path: Option<&str>) -> ExitCode {
    let mut error = json!({"code": code.as_str(), "message": message});
    if let Some(path) = path {
        error["path"] = json!(path);
    }
    eprintln!("{}", json!({ "error": error }));
    ExitCode::from(1)
}

fn normalize(connector_name: &str, source: Option<String>, file: Option<PathBuf>) -> ExitCode {
    let Some(registration) = rollcall_core::registration(connector_name) else {
        let known: Vec<_> = rollcall_core::registrations()
            .iter()
            .map(|r| r.name)
            .collect();
        return fail(
            ErrorCode::ConnectorUnknown,
            format!(
                "no connector named {connector_name:?} in this build (have: {})",
                known.join(", ")
            ),
            None,
        );
    };
    let body = match read_input(file.as_ref()) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("rollcall: cannot read input: {error}");
            return ExitCode::from(2);
        }
    };
    let source = source.unwrap_or_else(|| connector_name.to_owned());
    let connector = match (registration.build)(&SourceOptions::offline(&source)) {
        Ok(connector) => connector,
        Err(error) => return fail(error.code(), error.to_string(), None),
    };
    let delivery = Delivery::new(source, body, Timestamp::now());
    match connector.normalize(&delivery) {
        Ok(events) => {
            let mut out = io::stdout().lock();
            for event in events {
                let line = match serde_json::to_string(&event) {
                    Ok(line) => line,
                    Err(error) => {
                        eprintln!("rollcall: cannot serialize event: {error}");
                        return ExitCode::from(2);
                    }
                };
                if writeln!(out, "{line}").is_err() {
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(error.code(), error.to_string(), error.path()),
    }
}

fn read_input(file: Option<&PathBuf>) -> io::Result<Vec<u8>> {
    match file {
        Some(path) if path.as_os_str() != "-" => std::fs::read(path),
        _ => {
            let mut body = Vec::new();
            io::stdin().lock().read_to_end(&mut body)?;
            Ok(body)
        }
    }
}
