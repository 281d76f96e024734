//! `nats`: each event published to NATS JetStream, and the publish acknowledged.
//!
//! The message goes to the configured subject (`{type}` and `{source}` filled in), with the
//! rendered event as its payload and two headers: `Nats-Msg-Id` (the event id, the same on
//! every retry, so JetStream drops a redelivery inside the stream's duplicate window) and
//! `Content-Type`. A send succeeds only when JetStream acknowledges that a stream stored
//! the message.
//!
//! | outcome | result |
//! |---|---|
//! | publish acknowledged (stored, or a duplicate already stored) | delivered |
//! | no stream captures the subject (503 no responders) | permanent |
//! | the event is larger than the server's `max_payload` | permanent |
//! | the rendered subject is not a valid subject | permanent |
//! | JetStream rejects the message with a 4xx API error | permanent |
//! | a 5xx API error, no acknowledgement in time, no connection | transient |
//!
//! The sink connects on its first event, not when it is built (`rollcall config check`
//! builds sinks and needs no server). A failed connection is tried again on the next
//! event; once connected, the client reconnects by itself after the server goes away, and
//! a client that fails on its own (its connection task gone) is replaced on the next event.
//! Streams are the operator's: the sink never creates or changes one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{header, ServerAddr};
use rollcall_core::{
    ConfigError, OutboundEvent, Secret, Sink, SinkError, SinkOptions, SinkRegistration,
};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::broker::{seconds, Template};

/// The `type` of a `[[sinks]]` table.
pub const KIND: &str = "nats";

/// The server when `url` is not set.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
/// Connecting, and each publish until its acknowledgement, must finish within this by
/// default.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// The header that carries the event's content type.
pub const CONTENT_TYPE: &str = "Content-Type";

/// What the placeholders are replaced with to check a subject template when it is loaded.
const SAMPLE_TYPE: &str = "user.created";
const SAMPLE_SOURCE: &str = "source";

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NatsOptions {
    /// May carry credentials (`nats://user:password@host`, `nats://token@host`), which
    /// are taken out of it and given to the client as options.
    #[serde(default = "default_url")]
    url: String,
    /// Optional only so that its absence is reported under its own key.
    #[serde(default)]
    subject: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_url() -> String {
    DEFAULT_URL.to_owned()
}

const fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// Publishes each event to a JetStream subject and waits for the acknowledgement.
#[derive(Clone)]
pub struct NatsSink {
    sink_id: String,
    /// Without credentials: the client logs its server addresses at debug level.
    server: ServerAddr,
    credentials: Option<Credentials>,
    subject: Template,
    timeout: Duration,
    /// The client and its JetStream context, once the first connection succeeded.
    connection: Arc<Mutex<Option<Connection>>>,
}

/// What the URL's user part says, given to the client as options, not in the URL.
#[derive(Clone)]
enum Credentials {
    /// `nats://user:password@host`.
    UserAndPassword { user: String, password: Secret },
    /// `nats://token@host`.
    Token(Secret),
}

#[derive(Clone)]
struct Connection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
}

