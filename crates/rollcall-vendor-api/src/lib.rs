//! The client a connector calls its vendor's API with, for user listings (sync) and
//! enrichment. It owns what every vendor call shares:
//!
//! * the options: the base URL (`http` or `https`, with a host, no credentials, query or
//!   fragment), `api_rate_per_second` and `api_timeout_ms`;
//! * a `reqwest` client that follows no redirect (a request never leaves the configured
//!   host), sends a `rollcall/<version>` user agent and gives up after the timeout;
//! * the source's rate limit (rollcall-core's [`RateLimit`]): a listing waits for it, an
//!   enrichment skips when it is spent;
//! * reading an answer: a `429` with the wait the vendor asked for (`Retry-After`, or a
//!   reset header the vendor documents), `401`/`403`, other statuses, bodies over a limit,
//!   and transport failures, each an [`ApiErrorKind`] with a message that names the vendor
//!   and carries neither credentials nor the request's URL (it can name a user).
//!
//! A connector keeps what is its own: paths, the auth header, paging and the mapping.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, Url};
use rollcall_core::backoff::MAX_RETRY_AFTER;
use rollcall_core::rate::RateLimit;
use rollcall_core::retry_after::parse_retry_after;
use rollcall_core::{ConfigError, ListError};

/// What a connector knows about its vendor's API, and what the source configured.
#[derive(Debug, Clone)]
pub struct ApiSettings<'a> {
    /// The vendor's name in messages: `Okta` gives "the Okta API answered 500 …".
    pub vendor: &'static str,
    /// The option that sets the base URL, named in configuration errors (`api_base_url`).
    pub base_url_option: &'static str,
    /// The base URL, configured or the vendor's default; surrounding white space and a
    /// trailing `/` are dropped.
    pub base_url: &'a str,
    /// `api_rate_per_second`, the connector's default when not configured.
    pub rate_per_second: f64,
    /// `api_timeout_ms`, the connector's default when not configured: for a whole request,
    /// connecting included.
    pub timeout_ms: u64,
    /// What a `401`/`403` refused and what to check, after "the Okta API refused":
    /// `("the token", "it needs okta.users.read")`.
    pub refused: (&'static str, &'static str),
    /// The wait after a `429` that says nothing readable about when to come back.
    pub default_retry_after: Duration,
    /// A header that tells, in Unix seconds, when the vendor's rate limit resets; read when
    /// a `429` has no `Retry-After` (Okta's `X-Rate-Limit-Reset`).
    pub reset_header: Option<&'static str>,
}

/// One source's client for its vendor's API.
#[derive(Debug)]
pub struct VendorApi {
    client: reqwest::Client,
    /// Without a trailing `/`.
    base_url: String,
    base_path: String,
    vendor: &'static str,
    refused: (&'static str, &'static str),
    timeout: Duration,
    rate_limit: RateLimit,
    default_retry_after: Duration,
    reset_header: Option<&'static str>,
}

/// A successful answer, read to its end.
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a call to a vendor's API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ApiErrorKind,
    /// Names the vendor; carries neither credentials nor the URL.
    pub message: String,
}

/// What kind of failure an [`ApiError`] is, for the caller's retry and health decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// No (complete) answer: a timeout, a connection refused or broken mid-body.
    Transport,
    /// `429`, with the wait the vendor asked for when it said (capped at an hour).
    RateLimited { retry_after: Option<Duration> },
    /// `401` or `403`: the credentials are wrong or lack a permission.
    Refused { status: u16 },
    /// Any other status that is not a success.
    Status { status: u16 },
    /// An answer longer than the caller reads.
    TooLarge,
}

impl ApiError {
    /// Whether asking again could succeed: transport failures, `429` and `5xx`.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ApiErrorKind::Transport | ApiErrorKind::RateLimited { .. } => true,
            ApiErrorKind::Status { status } => status >= 500,
            ApiErrorKind::Refused { .. } | ApiErrorKind::TooLarge => false,
        }
    }
}

