//! Listing agents and requesters from the Freshservice API v2, for sync.
//!
//! `GET {api_base_url}/api/v2/agents?per_page=100&page=N`, then the same for
//! `/api/v2/requesters`, with HTTP basic auth (the API key as the user name, `X` as the
//! password), following the `Link: <...page=N+1...>; rel="next"` header. Together they are
//! the account's users. The cursor names the listing and the page (`agents:2`,
//! `requesters:1`).
//!
//! Each user goes through the webhook mapping ([`crate::mapping::map_user`]); an agent's
//! `email` is read as the webhooks' `primary_email`. The lists carry roles, groups,
//! departments and workspaces as ids only, where the webhooks carry them with names: the
//! page leaves them to what webhooks told ([`UserPage::unlisted`]).

use std::time::Duration;

use rollcall_core::rate::RateLimit;
use rollcall_core::sync::{next_link, parse_retry_after};
use rollcall_core::{ConfigError, ListCursor, ListError, Secret, UserPage};
use serde_json::Value;

use crate::mapping;

const PER_PAGE: &str = "100";
/// Default `api_rate_per_second` (Freshservice plans allow 40 to 500 calls a minute).
pub const DEFAULT_RATE_PER_SECOND: f64 = 1.0;
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
const MAX_BODY_BYTES: usize = 16 << 20;
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Fields the lists state by id only.
const UNLISTED: &[&str] = &["roles", "groups", "organizations", "workspace"];

/// The two listings, in order: (cursor name, path, the answer's array key).
const LISTINGS: &[(&str, &str, &str)] = &[
    ("agents", "/api/v2/agents", "agents"),
    ("requesters", "/api/v2/requesters", "requesters"),
];

/// The listing options of a source, as configured.
#[derive(Debug, Default)]
pub struct ListingOptions<'a> {
    pub api_key: Option<&'a Secret>,
    pub domain: Option<&'a str>,
    pub api_base_url: Option<&'a str>,
    pub api_rate_per_second: Option<f64>,
    pub api_timeout_ms: Option<u64>,
}

/// Lists one account's agents and requesters.
#[derive(Debug)]
pub struct Lister {
    client: reqwest::Client,
    base_url: String,
    api_key: Secret,
    rate_limit: RateLimit,
}

impl Lister {
    /// `None` when no listing option is set; `api_key` and `domain` go together.
    pub fn from_options(options: &ListingOptions<'_>) -> Result<Option<Self>, ConfigError> {
        let any = options.api_key.is_some()
            || options.domain.is_some()
            || options.api_base_url.is_some()
            || options.api_rate_per_second.is_some()
            || options.api_timeout_ms.is_some();
        if !any {
            return Ok(None);
        }
        let together = "is required to list users (api_key and domain go together)";
        let api_key = options
            .api_key
            .ok_or_else(|| ConfigError::new("api_key", together))?;
        if api_key.expose().trim().is_empty() {
            return Err(ConfigError::new("api_key", "must not be empty"));
        }
        let domain = options
            .domain
            .map(str::trim)
            .ok_or_else(|| ConfigError::new("domain", together))?;
        let valid = !domain.is_empty()
            && domain
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
        if !valid {
            return Err(ConfigError::new(
                "domain",
                "must be the account's domain (`acme.freshservice.com`)",
            ));
        }
        let base_url = match options.api_base_url {
            Some(url) => url.trim().trim_end_matches('/').to_owned(),
            None => format!("https://{domain}"),
        };
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
            api_key: api_key.clone(),
            rate_limit,
        }))
    }

    /// One page of agents or requesters from `cursor`.
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        let (listing, page) = read_cursor(cursor)?;
        let (name, path, key) = LISTINGS[listing];
        while let Some(wait) = self.rate_limit.wait_time() {
            tokio::time::sleep(wait).await;
        }
        let page_text = page.to_string();
        let mut response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .query(&[("per_page", PER_PAGE), ("page", page_text.as_str())])
            .basic_auth(self.api_key.expose(), Some("X"))
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
                    format!("the Freshservice API refused the key ({status}): it needs an agent who can view agents and requesters"),
                ))
            }
            code => {
                return Err(ListError::failed(
                    code >= 500,
                    format!("the Freshservice API answered {code} to the {name} list"),
                ))
            }
        }
        let has_next = next_link(
            response
                .headers()
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        )
        .is_some();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(ListError::failed(
                            false,
                            format!("a Freshservice {name} page is over {MAX_BODY_BYTES} bytes"),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => return Err(ListError::failed(true, transport_message(&error))),
            }
        }
        let users = parse_users(&body, key)?;
        let next = if has_next {
            Some(format!("{name}:{}", page + 1))
        } else {
            LISTINGS
                .get(listing + 1)
                .map(|(next_name, _, _)| format!("{next_name}:1"))
        };
        Ok(UserPage {
            users,
            next: next.map(ListCursor::new),
            unlisted: UNLISTED,
        })
    }
}

/// Which listing (index into [`LISTINGS`]) and page a cursor names.
fn read_cursor(cursor: Option<&ListCursor>) -> Result<(usize, u32), ListError> {
    let Some(cursor) = cursor else {
        return Ok((0, 1));
    };
    let invalid = || ListError::failed(false, "not a Freshservice listing cursor");
    let (name, page) = cursor.as_str().split_once(':').ok_or_else(invalid)?;
    let listing = LISTINGS
        .iter()
        .position(|(known, _, _)| *known == name)
        .ok_or_else(invalid)?;
    let page: u32 = page.parse().map_err(|_| invalid())?;
    if page == 0 {
        return Err(invalid());
    }
    Ok((listing, page))
}

/// The users of an agents or requesters page, mapped as the webhooks map `data.user`.
pub fn parse_users(body: &[u8], key: &str) -> Result<Vec<rollcall_core::User>, ListError> {
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        ListError::failed(
            false,
            format!(
                "the Freshservice {key} page is not JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    let Some(listed) = document.get(key).and_then(Value::as_array) else {
        return Err(ListError::failed(
            false,
            format!("the Freshservice page has no `{key}` array"),
        ));
    };
    let mut users = Vec::with_capacity(listed.len());
    for (index, raw) in listed.iter().enumerate() {
        let mut raw = raw.clone();
        if let Value::Object(object) = &mut raw {
            // Agents carry their address as `email`; the webhooks as `primary_email`.
            if !object.contains_key("primary_email") {
                if let Some(email) = object.remove("email") {
                    object.insert("primary_email".to_owned(), email);
                }
            }
        }
        users.push(
            mapping::map_user(raw, &format!("{key}[{index}]"), false)
                .map_err(|error| ListError::failed(false, error.to_string()))?,
        );
    }
    Ok(users)
}

fn transport_message(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the Freshservice API did not answer in time".to_owned();
    }
    if error.is_connect() {
        return "cannot connect to the Freshservice API".to_owned();
    }
    let mut message = "request to the Freshservice API failed".to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