impl fmt::Debug for NatsSink {
    // The URL's user, password or token are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSink")
            .field("sink_id", &self.sink_id)
            .field("url", &self.server.as_url_str())
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|credentials| match credentials {
                        Credentials::UserAndPassword { .. } => "user and password",
                        Credentials::Token(_) => "token",
                    }),
            )
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// Reads and checks the options. Nothing connects until the first event.
    pub fn from_options(options: &SinkOptions) -> Result<Self, ConfigError> {
        let parsed: NatsOptions = options.parse()?;
        let (server, credentials) = parse_url(&parsed.url)?;
        let subject = parsed
            .subject
            .as_deref()
            .ok_or_else(|| {
                ConfigError::new(
                    "subject",
                    "required: the subject to publish to, e.g. \"rollcall.{type}\"",
                )
            })
            .and_then(parse_subject)?;
        let timeout = seconds("timeout_seconds", parsed.timeout_seconds)?;
        Ok(Self {
            sink_id: options.sink_id.clone(),
            server,
            credentials,
            subject,
            timeout,
            connection: Arc::new(Mutex::new(None)),
        })
    }

    /// The connection, made now if there is none yet.
    async fn connect(&self) -> Result<Connection, SinkError> {
        let mut connection = self.connection.lock().await;
        if let Some(connection) = connection.as_ref() {
            return Ok(connection.clone());
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("rollcall sink {}", self.sink_id))
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout));
        options = match &self.credentials {
            Some(Credentials::UserAndPassword { user, password }) => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
            Some(Credentials::Token(token)) => options.token(token.expose().to_owned()),
            None => options,
        };
        let connecting = async_nats::connect_with_options(self.server.clone(), options);
        let client = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                return Err(SinkError::transient(format!(
                    "cannot connect to {}: {}",
                    self.server.as_url_str(),
                    describe(&error)
                )))
            }
            Err(_) => {
                return Err(SinkError::transient(format!(
                    "cannot connect to {}: no answer within {}s",
                    self.server.as_url_str(),
                    self.timeout.as_secs()
                )))
            }
        };
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(self.timeout);
        let made = Connection { client, jetstream };
        *connection = Some(made.clone());
        Ok(made)
    }

    async fn publish(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let subject = self.subject.render(event);
        if let Err(problem) = check_subject(&subject) {
            return Err(SinkError::permanent(format!(
                "cannot publish to {subject:?}: the subject {problem}"
            )));
        }
        check_header_value("the event id", &event.event_id)?;
        let connection = self.connect().await?;
        let max_payload = connection.client.server_info().max_payload;
        let size = message_size(event);
        if max_payload > 0 && size > max_payload {
            return Err(SinkError::permanent(format!(
                "the message is {size} bytes, more than the server's max_payload of \
                 {max_payload} bytes"
            )));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(header::NATS_MESSAGE_ID, event.event_id.as_str());
        headers.insert(CONTENT_TYPE, event.content_type);
        let message = PublishMessage::build()
            .payload(event.body.clone())
            .headers(headers);
        let publishing = async {
            let acknowledgement = connection
                .jetstream
                .send_publish(subject.clone(), message)
                .await?;
            acknowledgement.await
        };
        match tokio::time::timeout(self.timeout, publishing).await {
            Ok(Ok(ack)) => {
                tracing::debug!(
                    sink = %self.sink_id,
                    event_id = %event.event_id,
                    stream = %ack.stream,
                    sequence = ack.sequence,
                    duplicate = ack.duplicate,
                    "published"
                );
                Ok(())
            }
            Ok(Err(error)) => {
                if is_client_failure(&error) {
                    // The client itself is unusable; the next attempt starts a new one.
                    *self.connection.lock().await = None;
                }
                Err(failed_publish(
                    &error,
                    &subject,
                    &self.subject,
                    self.timeout,
                ))
            }
            Err(_) => Err(no_acknowledgement(&subject, self.timeout)),
        }
    }
}

#[async_trait::async_trait]
impl Sink for NatsSink {
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let result = self.publish(event).await;
        if let Err(error) = &result {
            tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, %error, "not published");
        }
        result
    }
}

/// What a failed publish means for the event.
fn failed_publish(
    error: &PublishError,
    subject: &str,
    template: &Template,
    timeout: Duration,
) -> SinkError {
    match error.kind() {
        PublishErrorKind::StreamNotFound => SinkError::permanent(format!(
            "no JetStream stream captures the subject {subject:?} (the server answered 503 no \
             responders): create a stream whose subjects include it, for example \
             `nats stream add ROLLCALL --subjects '{}'`",
            wildcard(template)
        )),
        PublishErrorKind::TimedOut => no_acknowledgement(subject, timeout),
        PublishErrorKind::BrokenPipe => SinkError::transient(format!(
            "publishing to {subject:?}: the connection closed before the acknowledgement"
        )),
        PublishErrorKind::MaxAckPending => SinkError::transient(format!(
            "publishing to {subject:?}: too many acknowledgements pending"
        )),
        // The sink sets no expectation headers, so these mean a server or client bug.
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            SinkError::permanent(format!(
                "publishing to {subject:?}: unexpected answer: {}",
                describe(error)
            ))
        }
        PublishErrorKind::Other => match api_error(error) {
            // Like an HTTP status: 5xx (storage full, no leader) may pass, 4xx will not.
            Some(api) if api.code() >= 500 => SinkError::transient(format!(
                "JetStream did not store the message on {subject:?}: {api}"
            )),
            Some(api) => SinkError::permanent(format!(
                "JetStream rejected the message on {subject:?}: {api}"
            )),
            // The client's own failures (its connection task gone, a garbled answer).
            None => SinkError::transient(format!(
                "publishing to {subject:?} failed: {}",
                describe(error)
            )),
        },
    }
}

