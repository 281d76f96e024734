//! `POST /hooks/{source}`: the HTTP side of ingest.
//!
//! Each request goes through, in order: the source lookup (404), the connector's precheck
//! of a POST's credentials (401 before any of the body is read), the source's request limit
//! and the global budget of body bytes in flight (`ingest_busy`, the vendor's retry status,
//! after a short wait), the body limit (413) and deadline (408), the connector's handshake
//! (answered directly), the method (405), then the
//! [pipeline](super::pipeline) (verification, normalization, enrichment, dedup, commit),
//! whose outcome becomes the answer: 202 once on disk, 200 for a repeat, 503 when the store
//! cannot commit, or whatever status the source's vendor retries (429 for HighLevel). The
//! whole answer is bounded by the request timeout or the vendor's answer deadline, whichever
//! is shorter.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http_body_util::BodyExt;
use rollcall_core::{Delivery, ErrorCode, HandshakeResponse, Timestamp};
use rollcall_store::IngestOutcome;
use serde_json::json;
use tracing::Instrument;

use super::api_error::ApiError;
use super::state::{AppState, Source};
use crate::metrics::RequestOutcome;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/hooks/{source}", any(ingest))
        // For load balancers and container health checks, which reach only this listener.
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(state)
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let Some(source) = state.sources.get(&source_id).cloned() else {
        record_unknown_source(&state, started);
        return ApiError::new(
            ErrorCode::SourceUnknown,
            format!("no source with id {source_id:?} is configured"),
        )
        .into_response();
    };
    // The vendor's deadline, when it is shorter than the host's: an answer it never sees
    // counts as a failure, and a retry of something already committed.
    let answer_budget = source
        .connector
        .retry_contract()
        .answer_budget(state.request_timeout);
    let outcome =
        // One span per delivery: every log line of the pipeline carries the source and
        // connector (never the body, emails or secrets).
        match tokio::time::timeout(
            answer_budget,
            handle(&state, &source, request).instrument(tracing::info_span!(
                "delivery",
                source = %source.id,
                connector = source.connector_name,
            )),
        )
        .await
        {
            Ok(outcome) => outcome,
            // The commit may still land; the vendor's retry is then answered as a duplicate.
            Err(_) => Err(ApiError::new(
                ErrorCode::StoreUnavailable,
                "the request did not complete in time; retry later",
            )),
        };
    match outcome {
        Ok(answer) => {
            record(&state, &source, Ok(answer.outcome), started);
            answer.response
        }
        Err(error) => {
            record(&state, &source, Err(error.code), started);
            error_response(&source, error)
        }
    }
}

/// The answer to a failed delivery. A transient failure (the store could not commit, the
/// answer budget ran out) gets the status the source's vendor retries, with `Retry-After`
/// when the vendor's retry interval is known: HighLevel treats a 503 as final and retries
/// only 429.
///
/// A busy host (`ingest_busy`) is transient too, and always says when to come back: the
/// vendor's own interval when known, [`BUSY_RETRY_AFTER`] otherwise.
fn error_response(source: &Source, error: ApiError) -> Response {
    let busy = error.code == ErrorCode::IngestBusy;
    if error.code != ErrorCode::StoreUnavailable && !busy {
        return error.into_response();
    }
    let contract = source.connector.retry_contract();
    let mut response = error.into_response();
    if let Ok(status) = StatusCode::from_u16(contract.transient_status()) {
        *response.status_mut() = status;
    }
    let retry_after = contract
        .retry_interval()
        .or(busy.then_some(BUSY_RETRY_AFTER));
    if let Some(interval) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(interval.as_secs()));
    }
    response
}

/// `Retry-After` of an `ingest_busy` answer when the vendor's retry interval is unknown.
const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// The receive time of a request: now, unless a test set it (request extensions never come
/// from the wire), so replay windows can be tested without waiting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceivedAt(pub(crate) Timestamp);

struct Answer {
    outcome: RequestOutcome,
    response: Response,
}

/// Counts a request with the source's resolved handles: an atomic add and the histogram's
/// lock; a rejection also looks its code up in its family (no allocation).
fn record(
    state: &AppState,
    source: &Source,
    outcome: Result<RequestOutcome, ErrorCode>,
    started: Instant,
) {
    let handles = &source.metrics;
    let outcome = outcome.unwrap_or_else(|code| {
        state.metrics.ingest_rejected(handles.id(), code).inc();
        RequestOutcome::Rejected
    });
    handles.ingest_requests(outcome).inc();
    handles
        .ingest_request_duration()
        .observe(started.elapsed().as_secs_f64());
}

