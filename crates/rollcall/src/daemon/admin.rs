//! The admin listener: health, metrics, and the operator's API.
//!
//! Everything but `/healthz` and `/readyz` requires `Authorization: Bearer <token>` when a
//! token is configured (it must be when the listener is not on loopback). The read-only SCIM
//! service (`/scim/v2/`, [`super::scim`]) is served here too, behind the same token.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rollcall_core::{ErrorCode, Timestamp};
use rollcall_store::{DirectoryEntry, IngestOutcome, UserQuery};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api_error::ApiError;
use super::state::AppState;
use crate::config::Scope;

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/connectors", get(connectors))
        .route("/v1/sources", get(sources))
        .route("/v1/sources/{id}/sync", post(sync_source))
        .route("/v1/events", get(events))
        .route("/v1/sinks", get(sinks))
        .route("/v1/sinks/{id}/pause", post(pause_sink))
        .route("/v1/sinks/{id}/resume", post(resume_sink))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/replay", post(replay_dead_letters))
        .route("/v1/quarantine", get(quarantine_list))
        .route("/v1/quarantine/{id}", get(quarantine_get))
        .route("/v1/quarantine/{id}/replay", post(quarantine_replay))
        .route("/v1/replay", post(replay))
        .route("/v1/users", get(users_list))
        .route("/v1/users/{source}/{id}", get(user_get))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .merge(super::scim::router(Arc::clone(&state)))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_known_host,
        ))
        .layer(middleware::map_response(identify))
        .with_state(state)
}

/// The header every admin answer carries, so the operator commands can tell a rollcall
/// admin API from whatever else answers on the address they were given.
pub const VERSION_HEADER: &str = "rollcall-version";

