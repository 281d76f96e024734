//! The configuration file: one TOML document.
//!
//! Unknown keys, unset `${VARS}`, duplicate ids, a source naming an unknown connector and a
//! sink naming an unknown type are start-up errors that name the file, the line and the key.
//! `${VAR}` is replaced by the environment variable's value in values only; comments are
//! left alone.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollcall_core::{EventType, Format, Secret};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub traces: TracesConfig,
}

/// OpenTelemetry traces: one span per delivery received and per send to a sink, exported
/// over OTLP/HTTP when the binary is built with the `otlp` feature.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

/// `text` for people, `json` (one object per line) for log collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a request may take end to end (read, verify, commit) before it is answered
    /// 503, in seconds.
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// How long a client may take to send the whole body, in seconds (408 `body_timeout`);
    /// less than `request_timeout_seconds`.
    #[serde(default = "default_body_timeout_seconds")]
    pub body_timeout_seconds: u64,
    /// How long a connection may take to send a complete request head, counted from when it
    /// opens or finishes its previous request (so also the idle keep-alive timeout).
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// Connections open at once; beyond it new connections wait to be accepted.
    #[serde(default = "default_ingest_max_connections")]
    pub max_connections: usize,
    /// Body bytes all ingest requests together may hold before they are verified and
    /// committed (each reserves its `Content-Length`, or `max_body_bytes` when it has none);
    /// beyond it requests wait briefly, then get the vendor's retry status (`ingest_busy`).
    #[serde(default = "default_max_body_bytes_in_flight")]
    pub max_body_bytes_in_flight: usize,
    /// Requests one source may have in flight at once (reading, verifying, committing);
    /// beyond it requests wait briefly, then get the vendor's retry status (`ingest_busy`).
    #[serde(default = "default_max_requests_per_source")]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Bearer token for the admin API, with every right (scope `operate`); a token (this or
    /// one of `tokens`) is required when `listen` is not a loopback address.
    #[serde(default)]
    pub token: Option<Secret>,
    /// More tokens, each with its scope: `read` for scrapers, SCIM clients and dashboards,
    /// `operate` for operators.
    #[serde(default)]
    pub tokens: Vec<ScopedToken>,
    /// As `ingest.header_read_timeout_seconds`, for the admin listener.
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// Connections open at once on the admin listener.
    #[serde(default = "default_admin_max_connections")]
    pub max_connections: usize,
    /// Host names (without port) the admin listener answers to when it has no token, besides
    /// its bind address, `localhost` and the loopback addresses; other `Host` headers get 403
    /// `host_not_allowed` (a page rebinding its DNS name to 127.0.0.1 cannot read the API).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// An admin token and what it may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedToken {
    pub token: Secret,
    pub scope: Scope,
}

