//! The http sink against real local servers: signing, status classification, timeouts.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use rollcall_core::verify::StandardWebhooks;
use rollcall_core::{ConfigError, Delivery, Secret, Sink, SinkError, SinkOptions, Timestamp};
use serde_json::json;

// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

/// The Standard Webhooks reference libraries' example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A request as the endpoint received it.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A local endpoint at `url` that records every request it answers.
struct Endpoint {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Serves `router` on 127.0.0.1 and returns `http://127.0.0.1:<port>`.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// An endpoint at `/hook` that waits `delay`, then answers `status` with `headers` and `body`.
async fn answering_after(
    delay: Duration,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> Endpoint {
    let received = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&received);
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let answer_body = body.to_owned();
    let handler = move |request_headers: HeaderMap, request_body: Bytes| {
        let recorder = Arc::clone(&recorder);
        let headers = headers.clone();
        let answer_body = answer_body.clone();
        async move {
            recorder.lock().unwrap().push(Received {
                headers: request_headers,
                body: request_body,
            });
            tokio::time::sleep(delay).await;
            let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(answer_body)).unwrap()
        }
    };
    let base = serve(Router::new().route("/hook", post(handler))).await;
    Endpoint {
        url: format!("{base}/hook"),
        received,
    }
}

async fn answering(status: u16, headers: &[(&str, &str)], body: &str) -> Endpoint {
    answering_after(Duration::ZERO, status, headers, body).await
}

/// Builds an http sink through the registry, as the host does.
fn http_sink(options: serde_json::Value) -> Result<Box<dyn Sink>, ConfigError> {
    let registration = rollcall_core::sink_registration("http").expect("http is registered");
    (registration.build)(&SinkOptions::new("test-http", options))
}

fn config_error(options: serde_json::Value) -> ConfigError {
    http_sink(options).expect_err("the options should be rejected")
}

