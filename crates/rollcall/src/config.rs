//! The configuration file: one TOML document.
//!
//! Unknown keys, unset `${VARS}`, duplicate ids, a source naming an unknown connector and a
//! sink naming an unknown type are start-up errors that name the file, the line and the key.
//! `${VAR}` is replaced by the environment variable's value in values only; comments are
//! left alone.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall_core::{EventType, Format, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub ingest: IngestConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub log: LogConfig,
    pub traces: TracesConfig,
}

/// OpenTelemetry traces: one span per delivery received and per send to a sink, exported
/// over OTLP/HTTP when the binary is built with the `otlp` feature.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`; no
    /// export when absent.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: default_service_name(),
        }
    }
}

fn default_service_name() -> String {
    "rollcall".to_owned()
}

/// How the daemon writes its log lines (always to standard error).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json`: every line on standard error is one JSON object (start-up lines included).
    #[serde(default)]
    pub format: LogFormat,
}

/// `text` for people, `json` (one object per line) for log collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// address:port vendors POST to (port 0 picks a free one).
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    /// The largest body accepted, in bytes (413 beyond it).
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1))]
    pub max_body_bytes: usize,
    /// How long a request may take end to end (read, verify, commit) before it is answered
    /// 503, in seconds.
    #[serde(default = "default_request_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub request_timeout_seconds: u64,
    /// How long a client may take to send the whole body, in seconds (408 `body_timeout`);
    /// less than `request_timeout_seconds`.
    #[serde(default = "default_body_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub body_timeout_seconds: u64,
    /// How long a connection may take to send a complete request head, counted from when it
    /// opens or finishes its previous request (so also the idle keep-alive timeout).
    #[serde(default = "default_header_read_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub header_read_timeout_seconds: u64,
    /// Connections open at once; beyond it new connections wait to be accepted.
    #[serde(default = "default_ingest_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: usize,
    /// Body bytes all ingest requests together may hold before they are verified and
    /// committed (each reserves its `Content-Length`, or `max_body_bytes` when it has none);
    /// beyond it requests wait briefly, then get the vendor's retry status (`ingest_busy`).
    #[serde(default = "default_max_body_bytes_in_flight")]
    #[schemars(range(min = 1))]
    pub max_body_bytes_in_flight: usize,
    /// Requests one source may have in flight at once (reading, verifying, committing);
    /// beyond it requests wait briefly, then get the vendor's retry status (`ingest_busy`).
    #[serde(default = "default_max_requests_per_source")]
    #[schemars(range(min = 1))]
    pub max_requests_per_source: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: default_ingest_listen(),
            max_body_bytes: default_max_body_bytes(),
            request_timeout_seconds: default_request_timeout_seconds(),
            body_timeout_seconds: default_body_timeout_seconds(),
            header_read_timeout_seconds: default_header_read_timeout_seconds(),
            max_connections: default_ingest_max_connections(),
            max_body_bytes_in_flight: default_max_body_bytes_in_flight(),
            max_requests_per_source: default_max_requests_per_source(),
        }
    }
}

impl IngestConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds.max(1))
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_seconds.max(1))
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds.max(1)),
            max_connections: self.max_connections.max(1),
            // A request in flight is bounded by its own timeout; give it that long to finish.
            shutdown_grace: self.request_timeout(),
        }
    }
}

/// What a listener allows its clients; see `daemon::http_server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for open connections before closing them.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// address:port of health, metrics and the operator API.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token for the admin API, with every right (scope `operate`); a token (this or
    /// one of `tokens`) is required when `listen` is not a loopback address.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub token: Option<Secret>,
    /// More tokens, each with its scope: `read` for scrapers, SCIM clients and dashboards,
    /// `operate` for operators.
    #[serde(default)]
    pub tokens: Vec<ScopedToken>,
    /// As `ingest.header_read_timeout_seconds`, for the admin listener.
    #[serde(default = "default_header_read_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub header_read_timeout_seconds: u64,
    /// Connections open at once on the admin listener.
    #[serde(default = "default_admin_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: usize,
    /// Host names (without port) the admin listener answers to when it has no token, besides
    /// its bind address, `localhost` and the loopback addresses; other `Host` headers get 403
    /// `host_not_allowed` (a page rebinding its DNS name to 127.0.0.1 cannot read the API).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// An admin token and what it may do.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedToken {
    #[schemars(length(min = 1))]
    pub token: Secret,
    pub scope: Scope,
}

/// What an admin token may do. `operate` includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reads: `/metrics`, `/v1/*` with GET, SCIM.
    Read,
    /// Everything: also replays, quarantine and dead-letter actions (every method but GET
    /// and HEAD).
    Operate,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token: None,
            tokens: Vec::new(),
            header_read_timeout_seconds: default_header_read_timeout_seconds(),
            max_connections: default_admin_max_connections(),
            allowed_hosts: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// Every token with its scope; `token` is `operate`.
    pub fn scoped_tokens(&self) -> Vec<(Secret, Scope)> {
        self.token
            .iter()
            .map(|token| (token.clone(), Scope::Operate))
            .chain(
                self.tokens
                    .iter()
                    .map(|scoped| (scoped.token.clone(), scoped.scope)),
            )
            .collect()
    }

    /// The token the operator commands send: the most capable one configured.
    pub fn client_token(&self) -> Option<&Secret> {
        self.token.as_ref().or_else(|| {
            self.tokens
                .iter()
                .max_by_key(|scoped| scoped.scope)
                .map(|scoped| &scoped.token)
        })
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds.max(1)),
            max_connections: self.max_connections.max(1),
            shutdown_grace: ADMIN_SHUTDOWN_GRACE,
        }
    }
}

/// Admin requests are reads and small writes; shutdown does not wait long for them.
const ADMIN_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// One file, one process.
    Sqlite {
        /// The database file (its directory is created at start).
        #[serde(default = "default_store_path")]
        path: PathBuf,
        /// Hours a delivered event stays in the journal (0: forever). Also how long replayed
        /// quarantine entries and replayed dead letters are kept after their replay.
        #[serde(default = "default_retention_hours")]
        retention_hours: u64,
        /// Hours a dedup key is remembered (0: forever); 0 or at least `retention_hours`.
        #[serde(default = "default_dedup_retention_hours")]
        dedup_retention_hours: u64,
        /// Hours an open (never replayed) quarantined delivery is kept (0: until replayed).
        #[serde(default = "default_quarantine_retention_hours")]
        quarantine_retention_hours: u64,
        /// MiB the bodies of open quarantined deliveries may take together; beyond it the
        /// oldest are deleted (0: no cap).
        #[serde(default = "default_quarantine_max_mib")]
        quarantine_max_mib: u64,
    },
    /// PostgreSQL, shared by any number of replicas. The retention keys mean what they mean
    /// for SQLite.
    Postgres {
        /// A PostgreSQL URL or key/value connection string; may carry a password (use
        /// `${VAR}`), so it is never printed.
        url: Secret,
        /// The schema holding rollcall's tables (created at start if missing).
        #[serde(default = "default_postgres_schema")]
        #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]{0,62}$"))]
        schema: String,
        /// Connections each replica keeps at most.
        #[serde(default = "default_postgres_pool_size")]
        #[schemars(range(min = 2))]
        pool_size: usize,
        /// As for SQLite: hours a delivered event stays in the journal (0: forever).
        #[serde(default = "default_retention_hours")]
        retention_hours: u64,
        /// As for SQLite: hours a dedup key is remembered (0: forever).
        #[serde(default = "default_dedup_retention_hours")]
        dedup_retention_hours: u64,
        /// As for SQLite: hours an open quarantined delivery is kept (0: until replayed).
        #[serde(default = "default_quarantine_retention_hours")]
        quarantine_retention_hours: u64,
        /// As for SQLite: MiB the open quarantined bodies may take (0: no cap).
        #[serde(default = "default_quarantine_max_mib")]
        quarantine_max_mib: u64,
    },
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::sqlite(default_store_path())
    }
}

