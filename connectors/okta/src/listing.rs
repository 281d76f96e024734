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

use rollcall_core::{ConfigError, ListCursor, ListError, Secret, UserPage};
use rollcall_vendor_api::{ApiSettings, VendorApi};
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
    api: VendorApi,
    api_token: Secret,
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
            .ok_or_else(|| ConfigError::new("org_url", together))?;
        let api = VendorApi::new(&ApiSettings {
            vendor: "Okta",
            base_url_option: "org_url",
            base_url: org_url,
            rate_per_second: options
                .api_rate_per_second
                .unwrap_or(DEFAULT_RATE_PER_SECOND),
            timeout_ms: options.api_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            refused: (
                "the token",
                "it needs okta.users.read (a read-only admin's API token)",
            ),
            default_retry_after: DEFAULT_RETRY_AFTER,
            reset_header: Some("x-rate-limit-reset"),
        })?;
        if api.base_path() != "/" {
            return Err(ConfigError::new(
                "org_url",
                "must be the org's base URL, such as https://acme.okta.com (no path)",
            ));
        }
        Ok(Some(Self {
            api,
            api_token: api_token.clone(),
        }))
    }

    /// One page of the org's users from `cursor`.
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        let position = Position::read(cursor)?;
        let mut query = vec![("limit", PAGE_SIZE)];
        if position.deprovisioned {
            query.push(("search", DEPROVISIONED_SEARCH));
        }
        if let Some(after) = &position.after {
            query.push(("after", after.as_str()));
        }
        let request = self.api.get("/api/v1/users").query(&query).header(
            reqwest::header::AUTHORIZATION,
            format!("SSWS {}", self.api_token.expose()),
        );
        let answer = self
            .api
            .list(request, "user listing", MAX_PAGE_BYTES)
            .await?;
        let next_after = next_after(&answer.headers);
        let raw: Vec<Value> = serde_json::from_slice(&answer.body).map_err(|error| {
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
