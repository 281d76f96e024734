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

use rollcall_core::sync::next_link;
use rollcall_core::{ConfigError, ListCursor, ListError, Secret, UserPage};
use rollcall_vendor_api::{ApiSettings, VendorApi};
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
    api: VendorApi,
    api_key: Secret,
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
        let default_base_url = format!("https://{domain}");
        let api = VendorApi::new(&ApiSettings {
            vendor: "Freshservice",
            base_url_option: "api_base_url",
            base_url: options.api_base_url.unwrap_or(&default_base_url),
            rate_per_second: options
                .api_rate_per_second
                .unwrap_or(DEFAULT_RATE_PER_SECOND),
            timeout_ms: options.api_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            refused: (
                "the key",
                "it needs an agent who can view agents and requesters",
            ),
            default_retry_after: DEFAULT_RETRY_AFTER,
            reset_header: None,
        })?;
        Ok(Some(Self {
            api,
            api_key: api_key.clone(),
        }))
    }

    /// One page of agents or requesters from `cursor`.
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        let (listing, page) = read_cursor(cursor)?;
        let (name, path, key) = LISTINGS[listing];
        let page_text = page.to_string();
        let request = self
            .api
            .get(path)
            .query(&[("per_page", PER_PAGE), ("page", page_text.as_str())])
            .basic_auth(self.api_key.expose(), Some("X"));
        let answer = self
            .api
            .list(request, &format!("{name} list"), MAX_BODY_BYTES)
            .await?;
        let has_next = next_link(
            answer
                .headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        )
        .is_some();
        let users = parse_users(&answer.body, key)?;
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