async fn send_to(url: &str) -> Result<(), SinkError> {
    let sink = http_sink(json!({ "url": url })).unwrap();
    sink.send(&common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HT", r#"{"n":1}"#))
        .await
}

fn transient(result: Result<(), SinkError>) -> (String, Option<Duration>) {
    match result {
        Err(SinkError::Transient {
            message,
            retry_after,
        }) => (message, retry_after),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

fn permanent(result: Result<(), SinkError>) -> String {
    match result {
        Err(SinkError::Permanent { message }) => message,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// The request as a connector would see it, received now.
fn as_delivery(received: &Received) -> Delivery {
    let mut delivery = Delivery::new("receiver", received.body.clone(), Timestamp::now());
    for (name, value) in &received.headers {
        delivery = delivery.with_header(name.as_str(), value.to_str().unwrap());
    }
    delivery
}

#[tokio::test]
async fn a_signed_post_verifies_with_the_same_secret() {
    let endpoint = answering(200, &[], "ok").await;
    let sink = http_sink(json!({
        "url": endpoint.url,
        "signing_secret": SECRET,
        "headers": { "x-tenant": "acme" },
    }))
    .unwrap();
    let mut event = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HT", r#"{"type":"user.created"}"#);
    event.content_type = "application/cloudevents+json";

    sink.send(&event).await.unwrap();

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.body, r#"{"type":"user.created"}"#);
    let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap();
    assert_eq!(header("content-type"), "application/cloudevents+json");
    assert_eq!(header("webhook-id"), "01JDX6V3R9M5Q8Z0K2B7C4N1HT");
    assert_eq!(header("x-tenant"), "acme");
    assert!(header("webhook-signature").starts_with("v1,"));
    let signed_at: i64 = header("webhook-timestamp").parse().unwrap();
    assert!((Timestamp::now().unix_seconds() - signed_at).abs() <= 5);

    let delivery = as_delivery(request);
    let same = StandardWebhooks::new(&Secret::new(SECRET)).unwrap();
    assert_eq!(same.verify(&delivery, 300), Ok(()));
    let other = StandardWebhooks::new(&Secret::new("whsec_b3RoZXI=")).unwrap();
    assert!(other.verify(&delivery, 300).is_err());
}

#[tokio::test]
async fn without_a_secret_the_post_carries_id_and_timestamp_but_no_signature() {
    let endpoint = answering(200, &[], "").await;
    let sink = http_sink(json!({ "url": endpoint.url })).unwrap();

    sink.send(&common::event("evt-1", "{}")).await.unwrap();

    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    let headers = &received[0].headers;
    assert_eq!(headers.get("webhook-id").unwrap(), "evt-1");
    assert!(headers.get("webhook-timestamp").is_some());
    assert!(headers.get("webhook-signature").is_none());
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
}

#[tokio::test]
async fn a_200_is_delivered() {
    let endpoint = answering(200, &[], r#"{"ok":true}"#).await;
    assert_eq!(send_to(&endpoint.url).await, Ok(()));
    assert_eq!(endpoint.received().len(), 1);
}

#[tokio::test]
async fn a_204_is_delivered() {
    let endpoint = answering(204, &[], "").await;
    assert_eq!(send_to(&endpoint.url).await, Ok(()));
}

#[tokio::test]
async fn a_301_is_permanent_and_its_location_is_not_followed() {
    let moved_hits = Arc::new(Mutex::new(0_usize));
    let counter = Arc::clone(&moved_hits);
    let router = Router::new()
        .route(
            "/hook",
            post(|| async {
                Response::builder()
                    .status(StatusCode::MOVED_PERMANENTLY)
                    .header("location", "/moved")
                    .body(Body::empty())
                    .unwrap()
            }),
        )
        .route(
            "/moved",
            post(move || {
                let counter = Arc::clone(&counter);
                async move {
                    *counter.lock().unwrap() += 1;
                    StatusCode::OK
                }
            })
            .get(|| async { StatusCode::OK }),
        );
    let base = serve(router).await;

    let message = permanent(send_to(&format!("{base}/hook")).await);

    assert!(message.contains("301"), "{message}");
    assert!(message.contains("redirects are not followed"), "{message}");
    assert_eq!(*moved_hits.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_400_is_permanent_and_quotes_only_the_start_of_the_body() {
    let body = format!("invalid payload: {}END-OF-BODY", "x".repeat(5000));
    let endpoint = answering(400, &[], &body).await;

    let message = permanent(send_to(&endpoint.url).await);

    assert!(message.contains("400 Bad Request"), "{message}");
    assert!(message.contains("invalid payload: xxx"), "{message}");
    assert!(!message.contains("END-OF-BODY"));
    assert!(message.len() < 400, "{} bytes", message.len());
}

#[tokio::test]
async fn a_404_is_permanent() {
    let endpoint = answering(404, &[], "no such hook").await;
    let message = permanent(send_to(&endpoint.url).await);
    assert!(message.contains("404"), "{message}");
}

#[tokio::test]
async fn a_408_is_transient() {
    let endpoint = answering(408, &[], "").await;
    let (message, retry_after) = transient(send_to(&endpoint.url).await);
    assert!(message.contains("408"), "{message}");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn a_429_is_transient_and_carries_its_retry_after() {
    let endpoint = answering(429, &[("retry-after", "7")], "slow down").await;
    let (message, retry_after) = transient(send_to(&endpoint.url).await);
    assert!(message.contains("429"), "{message}");
    assert!(message.contains("slow down"), "{message}");
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_503_with_an_http_date_retry_after_is_transient_until_that_date() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let endpoint = answering(503, &[("retry-after", &at)], "").await;
    let (message, retry_after) = transient(send_to(&endpoint.url).await);
    assert!(message.contains("503"), "{message}");
    let retry_after = retry_after.expect("a retry_after from the date");
    // The date has whole seconds and the clock moved on while the request ran.
    assert!(
        (Duration::from_secs(110)..=Duration::from_secs(120)).contains(&retry_after),
        "{retry_after:?}"
    );
}

#[tokio::test]
async fn a_retry_after_of_a_day_is_capped_at_an_hour() {
    let endpoint = answering(503, &[("retry-after", "86400")], "").await;
    let (_, retry_after) = transient(send_to(&endpoint.url).await);
    assert_eq!(retry_after, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_500_is_transient() {
    let endpoint = answering(500, &[], "boom").await;
    let (message, retry_after) = transient(send_to(&endpoint.url).await);
    assert!(message.contains("500 Internal Server Error"), "{message}");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn an_endpoint_slower_than_timeout_seconds_is_transient() {
    let endpoint = answering_after(Duration::from_secs(5), 200, &[], "").await;
    let sink = http_sink(json!({ "url": endpoint.url, "timeout_seconds": 1 })).unwrap();

    let started = Instant::now();
    let result = sink.send(&common::event("evt-1", "{}")).await;
    let elapsed = started.elapsed();

    let (message, _) = transient(result);
    assert!(message.contains("within 1s"), "{message}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_its_message_keeps_the_query_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);

    let result = send_to(&format!("http://{address}/hook?token=hunter2")).await;

    let (message, retry_after) = transient(result);
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn an_https_endpoint_is_reached_over_tls() {
    // A plain-HTTP server behind an https:// URL: the sink really speaks TLS (the handshake
    // fails), and a failed handshake is transient like any connection failure.
    let endpoint = answering(200, &[], "").await;
    let https = endpoint.url.replacen("http://", "https://", 1);
    assert!(http_sink(json!({ "url": https })).is_ok());
    let (message, _) = transient(send_to(&https).await);
    assert!(!message.is_empty());
    assert!(endpoint.received().is_empty(), "no plain request was sent");
}

#[test]
fn a_url_of_another_scheme_or_no_url_at_all_is_rejected() {
    assert_eq!(
        config_error(json!({ "url": "ftp://example.com/x" })).key,
        "url"
    );
    assert_eq!(config_error(json!({ "url": "not a url" })).key, "url");
    assert_eq!(config_error(json!({})).key, "url");
}

#[test]
fn an_unknown_option_is_rejected() {
    let error = config_error(json!({ "url": "http://127.0.0.1:9/", "retries": 3 }));
    assert!(error.message.contains("retries"), "{error}");
}

#[test]
fn a_malformed_signing_secret_is_a_config_error_naming_the_key_but_not_the_value() {
    let error = config_error(json!({
        "url": "http://127.0.0.1:9/",
        "signing_secret": "whsec_%%%topsecret%%%",
    }));
    assert_eq!(error.key, "signing_secret");
    assert!(!error.to_string().contains("topsecret"), "{error}");
}

#[test]
fn timeouts_must_be_between_one_second_and_an_hour() {
    for (key, value) in [
        ("timeout_seconds", 0),
        ("timeout_seconds", 3601),
        ("connect_timeout_seconds", 0),
    ] {
        let error = config_error(json!({ "url": "http://127.0.0.1:9/", key: value }));
        assert_eq!(error.key, key);
    }
    assert!(http_sink(json!({
        "url": "http://127.0.0.1:9/",
        "timeout_seconds": 3600,
        "connect_timeout_seconds": 1,
    }))
    .is_ok());
}

#[test]
fn extra_headers_may_not_replace_the_ones_the_sink_sets() {
    for name in ["webhook-signature", "Content-Type"] {
        let error = config_error(json!({
            "url": "http://127.0.0.1:9/",
            "headers": { name: "x" },
        }));
        assert_eq!(error.key, format!("headers.{name}"));
    }
    let error = config_error(json!({
        "url": "http://127.0.0.1:9/",
        "headers": { "bad name": "x" },
    }));
    assert_eq!(error.key, "headers.bad name");
}

#[test]
fn debug_output_shows_neither_secrets_nor_header_values_nor_the_query() {
    let sink = http_sink(json!({
        "url": "http://user:pa55word@127.0.0.1:9/hook?token=hunter2",
        "signing_secret": SECRET,
        "headers": { "authorization": "Bearer t0ken" },
    }))
    .unwrap();
    let shown = format!("{sink:?}");
    assert!(shown.contains("127.0.0.1:9/hook"), "{shown}");
    assert!(shown.contains("authorization"), "{shown}");
    for secret in [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "t0ken",
        "hunter2",
        "pa55word",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
