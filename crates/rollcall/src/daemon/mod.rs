//! `rollcall serve`: the daemon.
//!
//! Start-up builds every source's connector and every sink from the configuration, opens the
//! store, binds both listeners and starts one delivery worker per sink. SIGTERM or Ctrl-C
//! stops accepting, lets in-flight requests finish, lets each worker finish the event in
//! hand, flushes, records cursors, closes the store, and exits 0.

mod admin;
mod api_error;
pub mod demo;
mod ingest;
mod redact;
mod scim;
mod state;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rollcall_core::{SinkOptions, SourceOptions};
use rollcall_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, StoreConfig};
use crate::metrics::Metrics;
pub use state::{AppState, Source};

/// How long workers get to finish their event in hand at shutdown.
const WORKER_DRAIN: Duration = Duration::from_secs(30);

/// Builds the sources of a configuration.
pub fn build_sources(config: &Config) -> Result<HashMap<String, Arc<Source>>> {
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
            }),
        );
    }
    Ok(sources)
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<()> {
    let StoreConfig::Sqlite { path } = &config.store;
    let store =
        Store::open(path).with_context(|| format!("opening the store at {}", path.display()))?;
    let metrics = Arc::new(Metrics::default());
    let sources = build_sources(&config)?;

    let mut workers = Vec::new();
    for sink_config in &config.sinks {
        let Some(registration) = rollcall_core::sink_registration(&sink_config.kind) else {
            bail!("sink {}: unknown type {}", sink_config.id, sink_config.kind);
        };
        let sink = (registration.build)(&SinkOptions::new(
            &sink_config.id,
            sink_config.options.clone(),
        ))
        .map_err(|error| anyhow::anyhow!("sink {}: {error}", sink_config.id))?;
        workers.push(worker::Worker {
            config: sink_config.clone(),
            sink,
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            delivery: config.delivery.clone(),
        });
    }

    let state = Arc::new(AppState {
        sources,
        sinks: config.sinks.clone(),
        store: store.clone(),
        metrics: Arc::clone(&metrics),
        max_body_bytes: config.ingest.max_body_bytes,
        request_timeout: Duration::from_secs(config.ingest.request_timeout_seconds.max(1)),
        admin_token: config.admin.token.clone(),
    });

    let ingest_listener = TcpListener::bind(config.ingest.listen)
        .await
        .with_context(|| format!("binding the ingest listener to {}", config.ingest.listen))?;
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding the admin listener to {}", config.admin.listen))?;
    let ingest_address = ingest_listener.local_addr()?;
    let admin_address = admin_listener.local_addr()?;
    // Tests and scripts read these two lines to find the ports when configured with :0.
    eprintln!("rollcall: ingest listening on http://{ingest_address}");
    eprintln!("rollcall: admin listening on http://{admin_address}");

    let (stop_workers, worker_shutdown) = watch::channel(false);
    let mut worker_tasks = Vec::new();
    for worker in workers {
        worker_tasks.push(tokio::spawn(worker.run(worker_shutdown.clone())));
    }

    let (stop_listeners, listeners_shutdown) = watch::channel(false);
    let ingest_server = {
        let mut shutdown = listeners_shutdown.clone();
        axum::serve(ingest_listener, ingest::router(Arc::clone(&state))).with_graceful_shutdown(
            async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            },
        )
    };
    let admin_server = {
        let mut shutdown = listeners_shutdown.clone();
        axum::serve(admin_listener, admin::router(Arc::clone(&state))).with_graceful_shutdown(
            async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            },
        )
    };
    let ingest_task = tokio::spawn(async move { ingest_server.await });
    let admin_task = tokio::spawn(async move { admin_server.await });

    shutdown_signal().await;
    eprintln!("rollcall: shutting down: no new requests; finishing in-flight work");
    let _ = stop_listeners.send(true);
    ingest_task.await.context("ingest listener task")??;
    admin_task.await.context("admin listener task")??;

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
    store.close().await;
    eprintln!("rollcall: stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
