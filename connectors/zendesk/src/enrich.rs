//! Completing partial users from the Zendesk Support API.
//!
//! A webhook's `detail` lacks the user's name, phone, photo, locale, time zone and status, so
//! every webhook event is `partial`. With API credentials configured, [`Enricher::enrich`]
//! fetches `GET {base}/api/v2/users/{id}.json` (HTTP basic auth `{email}/token:{api_token}`),
//! maps the Support user it returns with the connector's bare-user mapping
//! ([`mapping::user_from_support`]) and makes it the event's user: the API object is the
//! user's current state, so it replaces the webhook's partial user (its `remote_data` is the
//! API object) and the event is no longer partial. The event's type and `changes` (what the
//! webhook said changed) are kept.
//!
//! Guards, all per source:
//!
//! * a timeout per request (`api_timeout_ms`, default 3000);
//! * a rate limit (`api_rate_per_second`, default 10, burst of one second's worth; the
//!   shared [`VendorApi`]'s, on `governor`): when it is spent the event is not enriched,
//!   rather than waiting;
//! * a circuit breaker (rollcall-core's shared [`CircuitBreaker`]): after
//!   [`BREAKER_THRESHOLD`] consecutive failures it opens for
//!   `api_breaker_cooldown_ms` (default 30 s) and events are not enriched; then one request
//!   is let through (half-open): success closes the breaker, failure opens it again. A 429
//!   with `Retry-After` opens it for that long.
//!
//! Not enriching is not a failure: `enrich` then returns `Ok(())` and leaves the event
//! partial, which the host counts as `skipped`. Failures return [`EnrichError`] (the event is
//! left unchanged), with messages that carry neither the token nor the user's data.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rollcall_core::backoff::{Backoff, BreakerState, CircuitBreaker, Health};
use rollcall_core::{
    ConfigError, EnrichError, EventType, ListCursor, ListError, Secret, User, UserEvent, UserPage,
};
use rollcall_vendor_api::{ApiError, ApiErrorKind, ApiSettings, VendorApi};

use crate::mapping;
use crate::payload::{self, Payload};

/// Default `api_timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// Default `api_rate_per_second`.
pub const DEFAULT_RATE_PER_SECOND: f64 = 10.0;
/// Default `api_breaker_cooldown_ms`.
pub const DEFAULT_BREAKER_COOLDOWN_MS: u64 = 30_000;
/// Consecutive failures that open the circuit breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// The largest response body read: a Support user is a few kilobytes.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long a half-open trial request holds off other requests beyond its own timeout, in
/// case it is cancelled and never reports back.
const TRIAL_MARGIN: Duration = Duration::from_secs(1);

/// The enrichment options of a source, as configured.
#[derive(Debug, Default)]
pub struct EnrichOptions<'a> {
    pub api_token: Option<&'a Secret>,
    pub email: Option<&'a str>,
    pub subdomain: Option<&'a str>,
    pub api_base_url: Option<&'a str>,
    pub api_timeout_ms: Option<u64>,
    pub api_rate_per_second: Option<f64>,
    pub api_breaker_cooldown_ms: Option<u64>,
}

impl EnrichOptions<'_> {
    fn any(&self) -> bool {
        self.api_token.is_some()
            || self.email.is_some()
            || self.subdomain.is_some()
            || self.api_base_url.is_some()
            || self.api_timeout_ms.is_some()
            || self.api_rate_per_second.is_some()
            || self.api_breaker_cooldown_ms.is_some()
    }
}

/// Fetches users from one Zendesk account's API, within the source's guards.
#[derive(Debug)]
pub struct Enricher {
    /// Its rate limit is shared by enrichment (which skips when it is spent) and listing
    /// (which waits).
    api: VendorApi,
    email: String,
    api_token: Secret,
    guard: Mutex<Guard>,
}

impl Enricher {
    /// The enricher for a source's options: `None` when no enrichment option is set.
    ///
    /// `api_token`, `email` and `subdomain` go together; the other options need them. The
    /// API base URL must be `http://` or `https://` (TLS is rustls with built-in roots).
    pub fn from_options(options: &EnrichOptions<'_>) -> Result<Option<Self>, ConfigError> {
        if !options.any() {
            return Ok(None);
        }
        let together = "is required for enrichment (api_token, email and subdomain go together)";
        let api_token = options
            .api_token
            .ok_or_else(|| ConfigError::new("api_token", together))?;
        if api_token.expose().trim().is_empty() {
            return Err(ConfigError::new("api_token", "must not be empty"));
        }
        let email = options
            .email
            .map(str::trim)
            .ok_or_else(|| ConfigError::new("email", together))?;
        if email.is_empty() || !email.contains('@') {
            return Err(ConfigError::new(
                "email",
                "must be the email address of the API token's user",
            ));
        }
        let subdomain = options
            .subdomain
            .map(str::trim)
            .ok_or_else(|| ConfigError::new("subdomain", together))?;
        let valid_label = !subdomain.is_empty()
            && subdomain
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
        if !valid_label {
            return Err(ConfigError::new(
                "subdomain",
                "must be the account's subdomain (`acme` for acme.zendesk.com)",
            ));
        }
        let default_base_url = format!("https://{subdomain}.zendesk.com");
        let api = VendorApi::new(&ApiSettings {
            vendor: "Zendesk",
            base_url_option: "api_base_url",
            base_url: options.api_base_url.unwrap_or(&default_base_url),
            rate_per_second: options
                .api_rate_per_second
                .unwrap_or(DEFAULT_RATE_PER_SECOND),
            timeout_ms: options.api_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            refused: ("the credentials", "check email and api_token"),
            default_retry_after: DEFAULT_LIST_RETRY_AFTER,
            reset_header: None,
        })?;
        let cooldown = Duration::from_millis(
            options
                .api_breaker_cooldown_ms
                .unwrap_or(DEFAULT_BREAKER_COOLDOWN_MS),
        );
        Ok(Some(Self {
            api,
            email: email.to_owned(),
            api_token: api_token.clone(),
            guard: Mutex::new(Guard {
                breaker: CircuitBreaker::new(BREAKER_THRESHOLD, Backoff::new(cooldown, cooldown)),
            }),
        }))
    }

