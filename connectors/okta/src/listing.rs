//! Listing users from the Okta Users API, for sync.
//!
//! `GET {org_url}/api/v1/users?limit=200` with `Authorization: SSWS {api_token}`, following
//! the `Link: <...after=...>; rel="next"` header. That listing leaves out `DEPROVISIONED`
//! users (Okta's default), which webhooks report as deactivated (status `inactive`), so a
//! second listing follows with `search=status eq "DEPROVISIONED"`: together they are every
//! user the org has, and a user absent from both was deleted. The cursor says which listing
//! and where (`users:<after>`, `deprovisioned:`, `deprovisioned:<after>`); only the `after`
//! value is taken from Okta's link, so requests never leave `org_url`.
//!
//! Each user is mapped by [`crate::mapping::user_from_api`] with the decisions the webhook
//! mapping makes for the fields both carry. Group memberships and admin roles are not in
//! the listing (a request per user would be needed): the page says so
//! ([`UserPage::unlisted`]), and the host keeps what webhooks told.

use std::time::Duration;

use rollcall_core::rate::RateLimit;
use rollcall_core::sync::parse_retry_after;
use rollcall_core::{ConfigError, ListCursor, ListError, Secret, UserPage};
use serde_json::Value;

use crate::mapping;

/// Users per page (the Users API's maximum).
const PAGE_SIZE: &str = "200";
/// Default `api_rate_per_second`.
pub const DEFAULT_RATE_PER_SECOND: f64 = 5.0;
/// Default `api_timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The largest page read.
const MAX_PAGE_BYTES: usize = 16 << 20;
/// The pause after a 429 that says nothing readable about when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The search of the second listing.
const DEPROVISIONED_SEARCH: &str = "status eq \"DEPROVISIONED\"";
/// Fields the listing never states.
const UNLISTED: &[&str] = &["groups", "roles"];

/// The listing options of a source, as configured.
#[derive(Debug, Default)]
pub struct ListingOptions<'a> {
    pub api_token: Option<&'a Secret>,
    pub org_url: Option<&'a str>,
    pub api_rate_per_second: Option<f64>,
    pub api_timeout_ms: Option<u64>,
}

/// Lists one org's users within the source's rate limit.
#[derive(Debug)]
pub struct Lister {
    client: reqwest::Client,
    /// Without a trailing `/`.
    org_url: String,
    api_token: Secret,
    rate_limit: RateLimit,
}