/// The retention keys of `[store]`, in hours and MiB as configured.
#[derive(Debug, Clone, Copy)]
struct RetentionKeys {
    retention_hours: u64,
    dedup_retention_hours: u64,
    quarantine_retention_hours: u64,
    quarantine_max_mib: u64,
}

impl StoreConfig {
    /// SQLite at `path`, with the default retention.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self::Sqlite {
            path: path.into(),
            retention_hours: default_retention_hours(),
            dedup_retention_hours: default_dedup_retention_hours(),
            quarantine_retention_hours: default_quarantine_retention_hours(),
            quarantine_max_mib: default_quarantine_max_mib(),
        }
    }

    /// PostgreSQL at `url` in `schema`, with the default pool and retention.
    pub fn postgres(url: impl Into<String>, schema: impl Into<String>) -> Self {
        Self::Postgres {
            url: Secret::new(url),
            schema: schema.into(),
            pool_size: default_postgres_pool_size(),
            retention_hours: default_retention_hours(),
            dedup_retention_hours: default_dedup_retention_hours(),
            quarantine_retention_hours: default_quarantine_retention_hours(),
            quarantine_max_mib: default_quarantine_max_mib(),
        }
    }

    /// The SQLite file; `None` for a PostgreSQL store.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite { path, .. } => Some(path),
            Self::Postgres { .. } => None,
        }
    }

    fn retention_keys(&self) -> RetentionKeys {
        match *self {
            Self::Sqlite {
                retention_hours,
                dedup_retention_hours,
                quarantine_retention_hours,
                quarantine_max_mib,
                ..
            }
            | Self::Postgres {
                retention_hours,
                dedup_retention_hours,
                quarantine_retention_hours,
                quarantine_max_mib,
                ..
            } => RetentionKeys {
                retention_hours,
                dedup_retention_hours,
                quarantine_retention_hours,
                quarantine_max_mib,
            },
        }
    }

    /// The retention windows; `None` where pruning is disabled.
    pub fn retention(&self) -> Retention {
        let keys = self.retention_keys();
        let window =
            |hours: u64| (hours > 0).then(|| Duration::from_secs(hours.saturating_mul(3600)));
        Retention {
            journal: window(keys.retention_hours),
            dedup: window(keys.dedup_retention_hours),
            open_quarantine: window(keys.quarantine_retention_hours),
            open_quarantine_max_bytes: (keys.quarantine_max_mib > 0)
                .then(|| keys.quarantine_max_mib.saturating_mul(1024 * 1024)),
        }
    }
}

/// How long the store keeps what it no longer needs; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Delivered journal events (and replayed quarantine entries and dead letters).
    pub journal: Option<Duration>,
    /// Dedup keys.
    pub dedup: Option<Duration>,
    /// Open (never replayed) quarantined deliveries.
    pub open_quarantine: Option<Duration>,
    /// The cap on the bodies of open quarantined deliveries, in bytes.
    pub open_quarantine_max_bytes: Option<u64>,
}

impl Retention {
    pub fn is_disabled(&self) -> bool {
        self.journal.is_none()
            && self.dedup.is_none()
            && self.open_quarantine.is_none()
            && self.open_quarantine_max_bytes.is_none()
    }
}

/// The retry schedule of delivery workers (the backoff between attempts, and the cool-down
/// of a sink's circuit breaker).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The most attempts an event gets before it is a dead letter, unless the sink's
    /// `retry_horizon_hours` is spent first. Unset: no limit but the horizon.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// The first backoff ceiling, in milliseconds; each retry doubles it (full jitter).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The largest backoff ceiling, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Events read from the journal per round.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1))]
    pub batch_size: u32,
    /// Seconds a sink's delivery lease lasts unless renewed: how long the sinks of a replica
    /// that died wait before another replica takes them over.
    #[serde(default = "default_lease_seconds")]
    #[schemars(range(min = 2))]
    pub lease_seconds: u64,
    /// Milliseconds a sink's worker waits after a commit before its next round, so that one
    /// round (one journal read, one sink flush, one position commit) carries what lands
    /// meanwhile instead of one round per commit. 0: a round at every commit.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: None,
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            batch_size: default_batch_size(),
            lease_seconds: default_lease_seconds(),
            linger_ms: default_linger_ms(),
        }
    }
}

impl DeliveryConfig {
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
}

/// A `[[sources]]` table: an id, a connector, and the connector's own options.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub connector: String,
    /// How often the daemon reconciles the source with its vendor's user listing
    /// (`sync_interval = "6h"`; at least a minute); absent: never on its own.
    pub sync_interval: Option<Duration>,
    /// Everything else in the table, handed to the connector (which rejects unknown keys).
    pub options: serde_json::Value,
}

/// A `[[sinks]]` table: an id, a type, the generic delivery keys and the sink's options.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub id: String,
    pub kind: String,
    /// Only events from these sources (all when absent).
    pub sources: Option<Vec<String>>,
    /// Only these event types (all when absent).
    pub types: Option<Vec<EventType>>,
    pub format: Format,
    /// How the host delivers to this sink: parallelism, patience, pacing.
    pub delivery: SinkDelivery,
    pub options: serde_json::Value,
}

/// Where a new sink starts: the whole retained journal, or only events committed from now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    Beginning,
    Now,
}

/// A sink's generic delivery keys (`concurrency`, `retry_horizon_hours`, `start`,
/// `rate_limit_per_second`, `breaker_failures`).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkDelivery {
    /// Requests in flight, partitioned by user (events of one user never overlap). 1 keeps
    /// journal order across users: a transient failure then holds the whole sink.
    pub concurrency: usize,
    /// How long a transient failure is retried before the event becomes a dead letter.
    pub retry_horizon: Duration,
    /// Where a sink without a position starts.
    pub start: StartAt,
    /// At most this many events per second (none when absent).
    pub rate_limit_per_second: Option<f64>,
    /// Consecutive transient failures that open the sink's circuit breaker.
    pub breaker_failures: u32,
}

/// Default `retry_horizon_hours`: three days.
pub const DEFAULT_RETRY_HORIZON_HOURS: f64 = 72.0;
/// Default `concurrency` of sinks that are not ordered streams.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Default `breaker_failures`.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// The largest `concurrency`.
pub const MAX_CONCURRENCY: usize = 1024;
/// The largest `retry_horizon_hours`: a year.
pub const MAX_RETRY_HORIZON_HOURS: f64 = 24.0 * 365.0;
/// The largest `rate_limit_per_second`.
pub const MAX_RATE_LIMIT_PER_SECOND: f64 = 1e6;

