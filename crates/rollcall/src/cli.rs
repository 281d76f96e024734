//! `rollcall` commands.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rollcall_core::{Delivery, ErrorCode, SourceOptions, Timestamp};
use serde_json::json;

use crate::config::{Config, Overrides};
use crate::{admin_client, announce, announce_error, daemon, logging};

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
    /// Run the daemon: receive webhooks, journal them, deliver them to the sinks.
    ///
    /// Without --config it runs on embedded defaults: ingest on 127.0.0.1:8080, admin on
    /// 127.0.0.1:9090, SQLite under ./rollcall-data/, a stdout sink and one demo source per
    /// connector, whose secrets it prints at start-up.
    ///
    /// Any key of [ingest], [admin], [store], [delivery] and [log] can be set from the
    /// environment as ROLLCALL_<TABLE>_<KEY> (ROLLCALL_INGEST_LISTEN=0.0.0.0:8080), over the
    /// file or the defaults; the flags below win over both.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The ingest listener's address:port (ingest.listen).
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<String>,
        /// The admin listener's address:port (admin.listen).
        #[arg(long, value_name = "ADDRESS")]
        admin_listen: Option<String>,
    },
    /// Check, print or describe configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a published JSON Schema.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Print the curl command a vendor would send for a payload, signed for a source.
    ///
    /// Without --config it signs for the demo sources of a daemon running on embedded
    /// defaults, with the secrets that daemon created in its data directory; it never creates
    /// secrets itself.
    Sign {
        /// The source to sign for.
        #[arg(long)]
        source: String,
        /// The configuration file; without it, the embedded defaults' demo sources.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where `rollcall serve` (without --config) keeps its demo secrets.
        #[arg(long, value_name = "DIR", default_value = daemon::demo::DATA_DIR)]
        data_dir: PathBuf,
        /// The ingest base URL (defaults to the configured ingest listener).
        #[arg(long)]
        url: Option<String>,
        /// Print the request as JSON (url, method, headers, body) instead of curl.
        #[arg(long)]
        json: bool,
        /// The payload file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
    /// Read the journal through the admin API.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Show sinks (state, lag, last error), pause or resume one.
    #[command(subcommand)]
    Sinks(SinksCommand),
    /// List or replay events that sinks could not take.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// List, show or replay deliveries that failed normalization.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Read the user directory: the latest known state of every user, per source.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Deliver again to a sink everything received since a time.
    Replay {
        #[arg(long, required_unless_present = "all")]
        sink: Option<String>,
        /// Rewind every sink (instead of --sink).
        #[arg(long, conflicts_with = "sink")]
        all: bool,
        /// RFC 3339 time, e.g. 2026-11-22T00:00:00Z.
        #[arg(long)]
        since: String,
        /// Print where each sink would be rewound to and how many events it would get; move
        /// nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Sync a source's users from its vendor's API: a backfill, or a reconciliation now.
    ///
    /// Lists the vendor's users and commits, through the journal, exactly the differences
    /// with the directory (created, updated, and, after a complete listing, deleted users).
    /// On a terminal it shows progress; otherwise it prints a JSON summary. Exits 0 when the
    /// listing completed, 1 when it stopped short (it resumes from its cursor next time).
    ///
    /// Without --admin it runs in this process on the configuration's store (the daemon
    /// must not be running on a SQLite store); with --admin it asks the running daemon.
    Sync {
        /// The source to sync.
        #[arg(long)]
        source: String,
        /// The configuration file; without it, the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Ask the daemon at this admin API base URL to run the sync instead.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Check that a daemon's ingest listener answers (for container health checks).
    ///
    /// Exits 0 when GET /healthz answers 200, 1 otherwise.
    Health {
        /// The URL to check (default: /healthz on ingest.listen, from ROLLCALL_INGEST_LISTEN
        /// or 127.0.0.1:8080).
        #[arg(long)]
        url: Option<String>,
    },
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

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file; prints every problem, one per line, as
    /// `file:line: key: problem`.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a complete example configuration for the connectors and sinks of this build.
    Example,
    /// Print the JSON Schema of the configuration file.
    Schema,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// The unified event every sink receives in the native format (version 1).
    Event,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print journal entries as JSON lines, `{"seq": N, "event": {...}}`; with --follow,
    /// keep printing new ones. Pass the last `seq` to --after to resume.
    Tail {
        /// Start after this journal sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// Print dead letters as JSON (all sinks, or one; by state).
    List {
        #[arg(long)]
        sink: Option<String>,
        /// dead, replay or replayed.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Queue dead letters for another delivery attempt (all of a sink's, or by id).
    ///
    /// A letter whose user has a newer state than the letter's event is refused (it would
    /// deliver an older state after a newer one) unless --force.
    Replay {
        #[arg(long)]
        sink: Option<String>,
        #[arg(long = "id")]
        ids: Vec<i64>,
        /// Replay every sink's dead letters (needed without --sink or --id).
        #[arg(long)]
        all: bool,
        /// Print what would be queued and what would be refused; queue nothing.
        #[arg(long)]
        dry_run: bool,
        /// Queue letters whose user has a newer state too.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
enum SinksCommand {
    /// Print every sink's state, position, lag, in-flight requests, last error and next
    /// attempt as JSON.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Stop sending to a sink until resumed (survives restarts).
    Pause {
        sink: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Send to a paused sink again.
    Resume {
        sink: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// Print quarantined deliveries as JSON (by state).
    List {
        /// open or replayed.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print one quarantined delivery as JSON, with its headers (secrets removed) and body.
    Show {
        id: i64,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Re-run a quarantined delivery through its connector and commit its events.
    Replay {
        id: i64,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Print a page of users as JSON (`users`, and `total` matching the filters).
    List {
        /// Only this source's users.
        #[arg(long)]
        source: Option<String>,
        /// Only users with this unified status (active, inactive, deleted, invited, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only users with this username, else primary email (case-insensitive).
        #[arg(long)]
        user_name: Option<String>,
        /// Include deleted users (tombstones).
        #[arg(long)]
        include_deleted: bool,
        /// Skip this many users (ordered by source, then id).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// At most this many users (up to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print one user of a source as JSON (deleted users too).
    Get {
        /// The source id.
        source: String,
        /// The vendor's user id.
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

// Where the admin API is (a plain comment: clap would take a doc comment as the help text
// of every subcommand that flattens these arguments and has none of its own).
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// The admin API's base URL (default: the --config's admin listener, else
    /// ROLLCALL_ADMIN_LISTEN, else http://127.0.0.1:9090). The token is read from
    /// ROLLCALL_ADMIN_TOKEN, else the --config's [admin] token.
    #[arg(long)]
    pub admin: Option<String>,
    /// A configuration file to read the admin address and token from (only its [admin]
    /// table is read).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl Cli {
    pub fn run(self) -> ExitCode {
        if let Command::Serve {
            config,
            listen,
            admin_listen,
        } = self.command
        {
            return serve(config, listen, admin_listen);
        }
        logging::init(logging::format_from_env());
        match self.command {
            Command::Serve { .. } => ExitCode::from(2),
            Command::Config(command) => config_command(command),
            Command::Schema(SchemaCommand::Event) => {
                print!("{}", crate::USER_EVENT_SCHEMA);
                ExitCode::SUCCESS
            }
            Command::Sign {
                source,
                config,
                data_dir,
                url,
                json,
                file,
            } => match sign(
                &source,
                config.as_deref(),
                &data_dir,
                url,
                json,
                file.as_ref(),
            ) {
                Ok(code) => code,
                Err(error) => {
                    announce_error!("{error:#}");
                    ExitCode::from(2)
                }
            },
            Command::Health { url } => run_async(health(url)),
            Command::Events(EventsCommand::Tail {
                after,
                follow,
                admin,
            }) => run_async(admin_client::events_tail(admin.into(), after, follow)),
            Command::DeadLetters(DeadLettersCommand::List { sink, state, admin }) => {
                run_async(admin_client::dead_letters_list(admin.into(), sink, state))
            }
            Command::DeadLetters(DeadLettersCommand::Replay {
                sink,
                ids,
                all,
                dry_run,
                force,
                admin,
            }) => run_async(admin_client::dead_letters_replay(
                admin.into(),
                serde_json::json!({"sink": sink, "ids": ids, "all": all, "dry_run": dry_run, "force": force}),
            )),
            Command::Sinks(SinksCommand::List { admin }) => {
                run_async(admin_client::sinks_list(admin.into()))
            }
            Command::Sinks(SinksCommand::Pause { sink, admin }) => {
                run_async(admin_client::sink_pause(admin.into(), sink, true))
            }
            Command::Sinks(SinksCommand::Resume { sink, admin }) => {
                run_async(admin_client::sink_pause(admin.into(), sink, false))
            }
            Command::Quarantine(QuarantineCommand::List { state, admin }) => {
                run_async(admin_client::quarantine_list(admin.into(), state))
            }
            Command::Quarantine(QuarantineCommand::Show { id, admin }) => {
                run_async(admin_client::quarantine_show(admin.into(), id))
            }
            Command::Quarantine(QuarantineCommand::Replay { id, admin }) => {
                run_async(admin_client::quarantine_replay(admin.into(), id))
            }
            Command::Users(UsersCommand::List {
                source,
                status,
                user_name,
                include_deleted,
                offset,
                limit,
                admin,
            }) => run_async(admin_client::users_list(
                admin.into(),
                admin_client::UsersFilter {
                    source,
                    status,
                    user_name,
                    include_deleted,
                    offset,
                    limit,
                },
            )),
            Command::Users(UsersCommand::Get { source, id, admin }) => {
                run_async(admin_client::users_get(admin.into(), source, id))
            }
            Command::Replay {
                sink,
                all,
                since,
                dry_run,
                admin,
            } => run_async(admin_client::replay(
                admin.into(),
                serde_json::json!({"sink": sink, "all": all, "since": since, "dry_run": dry_run}),
            )),
            Command::Sync {
                source,
                config,
                admin: Some(admin),
            } => run_async(admin_client::sync(
                admin_client::AdminTarget {
                    base: Some(admin),
                    config,
                },
                source,
            )),
            Command::Sync {
                source,
                config,
                admin: None,
            } => run_async(sync(source, config)),
            Command::Connectors { json } => list_connectors(json),
            Command::Normalize {
                connector,
                source,
                file,
            } => normalize(&connector, source, file),
        }
    }
}

/// Runs an async command on a fresh runtime; errors print on stderr and exit 2.
fn run_async<F>(future: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            announce_error!("cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(future) {
        Ok(code) => code,
        Err(error) => {
            announce_error!("{error:#}");
            ExitCode::from(2)
        }
    }
}

/// The configuration of `--config`, or the embedded defaults (with demo seeds from
/// `data_dir`), with `overrides` applied; and whether it is the defaults.
fn load_config(
    path: Option<&std::path::Path>,
    overrides: &Overrides,
    data_dir: &std::path::Path,
    seeds: daemon::demo::Seeds,
) -> anyhow::Result<(Config, bool)> {
    match path {
        Some(path) => Ok((Config::load_with(path, overrides)?, false)),
        None => Ok((
            daemon::demo::default_config(data_dir, overrides, seeds)?,
            true,
        )),
    }
}

fn serve(
    config_path: Option<PathBuf>,
    listen: Option<String>,
    admin_listen: Option<String>,
) -> ExitCode {
    let mut overrides = Overrides::from_env();
    if let Some(listen) = listen {
        overrides.set("--listen", "ingest", "listen", listen);
    }
    if let Some(listen) = admin_listen {
        overrides.set("--admin-listen", "admin", "listen", listen);
    }
    let loaded = load_config(
        config_path.as_deref(),
        &overrides,
        std::path::Path::new(daemon::demo::DATA_DIR),
        daemon::demo::Seeds::CreateIfMissing,
    );
    let (config, defaults) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            // The file's [log] format is unknown when the file is wrong; the environment's
            // is not.
            logging::init(logging::format_from_env());
            // A configuration's problems one per line, as `config check` prints them.
            match error.downcast_ref::<crate::config::ConfigErrors>() {
                Some(errors) => {
                    for error in errors.iter() {
                        announce_error!("{error}");
                    }
                }
                None => announce_error!("{error:#}"),
            }
            return ExitCode::from(2);
        }
    };
    let telemetry = match logging::init_with_traces(config.log.format, &config.traces) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            logging::init(config.log.format);
            announce_error!("{error}");
            return ExitCode::from(2);
        }
    };
    if defaults {
        for line in daemon::demo::describe(&config) {
            announce!("{line}");
        }
    }
    let code = run_async(async move {
        daemon::serve(config).await?;
        Ok(ExitCode::SUCCESS)
    });
    // After the runtime: the exporter's last flush blocks.
    telemetry.shutdown();
    code
}

/// `rollcall health`: GET the ingest listener's /healthz.
async fn health(url: Option<String>) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(url) => url,
        None => {
            let config = Config::parse_with("", |_| None, &Overrides::from_env())?;
            format!("http://{}/healthz", connect_address(config.ingest.listen))
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            announce_error!("{url} answered {}", response.status());
            Ok(ExitCode::from(1))
        }
        Err(error) => {
            announce_error!("cannot reach {url}: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The address a client on this machine uses to reach a listener bound to `listen`
/// (a wildcard address is reached on loopback).
pub fn connect_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            std::net::SocketAddr::from(([127, 0, 0, 1], listen.port()))
        }
        ip if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    }
}

/// `rollcall sync` in this process: progress on a terminal, else a JSON summary.
async fn sync(source_id: String, config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;

    let (config, _) = load_config(
        config_path.as_deref(),
        &Overrides::from_env(),
        std::path::Path::new(daemon::demo::DATA_DIR),
        daemon::demo::Seeds::Existing,
    )?;
    let metrics = crate::metrics::Metrics::default();
    let sources = daemon::build_sources(&config, &metrics)?;
    let Some(source) = sources.get(&source_id) else {
        return Ok(fail(
            ErrorCode::SourceUnknown,
            format!("no source {source_id:?} in the configuration"),
            None,
        ));
    };
    let store = daemon::open_store(&config.store).await.map_err(|error| {
        anyhow::anyhow!(
            "{error:#}; if the daemon is running on this store, ask it instead: \
             rollcall sync --source {source_id} --admin http://{}",
            config.admin.listen
        )
    })?;
    let terminal = io::stdout().is_terminal();
    let bar = if terminal {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar.set_message(format!("{source_id}: listing users"));
        Some(bar)
    } else {
        None
    };
    let mut progress = |counts: &rollcall_store::SyncCounts| {
        if let Some(bar) = &bar {
            bar.set_message(format!(
                "{source_id}: {} listed, {} created, {} updated, {} deleted, {} unchanged, {} stale",
                counts.listed,
                counts.created,
                counts.updated,
                counts.deleted,
                counts.unchanged,
                counts.stale
            ));
        }
    };
    let outcome = crate::sync::run(&store, source, &metrics, &mut progress).await;
    store.close().await;
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(fail(error.code(), error.to_string(), None));
        }
    };
    if let Some(bar) = &bar {
        let counts = &report.counts;
        bar.finish_with_message(format!(
            "{source_id}: {} — {} listed, {} created, {} updated, {} deleted, {} unchanged, {} stale{}",
            if report.complete { "complete" } else { "stopped short" },
            counts.listed,
            counts.created,
            counts.updated,
            counts.deleted,
            counts.unchanged,
            counts.stale,
            report
                .error
                .as_deref()
                .map(|error| format!(" ({error})"))
                .unwrap_or_default()
        ));
    } else {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn config_command(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Check { config } => match Config::load(&config) {
            Ok(parsed) => {
                println!(
                    "{}: ok ({} sources, {} sinks)",
                    config.display(),
                    parsed.sources.len(),
                    parsed.sinks.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::from(1)
            }
        },
        ConfigCommand::Example => {
            print!("{}", crate::config::example());
            ExitCode::SUCCESS
        }
        ConfigCommand::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::config::schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
    }
}

fn sign(
    source_id: &str,
    config_path: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    url: Option<String>,
    as_json: bool,
    file: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (config, _) = load_config(
        config_path,
        &Overrides::from_env(),
        data_dir,
        daemon::demo::Seeds::Existing,
    )?;
    // Signing counts nothing: these handles are never read.
    let sources = daemon::build_sources(&config, &crate::metrics::Metrics::default())?;
    let Some(source) = sources.get(source_id) else {
        let mut known: Vec<_> = sources.keys().cloned().collect();
        known.sort();
        return Ok(fail(
            ErrorCode::SourceUnknown,
            format!("no source {source_id:?} (have: {})", known.join(", ")),
            None,
        ));
    };
    let body = read_input(file)?;
    let mut delivery = Delivery::new(source_id, body, Timestamp::now());
    delivery.headers.insert("content-type", "application/json");
    source.connector.sign(&mut delivery)?;
    let base = url.unwrap_or_else(|| format!("http://{}", connect_address(config.ingest.listen)));
    let mut target = format!("{}/hooks/{source_id}", base.trim_end_matches('/'));
    if let Some(query) = &delivery.query {
        target.push('?');
        target.push_str(query);
    }
    let body_text = String::from_utf8_lossy(&delivery.body).into_owned();
    if as_json {
        let headers: Vec<_> = delivery
            .headers
            .iter()
            .map(|(n, v)| json!([n, v]))
            .collect();
        println!(
            "{}",
            json!({"method": "POST", "url": target, "headers": headers, "body": body_text})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut command = format!("curl -sS -X POST {}", shell_quote(&target));
    for (name, value) in delivery.headers.iter() {
        command.push_str(&format!(
            " \\\n  -H {}",
            shell_quote(&format!("{name}: {value}"))
        ));
    }
    command.push_str(&format!(" \\\n  --data-binary {}", shell_quote(&body_text)));
    println!("{command}");
    Ok(ExitCode::SUCCESS)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
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
            writeln!(
                out,
                "{:width$}  {:vendor_width$}  EVENT TYPES",
                "NAME", "VENDOR"
            )?;
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
