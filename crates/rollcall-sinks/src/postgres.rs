//! `postgres`: every event as a row, and every user's current state as a row.
//!
//! Two tables in one schema:
//!
//! * the events table, one row per event (`event_id` is the primary key, the whole rendered
//!   event in `event JSONB`);
//! * the users table, one row per `(source, user_id)` holding the event's `user` as it stands
//!   after the latest event applied, its `status`, a `deleted` flag, and which event set it.
//!
//! Each send is one transaction: the event row is inserted with `ON CONFLICT (event_id) DO
//! NOTHING`, so at-least-once delivery never duplicates a row, and the user row is upserted
//! only when the event is not older than the one the row holds (received time, then event
//! id: rollcall's ULIDs sort by time), so a redelivered old event never rolls a user back.
//!
//! * Nothing connects when the sink is built (`rollcall config check` builds sinks and must
//!   not need the server). The first send connects, creates the schema and tables when
//!   `create_tables` is on, and prepares the two statements. Any failure drops the
//!   connection; the next send connects afresh.
//! * The body is the rendered event: the `UserEvent` envelope, or with `format =
//!   "cloudevents"` a CloudEvent whose `data` is the envelope. Both are read.
//! * No TLS is compiled in: the URL must not ask for it (`sslmode=require`).
//!
//! | failure | outcome |
//! |---|---|
//! | cannot connect (refused, DNS, authentication, no such database), connection lost, timeout | transient |
//! | SQLSTATE class 08 (connection), 40 (serialization failure, deadlock), 53 (insufficient resources), 57 (operator intervention), 58 (system error), `55P03` (lock not available) | transient |
//! | a body that is not a rendered event | permanent |
//! | any other SQLSTATE: 42 (undefined table, permission denied), 23 (constraint), 22 (data) | permanent |

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use rollcall_core::{
    ConfigError, EventType, OutboundEvent, Secret, Sink, SinkError, SinkOptions, SinkRegistration,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, NoTls, Statement};

/// The `type` of a `[[sinks]]` table.
pub const KIND: &str = "postgres";

pub const DEFAULT_SCHEMA: &str = "rollcall";
pub const DEFAULT_EVENTS_TABLE: &str = "user_events";
pub const DEFAULT_USERS_TABLE: &str = "users";
/// Connecting, setting up and the transaction must all finish within this by default.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// The longest timeout an option may ask for.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// PostgreSQL cuts longer identifiers silently; a name is rejected instead.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Serializes table creation between rollcall replicas sharing a database, so two first
/// sends never race on `CREATE ... IF NOT EXISTS` (which can fail on a unique catalog key).
/// The bytes of "rollcall" as a big-endian integer.
const SETUP_LOCK_KEY: i64 = 0x726f_6c6c_6361_6c6c;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PostgresOptions {
    /// Optional only so that its absence is reported under its own key. A secret: it may
    /// carry a password.
    #[serde(default)]
    url: Option<Secret>,
    #[serde(default = "default_schema")]
    schema: String,
    #[serde(default = "default_events_table")]
    events_table: String,
    #[serde(default = "default_users_table")]
    users_table: String,
    #[serde(default = "default_create_tables")]
    create_tables: bool,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_owned()
}

fn default_events_table() -> String {
    DEFAULT_EVENTS_TABLE.to_owned()
}

fn default_users_table() -> String {
    DEFAULT_USERS_TABLE.to_owned()
}

const fn default_create_tables() -> bool {
    true
}

const fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// Writes each event, and the user it leaves behind, to PostgreSQL.
pub struct PostgresSink {
    sink_id: String,
    config: tokio_postgres::Config,
    /// `user@host:port/dbname`, never the password: for Debug and error messages.
    target: String,
    sql: Sql,
    create_tables: bool,
    timeout: Duration,
    session: Mutex<Option<Session>>,
}

