//! `http`: a POST per event, signed with Standard Webhooks headers.
//!
//! The request carries the rendered event as its body, the event's `content-type`, and
//! `webhook-id` (the event id, stable across retries, so the receiver can deduplicate),
//! `webhook-timestamp` (when this attempt was signed) and, when a `signing_secret` is set,
//! `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`).
//!
//! The answer decides the retry:
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | delivered |
//! | 408, 429, 5xx | transient, with the `Retry-After` hint when one is sent |
//! | 3xx | permanent: redirects are not followed |
//! | other 4xx, anything else | permanent |
//! | no connection, timeout, connection dropped | transient |
//!
//! `http://` and `https://` URLs are accepted; TLS is rustls with the Mozilla root
//! certificates built in (webpki-roots), so no system certificate store is needed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use rollcall_core::retry_after::parse_retry_after;
use rollcall_core::verify::StandardWebhooks;
use rollcall_core::{
    ConfigError, OutboundEvent, Secret, Sink, SinkError, SinkOptions, SinkRegistration, Timestamp,
};
use serde::Deserialize;

/// The `type` of a `[[sinks]]` table.
pub const KIND: &str = "http";

/// The whole exchange (connect, send, answer) must finish within this by default.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// Connecting must finish within this by default.
pub const DEFAULT_CONNECT_TIMEOUT_SECONDS: u64 = 5;
/// The longest timeout an option may ask for.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// At most this much of an error answer's body is read, and at most
/// [`ERROR_BODY_CHARS`] of it is quoted in the error message.
const ERROR_BODY_BYTES: usize = 512;
const ERROR_BODY_CHARS: usize = 200;
/// A successful answer's body up to this size is read to the end, within
/// [`DRAIN_TIME`], so the connection can be reused; a larger or slower one is dropped.
const DRAIN_BYTES: u64 = 16 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

const USER_AGENT: &str = concat!("rollcall/", env!("CARGO_PKG_VERSION"));

/// Headers the sink sets itself; the `headers` option may not name them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    StandardWebhooks::ID_HEADER,
    StandardWebhooks::TIMESTAMP_HEADER,
    StandardWebhooks::SIGNATURE_HEADER,
];

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpOptions {
    /// Optional only so that its absence is reported under its own key.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    signing_secret: Option<Secret>,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_seconds: u64,
    /// Values are often credentials (`authorization`), so they are held as secrets.
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
}

const fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

const fn default_connect_timeout() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECONDS
}

/// POSTs each event to one URL.
#[derive(Clone)]
pub struct HttpSink {
    sink_id: String,
    client: reqwest::Client,
    url: Url,
    signer: Option<StandardWebhooks>,
    headers: HeaderMap,
    timeout: Duration,
}

impl fmt::Debug for HttpSink {
    // The URL's credentials and query and the extra headers' values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("sink_id", &self.sink_id)
            .field("url", &redacted(&self.url))
            .field("signed", &self.signer.is_some())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// Reads and checks the options; the secret, the URL and the headers are all
    /// validated here, so a bad one is a configuration error, never a failed delivery.
    pub fn from_options(options: &SinkOptions) -> Result<Self, ConfigError> {
        let parsed: HttpOptions = options.parse()?;
        let url = parsed
            .url
            .as_deref()
            .ok_or_else(|| {
                ConfigError::new(
                    "url",
                    "required: the http:// or https:// URL to POST events to",
                )
            })
            .and_then(parse_url)?;
        let signer = parsed
            .signing_secret
            .as_ref()
            .map(|secret| {
                StandardWebhooks::new(secret)
                    .map_err(|message| ConfigError::new("signing_secret", message))
            })
            .transpose()?;
        let timeout = seconds("timeout_seconds", parsed.timeout_seconds)?;
        let connect_timeout = seconds("connect_timeout_seconds", parsed.connect_timeout_seconds)?;
        let headers = extra_headers(&parsed.headers)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|error| {
                ConfigError::new(
                    "url",
                    format!("cannot build the HTTP client: {}", describe(error)),
                )
            })?;
        Ok(Self {
            sink_id: options.sink_id.clone(),
            client,
            url,
            signer,
            headers,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl Sink for HttpSink {
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        let timestamp = Timestamp::now().unix_seconds();
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, event.content_type)
            .header(StandardWebhooks::ID_HEADER, event.event_id.as_str())
            .header(StandardWebhooks::TIMESTAMP_HEADER, timestamp.to_string());
        if let Some(signer) = &self.signer {
            request = request.header(
                StandardWebhooks::SIGNATURE_HEADER,
                signer.sign(&event.event_id, timestamp, &event.body),
            );
        }
        let result = match request.body(event.body.clone()).send().await {
            Ok(response) => answer(response).await,
            Err(error) => Err(failed_request(error, self.timeout)),
        };
        match &result {
            Ok(()) => {
                tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, "delivered")
            }
            Err(error) => {
                tracing::debug!(sink = %self.sink_id, event_id = %event.event_id, %error, "not delivered")
            }
        }
        result
    }
}

