//! `redis`: each event appended to a Redis stream with `XADD`.
//!
//! The entry is `XADD <stream> [MAXLEN ~ <maxlen>] * id <event id> type <event type>
//! source <source id> content_type <content type> body <rendered event>`, the stream key
//! with `{type}` and `{source}` filled in. Redis assigns the entry id. Redis streams do not
//! deduplicate: a retried event is appended again, and consumers deduplicate by `id`.
//!
//! | outcome | result |
//! |---|---|
//! | `XADD` answered with an entry id | delivered |
//! | `WRONGTYPE` (the key holds something other than a stream) | permanent |
//! | another rejection of the command (`ERR`, `NOPERM`) | permanent |
//! | no connection, a dropped connection, a timeout | transient |
//! | any failure while connecting (authentication included) | transient |
//! | the server's state (`OOM`, `LOADING`, `BUSY`, `READONLY`, `MASTERDOWN`, `TRYAGAIN`...) | transient |
//!
//! The sink connects on its first event, not when it is built (`rollcall config check`
//! builds sinks and needs no server), over one multiplexed connection. After any transient
//! failure the connection is dropped and the next event connects afresh.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind};
use rollcall_core::{ConfigError, OutboundEvent, Sink, SinkError, SinkOptions, SinkRegistration};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::broker::{seconds, Template};

/// The `type` of a `[[sinks]]` table.
pub const KIND: &str = "redis";

/// The server when `url` is not set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Connecting, and each `XADD` until its answer, must finish within this by default.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 5;