impl fmt::Debug for PostgresSink {
    // The URL's password is a secret; `target` never holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSink")
            .field("sink_id", &self.sink_id)
            .field("target", &self.target)
            .field("events_table", &self.sql.events_table)
            .field("users_table", &self.sql.users_table)
            .field("create_tables", &self.create_tables)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The statements, with the configured names quoted in.
#[derive(Debug)]
struct Sql {
    /// `"schema"."table"`, also what `to_regclass` reads.
    events_table: String,
    users_table: String,
    /// Run as one simple query: one implicit transaction, rolled back whole on an error.
    create: String,
    insert_event: String,
    upsert_user: String,
}

impl Sql {
    fn new(schema: &str, events_table: &str, users_table: &str) -> Self {
        let events = format!("\"{schema}\".\"{events_table}\"");
        let users = format!("\"{schema}\".\"{users_table}\"");
        let create = format!(
            r#"SELECT pg_advisory_xact_lock({SETUP_LOCK_KEY});
CREATE SCHEMA IF NOT EXISTS "{schema}";
CREATE TABLE IF NOT EXISTS {events} (
    event_id    TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    source      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    event       JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS "{events_table}_user_idx" ON {events} (source, user_id, received_at);
CREATE TABLE IF NOT EXISTS {users} (
    source        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    "user"        JSONB NOT NULL,
    status        TEXT,
    deleted       BOOLEAN NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_event_id TEXT NOT NULL,
    PRIMARY KEY (source, user_id)
);"#
        );
        // Casts fix the parameter types, so tables created by hand with `json` or
        // `timestamp` columns still take the values (the server converts on assignment).
        let insert_event = format!(
            "INSERT INTO {events} (event_id, type, source, user_id, received_at, event) \
             VALUES ($1::text, $2::text, $3::text, $4::text, $5::timestamptz, $6::jsonb) \
             ON CONFLICT (event_id) DO NOTHING"
        );
        // `COLLATE "C"`: event ids compare byte by byte, as ULIDs sort, whatever the
        // database's collation.
        let upsert_user = format!(
            "INSERT INTO {users} AS known \
             (source, user_id, \"user\", status, deleted, updated_at, last_event_id) \
             VALUES ($1::text, $2::text, $3::jsonb, $4::text, $5::boolean, $6::timestamptz, $7::text) \
             ON CONFLICT (source, user_id) DO UPDATE SET \
             \"user\" = EXCLUDED.\"user\", status = EXCLUDED.status, deleted = EXCLUDED.deleted, \
             updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id \
             WHERE (known.updated_at, known.last_event_id COLLATE \"C\") \
             <= (EXCLUDED.updated_at, EXCLUDED.last_event_id COLLATE \"C\")"
        );
        Self {
            events_table: events,
            users_table: users,
            create,
            insert_event,
            upsert_user,
        }
    }
}

/// An open connection with its statements prepared.
struct Session {
    client: Client,
    insert_event: Statement,
    upsert_user: Statement,
    /// Dropped after `client`.
    _connection: ConnectionTask,
}

/// The task that drives a connection, aborted when dropped: neither a failure nor a
/// timeout leaves one behind waiting on a server that does not answer.
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PostgresSink {
    /// Reads and checks the options. Nothing connects until the first event.
    pub fn from_options(options: &SinkOptions) -> Result<Self, ConfigError> {
        let parsed: PostgresOptions = options.parse()?;
        let url = parsed.url.ok_or_else(|| {
            ConfigError::new(
                "url",
                "required: the database, as postgres://user[:password]@host[:port]/dbname",
            )
        })?;
        let timeout = seconds("timeout_seconds", parsed.timeout_seconds)?;
        let config = parse_url(&url, timeout)?;
        identifier("schema", &parsed.schema)?;
        identifier("events_table", &parsed.events_table)?;
        identifier("users_table", &parsed.users_table)?;
        if parsed.events_table == parsed.users_table {
            return Err(ConfigError::new(
                "users_table",
                "must differ from events_table",
            ));
        }
        Ok(Self {
            sink_id: options.sink_id.clone(),
            target: target(&config),
            config,
            sql: Sql::new(&parsed.schema, &parsed.events_table, &parsed.users_table),
            create_tables: parsed.create_tables,
            timeout,
            session: Mutex::new(None),
        })
    }

    /// Connects, creates the tables when asked to, and prepares the statements.
    async fn open(&self) -> Result<Session, SinkError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|error| {
            SinkError::transient(format!(
                "cannot connect to {}: {}",
                self.target,
                describe(&error)
            ))
        })?;
        let sink_id = self.sink_id.clone();
        let connection = ConnectionTask(tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(sink = %sink_id, error = %describe(&error), "postgres connection ended");
            }
        }));
        if self.create_tables {
            self.create_tables(&client).await?;
        }
        let insert_event = client
            .prepare(&self.sql.insert_event)
            .await
            .map_err(|error| failed("cannot prepare the event insert", &error))?;
        let upsert_user = client
            .prepare(&self.sql.upsert_user)
            .await
            .map_err(|error| failed("cannot prepare the user upsert", &error))?;
        Ok(Session {
            client,
            insert_event,
            upsert_user,
            _connection: connection,
        })
    }

    /// Creates the schema, the tables and the index unless both tables exist (so a role
    /// without `CREATE` works once the tables are there).
    async fn create_tables(&self, client: &Client) -> Result<(), SinkError> {
        let exists = client
            .query_one(
                "SELECT to_regclass($1::text) IS NOT NULL AND to_regclass($2::text) IS NOT NULL",
                &[&self.sql.events_table, &self.sql.users_table],
            )
            .await
            .and_then(|row| row.try_get::<_, bool>(0))
            .map_err(|error| failed("cannot look for the tables", &error))?;
        if exists {
            return Ok(());
        }
        client
            .batch_execute(&self.sql.create)
            .await
            .map_err(|error| failed("cannot create the tables", &error))
    }

    /// Writes one event in one transaction, opening a session first if there is none.
    async fn write(
        &self,
        session: &mut Option<Session>,
        event: &OutboundEvent,
        row: &EventRow<'_>,
    ) -> Result<Written, SinkError> {
        let session = match session {
            Some(session) => session,
            empty => empty.insert(self.open().await?),
        };
        let transaction = session
            .client
            .transaction()
            .await
            .map_err(|error| failed("cannot begin the transaction", &error))?;
        let received_at = event.received_at.into_inner();
        transaction
            .execute(
                &session.insert_event,
                &[
                    &event.event_id,
                    &event.event_type.as_str(),
                    &event.source,
                    &row.user_id,
                    &received_at,
                    &row.document,
                ],
            )
            .await
            .map_err(|error| failed("cannot insert the event", &error))?;
        let applied = transaction
            .execute(
                &session.upsert_user,
                &[
                    &event.source,
                    &row.user_id,
                    row.user,
                    &row.status,
                    &(event.event_type == EventType::Deleted),
                    &received_at,
                    &event.event_id,
                ],
            )
            .await
            .map_err(|error| failed("cannot upsert the user", &error))?;
        transaction
            .commit()
            .await
            .map_err(|error| failed("cannot commit", &error))?;
        Ok(if applied == 0 {
            Written::Stale
        } else {
            Written::Applied
        })
    }
}

