//! The connector contract and the link-time registry.
//!
//! A connector crate implements [`Connector`] for its vendor and registers a
//! [`ConnectorRegistration`] with `inventory::submit!`. The host never names a connector: it
//! lists [`registrations`] and builds the ones its configuration asks for, so adding a vendor
//! needs no change here or in the host's code.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{ConfigError, EnrichError, NormalizeError, VerifyError};
use crate::model::{EventType, User, UserEvent, VendorEvent};
use crate::retry::RetryContract;
use crate::secret::{Secret, Secrets};
use crate::sync::{ListCursor, ListError, UserPage};
use crate::time::Timestamp;

/// One vendor's webhook scheme.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + fmt::Debug + 'static {
    /// Checks the authenticity of the raw bytes, before any JSON is parsed. Comparisons are
    /// constant-time.
    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError>;

    /// Checks, before the body is read, that the credentials the scheme needs are present
    /// (headers, query parameters): presence only, no cryptography. `delivery` has the
    /// request's method, headers and query string and an empty body. A failure is answered
    /// 401 without reading the body, so an unauthenticated client cannot make the host hold
    /// one. Defaults to passing.
    fn precheck(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
        Ok(())
    }

    /// The delivery as quarantine may keep it: body fields the vendor documents as secrets
    /// (a user's password) removed. The kept delivery is what a replay re-runs, so it must
    /// still normalize as the original would. Defaults to the delivery unchanged.
    fn without_secrets(&self, delivery: &Delivery) -> Delivery {
        delivery.clone()
    }

    /// Maps a vendor payload to unified events. Pure, and never panics on any input.
    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError>;

    /// Whether `normalize` reads the body's text into its own types rather than the
    /// document ([`Delivery::json`]). The host checks every JSON body first; it builds the
    /// document for that check unless this says the connector will not need it, so that a
    /// body is read once either way.
    fn reads_body_text(&self) -> bool {
        false
    }

    /// The key the host deduplicates deliveries on, within the source. Defaults to
    /// [`Delivery::body_dedup_key`]; connectors whose vendor sends a delivery id use it.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        delivery.body_dedup_key()
    }

    /// Signs `delivery` as the vendor would (headers, query string, and the body for vendors
    /// that encrypt it), with the source's own secret or key, taking `received_at` as the
    /// signing time. Used by `rollcall sign`, end-to-end tests and load runs; optional.
    fn sign(&self, _delivery: &mut Delivery) -> Result<(), SignError> {
        Err(SignError::Unsupported)
    }

    /// Completes a partial user from the vendor's API. Optional.
    async fn enrich(&self, _event: &mut UserEvent) -> Result<(), EnrichError> {
        Ok(())
    }

    /// Whether [`Connector::enrich`] can do anything for this source (an API is configured).
    /// When it cannot, the host skips the work around it (a dedup read per partial delivery).
    /// Defaults to `true`, the safe answer for a connector that enriches.
    fn enriches(&self) -> bool {
        true
    }

    /// Answers a vendor's endpoint check (a challenge GET, a validation token) instead of
    /// treating the request as an event. Optional.
    fn handshake(&self, _delivery: &Delivery) -> Option<HandshakeResponse> {
        None
    }

    /// How the vendor retries a delivery that was not accepted and how quickly it needs an
    /// answer. The host answers transient failures with a status the vendor retries and
    /// bounds enrichment by the deadline. Defaults to the usual contract (`5xx` retried, no
    /// known deadline or horizon); override it when the vendor documents its own.
    fn retry_contract(&self) -> RetryContract {
        RetryContract::default()
    }

    /// Whether [`Connector::list_users`] can list this source's users (the vendor has an API
    /// for it and the source has its credentials). Defaults to `false`.
    fn lists_users(&self) -> bool {
        false
    }

    /// One page of the vendor's users, from `cursor` (`None`: the first page), mapped with
    /// the same code as the webhooks' users. Paginated and resumable: the page's `next`
    /// cursor fetches the following page, in this process or after a restart. Bounded by the
    /// source's rate limit (shared with [`Connector::enrich`]); a vendor's 429 is answered
    /// with [`ListError::RateLimited`] and its `Retry-After`, which the host honours.
    /// Optional: the default lists nothing.
    async fn list_users(&self, _cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        Err(ListError::Unsupported(
            "the connector has no user listing".to_owned(),
        ))
    }
}