/// Counts a request whose path names no configured source, under a fixed label: the id in
/// the path is whatever the caller typed.
fn record_unknown_source(state: &AppState, started: Instant) {
    let metrics = &state.metrics;
    let unknown = metrics.unknown_source();
    metrics
        .ingest_requests(unknown, RequestOutcome::Rejected)
        .inc();
    metrics
        .ingest_rejected(unknown, ErrorCode::SourceUnknown)
        .inc();
    metrics
        .ingest_request_duration(unknown)
        .observe(started.elapsed().as_secs_f64());
}

async fn handle(state: &AppState, source: &Source, request: Request) -> Result<Answer, ApiError> {
    let (parts, body) = request.into_parts();
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body exceeds {} bytes", state.max_body_bytes),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > state.max_body_bytes as u64) {
        return Err(too_large());
    }

    let received_at = parts
        .extensions
        .get::<ReceivedAt>()
        .map_or_else(Timestamp::now, |at| at.0);
    let mut delivery = Delivery::new(source.id.clone(), Vec::new(), received_at)
        .with_method(parts.method.as_str());
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            delivery.headers.insert(name.as_str(), value);
        }
    }
    delivery.query = parts.uri.query().map(str::to_owned);

    // Vendors' handshakes are not POSTs (Okta's challenge is a GET) and carry no signature.
    if parts.method == Method::POST {
        if let Err(error) = source.connector.precheck(&delivery) {
            tracing::debug!(
                code = error.code().as_str(),
                "delivery refused before its body was read"
            );
            return Err(ApiError::new(error.code(), error.to_string()));
        }
    }
    let limits = &state.ingest_limits;
    let _request_slot = match limits.per_source.get(&source.id) {
        Some(slots) => Some(
            wait_for(limits.wait, Arc::clone(slots).acquire_owned())
                .await
                .ok_or_else(|| {
                    busy(
                        "the source has as many requests in flight as it may; retry later"
                            .to_owned(),
                    )
                })?,
        ),
        None => None,
    };
    // Reserve the body before reading it: its declared length, or the largest accepted
    // when it declares none (chunked).
    let reserved = declared
        .and_then(|length| u32::try_from(length).ok())
        .unwrap_or(u32::try_from(state.max_body_bytes).unwrap_or(u32::MAX));
    let _body_bytes =
        if reserved > 0 {
            Some(reserve_body(limits, reserved).await.ok_or_else(|| {
                busy("too many request bodies are in flight; retry later".to_owned())
            })?)
        } else {
            None
        };

    let body = tokio::time::timeout(
        state.body_timeout,
        http_body_util::Limited::new(body, state.max_body_bytes).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            ErrorCode::BodyTimeout,
            format!(
                "the body was not received within {} s",
                state.body_timeout.as_secs()
            ),
        )
    })?
    .map_err(|error| {
        if error.is::<http_body_util::LengthLimitError>() {
            too_large()
        } else {
            ApiError::new(
                ErrorCode::PayloadInvalid,
                "the request body could not be read",
            )
        }
    })?
    .to_bytes();
    delivery.replace_body(body);

    if let Some(handshake) = source.connector.handshake(&delivery) {
        return Ok(Answer {
            outcome: RequestOutcome::Handshake,
            response: handshake_response(handshake),
        });
    }
    if parts.method != Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not accepted here; vendors POST", parts.method),
        ));
    }

    match state.pipeline().accept(source, &delivery).await? {
        IngestOutcome::Accepted { event_ids } => Ok(Answer {
            outcome: RequestOutcome::Accepted,
            response: (
                StatusCode::ACCEPTED,
                Json(json!({"accepted": event_ids.len(), "event_ids": event_ids})),
            )
                .into_response(),
        }),
        IngestOutcome::Duplicate { event_ids } => Ok(Answer {
            outcome: RequestOutcome::Duplicate,
            response: (
                StatusCode::OK,
                Json(json!({"duplicate": true, "event_ids": event_ids})),
            )
                .into_response(),
        }),
    }
}

