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

use rollcall_core::{ConfigError, EventType, ListCursor, ListError, Secret, UserPage};
use rollcall_vendor_api::{ApiSettings, VendorApi};
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
    api: VendorApi,
    location_id: String,
    api_token: Secret,
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
        let api = VendorApi::new(&ApiSettings {
            vendor: "HighLevel",
            base_url_option: "api_base_url",
            base_url: options.api_base_url.unwrap_or(DEFAULT_BASE_URL),
            rate_per_second: options
                .api_rate_per_second
                .unwrap_or(DEFAULT_RATE_PER_SECOND),
            timeout_ms: options.api_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            refused: (
                "the token",
                "it needs the users.readonly scope for the location",
            ),
            default_retry_after: DEFAULT_RETRY_AFTER,
            reset_header: None,
        })?;
        Ok(Some(Self {
            api,
            location_id: location_id.to_owned(),
            api_token: api_token.clone(),
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
        let request = self
            .api
            .get("/users/")
            .query(&[("locationId", self.location_id.as_str())])
            .bearer_auth(self.api_token.expose())
            .header("Version", API_VERSION);
        let answer = self.api.list(request, "user list", MAX_BODY_BYTES).await?;
        parse_user_list(&answer.body, &self.location_id)
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