/// What an admin token may do. `operate` includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// One file, one process.
    Sqlite {
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
        schema: String,
        /// Connections each replica keeps at most.
        #[serde(default = "default_postgres_pool_size")]
        pool_size: usize,
        #[serde(default = "default_retention_hours")]
        retention_hours: u64,
        #[serde(default = "default_dedup_retention_hours")]
        dedup_retention_hours: u64,
        #[serde(default = "default_quarantine_retention_hours")]
        quarantine_retention_hours: u64,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The most attempts an event gets before it is a dead letter, unless the sink's
    /// `retry_horizon_hours` is spent first. Unset: no limit but the horizon.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first backoff ceiling, in milliseconds; each retry doubles it (full jitter).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The largest backoff ceiling, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Events read from the journal per round.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Seconds a sink's delivery lease lasts unless renewed: how long the sinks of a replica
    /// that died wait before another replica takes them over.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            batch_size: default_batch_size(),
            lease_seconds: default_lease_seconds(),
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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
    /// own options).
    fn take(
        kind: &str,
        table: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, String> {
        fn take<T: serde::de::DeserializeOwned>(
            table: &mut serde_json::Map<String, serde_json::Value>,
            key: &str,
            expected: &str,
        ) -> Result<Option<T>, String> {
            table
                .remove(key)
                .map(serde_json::from_value)
                .transpose()
                .map_err(|error| format!("{key}: {error} (expected {expected})"))
        }
        let mut delivery = Self::for_kind(kind);
        if let Some(concurrency) = take::<usize>(table, "concurrency", "an integer from 1 to 1024")?
        {
            if !(1..=1024).contains(&concurrency) {
                return Err("concurrency: must be from 1 to 1024".to_owned());
            }
            delivery.concurrency = concurrency;
        }
        if let Some(hours) = take::<f64>(table, "retry_horizon_hours", "a number of hours")? {
            if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0) {
                return Err("retry_horizon_hours: must be above 0 and at most a year".to_owned());
            }
            delivery.retry_horizon = Duration::from_secs_f64(hours * 3600.0);
        }
        if let Some(start) = take::<StartAt>(table, "start", "\"now\" or \"beginning\"")? {
            delivery.start = start;
        }
        if let Some(rate) = take::<f64>(table, "rate_limit_per_second", "a number above 0")? {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
                return Err(
                    "rate_limit_per_second: must be above 0 (and at most 1000000)".to_owned(),
                );
            }
            delivery.rate_limit_per_second = Some(rate);
        }
        if let Some(failures) = take::<u32>(table, "breaker_failures", "an integer from 1")? {
            if failures == 0 {
                return Err("breaker_failures: must be at least 1".to_owned());
            }
            delivery.breaker_failures = failures;
        }
        Ok(delivery)
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

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let id = take_string(&mut table, "id").map_err(D::Error::custom)?;
        let connector = take_string(&mut table, "connector").map_err(D::Error::custom)?;
        let sync_interval = table
            .remove("sync_interval")
            .map(|value| parse_interval(&value))
            .transpose()
            .map_err(|error| D::Error::custom(format!("sync_interval: {error}")))?;
        Ok(Self {
            id,
            connector,
            sync_interval,
            options: serde_json::Value::Object(table),
        })
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

impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let id = take_string(&mut table, "id").map_err(D::Error::custom)?;
        let kind = take_string(&mut table, "type").map_err(D::Error::custom)?;
        let sources = table
            .remove("sources")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| D::Error::custom(format!("sources: {error}")))?;
        let types = table
            .remove("types")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| {
                D::Error::custom(format!(
                    "types: {error} (expected user.created, user.updated, user.deleted)"
                ))
            })?;
        let format = table
            .remove("format")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| {
                D::Error::custom(format!("format: {error} (expected native or cloudevents)"))
            })?
            .unwrap_or_default();
        let delivery = SinkDelivery::take(&kind, &mut table).map_err(D::Error::custom)?;
        Ok(Self {
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
/// No limit: only the sink's retry horizon ends retries.
fn default_max_attempts() -> u32 {
    u32::MAX
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

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, &Overrides::from_env())
    }

    /// Reads and validates a configuration file, with `overrides` applied over it.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = read_file(path)?;
        Self::parse_with(&text, |name| std::env::var(name).ok(), overrides).map_err(|mut error| {
            error.file = Some(path.to_path_buf());
            error
        })
    }

    /// Parses and validates configuration text; `env` resolves `${VARS}`.
    ///
    /// The text is parsed first and `${VARS}` are replaced inside the parsed string values:
    /// a variable's value is data, whatever it holds (quotes, newlines, `'`), and cannot
    /// change the document's structure in any TOML string form.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::parse_with(text, env, &Overrides::default())
    }

    /// As [`Config::parse`], with `overrides` applied over the file's values.
    pub fn parse_with(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut document: toml::Table =
            toml::from_str(text).map_err(|error| toml_error(text, &error))?;
        interpolate_table(&mut document, text, &env)?;
        overrides.apply(&mut document)?;
        default_store_type(&mut document);
        let config: Config =
            toml::Value::Table(document)
                .try_into()
                .map_err(|error: toml::de::Error| {
                    // The parsed values carry no positions; the same error found in the text
                    // (variables unreplaced: they are inside strings) has its line.
                    match toml::from_str::<Config>(text) {
                        Err(original) if original.message() == error.message() => {
                            toml_error(text, &original)
                        }
                        _ => toml_error(text, &error),
                    }
                })?;
        config.validate(text)?;
        Ok(config)
    }

    /// Checks what TOML's shape cannot: ids, references, and each component's options.
    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let at = |key: &str, message: String| ConfigError {
                file: None,
                line: find_key_line(text, "sources", index, key),
                key: Some(format!("sources[{index}].{key}")),
                message,
            };
            if !seen.insert(source.id.clone()) {
                return Err(at("id", format!("duplicate source id {:?}", source.id)));
            }
            if !valid_id(&source.id) {
                return Err(at(
                    "id",
                    "ids are letters, digits, `-`, `_` and `.`".to_owned(),
                ));
            }
            let Some(registration) = rollcall_core::registration(&source.connector) else {
                let known: Vec<_> = rollcall_core::registrations()
                    .iter()
                    .map(|r| r.name)
                    .collect();
                return Err(at(
                    "connector",
                    format!(
                        "unknown connector {:?} (this build has: {})",
                        source.connector,
                        known.join(", ")
                    ),
                ));
            };
            let options = rollcall_core::SourceOptions::new(&source.id, source.options.clone());
            match (registration.build)(&options) {
                Err(error) => return Err(at(&option_key(&error), error.message)),
                Ok(connector) if source.sync_interval.is_some() && !connector.lists_users() => {
                    return Err(at(
                        "sync_interval",
                        format!(
                            "source {:?} cannot list users (connector {} without its API \
                             options; see docs/connectors/{}.md)",
                            source.id, source.connector, source.connector
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        let mut seen = HashSet::new();
        for (index, sink) in self.sinks.iter().enumerate() {
            let at = |key: &str, message: String| ConfigError {
                file: None,
                line: find_key_line(text, "sinks", index, key),
                key: Some(format!("sinks[{index}].{key}")),
                message,
            };
            if !seen.insert(sink.id.clone()) {
                return Err(at("id", format!("duplicate sink id {:?}", sink.id)));
            }
            if !valid_id(&sink.id) {
                return Err(at(
                    "id",
                    "ids are letters, digits, `-`, `_` and `.`".to_owned(),
                ));
            }
            for source in sink.sources.iter().flatten() {
                if !self.sources.iter().any(|s| &s.id == source) {
                    return Err(at("sources", format!("no source with id {source:?}")));
                }
            }
            let Some(registration) = rollcall_core::sink_registration(&sink.kind) else {
                let known: Vec<_> = rollcall_core::sink_registrations()
                    .iter()
                    .map(|r| r.kind)
                    .collect();
                return Err(at(
                    "type",
                    format!(
                        "unknown sink type {:?} (this build has: {})",
                        sink.kind,
                        known.join(", ")
                    ),
                ));
            };
            let options = rollcall_core::SinkOptions::new(&sink.id, sink.options.clone());
            if let Err(error) = (registration.build)(&options) {
                return Err(at(&option_key(&error), error.message));
            }
        }
        // An empty token (`token = ""`, or `${VAR}` set to nothing) would otherwise be a
        // token that every request without credentials matches: never a way to turn auth off.
        if self
            .admin
            .scoped_tokens()
            .iter()
            .any(|(token, _)| token.expose().trim().is_empty())
        {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "admin", "token"),
                key: Some("admin.token".to_owned()),
                message: "must not be empty or whitespace (remove the key to run without a \
                          token on loopback)"
                    .to_owned(),
            });
        }
        if !self.admin.listen.ip().is_loopback() && self.admin.scoped_tokens().is_empty() {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "admin", "listen"),
                key: Some("admin.token".to_owned()),
                message: "required when admin listens beyond loopback".to_owned(),
            });
        }
        if let StoreConfig::Postgres {
            schema, pool_size, ..
        } = &self.store
        {
            let store_at = |key: &str, message: String| ConfigError {
                file: None,
                line: find_section_key_line(text, "store", key),
                key: Some(format!("store.{key}")),
                message,
            };
            if !rollcall_store::is_valid_postgres_schema(schema) {
                return Err(store_at(
                    "schema",
                    format!(
                        "{schema:?} is not a schema name rollcall accepts: lower-case letters, \
                         digits and _, not starting with a digit or pg_, at most 63"
                    ),
                ));
            }
            if *pool_size < 2 {
                return Err(store_at(
                    "pool_size",
                    "must be at least 2 (ingest holds one connection while reads use others)"
                        .to_owned(),
                ));
            }
        }
        let RetentionKeys {
            retention_hours,
            dedup_retention_hours,
            ..
        } = self.store.retention_keys();
        if retention_hours > 0
            && dedup_retention_hours > 0
            && dedup_retention_hours < retention_hours
        {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "store", "dedup_retention_hours"),
                key: Some("store.dedup_retention_hours".to_owned()),
                message: format!(
                    "must be 0 (keep forever) or at least store.retention_hours ({retention_hours}): \
                     a repeated delivery whose events are still in the journal must stay a duplicate"
                ),
            });
        }
        let ingest_at = |key: &str, message: String| ConfigError {
            file: None,
            line: find_section_key_line(text, "ingest", key),
            key: Some(format!("ingest.{key}")),
            message,
        };
        for (key, value) in [
            (
                "request_timeout_seconds",
                self.ingest.request_timeout_seconds,
            ),
            ("body_timeout_seconds", self.ingest.body_timeout_seconds),
            (
                "header_read_timeout_seconds",
                self.ingest.header_read_timeout_seconds,
            ),
            ("max_connections", self.ingest.max_connections as u64),
            ("max_body_bytes", self.ingest.max_body_bytes as u64),
            (
                "max_requests_per_source",
                self.ingest.max_requests_per_source as u64,
            ),
        ] {
            if value == 0 {
                return Err(ingest_at(key, "must be at least 1".to_owned()));
            }
        }
        let in_flight = self.ingest.max_body_bytes_in_flight;
        // An eighth is reserved for small bodies; the rest must hold the largest one.
        if in_flight - in_flight / 8 < self.ingest.max_body_bytes {
            return Err(ingest_at(
                "max_body_bytes_in_flight",
                format!(
                    "must be at least 8/7 of ingest.max_body_bytes ({}): an eighth is kept \
                     for small bodies, and the rest must hold a body of the largest accepted size",
                    self.ingest.max_body_bytes
                ),
            ));
        }
        if u32::try_from(self.ingest.max_body_bytes).is_err() {
            return Err(ingest_at(
                "max_body_bytes",
                "must be less than 4 GiB".to_owned(),
            ));
        }
        if self.ingest.body_timeout_seconds >= self.ingest.request_timeout_seconds {
            return Err(ingest_at(
                "body_timeout_seconds",
                format!(
                    "must be less than ingest.request_timeout_seconds ({}), so a slow body is \
                     answered 408 body_timeout before the request times out",
                    self.ingest.request_timeout_seconds
                ),
            ));
        }
        for (key, value) in [
            (
                "header_read_timeout_seconds",
                self.admin.header_read_timeout_seconds,
            ),
            ("max_connections", self.admin.max_connections as u64),
        ] {
            if value == 0 {
                return Err(ConfigError {
                    file: None,
                    line: find_section_key_line(text, "admin", key),
                    key: Some(format!("admin.{key}")),
                    message: "must be at least 1".to_owned(),
                });
            }
        }
        if self.traces.otlp_endpoint.is_some() && !cfg!(feature = "otlp") {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "traces", "otlp_endpoint"),
                key: Some("traces.otlp_endpoint".to_owned()),
                message: "this build exports no traces (build rollcall with --features otlp)"
                    .to_owned(),
            });
        }
        if self.delivery.lease_seconds < 2 {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "delivery", "lease_seconds"),
                key: Some("delivery.lease_seconds".to_owned()),
                message: "must be at least 2 (a worker renews its lease past half its life)"
                    .to_owned(),
            });
        }
        if self.delivery.batch_size == 0 {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "delivery", "batch_size"),
                key: Some("delivery.batch_size".to_owned()),
                message: "must be at least 1 (with 0 no event would ever be delivered)".to_owned(),
            });
        }
        if self.delivery.max_attempts == 0 {
            return Err(ConfigError {
                file: None,
                line: find_section_key_line(text, "delivery", "max_attempts"),
                key: Some("delivery.max_attempts".to_owned()),
                message: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

/// The top-level option a component's error is about. serde reports unknown and missing
/// fields at the table itself (`.`), so the field's name is taken from the message.
fn option_key(error: &rollcall_core::ConfigError) -> String {
    let top = error.key.split('.').next().unwrap_or("");
    if !top.is_empty() {
        return top.to_owned();
    }
    ["unknown field `", "missing field `"]
        .iter()
        .find_map(|marker| {
            error
                .message
                .split_once(marker)
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(name, _)| name.to_owned())
        })
        .unwrap_or_default()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A TOML error as a configuration error, with the line of its span in `text` and, for an
/// unknown key, that key's own line.
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_owned();
    let span_line = error.span().map(|span| line_of(text, span.start));
    // For an unknown key inside a tagged table (`[store]`) the span covers the whole table;
    // the key's own line is more useful.
    let key = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    let line = key
        .as_deref()
        .and_then(|key| first_key_line(text, key, span_line.unwrap_or(1)))
        .or(span_line);
    ConfigError {
        file: None,
        line,
        key,
        message,
    }
}

/// Replaces `${NAME}` in every string value of `table` (nested tables and arrays
/// included). An unset variable is an error naming the line of the text it is on.
fn interpolate_table(
    table: &mut toml::Table,
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (_, value) in table.iter_mut() {
        interpolate_value(value, text, env)?;
    }
    Ok(())
}

fn interpolate_value(
    value: &mut toml::Value,
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(string) if string.contains("${") => {
            *string = interpolate(string, text, env)?;
        }
        toml::Value::Array(items) => {
            for item in items {
                interpolate_value(item, text, env)?;
            }
        }
        toml::Value::Table(table) => interpolate_table(table, text, env)?,
        _ => {}
    }
    Ok(())
}

/// `value` with each `${NAME}` replaced by the variable's value, taken as it is.
fn interpolate(
    value: &str,
    text: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let at = |needle: &str, message: String| {
            let line = variable_line(text, needle);
            ConfigError {
                file: None,
                line,
                key: line.and_then(|line| {
                    text.lines()
                        .nth(line - 1)
                        .and_then(|line| key_of_line(split_comment(line).0))
                }),
                message,
            }
        };
        let Some(end) = after.find('}') else {
            return Err(at("${", "unterminated `${`".to_owned()));
        };
        let name = &after[..end];
        let needle = format!("${{{name}}}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(at(
                &needle,
                format!("`{needle}` is not a valid variable name"),
            ));
        }
        let Some(variable) = env(name) else {
            return Err(at(
                &needle,
                format!("environment variable {name} is not set"),
            ));
        };
        out.push_str(&variable);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The first line (1-based) holding `needle` outside a comment.
