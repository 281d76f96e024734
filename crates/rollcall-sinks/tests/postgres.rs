//! The postgres sink against the real local PostgreSQL server.
//!
//! The server is `postgres://postgres@127.0.0.1:5432/test` unless
//! `ROLLCALL_TEST_POSTGRES_URL` names another. Each test works in its own schema, named
//! after the process id and the test, and drops it at the end. A server that cannot be
//! reached fails the tests, saying how to start it: they never pass by skipping.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rollcall_core::{
    ConfigError, EventType, Format, OutboundEvent, Sink, SinkError, SinkOptions, Timestamp, User,
    UserEvent, UserStatus, VendorEvent,
};
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn server_url() -> String {
    std::env::var("ROLLCALL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A connection for the test itself: to set up, read back and clean up.
async fn admin() -> Client {
    let url = server_url();
    let (client, connection) = match tokio_postgres::connect(&url, NoTls).await {
        Ok(connected) => connected,
        Err(error) => panic!(
            "PostgreSQL is not reachable at {url}: {error:?}\n\
             These tests need a real server. Start the local one with\n  \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             and check it with `pg_isready -h 127.0.0.1`, or point ROLLCALL_TEST_POSTGRES_URL \
             at another (trust auth, a database the role may create schemas in)."
        ),
    };
    tokio::spawn(connection);
    client
}

/// A schema of the test's own, dropped (with its tables) when the test ends, pass or fail.
struct Schema {
    name: String,
}

impl Schema {
    async fn new(test: &str) -> Self {
        let name = format!("rollcall_test_{}_{test}", std::process::id());
        admin()
            .await
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .await
            .unwrap();
        Self { name }
    }

    fn events(&self) -> String {
        format!("\"{}\".user_events", self.name)
    }

    fn users(&self) -> String {
        format!("\"{}\".users", self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: clean up from a
        // thread with a runtime of its own.
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { admin().await.batch_execute(&sql).await.unwrap() });
        });
        if cleanup.join().is_err() && !std::thread::panicking() {
            panic!("could not drop schema {}", self.name);
        }
    }
}

/// Builds a postgres sink through the registry, as the host does.
fn postgres_sink(options: Value) -> Result<Box<dyn Sink>, ConfigError> {
    let registration =
        rollcall_core::sink_registration("postgres").expect("postgres is registered");
    (registration.build)(&SinkOptions::new("test-postgres", options))
}

fn sink_in(schema: &Schema) -> Box<dyn Sink> {
    postgres_sink(json!({ "url": server_url(), "schema": schema.name })).unwrap()
}

fn config_error(options: Value) -> ConfigError {
    postgres_sink(options).expect_err("the options should be rejected")
}

/// An event for `user` received at `millis` past a fixed instant, rendered in `format`.
/// Ids are ULID-shaped and sort with `n`.
fn user_event(
    n: u32,
    event_type: EventType,
    user: User,
    millis: i64,
    format: Format,
) -> OutboundEvent {
    let event = UserEvent {
        id: format!("01JDX6V3R9M5Q8Z0K2B7C4N{n:03}"),
        event_type,
        source: "zendesk-acme".to_owned(),
        connector: "zendesk".to_owned(),
        vendor_event: VendorEvent {
            id: Some(format!("vendor-{n}")),
            event_type: "zen:event-type:user.changed".to_owned(),
            occurred_at: None,
        },
        received_at: Timestamp::from_unix_millis(1_795_237_200_000 + millis).unwrap(),
        actor: None,
        user,
        previous: None,
        changes: None,
        partial: false,
    };
    OutboundEvent::render(&event, format).unwrap()
}

fn user(name: &str, status: UserStatus) -> User {
    User {
        name: Some(name.to_owned()),
        status: Some(status),
        ..User::with_id("14")
    }
}

/// The events table, oldest first: (event_id, type, source, user_id, received_at ms, event).
async fn events(schema: &Schema) -> Vec<(String, String, String, String, i64, Value)> {
    admin()
        .await
        .query(
            &format!(
                "SELECT event_id, type, source, user_id, \
                 (extract(epoch FROM received_at) * 1000)::int8, event \
                 FROM {} ORDER BY event_id",
                schema.events()
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            )
        })
        .collect()
}

/// A user's row: (user, status, deleted, updated_at ms, last_event_id).
#[derive(Debug, PartialEq)]
struct UserRow {
    user: Value,
    status: Option<String>,
    deleted: bool,
    updated_at: i64,
    last_event_id: String,
}