    /// The API base URL requests go to (`http://127.0.0.1:8080`), without a trailing `/`.
    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    /// Completes a partial event from the API; see the module docs for the rules.
    pub async fn enrich(&self, event: &mut UserEvent) -> Result<(), EnrichError> {
        // A full user needs nothing; a deleted user is gone (the API answers 404).
        if !event.partial || event.event_type == EventType::Deleted {
            return Ok(());
        }
        let id = zendesk_user_id(&event.user.id)?;
        let Some(trial) = self.admit(Instant::now()) else {
            return Ok(());
        };
        let fetched = self.fetch(id).await;
        let (health, result) = match fetched {
            Ok(user) => (Health::Healthy, complete(event, user)),
            Err(failure) => (failure.health, Err(failure.error)),
        };
        self.record(health, trial, Instant::now());
        result
    }

    /// Whether a request may go out now: `None` to skip it (breaker open, a half-open trial
    /// already in flight, or no token left), else whether it is the half-open trial.
    fn admit(&self, now: Instant) -> Option<bool> {
        let mut guard = self.lock();
        let trial = match guard.breaker.state(now) {
            BreakerState::Closed => false,
            BreakerState::Open => return None,
            BreakerState::HalfOpen => true,
        };
        if !self.api.try_take() {
            return None;
        }
        if trial {
            guard
                .breaker
                .start_trial(now + self.api.timeout() + TRIAL_MARGIN);
        }
        Some(trial)
    }

    /// One page of the account's users (`GET /api/v2/users.json` with cursor pagination,
    /// 100 per page), each mapped with the bare-user mapping the webhooks use. Waits for the
    /// source's rate limit (shared with enrichment) instead of skipping; a 429 pauses
    /// enrichment too (the breaker) and is answered with its `Retry-After`.
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        self.api.wait_for_rate_limit().await;
        let mut request = self
            .authorized(self.api.get("/api/v2/users.json"))
            .query(&[("page[size]", LIST_PAGE_SIZE)]);
        if let Some(cursor) = cursor {
            request = request.query(&[("page[after]", cursor.as_str())]);
        }
        let answer = self.api.send(request, "user listing", MAX_PAGE_BYTES).await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                let failure = self.api.list_error(error.clone());
                let health = match (&error.kind, &failure) {
                    (ApiErrorKind::Transport, _) => Some(Health::Failing),
                    (_, ListError::RateLimited { retry_after }) => {
                        Some(Health::RetryAfter(*retry_after))
                    }
                    _ => None,
                };
                if let Some(health) = health {
                    self.record(health, false, Instant::now());
                }
                return Err(failure);
            }
        };
        parse_user_page(&answer.body)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(
            format!("{}/token", self.email),
            Some(self.api_token.expose()),
        )
    }

    fn record(&self, health: Health, trial: bool, now: Instant) {
        self.lock().breaker.record(health, trial, now);
    }

    fn lock(&self) -> MutexGuard<'_, Guard> {
        // The guard holds counters only: a panic elsewhere leaves them usable.
        self.guard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `GET /api/v2/users/{id}.json`, mapped to a unified user.
    async fn fetch(&self, id: &str) -> Result<User, Failure> {
        let request = self.authorized(self.api.get(&format!("/api/v2/users/{id}.json")));
        let body = match self
            .api
            .send(request, "user request", MAX_RESPONSE_BYTES)
            .await
        {
            Ok(answer) => answer.body,
            Err(error) => return Err(Failure::from_api(error)),
        };
        let bare = match payload::parse(&body) {
            Ok(Payload::User(bare)) => bare,
            Ok(Payload::Webhook(_)) => {
                return Err(Failure::failing(
                    false,
                    "the Zendesk API answered something other than a user object",
                ))
            }
            // Where it failed, not what was there: a value could be personal data.
            Err(error) => {
                let at = error.path().unwrap_or(".").to_owned();
                return Err(Failure::failing(
                    false,
                    format!("the Zendesk API's user object is not readable at {at}"),
                ));
            }
        };
        let payload::BareUser { user, raw, .. } = *bare;
        if user.id.as_deref() != Some(id) {
            return Err(Failure::healthy(
                false,
                "the Zendesk API answered with another user (merged?)",
            ));
        }
        Ok(mapping::user_from_support(&user, id.to_owned(), raw.into()))
    }
}