fn variable_line(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|line| split_comment(line).0.contains(needle))
        .map(|index| index + 1)
}

/// Splits a line at a `#` that is outside any string.
fn split_comment(line: &str) -> (&str, &str) {
    let mut in_basic = false;
    let mut in_literal = false;
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_basic => escaped = true,
            '"' if !in_literal => in_basic = !in_basic,
            '\'' if !in_basic => in_literal = !in_literal,
            '#' if !in_basic && !in_literal => return line.split_at(index),
            _ => {}
        }
    }
    (line, "")
}

fn key_of_line(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_owned())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The first line at or after `from` (1-based) that sets `key`.
fn first_key_line(text: &str, key: &str, from: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| key_of_line(split_comment(line).0).as_deref() == Some(key))
        .map(|(number, _)| number + 1)
}

/// The line of `key` inside the `index`-th `[[array]]` table, or of the table header.
fn find_key_line(text: &str, array: &str, index: usize, key: &str) -> Option<usize> {
    let header = format!("[[{array}]]");
    let mut count = 0;
    let mut inside = false;
    let mut header_line = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if trimmed.starts_with(&header) {
                inside = count == index;
                if inside {
                    header_line = Some(number + 1);
                }
                count += 1;
            } else {
                inside = false;
            }
            continue;
        }
        if inside && key_of_line(split_comment(line).0).as_deref() == Some(key) {
            return Some(number + 1);
        }
    }
    header_line
}