/// Whether the failure is the client's own (its connection task gone, its answer channel
/// dropped) rather than the server's answer or a timeout the client recovers from.
fn is_client_failure(error: &PublishError) -> bool {
    match error.kind() {
        PublishErrorKind::BrokenPipe => true,
        PublishErrorKind::Other => api_error(error).is_none(),
        _ => false,
    }
}

fn no_acknowledgement(subject: &str, timeout: Duration) -> SinkError {
    SinkError::transient(format!(
        "publishing to {subject:?}: no acknowledgement within {}s",
        timeout.as_secs()
    ))
}

/// The JetStream API error the server answered with, when that is the cause.
fn api_error(error: &PublishError) -> Option<&async_nats::jetstream::Error> {
    std::error::Error::source(error)?.downcast_ref()
}

/// The error and its causes on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// A subject that captures every subject the template renders: the text up to the token
/// holding the first placeholder, then `>`.
fn wildcard(template: &Template) -> String {
    if template.is_fixed() {
        return template.fixed_prefix().to_owned();
    }
    match template.fixed_prefix().rsplit_once('.') {
        Some((tokens, _)) => format!("{tokens}.>"),
        None => ">".to_owned(),
    }
}

/// Whether `subject` is one a message may be published to: dot-separated non-empty
/// tokens, no wildcard token, no whitespace or control characters.
fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("is empty".to_owned());
    }
    if subject
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err("contains whitespace or a control character".to_owned());
    }
    for token in subject.split('.') {
        match token {
            "" => return Err("has an empty token (a leading, trailing or double `.`)".to_owned()),
            "*" | ">" => return Err(format!("has the wildcard token `{token}`")),
            _ => {}
        }
    }
    Ok(())
}

fn parse_subject(text: &str) -> Result<Template, ConfigError> {
    let template = Template::parse(text).map_err(|message| ConfigError::new("subject", message))?;
    let sample = template.render_with(SAMPLE_TYPE, SAMPLE_SOURCE);
    check_subject(&sample).map_err(|problem| {
        ConfigError::new(
            "subject",
            format!("is not a subject to publish to: it {problem}"),
        )
    })?;
    Ok(template)
}

/// The server without credentials, and the credentials the URL carried.
fn parse_url(text: &str) -> Result<(ServerAddr, Option<Credentials>), ConfigError> {
    let text = text.trim();
    if !text.contains("://") {
        return Err(ConfigError::new(
            "url",
            "must be a nats:// or tls:// URL, e.g. \"nats://127.0.0.1:4222\"",
        ));
    }
    // The parser's messages never repeat the input, which may carry credentials.
    let server: ServerAddr = text
        .parse()
        .map_err(|error| ConfigError::new("url", format!("not a NATS URL: {error}")))?;
    match server.scheme() {
        "nats" | "tls" => {}
        other => {
            return Err(ConfigError::new(
                "url",
                format!("the {other}:// scheme is not supported; use nats:// or tls://"),
            ))
        }
    }
    if server.host().is_empty() {
        return Err(ConfigError::new("url", "has no host"));
    }
    let credentials = match (server.username(), server.password()) {
        (None, None) => None,
        (user, Some(password)) => Some(Credentials::UserAndPassword {
            user: percent_decoded("the user", user.unwrap_or_default())?,
            password: Secret::new(percent_decoded("the password", password)?),
        }),
        (Some(token), None) => Some(Credentials::Token(Secret::new(percent_decoded(
            "the token",
            token,
        )?))),
    };
    let mut url = server.into_inner();
    // Neither fails on a nats:// or tls:// URL with a host, which is checked above.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let server = ServerAddr::from_url(url)
        .map_err(|error| ConfigError::new("url", format!("not a NATS URL: {error}")))?;
    Ok((server, credentials))
}

/// `text` with its `%XX` escapes decoded (a URL's user part is percent-encoded).
fn percent_decoded(what: &str, text: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::new("url", format!("{what} is not valid percent-encoded UTF-8"));
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3).ok_or_else(invalid)?;
            let hex = std::str::from_utf8(hex).map_err(|_| invalid())?;
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| invalid())
}

/// An event id goes into a header line; one that could break the line is refused.
fn check_header_value(what: &str, value: &str) -> Result<(), SinkError> {
    if value.is_empty() || value.chars().any(|character| character.is_control()) {
        return Err(SinkError::permanent(format!(
            "{what} {value:?} cannot be a NATS header value"
        )));
    }
    Ok(())
}