impl SinkDelivery {
    /// The defaults for a sink type: ordered streams (the file, stdout, NATS subjects, Redis
    /// streams) keep journal order with one request in flight; others send 16 at a time.
    pub fn for_kind(kind: &str) -> Self {
        let ordered_stream = matches!(kind, "file" | "stdout" | "nats" | "redis");
        Self {
            concurrency: if ordered_stream {
                1
            } else {
                DEFAULT_CONCURRENCY
            },
            retry_horizon: Duration::from_secs_f64(DEFAULT_RETRY_HORIZON_HOURS * 3600.0),
            start: StartAt::Beginning,
            rate_limit_per_second: None,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
        }
    }

    /// Reads the generic delivery keys out of a sink's table (what is left are the sink's
    /// own options); each bad key is a problem `(key, message)`, the others still read.
    fn take(
        kind: &str,
        table: &mut serde_json::Map<String, serde_json::Value>,
        problems: &mut Vec<(&'static str, String)>,
    ) -> Self {
        fn take<T: serde::de::DeserializeOwned>(
            table: &mut serde_json::Map<String, serde_json::Value>,
            key: &'static str,
            expected: &str,
            problems: &mut Vec<(&'static str, String)>,
        ) -> Option<T> {
            let value = table.remove(key)?;
            serde_json::from_value(value)
                .map_err(|error| problems.push((key, format!("{error} (expected {expected})"))))
                .ok()
        }
        let mut delivery = Self::for_kind(kind);
        if let Some(concurrency) =
            take::<usize>(table, "concurrency", "an integer from 1", problems)
        {
            if (1..=MAX_CONCURRENCY).contains(&concurrency) {
                delivery.concurrency = concurrency;
            } else {
                problems.push((
                    "concurrency",
                    format!("must be from 1 to {MAX_CONCURRENCY}"),
                ));
            }
        }
        if let Some(hours) =
            take::<f64>(table, "retry_horizon_hours", "a number of hours", problems)
        {
            if hours.is_finite() && hours > 0.0 && hours <= MAX_RETRY_HORIZON_HOURS {
                delivery.retry_horizon = Duration::from_secs_f64(hours * 3600.0);
            } else {
                problems.push((
                    "retry_horizon_hours",
                    "must be above 0 and at most a year".to_owned(),
                ));
            }
        }
        if let Some(start) = take::<StartAt>(table, "start", "\"now\" or \"beginning\"", problems) {
            delivery.start = start;
        }
        if let Some(rate) =
            take::<f64>(table, "rate_limit_per_second", "a number above 0", problems)
        {
            if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_LIMIT_PER_SECOND {
                delivery.rate_limit_per_second = Some(rate);
            } else {
                problems.push((
                    "rate_limit_per_second",
                    format!("must be above 0 (and at most {MAX_RATE_LIMIT_PER_SECOND})"),
                ));
            }
        }
        if let Some(failures) =
            take::<u32>(table, "breaker_failures", "an integer from 1", problems)
        {
            if failures == 0 {
                problems.push(("breaker_failures", "must be at least 1".to_owned()));
            } else {
                delivery.breaker_failures = failures;
            }
        }
        delivery
    }
}

impl SinkConfig {
    pub fn accepts(&self, source: &str, event_type: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|sources| sources.iter().any(|s| s == source))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t.as_str() == event_type))
    }
}

/// The shortest `sync_interval`: a listing costs the vendor's API a request per page.
pub const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(60);

/// A duration written `"90s"`, `"15m"`, `"6h"`, `"1d"`, or a number of seconds.
fn parse_interval(value: &serde_json::Value) -> Result<Duration, String> {
    let expected = "expected a duration such as \"30m\", \"6h\" or \"1d\", or seconds";
    let seconds = match value {
        serde_json::Value::Number(number) => number.as_u64().ok_or(expected)?,
        serde_json::Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (digits, unit) = text.split_at(split);
            let amount: u64 = digits.parse().map_err(|_| expected)?;
            let unit_seconds = match unit.trim() {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                _ => return Err(expected.to_owned()),
            };
            amount.checked_mul(unit_seconds).ok_or(expected)?
        }
        _ => return Err(expected.to_owned()),
    };
    let interval = Duration::from_secs(seconds);
    if interval < MIN_SYNC_INTERVAL {
        return Err(format!(
            "must be at least {} s (a listing costs a request per page)",
            MIN_SYNC_INTERVAL.as_secs()
        ));
    }
    Ok(interval)
}