async fn users(schema: &Schema) -> Vec<(String, String, UserRow)> {
    admin()
        .await
        .query(
            &format!(
                "SELECT source, user_id, \"user\", status, deleted, \
                 (extract(epoch FROM updated_at) * 1000)::int8, last_event_id \
                 FROM {} ORDER BY source, user_id",
                schema.users()
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                UserRow {
                    user: row.get(2),
                    status: row.get(3),
                    deleted: row.get(4),
                    updated_at: row.get(5),
                    last_event_id: row.get(6),
                },
            )
        })
        .collect()
}

fn body_json(event: &OutboundEvent) -> Value {
    serde_json::from_slice(&event.body).unwrap()
}

fn user_json(user: &User) -> Value {
    serde_json::to_value(user).unwrap()
}

fn row_of(event: &OutboundEvent, user: &User, deleted: bool) -> UserRow {
    UserRow {
        user: user_json(user),
        status: user.status.as_ref().map(ToString::to_string),
        deleted,
        updated_at: event.received_at.unix_millis(),
        last_event_id: event.event_id.clone(),
    }
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
async fn created_updated_deleted_fill_the_events_and_leave_the_latest_user() {
    let schema = Schema::new("lifecycle").await;
    let sink = sink_in(&schema);
    let created_user = user("Raja H", UserStatus::Active);
    let updated_user = user("Raja Hussain", UserStatus::Inactive);
    let deleted_user = user("Raja Hussain", UserStatus::Deleted);
    let created = user_event(
        1,
        EventType::Created,
        created_user.clone(),
        0,
        Format::Native,
    );
    let updated = user_event(
        2,
        EventType::Updated,
        updated_user.clone(),
        1_000,
        Format::Native,
    );
    let deleted = user_event(
        3,
        EventType::Deleted,
        deleted_user.clone(),
        2_000,
        Format::Native,
    );

    sink.send(&created).await.unwrap();
    assert_eq!(
        users(&schema).await,
        vec![(
            "zendesk-acme".to_owned(),
            "14".to_owned(),
            row_of(&created, &created_user, false)
        )]
    );
    sink.send(&updated).await.unwrap();
    assert_eq!(
        users(&schema).await[0].2,
        row_of(&updated, &updated_user, false)
    );
    sink.send(&deleted).await.unwrap();
    assert_eq!(
        users(&schema).await,
        vec![(
            "zendesk-acme".to_owned(),
            "14".to_owned(),
            row_of(&deleted, &deleted_user, true)
        )]
    );

    let rows = events(&schema).await;
    let expected: Vec<_> = [
        (&created, "user.created"),
        (&updated, "user.updated"),
        (&deleted, "user.deleted"),
    ]
    .into_iter()
    .map(|(event, kind)| {
        (
            event.event_id.clone(),
            kind.to_owned(),
            "zendesk-acme".to_owned(),
            "14".to_owned(),
            event.received_at.unix_millis(),
            body_json(event),
        )
    })
    .collect();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn the_same_event_twice_leaves_one_row_even_across_restarts() {
    let schema = Schema::new("twice").await;
    let first_user = user("Raja H", UserStatus::Active);
    let event = user_event(1, EventType::Created, first_user.clone(), 0, Format::Native);

    let sink = sink_in(&schema);
    sink.send(&event).await.unwrap();
    sink.send(&event).await.unwrap();
    // A restarted rollcall redelivers what it had not yet marked delivered.
    drop(sink);
    sink_in(&schema).send(&event).await.unwrap();

    let rows = events(&schema).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, event.event_id);
    assert_eq!(
        users(&schema).await[0].2,
        row_of(&event, &first_user, false)
    );
}

#[tokio::test]
async fn an_older_event_after_a_newer_one_does_not_roll_the_user_back() {
    let schema = Schema::new("stale").await;
    let sink = sink_in(&schema);
    let old_user = user("Raja H", UserStatus::Active);
    let new_user = user("Raja Hussain", UserStatus::Inactive);
    let older = user_event(1, EventType::Created, old_user.clone(), 0, Format::Native);
    let newer = user_event(
        2,
        EventType::Updated,
        new_user.clone(),
        5_000,
        Format::Native,
    );

    sink.send(&newer).await.unwrap();
    sink.send(&older).await.unwrap();
    assert_eq!(users(&schema).await[0].2, row_of(&newer, &new_user, false));
    // The stale event is still a fact: it is in the events table.
    assert_eq!(events(&schema).await.len(), 2);

    // Received in the same millisecond: the event id decides.
    let tie_low = user_event(
        3,
        EventType::Updated,
        old_user.clone(),
        9_000,
        Format::Native,
    );
    let tie_high = user_event(
        4,
        EventType::Updated,
        new_user.clone(),
        9_000,
        Format::Native,
    );
    sink.send(&tie_high).await.unwrap();
    sink.send(&tie_low).await.unwrap();
    assert_eq!(
        users(&schema).await[0].2,
        row_of(&tie_high, &new_user, false)
    );

    // A newer event applies again.
    let newest = user_event(
        5,
        EventType::Updated,
        old_user.clone(),
        10_000,
        Format::Native,
    );
    sink.send(&newest).await.unwrap();
    assert_eq!(users(&schema).await[0].2, row_of(&newest, &old_user, false));
}

#[tokio::test]
async fn cloudevents_bodies_are_stored_whole_and_their_data_drives_the_user() {
    let schema = Schema::new("cloudevents").await;
    let sink = sink_in(&schema);
    let created_user = user("Raja H", UserStatus::Active);
    let deleted_user = user("Raja H", UserStatus::Deleted);
    let created = user_event(1, EventType::Created, created_user, 0, Format::Cloudevents);
    let deleted = user_event(
        2,
        EventType::Deleted,
        deleted_user.clone(),
        1_000,
        Format::Cloudevents,
    );
    assert_eq!(body_json(&created)["specversion"], "1.0");

    sink.send(&created).await.unwrap();
    sink.send(&deleted).await.unwrap();

    let rows = events(&schema).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].1, "user.deleted");
    assert_eq!(rows[1].3, "14");
    assert_eq!(rows[1].5, body_json(&deleted));
    assert_eq!(rows[1].5["data"]["user"]["id"], "14");
    assert_eq!(
        users(&schema).await,
        vec![(
            "zendesk-acme".to_owned(),
            "14".to_owned(),
            row_of(&deleted, &deleted_user, true)
        )]
    );
}