/// Whether the user row took the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Applied,
    /// The row already holds a later event: only the event row was written (or was there).
    Stale,
}

#[async_trait::async_trait]
impl Sink for PostgresSink {
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let document: Value = serde_json::from_slice(&event.body).map_err(|error| {
            SinkError::permanent(format!("the event body is not JSON: {error}"))
        })?;
        let result = match EventRow::read(&document) {
            Ok(row) => {
                let mut session = self.session.lock().await;
                let written =
                    tokio::time::timeout(self.timeout, self.write(&mut session, event, &row))
                        .await
                        .unwrap_or_else(|_| {
                            Err(SinkError::transient(format!(
                                "not written within {}s",
                                self.timeout.as_secs()
                            )))
                        });
                if written.is_err() {
                    // Whatever state the connection is in, the next send starts afresh.
                    *session = None;
                }
                written
            }
            Err(error) => Err(error),
        };
        match &result {
            Ok(written) => {
                tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, ?written, "delivered")
            }
            Err(error) => {
                tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, %error, "not delivered")
            }
        }
        result.map(|_| ())
    }
}

/// What the rows need from the rendered event.
#[derive(Debug)]
struct EventRow<'a> {
    /// The whole rendered event, stored as is.
    document: &'a Value,
    user: &'a Value,
    user_id: &'a str,
    status: Option<&'a str>,
}

