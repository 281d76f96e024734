//! Enrichment from the Zendesk API, against a local fake server serving recorded answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rollcall_connector_zendesk::ZendeskConnector;
use rollcall_core::verify::encode_base64;
use rollcall_core::{Connector, SourceOptions, UserEvent, UserStatus};
use serde_json::{json, Value};

const TOKEN: &str = "tok-9f8e7d6c5b4a";
const EMAIL: &str = "agent@acme.example";
const USER_ID: &str = "6596848315901";

/// What the fake API answers.
#[derive(Clone)]
enum Mode {
    /// 200 with this body.
    User(Value),
    /// This status, with an optional `Retry-After`.
    Status(u16, Option<&'static str>),
    /// Sleeps, then answers the recorded user.
    Sleep(Duration),
}

/// One request the fake API received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    accept: Option<String>,
}

#[derive(Clone)]
struct FakeApi {
    base_url: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeApi {
    async fn start(mode: Mode) -> FakeApi {
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = {
            let mode = Arc::clone(&mode);
            let seen = Arc::clone(&seen);
            axum::Router::new().fallback(move |request: Request<Body>| {
                let mode = Arc::clone(&mode);
                let seen = Arc::clone(&seen);
                async move {
                    let (parts, _body) = request.into_parts();
                    let header = |name: &str| {
                        parts
                            .headers
                            .get(name)
                            .map(|value| value.to_str().unwrap().to_owned())
                    };
                    seen.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_owned(),
                        authorization: header("authorization"),
                        accept: header("accept"),
                    });
                    let mode = mode.lock().unwrap().clone();
                    answer(mode).await
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeApi {
            base_url: format!("http://{address}"),
            mode,
            seen,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(mode: Mode) -> Response {
    match mode {
        Mode::User(body) => json_response(StatusCode::OK, &body),
        Mode::Status(status, retry_after) => {
            let status = StatusCode::from_u16(status).unwrap();
            let mut response = json_response(status, &json!({"error": status.canonical_reason()}));
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.parse().unwrap());
            }
            response
        }
        Mode::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            json_response(StatusCode::OK, &recorded_user())
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The recorded `GET /api/v2/users/6596848315901.json` answer.
fn recorded_user() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/users_6596848315901.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

/// A Zendesk source's options with enrichment pointed at `base_url`, plus `extra`.
fn options(base_url: &str, extra: Value) -> Value {
    let mut options = json!({
        "signing_secret": "s3cret",
        "api_token": TOKEN,
        "email": EMAIL,
        "subdomain": "acme",
        "api_base_url": base_url,
    });
    for (key, value) in extra.as_object().unwrap() {
        options[key] = value.clone();
    }
    options
}

fn connector(options: Value) -> ZendeskConnector {
    ZendeskConnector::from_options(&SourceOptions::new("zd", options)).unwrap()
}

fn config_error(options: Value) -> rollcall_core::ConfigError {
    ZendeskConnector::from_options(&SourceOptions::new("zd", options)).unwrap_err()
}

/// The partial event a fixture webhook normalizes to.
fn partial_event(connector: &ZendeskConnector, fixture_name: &str) -> UserEvent {
    let delivery = rollcall_testkit::delivery("zd", fixture(fixture_name));
    let mut events = connector.normalize(&delivery).unwrap();
    assert_eq!(events.len(), 1);
    let event = events.remove(0);
    assert!(event.partial);
    event
}

#[tokio::test]
async fn a_partial_user_is_completed_from_the_api() {
    let api = FakeApi::start(Mode::User(recorded_user())).await;
    let connector = connector(options(&api.base_url, json!({})));
    assert!(connector.enriches());
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();

    connector.enrich(&mut event).await.unwrap();

    assert!(!event.partial);
    let user = &event.user;
    assert_eq!(user.id, USER_ID);
    assert_eq!(user.name.as_deref(), Some("Maria Garcia"));
    let phones = user.phones.as_ref().unwrap();
    assert_eq!(phones.len(), 1);
    assert_eq!(phones[0].number, "+34 910 123 456");
    assert_eq!(
        user.avatar.as_deref(),
        Some("https://acme.zendesk.com/system/photos/7731001/maria.png")
    );
    assert_eq!(user.languages, Some(vec!["es".to_owned()]));
    assert_eq!(user.timezone.as_deref(), Some("Europe/Madrid"));
    assert_eq!(user.status, Some(UserStatus::Active));
    assert_eq!(
        user.emails.as_ref().unwrap()[0].email,
        "maria.garcia@example.com"
    );
    assert_eq!(
        user.roles.as_ref().unwrap()[0].name.as_deref(),
        Some("end-user")
    );
    // `null` ids stay absent.
    assert_eq!(user.organizations, None);
    assert_eq!(user.groups, None);
    assert_eq!(
        user.remote_data
            .as_ref()
            .map(rollcall_core::RemoteData::to_value)
            .as_ref(),
        Some(&recorded_user()["user"])
    );
    // The envelope is the webhook's.
    assert_eq!(event.id, before.id);
    assert_eq!(event.event_type, before.event_type);
    assert_eq!(event.vendor_event, before.vendor_event);
    assert_eq!(event.changes, before.changes);
    let json = serde_json::to_value(&event).unwrap();
    assert!(json.get("partial").is_none(), "{json}");

    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/api/v2/users/6596848315901.json");
    let expected = format!(
        "Basic {}",
        encode_base64(format!("{EMAIL}/token:{TOKEN}").as_bytes())
    );
    assert_eq!(seen[0].authorization.as_deref(), Some(expected.as_str()));
    assert_eq!(seen[0].accept.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn an_update_keeps_its_changes_and_takes_the_api_state() {
    let api = FakeApi::start(Mode::User(recorded_user())).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_name_changed.json");
    let changes = event.changes.clone();
    assert!(changes.as_ref().is_some_and(|changes| !changes.is_empty()));
    // The recorded user is the one of the created fixture: serve the same id.
    let id = event.user.id.clone();
    let mut body = recorded_user();
    body["user"]["id"] = json!(id.parse::<u64>().unwrap());
    body["user"]["updated_at"] = json!("2099-01-01T00:00:00Z");
    api.set(Mode::User(body));

    connector.enrich(&mut event).await.unwrap();
    assert!(!event.partial);
    assert_eq!(event.user.name.as_deref(), Some("Maria Garcia"));
    assert_eq!(event.changes, changes);
    assert_eq!(api.seen()[0].path, format!("/api/v2/users/{id}.json"));
}

#[tokio::test]
async fn an_unknown_user_is_a_permanent_failure_and_the_event_stays_partial() {
    let api = FakeApi::start(Mode::Status(404, None)).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();

    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("404"), "{error}");
    assert_eq!(event, before);
    assert!(event.partial);
    assert_eq!(api.hits(), 1);
}

#[tokio::test]
async fn rejected_credentials_fail_without_leaking_the_token() {
    let api = FakeApi::start(Mode::Status(401, None)).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("401"), "{error}");
    let debug = format!("{error:?} {error} {connector:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(event.partial);
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let api = FakeApi::start(Mode::Status(503, None)).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();
    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(error.retryable, "{error}");
    assert!(error.message.contains("503"), "{error}");
    assert_eq!(event, before);
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_enrichment_for_that_long() {
    let api = FakeApi::start(Mode::Status(429, Some("1"))).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();

    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(error.retryable, "{error}");
    assert!(error.message.contains("429"), "{error}");
    assert_eq!(event, before);
    assert_eq!(api.hits(), 1);

    // Within the pause: skipped without calling the API.
    api.set(Mode::User(recorded_user()));
    connector.enrich(&mut event).await.unwrap();
    assert!(event.partial);
    assert_eq!(event, before);
    assert_eq!(api.hits(), 1);

    // After it: one trial goes out and succeeds.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    connector.enrich(&mut event).await.unwrap();
    assert!(!event.partial);
    assert_eq!(api.hits(), 2);
}

#[tokio::test]
async fn a_slow_api_times_out_as_retryable() {
    let api = FakeApi::start(Mode::Sleep(Duration::from_secs(2))).await;
    let connector = connector(options(&api.base_url, json!({"api_timeout_ms": 200})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();
    let started = Instant::now();
    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert!(error.retryable, "{error}");
    assert!(error.message.contains("200 ms"), "{error}");
    assert_eq!(event, before);
}

#[tokio::test]
async fn the_breaker_opens_after_five_failures_and_half_opens_after_the_cool_down() {
    let api = FakeApi::start(Mode::Status(500, None)).await;
    let connector = connector(options(
        &api.base_url,
        json!({"api_breaker_cooldown_ms": 300, "api_rate_per_second": 1000}),
    ));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();
    for attempt in 1..=5 {
        let error = connector.enrich(&mut event).await.unwrap_err();
        assert!(error.retryable);
        assert_eq!(api.hits(), attempt);
    }
    // Open: skipped, the API is not called.
    for _ in 0..3 {
        connector.enrich(&mut event).await.unwrap();
        assert_eq!(event, before);
    }
    assert_eq!(api.hits(), 5);

    // Half-open: one trial; it fails, so the breaker opens again at once.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(connector.enrich(&mut event).await.is_err());
    assert_eq!(api.hits(), 6);
    connector.enrich(&mut event).await.unwrap();
    assert_eq!(api.hits(), 6);
    assert!(event.partial);

    // The API recovers: the next trial succeeds and closes the breaker.
    api.set(Mode::User(recorded_user()));
    tokio::time::sleep(Duration::from_millis(350)).await;
    connector.enrich(&mut event).await.unwrap();
    assert!(!event.partial);
    assert_eq!(api.hits(), 7);
    let mut another = before.clone();
    connector.enrich(&mut another).await.unwrap();
    assert!(!another.partial);
    assert_eq!(api.hits(), 8);
}

#[tokio::test]
async fn an_empty_rate_bucket_skips_instead_of_waiting() {
    let api = FakeApi::start(Mode::User(recorded_user())).await;
    let connector = connector(options(&api.base_url, json!({"api_rate_per_second": 1})));
    let mut first = partial_event(&connector, "webhook_user_created.json");
    let mut second = first.clone();
    connector.enrich(&mut first).await.unwrap();
    assert!(!first.partial);

    let started = Instant::now();
    connector.enrich(&mut second).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(500), "it waited");
    assert!(
        second.partial,
        "the second request in the same second is skipped"
    );
    assert_eq!(api.hits(), 1);
}

#[tokio::test]
async fn deleted_and_complete_events_are_not_enriched() {
    let api = FakeApi::start(Mode::User(recorded_user())).await;
    let connector = connector(options(&api.base_url, json!({})));
    for name in [
        "webhook_user_deleted.json",
        "user.active_changed.webhook.json",
    ] {
        let mut event = partial_event(&connector, name);
        assert_eq!(
            event.event_type,
            rollcall_core::EventType::Deleted,
            "{name}"
        );
        let before = event.clone();
        connector.enrich(&mut event).await.unwrap();
        assert_eq!(event, before);
    }
    // A bare Support user is already complete.
    let delivery = rollcall_testkit::delivery("zd", fixture("support_user.json"));
    let mut event = connector.normalize(&delivery).unwrap().remove(0);
    assert!(!event.partial);
    let before = event.clone();
    connector.enrich(&mut event).await.unwrap();
    assert_eq!(event, before);
    assert_eq!(api.hits(), 0);
}

#[tokio::test]
async fn an_api_answer_older_than_the_event_is_not_used() {
    let mut stale = recorded_user();
    stale["user"]["updated_at"] = json!("2025-03-10T14:00:00Z");
    let api = FakeApi::start(Mode::User(stale)).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();
    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(error.retryable, "{error}");
    assert_eq!(event, before);
}

#[tokio::test]
async fn another_user_or_an_unreadable_answer_is_a_failure() {
    let mut other = recorded_user();
    other["user"]["id"] = json!(42);
    let api = FakeApi::start(Mode::User(other)).await;
    let connector = connector(options(&api.base_url, json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();
    assert!(!connector.enrich(&mut event).await.unwrap_err().retryable);
    api.set(Mode::User(json!(["not", "a", "user"])));
    assert!(!connector.enrich(&mut event).await.unwrap_err().retryable);
    assert_eq!(event, before);
}

#[tokio::test]
async fn an_unreachable_api_is_retryable() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let connector = connector(options(&format!("http://{address}"), json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(error.retryable, "{error}");
    assert!(!error.message.contains(TOKEN));
    assert!(event.partial);
}

#[tokio::test]
async fn a_source_without_api_credentials_does_not_enrich() {
    let connector = connector(json!({"signing_secret": "s3cret"}));
    assert!(!connector.enriches());
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let before = event.clone();
    connector.enrich(&mut event).await.unwrap();
    assert_eq!(event, before);
}

#[test]
fn api_token_email_and_subdomain_go_together() {
    let full = options("http://127.0.0.1:9", json!({}));
    for missing in ["api_token", "email", "subdomain"] {
        let mut partial = full.clone();
        partial.as_object_mut().unwrap().remove(missing);
        let error = config_error(partial);
        assert_eq!(error.key, missing, "{error}");
        assert!(error.message.contains("go together"), "{error}");
    }
    // Any other enrichment option needs them too.
    let error = config_error(json!({"signing_secret": "s", "api_base_url": "http://x"}));
    assert_eq!(error.key, "api_token");
    let error = config_error(json!({"signing_secret": "s", "api_timeout_ms": 100}));
    assert_eq!(error.key, "api_token");
    // Empty values are not values.
    let mut empty = full.clone();
    empty["api_token"] = json!("");
    assert_eq!(config_error(empty).key, "api_token");
    let mut bad = full.clone();
    bad["subdomain"] = json!("acme.zendesk.com/x");
    assert_eq!(config_error(bad).key, "subdomain");
}

#[tokio::test]
async fn the_api_is_reached_over_https_by_default() {
    // No api_base_url: https://{subdomain}.zendesk.com, which builds (TLS is compiled in).
    let mut default_base = options("http://unused", json!({}));
    default_base.as_object_mut().unwrap().remove("api_base_url");
    assert!(ZendeskConnector::from_options(&SourceOptions::new("zd", default_base)).is_ok());
    // An https:// base that answers plain HTTP: the client speaks TLS, the handshake fails,
    // and that is a retryable failure like any connection failure.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        }
    });
    let connector = connector(options(&format!("https://{address}"), json!({})));
    let mut event = partial_event(&connector, "webhook_user_created.json");
    let error = connector.enrich(&mut event).await.unwrap_err();
    assert!(error.retryable, "{error}");
    assert!(!error.message.contains(TOKEN));
    assert!(event.partial);
}

#[test]
fn other_enrichment_options_are_checked() {
    for (key, value) in [
        ("api_base_url", json!("ftp://acme")),
        ("api_base_url", json!("not a url")),
        ("api_base_url", json!("http://user:pass@proxy")),
        ("api_timeout_ms", json!(0)),
        ("api_rate_per_second", json!(0)),
        ("api_rate_per_second", json!(-1.5)),
        ("api_timeout_ms", json!("soon")),
    ] {
        let error = config_error(options("http://127.0.0.1:9", json!({ key: value })));
        assert_eq!(error.key, key, "{value}: {error}");
    }
    // A trailing slash is fine; fractional rates are allowed.
    let connector = connector(options(
        "http://127.0.0.1:9/",
        json!({"api_rate_per_second": 0.5}),
    ));
    assert!(connector.enriches());
}

#[test]
fn the_token_never_shows_in_debug_output() {
    let connector = connector(options("http://127.0.0.1:9", json!({})));
    let debug = format!("{connector:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("Secret(***)"), "{debug}");
}