/// Why a connector cannot sign a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("this connector cannot sign deliveries")]
    Unsupported,
    /// Signing needs material the source does not have (a private key only the vendor holds,
    /// or a secret absent in offline mode).
    #[error("cannot sign: {0}")]
    MissingKey(String),
}

/// What a connector answers to a vendor's endpoint check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// An HTTP request as it reached the host: everything a connector may need, nothing parsed.
#[derive(Clone)]
pub struct Delivery {
    /// The configured source id (`zendesk-acme`).
    pub source: String,
    /// The HTTP method, upper case.
    pub method: String,
    pub headers: Headers,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub body: Bytes,
    pub received_at: Timestamp,
    body_sha256: OnceLock<[u8; 32]>,
    /// The body read as JSON with the host's checks, once: see [`Delivery::json`].
    document: OnceLock<Result<Option<serde_json::Value>, NormalizeError>>,
    /// The host's checks alone, when they ran without building the document: see
    /// [`Delivery::check_json`].
    checked: OnceLock<Result<crate::json::BodyCheck, NormalizeError>>,
}

impl Delivery {
    /// A POST with no headers and no query string.
    pub fn new(source: impl Into<String>, body: impl Into<Bytes>, received_at: Timestamp) -> Self {
        Self {
            source: source.into(),
            method: "POST".to_owned(),
            headers: Headers::default(),
            query: None,
            body: body.into(),
            received_at,
            body_sha256: OnceLock::new(),
            document: OnceLock::new(),
            checked: OnceLock::new(),
        }
    }

    pub fn with_method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into().to_ascii_uppercase();
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// `sha256:<hex>` of the body: the dedup key of vendors that send no delivery id.
    pub fn body_dedup_key(&self) -> String {
        format!("sha256:{}", hex::encode(self.body_sha256()))
    }

    /// Replaces the body (a connector's `sign` encrypting it), forgetting its cached hash.
    pub fn replace_body(&mut self, body: impl Into<Bytes>) {
        self.body = body.into();
        self.body_sha256 = OnceLock::new();
        self.document = OnceLock::new();
        self.checked = OnceLock::new();
    }

    /// The body as a JSON document, read once and shared by the host's checks, the
    /// connector's mapping and its dedup key: `Ok(None)` when the body is not JSON (an
    /// encrypted body), an error when it is JSON that repeats a key in an object or holds
    /// NUL in a string ([`crate::json::check_body`]).
    pub fn json(&self) -> Result<Option<&serde_json::Value>, NormalizeError> {
        match self
            .document
            .get_or_init(|| crate::json::parse_checked(&self.body))
        {
            Ok(document) => Ok(document.as_ref()),
            Err(error) => Err(error.clone()),
        }
    }

    /// The host's checks of [`Delivery::json`] (unique keys, no NUL), without building the
    /// document unless it was built already: for the host, which needs the verdict, and for
    /// connectors that read the body's text into their own types.
    pub fn check_json(&self) -> Result<crate::json::BodyCheck, NormalizeError> {
        use crate::json::BodyCheck;
        if let Some(read) = self.document.get() {
            return match read {
                Ok(Some(_)) => Ok(BodyCheck::Clean),
                Ok(None) => Ok(BodyCheck::NotJson),
                Err(error) => Err(error.clone()),
            };
        }
        self.checked
            .get_or_init(|| crate::json::check_only(&self.body))
            .clone()
    }

    /// [`Delivery::json`] for a vendor that sends only JSON: a body that is not JSON is an
    /// error saying where the parser stopped.
    pub fn json_document(&self) -> Result<&serde_json::Value, NormalizeError> {
        match self.json()? {
            Some(document) => Ok(document),
            None => Err(
                match crate::json::from_slice::<serde_json::Value>(&self.body) {
                    Err(error) => error,
                    // Unreachable while both reads agree; still an error, never a panic.
                    Ok(_) => NormalizeError::invalid(".", "the body is not JSON"),
                },
            ),
        }
    }

    /// SHA-256 of the body, computed once.
    pub fn body_sha256(&self) -> &[u8; 32] {
        self.body_sha256
            .get_or_init(|| Sha256::digest(&self.body).into())
    }