/// What an HTTP status means for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Failed(Failure),
}

/// How an answer that is not a success fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Redirected,
    Transient,
    Permanent,
}

fn verdict(status: StatusCode) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Delivered,
        300..=399 => Verdict::Failed(Failure::Redirected),
        408 | 429 | 500..=599 => Verdict::Failed(Failure::Transient),
        _ => Verdict::Failed(Failure::Permanent),
    }
}

async fn answer(mut response: reqwest::Response) -> Result<(), SinkError> {
    let status = response.status();
    let failure = match verdict(status) {
        Verdict::Delivered => {
            drain(response).await;
            return Ok(());
        }
        Verdict::Failed(failure) => failure,
    };
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    let body = error_body(&mut response).await;
    let answered = if body.is_empty() {
        format!("the endpoint answered {status}")
    } else {
        format!("the endpoint answered {status}: {body}")
    };
    Err(match failure {
        Failure::Transient => SinkError::Transient {
            message: answered,
            retry_after,
        },
        Failure::Redirected => SinkError::permanent(format!(
            "{answered} (redirects are not followed: configure the final URL)"
        )),
        Failure::Permanent => SinkError::permanent(answered),
    })
}

/// Reads a small successful answer to its end so the connection can go back to the pool.
async fn drain(mut response: reqwest::Response) {
    if response
        .content_length()
        .is_none_or(|length| length > DRAIN_BYTES)
    {
        return;
    }
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Ok(Some(_)) = response.chunk().await {}
    })
    .await;
}

/// The start of an error answer's body, on one line, for the error message.
async fn error_body(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    let mut complete = false;
    while bytes.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => {
                complete = true;
                break;
            }
            // The status already says what happened; the body is only a hint.
            Err(_) => break,
        }
    }
    scrubbed_body(&bytes, complete)
}

/// The error answer's body as the error message quotes it: scrubbed of email addresses,
/// phone numbers and tokens ([`rollcall_core::scrub`]), since receivers echo what they were
/// sent and the message is logged and stored with the dead letter. A body cut by the read
/// limit loses its last, partial word when it holds a digit or `@`, so half a phone number or
/// token cannot slip past the scrub.
fn scrubbed_body(bytes: &[u8], complete: bool) -> String {
    let limit = bytes.len().min(ERROR_BODY_BYTES);
    let complete = complete && limit == bytes.len();
    let text = String::from_utf8_lossy(&bytes[..limit]);
    // The last word of a cut body may be part of a phone number or token too short to be
    // recognised; with a digit or `@` in it, it goes.
    let risky = |word: &str| word.chars().any(|c| c.is_ascii_digit() || c == '@');
    let text = match text.rfind(char::is_whitespace) {
        Some(end) if !complete && risky(&text[end..]) => &text[..end],
        None if !complete && risky(&text) => "",
        _ => &text[..],
    };
    let quoted = quote_body(
        rollcall_core::scrub::snippet(text, ERROR_BODY_CHARS * 2).as_bytes(),
        true,
    );
    if !complete && !quoted.is_empty() && !quoted.ends_with('…') {
        return format!("{quoted}…");
    }
    quoted
}

/// At most [`ERROR_BODY_CHARS`] characters of `bytes`, whitespace and control characters
/// folded to single spaces, with `…` when something was left out.
fn quote_body(bytes: &[u8], complete: bool) -> String {
    let limit = bytes.len().min(ERROR_BODY_BYTES);
    let mut cut = limit < bytes.len() || !complete;
    let text = String::from_utf8_lossy(&bytes[..limit]);
    let mut quoted = String::new();
    let mut pending_space = false;
    for (count, character) in text.chars().enumerate() {
        if count >= ERROR_BODY_CHARS {
            cut = true;
            break;
        }
        if character.is_whitespace() || character.is_control() {
            pending_space = !quoted.is_empty();
            continue;
        }
        if pending_space {
            quoted.push(' ');
            pending_space = false;
        }
        quoted.push(character);
    }
    if cut {
        // A multi-byte character split by the byte limit decodes as U+FFFD.
        while quoted.ends_with('\u{FFFD}') {
            quoted.pop();
        }
        if !quoted.is_empty() {
            quoted.push('…');
        }
    }
    quoted
}

