//! The ingest pipeline, from a received delivery to its durable commit, independent of how
//! the delivery arrived: the ingest listener and quarantine replay both go through
//! [`Pipeline`], so every later entry point (a sync, another listener) gets the same
//! verification, quarantine, enrichment, dedup and commit.
//!
//! In order: verification (401, nothing kept; skipped for quarantine replays, whose
//! credentials were never kept), normalization (400, the delivery kept in quarantine),
//! enrichment of partial events from the vendor's API (best effort, bounded in time), dedup
//! and the durable commit.

use std::time::{Duration, Instant};

use rollcall_core::{Delivery, ErrorCode, NormalizeError, UserEvent};
use rollcall_store::{IngestBatch, IngestOutcome, QuarantineState, RejectedDelivery};
use serde_json::json;

use super::api_error::ApiError;
use super::redact;
use super::state::{AppState, Source};
use crate::metrics::EnrichOutcome;

/// Where a delivery comes from, which decides what the pipeline may skip and how it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Straight from the vendor: verified, quarantined on a normalization failure.
    Vendor,
    /// A quarantined delivery re-run after a fix: verified when it arrived, committed
    /// together with marking the quarantine entry replayed.
    Quarantine { id: i64 },
}

/// The pipeline over the daemon's state.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    state: &'a AppState,
}

impl AppState {
    pub fn pipeline(&self) -> Pipeline<'_> {
        Pipeline { state: self }
    }
}

impl Pipeline<'_> {
    /// Verifies, normalizes, enriches and commits a delivery from `source`'s vendor.
    pub async fn accept(
        &self,
        source: &Source,
        delivery: &Delivery,
    ) -> Result<IngestOutcome, ApiError> {
        if let Err(error) = source.connector.verify(delivery) {
            tracing::info!(source = %source.id, code = error.code().as_str(), "delivery rejected by verification");
            return Err(ApiError::new(error.code(), error.to_string()));
        }
        self.normalize_and_commit(source, delivery, Origin::Vendor)
            .await
    }

    /// Re-runs an open quarantined delivery through its source's connector (as this build
    /// and configuration have it) and commits the events it now produces.
    pub async fn replay_quarantined(&self, id: i64) -> Result<IngestOutcome, ApiError> {
        let state = self.state;
        let entry = state.store.quarantined_by_id(id).await?;
        if entry.state != QuarantineState::Open {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("quarantined delivery {id} was already replayed"),
            ));
        }
        let Some(source) = state.sources.get(&entry.delivery.source) else {
            return Err(ApiError::new(
                ErrorCode::SourceUnknown,
                format!("source {:?} is no longer configured", entry.delivery.source),
            ));
        };
        let delivery = entry.delivery.to_delivery();
        self.normalize_and_commit(source, &delivery, Origin::Quarantine { id })
            .await
    }

    async fn normalize_and_commit(
        &self,
        source: &Source,
        delivery: &Delivery,
        origin: Origin,
    ) -> Result<IngestOutcome, ApiError> {
        let state = self.state;
        let mut events = match normalize(source, delivery) {
            Ok(events) => events,
            Err(error) if origin == Origin::Vendor => {
                return Err(quarantine(state, source, delivery, &error).await)
            }
            Err(error) => {
                return Err(ApiError {
                    code: error.code(),
                    message: format!("still failing: {error}"),
                    path: error.path().map(str::to_owned),
                    extra: None,
                })
            }
        };
        let dedup_key = source.connector.dedup_key(delivery);
        // A vendor retry of a delivery already committed is answered as a duplicate below;
        // enriching it first would spend an API call (and rate budget) on events that are
        // dropped. The read is a hint only: the commit's own dedup check decides. Without an
        // API to call there is nothing to save, and the read (a hop to a reader thread per
        // delivery) is skipped.
        if events.iter().any(|event| event.partial)
            && !(source.connector.enriches()
                && state
                    .store
                    .dedup_seen(&source.id, &dedup_key)
                    .await
                    .unwrap_or(false))
        {
            enrich(state, source, &mut events).await;
        }
        let batch = IngestBatch {
            source: source.id.clone(),
            dedup_key,
            received_at: delivery.received_at,
            events,
        };
        let count = batch.events.len();
        let outcome = match origin {
            Origin::Vendor => state.store.ingest(batch).await?,
            Origin::Quarantine { id } => state.store.resolve_quarantine(id, batch).await?,
        };
        match &outcome {
            IngestOutcome::Accepted { .. } => {
                source.metrics.events_accepted().inc_by(count as u64);
                tracing::debug!(source = %source.id, events = count, "delivery accepted");
            }
            IngestOutcome::Duplicate { .. } => {
                tracing::info!(source = %source.id, "duplicate delivery");
            }
        }
        Ok(outcome)
    }
}