fn take_string(
    table: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<String, String> {
    match table.remove(key) {
        Some(serde_json::Value::String(value)) if !value.trim().is_empty() => Ok(value),
        Some(_) => Err(format!("`{key}` must be a non-empty string")),
        None => Err(format!("missing `{key}`")),
    }
}

fn default_ingest_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_request_timeout_seconds() -> u64 {
    30
}
fn default_body_timeout_seconds() -> u64 {
    20
}
fn default_header_read_timeout_seconds() -> u64 {
    10
}
fn default_ingest_max_connections() -> usize {
    1024
}
fn default_max_body_bytes_in_flight() -> usize {
    // 64 bodies of the default maximum size.
    64 * 1024 * 1024
}
fn default_max_requests_per_source() -> usize {
    256
}
fn default_admin_max_connections() -> usize {
    64
}
fn default_store_path() -> PathBuf {
    PathBuf::from("rollcall-data/rollcall.db")
}
fn default_postgres_schema() -> String {
    "rollcall".to_owned()
}
fn default_postgres_pool_size() -> usize {
    16
}
fn default_retention_hours() -> u64 {
    168
}
fn default_dedup_retention_hours() -> u64 {
    720
}
fn default_quarantine_retention_hours() -> u64 {
    720
}
fn default_quarantine_max_mib() -> u64 {
    1024
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    300_000
}
fn default_lease_seconds() -> u64 {
    30
}
fn default_linger_ms() -> u64 {
    10
}
fn default_batch_size() -> u32 {
    256
}

/// A configuration error, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, in the order of the file (problems that have no
/// line, such as a wrong override, last). Displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    first: ConfigError,
    others: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The problems, sorted by line; `None` when there are none.
    fn from_vec(mut errors: Vec<ConfigError>) -> Option<Self> {
        errors.sort_by_key(|error| (error.line.is_none(), error.line));
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        Some(Self {
            first,
            others: errors.collect(),
        })
    }

    /// The problem nearest the top of the file.
    pub fn first(&self) -> &ConfigError {
        &self.first
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(&self.first).chain(&self.others)
    }

    pub fn len(&self) -> usize {
        1 + self.others.len()
    }

    /// Never: there is always at least one problem.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn in_file(mut self, path: &Path) -> Self {
        self.first.file = Some(path.to_path_buf());
        for error in &mut self.others {
            error.file = Some(path.to_path_buf());
        }
        self
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(first: ConfigError) -> Self {
        Self {
            first,
            others: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The line of every key of a configuration file (`ingest.listen`, `sources[0].id`,
/// `admin.tokens[1].scope`) and of every table in an array (`sources[0]`: its header), from
/// the spans the TOML parser keeps.
#[derive(Debug, Default)]
struct KeyLines(HashMap<String, usize>);

impl KeyLines {
    /// Parses `text`; a document that is not TOML is every syntax error the parser found.
    fn parse(text: &str) -> Result<Self, ConfigErrors> {
        let (document, errors) = toml::de::DeTable::parse_recoverable(text);
        let errors = errors.iter().map(|error| ConfigError {
            file: None,
            line: error.span().map(|span| line_at(text, span.start)),
            key: None,
            message: error.message().trim().to_owned(),
        });
        if let Some(errors) = ConfigErrors::from_vec(errors.collect()) {
            return Err(errors);
        }
        let mut lines = Self::default();
        lines.record_table(text, document.get_ref(), "");
        Ok(lines)
    }

    fn record_table(&mut self, text: &str, table: &toml::de::DeTable<'_>, prefix: &str) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.0
                .entry(path.clone())
                .or_insert_with(|| line_at(text, key.span().start));
            self.record_value(text, value.get_ref(), &path);
        }
    }

    fn record_value(&mut self, text: &str, value: &toml::de::DeValue<'_>, path: &str) {
        match value {
            toml::de::DeValue::Table(table) => self.record_table(text, table, path),
            toml::de::DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let path = format!("{path}[{index}]");
                    self.0
                        .insert(path.clone(), line_at(text, item.span().start));
                    self.record_value(text, item.get_ref(), &path);
                }
            }
            _ => {}
        }
    }

    /// The line of `path`, or of the nearest table or key that holds it (a missing key is
    /// reported at its table).
    fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.0.get(path) {
                return Some(*line);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

/// The 1-based line of byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.bytes()
        .take(offset)
        .filter(|byte| *byte == b'\n')
        .count()
        + 1
}

/// The problems of one configuration, each on the line of the key it is about.
struct Report<'a> {
    lines: &'a KeyLines,
    errors: Vec<ConfigError>,
    /// Values whose `${VARS}` could not be replaced: already reported, so what follows from
    /// their unreplaced text is not.
    unresolved: HashSet<String>,
}

impl<'a> Report<'a> {
    fn new(lines: &'a KeyLines) -> Self {
        Self {
            lines,
            errors: Vec::new(),
            unresolved: HashSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.errors.len()
    }

    /// A problem with `key` (a path such as `sources[0].signing_secret`), on its line.
    fn at(&mut self, key: &str, message: impl Into<String>) {
        self.on(key, key, message);
    }

    /// A connector or sink type this build does not have, naming the ones it has (a build
    /// may leave vendors and sinks out by feature).
    fn unknown<'k>(
        &mut self,
        key: &str,
        what: &str,
        given: &str,
        known: impl Iterator<Item = &'k str>,
    ) {
        let known: Vec<&str> = known.collect();
        self.at(
            key,
            format!(
                "unknown {what} {given:?} (this build has: {})",
                known.join(", ")
            ),
        );
    }

    /// A problem with `key`, shown on the line of `line_of` (the key that causes it).
    fn on(&mut self, key: &str, line_of: &str, message: impl Into<String>) {
        let follows_from_a_variable = self.unresolved.iter().any(|path| {
            path == key
                || path
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('['))
        });
        if follows_from_a_variable {
            return;
        }
        self.errors.push(ConfigError {
            file: None,
            line: self.lines.line(line_of),
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }

    /// A problem that no line of the file shows (an override).
    fn elsewhere(&mut self, key: String, message: String) {
        self.errors.push(ConfigError {
            file: None,
            line: None,
            key: Some(key),
            message,
        });
    }

    /// A `${VAR}` of the value at `path` that cannot be replaced; named by the key written
    /// on its line (`signing_secret`), as a reader looks for it.
    fn variable(&mut self, path: &str, message: String) {
        let written = path.rsplit('.').next().unwrap_or(path);
        let written = written.split('[').next().unwrap_or(written);
        self.errors.push(ConfigError {
            file: None,
            line: self.lines.line(path),
            key: Some(written.to_owned()),
            message,
        });
        self.unresolved.insert(path.to_owned());
    }

    /// `value` when nothing was reported; otherwise every problem.
    fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        match (ConfigErrors::from_vec(self.errors), value) {
            (Some(errors), _) => Err(errors),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(ConfigError {
                file: None,
                line: None,
                key: None,
                message: "not a valid configuration".to_owned(),
            }
            .into()),
        }
    }
}

/// Reads table `name` (when the file has it) into `into` and checks it with `check`. A table
/// with a mistake leaves `into` at its default and is not checked further, so one mistake is
/// not reported twice.
fn read_table<T: serde::de::DeserializeOwned>(
    report: &mut Report<'_>,
    name: &str,
    value: Option<toml::Value>,
    into: &mut T,
    check: impl FnOnce(&T, &mut Report<'_>),
) {
    if let Some(table) = value.and_then(|value| section::<T>(report, name, value)) {
        check(&table, report);
        *into = table;
    }
}

/// Reads table `name` into `T`. serde stops at the first mistake; the key it stopped at is
/// reported, left out, and the table read again, so one run reports every mistake in it.
/// `None` when there was any (the table is then not checked further).
fn section<T: serde::de::DeserializeOwned>(
    report: &mut Report<'_>,
    name: &str,
    mut value: toml::Value,
) -> Option<T> {
    let before = report.len();
    let mut reported = HashSet::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => return (report.len() == before).then_some(parsed),
            Err(error) => error,
        };
        let mut steps: Vec<Step> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                _ => None,
            })
            .collect();
        let message = error.into_inner().message().trim().to_owned();
        // serde names an unknown or missing field in its message, at times only there.
        if let Some(field) = field_named_in(&message) {
            if !matches!(steps.last(), Some(Step::Key(last)) if *last == field) {
                steps.push(Step::Key(field));
            }
        }
        let path = path_of(name, &steps);
        // A key left out for its bad value is then missing: said already.
        if reported.insert(path.clone()) {
            report.at(&path, message);
        }
        if !remove_at(&mut value, &steps) {
            return None;
        }
    }
}