/// Users per listing page (the Users API's maximum).
const LIST_PAGE_SIZE: &str = "100";
/// The largest listing page read: 100 users of a few kilobytes.
const MAX_PAGE_BYTES: usize = 8 << 20;
/// The pause after a 429 without a readable `Retry-After`.
const DEFAULT_LIST_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A Users API page: `{"users": [...], "meta": {"has_more", "after_cursor"}}`, each user
/// mapped with [`mapping::user_from_support`] (the bare-user webhook's mapping).
pub fn parse_user_page(body: &[u8]) -> Result<UserPage, ListError> {
    #[derive(serde::Deserialize)]
    struct Page {
        users: Vec<serde_json::Value>,
        #[serde(default)]
        meta: Meta,
    }
    #[derive(serde::Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        has_more: bool,
        #[serde(default)]
        after_cursor: Option<String>,
    }
    let page: Page = serde_json::from_slice(body).map_err(|error| {
        ListError::failed(
            false,
            format!(
                "the Zendesk user page is not readable (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    let mut users = Vec::with_capacity(page.users.len());
    for (index, raw) in page.users.into_iter().enumerate() {
        let support: payload::SupportUser = serde_json::from_value(raw.clone()).map_err(|_| {
            ListError::failed(
                false,
                format!("users[{index}] is not a Zendesk user object"),
            )
        })?;
        let Some(id) = support.id.clone() else {
            return Err(ListError::failed(
                false,
                format!("users[{index}] has no id"),
            ));
        };
        users.push(mapping::user_from_support(&support, id, raw.into()));
    }
    let next = match (page.meta.has_more, page.meta.after_cursor) {
        (true, Some(cursor)) if !cursor.is_empty() => Some(ListCursor::new(cursor)),
        (true, _) => {
            return Err(ListError::failed(
                false,
                "the Zendesk user page says has_more without an after_cursor",
            ))
        }
        (false, _) => None,
    };
    Ok(UserPage {
        users,
        next,
        unlisted: &[],
    })
}

/// Makes the API's user the event's user, unless the API's state is older than the event.
fn complete(event: &mut UserEvent, user: User) -> Result<(), EnrichError> {
    if let (Some(event_time), Some(api_time)) = (event.user.updated_at, user.updated_at) {
        if api_time < event_time {
            // A lagging read: the webhook's delta is newer than what the API returned.
            return Err(enrich_error(
                true,
                "the Zendesk API returned a user older than the event",
            ));
        }
    }
    event.user = user;
    event.partial = false;
    Ok(())
}

/// The user id as a path segment: Zendesk ids are numbers.
fn zendesk_user_id(id: &str) -> Result<&str, EnrichError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(enrich_error(false, "the user id is not a Zendesk user id"))
    }
}

fn enrich_error(retryable: bool, message: impl Into<String>) -> EnrichError {
    EnrichError {
        message: message.into(),
        retryable,
    }
}

/// A failed fetch and what it says about the API's health.
struct Failure {
    error: EnrichError,
    health: Health,
}

impl Failure {
    /// The API answered properly, but not with a usable user (404, another user).
    fn healthy(retryable: bool, message: impl Into<String>) -> Self {
        Self {
            error: enrich_error(retryable, message),
            health: Health::Healthy,
        }
    }

    /// What a failed call says about the user and the API's health: a `404` is a proper
    /// answer (an unknown user); a `429` with `Retry-After` pauses enrichment for that long.
    fn from_api(error: ApiError) -> Self {
        match error.kind {
            ApiErrorKind::Status { status: 404 } => {
                Self::healthy(false, "the Zendesk API does not know the user (404)")
            }
            ApiErrorKind::RateLimited {
                retry_after: Some(wait),
            } => Self {
                error: enrich_error(
                    true,
                    format!(
                        "{}; pausing enrichment for {} s",
                        error.message,
                        wait.as_secs()
                    ),
                ),
                health: Health::RetryAfter(wait),
            },
            _ => Self::failing(error.is_retryable(), error.message),
        }
    }

    /// The API failed: counts towards opening the breaker.
    fn failing(retryable: bool, message: impl Into<String>) -> Self {
        Self {
            error: enrich_error(retryable, message),
            health: Health::Failing,
        }
    }
}

#[derive(Debug)]
struct Guard {
    breaker: CircuitBreaker,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numeric_ids_go_into_the_path() {
        assert_eq!(zendesk_user_id("6596848315901"), Ok("6596848315901"));
        for bad in ["", "../admin", "1/2", "12a", "123456789012345678901"] {
            let error = zendesk_user_id(bad).unwrap_err();
            assert!(!error.retryable);
        }
    }
}