    /// A new event for this delivery, with rollcall's fields filled in.
    ///
    /// The id is a ULID whose time part is the receive time and whose random part is derived
    /// from the source, the body and `index` (the event's position in the delivery), so
    /// normalizing the same delivery twice yields the same ids.
    pub fn new_event(
        &self,
        connector: &str,
        index: usize,
        event_type: EventType,
        vendor_event: VendorEvent,
        user: User,
    ) -> UserEvent {
        let mut hasher = Sha256::new();
        hasher.update(self.source.as_bytes());
        hasher.update([0]);
        hasher.update(self.body_sha256());
        hasher.update((index as u64).to_be_bytes());
        let digest = hasher.finalize();
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        let millis = u64::try_from(self.received_at.unix_millis()).unwrap_or(0);
        let id = ulid::Ulid::from_parts(millis, u128::from_be_bytes(random));
        UserEvent {
            id: id.to_string(),
            event_type,
            source: self.source.clone(),
            connector: connector.to_owned(),
            vendor_event,
            received_at: self.received_at,
            actor: None,
            user,
            previous: None,
            changes: None,
            partial: false,
        }
    }
}

impl fmt::Debug for Delivery {
    // Headers may carry secrets and bodies carry personal data: print sizes, not contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("source", &self.source)
            .field("method", &self.method)
            .field("header_names", &self.headers.names().collect::<Vec<_>>())
            .field("body_bytes", &self.body.len())
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// Request headers with case-insensitive lookup. Names are stored lower case.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0
            .push((name.into().to_ascii_lowercase(), value.into()));
    }

    /// The first value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Self::default();
        for (name, value) in iter {
            headers.insert(name, value);
        }
        headers
    }
}

/// A source's connector options: its configuration table minus `id` and `connector`.
///
/// Connectors read them into their own typed struct with [`SourceOptions::parse`] (use
/// `#[serde(deny_unknown_fields)]`). `offline` options come from commands that only
/// normalize (`rollcall normalize`): secrets may then be absent, and [`Connector::verify`]
/// answers `source_misconfigured`.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub source_id: String,
    values: serde_json::Value,
    offline: bool,
}

impl SourceOptions {
    pub fn new(source_id: impl Into<String>, values: serde_json::Value) -> Self {
        Self {
            source_id: source_id.into(),
            values,
            offline: false,
        }
    }

    /// Options for normalizing only: no secrets required.
    pub fn offline(source_id: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            values: serde_json::Value::Object(serde_json::Map::new()),
            offline: true,
        }
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Reads the options into `T`; an error names the offending key.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(&self.values).map_err(|error| {
            let key = error.path().to_string();
            ConfigError::new(key, error.into_inner().to_string())
        })
    }

    /// As [`SourceOptions::require_secret`], for an option that takes one secret or a list
    /// (rotation): none of them may be empty.
    pub fn require_secrets(
        &self,
        secrets: Option<Secrets>,
        key: &str,
    ) -> Result<Option<Secrets>, ConfigError> {
        match secrets {
            Some(secrets) if secrets.iter().any(|secret| secret.expose().is_empty()) => {
                Err(ConfigError::new(key, "must not be empty"))
            }
            Some(secrets) => Ok(Some(secrets)),
            None if self.offline => Ok(None),
            None => Err(ConfigError::new(key, "is required")),
        }
    }

    /// Requires a secret outside offline mode: a source that cannot verify is a start-up
    /// error, not a stream of 401s.
    pub fn require_secret(
        &self,
        secret: Option<Secret>,
        key: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        match secret {
            Some(secret) if secret.expose().is_empty() => {
                Err(ConfigError::new(key, "must not be empty"))
            }
            Some(secret) => Ok(Some(secret)),
            None if self.offline => Ok(None),
            None => Err(ConfigError::new(key, "is required")),
        }
    }
}