async fn identify(mut response: Response) -> Response {
    response.headers_mut().insert(
        VERSION_HEADER,
        header::HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    response
}

/// Without a token, the admin listener is on loopback and trusts whoever reaches it; a web
/// page can still reach it by rebinding its own DNS name to 127.0.0.1, and the browser then
/// sends that name as `Host`. Only the names the listener is known by are answered
/// ([`super::state::admin_hosts`]); with a token, the token is the check.
async fn require_known_host(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.admin_tokens.is_empty() {
        if let Some(host) = request.headers().get(header::HOST) {
            let known = host
                .to_str()
                .ok()
                .map(host_name)
                .is_some_and(|name| state.admin_hosts.contains(&name));
            if !known {
                return ApiError::new(
                    ErrorCode::HostNotAllowed,
                    "this Host is not one the admin listener answers to; see admin.allowed_hosts",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// A `Host` header's name without its port, lower case (`[::1]:9090` is `[::1]`).
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.to_ascii_lowercase()
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    // Reading needs `read`; anything that changes state (every other method) `operate`.
    let needed = if matches!(*request.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Operate
    };
    match authorize(&state, request.headers(), needed) {
        Ok(()) => next.run(request).await,
        Err(ErrorCode::ScopeInsufficient) => ApiError::new(
            ErrorCode::ScopeInsufficient,
            "this token's scope is read; replays and other actions need an operate token",
        )
        .into_response(),
        Err(code) => ApiError::new(code, "a valid bearer token is required").into_response(),
    }
}

/// Whether the request may do what needs `needed`: no token is configured, or it sends
/// `Authorization: Bearer <token>` of a token whose scope includes `needed`.
pub(super) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    needed: Scope,
) -> Result<(), ErrorCode> {
    if state.admin_tokens.is_empty() {
        return Ok(());
    }
    match state.admin_tokens.scope_of(headers) {
        None => Err(ErrorCode::Unauthorized),
        Some(scope) if scope >= needed => Ok(()),
        Some(_) => Err(ErrorCode::ScopeInsufficient),
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store_unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.render(state.store.commit_stats()) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "cannot render the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A `state` query parameter as the store's state enum; an unknown name is a 400 that lists
/// the known ones.
fn parse_state<T>(state: Option<String>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr<Err = rollcall_store::StoreError>,
{
    state
        .filter(|state| !state.is_empty())
        .map(|state| state.parse())
        .transpose()
        .map_err(|error: rollcall_store::StoreError| {
            ApiError::new(ErrorCode::ConfigInvalid, error.to_string())
        })
}

async fn connectors() -> Json<Value> {
    let list: Vec<Value> = rollcall_core::registrations()
        .iter()
        .map(|r| json!({"name": r.name, "vendor": r.vendor, "event_types": r.event_types}))
        .collect();
    Json(json!({ "connectors": list }))
}

/// The configured sources, each with its sync: whether it can list users, its interval, and
/// the stored state (cursor, last complete run, counts, last error).
async fn sources(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let stored = state.store.sync_states().await?;
    let mut list: Vec<Value> = state
        .sources
        .values()
        .map(|s| {
            let sync = stored.iter().find(|sync| sync.source == s.id);
            json!({
                "id": s.id,
                "connector": s.connector_name,
                "path": format!("/hooks/{}", s.id),
                "sync": {
                    "lists_users": s.connector.lists_users(),
                    "interval_seconds": s.sync_interval.map(|interval| interval.as_secs()),
                    "state": sync,
                },
            })
        })
        .collect();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({ "sources": list })))
}

/// Runs a sync of the source now and answers its report (`rollcall sync --admin-url`).
async fn sync_source(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(source) = state.sources.get(&id) else {
        return Err(ApiError::new(
            ErrorCode::SourceUnknown,
            format!("no source {id:?}"),
        ));
    };
    let report = crate::sync::run(&state.store, source, &state.metrics, &mut |_| {})
        .await
        .map_err(|error| ApiError::new(error.code(), error.to_string()))?;
    Ok(Json(json!(report)))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

async fn events(
    State(state): State<Arc<AppState>>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = state
        .store
        .journal_after(query.after, query.limit.min(1000))
        .await?;
    let mut events = Vec::with_capacity(entries.len());
    for entry in &entries {
        let event: Value = serde_json::from_slice(&entry.event).unwrap_or(Value::Null);
        events.push(json!({"seq": entry.seq, "event": event}));
    }
    let next = entries.last().map_or(query.after, |entry| entry.seq);
    Ok(Json(json!({"events": events, "next_after": next})))
}

#[derive(Debug, Deserialize)]
struct DeadLetterQuery {
    sink: Option<String>,
    state: Option<String>,
    #[serde(default = "default_limit")]
    limit: u32,
}

async fn dead_letters(
    State(state): State<Arc<AppState>>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    let letters = state
        .store
        .dead_letters(query.sink, parse_state(query.state)?, query.limit.min(1000))
        .await?;
    Ok(Json(json!({ "dead_letters": letters })))
}

/// Every configured sink: its delivery settings, position, and what its worker reports.
async fn sinks(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let mut list = Vec::with_capacity(state.sinks.len());
    for sink in &state.sinks {
        let status = state
            .sink_status
            .get(&sink.id)
            .map(|status| status.view())
            .unwrap_or_default();
        let paused = state.store.paused(&sink.id).await?;
        let position = state.store.position(&sink.id).await?;
        list.push(json!({
            "id": sink.id,
            "type": sink.kind,
            "state": if paused { "paused" } else if status.state.is_empty() { "starting" } else { status.state },
            "paused": paused,
            "position": position,
            "lag_events": status.lag_events,
            "oldest_undelivered_seconds": status.oldest_undelivered_seconds,
            "inflight": status.inflight,
            "parked_events": status.parked_events,
            "last_error": status.last_error,
            "last_error_at": status.last_error_at,
            "next_attempt_at": status.next_attempt_at,
            "concurrency": sink.delivery.concurrency,
            "retry_horizon_hours": sink.delivery.retry_horizon.as_secs_f64() / 3600.0,
            "rate_limit_per_second": sink.delivery.rate_limit_per_second,
            "start": match sink.delivery.start {
                crate::config::StartAt::Now => "now",
                crate::config::StartAt::Beginning => "beginning",
            },
        }));
    }
    Ok(Json(json!({ "sinks": list })))
}

fn known_sink(state: &AppState, sink: &str) -> Result<(), ApiError> {
    if state.sinks.iter().any(|s| s.id == sink) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no sink {sink:?}"),
        ))
    }
}

async fn pause_sink(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_sink(&state, &id)?;
    state.store.set_paused(&id, true).await?;
    tracing::info!(sink = %id, "sink paused by an operator");
    Ok(Json(json!({"sink": id, "paused": true})))
}

async fn resume_sink(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    known_sink(&state, &id)?;
    state.store.set_paused(&id, false).await?;
    tracing::info!(sink = %id, "sink resumed by an operator");
    Ok(Json(json!({"sink": id, "paused": false})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayDeadLetters {
    sink: Option<String>,
    #[serde(default)]
    ids: Vec<i64>,
    /// Required to act on every sink's dead letters at once (no sink, no ids).
    #[serde(default)]
    all: bool,
    /// Answer what would be queued, and queue nothing.
    #[serde(default)]
    dry_run: bool,
    /// Replay letters whose user has a newer state too.
    #[serde(default)]
    force: bool,
}

/// The most dead letters one replay request looks at.
const REPLAY_SCAN_LIMIT: u32 = 10_000;

/// Queues dead letters for another attempt. A letter whose user has changed since (the
/// directory holds a newer state than the letter's event) is refused unless `force`: sending
/// it would deliver an older state after a newer one.
async fn replay_dead_letters(
    State(state): State<Arc<AppState>>,
    body: Option<Json<ReplayDeadLetters>>,
) -> Result<Json<Value>, ApiError> {
    let request = body.map(|Json(body)| body).unwrap_or_default();
    if let Some(sink) = &request.sink {
        known_sink(&state, sink)?;
    }
    if request.sink.is_none() && request.ids.is_empty() && !request.all {
        return Err(ApiError::new(
            ErrorCode::ConfigInvalid,
            "name a sink or dead letter ids; `all` replays every sink's dead letters",
        ));
    }
    let letters = state
        .store
        .dead_letters(
            request.sink.clone(),
            Some(rollcall_store::DeadLetterState::Dead),
            REPLAY_SCAN_LIMIT,
        )
        .await?;
    let mut replay = Vec::new();
    let mut refused = Vec::new();
    for letter in letters {
        if !request.ids.is_empty() && !request.ids.contains(&letter.id) {
            continue;
        }
        let summary = json!({"id": letter.id, "sink": letter.sink, "seq": letter.seq, "event_id": letter.event_id});
        match newer_state(&state, letter.seq).await? {
            Some(reason) if !request.force => {
                let mut summary = summary;
                summary["reason"] = json!(reason);
                refused.push(summary);
            }
            _ => replay.push((letter.id, summary)),
        }
    }
    let would: Vec<Value> = replay.iter().map(|(_, summary)| summary.clone()).collect();
    if request.dry_run {
        return Ok(Json(
            json!({"dry_run": true, "would_replay": would, "refused": refused}),
        ));
    }
    let ids: Vec<i64> = replay.iter().map(|(id, _)| *id).collect();
    let queued = if ids.is_empty() {
        0
    } else {
        state.store.request_replay(request.sink, ids).await?
    };
    Ok(Json(
        json!({"queued": queued, "replayed": would, "refused": refused}),
    ))
}

/// Why replaying the event at `seq` would deliver an older state than the user's current
/// one (`None` when it would not: the directory holds exactly the event's user).
async fn newer_state(state: &AppState, seq: i64) -> Result<Option<String>, ApiError> {
    let entry = match state.store.journal_entry(seq).await {
        Ok(entry) => entry,
        Err(rollcall_store::StoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let Ok(event) = entry.decode() else {
        return Ok(None);
    };
    let current = match state.store.user(&event.source, &event.user.id).await {
        Ok(current) => current,
        Err(rollcall_store::StoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let deleted = event.event_type == rollcall_core::EventType::Deleted;
    let same = current.deleted == deleted
        && serde_json::to_value(&current.user).ok() == serde_json::to_value(&event.user).ok();
    Ok((!same).then(|| {
        format!(
            "user {} of source {} has a newer state (updated {}); replaying would deliver an older one after it: use force to send it anyway",
            event.user.id,
            event.source,
            current.updated_at
        )
    }))
}

#[derive(Debug, Deserialize)]
struct QuarantineQuery {
    state: Option<String>,
    #[serde(default = "default_limit")]
    limit: u32,
}

async fn quarantine_list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<QuarantineQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = state
        .store
        .quarantined(parse_state(query.state)?, query.limit.min(1000))
        .await?;
    Ok(Json(json!({ "quarantine": entries })))
}

async fn quarantine_get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let entry = state.store.quarantined_by_id(id).await?;
    let mut value = serde_json::to_value(&entry).unwrap_or(Value::Null);
    value["body"] = json!(String::from_utf8_lossy(&entry.delivery.body));
    Ok(Json(value))
}

/// Re-runs a quarantined delivery through its source's connector (as this build has it) and
/// commits the events it now produces.
async fn quarantine_replay(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let body = match state.pipeline().replay_quarantined(id).await? {
        IngestOutcome::Accepted { event_ids } => {
            json!({"accepted": event_ids.len(), "event_ids": event_ids})
        }
        IngestOutcome::Duplicate { event_ids } => {
            json!({"duplicate": true, "event_ids": event_ids})
        }
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    sink: Option<String>,
    since: String,
    /// Required to rewind every sink at once (no sink).
    #[serde(default)]
    all: bool,
    /// Answer where each sink would be rewound to, and move nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Rewinds a sink (or, with `all`, every sink) so every event received at or after `since`
/// is delivered again, in journal order.
async fn replay(
    State(state): State<Arc<AppState>>,
    Json(request): Json<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    let sinks: Vec<String> = match (&request.sink, request.all) {
        (Some(sink), _) => {
            known_sink(&state, sink)?;
            vec![sink.clone()]
        }
        (None, true) => state.sinks.iter().map(|sink| sink.id.clone()).collect(),
        (None, false) => {
            return Err(ApiError::new(
                ErrorCode::ConfigInvalid,
                "name a sink; `all` rewinds every sink",
            ))
        }
    };
    let since = Timestamp::parse_rfc3339(&request.since)
        .map_err(|error| ApiError::new(ErrorCode::ConfigInvalid, format!("since: {error}")))?;
    if request.dry_run {
        let first = first_received_since(&state, since).await?;
        let latest = *state.store.subscribe().borrow();
        let mut plan = Vec::new();
        for sink in &sinks {
            let position = state.store.position(sink).await?;
            let cursor = first.map_or(position, |first| (first - 1).min(position));
            plan.push(json!({"sink": sink, "position": position, "cursor": cursor, "events": latest - cursor}));
        }
        return Ok(Json(json!({"dry_run": true, "sinks": plan})));
    }
    let mut done = Vec::new();
    for sink in &sinks {
        let cursor = state.store.rewind(sink, since).await?;
        done.push(json!({"sink": sink, "cursor": cursor}));
    }
    match (request.sink, done.len()) {
        (Some(sink), 1) => Ok(Json(json!({"sink": sink, "cursor": done[0]["cursor"]}))),
        _ => Ok(Json(json!({"sinks": done}))),
    }
}

/// The sequence number of the first journal event received at or after `since` (a scan of
/// the retained journal, for a dry run).
async fn first_received_since(state: &AppState, since: Timestamp) -> Result<Option<i64>, ApiError> {
    let mut after = 0;
    loop {
        let page = state.store.journal_after(after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        if let Some(entry) = page
            .iter()
            .find(|entry| entry.received_at_ms >= since.unix_millis())
        {
            return Ok(Some(entry.seq));
        }
        after = last.seq;
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersQuery {
    source: Option<String>,
    status: Option<String>,
    user_name: Option<String>,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    offset: u32,
    #[serde(default = "default_limit")]
    limit: u32,
}

/// A page of the user directory, with the total matching the filters.
async fn users_list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::new(
            ErrorCode::ConfigInvalid,
            format!("invalid query: {}", rejection.body_text()),
        )
    })?;
    let limit = query.limit.min(1000);
    let (users, total) = state
        .store
        .users(UserQuery {
            source: query.source.filter(|source| !source.is_empty()),
            status: query.status.filter(|status| !status.is_empty()),
            user_name: query.user_name.filter(|name| !name.is_empty()),
            include_deleted: query.include_deleted,
            offset: query.offset,
            limit,
        })
        .await?;
    Ok(Json(json!({
        "users": users,
        "total": total,
        "offset": query.offset,
        "limit": limit,
    })))
}

/// One user of one source, tombstones included (`deleted: true`).
async fn user_get(
    State(state): State<Arc<AppState>>,
    Path((source, id)): Path<(String, String)>,
) -> Result<Json<DirectoryEntry>, ApiError> {
    Ok(Json(state.store.user(&source, &id).await?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::time::Duration;

    use axum::body::Body;
    use http_body_util::BodyExt;
    use rollcall_store::Store;
    use tower::ServiceExt;

    use super::*;
    use crate::metrics::Metrics;

    fn state(store: Store, token: Option<&str>) -> Arc<AppState> {
        Arc::new(AppState {
            sources: HashMap::new(),
            sinks: Vec::new(),
            sink_status: Default::default(),
            store,
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: 1024,
            request_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(2),
            admin_tokens: super::super::state::AdminTokens::operate(
                token.map(|token| rollcall_core::Secret::new(token.to_owned())),
            ),
            ingest_limits: crate::daemon::IngestLimits::new(1 << 20, 8, std::iter::empty()),
            admin_hosts: crate::daemon::state::admin_hosts(
                std::net::SocketAddr::from(([127, 0, 0, 1], 9090)),
                &["rollcall.internal".to_owned()],
            ),
        })
    }

    async fn get(state: Arc<AppState>, path: &str, host: &str) -> (StatusCode, Value) {
        let request = axum::http::Request::get(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        let response = router(state).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn readyz_is_unready_when_the_store_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let (status, _) = get(state(store.clone(), None), "/readyz", "127.0.0.1:9090").await;
        assert_eq!(status, StatusCode::OK);
        store.close().await;
        let (status, body) = get(state(store, None), "/readyz", "127.0.0.1:9090").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "store_unavailable");
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text_with_the_store_counters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let request = axum::http::Request::get("/metrics")
            .header(header::HOST, "127.0.0.1:9090")
            .body(Body::empty())
            .unwrap();
        let response = router(state(store, None)).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        for line in [
            "# TYPE rollcall_store_commits_total counter",
            "rollcall_store_commits_total 0",
            "# TYPE rollcall_store_writes_total counter",
            "rollcall_store_writes_total 0",
        ] {
            assert!(
                text.lines().any(|exposed| exposed == line),
                "{line}\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_state_filter_must_name_a_known_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let host = "127.0.0.1:9090";
        for path in ["/v1/dead-letters?state=dead", "/v1/quarantine?state=open"] {
            let (status, _) = get(state(store.clone(), None), path, host).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        for (path, known) in [
            ("/v1/dead-letters?state=gone", "replayed"),
            ("/v1/quarantine?state=closed", "open"),
        ] {
            let (status, body) = get(state(store.clone(), None), path, host).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(body["error"]["code"], "config_invalid", "{path}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(known), "{path}: {message}");
        }
    }

    #[tokio::test]
    async fn without_a_token_only_known_host_names_are_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for host in [
            "127.0.0.1:9090",
            "localhost:9090",
            "LOCALHOST",
            "[::1]:9090",
            "rollcall.internal:9090",
        ] {
            let (status, _) = get(state(store.clone(), None), "/v1/sources", host).await;
            assert_eq!(status, StatusCode::OK, "{host}");
        }
        for host in [
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "localhost.evil",
        ] {
            let (status, body) = get(state(store.clone(), None), "/v1/sources", host).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
            assert_eq!(body["error"]["code"], "host_not_allowed");
        }
        // With a token, the token is the check.
        let request = axum::http::Request::get("/v1/sources")
            .header(header::HOST, "evil.example")
            .header(header::AUTHORIZATION, "Bearer t0ken")
            .body(Body::empty())
            .unwrap();
        let response = router(state(store, Some("t0ken")))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
