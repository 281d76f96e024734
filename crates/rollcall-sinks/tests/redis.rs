//! The redis sink against the real local Redis server (127.0.0.1:6379): entries read back
//! with XRANGE, approximate trimming, error classification, connecting lazily and
//! reconnecting.
//!
//! These tests need the server and fail, saying how to start it, when it is not there.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use rollcall_core::{ConfigError, EventType, Sink, SinkError, SinkOptions};
use serde_json::json;

use proxy::Proxy;
// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

const SERVER: &str = "redis://127.0.0.1:6379";
const SERVER_ADDRESS: ([u8; 4], u16) = ([127, 0, 0, 1], 6379);
const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
    --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log";

/// A connection to the local server; fails the test, saying how to start the server,
/// when it is not answering.
async fn server() -> MultiplexedConnection {
    let unavailable = |problem: String| -> ! {
        panic!(
            "Redis is needed on {SERVER} for the redis sink tests, but {problem}. \
             Start it with `{START_REDIS}` (.ci/run starts it too)"
        )
    };
    let client = redis::Client::open(SERVER).unwrap();
    let connecting = client.get_multiplexed_async_connection();
    let mut connection = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => unavailable(format!("connecting failed: {error}")),
        Err(_) => unavailable("connecting took more than 10 s".to_owned()),
    };
    if let Err(error) = redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
    {
        unavailable(format!("PING failed: {error}"));
    }
    connection
}

/// Keys for one test (`rollcall-test:<pid>:<test>:...`), deleted when dropped.
struct TestKeys {
    prefix: String,
}

impl TestKeys {
    fn new(test: &str) -> Self {
        let keys = Self {
            prefix: format!("rollcall-test:{}:{test}", std::process::id()),
        };
        // Leftovers of an earlier run with the same process id.
        keys.delete();
        keys
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn delete(&self) {
        let pattern = format!("{}:*", self.prefix);
        // Drop cannot await: a blocking connection of its own.
        let Ok(client) = redis::Client::open(SERVER) else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(5))
            else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        })
        .join();
    }
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        self.delete();
    }
}

/// An entry: its fields, by name.
type Entry = HashMap<String, String>;

/// Every entry of the stream at `key`, oldest first.
async fn entries(key: &str) -> Vec<Entry> {
    let mut connection = server().await;
    let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    raw.into_iter()
        .map(|(_, fields)| fields.into_iter().collect())
        .collect()
}