/// The connector's events for `delivery`, after the host's own checks, which hold for every
/// connector alike: a JSON body may not repeat a key (the dedup key and the events would be
/// read from the same document differently) nor hold NUL in a string (a sink such as
/// PostgreSQL cannot store it). A body that is not JSON (encrypted) is left to the
/// connector, and its events are checked for NUL instead.
fn normalize(source: &Source, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
    // Checked here, in the same pass as the document the connector then reads
    // ([`Delivery::json`]), or without building one for a connector that reads the text.
    let not_json = if source.connector.reads_body_text() {
        delivery.check_json()? == rollcall_core::json::BodyCheck::NotJson
    } else {
        delivery.json()?.is_none()
    };
    let events = source.connector.normalize(delivery)?;
    if not_json {
        for (index, event) in events.iter().enumerate() {
            let value = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
            if let Some(path) = rollcall_core::json::nul_path(&value) {
                return Err(NormalizeError::invalid(
                    format!("events[{index}].{path}"),
                    "contains NUL (\\u0000), which rollcall does not accept",
                ));
            }
        }
    }
    Ok(events)
}

/// How much of a request's time enrichment may take, for all of its events together: half
/// of the answer budget (the request timeout, or less when the vendor's answer deadline is
/// shorter), so the commit keeps the other half. Connectors bound each API call themselves
/// (Zendesk's `api_timeout_ms`, 3 s by default); this is the host's backstop.
fn enrich_budget(state: &AppState, source: &Source) -> Duration {
    source
        .connector
        .retry_contract()
        .enrich_budget(state.request_timeout)
}

/// Completes partial events from the vendor's API before they are committed. Never fails
/// and never holds a delivery back beyond [`enrich_budget`]: an event that cannot be
/// completed is committed as it is, still saying `partial: true`.
///
/// Each partial event counts once in `rollcall_enrich_total` with `outcome`: `ok` (now
/// complete), `failed` (the connector's error, or out of time), or `skipped` (the connector
/// answered `Ok` and left the event partial: no enrichment configured, a deleted user, a rate
/// limit or an open circuit breaker). Logs carry ids and reasons, never the user's data.
async fn enrich(state: &AppState, source: &Source, events: &mut [UserEvent]) {
    if !source.connector.enriches() {
        // Nothing to call: each partial event is skipped without the copy a call needs.
        let skipped = events.iter().filter(|event| event.partial).count() as u64;
        state
            .metrics
            .enrich(source.metrics.id(), EnrichOutcome::Skipped)
            .inc_by(skipped);
        return;
    }
    let deadline = Instant::now() + enrich_budget(state, source);
    for event in events.iter_mut().filter(|event| event.partial) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // The connector works on a copy: an error or a timeout (which drops its future
        // mid-way) leaves the event exactly as normalized.
        let mut candidate = event.clone();
        let outcome = match tokio::time::timeout(remaining, source.connector.enrich(&mut candidate))
            .await
        {
            Ok(Ok(())) => {
                let outcome = if candidate.partial {
                    EnrichOutcome::Skipped
                } else {
                    EnrichOutcome::Ok
                };
                *event = candidate;
                tracing::debug!(source = %source.id, event_id = %event.id, outcome = outcome.as_str(), "enrichment");
                outcome
            }
            Ok(Err(error)) => {
                tracing::info!(
                    source = %source.id,
                    event_id = %event.id,
                    retryable = error.retryable,
                    reason = %error.message,
                    "enrichment failed; the event goes out partial"
                );
                EnrichOutcome::Failed
            }
            Err(_) => {
                tracing::info!(
                    source = %source.id,
                    event_id = %event.id,
                    budget_ms = enrich_budget(state, source).as_millis() as u64,
                    "enrichment timed out; the event goes out partial"
                );
                EnrichOutcome::Failed
            }
        };
        state.metrics.enrich(source.metrics.id(), outcome).inc();
    }
}

/// Keeps a delivery that failed normalization and builds the 400 answer. If it cannot be
/// kept, the answer is 503 so the vendor sends it again: nothing accepted is lost.
///
/// What is kept has no credentials: no secret headers or query parameters ([`redact`]) and
/// none of the body fields the connector declares secret ([`Connector::without_secrets`]:
/// VCC Live's passwords).
///
/// [`Connector::without_secrets`]: rollcall_core::Connector::without_secrets
async fn quarantine(
    state: &AppState,
    source: &Source,
    delivery: &Delivery,
    error: &rollcall_core::NormalizeError,
) -> ApiError {
    let delivery = &source.connector.without_secrets(delivery);
    let kept = state
        .store
        .quarantine(RejectedDelivery {
            source: source.id.clone(),
            connector: source.connector_name.to_owned(),
            received_at: delivery.received_at,
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
            path: error.path().map(str::to_owned),
            method: delivery.method.clone(),
            headers: redact::headers(delivery.headers.iter()),
            query: redact::query(delivery.query.as_deref()),
            body: delivery.body.to_vec(),
        })
        .await;
    match kept {
        Ok(id) => {
            state
                .metrics
                .quarantined(source.metrics.id(), error.code())
                .inc();
            tracing::warn!(source = %source.id, code = error.code().as_str(), quarantine_id = id, "delivery quarantined");
            ApiError {
                code: error.code(),
                message: error.to_string(),
                path: error.path().map(str::to_owned),
                extra: Some(("quarantine_id", json!(id))),
            }
        }
        Err(store_error) => ApiError::from(store_error),
    }
}