fn find_section_key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = format!("[{section}]");
    let mut inside = false;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed.starts_with(&header);
            continue;
        }
        if inside && key_of_line(split_comment(line).0).as_deref() == Some(key) {
            return Some(number + 1);
        }
    }
    None
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
        key: None,
        message: format!("cannot read: {error}"),
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
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_text(&read_file(path)?, overrides).map_err(|mut error| {
            error.file = Some(path.to_path_buf());
            error
        })
    }

    /// The defaults with `overrides` applied (`ROLLCALL_ADMIN_LISTEN`, `ROLLCALL_ADMIN_TOKEN`).
    pub fn from_overrides(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_text("", overrides)
    }

    fn load_text(text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut document: toml::Table =
            toml::from_str(text).map_err(|error| toml_error(text, &error))?;
        let mut admin = toml::Table::new();
        if let Some(table) = document.remove("admin") {
            admin.insert("admin".to_owned(), table);
        }
        interpolate_table(&mut admin, text, &|name: &str| std::env::var(name).ok())?;
        overrides.only("admin").apply(&mut admin)?;
        let table = admin
            .remove("admin")
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        table
            .try_into()
            .map_err(|error: toml::de::Error| toml_error(text, &error))
    }
}

/// The prefix of the environment variables that override configuration keys:
/// `ROLLCALL_<TABLE>_<KEY>` sets `key` of `[table]` (`ROLLCALL_INGEST_LISTEN`,
/// `ROLLCALL_ADMIN_TOKEN`, `ROLLCALL_LOG_FORMAT`).
pub const ENV_PREFIX: &str = "ROLLCALL_";