impl<'a> EventRow<'a> {
    /// Finds the envelope (the document itself, or a CloudEvent's `data`) and its user.
    fn read(document: &'a Value) -> Result<Self, SinkError> {
        let malformed = |what: &str| {
            SinkError::permanent(format!("the event body is not a rendered event: {what}"))
        };
        if !document.is_object() {
            return Err(malformed("not a JSON object"));
        }
        let envelope = if document.get("specversion").is_some() {
            document
                .get("data")
                .filter(|data| data.is_object())
                .ok_or_else(|| malformed("a CloudEvent without an object in `data`"))?
        } else {
            document
        };
        let user = envelope
            .get("user")
            .filter(|user| user.is_object())
            .ok_or_else(|| malformed("no `user` object"))?;
        let user_id = user
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| malformed("no `user.id` string"))?;
        Ok(Self {
            document,
            user,
            user_id,
            status: user.get("status").and_then(Value::as_str),
        })
    }
}

/// SQLSTATE classes (and single codes) a later attempt can get past.
fn is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || code == "55P03"
}

/// A failure after connecting: transient unless the server answered with a SQLSTATE that
/// no retry will change.
fn failed(what: &str, error: &tokio_postgres::Error) -> SinkError {
    let message = format!("{what}: {}", describe(error));
    match error.code() {
        Some(code) if !is_transient(code.code()) => SinkError::permanent(message),
        _ => SinkError::transient(message),
    }
}

/// The error without anything a row could put in it: for a server error, its severity,
/// SQLSTATE and message but not its `DETAIL` (which can quote the row, user data
/// included); otherwise the error and its causes.
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// A `postgres://` URL into a connection config, without TLS.
fn parse_url(url: &Secret, timeout: Duration) -> Result<tokio_postgres::Config, ConfigError> {
    let text = url.expose().trim();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(ConfigError::new(
            "url",
            "must be a postgres:// URL: postgres://user[:password]@host[:port]/dbname",
        ));
    }
    // In URL form the parser's messages name options, never values, so the password stays
    // out of them.
    let mut config = tokio_postgres::Config::from_str(text).map_err(|error| {
        ConfigError::new(
            "url",
            format!("not a valid PostgreSQL URL: {}", describe(&error)),
        )
    })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(ConfigError::new("url", "has no host"));
    }
    if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
        return Err(ConfigError::new(
            "url",
            "asks for TLS (sslmode), but this build of rollcall has no TLS compiled in",
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("rollcall");
    }
    Ok(config)
}

/// `user@host:port/dbname` (hosts comma-separated), without the password.
fn target(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |index: usize| ports.get(index).or(ports.first()).copied().unwrap_or(5432);
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(index, address)| format!("{address}:{}", port(index)))
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(index, host)| match host {
                Host::Tcp(name) => format!("{name}:{}", port(index)),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}", path.display()),
            })
            .collect()
    };
    let user = config.get_user().unwrap_or("");
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{user}@{}/{dbname}", hosts.join(","))
}

/// Letters, digits and `_`, not starting with a digit, at most 63 bytes: safe to quote
/// into SQL and the same name PostgreSQL will keep.
fn identifier(key: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_IDENTIFIER_BYTES
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|first| !first.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!(
                "must be 1 to {MAX_IDENTIFIER_BYTES} ASCII letters, digits and `_`, \
                 not starting with a digit"
            ),
        ))
    }
}

fn seconds(key: &str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 || value > MAX_TIMEOUT_SECONDS {
        return Err(ConfigError::new(
            key,
            format!("must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"),
        ));
    }
    Ok(Duration::from_secs(value))
}

fn build(options: &SinkOptions) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(PostgresSink::from_options(options)?))
}

const EXAMPLE_CONFIG: &str = r#"[[sinks]]
id = "warehouse"
type = "postgres"
# No TLS is compiled in: a local server, or a TLS-terminating proxy in front.
url = "postgres://rollcall:${ROLLCALL_PG_PASSWORD}@127.0.0.1:5432/rollcall"
# Optional. Where the two tables live; letters, digits and `_`.
schema = "rollcall"
events_table = "user_events"
users_table = "users"
# Optional. Create the schema and tables on the first event (needs CREATE rights once).
create_tables = true
# Optional. Connecting, setting up and writing one event, in seconds.
timeout_seconds = 10
"#;

