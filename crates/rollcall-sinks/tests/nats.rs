//! The nats sink against the real local NATS server with JetStream (127.0.0.1:4222):
//! publishes read back through a JetStream consumer, `Nats-Msg-Id` deduplication, error
//! classification, connecting lazily and reconnecting.
//!
//! These tests need the server and fail, saying how to start it, when it is not there.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt as _;
use rollcall_core::{ConfigError, EventType, Sink, SinkError, SinkOptions};
use serde_json::json;

use proxy::Proxy;
// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

const SERVER: &str = "nats://127.0.0.1:4222";
const SERVER_ADDRESS: ([u8; 4], u16) = ([127, 0, 0, 1], 4222);
const START_NATS: &str = "start-stop-daemon --start --oknodo --background \
    --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server \
    -l /var/log/nats-server.log";

/// A JetStream context on the local server; fails the test, saying how to start the
/// server, when it is not answering or has no JetStream.
async fn server() -> jetstream::Context {
    let unavailable = |problem: String| -> ! {
        panic!(
            "NATS with JetStream is needed on {SERVER} for the nats sink tests, but {problem}. \
             Start it with `{START_NATS}` (.ci/run starts it too)"
        )
    };
    let connecting = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(SERVER);
    let client = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => unavailable(format!("connecting failed: {error}")),
        Err(_) => unavailable("connecting took more than 10 s".to_owned()),
    };
    // The account info request, raw: only whether JetStream answers matters here.
    if let Err(error) = client.request("$JS.API.INFO", "".into()).await {
        unavailable(format!(
            "JetStream does not answer (is the server run with -js?): {error}"
        ));
    }
    jetstream::new(client)
}

/// A stream for one test, deleted when dropped (even when the test fails).
struct TestStream {
    context: jetstream::Context,
    name: String,
    /// Subjects under this prefix are this test's alone.
    prefix: String,
}

impl TestStream {
    /// A memory stream capturing `<prefix>.>`, with a two-minute duplicate window.
    async fn create(test: &str) -> Self {
        Self::create_with(test, |_| {}).await
    }

    /// [`TestStream::create`], with `adjust` applied to the configuration.
    async fn create_with(test: &str, adjust: impl FnOnce(&mut stream::Config)) -> Self {
        let context = server().await;
        let name = format!("rollcall_test_{}_{test}", std::process::id());
        let prefix = format!("rollcall-test.{}.{test}", std::process::id());
        // A leftover of an earlier run with the same process id.
        let _ = context.delete_stream(&name).await;
        let mut config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::Memory,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        adjust(&mut config);
        context.create_stream(config).await.unwrap();
        Self {
            context,
            name,
            prefix,
        }
    }

    /// Every message in the stream, read by a fresh consumer from the start.
    async fn messages(&self) -> Vec<jetstream::Message> {
        let stream = self.context.get_stream(&self.name).await.unwrap();
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.unwrap());
        }
        messages
    }

    async fn count(&self) -> u64 {
        let mut stream = self.context.get_stream(&self.name).await.unwrap();
        stream.info().await.unwrap().state.messages
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's own client runs on the runtime this blocks:
        // delete the stream through a client and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let deleting = async {
                    let client = async_nats::connect(SERVER).await.ok()?;
                    jetstream::new(client).delete_stream(&name).await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), deleting).await;
            });
        })
        .join();
    }
}

/// Builds a nats sink through the registry, as the host does.
fn nats_sink(options: serde_json::Value) -> Result<Box<dyn Sink>, ConfigError> {
    let registration = rollcall_core::sink_registration("nats").expect("nats is registered");
    (registration.build)(&SinkOptions::new("test-nats", options))
}