/// `ingest_busy`, counted in `rollcall_ingest_busy_total` by the caller's `record`.
fn busy(message: String) -> ApiError {
    ApiError::new(ErrorCode::IngestBusy, message)
}

/// Reserves `bytes` of the body budget, waiting up to the limits' wait. A small body may
/// take its room from the reserved share as well, whichever frees first.
async fn reserve_body(
    limits: &super::state::IngestLimits,
    bytes: u32,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let main = Arc::clone(&limits.body_bytes);
    if bytes > super::state::SMALL_BODY_BYTES {
        return wait_for(limits.wait, main.acquire_many_owned(bytes)).await;
    }
    let small = Arc::clone(&limits.small_body_bytes);
    let either = async move {
        tokio::select! {
            permit = main.acquire_many_owned(bytes) => permit,
            permit = small.acquire_many_owned(bytes) => permit,
        }
    };
    wait_for(limits.wait, either).await
}

/// Waits up to `wait` for a permit; `None` when there was no room in time (or the semaphore
/// is closed, which it never is).
async fn wait_for<P>(
    wait: std::time::Duration,
    acquire: impl std::future::Future<Output = Result<P, tokio::sync::AcquireError>>,
) -> Option<P> {
    tokio::time::timeout(wait, acquire).await.ok()?.ok()
}

