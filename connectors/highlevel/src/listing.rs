//! Listing the users of a sub-account (location) from the HighLevel API v2, for sync.
//!
//! `GET {api_base_url}/users/?locationId={location_id}` with `Authorization: Bearer
//! {api_token}` and `Version: 2021-07-28` answers `{"users": [...]}`, every user of the
//! location at once (no pagination). Each API user is rewritten in the shape of a
//! `UserCreate` webhook body (`role` from `roles.role`; `locationId` for a sub-account user,
//! `companyId` and `locations` from `roles.locationIds` for an agency user) and mapped by
//! the webhook mapping ([`crate::mapping::user`]). A user the API marks `deleted: true` is
//! left out, as if not listed.

use std::time::Duration;

use rollcall_core::rate::RateLimit;
use rollcall_core::sync::parse_retry_after;
use rollcall_core::{ConfigError, EventType, ListCursor, ListError, Secret, UserPage};
use serde_json::{Map, Value};

use crate::mapping;
use crate::payload::UserPayload;

/// HighLevel's API v2 base URL.
pub const DEFAULT_BASE_URL: &str = "https://services.leadconnectorhq.com";
/// The API version the users endpoints are documented under.
const API_VERSION: &str = "2021-07-28";
/// Default `api_rate_per_second` (HighLevel allows 100 requests per 10 s per location).
pub const DEFAULT_RATE_PER_SECOND: f64 = 5.0;
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
const MAX_BODY_BYTES: usize = 16 << 20;
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The API user's keys carried into the webhook-shaped object as they are.
const SAME_KEYS: &[&str] = &[
    "id",
    "firstName",
    "lastName",
    "email",
    "phone",
    "extension",
    "permissions",
];

/// The listing options of a source, as configured.
#[derive(Debug, Default)]
pub struct ListingOptions<'a> {
    pub api_token: Option<&'a Secret>,
    pub location_id: Option<&'a str>,
    pub api_base_url: Option<&'a str>,
    pub api_rate_per_second: Option<f64>,
    pub api_timeout_ms: Option<u64>,
}

/// Lists one location's users.
#[derive(Debug)]
pub struct Lister {
    client: reqwest::Client,
    base_url: String,
    location_id: String,
    api_token: Secret,
    rate_limit: RateLimit,
}

impl Lister {
    /// `None` when no listing option is set; `api_token` and `location_id` go together.
    pub fn from_options(options: &ListingOptions<'_>) -> Result<Option<Self>, ConfigError> {
        let any = options.api_token.is_some()
            || options.location_id.is_some()
            || options.api_base_url.is_some()
            || options.api_rate_per_second.is_some()
            || options.api_timeout_ms.is_some();
        if !any {
            return Ok(None);
        }
        let together = "is required to list users (api_token and location_id go together)";
        let api_token = options
            .api_token
            .ok_or_else(|| ConfigError::new("api_token", together))?;
        if api_token.expose().trim().is_empty() {
            return Err(ConfigError::new("api_token", "must not be empty"));
        }
        let location_id = options
            .location_id
            .map(str::trim)
            .ok_or_else(|| ConfigError::new("location_id", together))?;
        if location_id.is_empty() || !location_id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(
                "location_id",
                "must be the sub-account's location id (letters and digits)",
            ));
        }
        let base_url = options
            .api_base_url
            .unwrap_or(DEFAULT_BASE_URL)
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let parsed = reqwest::Url::parse(&base_url).map_err(|error| {
            ConfigError::new(
                "api_base_url",
                format!("{base_url:?} is not a URL: {error}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none_or(str::is_empty)
            || !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.query().is_some()
        {
            return Err(ConfigError::new(
                "api_base_url",
                "must be an http(s) URL without credentials or query",
            ));
        }
        let rate = options
            .api_rate_per_second
            .unwrap_or(DEFAULT_RATE_PER_SECOND);
        let Some(rate_limit) = RateLimit::per_second(rate) else {
            return Err(ConfigError::new(
                "api_rate_per_second",
                "must be a number above 0",
            ));
        };
        let timeout_ms = options.api_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err(ConfigError::new("api_timeout_ms", "must be at least 1"));
        }
        let timeout = Duration::from_millis(timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                ConfigError::new(
                    "api_base_url",
                    format!("cannot build the HTTP client: {error}"),
                )
            })?;
        Ok(Some(Self {
            client,
            base_url,
            location_id: location_id.to_owned(),
            api_token: api_token.clone(),
            rate_limit,
        }))
    }

    /// Every user of the location: one page.
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        if cursor.is_some() {
            return Err(ListError::failed(
                false,
                "the HighLevel user list has one page: there is no cursor to resume from",
            ));
        }
        while let Some(wait) = self.rate_limit.wait_time() {
            tokio::time::sleep(wait).await;
        }
        let mut response = self
            .client
            .get(format!("{}/users/", self.base_url))
            .query(&[("locationId", self.location_id.as_str())])
            .bearer_auth(self.api_token.expose())
            .header("Version", API_VERSION)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| ListError::failed(true, transport_message(&error)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            429 => {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(parse_retry_after)
                    .unwrap_or(DEFAULT_RETRY_AFTER);
                return Err(ListError::RateLimited { retry_after });
            }
            401 | 403 => {
                return Err(ListError::failed(
                    false,
                    format!("the HighLevel API refused the token ({status}): it needs the users.readonly scope for the location"),
                ))
            }
            code => {
                return Err(ListError::failed(
                    code >= 500,
                    format!("the HighLevel API answered {code} to the user list"),
                ))
            }
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(ListError::failed(
                            false,
                            format!("the HighLevel user list is over {MAX_BODY_BYTES} bytes"),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return Err(ListError::failed(true, transport_message(&error))),
            }
        }
        parse_user_list(&body, &self.location_id)
    }
}