/// The bytes the server counts against `max_payload`: the header block and the payload.
fn message_size(event: &OutboundEvent) -> usize {
    const VERSION_LINE: usize = "NATS/1.0\r\n".len();
    const END: usize = "\r\n".len();
    let id = "Nats-Msg-Id: ".len() + event.event_id.len() + END;
    let content_type = "Content-Type: ".len() + event.content_type.len() + END;
    VERSION_LINE + id + content_type + END + event.body.len()
}

fn build(options: &SinkOptions) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(NatsSink::from_options(options)?))
}

const EXAMPLE_CONFIG: &str = r#"[[sinks]]
id = "bus"
type = "nats"
# Optional (this is the default). Credentials may go in the URL: nats://user:password@host
# or nats://token@host; tls:// for TLS.
url = "nats://127.0.0.1:4222"
# Required. {type} becomes user.created, user.updated or user.deleted, {source} the source id.
# A JetStream stream must capture it, e.g. `nats stream add ROLLCALL --subjects 'rollcall.>'`.
subject = "rollcall.{type}"
# Optional. Connecting, and each publish until JetStream acknowledges it, in seconds.
timeout_seconds = 10
"#;

rollcall_core::inventory::submit! {
    SinkRegistration {
        kind: KIND,
        description: "a NATS JetStream publish per event, deduplicated by Nats-Msg-Id",
        build,
        example_config: EXAMPLE_CONFIG,
        options_schema: Some(rollcall_core::options_schema::<NatsOptions>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_to_publish_to_are_checked() {
        for good in ["a", "rollcall.user.created", "a.b-c_d.e$f"] {
            assert_eq!(check_subject(good), Ok(()), "{good}");
        }
        for (bad, expected) in [
            ("", "is empty"),
            ("a..b", "empty token"),
            (".a", "empty token"),
            ("a.", "empty token"),
            ("a.*.b", "wildcard token `*`"),
            ("a.>", "wildcard token `>`"),
            ("a b", "whitespace"),
            ("a\u{7}", "control"),
        ] {
            let problem = check_subject(bad).unwrap_err();
            assert!(problem.contains(expected), "{bad:?}: {problem}");
        }
    }

    #[test]
    fn the_suggested_stream_subject_captures_every_rendered_subject() {
        for (template, expected) in [
            ("rollcall.{type}", "rollcall.>"),
            ("rollcall.users.{source}.{type}", "rollcall.users.>"),
            ("rollcall.x{type}", "rollcall.>"),
            ("{type}", ">"),
            ("rollcall.users", "rollcall.users"),
        ] {
            let template = Template::parse(template).unwrap();
            assert_eq!(wildcard(&template), expected);
        }
    }

    #[test]
    fn credentials_are_taken_out_of_the_url() {
        let (server, credentials) = parse_url("nats://rollcall:p%40ss%20w@nats.test:4333").unwrap();
        assert_eq!(server.as_url_str(), "nats://nats.test:4333");
        match credentials {
            Some(Credentials::UserAndPassword { user, password }) => {
                assert_eq!(user, "rollcall");
                assert_eq!(password.expose(), "p@ss w");
            }
            _ => panic!("expected a user and password"),
        }
        let (server, credentials) = parse_url("tls://s3cr3t@nats.test").unwrap();
        assert_eq!(server.as_url_str(), "tls://nats.test");
        match credentials {
            Some(Credentials::Token(token)) => assert_eq!(token.expose(), "s3cr3t"),
            _ => panic!("expected a token"),
        }
        let (_, credentials) = parse_url("nats://127.0.0.1:4222").unwrap();
        assert!(credentials.is_none());
        let error = parse_url("nats://us%ZZer:pw@nats.test").err().unwrap();
        assert_eq!(error.key, "url");
        assert!(!error.message.contains("pw"), "{error:?}");
    }

    #[test]
    fn the_message_size_counts_headers_and_payload() {
        let event = OutboundEvent {
            event_id: "01JDX6V3R9M5Q8Z0K2B7C4N1HT".to_owned(),
            event_type: rollcall_core::EventType::Created,
            source: "s".to_owned(),
            received_at: rollcall_core::Timestamp::now(),
            content_type: "application/json",
            body: "{}".into(),
        };
        let headers = "NATS/1.0\r\nNats-Msg-Id: 01JDX6V3R9M5Q8Z0K2B7C4N1HT\r\n\
                       Content-Type: application/json\r\n\r\n";
        assert_eq!(message_size(&event), headers.len() + 2);
    }
}