impl VendorApi {
    /// Checks the settings and builds the client.
    pub fn new(settings: &ApiSettings<'_>) -> Result<Self, ConfigError> {
        let option = settings.base_url_option;
        let base_url = settings.base_url.trim().trim_end_matches('/').to_owned();
        let parsed = check_base_url(option, &base_url)?;
        let Some(rate_limit) = RateLimit::per_second(settings.rate_per_second) else {
            return Err(ConfigError::new(
                "api_rate_per_second",
                "must be a number above 0",
            ));
        };
        if settings.timeout_ms == 0 {
            return Err(ConfigError::new("api_timeout_ms", "must be at least 1"));
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ConfigError::new(option, format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(Self {
            client,
            base_url,
            base_path: parsed.path().to_owned(),
            vendor: settings.vendor,
            refused: settings.refused,
            timeout,
            rate_limit,
            default_retry_after: settings.default_retry_after,
            reset_header: settings.reset_header,
        })
    }

    /// The base URL requests go to (`http://127.0.0.1:8080`), without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL's path (`/` when it has none).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A `GET` of `path` (starting with `/`) below the base URL, asking for JSON. The
    /// caller adds its query and auth header.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base_url))
            .header(ACCEPT, "application/json")
    }

    /// Takes a request's place in the rate limit if there is one now (an enrichment skips
    /// rather than waits).
    pub fn try_take(&self) -> bool {
        self.rate_limit.try_take()
    }

    /// Waits until the rate limit has a place, and takes it.
    pub async fn wait_for_rate_limit(&self) {
        while let Some(wait) = self.rate_limit.wait_time() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends `request` (its place in the rate limit already taken) and reads a successful
    /// answer of at most `max_body_bytes`. `what` names the request in messages ("user
    /// listing").
    pub async fn send(
        &self,
        request: RequestBuilder,
        what: &str,
        max_body_bytes: usize,
    ) -> Result<Answer, ApiError> {
        let vendor = self.vendor;
        let mut response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            429 => {
                return Err(ApiError {
                    kind: ApiErrorKind::RateLimited {
                        retry_after: self.asked_wait(&response, SystemTime::now()),
                    },
                    message: format!("the {vendor} API is rate limiting (429)"),
                })
            }
            401 | 403 => {
                let (credentials, hint) = self.refused;
                return Err(ApiError {
                    kind: ApiErrorKind::Refused { status },
                    message: format!("the {vendor} API refused {credentials} ({status}): {hint}"),
                });
            }
            _ => {
                return Err(ApiError {
                    kind: ApiErrorKind::Status { status },
                    message: format!("the {vendor} API answered {status} to the {what}"),
                })
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))?
        {
            if body.len() + chunk.len() > max_body_bytes {
                return Err(ApiError {
                    kind: ApiErrorKind::TooLarge,
                    message: format!(
                        "the {vendor} API's answer to the {what} is over {max_body_bytes} bytes"
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            headers: std::mem::take(response.headers_mut()),
            body,
        })
    }

    /// A listing's request: waits for the rate limit, sends, and answers failures as the
    /// host's [`ListError`].
    pub async fn list(
        &self,
        request: RequestBuilder,
        what: &str,
        max_body_bytes: usize,
    ) -> Result<Answer, ListError> {
        self.wait_for_rate_limit().await;
        self.send(request, what, max_body_bytes)
            .await
            .map_err(|error| self.list_error(error))
    }

    /// A failure as a listing's error: a `429` waits what the vendor asked (else the
    /// connector's default pause) and asks for the same page again.
    pub fn list_error(&self, error: ApiError) -> ListError {
        match error.kind {
            ApiErrorKind::RateLimited { retry_after } => ListError::RateLimited {
                retry_after: retry_after.unwrap_or(self.default_retry_after),
            },
            _ => ListError::failed(error.is_retryable(), error.message),
        }
    }

    /// The wait a `429` asks for: `Retry-After`, else the vendor's reset header (a reset
    /// already past means a second).
    fn asked_wait(&self, response: &Response, now: SystemTime) -> Option<Duration> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        if let Some(wait) =
            header(RETRY_AFTER.as_str()).and_then(|value| parse_retry_after(value, now))
        {
            return Some(wait);
        }
        let reset = header(self.reset_header?)?.trim().parse::<u64>().ok()?;
        let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
        Some(match reset.duration_since(now) {
            Ok(wait) if !wait.is_zero() => wait.min(MAX_RETRY_AFTER),
            _ => Duration::from_secs(1),
        })
    }

    /// A transport failure's kind and causes, without the URL (reqwest's `Display` has it,
    /// and a path can name a user).
    fn transport_error(&self, error: &reqwest::Error) -> ApiError {
        let vendor = self.vendor;
        let message = if error.is_timeout() {
            format!(
                "the {vendor} API did not answer within {} ms",
                self.timeout.as_millis()
            )
        } else if error.is_connect() {
            format!("cannot connect to the {vendor} API")
        } else {
            let mut message = format!("request to the {vendor} API failed");
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            message
        };
        ApiError {
            kind: ApiErrorKind::Transport,
            message,
        }
    }
}

/// An `http(s)` URL with a host and without credentials, query or fragment.
fn check_base_url(option: &'static str, base_url: &str) -> Result<Url, ConfigError> {
    let parsed = Url::parse(base_url)
        .map_err(|error| ConfigError::new(option, format!("{base_url:?} is not a URL: {error}")))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(ConfigError::new(
                option,
                format!("the scheme must be http or https, not {other}"),
            ))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(option, "has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::new(
            option,
            "must not carry credentials: they are options of their own",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::new(
            option,
            "must not have a query or a fragment",
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests;
