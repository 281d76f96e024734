//! `rollcall serve`: the daemon.
//!
//! Start-up builds every source's connector and every sink from the configuration, opens the
//! store, binds both listeners, starts one delivery worker per sink and the pruner (retention).
//! SIGTERM or Ctrl-C stops the pruner and accepting, lets in-flight requests finish (within
//! a bound), lets each worker deliver what is committed (one attempt per event, within
//! [`WORKER_DRAIN`]), flushes, records cursors, closes the store, and exits 0.

mod admin;
mod api_error;
pub mod demo;
mod http_server;
mod ingest;
mod pipeline;
mod reconciler;
mod redact;
pub(crate) mod scim;
mod state;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rollcall_core::{SinkOptions, SourceOptions, Timestamp};
use rollcall_store::{PrunePolicy, PruneReport, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, Retention, StoreConfig};
use crate::metrics::{Metrics, Pruned};
pub use admin::VERSION_HEADER;
pub use state::{AppState, IngestLimits, Source};

/// How long workers get to deliver what is committed at shutdown.
const WORKER_DRAIN: Duration = Duration::from_secs(30);

/// How often the pruner runs, and how soon after start it runs first.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10 * 60);
const PRUNE_FIRST_DELAY: Duration = Duration::from_secs(30);
/// The pause between calls while a backlog larger than one call's cap is pruned.
const PRUNE_BACKLOG_PAUSE: Duration = Duration::from_secs(1);
/// How long shutdown waits for the pruner (its batch in flight commits regardless).
const PRUNER_STOP: Duration = Duration::from_secs(5);

/// Builds the sources of a configuration, with their ingest handles in `metrics`.
pub fn build_sources(config: &Config, metrics: &Metrics) -> Result<HashMap<String, Arc<Source>>> {
    let mut sources = HashMap::new();
    for source in &config.sources {
        let Some(registration) = rollcall_core::registration(&source.connector) else {
            bail!(
                "source {}: unknown connector {}",
                source.id,
                source.connector
            );
        };
        let connector =
            (registration.build)(&SourceOptions::new(&source.id, source.options.clone()))
                .map_err(|error| anyhow::anyhow!("source {}: {error}", source.id))?;
        sources.insert(
            source.id.clone(),
            Arc::new(Source {
                id: source.id.clone(),
                connector_name: registration.name,
                connector,
                sync_interval: source.sync_interval,
                sync_lock: Default::default(),
                metrics: metrics.source(&source.id),
            }),
        );
    }
    Ok(sources)
}