fn handshake_response(handshake: HandshakeResponse) -> Response {
    let mut response = Response::new(Body::from(handshake.body));
    *response.status_mut() = StatusCode::from_u16(handshake.status).unwrap_or(StatusCode::OK);
    for (name, value) in handshake.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use rollcall_core::{
        Connector, EnrichError, EventType, NormalizeError, User, UserEvent, VendorEvent,
        VerifyError,
    };
    use rollcall_store::Store;
    use tower::ServiceExt;

    use super::*;
    use crate::metrics::{EnrichOutcome, Id, Metrics};

    /// Accepts everything; one event per delivery, keyed by the body.
    #[derive(Debug)]
    struct AcceptAll;

    impl Connector for AcceptAll {
        fn verify(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
            Ok(())
        }

        fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
            if delivery.body.is_empty() {
                return Err(NormalizeError::invalid(".", "empty body"));
            }
            Ok(vec![delivery.new_event(
                "accept-all",
                0,
                EventType::Created,
                VendorEvent::default(),
                User::with_id("1"),
            )])
        }
    }

    /// What [`PartialEvents::enrich`] does.
    #[derive(Debug, Clone, Copy)]
    enum Enrich {
        Complete,
        Fail,
        Hang,
        Skip,
    }

    /// One partial event per delivery, enriched as told.
    #[derive(Debug)]
    struct PartialEvents(Enrich);

    #[rollcall_core::async_trait]
    impl Connector for PartialEvents {
        fn verify(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
            Ok(())
        }

        fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
            let mut event = delivery.new_event(
                "partial",
                0,
                EventType::Created,
                VendorEvent::default(),
                User::with_id("1"),
            );
            event.partial = true;
            Ok(vec![event])
        }

        async fn enrich(&self, event: &mut UserEvent) -> Result<(), EnrichError> {
            match self.0 {
                Enrich::Complete => {
                    event.user.name = Some("Ann".into());
                    event.partial = false;
                    Ok(())
                }
                Enrich::Fail => {
                    // A careless connector that changes the event before failing.
                    event.user.name = Some("half done".into());
                    Err(EnrichError {
                        message: "the API answered 500".into(),
                        retryable: true,
                    })
                }
                Enrich::Hang => {
                    event.user.name = Some("half done".into());
                    std::future::pending().await
                }
                Enrich::Skip => Ok(()),
            }
        }
    }

    fn state(store: Store) -> Arc<AppState> {
        state_with(store, Box::new(AcceptAll), Duration::from_secs(5))
    }

    fn state_with(
        store: Store,
        connector: Box<dyn Connector>,
        request_timeout: Duration,
    ) -> Arc<AppState> {
        let metrics = Arc::new(Metrics::default());
        let mut sources = HashMap::new();
        sources.insert(
            "s".to_owned(),
            Arc::new(Source {
                id: "s".to_owned(),
                connector_name: "test",
                connector,
                sync_interval: None,
                sync_lock: Default::default(),
                metrics: metrics.source("s"),
            }),
        );
        Arc::new(AppState {
            sources,
            sinks: Vec::new(),
            sink_status: Default::default(),
            store,
            metrics,
            max_body_bytes: 1024,
            request_timeout,
            body_timeout: request_timeout / 2,
            admin_tokens: Default::default(),
            ingest_limits: crate::daemon::IngestLimits::new(4096, 2, ["s".to_owned()].iter()),
            admin_hosts: Vec::new(),
        })
    }

    /// Posts one delivery to a source whose enrichment does `enrich`; returns the status,
    /// the committed event and the metric's outcome.
    #[tokio::test]
    async fn a_vendor_retry_of_a_committed_delivery_is_not_enriched_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let state = state_with(
            store,
            Box::new(PartialEvents(Enrich::Complete)),
            Duration::from_millis(600),
        );
        let (first, _) = post(Arc::clone(&state), b"{}").await;
        let (again, body) = post(Arc::clone(&state), b"{}").await;
        assert_eq!(first, StatusCode::ACCEPTED);
        assert_eq!(
            (again, body["duplicate"].as_bool()),
            (StatusCode::OK, Some(true))
        );
        let enriched = enrich_count(&state, EnrichOutcome::Ok);
        assert_eq!(enriched, 1, "the retry spent an enrichment call");
    }

    fn enrich_count(state: &AppState, outcome: EnrichOutcome) -> u64 {
        state.metrics.enrich(&Id::new("s"), outcome).get()
    }

    async fn enriched(enrich: Enrich) -> (StatusCode, UserEvent, EnrichOutcome, Duration) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let state = state_with(
            store.clone(),
            Box::new(PartialEvents(enrich)),
            Duration::from_millis(600),
        );
        let started = Instant::now();
        let (status, _) = post(Arc::clone(&state), b"{}").await;
        let elapsed = started.elapsed();
        let entries = store.journal_after(0, 10).await.unwrap();
        assert_eq!(entries.len(), 1);
        let event = entries[0].decode().unwrap();
        let outcome = EnrichOutcome::ALL
            .iter()
            .copied()
            .find(|outcome| enrich_count(&state, *outcome) == 1)
            .unwrap();
        (status, event, outcome, elapsed)
    }

    #[tokio::test]
    async fn a_completed_event_is_committed_complete() {
        let (status, event, outcome, _) = enriched(Enrich::Complete).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(outcome, EnrichOutcome::Ok);
        assert!(!event.partial);
        assert_eq!(event.user.name.as_deref(), Some("Ann"));
    }

    #[tokio::test]
    async fn a_failed_enrichment_commits_the_event_partial_and_untouched() {
        let (status, event, outcome, _) = enriched(Enrich::Fail).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(outcome, EnrichOutcome::Failed);
        assert!(event.partial);
        assert_eq!(event.user.name, None);
    }

    #[tokio::test]
    async fn a_hanging_enrichment_is_cut_at_half_the_request_timeout() {
        let (status, event, outcome, elapsed) = enriched(Enrich::Hang).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(outcome, EnrichOutcome::Failed);
        assert!(event.partial);
        assert_eq!(event.user.name, None);
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_skipped_enrichment_is_counted_as_skipped() {
        let (status, event, outcome, _) = enriched(Enrich::Skip).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(outcome, EnrichOutcome::Skipped);
        assert!(event.partial);
    }

    /// Partial events from a source with no API to enrich from; calling `enrich` is a bug.
    #[derive(Debug)]
    struct PartialWithoutApi;

    #[rollcall_core::async_trait]
    impl Connector for PartialWithoutApi {
        fn verify(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
            Ok(())
        }

        fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
            PartialEvents(Enrich::Skip).normalize(delivery)
        }

        async fn enrich(&self, _event: &mut UserEvent) -> Result<(), EnrichError> {
            Err(EnrichError {
                message: "enrich called on a source that cannot enrich".into(),
                retryable: false,
            })
        }

        fn enriches(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_source_that_cannot_enrich_counts_its_partial_events_skipped_without_a_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let state = state_with(store, Box::new(PartialWithoutApi), Duration::from_secs(5));
        let (status, _) = post(Arc::clone(&state), b"{}").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        for (outcome, expected) in [(EnrichOutcome::Skipped, 1), (EnrichOutcome::Failed, 0)] {
            assert_eq!(enrich_count(&state, outcome), expected, "{outcome:?}");
        }
    }

    #[tokio::test]
    async fn complete_events_are_not_sent_for_enrichment() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let state = state(store);
        let (status, _) = post(Arc::clone(&state), b"{}").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        for outcome in EnrichOutcome::ALL {
            assert_eq!(enrich_count(&state, *outcome), 0, "{outcome:?}");
        }
    }

    async fn post(state: Arc<AppState>, body: &'static [u8]) -> (StatusCode, serde_json::Value) {
        let response = router(state)
            .oneshot(Request::post("/hooks/s").body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn answers_503_store_unavailable_when_the_store_cannot_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        store.close().await;
        let (status, body) = post(state(store), b"{}").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "store_unavailable");
    }

    #[tokio::test]
    async fn a_quarantine_that_cannot_be_kept_is_503_so_the_vendor_retries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        store.close().await;
        let (status, body) = post(state(store), b"").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "store_unavailable");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_without_content_length_is_413() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let stream = futures_stream(vec![vec![b'x'; 800], vec![b'x'; 800]]);
        let response = router(state(store))
            .oneshot(Request::post("/hooks/s").body(stream).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// One partial event per delivery whose enrichment never finishes, under a vendor's
    /// retry contract.
    #[derive(Debug)]
    struct HangsUnder(rollcall_core::RetryContract);

    #[rollcall_core::async_trait]
    impl Connector for HangsUnder {
        fn verify(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
            Ok(())
        }

        fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
            PartialEvents(Enrich::Hang).normalize(delivery)
        }

        async fn enrich(&self, _event: &mut UserEvent) -> Result<(), EnrichError> {
            std::future::pending().await
        }

        fn retry_contract(&self) -> rollcall_core::RetryContract {
            self.0.clone()
        }
    }

    /// The registered connector `name`, built from its demo options.
    fn demo_connector(name: &str) -> Box<dyn Connector> {
        let registration = rollcall_core::registration(name).unwrap();
        let options = rollcall_core::SourceOptions::new("s", (registration.demo_options)(&[7; 32]));
        (registration.build)(&options).unwrap()
    }

    /// Posts to a source that has `name`'s retry contract and whose enrichment hangs, and
    /// checks the answer comes inside the vendor's deadline. The host's request timeout is
    /// 30 s, longer than every vendor's deadline, so only the contract can keep it short;
    /// a vendor without a known deadline gets the host's timeout, here 2 s.
    async fn answers_inside_the_deadline_of(name: &str) {
        let contract = demo_connector(name).retry_contract();
        let (host_timeout, limit) = match contract.answer_deadline() {
            Some(deadline) => (Duration::from_secs(30), deadline),
            None => (Duration::from_secs(2), Duration::from_secs(2)),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let state = state_with(store, Box::new(HangsUnder(contract)), host_timeout);
        let started = Instant::now();
        let (status, _) = post(state, b"{}").await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::ACCEPTED, "{name}");
        assert!(
            elapsed < limit,
            "{name}: answered after {elapsed:?}, limit {limit:?}"
        );
    }

    #[cfg(feature = "okta")]
    #[tokio::test]
    async fn okta_is_answered_inside_its_3_s_deadline_when_enrichment_hangs() {
        answers_inside_the_deadline_of("okta").await;
    }

    #[cfg(feature = "zendesk")]
    #[tokio::test]
    async fn zendesk_is_answered_inside_its_webhook_timeout_when_enrichment_hangs() {
        answers_inside_the_deadline_of("zendesk").await;
    }

    #[cfg(feature = "highlevel")]
    #[tokio::test]
    async fn highlevel_is_answered_inside_the_host_timeout_when_enrichment_hangs() {
        answers_inside_the_deadline_of("highlevel").await;
    }

    #[cfg(feature = "freshservice")]
    #[tokio::test]
    async fn freshservice_is_answered_inside_the_forwarders_15_s_timeout_when_enrichment_hangs() {
        answers_inside_the_deadline_of("freshservice").await;
    }

    #[cfg(feature = "vcclive")]
    #[tokio::test]
    async fn vcclive_is_answered_inside_the_host_timeout_when_enrichment_hangs() {
        answers_inside_the_deadline_of("vcclive").await;
    }

    #[tokio::test]
    async fn a_transient_failure_gets_the_status_the_vendor_retries_with_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        store.close().await;
        let contract = rollcall_core::RetryContract::default()
            .with_retried(rollcall_core::RetriedAnswers::Only(&[429]))
            .with_retry_interval(Duration::from_secs(600));
        let state = state_with(
            store,
            Box::new(HangsUnder(contract)),
            Duration::from_secs(5),
        );
        let response = router(state)
            .oneshot(Request::post("/hooks/s").body(Body::from("{}")).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "600");
    }

    /// HighLevel retries only 429, with the same body (and so the same signed `timestamp`),
    /// for about 70 minutes. The clock is the request's [`ReceivedAt`]: nothing sleeps.
    #[cfg(feature = "highlevel")]
    mod highlevel_retries {
        use super::*;

        /// When HighLevel first sends the delivery.
        const SENT: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

        fn at(seconds_after_sent: i64) -> Timestamp {
            Timestamp::from_unix_seconds(SENT + seconds_after_sent).unwrap()
        }

        /// A UserCreate signed with the demo source's key, as HighLevel would send it.
        fn signed_delivery() -> Delivery {
            let body = serde_json::to_vec(&json!({
                "type": "UserCreate",
                "timestamp": at(0).to_string(),
                "webhookId": "wh-retried",
                "locationId": "loc-1",
                "id": "user-1",
                "email": "ann@example.com"
            }))
            .unwrap();
            let mut delivery = Delivery::new("s", body, at(0));
            demo_connector("highlevel").sign(&mut delivery).unwrap();
            delivery
        }

        async fn send(
            state: Arc<AppState>,
            delivery: &Delivery,
            received_at: Timestamp,
        ) -> (StatusCode, Option<String>, serde_json::Value) {
            let mut request = Request::post("/hooks/s");
            for (name, value) in delivery.headers.iter() {
                request = request.header(name, value);
            }
            let mut request = request.body(Body::from(delivery.body.clone())).unwrap();
            request.extensions_mut().insert(ReceivedAt(received_at));
            let response = router(state).oneshot(request).await.unwrap();
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|value| value.to_str().unwrap().to_owned());
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, retry_after, serde_json::from_slice(&bytes).unwrap())
        }

        fn highlevel_state(store: Store) -> Arc<AppState> {
            state_with(store, demo_connector("highlevel"), Duration::from_secs(5))
        }

        #[tokio::test]
        async fn a_delivery_answered_429_in_a_store_outage_is_accepted_70_minutes_later() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            let delivery = signed_delivery();

            let down = Store::open(&path).unwrap();
            down.close().await;
            let (status, retry_after, body) = send(highlevel_state(down), &delivery, at(1)).await;
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
            assert_eq!(retry_after.as_deref(), Some("600"));
            assert_eq!(body["error"]["code"], "store_unavailable");

            let up = highlevel_state(Store::open(&path).unwrap());
            let (status, _, body) = send(Arc::clone(&up), &delivery, at(70 * 60)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            assert_eq!(body["accepted"], 1);
        }

        #[tokio::test]
        async fn a_committed_delivery_sent_again_70_minutes_later_is_a_duplicate() {
            let dir = tempfile::tempdir().unwrap();
            let state = highlevel_state(Store::open(dir.path().join("db")).unwrap());
            let delivery = signed_delivery();
            let (first, _, accepted) = send(Arc::clone(&state), &delivery, at(1)).await;
            assert_eq!(first, StatusCode::ACCEPTED, "{accepted}");
            let (again, _, body) = send(Arc::clone(&state), &delivery, at(70 * 60)).await;
            assert_eq!(again, StatusCode::OK, "{body}");
            assert_eq!(body["duplicate"], true);
            assert_eq!(body["event_ids"], accepted["event_ids"]);
        }

        #[tokio::test]
        async fn the_same_body_after_the_retry_horizon_is_refused_as_a_replay() {
            let dir = tempfile::tempdir().unwrap();
            let state = highlevel_state(Store::open(dir.path().join("db")).unwrap());
            let (status, _, body) = send(state, &signed_delivery(), at(76 * 60)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"]["code"], "timestamp_out_of_tolerance");
        }
    }

    fn futures_stream(chunks: Vec<Vec<u8>>) -> Body {
        Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        ))
    }
}