/// The tables whose keys can be overridden; `[[sources]]` and `[[sinks]]` are lists, and
/// their values take `${VARS}` instead.
const OVERRIDABLE_TABLES: &[&str] = &["ingest", "admin", "store", "delivery", "log", "traces"];

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
                (OVERRIDABLE_TABLES.contains(&table) && !key.is_empty()).then(|| Override {
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

    /// Writes each value into `document`, typed as the schema types its key.
    fn apply(&self, document: &mut toml::Table) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let schema = schema();
        for item in &self.0 {
            let error = |message: String| ConfigError {
                file: None,
                line: None,
                key: Some(format!("{}.{}", item.table, item.key)),
                message: format!("{message} (set by {})", item.origin),
            };
            let property = &schema["properties"][&item.table]["properties"][&item.key];
            if property.is_null() {
                return Err(error("unknown key".to_owned()));
            }
            let value = typed_value(&item.value, property).map_err(error)?;
            let table = document
                .entry(item.table.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(table) = table else {
                return Err(error(format!(
                    "[{}] is not a table in the file",
                    item.table
                )));
            };
            table.insert(item.key.clone(), value);
        }
        Ok(())
    }
}

/// `text` as the JSON Schema `property` types it: a string stays a string (a token of
/// digits is still a token); numbers, booleans and arrays (in TOML syntax) are parsed.
fn typed_value(text: &str, property: &serde_json::Value) -> Result<toml::Value, String> {
    let trimmed = text.trim();
    match property["type"].as_str() {
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

/// A complete example configuration, built from the registered connectors and sinks.
pub fn example() -> String {
    let mut text = String::from(
        "# rollcall configuration. `${NAME}` is replaced by the environment variable NAME.\n\n\
         [ingest]\nlisten = \"127.0.0.1:8080\"\nmax_body_bytes = 1048576\n\
         request_timeout_seconds = 30\nbody_timeout_seconds = 20\n\
         header_read_timeout_seconds = 10\nmax_connections = 1024\n\
         max_body_bytes_in_flight = 67108864\nmax_requests_per_source = 256\n\n\
         [admin]\nlisten = \"127.0.0.1:9090\"\nheader_read_timeout_seconds = 10\nmax_connections = 64\n\
         # token = \"${ROLLCALL_ADMIN_TOKEN}\"   # required when admin listens beyond loopback\n\n\
         [store]\ntype = \"sqlite\"\npath = \"rollcall-data/rollcall.db\"\n\
         # delivered events leave the journal after this many hours (0 keeps them)\n\
         retention_hours = 168\n\
         # dedup keys are remembered this long: 0, or at least retention_hours\n\
         dedup_retention_hours = 720\n\
         # open quarantined deliveries are dropped after this many hours (0 keeps them)\n\
         quarantine_retention_hours = 720\n\
         # and the oldest beyond this many MiB of bodies (0: no cap)\n\
         quarantine_max_mib = 1024\n\n\
         [delivery]\ninitial_backoff_ms = 500\nmax_backoff_ms = 300000\n\n",
    );
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

/// A JSON Schema of the configuration file, with the connectors and sink types of this
/// build. Connector and sink options are documented in their pages; here they are open.
pub fn schema() -> serde_json::Value {
    let connectors: Vec<_> = rollcall_core::registrations()
        .iter()
        .map(|r| r.name)
        .collect();
    let sinks: Vec<_> = rollcall_core::sink_registrations()
        .iter()
        .map(|r| r.kind)
        .collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rollcall configuration",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "ingest": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "listen": {"type": "string", "default": "127.0.0.1:8080", "description": "address:port of the ingest listener"},
                    "max_body_bytes": {"type": "integer", "minimum": 1, "default": 1048576},
                    "request_timeout_seconds": {"type": "integer", "minimum": 1, "default": 30},
                    "body_timeout_seconds": {"type": "integer", "minimum": 1, "default": 20, "description": "less than request_timeout_seconds; a slower body is answered 408 body_timeout"},
                    "header_read_timeout_seconds": {"type": "integer", "minimum": 1, "default": 10, "description": "time to send a complete request head, from connect or the end of the previous request (also the idle keep-alive timeout)"},
                    "max_connections": {"type": "integer", "minimum": 1, "default": 1024},
                    "max_body_bytes_in_flight": {"type": "integer", "minimum": 1, "default": 67108864, "description": "body bytes all unanswered ingest requests may hold together; at least max_body_bytes; beyond it 503/429 ingest_busy with Retry-After"},
                    "max_requests_per_source": {"type": "integer", "minimum": 1, "default": 256, "description": "requests one source may have in flight; beyond it 503/429 ingest_busy with Retry-After"}
                }
            },
            "admin": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "listen": {"type": "string", "default": "127.0.0.1:9090"},
                    "token": {"type": "string", "minLength": 1, "description": "bearer token with every right (scope operate); a token is required when listen is not loopback; never empty"},
                    "tokens": {"type": "array", "default": [], "description": "more bearer tokens, each with its scope: read (GET: metrics, users, events, SCIM) or operate (also replays and other actions)", "items": {"type": "object", "additionalProperties": false, "required": ["token", "scope"], "properties": {"token": {"type": "string", "minLength": 1}, "scope": {"enum": ["read", "operate"]}}}},
                    "header_read_timeout_seconds": {"type": "integer", "minimum": 1, "default": 10},
                    "max_connections": {"type": "integer", "minimum": 1, "default": 64},
                    "allowed_hosts": {"type": "array", "items": {"type": "string"}, "default": [], "description": "host names the token-less admin listener answers to besides its bind address, localhost and loopback"}
                }
            },
            "store": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "type": {"enum": ["sqlite", "postgres"], "default": "sqlite"},
                    "path": {"type": "string", "default": "rollcall-data/rollcall.db", "description": "sqlite only: the database file"},
                    "url": {"type": "string", "description": "postgres only (required there): postgres://user:password@host:5432/database; put the password in ${ENV}"},
                    "schema": {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$", "default": "rollcall", "description": "postgres only: the schema holding rollcall's tables"},
                    "pool_size": {"type": "integer", "minimum": 2, "default": 16, "description": "postgres only: connections per replica"},
                    "retention_hours": {"type": "integer", "minimum": 0, "default": 168, "description": "hours a delivered event stays in the journal (replayed quarantine entries and dead letters: after their replay); 0 keeps everything"},
                    "dedup_retention_hours": {"type": "integer", "minimum": 0, "default": 720, "description": "hours a dedup key is remembered; 0 keeps them; otherwise at least retention_hours"},
                    "quarantine_retention_hours": {"type": "integer", "minimum": 0, "default": 720, "description": "hours an open (never replayed) quarantined delivery is kept; 0 keeps them until replayed"},
                    "quarantine_max_mib": {"type": "integer", "minimum": 0, "default": 1024, "description": "MiB the bodies of open quarantined deliveries may take; beyond it the oldest are deleted; 0: no cap"}
                }
            },
            "log": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "format": {"type": "string", "enum": ["text", "json"], "default": "text", "description": "json: every line on standard error is one JSON object (start-up lines included)"}
                }
            },
            "traces": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "otlp_endpoint": {"type": "string", "description": "OTLP/HTTP (protobuf) traces URL of a collector, e.g. http://127.0.0.1:4318/v1/traces; needs a build with the otlp feature"},
                    "service_name": {"type": "string", "default": "rollcall", "description": "the service.name resource attribute of exported spans"}
                }
            },
            "delivery": {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "max_attempts": {"type": "integer", "minimum": 1, "description": "attempts before an event is a dead letter, unless the sink's retry_horizon_hours is spent first; unset: no limit"},
                    "initial_backoff_ms": {"type": "integer", "minimum": 0, "default": 500},
                    "max_backoff_ms": {"type": "integer", "minimum": 0, "default": 300000},
                    "batch_size": {"type": "integer", "minimum": 1, "default": 256},
                    "lease_seconds": {"type": "integer", "minimum": 2, "default": 30, "description": "how long a sink's delivery lease lasts; a replica that dies hands its sinks over within it"}
                }
            },
            "sources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "connector"],
                    "properties": {
                        "id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
                        "connector": {"enum": connectors},
                        "sync_interval": {"type": ["string", "integer"], "description": "how often to reconcile with the vendor's user listing: \"30m\", \"6h\", \"1d\" or seconds (at least 60)"}
                    }
                }
            },
            "sinks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type"],
                    "properties": {
                        "id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
                        "type": {"enum": sinks},
                        "sources": {"type": "array", "items": {"type": "string"}},
                        "types": {"type": "array", "items": {"enum": ["user.created", "user.updated", "user.deleted"]}},
                        "format": {"enum": ["native", "cloudevents"], "default": "native"},
                        "concurrency": {"type": "integer", "minimum": 1, "maximum": 1024},
                        "retry_horizon_hours": {"type": "number", "exclusiveMinimum": 0, "default": 72},
                        "start": {"enum": ["beginning", "now"], "default": "beginning"},
                        "rate_limit_per_second": {"type": "number", "exclusiveMinimum": 0},
                        "breaker_failures": {"type": "integer", "minimum": 1, "default": 5}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