/// A connector's entry in the registry.
#[derive(Debug)]
pub struct ConnectorRegistration {
    /// The name a source's `connector` key refers to (`zendesk`).
    pub name: &'static str,
    /// The vendor's display name (`Zendesk`).
    pub vendor: &'static str,
    /// The vendor event types the connector understands, as the vendor names them.
    pub event_types: &'static [&'static str],
    /// Builds a connector for one configured source.
    pub build: fn(&SourceOptions) -> Result<Box<dyn Connector>, ConfigError>,
    /// A TOML `[[sources]]` table showing the connector's options.
    pub example_config: &'static str,
    /// Options for a demo source whose secrets and keys derive from `seed`: what
    /// `rollcall serve` runs without a configuration file. The result must build, and the
    /// connector built from it must be able to [`Connector::sign`].
    pub demo_options: fn(seed: &[u8; 32]) -> serde_json::Value,
    /// The JSON Schema of the connector's options (its table minus `id`, `connector` and
    /// `sync_interval`), usually `Some(options_schema::<TheOptions>)`; `None` leaves them
    /// open in `rollcall config schema`.
    pub options_schema: Option<fn() -> serde_json::Value>,
}

inventory::collect!(ConnectorRegistration);

/// The JSON Schema (draft 2020-12, everything inline) of the options type `T`, as serde
/// reads it: `deny_unknown_fields` forbids other keys, doc comments are descriptions and
/// `default`s are shown.
pub fn options_schema<T: schemars::JsonSchema>() -> serde_json::Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    // The Rust type's name means nothing to whoever writes the file.
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
    }
    schema
}

/// Every connector linked into this binary, sorted by name.
pub fn registrations() -> Vec<&'static ConnectorRegistration> {
    let mut all: Vec<_> = inventory::iter::<ConnectorRegistration>
        .into_iter()
        .collect();
    all.sort_by_key(|registration| registration.name);
    all
}

/// The registered connector with that name.
pub fn registration(name: &str) -> Option<&'static ConnectorRegistration> {
    inventory::iter::<ConnectorRegistration>
        .into_iter()
        .find(|registration| registration.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn event_ids_are_ulids_stable_for_the_same_delivery() {
        let delivery = Delivery::new("src", &b"{}"[..], at("2026-01-01T00:00:00Z"));
        let vendor = VendorEvent::default();
        let first = delivery.new_event("c", 0, EventType::Created, vendor.clone(), User::default());
        let again = delivery.new_event("c", 0, EventType::Created, vendor.clone(), User::default());
        let second = delivery.new_event("c", 1, EventType::Created, vendor, User::default());
        assert_eq!(first.id, again.id);
        assert_ne!(first.id, second.id);
        let ulid: ulid::Ulid = first.id.parse().unwrap();
        assert_eq!(ulid.timestamp_ms(), 1_767_225_600_000);
    }

    #[test]
    fn headers_are_case_insensitive_and_query_is_decoded() {
        let delivery = Delivery::new("s", Bytes::new(), Timestamp::now())
            .with_header("X-Zendesk-Webhook-Signature", "abc")
            .with_query("secret-key=a%2Bb&iv=00");
        assert_eq!(delivery.header("x-zendesk-webhook-signature"), Some("abc"));
        assert_eq!(delivery.query_param("secret-key").as_deref(), Some("a+b"));
        assert_eq!(delivery.query_param("nope"), None);
    }

    #[test]
    fn debug_output_hides_header_values_and_body() {
        let delivery = Delivery::new("s", &b"secret body"[..], Timestamp::now())
            .with_header("authorization", "Bearer hunter2");
        let text = format!("{delivery:?}");
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("secret body"));
    }

    #[test]
    fn missing_secrets_fail_online_and_pass_offline() {
        let online = SourceOptions::new("s", serde_json::json!({}));
        assert!(online.require_secret(None, "signing_secret").is_err());
        let offline = SourceOptions::offline("s");
        assert!(offline
            .require_secret(None, "signing_secret")
            .unwrap()
            .is_none());
    }

    #[test]
    fn option_errors_name_the_key() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Options {
            timeout_seconds: u64,
        }
        let options = SourceOptions::new("s", serde_json::json!({"timeout_seconds": "x"}));
        let error = options.parse::<Options>().unwrap_err();
        assert_eq!(error.key, "timeout_seconds");
        let options = SourceOptions::new("s", serde_json::json!({"typo": 1}));
        assert!(options
            .parse::<Options>()
            .unwrap_err()
            .message
            .contains("typo"));
    }
}