async fn length(key: &str) -> u64 {
    let mut connection = server().await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

/// Builds a redis sink through the registry, as the host does.
fn redis_sink(options: serde_json::Value) -> Result<Box<dyn Sink>, ConfigError> {
    let registration = rollcall_core::sink_registration("redis").expect("redis is registered");
    (registration.build)(&SinkOptions::new("test-redis", options))
}

fn config_error(options: serde_json::Value) -> ConfigError {
    redis_sink(options).expect_err("the options should be rejected")
}

fn transient(result: Result<(), SinkError>) -> String {
    match result {
        Err(SinkError::Transient { message, .. }) => message,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

fn permanent(result: Result<(), SinkError>) -> String {
    match result {
        Err(SinkError::Permanent { message }) => message,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_event_is_one_entry_with_its_id_type_source_content_type_and_body() {
    server().await;
    let keys = TestKeys::new("fields");
    let sink = redis_sink(json!({
        "url": SERVER,
        "stream": keys.key("{source}:{type}"),
    }))
    .unwrap();
    let created = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HT", r#"{"n":1}"#);
    let mut updated = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HV", r#"{"n":2}"#);
    updated.event_type = EventType::Updated;
    updated.content_type = "application/cloudevents+json";

    sink.send(&created).await.unwrap();
    sink.send(&updated).await.unwrap();

    let created_entries = entries(&keys.key("test-source:user.created")).await;
    let expected: Entry = [
        ("id", "01JDX6V3R9M5Q8Z0K2B7C4N1HT"),
        ("type", "user.created"),
        ("source", "test-source"),
        ("content_type", "application/json"),
        ("body", r#"{"n":1}"#),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(created_entries, [expected]);
    let updated_entries = entries(&keys.key("test-source:user.updated")).await;
    assert_eq!(updated_entries.len(), 1);
    assert_eq!(updated_entries[0]["id"], "01JDX6V3R9M5Q8Z0K2B7C4N1HV");
    assert_eq!(updated_entries[0]["type"], "user.updated");
    assert_eq!(
        updated_entries[0]["content_type"],
        "application/cloudevents+json"
    );
    assert_eq!(updated_entries[0]["body"], r#"{"n":2}"#);
}

#[tokio::test]
async fn the_same_event_sent_twice_is_two_entries_with_the_same_id() {
    server().await;
    let keys = TestKeys::new("twice");
    let sink = redis_sink(json!({ "stream": keys.key("events") })).unwrap();
    let event = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HT", "{}");

    sink.send(&event).await.unwrap();
    sink.send(&event).await.unwrap();

    // Redis streams do not deduplicate: consumers do, by the `id` field.
    let ids: Vec<String> = entries(&keys.key("events"))
        .await
        .into_iter()
        .map(|mut entry| entry.remove("id").unwrap())
        .collect();
    assert_eq!(ids, ["01JDX6V3R9M5Q8Z0K2B7C4N1HT"; 2]);
}

#[tokio::test]
async fn maxlen_trims_the_stream_approximately() {
    server().await;
    let keys = TestKeys::new("maxlen");
    let sink = redis_sink(json!({ "stream": keys.key("events"), "maxlen": 10 })).unwrap();

    for n in 0..400 {
        sink.send(&common::event(&format!("evt-{n}"), "{}"))
            .await
            .unwrap();
    }

    // `MAXLEN ~` trims whole macro nodes (100 entries by default): never below 10, and
    // far below the 400 sent.
    let kept = length(&keys.key("events")).await;
    assert!((10..=250).contains(&kept), "{kept} entries kept");
}

#[tokio::test]
async fn a_key_holding_another_type_is_permanent_and_the_connection_stays_usable() {
    let mut connection = server().await;
    let keys = TestKeys::new("wrongtype");
    let _: () = redis::cmd("SET")
        .arg(keys.key("user.created"))
        .arg("not a stream")
        .query_async(&mut connection)
        .await
        .unwrap();
    let sink = redis_sink(json!({ "stream": keys.key("{type}") })).unwrap();

    let message = permanent(sink.send(&common::event("evt-1", "{}")).await);
    assert!(message.contains("WRONGTYPE"), "{message}");
    assert!(message.contains("not a stream"), "{message}");

    let mut deleted = common::event("evt-2", "{}");
    deleted.event_type = EventType::Deleted;
    sink.send(&deleted).await.unwrap();
    assert_eq!(length(&keys.key("user.deleted")).await, 1);
}

/// `redis_sink` for a server on `port` with `timeout_seconds`.
fn sink_on_port(port: u16, timeout_seconds: u64) -> Box<dyn Sink> {
    redis_sink(json!({
            "url": format!("redis://127.0.0.1:{port}"),
            "stream": "rollcall:users",
            "timeout_seconds": timeout_seconds,
    }))
    .unwrap()
}

#[tokio::test]
async fn a_closed_port_is_transient_and_building_needs_no_server() {
    proxy::assert_a_closed_port_is_transient(sink_on_port).await;
}

#[tokio::test]
async fn a_server_that_never_answers_is_transient_after_the_timeout() {
    proxy::assert_a_silent_server_times_out(sink_on_port).await;
}

#[tokio::test]
async fn a_failed_first_connection_is_tried_again_on_the_next_event() {
    server().await;
    let keys = TestKeys::new("late_server");
    let port = proxy::closed_port();
    let sink = redis_sink(json!({
        "url": format!("redis://127.0.0.1:{port}"),
        "stream": keys.key("events"),
        "timeout_seconds": 2,
    }))
    .unwrap();
    let event = common::event("evt-1", "{}");
    transient(sink.send(&event).await);

    let _proxy = Proxy::start_on(port, SocketAddr::from(SERVER_ADDRESS)).await;
    sink.send(&event).await.unwrap();

    assert_eq!(length(&keys.key("events")).await, 1);
}

#[tokio::test]
async fn after_the_connection_drops_the_next_attempts_reconnect() {
    server().await;
    let keys = TestKeys::new("reconnect");
    let proxy = Proxy::start(SocketAddr::from(SERVER_ADDRESS)).await;
    let sink = redis_sink(json!({
        "url": format!("redis://127.0.0.1:{}", proxy.port),
        "stream": keys.key("events"),
        "timeout_seconds": 2,
    }))
    .unwrap();
    sink.send(&common::event("evt-1", "{}")).await.unwrap();

    proxy.cut();
    let event = common::event("evt-2", "{}");
    let mut failures = 0;
    while let Err(error) = sink.send(&event).await {
        assert!(!error.is_permanent(), "{error}");
        failures += 1;
        assert!(failures <= 2, "still failing: {error}");
    }

    let ids: Vec<String> = entries(&keys.key("events"))
        .await
        .into_iter()
        .map(|mut entry| entry.remove("id").unwrap())
        .collect();
    assert_eq!(ids, ["evt-1", "evt-2"]);
}

#[test]
fn the_stream_is_required_and_its_placeholders_checked() {
    assert_eq!(config_error(json!({})).key, "stream");
    for bad in ["", "rollcall:{kind}", "rollcall:{type", "rollcall:}"] {
        let error = config_error(json!({ "stream": bad }));
        assert_eq!(error.key, "stream", "{bad:?}");
    }
}

#[test]
fn the_url_must_be_a_redis_url_without_tls() {
    for bad in [
        "127.0.0.1:6379",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1:6379/not-a-number",
    ] {
        let error = config_error(json!({ "url": bad, "stream": "s" }));
        assert_eq!(error.key, "url", "{bad:?}");
    }
    let error =
        config_error(json!({ "url": "rediss://:hunter2@cache.example.com", "stream": "s" }));
    assert_eq!(error.key, "url");
    assert!(error.message.contains("TLS"), "{error}");
    assert!(!error.message.contains("hunter2"), "{error}");
    for good in [
        "redis://:pw@127.0.0.1:6379/2",
        "redis+unix:///run/redis/redis.sock",
    ] {
        assert!(
            redis_sink(json!({ "url": good, "stream": "s" })).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn maxlen_and_the_timeout_are_bounded() {
    for (key, bad) in [
        ("maxlen", json!(0)),
        ("maxlen", json!(u64::MAX)),
        ("maxlen", json!(-1)),
        ("timeout_seconds", json!(0)),
        ("timeout_seconds", json!(3601)),
    ] {
        let error = config_error(json!({ "stream": "s", key: bad }));
        assert_eq!(error.key, key, "{bad}");
    }
}

#[test]
fn an_unknown_option_is_rejected() {
    let error = config_error(json!({ "stream": "s", "maxlen_exact": true }));
    assert!(error.message.contains("maxlen_exact"), "{error}");
}

#[test]
fn debug_output_shows_no_password() {
    let sink = redis_sink(json!({
        "url": "redis://rollcall:hunter2@cache.example.com:6379/1",
        "stream": "rollcall:{type}",
    }))
    .unwrap();
    let shown = format!("{sink:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("redis://cache.example.com:6379/1"),
        "{shown}"
    );
}