/// Opens the configured store: the SQLite file, or the PostgreSQL schema (migrated; a schema
/// newer than this build refuses the start).
pub async fn open_store(config: &StoreConfig) -> Result<Store> {
    match config {
        StoreConfig::Sqlite { path, .. } => {
            Store::open(path).with_context(|| format!("opening the store at {}", path.display()))
        }
        #[cfg(feature = "postgres-store")]
        StoreConfig::Postgres {
            url,
            schema,
            pool_size,
            ..
        } => {
            let options = rollcall_store::postgres::PgOptions {
                url: url.expose().to_owned(),
                schema: schema.clone(),
                pool_size: *pool_size,
            };
            Store::open_postgres(&options)
                .await
                .context("opening the PostgreSQL store")
        }
        #[cfg(not(feature = "postgres-store"))]
        StoreConfig::Postgres { .. } => bail!(
            "[store] type = \"postgres\" needs a rollcall built with the postgres-store feature"
        ),
    }
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<()> {
    let store = open_store(&config.store).await?;
    let metrics = Arc::new(Metrics::default());
    let sources = build_sources(&config, &metrics)?;

    // Unique per process: the store's leases tell this process's workers from another's.
    let holder = format!(
        "rollcall-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let mut workers = Vec::new();
    let mut sink_status = HashMap::new();
    for sink_config in &config.sinks {
        let Some(registration) = rollcall_core::sink_registration(&sink_config.kind) else {
            bail!("sink {}: unknown type {}", sink_config.id, sink_config.kind);
        };
        let sink = (registration.build)(&SinkOptions::new(
            &sink_config.id,
            sink_config.options.clone(),
        ))
        .map_err(|error| anyhow::anyhow!("sink {}: {error}", sink_config.id))?;
        let worker = worker::Worker::new(
            sink_config.clone(),
            sink,
            store.clone(),
            Arc::clone(&metrics),
            config.delivery.clone(),
            holder.clone(),
        );
        sink_status.insert(sink_config.id.clone(), worker.status());
        workers.push(worker);
    }

    let ingest_limits = IngestLimits::new(
        config.ingest.max_body_bytes_in_flight,
        config.ingest.max_requests_per_source,
        sources.keys(),
    );
    let state = Arc::new(AppState {
        sources,
        sinks: config.sinks.clone(),
        sink_status,
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        max_body_bytes: config.ingest.max_body_bytes,
        request_timeout: config.ingest.request_timeout(),
        body_timeout: config.ingest.body_timeout(),
        admin_tokens: state::AdminTokens::new(config.admin.scoped_tokens()),
        ingest_limits,
        admin_hosts: state::admin_hosts(config.admin.listen, &config.admin.allowed_hosts),
    });

    let (ingest_limits, admin_limits) = connection_limits(&config);
    let ingest_listener = TcpListener::bind(config.ingest.listen)
        .await
        .with_context(|| format!("binding the ingest listener to {}", config.ingest.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding the admin listener to {}", config.admin.listen))?;
    let ingest_address = ingest_listener.local_addr()?;
    let admin_address = admin_listener.local_addr()?;
    // Tests and scripts read these two lines to find the ports when configured with :0.
    let shutdown = ShutdownSignal::install();
    crate::announce!(address = %ingest_address, "ingest listening on http://{ingest_address}");
    crate::announce!(address = %admin_address, "admin listening on http://{admin_address}");

    let (stop_workers, worker_shutdown) = watch::channel(false);
    let mut worker_tasks = Vec::new();
    for worker in workers {
        worker_tasks.push(tokio::spawn(worker.run(worker_shutdown.clone())));
    }

    let (stop_pruner, pruner_shutdown) = watch::channel(false);
    let retention = config.store.retention();
    let pruner_task = if retention.is_disabled() {
        tracing::info!("retention disabled (store.retention_hours and store.dedup_retention_hours are 0): nothing is pruned");
        None
    } else {
        let pruner = Pruner {
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            sinks: config.sinks.iter().map(|sink| sink.id.clone()).collect(),
            retention,
        };
        Some(tokio::spawn(pruner.run(pruner_shutdown, PRUNE_FIRST_DELAY)))
    };

    reconciler::publish_stored_state(&state).await;
    let (stop_reconcilers, reconcilers_shutdown) = watch::channel(false);
    let reconciler_tasks: Vec<_> = state
        .sources
        .values()
        .filter_map(|source| {
            let interval = source.sync_interval?;
            Some(tokio::spawn(reconciler::run(
                Arc::clone(&state),
                Arc::clone(source),
                interval,
                reconcilers_shutdown.clone(),
            )))
        })
        .collect();

    let (stop_listeners, listeners_shutdown) = watch::channel(false);
    let ingest_task = tokio::spawn(http_server::serve(
        "ingest",
        ingest_listener,
        ingest::router(Arc::clone(&state)),
        ingest_limits,
        listeners_shutdown.clone(),
    ));
    let admin_task = tokio::spawn(http_server::serve(
        "admin",
        admin_listener,
        admin::router(Arc::clone(&state)),
        admin_limits,
        listeners_shutdown,
    ));

    shutdown.wait().await;
    crate::announce!("shutting down: no new requests; finishing in-flight work");
    let _ = stop_pruner.send(true);
    let _ = stop_reconcilers.send(true);
    let _ = stop_listeners.send(true);
    ingest_task.await.context("ingest listener task")?;
    admin_task.await.context("admin listener task")?;

    let _ = stop_workers.send(true);
    let drain = async {
        for task in worker_tasks {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(WORKER_DRAIN, drain).await.is_err() {
        tracing::warn!(
            "delivery workers did not stop in time; undelivered events stay in the journal"
        );
    }
    for task in reconciler_tasks {
        let _ = task.await;
    }
    if let Some(task) = pruner_task {
        if tokio::time::timeout(PRUNER_STOP, task).await.is_err() {
            tracing::warn!("the pruner did not stop in time");
        }
    }
    store.close().await;
    crate::announce!("stopped cleanly");
    Ok(())
}

/// File descriptors kept for the store, sinks, logs and the process itself, beyond the
/// listeners' connections.
const RESERVED_FILES: usize = 256;

/// The listeners' limits, after raising the open-files limit; when even the raised limit
/// cannot hold both listeners' `max_connections`, they are lowered (with a warning) so that
/// too many clients make new connections wait instead of starving the store of descriptors.
fn connection_limits(
    config: &Config,
) -> (
    crate::config::ConnectionLimits,
    crate::config::ConnectionLimits,
) {
    let mut ingest = config.ingest.connection_limits();
    let mut admin = config.admin.connection_limits();
    let Some(open_files) = http_server::raise_open_files_limit() else {
        return (ingest, admin);
    };
    let available = usize::try_from(open_files)
        .unwrap_or(usize::MAX)
        .saturating_sub(RESERVED_FILES);
    let wanted = ingest.max_connections.saturating_add(admin.max_connections);
    if wanted > available {
        admin.max_connections = admin.max_connections.min(available / 8).max(1);
        ingest.max_connections = available.saturating_sub(admin.max_connections).max(1);
        tracing::warn!(
            open_files,
            ingest_max_connections = ingest.max_connections,
            admin_max_connections = admin.max_connections,
            "the open-files limit cannot hold the configured max_connections; lowered them"
        );
    }
    (ingest, admin)
}

/// Retention: prunes the store now and then, per the configured windows.
#[derive(Debug)]
struct Pruner {
    store: Store,
    metrics: Arc<Metrics>,
    /// Every configured sink: an event goes only once all of them have finished it.
    sinks: Vec<String>,
    retention: Retention,
}

impl Pruner {
    /// Prunes `first_delay` after start, then every [`PRUNE_INTERVAL`] (sooner while a
    /// backlog remains), until `shutdown` turns true. Stopping mid-call is safe: the batch in
    /// flight commits, no other starts.
    async fn run(self, mut shutdown: watch::Receiver<bool>, first_delay: Duration) {
        let mut wait = first_delay;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep(wait) => {}
            }
            let outcome = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                outcome = self.prune_once(Timestamp::now()) => outcome,
            };
            wait = match outcome {
                Ok(report) if !report.complete => PRUNE_BACKLOG_PAUSE,
                Ok(_) => PRUNE_INTERVAL,
                Err(error) => {
                    tracing::warn!(error = %error, "pruning failed; retrying at the next interval");
                    PRUNE_INTERVAL
                }
            };
        }
        tracing::debug!("pruner stopped");
    }

    /// One pruning call as of `now`: counts in `rollcall_pruned_total{what}` and the log.
    async fn prune_once(&self, now: Timestamp) -> Result<PruneReport, rollcall_store::StoreError> {
        let policy = PrunePolicy::new(
            self.retention
                .journal
                .and_then(|window| cutoff(now, window)),
            self.retention.dedup.and_then(|window| cutoff(now, window)),
            self.sinks.iter().cloned(),
        );
        let policy = PrunePolicy {
            open_quarantine_older_than: self
                .retention
                .open_quarantine
                .and_then(|window| cutoff(now, window)),
            open_quarantine_max_bytes: self.retention.open_quarantine_max_bytes,
            ..policy
        };
        let report = self.store.prune(policy).await?;
        for (what, count) in [
            (Pruned::Journal, report.journal_events),
            (Pruned::Dedup, report.dedup_keys),
            (Pruned::Quarantine, report.quarantined),
            (Pruned::DeadLetters, report.dead_letters),
            (Pruned::QuarantineExpired, report.quarantine_expired),
        ] {
            if count > 0 {
                self.metrics.pruned(what).inc_by(count);
            }
        }
        if report.quarantine_expired > 0 {
            // Deliveries nobody replayed in time are gone for good: say so above info.
            tracing::warn!(
                expired = report.quarantine_expired,
                "open quarantined deliveries dropped (store.quarantine_retention_hours / quarantine_max_mib)"
            );
        }
        if report.total() > 0 {
            tracing::info!(
                journal_events = report.journal_events,
                dedup_keys = report.dedup_keys,
                quarantined = report.quarantined,
                dead_letters = report.dead_letters,
                batches = report.batches,
                complete = report.complete,
                "pruned"
            );
        } else {
            tracing::debug!("pruned nothing");
        }
        Ok(report)
    }
}

/// `now - window`; `None` when that is before anything can be stored (nothing to prune).
fn cutoff(now: Timestamp, window: Duration) -> Option<Timestamp> {
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().checked_sub(window)?).ok()
}

/// SIGTERM and Ctrl-C, listened for from before the listeners are announced: a supervisor
/// (or a test) that signals as soon as it reads the addresses never meets the default
/// action (death without a drain).
struct ShutdownSignal {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            async fn recv(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = recv(self.terminate) => {}
                _ = recv(self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use rollcall_core::{EventType, User, UserEvent, VendorEvent};
    use rollcall_store::conformance::hours_ago;
    use rollcall_store::IngestBatch;

    use super::*;

    async fn ingest(store: &Store, key: &str, id: &str, received_at: Timestamp) {
        let event = UserEvent {
            id: id.to_owned(),
            event_type: EventType::Created,
            source: "src".to_owned(),
            connector: "test".to_owned(),
            vendor_event: VendorEvent {
                id: None,
                event_type: "created".to_owned(),
                occurred_at: None,
            },
            received_at,
            actor: None,
            user: User::with_id("7"),
            previous: None,
            changes: None,
            partial: false,
        };
        store
            .ingest(IngestBatch {
                source: "src".to_owned(),
                dedup_key: key.to_owned(),
                received_at,
                events: vec![event],
            })
            .await
            .unwrap();
    }

    fn pruner(store: &Store, sinks: &[&str]) -> Pruner {
        Pruner {
            store: store.clone(),
            metrics: Arc::new(Metrics::default()),
            sinks: sinks.iter().map(|sink| (*sink).to_owned()).collect(),
            retention: crate::config::StoreConfig::sqlite("unused").retention(),
        }
    }

    #[tokio::test]
    async fn a_pruning_round_counts_what_it_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("rollcall.db")).unwrap();
        ingest(&store, "k1", "e1", hours_ago(800)).await;
        ingest(&store, "k2", "e2", hours_ago(200)).await;
        ingest(&store, "k3", "e3", hours_ago(1)).await;
        store.set_position("archive", 3).await.unwrap();
        let pruner = pruner(&store, &["archive"]);

        let report = pruner.prune_once(Timestamp::now()).await.unwrap();
        // Default windows: a week of journal, 30 days of dedup keys.
        assert_eq!((report.journal_events, report.dedup_keys), (2, 1));
        let metrics = &pruner.metrics;
        assert_eq!(metrics.pruned(Pruned::Journal).get(), 2);
        assert_eq!(metrics.pruned(Pruned::Dedup).get(), 1);
        // Nothing new to delete: the counters stay.
        pruner.prune_once(Timestamp::now()).await.unwrap();
        assert_eq!(metrics.pruned(Pruned::Journal).get(), 2);
        store.close().await;
    }

    #[tokio::test]
    async fn open_quarantine_entries_past_their_window_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("rollcall.db")).unwrap();
        for received_at in [hours_ago(800), hours_ago(1)] {
            store
                .quarantine(rollcall_store::conformance::rejected(received_at, b"{}"))
                .await
                .unwrap();
        }
        // Default: 30 days for open entries.
        let pruner = pruner(&store, &[]);
        let report = pruner.prune_once(Timestamp::now()).await.unwrap();
        assert_eq!(report.quarantine_expired, 1);
        assert_eq!(pruner.metrics.pruned(Pruned::QuarantineExpired).get(), 1);
        assert_eq!(store.counts().await.unwrap().quarantined_open, 1);
        store.close().await;
    }

    #[tokio::test]
    async fn the_pruner_runs_soon_after_start_and_stops_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("rollcall.db")).unwrap();
        ingest(&store, "k1", "e1", hours_ago(200)).await;
        store.set_position("archive", 1).await.unwrap();
        let pruner = pruner(&store, &["archive"]);
        let metrics = Arc::clone(&pruner.metrics);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(pruner.run(shutdown, Duration::from_millis(10)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while metrics.pruned(Pruned::Journal).get() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the pruner never ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Now waiting out PRUNE_INTERVAL: shutdown ends the wait at once.
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
        store.close().await;
    }

    #[test]
    fn cutoffs_are_the_window_before_now_and_none_when_out_of_range() {
        let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
        assert_eq!(
            cutoff(now, Duration::from_secs(3600)),
            Some(Timestamp::from_unix_seconds(1_700_000_000 - 3600).unwrap())
        );
        assert_eq!(cutoff(now, Duration::from_secs(u64::MAX)), None);
    }
}