rollcall_core::inventory::submit! {
    SinkRegistration {
        kind: KIND,
        description: "an events table and a current-users table in PostgreSQL, idempotent by event id",
        build,
        example_config: EXAMPLE_CONFIG,
        options_schema: Some(rollcall_core::options_schema::<PostgresOptions>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<tokio_postgres::Config, ConfigError> {
        parse_url(&Secret::new(text), Duration::from_secs(10))
    }

    #[test]
    fn transient_sqlstates_are_the_retryable_classes() {
        for code in [
            "08006", "08001", "40001", "40P01", "53300", "57P01", "57014", "58030",
        ] {
            assert!(is_transient(code), "{code}");
        }
        assert!(is_transient("55P03"));
        for code in [
            "42P01", "42501", "23505", "23502", "22P02", "22P05", "55000", "XX000",
        ] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn identifiers_are_plain_names() {
        for name in ["rollcall", "user_events", "Users2", "_x", &"a".repeat(63)] {
            assert!(identifier("schema", name).is_ok(), "{name}");
        }
        for name in [
            "",
            "1users",
            "user-events",
            "a.b",
            "a\"b",
            "users; DROP TABLE x",
            "naïve",
            &"a".repeat(64),
        ] {
            let error = identifier("schema", name).unwrap_err();
            assert_eq!(error.key, "schema", "{name}");
        }
    }

    #[test]
    fn the_target_never_shows_the_password() {
        let config = url("postgres://alice:hunter2@db.internal:6543/rollcall").unwrap();
        assert_eq!(target(&config), "alice@db.internal:6543/rollcall");
        let config = url("postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/test").unwrap();
        assert_eq!(target(&config), "postgres@/var/run/postgresql/test");
        let config = url("postgres://alice@127.0.0.1").unwrap();
        assert_eq!(target(&config), "alice@127.0.0.1:5432/alice");
    }

    #[test]
    fn a_url_must_be_a_postgres_url_without_tls() {
        for bad in [
            "host=127.0.0.1 user=postgres password=hunter2",
            "http://127.0.0.1:5432/db",
            "postgres://alice:hunter2@127.0.0.1:5432/db?sslmode=require",
            "postgres://alice:hunter2@127.0.0.1:notaport/db",
            "postgres://alice:hunter2@127.0.0.1/db?frobnicate=1",
            "postgres://alice:hunter2@/db",
        ] {
            let error = url(bad).unwrap_err();
            assert_eq!(error.key, "url", "{bad}");
            assert!(
                !error.message.contains("hunter2"),
                "{bad}: {}",
                error.message
            );
        }
        assert!(url("postgres://alice:hunter2@127.0.0.1/db?sslmode=disable").is_ok());
    }

    #[test]
    fn a_configured_connect_timeout_and_application_name_are_kept() {
        let config =
            url("postgres://a@127.0.0.1/db?connect_timeout=3&application_name=mine").unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(config.get_application_name(), Some("mine"));
        let config = url("postgres://a@127.0.0.1/db").unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(config.get_application_name(), Some("rollcall"));
    }

    #[test]
    fn the_envelope_is_found_in_both_formats() {
        let native = serde_json::json!({
            "id": "e1", "type": "user.created",
            "user": { "id": "u1", "status": "active" },
        });
        let row = EventRow::read(&native).unwrap();
        assert_eq!((row.user_id, row.status), ("u1", Some("active")));

        let cloud = serde_json::json!({ "specversion": "1.0", "data": native });
        let row = EventRow::read(&cloud).unwrap();
        assert_eq!((row.user_id, row.status), ("u1", Some("active")));
        assert_eq!(row.document, &cloud);
    }

    #[test]
    fn a_body_without_a_user_is_permanent() {
        for body in [
            serde_json::json!([1, 2]),
            serde_json::json!({ "id": "e1" }),
            serde_json::json!({ "user": "u1" }),
            serde_json::json!({ "user": { "id": 7 } }),
            serde_json::json!({ "user": { "id": "" } }),
            serde_json::json!({ "specversion": "1.0", "data": null }),
            serde_json::json!({ "specversion": "1.0", "user": { "id": "u1" } }),
        ] {
            let error = EventRow::read(&body).unwrap_err();
            assert!(error.is_permanent(), "{body}");
        }
    }
}