/// A `/users/?locationId=` answer as a page of unified users.
pub fn parse_user_list(body: &[u8], location_id: &str) -> Result<UserPage, ListError> {
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        ListError::failed(
            false,
            format!(
                "the HighLevel user list is not JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    let Some(listed) = document.get("users").and_then(Value::as_array) else {
        return Err(ListError::failed(
            false,
            "the HighLevel user list has no `users` array",
        ));
    };
    let mut users = Vec::with_capacity(listed.len());
    for (index, raw) in listed.iter().enumerate() {
        let Value::Object(object) = raw else {
            return Err(ListError::failed(
                false,
                format!("users[{index}] is not an object"),
            ));
        };
        if object.get("deleted") == Some(&Value::Bool(true)) {
            continue;
        }
        let shaped = as_webhook_user(object, location_id);
        let payload: UserPayload =
            serde_json::from_value(Value::Object(shaped.clone())).map_err(|_| {
                ListError::failed(
                    false,
                    format!("users[{index}] is not a HighLevel user object"),
                )
            })?;
        users.push(
            mapping::user(EventType::Updated, &payload, &shaped)
                .map_err(|error| ListError::failed(false, format!("users[{index}]: {error}")))?,
        );
    }
    Ok(UserPage {
        users,
        next: None,
        unlisted: &[],
    })
}

/// The API user in the shape of a `UserCreate` body (without its envelope keys).
fn as_webhook_user(object: &Map<String, Value>, location_id: &str) -> Map<String, Value> {
    let mut user = Map::new();
    for key in SAME_KEYS {
        if let Some(value) = object.get(*key) {
            user.insert((*key).to_owned(), value.clone());
        }
    }
    let roles = object.get("roles");
    let field = |name: &str| roles.and_then(|roles| roles.get(name)).cloned();
    if let Some(role) = field("role") {
        user.insert("role".to_owned(), role);
    }
    let agency = field("type").as_ref().and_then(Value::as_str) == Some("agency");
    if agency {
        if let Some(company) = object.get("companyId") {
            user.insert("companyId".to_owned(), company.clone());
        }
        if let Some(locations) = field("locationIds") {
            user.insert("locations".to_owned(), locations);
        }
    } else {
        user.insert(
            "locationId".to_owned(),
            Value::String(location_id.to_owned()),
        );
    }
    user
}

fn transport_message(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the HighLevel API did not answer in time".to_owned();
    }
    if error.is_connect() {
        return "cannot connect to the HighLevel API".to_owned();
    }
    let mut message = "request to the HighLevel API failed".to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
