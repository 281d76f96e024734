//! Listing users from the VCC Live Database API v2, for sync.
//!
//! `GET {api_base_url}/v2/users` (HTTP basic auth: the account name and its Database API
//! password) answers every user of the account at once, `{"response": [...], "errors": []}`:
//! there is no pagination, so a listing is one page. The list's user object names three
//! fields differently from the webhooks' (`status`, `is_agent`, `groupid` for `state`,
//! `isAgent`, `privGroup`); they are read as the webhook names and the user then goes
//! through the webhook mapping ([`crate::mapping::user`]). The list carries no email and no
//! phone numbers: the page says so ([`UserPage::unlisted`]) and the host keeps what webhooks
//! told.

use std::time::Duration;

use rollcall_core::{ConfigError, ListCursor, ListError, Secret, UserPage};
use rollcall_vendor_api::{ApiSettings, VendorApi};
use serde_json::{Map, Value};

use crate::mapping;
use crate::payload::VccUser;

/// Default `api_rate_per_second`.
pub const DEFAULT_RATE_PER_SECOND: f64 = 1.0;
/// Default `api_timeout_ms`: the whole account in one answer.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const MAX_BODY_BYTES: usize = 32 << 20;
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Fields the list never states.
const UNLISTED: &[&str] = &["emails", "phones"];
/// The list's names for fields the webhooks name otherwise: (list, webhook).
const RENAMED: &[(&str, &str)] = &[
    ("status", "state"),
    ("is_agent", "isAgent"),
    ("groupid", "privGroup"),
];

/// The listing options of a source, as configured.
#[derive(Debug, Default)]
pub struct ListingOptions<'a> {
    pub account: Option<&'a str>,
    pub api_password: Option<&'a Secret>,
    pub api_base_url: Option<&'a str>,
    pub api_rate_per_second: Option<f64>,
    pub api_timeout_ms: Option<u64>,
}

/// Lists one account's users.
#[derive(Debug)]
pub struct Lister {
    api: VendorApi,
    account: String,
    api_password: Secret,
}

impl Lister {
    /// `None` when no listing option is set; `account` and `api_password` go together.
    pub fn from_options(options: &ListingOptions<'_>) -> Result<Option<Self>, ConfigError> {
        let any = options.account.is_some()
            || options.api_password.is_some()
            || options.api_base_url.is_some()
            || options.api_rate_per_second.is_some()
            || options.api_timeout_ms.is_some();
        if !any {
            return Ok(None);
        }
        let together = "is required to list users (account and api_password go together)";
        let account = options
            .account
            .map(str::trim)
            .ok_or_else(|| ConfigError::new("account", together))?;
        if account.is_empty()
            || !account
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        {
            return Err(ConfigError::new(
                "account",
                "must be the account's name (`mycc` for mycc.asp.virtual-call-center.eu)",
            ));
        }
        let api_password = options
            .api_password
            .ok_or_else(|| ConfigError::new("api_password", together))?;
        if api_password.expose().is_empty() {
            return Err(ConfigError::new("api_password", "must not be empty"));
        }
        let default_base_url = format!("https://{account}.asp.virtual-call-center.eu");
        let api = VendorApi::new(&ApiSettings {
            vendor: "VCC Live",
            base_url_option: "api_base_url",
            base_url: options.api_base_url.unwrap_or(&default_base_url),
            rate_per_second: options
                .api_rate_per_second
                .unwrap_or(DEFAULT_RATE_PER_SECOND),
            timeout_ms: options.api_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            refused: ("the credentials", "check account and api_password"),
            default_retry_after: DEFAULT_RETRY_AFTER,
            reset_header: None,
        })?;
        Ok(Some(Self {
            api,
            account: account.to_owned(),
            api_password: api_password.clone(),
        }))
    }

    /// Every user of the account: one page (the API does not paginate).
    pub async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        if cursor.is_some() {
            return Err(ListError::failed(
                false,
                "the VCC Live user list has one page: there is no cursor to resume from",
            ));
        }
        let request = self
            .api
            .get("/v2/users")
            .basic_auth(&self.account, Some(self.api_password.expose()));
        let answer = self.api.list(request, "user list", MAX_BODY_BYTES).await?;
        parse_user_list(&answer.body)
    }
}

/// A `/v2/users` answer as a page of unified users.
pub fn parse_user_list(body: &[u8]) -> Result<UserPage, ListError> {
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        ListError::failed(
            false,
            format!(
                "the VCC Live user list is not JSON (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
    })?;
    if let Some(errors) = document.get("errors").and_then(Value::as_array) {
        if !errors.is_empty() {
            return Err(ListError::failed(
                false,
                format!("the VCC Live API answered {} error(s)", errors.len()),
            ));
        }
    }
    let Some(listed) = document.get("response").and_then(Value::as_array) else {
        return Err(ListError::failed(
            false,
            "the VCC Live user list has no `response` array",
        ));
    };
    let mut users = Vec::with_capacity(listed.len());
    for (index, raw) in listed.iter().enumerate() {
        let Value::Object(object) = raw else {
            return Err(ListError::failed(
                false,
                format!("response[{index}] is not an object"),
            ));
        };
        let webhook_shaped = as_webhook_user(object);
        let mut vcc: VccUser = serde_json::from_value(Value::Object(webhook_shaped.clone()))
            .map_err(|_| {
                ListError::failed(
                    false,
                    format!("response[{index}] is not a VCC Live user object"),
                )
            })?;
        vcc.raw = Value::Object(webhook_shaped);
        let path = format!("response[{index}]");
        users.push(
            mapping::user(&vcc, &path)
                .map_err(|error| ListError::failed(false, error.to_string()))?,
        );
    }
    Ok(UserPage {
        users,
        next: None,
        unlisted: UNLISTED,
    })
}

/// The list's user object with the webhook's names for the renamed fields (a name the
/// object already has wins) and without any password key.
fn as_webhook_user(object: &Map<String, Value>) -> Map<String, Value> {
    let mut user = object.clone();
    user.retain(|key, _| !key.eq_ignore_ascii_case("password"));
    for (listed, webhook) in RENAMED {
        if user.contains_key(*webhook) {
            continue;
        }
        if let Some(value) = user.remove(*listed) {
            user.insert((*webhook).to_owned(), value);
        }
    }
    user
}
