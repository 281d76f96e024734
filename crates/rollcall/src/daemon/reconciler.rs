//! Scheduled reconciliation: every source with a `sync_interval` is synced that often
//! ([`crate::sync`]), the first time as soon as its last complete sync is older than the
//! interval (at once after the start-up delay for a source never synced).

use std::sync::Arc;
use std::time::Duration;

use rollcall_core::Timestamp;
use tokio::sync::watch;

use super::state::{AppState, Source};
use crate::metrics::Id;

/// How long after start the first due sync waits (the listeners come up first).
const FIRST_DELAY: Duration = Duration::from_secs(5);

/// Sets `rollcall_sync_last_success_timestamp_seconds` from the stored states, so the gauge
/// survives a restart.
pub async fn publish_stored_state(state: &AppState) {
    match state.store.sync_states().await {
        Ok(states) => {
            for sync in states {
                if let Some(at) = sync.last_complete_at {
                    state
                        .metrics
                        .sync_last_success_timestamp_seconds(&Id::new(&sync.source))
                        .set(at.unix_millis() / 1000);
                }
            }
        }
        Err(error) => tracing::warn!(error = %error, "cannot read the sources' sync state"),
    }
}

/// Reconciles `source` every `interval` until `shutdown` turns true. A sync in flight at
/// shutdown is dropped between commits; the next run resumes from its cursor.
pub async fn run(
    state: Arc<AppState>,
    source: Arc<Source>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = match first_wait(&state, &source, interval).await {
        Some(wait) => wait,
        None => FIRST_DELAY,
    };
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let mut progress = |_: &rollcall_store::SyncCounts| {};
        let outcome = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            outcome = crate::sync::run(&state.store, &source, &state.metrics, &mut progress) => outcome,
        };
        match outcome {
            Ok(report) if report.complete => tracing::info!(
                source = %source.id,
                listed = report.counts.listed,
                created = report.counts.created,
                updated = report.counts.updated,
                deleted = report.counts.deleted,
                stale = report.counts.stale,
                "reconciled with the vendor's user listing"
            ),
            Ok(report) => tracing::warn!(
                source = %source.id,
                error = report.error.as_deref().unwrap_or(""),
                "reconciliation stopped short; the next run resumes from its cursor"
            ),
            Err(error) => {
                tracing::warn!(source = %source.id, error = %error, "reconciliation did not run")
            }
        }
        wait = interval;
    }
    tracing::debug!(source = %source.id, "reconciler stopped");
}

/// How long until the source's next sync is due: `None` when it is due now.
async fn first_wait(state: &AppState, source: &Source, interval: Duration) -> Option<Duration> {
    let sync = state.store.sync_state(&source.id).await.ok()??;
    if sync.cursor.is_some() {
        // An unfinished listing: resume it.
        return None;
    }
    let last = sync.last_complete_at?;
    let elapsed_ms = Timestamp::now().unix_millis() - last.unix_millis();
    let elapsed = Duration::from_millis(u64::try_from(elapsed_ms).unwrap_or(0));
    interval
        .checked_sub(elapsed)
        .map(|left| left.max(FIRST_DELAY))
}