/// The largest `maxlen` Redis accepts (a signed 64-bit count).
const MAX_MAXLEN: u64 = i64::MAX as u64;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RedisOptions {
    /// May carry a password (`redis://:password@host`, `redis://user:password@host`).
    #[serde(default = "default_url")]
    url: String,
    /// Optional only so that its absence is reported under its own key.
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    maxlen: Option<u64>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

const fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// Appends each event to a Redis stream.
#[derive(Clone)]
pub struct RedisSink {
    sink_id: String,
    /// The URL without credentials, for messages and `Debug`.
    shown_url: String,
    client: ::redis::Client,
    stream: Template,
    maxlen: Option<u64>,
    timeout: Duration,
    /// The connection, once one succeeded and until it fails.
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl fmt::Debug for RedisSink {
    // The URL's password is a secret, and the client's `Debug` would show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSink")
            .field("sink_id", &self.sink_id)
            .field("url", &self.shown_url)
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// Reads and checks the options. Nothing connects until the first event.
    pub fn from_options(options: &SinkOptions) -> Result<Self, ConfigError> {
        let parsed: RedisOptions = options.parse()?;
        let client = parse_url(&parsed.url)?;
        let stream = parsed
            .stream
            .as_deref()
            .ok_or_else(|| {
                ConfigError::new(
                    "stream",
                    "required: the stream key to XADD to, e.g. \"rollcall:users\"",
                )
            })
            .and_then(|text| {
                Template::parse(text).map_err(|message| ConfigError::new("stream", message))
            })?;
        if parsed
            .maxlen
            .is_some_and(|maxlen| maxlen == 0 || maxlen > MAX_MAXLEN)
        {
            return Err(ConfigError::new(
                "maxlen",
                format!("must be between 1 and {MAX_MAXLEN} (leave it out to keep every entry)"),
            ));
        }
        let timeout = seconds("timeout_seconds", parsed.timeout_seconds)?;
        Ok(Self {
            sink_id: options.sink_id.clone(),
            shown_url: shown_url(&parsed.url),
            client,
            stream,
            maxlen: parsed.maxlen,
            timeout,
            connection: Arc::new(Mutex::new(None)),
        })
    }

    /// The connection, made now if there is none.
    async fn connect(&self) -> Result<MultiplexedConnection, SinkError> {
        let mut connection = self.connection.lock().await;
        if let Some(connection) = connection.as_ref() {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let made = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(made)) => made,
            Ok(Err(error)) => {
                return Err(SinkError::transient(format!(
                    "cannot connect to {}: {error}",
                    self.shown_url
                )))
            }
            Err(_) => {
                return Err(SinkError::transient(format!(
                    "cannot connect to {}: no answer within {}s",
                    self.shown_url,
                    self.timeout.as_secs()
                )))
            }
        };
        *connection = Some(made.clone());
        Ok(made)
    }

    /// Drops the connection so that the next event connects afresh.
    async fn disconnect(&self) {
        *self.connection.lock().await = None;
    }

    async fn append(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let key = self.stream.render(event);
        let command = xadd(&key, self.maxlen, event);
        let mut connection = self.connect().await?;
        let adding = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(self.timeout, adding).await {
            Ok(Ok(entry_id)) => {
                tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, stream = %key, %entry_id, "appended");
                Ok(())
            }
            Ok(Err(error)) => {
                let failure = failed_xadd(&error, &key);
                // A refused command leaves a healthy connection; after anything else the
                // next event starts on a fresh one.
                if !failure.is_permanent() {
                    self.disconnect().await;
                }
                Err(failure)
            }
            Err(_) => {
                self.disconnect().await;
                Err(SinkError::transient(format!(
                    "XADD {key:?}: no answer within {}s",
                    self.timeout.as_secs()
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl Sink for RedisSink {
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let result = self.append(event).await;
        if let Err(error) = &result {
            tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, %error, "not appended");
        }
        result
    }
}

/// `XADD key [MAXLEN ~ n] * id .. type .. source .. content_type .. body ..`.
fn xadd(key: &str, maxlen: Option<u64>, event: &OutboundEvent) -> ::redis::Cmd {
    let mut command = ::redis::cmd("XADD");
    command.arg(key);
    if let Some(maxlen) = maxlen {
        command.arg("MAXLEN").arg("~").arg(maxlen);
    }
    command
        .arg("*")
        .arg("id")
        .arg(&event.event_id)
        .arg("type")
        .arg(event.event_type.as_str())
        .arg("source")
        .arg(&event.source)
        .arg("content_type")
        .arg(event.content_type)
        .arg("body")
        .arg(event.body.as_ref());
    command
}

/// What a failed `XADD` means for the event.
fn failed_xadd(error: &RedisError, key: &str) -> SinkError {
    if error.code() == Some("WRONGTYPE") {
        return SinkError::permanent(format!(
            "XADD {key:?}: the key holds a value that is not a stream: {error}"
        ));
    }
    match error.kind() {
        // The server refused this command: like an HTTP 4xx, a retry gets the same answer.
        ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm) => {
            SinkError::permanent(format!("XADD {key:?} was refused: {error}"))
        }
        _ => SinkError::transient(format!("XADD {key:?} failed: {error}")),
    }
}

fn parse_url(text: &str) -> Result<::redis::Client, ConfigError> {
    let text = text.trim();
    let scheme = text.split_once("://").map_or("", |(scheme, _)| scheme);
    if matches!(scheme, "rediss" | "valkeys") {
        return Err(ConfigError::new(
            "url",
            format!(
                "{scheme}:// is not supported: this build of rollcall has no TLS for Redis; \
                 use redis:// (for example through a local TLS-terminating proxy)"
            ),
        ));
    }
    // The client's messages never repeat the URL, which may carry a password.
    ::redis::Client::open(text).map_err(|error| {
        ConfigError::new(
            "url",
            format!(
                "not a Redis URL (redis://[[user]:password@]host[:port][/db] or \
                 redis+unix:///path): {error}"
            ),
        )
    })
}

/// `scheme://host:port/path` from a server URL: no user, password or token (the part
/// before `@`), no query (a Unix-socket URL may carry `?pass=`) and no fragment.
fn shown_url(url: &str) -> String {
    let url = url.trim();
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL this module would accept; show nothing of it that could be a secret.
        return "<not a URL>".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

fn build(options: &SinkOptions) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(RedisSink::from_options(options)?))
}

const EXAMPLE_CONFIG: &str = r#"[[sinks]]
id = "cache"
type = "redis"
# Optional (this is the default). A password goes in the URL: redis://:password@host:6379/0.
url = "redis://127.0.0.1:6379"
# Required. The stream key; {type} becomes user.created, user.updated or user.deleted,
# {source} the source id.
stream = "rollcall:users"
# Optional. Trims the stream to about this many entries (XADD MAXLEN ~); unbounded when absent.
maxlen = 100000
# Optional. Connecting, and each XADD until its answer, in seconds.
timeout_seconds = 5
"#;

rollcall_core::inventory::submit! {
    SinkRegistration {
        kind: KIND,
        description: "an XADD per event to a Redis stream",
        build,
        example_config: EXAMPLE_CONFIG,
        options_schema: Some(rollcall_core::options_schema::<RedisOptions>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> OutboundEvent {
        OutboundEvent {
            event_id: "01JDX6V3R9M5Q8Z0K2B7C4N1HT".to_owned(),
            event_type: rollcall_core::EventType::Updated,
            source: "okta-main".to_owned(),
            received_at: rollcall_core::Timestamp::now(),
            content_type: "application/json",
            body: r#"{"a":1}"#.into(),
        }
    }

    fn words(command: &::redis::Cmd) -> Vec<String> {
        command
            .args_iter()
            .map(|arg| match arg {
                ::redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<not a simple argument>".to_owned(),
            })
            .collect()
    }

    #[test]
    fn a_shown_url_has_no_credentials_query_or_fragment() {
        for (url, shown) in [
            ("redis://:p@ss@127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            (
                "redis+unix:///run/redis.sock?pass=x#y",
                "redis+unix:///run/redis.sock",
            ),
            (" redis://u:p@h ", "redis://h"),
            ("redis://127.0.0.1", "redis://127.0.0.1"),
            (":pw@host", "<not a URL>"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }

    #[test]
    fn the_command_carries_every_field() {
        assert_eq!(
            words(&xadd("k", None, &event())),
            [
                "XADD",
                "k",
                "*",
                "id",
                "01JDX6V3R9M5Q8Z0K2B7C4N1HT",
                "type",
                "user.updated",
                "source",
                "okta-main",
                "content_type",
                "application/json",
                "body",
                r#"{"a":1}"#,
            ]
        );
    }

    #[test]
    fn maxlen_trims_approximately() {
        assert_eq!(
            words(&xadd("k", Some(1000), &event()))[..6],
            ["XADD", "k", "MAXLEN", "~", "1000", "*"]
        );
    }

    /// The error a server answer `-<line>` becomes.
    fn answered(line: &str) -> RedisError {
        let value = ::redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        value.extract_error().unwrap_err()
    }

    #[test]
    fn refusals_of_the_command_are_permanent() {
        for line in [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR syntax error",
            "NOPERM User rollcall has no permissions to access the 'rollcall:users' key",
        ] {
            let error = answered(line);
            assert!(failed_xadd(&error, "k").is_permanent(), "{line}");
        }
    }

    #[test]
    fn the_server_state_and_the_connection_are_transient() {
        for line in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "NOAUTH Authentication required.",
        ] {
            let error = answered(line);
            assert!(!failed_xadd(&error, "k").is_permanent(), "{line}");
        }
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!failed_xadd(&io, "k").is_permanent());
    }
}
