//! `POST /hooks/{source}`: the ingest pipeline.
//!
//! Each request goes through, in order: the source lookup (404), the body limit (413), the
//! connector's handshake (answered directly), verification (401, nothing kept),
//! normalization (400, the delivery kept in quarantine), dedup and the durable commit
//! (202 once on disk, 200 for a repeat, 503 when the store cannot commit).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use http_body_util::BodyExt;
use rollcall_core::{Delivery, ErrorCode, HandshakeResponse, Timestamp};
use rollcall_store::{IngestBatch, IngestOutcome, NewQuarantine};
use serde_json::json;

use super::api_error::ApiError;
use super::redact;
use super::state::{AppState, Source};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/hooks/{source}", any(ingest))
        .with_state(state)
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let Some(source) = state.sources.get(&source_id).cloned() else {
        // The label is fixed: an unknown id is whatever the caller typed.
        record(&state, "_unknown", Err(ErrorCode::SourceUnknown), started);
        return ApiError::new(
            ErrorCode::SourceUnknown,
            format!("no source with id {source_id:?} is configured"),
        )
        .into_response();
    };
    let outcome =
        match tokio::time::timeout(state.request_timeout, handle(&state, &source, request)).await {
            Ok(outcome) => outcome,
            // The commit may still land; the vendor's retry is then answered as a duplicate.
            Err(_) => Err(ApiError::new(
                ErrorCode::StoreUnavailable,
                "the request did not complete in time; retry later",
            )),
        };
    match outcome {
        Ok(answer) => {
            record(&state, &source.id, Ok(answer.outcome), started);
            answer.response
        }
        Err(error) => {
            record(&state, &source.id, Err(error.code), started);
            error.into_response()
        }
    }
}

struct Answer {
    outcome: &'static str,
    response: Response,
}

fn record(
    state: &AppState,
    source: &str,
    outcome: Result<&'static str, ErrorCode>,
    started: Instant,
) {
    let metrics = &state.metrics;
    match outcome {
        Ok(outcome) => metrics.increment(
            "rollcall_ingest_requests_total",
            &[("source", source), ("outcome", outcome)],
        ),
        Err(code) => {
            metrics.increment(
                "rollcall_ingest_requests_total",
                &[("source", source), ("outcome", "rejected")],
            );
            metrics.increment(
                "rollcall_ingest_rejected_total",
                &[("source", source), ("code", code.as_str())],
            );
        }
    }
    metrics.observe(
        "rollcall_ingest_request_duration_seconds",
        &[("source", source)],
        started.elapsed(),
    );
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
    let body = http_body_util::Limited::new(body, state.max_body_bytes)
        .collect()
        .await
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

    let mut delivery =
        Delivery::new(source.id.clone(), body, Timestamp::now()).with_method(parts.method.as_str());
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            delivery.headers.insert(name.as_str(), value);
        }
    }
    delivery.query = parts.uri.query().map(str::to_owned);

    if let Some(handshake) = source.connector.handshake(&delivery) {
        return Ok(Answer {
            outcome: "handshake",
            response: handshake_response(handshake),
        });
    }
    if parts.method != Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not accepted here; vendors POST", parts.method),
        ));
    }

    if let Err(error) = source.connector.verify(&delivery) {
        tracing::info!(source = %source.id, code = error.code().as_str(), "delivery rejected by verification");
        return Err(ApiError::new(error.code(), error.to_string()));
    }

    let events = match source.connector.normalize(&delivery) {
        Ok(events) => events,
        Err(error) => return Err(quarantine(state, source, &delivery, &error).await),
    };

    let batch = IngestBatch {
        source: source.id.clone(),
        dedup_key: source.connector.dedup_key(&delivery),
        received_at: delivery.received_at,
        events,
    };
    let count = batch.events.len();
    match state.store.ingest(batch).await? {
        IngestOutcome::Accepted { event_ids } => {
            state.metrics.add(
                "rollcall_events_accepted_total",
                &[("source", &source.id)],
                count as u64,
            );
            tracing::info!(source = %source.id, events = count, "delivery accepted");
            Ok(Answer {
                outcome: "accepted",
                response: (
                    StatusCode::ACCEPTED,
                    Json(json!({"accepted": event_ids.len(), "event_ids": event_ids})),
                )
                    .into_response(),
            })
        }
        IngestOutcome::Duplicate { event_ids } => {
            tracing::info!(source = %source.id, "duplicate delivery");
            Ok(Answer {
                outcome: "duplicate",
                response: (
                    StatusCode::OK,
                    Json(json!({"duplicate": true, "event_ids": event_ids})),
                )
                    .into_response(),
            })
        }
    }
}

/// Keeps a delivery that failed normalization and builds the 400 answer. If it cannot be
/// kept, the answer is 503 so the vendor sends it again: nothing accepted is lost.
async fn quarantine(
    state: &AppState,
    source: &Source,
    delivery: &Delivery,
    error: &rollcall_core::NormalizeError,
) -> ApiError {
    let kept = state
        .store
        .quarantine(NewQuarantine {
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
            state.metrics.increment(
                "rollcall_quarantined_total",
                &[("source", &source.id), ("code", error.code().as_str())],
            );
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
        Connector, EventType, NormalizeError, User, UserEvent, VendorEvent, VerifyError,
    };
    use rollcall_store::Store;
    use tower::ServiceExt;

    use super::*;
    use crate::metrics::Metrics;

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

    fn state(store: Store) -> Arc<AppState> {
        let mut sources = HashMap::new();
        sources.insert(
            "s".to_owned(),
            Arc::new(Source {
                id: "s".to_owned(),
                connector_name: "accept-all",
                connector: Box::new(AcceptAll),
            }),
        );
        Arc::new(AppState {
            sources,
            sinks: Vec::new(),
            store,
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: 1024,
            request_timeout: Duration::from_secs(5),
            admin_token: None,
        })
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

    fn futures_stream(chunks: Vec<Vec<u8>>) -> Body {
        Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        ))
    }
}