/// One step of a path into a TOML value.
#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_of(name: &str, steps: &[Step]) -> String {
    let mut path = name.to_owned();
    for step in steps {
        match step {
            Step::Key(key) => {
                path.push('.');
                path.push_str(key);
            }
            Step::Index(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Removes the key at `steps` from `value`; false when there is no such key.
fn remove_at(value: &mut toml::Value, steps: &[Step]) -> bool {
    let Some((Step::Key(last), parents)) = steps.split_last() else {
        return false;
    };
    let mut current = value;
    for step in parents {
        let next = match (step, current) {
            (Step::Key(key), toml::Value::Table(table)) => table.get_mut(key),
            (Step::Index(index), toml::Value::Array(items)) => items.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        current = next;
    }
    match current {
        toml::Value::Table(table) => table.remove(last).is_some(),
        _ => false,
    }
}

/// The field of serde's "unknown field `x`" and "missing field `x`" messages.
fn field_named_in(message: &str) -> Option<String> {
    ["unknown field `", "missing field `"]
        .iter()
        .find_map(|marker| message.split_once(marker))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned())
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with(path, &Overrides::from_env())
    }

    /// Reads and validates a configuration file, with `overrides` applied over it.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigErrors> {
        let text = read_file(path)?;
        Self::parse_with(&text, |name| std::env::var(name).ok(), overrides)
            .map_err(|errors| errors.in_file(path))
    }

    /// Parses and validates configuration text; `env` resolves `${VARS}`.
    ///
    /// The text is parsed first and `${VARS}` are replaced inside the parsed string values:
    /// a variable's value is data, whatever it holds (quotes, newlines, `'`), and cannot
    /// change the document's structure in any TOML string form.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        Self::parse_with(text, env, &Overrides::default())
    }

    /// As [`Config::parse`], with `overrides` applied over the file's values.
    pub fn parse_with(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigErrors> {
        let lines = KeyLines::parse(text)?;
        let mut document = parse_document(text)?;
        let mut report = Report::new(&lines);
        interpolate_table(&mut document, "", &env, &mut report);
        overrides.apply(&mut document, &mut report);
        default_store_type(&mut document);
        let config = Self::read(document, &mut report);
        report.finish(Some(config))
    }

    /// Reads every table of `document`, and checks what TOML's shape cannot: ids,
    /// references, limits that depend on each other, and each component's options.
    fn read(mut document: toml::Table, report: &mut Report<'_>) -> Self {
        let mut config = Self::default();
        let mut take = |name: &str| document.remove(name);
        read_table(
            report,
            "ingest",
            take("ingest"),
            &mut config.ingest,
            IngestConfig::check,
        );
        read_table(
            report,
            "admin",
            take("admin"),
            &mut config.admin,
            AdminConfig::check,
        );
        read_table(
            report,
            "store",
            take("store"),
            &mut config.store,
            StoreConfig::check,
        );
        read_table(
            report,
            "delivery",
            take("delivery"),
            &mut config.delivery,
            DeliveryConfig::check,
        );
        read_table(report, "log", take("log"), &mut config.log, |_, _| {});
        read_table(
            report,
            "traces",
            take("traces"),
            &mut config.traces,
            TracesConfig::check,
        );
        let mut source_ids = Vec::new();
        if let Some(value) = take("sources") {
            for (index, item) in array_of_tables(report, "sources", value)
                .into_iter()
                .enumerate()
            {
                if let Some(source) = SourceConfig::read(report, index, item, &mut source_ids) {
                    config.sources.push(source);
                }
            }
        }
        if let Some(value) = take("sinks") {
            let mut sink_ids = HashSet::new();
            for (index, item) in array_of_tables(report, "sinks", value)
                .into_iter()
                .enumerate()
            {
                if let Some(sink) =
                    SinkConfig::read(report, index, item, &source_ids, &mut sink_ids)
                {
                    config.sinks.push(sink);
                }
            }
        }
        for key in document.keys() {
            report.at(
                key,
                format!(
                    "unknown key (the tables are {}, [[sources]] and [[sinks]])",
                    TABLES.join(", ")
                ),
            );
        }
        config
    }
}

/// The tables of `[[name]]`.
fn array_of_tables(report: &mut Report<'_>, name: &str, value: toml::Value) -> Vec<toml::Value> {
    match value {
        toml::Value::Array(items) => items,
        _ => {
            report.at(name, format!("must be an array of tables ([[{name}]])"));
            Vec::new()
        }
    }
}

/// A component's table as JSON, the form its options are read from.
fn json_table(
    report: &mut Report<'_>,
    path: &str,
    value: toml::Value,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    if !value.is_table() {
        report.at(path, "must be a table");
        return None;
    }
    serde_json::Map::deserialize(value)
        .map_err(|error| report.at(path, error.message().trim().to_owned()))
        .ok()
}

/// Builds a component from `options` and reports what it refuses, each at its option's
/// line. An option it refuses is left out and the component built again, so every unknown
/// option is reported at once. `None` when any was refused.
fn build_reporting<T>(
    report: &mut Report<'_>,
    path: &str,
    mut options: serde_json::Map<String, serde_json::Value>,
    build: impl Fn(serde_json::Value) -> Result<T, rollcall_core::ConfigError>,
) -> Option<T> {
    let mut refused = HashSet::new();
    loop {
        let error = match build(serde_json::Value::Object(options.clone())) {
            Ok(built) => return refused.is_empty().then_some(built),
            Err(error) => error,
        };
        let key = option_key(&error);
        let at = if key.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{key}")
        };
        // The same option refused again once left out ("is required"): said already.
        if refused.insert(key.clone()) {
            report.at(&at, error.message);
        }
        options.remove(&key)?;
    }
}

impl SourceConfig {
    /// Reads and checks `[[sources]]` number `index`; records its id in `ids`.
    fn read(
        report: &mut Report<'_>,
        index: usize,
        value: toml::Value,
        ids: &mut Vec<String>,
    ) -> Option<Self> {
        let path = format!("sources[{index}]");
        let key = |name: &str| format!("{path}.{name}");
        let before = report.len();
        let mut table = json_table(report, &path, value)?;
        let id = take_string(&mut table, "id")
            .map_err(|message| report.at(&key("id"), message))
            .ok();
        if let Some(id) = &id {
            if ids.contains(id) {
                report.at(&key("id"), format!("duplicate source id {id:?}"));
            } else if !valid_id(id) {
                report.at(&key("id"), "ids are letters, digits, `-`, `_` and `.`");
            }
            ids.push(id.clone());
        }
        let connector = take_string(&mut table, "connector")
            .map_err(|message| report.at(&key("connector"), message))
            .ok();
        let sync_interval = table
            .remove("sync_interval")
            .map(|value| parse_interval(&value))
            .transpose()
            .map_err(|message| report.at(&key("sync_interval"), message))
            .ok()
            .flatten();
        let connector = connector?;
        let Some(registration) = rollcall_core::registration(&connector) else {
            let known = rollcall_core::registrations();
            let known = known.iter().map(|r| r.name);
            report.unknown(&key("connector"), "connector", &connector, known);
            return None;
        };
        let id = id?;
        let built = build_reporting(report, &path, table.clone(), |options| {
            (registration.build)(&rollcall_core::SourceOptions::new(&id, options))
        })?;
        if sync_interval.is_some() && !built.lists_users() {
            report.at(
                &key("sync_interval"),
                format!(
                    "source {id:?} cannot list users (connector {connector} without its API \
                     options; see docs/connectors/{connector}.md)"
                ),
            );
        }
        (report.len() == before).then_some(Self {
            id,
            connector,
            sync_interval,
            options: serde_json::Value::Object(table),
        })
    }
}