fn failed_request(error: reqwest::Error, timeout: Duration) -> SinkError {
    if error.is_builder() {
        // The only per-event input that reaches a header is the event id.
        return SinkError::permanent(format!("cannot build the request: {}", describe(error)));
    }
    let what = if error.is_timeout() {
        format!("no complete answer within {}s", timeout.as_secs())
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    SinkError::transient(format!("{what}: {}", describe(error)))
}

/// The error and its causes, without the URL (its query may hold a token).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn parse_url(text: &str) -> Result<Url, ConfigError> {
    // The parser's messages never repeat the input, which may carry credentials.
    let url = Url::parse(text.trim())
        .map_err(|error| ConfigError::new("url", format!("not a URL: {error}")))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(ConfigError::new(
                "url",
                format!("the {other}: scheme is not supported; use an http:// or https:// URL"),
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new("url", "has no host"));
    }
    Ok(url)
}

/// `http://host:port/path`, without credentials, query or fragment.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
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

fn extra_headers(headers: &BTreeMap<String, Secret>) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let key = format!("headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(&key, "not a valid header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(ConfigError::new(&key, "is set by the sink itself"));
        }
        let mut value = HeaderValue::from_str(value.expose())
            .map_err(|_| ConfigError::new(&key, "not a valid header value"))?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

fn build(options: &SinkOptions) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(HttpSink::from_options(options)?))
}

const EXAMPLE_CONFIG: &str = r#"[[sinks]]
id = "provisioning"
type = "http"
url = "http://127.0.0.1:9000/rollcall"
# Optional. Standard Webhooks secret (`whsec_` + base64); adds `webhook-signature`.
signing_secret = "${PROVISIONING_WEBHOOK_SECRET}"
# Optional. The whole exchange, and connecting alone, in seconds.
timeout_seconds = 10
connect_timeout_seconds = 5
# Optional. Extra static headers sent with every request.
headers = { authorization = "Bearer ${PROVISIONING_TOKEN}" }
"#;

rollcall_core::inventory::submit! {
    SinkRegistration {
        kind: KIND,
        description: "a POST per event, signed with Standard Webhooks headers",
        build,
        example_config: EXAMPLE_CONFIG,
        options_schema: Some(rollcall_core::options_schema::<HttpOptions>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECTED: Verdict = Verdict::Failed(Failure::Redirected);
    const TRANSIENT: Verdict = Verdict::Failed(Failure::Transient);
    const PERMANENT: Verdict = Verdict::Failed(Failure::Permanent);

    #[test]
    fn each_status_class_gets_its_verdict() {
        let cases = [
            (200, Verdict::Delivered),
            (202, Verdict::Delivered),
            (204, Verdict::Delivered),
            (299, Verdict::Delivered),
            (101, PERMANENT),
            (301, REDIRECTED),
            (302, REDIRECTED),
            (307, REDIRECTED),
            (308, REDIRECTED),
            (400, PERMANENT),
            (401, PERMANENT),
            (404, PERMANENT),
            (408, TRANSIENT),
            (409, PERMANENT),
            (422, PERMANENT),
            (429, TRANSIENT),
            (500, TRANSIENT),
            (502, TRANSIENT),
            (503, TRANSIENT),
            (599, TRANSIENT),
            (600, PERMANENT),
        ];
        for (code, expected) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(verdict(status), expected, "{code}");
        }
    }

    #[test]
    fn a_quoted_body_is_one_short_line() {
        assert_eq!(quote_body(b"  bad\r\n\tinput \n", true), "bad input");
        assert_eq!(quote_body(b"", true), "");
        let long = "x".repeat(1000);
        let quoted = quote_body(long.as_bytes(), false);
        assert_eq!(quoted.chars().count(), ERROR_BODY_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn a_body_cut_inside_a_character_drops_the_fragment() {
        // 170 three-byte characters and an `a` (511 bytes), then a `€` cut after its
        // first byte by the 512-byte limit.
        let mut text = "€".repeat(170);
        text.push_str("a€€");
        let quoted = quote_body(text.as_bytes(), false);
        assert!(!quoted.contains('\u{FFFD}'), "{quoted}");
        assert!(quoted.ends_with("a…"), "{quoted}");
    }

    #[test]
    fn an_error_body_loses_emails_phones_and_tokens_and_the_cut_word() {
        let body = br#"{"error":"user ann@example.com exists","phone":"+36 1 234 5678","key":"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}"#;
        let quoted = scrubbed_body(body, true);
        for leaked in ["ann@", "234 5678", "4eC39"] {
            assert!(!quoted.contains(leaked), "{quoted}");
        }
        assert!(quoted.contains("[email]"), "{quoted}");
        // Cut by the read limit inside an address: the partial word goes.
        let mut long = "x ".repeat(250).into_bytes();
        long.extend_from_slice(b"bob.smith@exam");
        let quoted = scrubbed_body(&long, false);
        assert!(!quoted.contains("bob"), "{quoted}");
        assert!(quoted.ends_with('…'), "{quoted}");
    }

    #[test]
    fn the_shown_url_has_no_credentials_or_query() {
        let url = Url::parse("http://user:pw@example.test:8080/hook?token=abc#x").unwrap();
        assert_eq!(redacted(&url), "http://example.test:8080/hook");
    }
}