fn config_error(options: serde_json::Value) -> ConfigError {
    nats_sink(options).expect_err("the options should be rejected")
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

/// The message's only value of the header `name`, found by its name as sent (the
/// client's `get` with a plain string misses the headers it knows by a constant).
fn header<'a>(message: &'a jetstream::Message, name: &str) -> &'a str {
    let headers = message.headers.as_ref().expect("headers");
    let values: Vec<&str> = headers
        .iter()
        .filter(|(key, _)| AsRef::<str>::as_ref(key) == name)
        .flat_map(|(_, values)| values.iter().map(|value| value.as_str()))
        .collect();
    match values[..] {
        [value] => value,
        _ => panic!("{name}: {values:?} in {headers:?}"),
    }
}

#[tokio::test]
async fn each_event_is_stored_with_its_id_content_type_subject_and_body() {
    let stream = TestStream::create("publish").await;
    let sink = nats_sink(json!({
        "url": SERVER,
        "subject": format!("{}.{{source}}.{{type}}", stream.prefix),
    }))
    .unwrap();
    let created = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HT", r#"{"n":1}"#);
    let mut deleted = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HV", r#"{"n":2}"#);
    deleted.event_type = EventType::Deleted;
    deleted.source = "okta-main".to_owned();
    deleted.content_type = "application/cloudevents+json";

    sink.send(&created).await.unwrap();
    sink.send(&deleted).await.unwrap();

    let messages = stream.messages().await;
    assert_eq!(messages.len(), 2);
    let (first, second) = (&messages[0], &messages[1]);
    assert_eq!(
        first.subject.as_str(),
        format!("{}.test-source.user.created", stream.prefix)
    );
    assert_eq!(header(first, "Nats-Msg-Id"), "01JDX6V3R9M5Q8Z0K2B7C4N1HT");
    assert_eq!(header(first, "Content-Type"), "application/json");
    assert_eq!(first.payload, r#"{"n":1}"#);
    assert_eq!(
        second.subject.as_str(),
        format!("{}.okta-main.user.deleted", stream.prefix)
    );
    assert_eq!(header(second, "Nats-Msg-Id"), "01JDX6V3R9M5Q8Z0K2B7C4N1HV");
    assert_eq!(
        header(second, "Content-Type"),
        "application/cloudevents+json"
    );
    assert_eq!(second.payload, r#"{"n":2}"#);
}

#[tokio::test]
async fn the_same_event_sent_twice_is_stored_once() {
    let stream = TestStream::create("dedup").await;
    let sink = nats_sink(json!({ "subject": format!("{}.{{type}}", stream.prefix) })).unwrap();
    let event = common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HT", r#"{"n":1}"#);

    sink.send(&event).await.unwrap();
    // A retry after a lost acknowledgement: acknowledged again, stored once.
    sink.send(&event).await.unwrap();
    assert_eq!(stream.count().await, 1);

    sink.send(&common::event("01JDX6V3R9M5Q8Z0K2B7C4N1HV", r#"{"n":1}"#))
        .await
        .unwrap();
    assert_eq!(stream.count().await, 2);
}

#[tokio::test]
async fn a_subject_no_stream_captures_is_permanent_and_says_so() {
    // Checks the server is there, so that the error below is about the stream.
    server().await;
    let subject = format!("rollcall-test.{}.nostream", std::process::id());
    let sink =
        nats_sink(json!({ "url": SERVER, "subject": format!("{subject}.{{type}}") })).unwrap();

    let message = permanent(sink.send(&common::event("evt-1", "{}")).await);

    assert!(message.contains("no JetStream stream"), "{message}");
    assert!(
        message.contains(&format!("{subject}.user.created")),
        "{message}"
    );
    assert!(message.contains(&format!("{subject}.>")), "{message}");
}

#[tokio::test]
async fn an_event_larger_than_the_servers_max_payload_is_permanent() {
    let stream = TestStream::create("too_big").await;
    let sink = nats_sink(json!({ "subject": format!("{}.{{type}}", stream.prefix) })).unwrap();
    let body = format!(r#"{{"x":"{}"}}"#, "x".repeat(2 * 1024 * 1024));

    let message = permanent(sink.send(&common::event("evt-1", body)).await);

    assert!(message.contains("max_payload"), "{message}");
    // The connection is still good for the next event.
    sink.send(&common::event("evt-2", "{}")).await.unwrap();
    assert_eq!(stream.count().await, 1);
}

#[tokio::test]
async fn a_message_larger_than_the_streams_limit_is_permanent() {
    let stream = TestStream::create_with("max_msg_size", |config| {
        config.max_message_size = 64;
    })
    .await;
    let sink = nats_sink(json!({ "subject": format!("{}.{{type}}", stream.prefix) })).unwrap();
    let body = format!(r#"{{"x":"{}"}}"#, "x".repeat(100));

    let message = permanent(sink.send(&common::event("evt-1", body)).await);

    assert!(message.contains("JetStream rejected"), "{message}");
    assert_eq!(stream.count().await, 0);
}

#[tokio::test]
async fn a_full_stream_that_discards_new_messages_is_transient() {
    let stream = TestStream::create_with("full", |config| {
        config.max_messages = 1;
        config.discard = stream::DiscardPolicy::New;
    })
    .await;
    let sink = nats_sink(json!({ "subject": format!("{}.{{type}}", stream.prefix) })).unwrap();
    sink.send(&common::event("evt-1", "{}")).await.unwrap();

    // Consumers may free space (or an operator raise the limit): worth retrying.
    let message = transient(sink.send(&common::event("evt-2", "{}")).await);

    assert!(message.contains("did not store"), "{message}");
    assert_eq!(stream.count().await, 1);
}

/// `nats_sink` for a server on `port` with `timeout_seconds`.
fn sink_on_port(port: u16, timeout_seconds: u64) -> Box<dyn Sink> {
    nats_sink(json!({
            "url": format!("nats://127.0.0.1:{port}"),
            "subject": "rollcall.{type}",
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
    let stream = TestStream::create("late_server").await;
    let port = proxy::closed_port();
    let sink = nats_sink(json!({
        "url": format!("nats://127.0.0.1:{port}"),
        "subject": format!("{}.{{type}}", stream.prefix),
        "timeout_seconds": 2,
    }))
    .unwrap();
    let event = common::event("evt-1", "{}");
    transient(sink.send(&event).await);

    let _proxy = Proxy::start_on(port, SocketAddr::from(SERVER_ADDRESS)).await;
    sink.send(&event).await.unwrap();

    assert_eq!(stream.count().await, 1);
}

#[tokio::test]
async fn after_the_connection_drops_the_client_reconnects() {
    let stream = TestStream::create("reconnect").await;
    let proxy = Proxy::start(SocketAddr::from(SERVER_ADDRESS)).await;
    let sink = nats_sink(json!({
        "url": format!("nats://127.0.0.1:{}", proxy.port),
        "subject": format!("{}.{{type}}", stream.prefix),
        "timeout_seconds": 2,
    }))
    .unwrap();
    sink.send(&common::event("evt-1", "{}")).await.unwrap();

    proxy.cut();
    // The host retries a transient failure; within a few seconds one attempt succeeds.
    let event = common::event("evt-2", "{}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match sink.send(&event).await {
            Ok(()) => break,
            Err(error) => {
                assert!(!error.is_permanent(), "{error}");
                assert!(Instant::now() < deadline, "still failing: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // Attempts that timed out may have been stored after all; the id deduplicates them.
    assert_eq!(stream.count().await, 2);
}

/// A NATS server of the test's own, with JetStream and `auth` arguments (`--user`/`--pass`
/// or `--auth`), on a free port; stopped when dropped.
struct AuthServer {
    port: u16,
    child: std::process::Child,
    _store: tempfile::TempDir,
}

impl AuthServer {
    async fn start(auth: &[&str]) -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = proxy::closed_port();
        let child = std::process::Command::new("/usr/sbin/nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .args(auth)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run /usr/sbin/nats-server (Debian's nats-server): {error}")
            });
        let server = Self {
            port,
            child,
            _store: store,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// A stream capturing `auth.>`, created with a client that has the credentials.
    async fn create_stream(&self, options: async_nats::ConnectOptions) -> jetstream::Context {
        let client = options
            .connect(format!("nats://127.0.0.1:{}", self.port))
            .await
            .unwrap();
        let context = jetstream::new(client);
        context
            .create_stream(stream::Config {
                name: "AUTH".to_owned(),
                subjects: vec!["auth.>".to_owned()],
                storage: stream::StorageType::Memory,
                ..Default::default()
            })
            .await
            .unwrap();
        context
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn stored(context: &jetstream::Context) -> u64 {
    let mut stream = context.get_stream("AUTH").await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_user_and_password_in_the_url_authenticate() {
    let server = AuthServer::start(&["--user", "rollcall", "--pass", "p@ss word"]).await;
    let context = server
        .create_stream(async_nats::ConnectOptions::with_user_and_password(
            "rollcall".to_owned(),
            "p@ss word".to_owned(),
        ))
        .await;
    let sink = nats_sink(json!({
        "url": format!("nats://rollcall:p%40ss%20word@127.0.0.1:{}", server.port),
        "subject": "auth.{type}",
        "timeout_seconds": 2,
    }))
    .unwrap();

    sink.send(&common::event("evt-1", "{}")).await.unwrap();
    assert_eq!(stored(&context).await, 1);

    let wrong = nats_sink(json!({
        "url": format!("nats://rollcall:wrong@127.0.0.1:{}", server.port),
        "subject": "auth.{type}",
        "timeout_seconds": 2,
    }))
    .unwrap();
    let message = transient(wrong.send(&common::event("evt-2", "{}")).await);
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains("wrong"), "{message}");
}

#[tokio::test]
async fn a_token_in_the_url_authenticates() {
    let server = AuthServer::start(&["--auth", "s3cr3t-token"]).await;
    let context = server
        .create_stream(async_nats::ConnectOptions::with_token(
            "s3cr3t-token".to_owned(),
        ))
        .await;
    let sink = nats_sink(json!({
        "url": format!("nats://s3cr3t-token@127.0.0.1:{}", server.port),
        "subject": "auth.{type}",
    }))
    .unwrap();

    sink.send(&common::event("evt-1", "{}")).await.unwrap();

    assert_eq!(stored(&context).await, 1);
}

#[test]
fn the_subject_is_required_and_checked() {
    assert_eq!(config_error(json!({})).key, "subject");
    for bad in [
        "",
        "rollcall.{kind}",
        "rollcall.{type",
        "rollcall..{type}",
        "rollcall.*",
        "rollcall.>",
        "rollcall {type}",
        ".rollcall",
    ] {
        let error = config_error(json!({ "subject": bad }));
        assert_eq!(error.key, "subject", "{bad:?}");
    }
}

#[test]
fn the_url_must_be_a_nats_or_tls_url() {
    for bad in [
        "127.0.0.1:4222",
        "http://127.0.0.1:4222",
        "ws://127.0.0.1:4222",
        "nats://",
        "nats://exa mple",
    ] {
        let error = config_error(json!({ "url": bad, "subject": "s" }));
        assert_eq!(error.key, "url", "{bad:?}");
    }
    assert!(nats_sink(json!({ "url": "tls://nats.example.com:4222", "subject": "s" })).is_ok());
}

#[test]
fn the_timeout_is_between_one_second_and_an_hour() {
    for bad in [0, 3601] {
        let error = config_error(json!({ "subject": "s", "timeout_seconds": bad }));
        assert_eq!(error.key, "timeout_seconds");
    }
}

#[test]
fn an_unknown_option_is_rejected() {
    let error = config_error(json!({ "subject": "s", "stream": "ROLLCALL" }));
    assert!(error.message.contains("stream"), "{error}");
}

#[test]
fn debug_output_shows_no_credentials() {
    let sink = nats_sink(json!({
        "url": "nats://rollcall:hunter2@nats.example.com:4222",
        "subject": "rollcall.{type}",
    }))
    .unwrap();
    let shown = format!("{sink:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("rollcall:"), "{shown}");
    assert!(shown.contains("nats://nats.example.com:4222"), "{shown}");
}