impl SinkConfig {
    /// Reads and checks `[[sinks]]` number `index`; `source_ids` are the configured sources.
    fn read(
        report: &mut Report<'_>,
        index: usize,
        value: toml::Value,
        source_ids: &[String],
        ids: &mut HashSet<String>,
    ) -> Option<Self> {
        let path = format!("sinks[{index}]");
        let key = |name: &str| format!("{path}.{name}");
        let before = report.len();
        let mut table = json_table(report, &path, value)?;
        let id = take_string(&mut table, "id")
            .map_err(|message| report.at(&key("id"), message))
            .ok();
        if let Some(id) = &id {
            if !ids.insert(id.clone()) {
                report.at(&key("id"), format!("duplicate sink id {id:?}"));
            } else if !valid_id(id) {
                report.at(&key("id"), "ids are letters, digits, `-`, `_` and `.`");
            }
        }
        let kind = take_string(&mut table, "type")
            .map_err(|message| report.at(&key("type"), message))
            .ok();
        let sources: Option<Vec<String>> = table
            .remove("sources")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| report.at(&key("sources"), error.to_string()))
            .ok()
            .flatten();
        for source in sources.iter().flatten() {
            if !source_ids.contains(source) {
                report.at(&key("sources"), format!("no source with id {source:?}"));
            }
        }
        let types = table
            .remove("types")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| {
                report.at(
                    &key("types"),
                    format!("{error} (expected user.created, user.updated, user.deleted)"),
                )
            })
            .ok()
            .flatten();
        let format = table
            .remove("format")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| {
                report.at(
                    &key("format"),
                    format!("{error} (expected native or cloudevents)"),
                )
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        let kind = kind?;
        let mut problems = Vec::new();
        let delivery = SinkDelivery::take(&kind, &mut table, &mut problems);
        for (name, message) in problems {
            report.at(&key(name), message);
        }
        let Some(registration) = rollcall_core::sink_registration(&kind) else {
            let known = rollcall_core::sink_registrations();
            let known = known.iter().map(|r| r.kind);
            report.unknown(&key("type"), "sink type", &kind, known);
            return None;
        };
        let id = id?;
        build_reporting(report, &path, table.clone(), |options| {
            (registration.build)(&rollcall_core::SinkOptions::new(&id, options))
        })?;
        (report.len() == before).then_some(Self {
            id,
            kind,
            sources,
            types,
            format,
            delivery,
            options: serde_json::Value::Object(table),
        })
    }
}

impl IngestConfig {
    /// The limits that depend on each other.
    fn check(&self, report: &mut Report<'_>) {
        let mut at = |key: &str, message: String| report.at(&format!("ingest.{key}"), message);
        for (key, value) in [
            ("request_timeout_seconds", self.request_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("max_connections", self.max_connections as u64),
            ("max_body_bytes", self.max_body_bytes as u64),
            (
                "max_requests_per_source",
                self.max_requests_per_source as u64,
            ),
        ] {
            if value == 0 {
                at(key, "must be at least 1".to_owned());
            }
        }
        let in_flight = self.max_body_bytes_in_flight;
        // An eighth is reserved for small bodies; the rest must hold the largest one.
        if in_flight - in_flight / 8 < self.max_body_bytes {
            at(
                "max_body_bytes_in_flight",
                format!(
                    "must be at least 8/7 of ingest.max_body_bytes ({}): an eighth is kept \
                     for small bodies, and the rest must hold a body of the largest accepted size",
                    self.max_body_bytes
                ),
            );
        }
        if u32::try_from(self.max_body_bytes).is_err() {
            at("max_body_bytes", "must be less than 4 GiB".to_owned());
        }
        if self.body_timeout_seconds >= self.request_timeout_seconds {
            at(
                "body_timeout_seconds",
                format!(
                    "must be less than ingest.request_timeout_seconds ({}), so a slow body is \
                     answered 408 body_timeout before the request times out",
                    self.request_timeout_seconds
                ),
            );
        }
    }
}

impl AdminConfig {
    fn check(&self, report: &mut Report<'_>) {
        // An empty token (`token = ""`, or `${VAR}` set to nothing) would otherwise be a
        // token that every request without credentials matches: never a way to turn auth off.
        if self
            .scoped_tokens()
            .iter()
            .any(|(token, _)| token.expose().trim().is_empty())
        {
            report.at(
                "admin.token",
                "must not be empty or whitespace (remove the key to run without a token on \
                 loopback)",
            );
        }
        if !self.listen.ip().is_loopback() && self.scoped_tokens().is_empty() {
            report.on(
                "admin.token",
                "admin.listen",
                "required when admin listens beyond loopback",
            );
        }
        for (key, value) in [
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("max_connections", self.max_connections as u64),
        ] {
            if value == 0 {
                report.at(&format!("admin.{key}"), "must be at least 1");
            }
        }
    }
}

impl StoreConfig {
    fn check(&self, report: &mut Report<'_>) {
        if let Self::Postgres {
            schema, pool_size, ..
        } = self
        {
            if !rollcall_store::is_valid_postgres_schema(schema) {
                report.at(
                    "store.schema",
                    format!(
                        "{schema:?} is not a schema name rollcall accepts: lower-case letters, \
                         digits and _, not starting with a digit or pg_, at most 63"
                    ),
                );
            }
            if *pool_size < 2 {
                report.at(
                    "store.pool_size",
                    "must be at least 2 (ingest holds one connection while reads use others)",
                );
            }
        }
        let RetentionKeys {
            retention_hours,
            dedup_retention_hours,
            ..
        } = self.retention_keys();
        if retention_hours > 0
            && dedup_retention_hours > 0
            && dedup_retention_hours < retention_hours
        {
            report.at(
                "store.dedup_retention_hours",
                format!(
                    "must be 0 (keep forever) or at least store.retention_hours ({retention_hours}): \
                     a repeated delivery whose events are still in the journal must stay a duplicate"
                ),
            );
        }
    }
}

impl DeliveryConfig {
    fn check(&self, report: &mut Report<'_>) {
        if self.lease_seconds < 2 {
            report.at(
                "delivery.lease_seconds",
                "must be at least 2 (a worker renews its lease past half its life)",
            );
        }
        if self.batch_size == 0 {
            report.at(
                "delivery.batch_size",
                "must be at least 1 (with 0 no event would ever be delivered)",
            );
        }
        if self.max_attempts == Some(0) {
            report.at("delivery.max_attempts", "must be at least 1");
        }
    }
}

impl TracesConfig {
    fn check(&self, report: &mut Report<'_>) {
        if self.otlp_endpoint.is_some() && !cfg!(feature = "otlp") {
            report.at(
                "traces.otlp_endpoint",
                "this build exports no traces (build rollcall with --features otlp)",
            );
        }
    }
}

/// The top-level option a component's error is about. serde reports unknown and missing
/// fields at the table itself (`.`), so the field's name is taken from the message.
fn option_key(error: &rollcall_core::ConfigError) -> String {
    let top = error.key.split(['.', '[']).next().unwrap_or("");
    if !top.is_empty() {
        return top.to_owned();
    }
    field_named_in(&error.message).unwrap_or_default()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The values of a document the parser accepted.
fn parse_document(text: &str) -> Result<toml::Table, ConfigErrors> {
    toml::from_str(text).map_err(|error: toml::de::Error| {
        ConfigError {
            file: None,
            line: error.span().map(|span| line_at(text, span.start)),
            key: None,
            message: error.message().trim().to_owned(),
        }
        .into()
    })
}

/// Replaces `${NAME}` in every string value of `table` (nested tables and arrays
/// included); `prefix` is the table's path. Each variable that cannot be replaced is
/// reported at its value's line.
fn interpolate_table(
    table: &mut toml::Table,
    prefix: &str,
    env: &impl Fn(&str) -> Option<String>,
    report: &mut Report<'_>,
) {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        interpolate_value(value, &path, env, report);
    }
}

fn interpolate_value(
    value: &mut toml::Value,
    path: &str,
    env: &impl Fn(&str) -> Option<String>,
    report: &mut Report<'_>,
) {
    match value {
        toml::Value::String(string) if string.contains("${") => match interpolate(string, env) {
            Ok(replaced) => *string = replaced,
            Err(message) => report.variable(path, message),
        },
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{index}]"), env, report);
            }
        }
        toml::Value::Table(table) => interpolate_table(table, path, env, report),
        _ => {}
    }
}