impl Lister {
    /// `None` when no listing option is set; `api_token` and `org_url` go together.
    pub fn from_options(options: &ListingOptions<'_>) -> Result<Option<Self>, ConfigError> {
        let any = options.api_token.is_some()
            || options.org_url.is_some()
            || options.api_rate_per_second.is_some()
            || options.api_timeout_ms.is_some();
        if !any {
            return Ok(None);
        }
        let together = "is required to list users (api_token and org_url go together)";
        let api_token = options
            .api_token
            .ok_or_else(|| ConfigError::new("api_token", together))?;
        if api_token.expose().trim().is_empty() {
            return Err(ConfigError::new("api_token", "must not be empty"));
        }
        let org_url = options
            .org_url
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .ok_or_else(|| ConfigError::new("org_url", together))?;
        let parsed = reqwest::Url::parse(&org_url).map_err(|error| {
            ConfigError::new("org_url", format!("{org_url:?} is not a URL: {error}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none_or(str::is_empty)
            || !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.query().is_some()
            || parsed.path() != "/"
        {
            return Err(ConfigError::new(
                "org_url",
                "must be the org's base URL, such as https://acme.okta.com (no path, query or credentials)",
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
                ConfigError::new("org_url", format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(Some(Self {
            client,
            org_url,
            api_token: api_token.clone(),
            rate_limit,
        }))
    }

    /// One page of the org's users from `cursor`.
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        let position = Position::read(cursor)?;
        while let Some(wait) = self.rate_limit.wait_time() {
            tokio::time::sleep(wait).await;
        }
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/users", self.org_url))
            .map_err(|error| ListError::failed(false, format!("bad org_url: {error}")))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", PAGE_SIZE);
            if position.deprovisioned {
                query.append_pair("search", DEPROVISIONED_SEARCH);
            }
            if let Some(after) = &position.after {
                query.append_pair("after", after);
            }
        }
        let response = self
            .client
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("SSWS {}", self.api_token.expose()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| ListError::failed(true, transport_message(&error)))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => {}
            429 => return Err(ListError::RateLimited { retry_after: retry_after(&response) }),
            401 | 403 => {
                return Err(ListError::failed(
                    false,
                    format!("the Okta API refused the token ({status}): it needs okta.users.read (a read-only admin's API token)"),
                ))
            }
            code => {
                return Err(ListError::failed(
                    code >= 500,
                    format!("the Okta API answered {code} to the user listing"),
                ))
            }
        }
        let next_after = next_after(response.headers());
        let body = read_body(response).await?;
        let raw: Vec<Value> = serde_json::from_slice(&body).map_err(|error| {
            ListError::failed(
                false,
                format!(
                    "the Okta user page is not a JSON array of users (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            )
        })?;
        let mut users = Vec::with_capacity(raw.len());
        for (index, user) in raw.iter().enumerate() {
            users.push(mapping::user_from_api(user).map_err(|message| {
                ListError::failed(false, format!("users[{index}]: {message}"))
            })?);
        }
        let next = match (next_after, position.deprovisioned) {
            (Some(after), false) => Some(format!("users:{after}")),
            (Some(after), true) => Some(format!("deprovisioned:{after}")),
            (None, false) => Some("deprovisioned:".to_owned()),
            (None, true) => None,
        };
        Ok(UserPage {
            users,
            next: next.map(ListCursor::new),
            unlisted: UNLISTED,
        })
    }
}

/// Which listing a cursor is in, and from where.
struct Position {
    deprovisioned: bool,
    after: Option<String>,
}

impl Position {
    fn read(cursor: Option<&ListCursor>) -> Result<Self, ListError> {
        let Some(cursor) = cursor else {
            return Ok(Self {
                deprovisioned: false,
                after: None,
            });
        };
        let (listing, after) = cursor
            .as_str()
            .split_once(':')
            .ok_or_else(|| ListError::failed(false, "not an Okta listing cursor"))?;
        let after = (!after.is_empty()).then(|| after.to_owned());
        match listing {
            "users" if after.is_some() => Ok(Self {
                deprovisioned: false,
                after,
            }),
            "deprovisioned" => Ok(Self {
                deprovisioned: true,
                after,
            }),
            _ => Err(ListError::failed(false, "not an Okta listing cursor")),
        }
    }
}

/// The `after` of the `rel="next"` link, if any.
pub fn next_after(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let values = headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let next = reqwest::Url::parse(&rollcall_core::sync::next_link(values)?).ok()?;
    next.query_pairs()
        .find(|(key, _)| key == "after")
        .map(|(_, after)| after.into_owned())
}

/// How long Okta asks to wait: `Retry-After` when sent, else until `X-Rate-Limit-Reset`
/// (Unix seconds), else a minute.
fn retry_after(response: &reqwest::Response) -> Duration {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(wait) = header("retry-after").as_deref().and_then(parse_retry_after) {
        return wait;
    }
    let reset = header("x-rate-limit-reset").and_then(|value| value.trim().parse::<u64>().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    match reset {
        Some(reset) if reset > now => {
            parse_retry_after(&(reset - now).to_string()).unwrap_or(DEFAULT_RETRY_AFTER)
        }
        Some(_) => Duration::from_secs(1),
        None => DEFAULT_RETRY_AFTER,
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ListError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_PAGE_BYTES {
                    return Err(ListError::failed(
                        false,
                        format!("an Okta user page is over {MAX_PAGE_BYTES} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(ListError::failed(true, transport_message(&error))),
        }
    }
}

/// A transport error's kind and causes, without the URL (reqwest's `Display` has it).
fn transport_message(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "the Okta API did not answer in time".to_owned();
    }
    if error.is_connect() {
        return "cannot connect to the Okta API".to_owned();
    }
    let mut message = "request to the Okta API failed".to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_gives_its_after_value() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append(
            reqwest::header::LINK,
            "<https://acme.okta.com/api/v1/users?limit=200>; rel=\"self\""
                .parse()
                .unwrap(),
        );
        headers.append(
            reqwest::header::LINK,
            "<https://acme.okta.com/api/v1/users?after=00ubfjQEMYBLRUWIEDKK&limit=200>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_after(&headers).as_deref(),
            Some("00ubfjQEMYBLRUWIEDKK")
        );
        let mut only_self = reqwest::header::HeaderMap::new();
        only_self.append(
            reqwest::header::LINK,
            "<https://acme.okta.com/api/v1/users?limit=200>; rel=\"self\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_after(&only_self), None);
    }

    #[test]
    fn cursors_name_their_listing() {
        let read = |text: &str| Position::read(Some(&ListCursor::new(text)));
        assert!(matches!(
            read("users:00u1"),
            Ok(Position {
                deprovisioned: false,
                after: Some(_)
            })
        ));
        assert!(matches!(
            read("deprovisioned:"),
            Ok(Position {
                deprovisioned: true,
                after: None
            })
        ));
        assert!(read("users:").is_err());
        assert!(read("https://evil.example/").is_err());
    }
}