#[tokio::test]
async fn the_same_user_id_under_two_sources_is_two_users() {
    let schema = Schema::new("sources").await;
    let sink = sink_in(&schema);
    let mut other = user_event(
        1,
        EventType::Created,
        user("A", UserStatus::Active),
        0,
        Format::Native,
    );
    other.source = "zendesk-other".to_owned();
    sink.send(&other).await.unwrap();
    sink.send(&user_event(
        2,
        EventType::Created,
        user("B", UserStatus::Invited),
        0,
        Format::Native,
    ))
    .await
    .unwrap();

    let rows = users(&schema).await;
    let keys: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .map(|(source, id, row)| (source.as_str(), id.as_str(), row.status.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            ("zendesk-acme", "14", Some("invited")),
            ("zendesk-other", "14", Some("active"))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_create_the_tables_once_and_all_write() {
    let schema = Schema::new("replicas").await;
    let mut senders = Vec::new();
    for n in 0..6 {
        let sink: Arc<dyn Sink> = Arc::from(sink_in(&schema));
        senders.push(tokio::spawn(async move {
            let event = user_event(
                n,
                EventType::Created,
                User::with_id(format!("u{n}")),
                0,
                Format::Native,
            );
            sink.send(&event).await
        }));
    }
    for sender in senders {
        assert_eq!(sender.await.unwrap(), Ok(()));
    }
    assert_eq!(events(&schema).await.len(), 6);
    assert_eq!(users(&schema).await.len(), 6);
}

#[tokio::test]
async fn a_connection_the_server_ends_is_replaced() {
    let schema = Schema::new("reconnect").await;
    let application = format!("rollcall_test_{}_reconnect", std::process::id());
    let separator = if server_url().contains('?') { '&' } else { '?' };
    let sink = postgres_sink(json!({
        "url": format!("{}{separator}application_name={application}", server_url()),
        "schema": schema.name,
    }))
    .unwrap();
    let first = user_event(
        1,
        EventType::Created,
        user("A", UserStatus::Active),
        0,
        Format::Native,
    );
    sink.send(&first).await.unwrap();

    let ended: i64 = admin()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&application],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);

    let second = user_event(
        2,
        EventType::Updated,
        user("B", UserStatus::Active),
        1_000,
        Format::Native,
    );
    // The first attempt may find the dead connection (transient); a retry reconnects.
    if let Err(error) = sink.send(&second).await {
        assert!(!error.is_permanent(), "{error:?}");
        sink.send(&second).await.unwrap();
    }
    assert_eq!(events(&schema).await.len(), 2);
    assert_eq!(users(&schema).await[0].2.last_event_id, second.event_id);
}

#[tokio::test]
async fn a_missing_server_is_transient_and_the_password_stays_out_of_the_message() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sink = postgres_sink(json!({
        "url": format!("postgres://rollcall:hunter2@127.0.0.1:{port}/rollcall"),
        "timeout_seconds": 5,
    }))
    .unwrap();
    let event = user_event(
        1,
        EventType::Created,
        user("A", UserStatus::Active),
        0,
        Format::Native,
    );

    let message = transient(sink.send(&event).await);
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    // Still transient on the next attempt: the sink reconnects each time.
    transient(sink.send(&event).await);
    let debug = format!("{sink:?}");
    assert!(debug.contains("rollcall@127.0.0.1"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[tokio::test]
async fn without_create_tables_a_missing_table_is_permanent() {
    let schema = Schema::new("nocreate").await;
    let sink = postgres_sink(json!({
        "url": server_url(),
        "schema": schema.name,
        "create_tables": false,
    }))
    .unwrap();
    let event = user_event(
        1,
        EventType::Created,
        user("A", UserStatus::Active),
        0,
        Format::Native,
    );

    let message = permanent(sink.send(&event).await);
    assert!(message.contains("42P01"), "{message}");

    // Tables created by someone else (a migration) are used as they are, even with
    // `json` and `timestamp` columns and columns of their own.
    admin()
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA \"{name}\";
             CREATE TABLE {events} (event_id TEXT PRIMARY KEY, type TEXT, source TEXT,
                 user_id TEXT, received_at TIMESTAMP, event JSON,
                 loaded_at TIMESTAMPTZ DEFAULT now());
             CREATE TABLE {users} (source TEXT, user_id TEXT, \"user\" JSON, status TEXT,
                 deleted BOOLEAN, updated_at TIMESTAMP, last_event_id TEXT,
                 PRIMARY KEY (source, user_id));",
            name = schema.name,
            events = schema.events(),
            users = schema.users(),
        ))
        .await
        .unwrap();
    sink.send(&event).await.unwrap();
    let second = user_event(
        2,
        EventType::Updated,
        user("B", UserStatus::Active),
        1_000,
        Format::Native,
    );
    sink.send(&second).await.unwrap();
    assert_eq!(events(&schema).await.len(), 2);
}

#[tokio::test]
async fn a_body_that_is_not_a_rendered_event_is_permanent() {
    let schema = Schema::new("malformed").await;
    let sink = sink_in(&schema);
    let mut event = user_event(
        1,
        EventType::Created,
        user("A", UserStatus::Active),
        0,
        Format::Native,
    );
    for body in [
        "not json",
        r#"{"id":"x","type":"user.created"}"#,
        r#"{"specversion":"1.0","data":"x"}"#,
    ] {
        event.body = body.to_owned().into();
        permanent(sink.send(&event).await);
    }
    // A JSON string PostgreSQL cannot store (NUL) is the event's fault too.
    event.body = json!({ "user": { "id": "14", "name": "a\u{0}b" } })
        .to_string()
        .into();
    let message = permanent(sink.send(&event).await);
    assert!(message.contains("22P05"), "{message}");
    assert!(events(&schema).await.is_empty());
}

#[test]
fn a_bad_identifier_is_a_config_error_naming_its_key() {
    let url = server_url();
    for key in ["schema", "events_table", "users_table"] {
        for bad in ["", "bad-name", "x\"; DROP TABLE users; --", "9lives"] {
            let error = config_error(json!({ "url": url, key: bad }));
            assert_eq!(error.key, key, "{bad:?}");
        }
    }
    let same = config_error(json!({ "url": url, "events_table": "t", "users_table": "t" }));
    assert_eq!(same.key, "users_table");
}

#[test]
fn the_options_are_checked_when_the_sink_is_built_without_connecting() {
    assert_eq!(config_error(json!({})).key, "url");
    let unknown = config_error(json!({ "url": server_url(), "table": "x" }));
    assert_eq!(unknown.key, "table");
    assert_eq!(
        config_error(json!({ "url": server_url(), "timeout_seconds": 0 })).key,
        "timeout_seconds"
    );
    assert_eq!(
        config_error(json!({ "url": server_url(), "create_tables": "yes" })).key,
        "create_tables"
    );
    let tls = config_error(json!({ "url": "postgres://a:hunter2@127.0.0.1/db?sslmode=require" }));
    assert_eq!(tls.key, "url");
    assert!(!tls.to_string().contains("hunter2"), "{tls}");
    // Nothing listens on port 1: building must still succeed.
    assert!(postgres_sink(json!({ "url": "postgres://a:hunter2@127.0.0.1:1/db" })).is_ok());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    // The kernel accepts the connection into the backlog; nobody ever reads or answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = postgres_sink(json!({
        "url": format!("postgres://rollcall@127.0.0.1:{port}/rollcall?connect_timeout=30"),
        "timeout_seconds": 1,
    }))
    .unwrap();
    let event = user_event(
        1,
        EventType::Created,
        user("A", UserStatus::Active),
        0,
        Format::Native,
    );

    let started = std::time::Instant::now();
    let message = transient(sink.send(&event).await);
    assert!(message.contains("within 1s"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(listener);
}