/// `value` with each `${NAME}` replaced by the variable's value, taken as it is.
fn interpolate(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unterminated `${`".to_owned());
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` is not a valid variable name"));
        }
        let Some(variable) = env(name) else {
            return Err(format!("environment variable {name} is not set"));
        };
        out.push_str(&variable);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|error| {
        ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: None,
            message: format!("cannot read: {error}"),
        }
        .into()
    })
}

/// `[store]` without `type` is the embedded SQLite store.
fn default_store_type(document: &mut toml::Table) {
    if let Some(toml::Value::Table(store)) = document.get_mut("store") {
        store
            .entry("type")
            .or_insert_with(|| toml::Value::String("sqlite".to_owned()));
    }
}

impl AdminConfig {
    /// Only the `[admin]` table of a configuration file (with its overrides): what the
    /// operator commands need. The rest of the file, and the variables it names, are not
    /// read, so an operator needs neither the sources' secrets nor the sinks' passwords.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigErrors> {
        Self::load_text(&read_file(path)?, overrides).map_err(|errors| errors.in_file(path))
    }

    /// The defaults with `overrides` applied (`ROLLCALL_ADMIN_LISTEN`, `ROLLCALL_ADMIN_TOKEN`).
    pub fn from_overrides(overrides: &Overrides) -> Result<Self, ConfigErrors> {
        Self::load_text("", overrides)
    }

    fn load_text(text: &str, overrides: &Overrides) -> Result<Self, ConfigErrors> {
        let lines = KeyLines::parse(text)?;
        let mut document = parse_document(text)?;
        let mut admin = toml::Table::new();
        if let Some(table) = document.remove("admin") {
            admin.insert("admin".to_owned(), table);
        }
        let mut report = Report::new(&lines);
        interpolate_table(
            &mut admin,
            "",
            &|name: &str| std::env::var(name).ok(),
            &mut report,
        );
        overrides.only("admin").apply(&mut admin, &mut report);
        let table = admin
            .remove("admin")
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        let parsed = section(&mut report, "admin", table);
        report.finish(parsed)
    }
}

/// The prefix of the environment variables that override configuration keys:
/// `ROLLCALL_<TABLE>_<KEY>` sets `key` of `[table]` (`ROLLCALL_INGEST_LISTEN`,
/// `ROLLCALL_ADMIN_TOKEN`, `ROLLCALL_LOG_FORMAT`).
pub const ENV_PREFIX: &str = "ROLLCALL_";

/// Values set outside the file (environment variables, command-line flags), applied over
/// it in order: a later one wins.
#[derive(Debug, Clone, Default)]
pub struct Overrides(Vec<Override>);

#[derive(Debug, Clone)]
struct Override {
    /// Where the value came from, for errors: `ROLLCALL_INGEST_LISTEN`, `--listen`.
    origin: String,
    table: String,
    key: String,
    value: String,
}

impl Overrides {
    /// The `ROLLCALL_<TABLE>_<KEY>` variables of this process's environment.
    pub fn from_env() -> Self {
        Self::from_variables(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// The overrides among `variables` (name, value); other variables are ignored.
    pub fn from_variables(variables: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut overrides: Vec<Override> = variables
            .into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
                let (table, key) = rest.split_once('_')?;
                (TABLES.contains(&table) && !key.is_empty()).then(|| Override {
                    origin: name.clone(),
                    table: table.to_owned(),
                    key: key.to_owned(),
                    value,
                })
            })
            .collect();
        // The environment's order is arbitrary; make the result not depend on it.
        overrides.sort_by(|a, b| a.origin.cmp(&b.origin));
        Self(overrides)
    }

    /// Sets `[table] key` to `value`, over everything before; `origin` names the flag.
    pub fn set(&mut self, origin: &str, table: &str, key: &str, value: impl Into<String>) {
        self.0.push(Override {
            origin: origin.to_owned(),
            table: table.to_owned(),
            key: key.to_owned(),
            value: value.into(),
        });
    }

    fn only(&self, table: &str) -> Self {
        Self(
            self.0
                .iter()
                .filter(|item| item.table == table)
                .cloned()
                .collect(),
        )
    }

    /// Writes each value into `document`, typed as the schema types its key; a value that
    /// cannot be set is reported, naming where it came from.
    fn apply(&self, document: &mut toml::Table, report: &mut Report<'_>) {
        if self.0.is_empty() {
            return;
        }
        let schema = schema();
        for item in &self.0 {
            let mut error = |message: String| {
                report.elsewhere(
                    format!("{}.{}", item.table, item.key),
                    format!("{message} (set by {})", item.origin),
                )
            };
            let Some(property) = property_schema(&schema["properties"][&item.table], &item.key)
            else {
                error("unknown key".to_owned());
                continue;
            };
            let value = match typed_value(&item.value, property) {
                Ok(value) => value,
                Err(message) => {
                    error(message);
                    continue;
                }
            };
            let table = document
                .entry(item.table.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(table) = table else {
                error(format!("[{}] is not a table in the file", item.table));
                continue;
            };
            table.insert(item.key.clone(), value);
        }
    }
}

/// The schema of `key` in a table's schema: among its `properties`, or those of any of its
/// alternatives (`[store]` is one table per `type`).
fn property_schema<'a>(table: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    let alternatives = ["oneOf", "anyOf"]
        .iter()
        .filter_map(|name| table[*name].as_array())
        .flatten();
    std::iter::once(table)
        .chain(alternatives)
        .find_map(|schema| schema["properties"].get(key))
}

/// `text` as the JSON Schema `property` types it: a string stays a string (a token of
/// digits is still a token); numbers, booleans and arrays (in TOML syntax) are parsed.
fn typed_value(text: &str, property: &serde_json::Value) -> Result<toml::Value, String> {
    let trimmed = text.trim();
    // An optional key is typed `["integer", "null"]`: the value is its other type.
    let type_name = match &property["type"] {
        serde_json::Value::Array(names) => names
            .iter()
            .filter_map(serde_json::Value::as_str)
            .find(|name| *name != "null"),
        name => name.as_str(),
    };
    match type_name {
        Some("integer") => trimmed
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{text:?} is not an integer")),
        Some("boolean") => trimmed
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("{text:?} is not true or false")),
        Some("array") => toml::from_str::<toml::Table>(&format!("value = {trimmed}"))
            .ok()
            .and_then(|mut table| table.remove("value"))
            .filter(toml::Value::is_array)
            .ok_or_else(|| format!("{text:?} is not a TOML array, e.g. [\"a\", \"b\"]")),
        _ => Ok(toml::Value::String(text.to_owned())),
    }
}

/// The tables of the file other than `[[sources]]` and `[[sinks]]`, in the example's order:
/// also those whose keys `ROLLCALL_<TABLE>_<KEY>` overrides (the lists take `${VARS}`).
const TABLES: &[&str] = &["ingest", "admin", "store", "delivery", "log", "traces"];

/// A complete example configuration: every key of every table at its default (from the
/// schema, so from the types serde reads), then the registered connectors' and sinks' own
/// examples.
pub fn example() -> String {
    let schema = schema();
    let mut text = String::from(
        "# rollcall configuration. `${NAME}` is replaced by the environment variable NAME.\n\
         # Every key is shown at its default; keys without one are commented out.\n\n",
    );
    for table in TABLES {
        text.push_str(&format!("[{table}]\n"));
        let table_schema = default_alternative(&schema["properties"][*table]);
        for (key, property) in table_schema["properties"].as_object().into_iter().flatten() {
            for line in property["description"].as_str().unwrap_or("").lines() {
                text.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
            }
            match property
                .get("default")
                .or_else(|| property.get("const"))
                .filter(|value| !value.is_null())
                .and_then(|value| toml::Value::try_from(value).ok())
            {
                Some(value) => text.push_str(&format!("{key} = {value}\n")),
                None => text.push_str(&format!("# {key} =\n")),
            }
        }
        text.push('\n');
    }
    for registration in rollcall_core::registrations() {
        text.push_str(&format!("# {}\n", registration.vendor));
        text.push_str(registration.example_config.trim());
        text.push_str("\n\n");
    }
    for registration in rollcall_core::sink_registrations() {
        text.push_str(&format!("# {}\n", registration.description));
        text.push_str(registration.example_config.trim());
        text.push_str("\n\n");
    }
    text
}

/// The alternative of a table schema that a table without `type` is: `[store]` is SQLite.
fn default_alternative(table: &serde_json::Value) -> &serde_json::Value {
    table["oneOf"]
        .as_array()
        .and_then(|alternatives| {
            alternatives
                .iter()
                .find(|alternative| alternative["properties"]["type"]["const"] == "sqlite")
        })
        .unwrap_or(table)
}

/// The JSON Schema (draft 2020-12) of the configuration file, with the connectors and sink
/// types of this build: `[[sources]]` is one alternative per connector (`oneOf`, chosen by
/// `connector`) with that connector's typed options, `[[sinks]]` one per `type`.
pub fn schema() -> serde_json::Value {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "ingest".to_owned(),
        rollcall_core::options_schema::<IngestConfig>(),
    );
    properties.insert(
        "admin".to_owned(),
        rollcall_core::options_schema::<AdminConfig>(),
    );
    properties.insert("store".to_owned(), store_schema());
    properties.insert(
        "delivery".to_owned(),
        rollcall_core::options_schema::<DeliveryConfig>(),
    );
    properties.insert(
        "log".to_owned(),
        rollcall_core::options_schema::<LogConfig>(),
    );
    properties.insert(
        "traces".to_owned(),
        rollcall_core::options_schema::<TracesConfig>(),
    );
    properties.insert("sources".to_owned(), sources_schema());
    properties.insert("sinks".to_owned(), sinks_schema());
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rollcall configuration",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    })
}

/// `[store]`: one alternative per `type`; SQLite's may leave `type` out.
fn store_schema() -> serde_json::Value {
    let mut store = rollcall_core::options_schema::<StoreConfig>();
    for alternative in store["oneOf"].as_array_mut().into_iter().flatten() {
        if alternative["properties"]["type"]["const"] == "sqlite" {
            if let Some(required) = alternative["required"].as_array_mut() {
                required.retain(|key| key != "type");
            }
            alternative["properties"]["type"]["default"] = "sqlite".into();
        }
    }
    store
}

/// The pattern every source and sink id matches.
const ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";

/// An array of tables, each one of `alternatives` chosen by the key `chosen_by`: each
/// alternative has the `common` keys, `chosen_by` set to its name, and its component's own
/// options (no other key when the component says which it has).
fn component_tables(
    chosen_by: &str,
    common: serde_json::Value,
    alternatives: Vec<(&str, &str, Option<serde_json::Value>)>,
) -> serde_json::Value {
    let names: Vec<&str> = alternatives.iter().map(|(name, _, _)| *name).collect();
    let mut shared = common.as_object().cloned().unwrap_or_default();
    shared.insert(chosen_by.to_owned(), serde_json::json!({ "enum": names }));
    let one_of: Vec<serde_json::Value> = alternatives
        .into_iter()
        .map(|(name, title, options)| {
            let mut properties = common.as_object().cloned().unwrap_or_default();
            properties.insert(chosen_by.to_owned(), serde_json::json!({ "const": name }));
            let mut alternative = serde_json::json!({ "title": title });
            if let Some(options) = options {
                for (key, property) in options["properties"].as_object().into_iter().flatten() {
                    properties.insert(key.clone(), property.clone());
                }
                if let Some(description) = options.get("description") {
                    alternative["description"] = description.clone();
                }
                if let Some(required) = options.get("required") {
                    alternative["required"] = required.clone();
                }
                alternative["additionalProperties"] = false.into();
            }
            alternative["properties"] = properties.into();
            alternative
        })
        .collect();
    serde_json::json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", chosen_by],
            "properties": shared,
            "oneOf": one_of,
        }
    })
}

fn sources_schema() -> serde_json::Value {
    let common = serde_json::json!({
        "id": {"type": "string", "pattern": ID_PATTERN, "description": "the source's URL: POST /hooks/<id>"},
        "sync_interval": {"type": ["string", "integer"], "description": "how often to reconcile with the vendor's user listing: \"30m\", \"6h\", \"1d\" or seconds (at least 60)"},
    });
    let alternatives = rollcall_core::registrations()
        .into_iter()
        .map(|registration| {
            (
                registration.name,
                registration.vendor,
                registration.options_schema.map(|schema| schema()),
            )
        })
        .collect();
    component_tables("connector", common, alternatives)
}

fn sinks_schema() -> serde_json::Value {
    let event_types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let mut common = serde_json::json!({
        "id": {"type": "string", "pattern": ID_PATTERN},
        "sources": {"type": "array", "items": {"type": "string"}, "description": "only events from these sources (all when absent)"},
        "types": {"type": "array", "items": {"enum": event_types}, "description": "only these event types (all when absent)"},
        "format": rollcall_core::options_schema::<Format>(),
        "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY, "description": "requests in flight, partitioned by user; 1 keeps journal order across users"},
        "retry_horizon_hours": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RETRY_HORIZON_HOURS, "default": DEFAULT_RETRY_HORIZON_HOURS, "description": "how long a transient failure is retried before the event becomes a dead letter"},
        "start": rollcall_core::options_schema::<StartAt>(),
        "rate_limit_per_second": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RATE_LIMIT_PER_SECOND, "description": "at most this many events per second (no limit when absent)"},
        "breaker_failures": {"type": "integer", "minimum": 1, "default": DEFAULT_BREAKER_FAILURES, "description": "consecutive transient failures that open the sink's circuit breaker"},
    });
    common["format"]["default"] = serde_json::json!(Format::default());
    common["format"]["description"] =
        "native: the event envelope as is; cloudevents: CloudEvents 1.0 structured JSON".into();
    common["start"]["default"] = serde_json::json!(StartAt::default());
    common["start"]["description"] =
        "where a sink without a position starts: the retained journal, or events from now on"
            .into();
    let alternatives = rollcall_core::sink_registrations()
        .into_iter()
        .map(|registration| {
            let mut options = registration.options_schema.map(|schema| schema());
            // The concurrency default depends on the type: ordered streams send one at a time.
            if let Some(options) = options.as_mut() {
                options["properties"]["concurrency"] = serde_json::json!({
                    "type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY,
                    "default": SinkDelivery::for_kind(registration.kind).concurrency,
                });
            }
            (registration.kind, registration.description, options)
        })
        .collect();
    component_tables("type", common, alternatives)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
