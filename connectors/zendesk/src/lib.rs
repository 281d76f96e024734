//! rollcall connector for Zendesk.
//!
//! # What Zendesk sends
//!
//! A Zendesk webhook subscribed to user events POSTs one JSON envelope per event:
//! `{type, account_id, id, time, zendesk_event_version, subject, detail, event}`. `type` is one
//! of the 27 `zen:event-type:user.*` types (the docs also write some as
//! `zen:event-type/user.merged`: both separators are accepted), `id` is the event's id,
//! `detail` the user it is about (with ids as strings, `"0"` for none, and no name or phone)
//! and `event` what changed (`{current, previous}` for most types). A webhook attached to a
//! trigger or automation, or an export from the API, may instead send a bare Support user
//! object, alone or as `{"user": {...}}`.
//!
//! `user.created` becomes `user.created`; `user.deleted`, and `user.active_changed` to
//! `false` (Zendesk deletes by deactivating), become `user.deleted`; every other user type is
//! a `user.updated` whose `changes` list the unified fields the change touches. A bare user
//! is a snapshot: `user.updated`, or `user.deleted` when it is no longer active. The mapping
//! is in [`mapping`], and on the connector's doc page.
//!
//! # How it is verified
//!
//! `X-Zendesk-Webhook-Signature` is the base64 HMAC-SHA256, keyed with the webhook's signing
//! secret (the bytes of the string), of `X-Zendesk-Webhook-Signature-Timestamp` followed by
//! the body; the timestamp must be within five minutes of the receive time ([`signature`]).
//! Deliveries are deduplicated on the envelope's `id`. The connector signs test requests the
//! same way ([`Connector::sign`]).
//!
//! # Enrichment
//!
//! With `api_token`, `email` and `subdomain` set, [`Connector::enrich`] completes a webhook's
//! partial user from `GET /api/v2/users/{id}.json`, within a timeout, a rate limit and a
//! circuit breaker ([`enrich`]). Failures leave the event partial; they never block it.
#![forbid(unsafe_code)]

pub mod enrich;
pub mod mapping;
pub mod payload;
pub mod signature;

use rollcall_core::verify::{encode_base64, DEFAULT_TOLERANCE_SECONDS};
use rollcall_core::{
    ConfigError, Connector, ConnectorRegistration, Delivery, EnrichError, ListCursor, ListError,
    NormalizeError, Secret, Secrets, SignError, SourceOptions, UserEvent, UserPage, VerifyError,
};
use rollcall_core::{RetriedAnswers, RetryContract};
use serde::Deserialize;

/// Every Zendesk user event type the connector handles, as Zendesk spells them (the `/`
/// spellings are the ones the event-type docs use for those three).
pub const EVENT_TYPES: &[&str] = &[
    "zen:event-type:user.active_changed",
    "zen:event-type:user.alias_changed",
    "zen:event-type:user.created",
    "zen:event-type:user.custom_field_changed",
    "zen:event-type:user.custom_role_changed",
    "zen:event-type:user.default_group_changed",
    "zen:event-type:user.deleted",
    "zen:event-type:user.details_changed",
    "zen:event-type:user.external_id_changed",
    "zen:event-type:user.group_membership_created",
    "zen:event-type:user.group_membership_deleted",
    "zen:event-type:user.identity_changed",
    "zen:event-type:user.identity_created",
    "zen:event-type:user.identity_deleted",
    "zen:event-type:user.last_login_changed",
    "zen:event-type:user.merged",
    "zen:event-type:user.name_changed",
    "zen:event-type:user.notes_changed",
    "zen:event-type:user.only_private_comments_changed",
    "zen:event-type:user.organization_membership_created",
    "zen:event-type:user.organization_membership_deleted",
    "zen:event-type:user.password_changed",
    "zen:event-type:user.photo_changed",
    "zen:event-type:user.role_changed",
    "zen:event-type:user.suspended_changed",
    "zen:event-type:user.tags_changed",
    "zen:event-type:user.time_zone_changed",
    "zen:event-type/user.identity_changed",
    "zen:event-type/user.identity_created",
    "zen:event-type/user.merged",
];

/// A Zendesk source's options.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZendeskOptions {
    /// The webhook's signing secret (Admin Center > Webhooks > the webhook > Reveal secret),
    /// or a list of them while one is rotated (any verifies; the first signs). Required,
    /// except for commands that only normalize.
    #[serde(default)]
    pub signing_secret: Option<Secrets>,
    /// Enrichment: a Zendesk API token (Admin Center > Apps and integrations > APIs > Zendesk
    /// API). `api_token`, `email` and `subdomain` go together.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Enrichment: the email address of the user the API token belongs to.
    #[serde(default)]
    pub email: Option<String>,
    /// Enrichment: the account's subdomain (`acme` for acme.zendesk.com).
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Enrichment: the API base URL, overriding `https://{subdomain}.zendesk.com` (tests and
    /// proxies).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Enrichment: the timeout of one API request, in milliseconds (default 3000).
    #[serde(default)]
    pub api_timeout_ms: Option<u64>,
    /// Enrichment: API requests per second at most (default 10); beyond it events go out
    /// partial instead of waiting.
    #[serde(default)]
    pub api_rate_per_second: Option<f64>,
    /// Enrichment: how long the circuit breaker stays open, in milliseconds (default 30000).
    #[serde(default)]
    pub api_breaker_cooldown_ms: Option<u64>,
}

/// The Zendesk connector for one configured source.
#[derive(Debug)]
pub struct ZendeskConnector {
    /// `None` only for an offline connector.
    signing_secret: Option<Secrets>,
    /// `None` when the source has no API credentials.
    enricher: Option<enrich::Enricher>,
}

impl ZendeskConnector {
    /// Builds a connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let parsed: ZendeskOptions = options.parse()?;
        let signing_secret = options.require_secrets(parsed.signing_secret, "signing_secret")?;
        let enricher = enrich::Enricher::from_options(&enrich::EnrichOptions {
            api_token: parsed.api_token.as_ref(),
            email: parsed.email.as_deref(),
            subdomain: parsed.subdomain.as_deref(),
            api_base_url: parsed.api_base_url.as_deref(),
            api_timeout_ms: parsed.api_timeout_ms,
            api_rate_per_second: parsed.api_rate_per_second,
            api_breaker_cooldown_ms: parsed.api_breaker_cooldown_ms,
        })?;
        Ok(Self {
            signing_secret,
            enricher,
        })
    }

    /// Whether the source has API credentials, so partial events can be completed.
    pub fn enriches(&self) -> bool {
        self.enricher.is_some()
    }
}

#[rollcall_core::async_trait]
impl Connector for ZendeskConnector {
    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let Some(secret) = &self.signing_secret else {
            return Err(VerifyError::NotConfigured {
                what: "signing_secret".to_owned(),
            });
        };
        secret.verify_any(|secret| signature::verify(secret, delivery, DEFAULT_TOLERANCE_SECONDS))
    }

    fn precheck(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        signature::headers_present(delivery)
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        mapping::normalize(delivery)
    }

    /// Webhook envelopes, nearly all of what a Zendesk source receives, are read from the
    /// text ([`payload::parse_delivery`]).
    fn reads_body_text(&self) -> bool {
        true
    }

    /// `zendesk:<id>` for a webhook envelope carrying an event id (Zendesk resends the same id
    /// when it retries), else the SHA-256 of the body. A bare user object's `id` is the
    /// user's, not the delivery's, so it is never used.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        match event_id(delivery) {
            Some(id) => format!("zendesk:{id}"),
            None => delivery.body_dedup_key(),
        }
    }

    /// Signs as Zendesk does, with the source's `signing_secret`, at `received_at`.
    fn sign(&self, delivery: &mut Delivery) -> Result<(), SignError> {
        let Some(secret) = &self.signing_secret else {
            return Err(SignError::MissingKey(
                "the source has no signing_secret (built offline)".to_owned(),
            ));
        };
        signature::sign_delivery(secret.first(), delivery);
        Ok(())
    }

    /// Completes a partial webhook user from the Zendesk API, when the source has API
    /// credentials. `Ok` with the event still partial means it was not tried: no
    /// credentials, a `user.deleted` event, the rate limit or the open circuit breaker.
    async fn enrich(&self, event: &mut UserEvent) -> Result<(), EnrichError> {
        match &self.enricher {
            Some(enricher) => enricher.enrich(event).await,
            None => Ok(()),
        }
    }

    fn enriches(&self) -> bool {
        self.enricher.is_some()
    }

    /// With API credentials: the Users API lists every user (see [`enrich::Enricher::list_users`]).
    fn lists_users(&self) -> bool {
        self.enricher.is_some()
    }

    async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        match &self.enricher {
            Some(enricher) => enricher.list_users(cursor).await,
            None => Err(ListError::Unsupported(
                "the source has no API credentials (api_token, email, subdomain)".to_owned(),
            )),
        }
    }

    fn retry_contract(&self) -> RetryContract {
        retry_contract()
    }
}

/// Zendesk's webhook retry contract (Webhooks API reference, "Webhook retries"; see
/// `docs/connectors/zendesk.md`): `409`, `429` and `503` are retried (`429`/`503` when
/// `Retry-After` is under a minute), other statuses are final, and a request that gets no
/// answer in time fails. The deadline is the shorter of the figures published, 10 s.
pub fn retry_contract() -> RetryContract {
    RetryContract::default()
        .with_retried(RetriedAnswers::Only(&[409, 429, 503]))
        .with_retry_interval(std::time::Duration::from_secs(30))
        .with_answer_deadline(std::time::Duration::from_secs(10))
}

/// The `id` of a webhook envelope (an object with `type`), when the body is one.
fn event_id(delivery: &Delivery) -> Option<String> {
    // Only an envelope: an object with a non-null `type` (a bare user's `id` is the user's).
    // Read from the text, which skips the rest of the body (the host refused any body with a
    // repeated key or NUL before asking for its key); a body that is not a JSON object is
    // read as a document.
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "type", default)]
        event_type: Option<serde::de::IgnoredAny>,
        #[serde(default, borrow)]
        id: Option<&'a serde_json::value::RawValue>,
    }
    // A struct reads from a JSON array too: only an object is read this way.
    let object = delivery.body.trim_ascii_start().starts_with(b"{");
    if let Some(envelope) = object
        .then(|| serde_json::from_slice::<Envelope<'_>>(&delivery.body).ok())
        .flatten()
    {
        envelope.event_type?;
        let id = envelope.id?;
        return payload::opt_zendesk_id(&mut serde_json::Deserializer::from_str(id.get())).ok()?;
    }
    event_id_in_document(delivery)
}

/// [`event_id`] read from the document.
fn event_id_in_document(delivery: &Delivery) -> Option<String> {
    let envelope = delivery.json().ok()??.as_object()?;
    if envelope.get("type").is_none_or(serde_json::Value::is_null) {
        return None;
    }
    payload::opt_zendesk_id(envelope.get("id")?).ok()?
}

fn build(options: &SourceOptions) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(ZendeskConnector::from_options(options)?))
}

/// A demo source's options: the signing secret is the seed in base64 (Zendesk's secrets look
/// like that too, and are used as the bytes of the string all the same).
fn demo_options(seed: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({ "signing_secret": encode_base64(seed) })
}

const EXAMPLE_CONFIG: &str = r#"[[sources]]
id = "zendesk-acme"
connector = "zendesk"
# The webhook's signing secret: Admin Center > Apps and integrations > Webhooks >
# the webhook > Signing secret > Reveal secret.
signing_secret = "${ZENDESK_SIGNING_SECRET}"
# Optional: complete webhook users (which lack name, phone...) from the Zendesk API.
# api_token, email and subdomain go together; api_base_url (default
# https://<subdomain>.zendesk.com) is for proxies and tests.
# subdomain = "acme"
# email = "admin@acme.example"
# api_token = "${ZENDESK_API_TOKEN}"
# api_base_url = "http://zendesk-proxy.internal:8080"
# api_timeout_ms = 3000
# api_rate_per_second = 10
# api_breaker_cooldown_ms = 30000
"#;

rollcall_core::inventory::submit! {
    ConnectorRegistration {
        name: mapping::CONNECTOR,
        vendor: "Zendesk",
        event_types: EVENT_TYPES,
        build,
        example_config: EXAMPLE_CONFIG,
        demo_options,
        options_schema: Some(rollcall_core::options_schema::<ZendeskOptions>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_id_read_from_the_text_is_the_one_in_the_document() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut bodies: Vec<Vec<u8>> = [
            &br#"{"type": "zen:event-type:user.created", "id": 42}"#[..],
            br#"{"type": null, "id": "e1"}"#,
            br#"{"id": "e1"}"#,
            br#"{"type": "x", "id": {"nested": true}}"#,
            br#"{"type": "x", "id": "0"}"#,
            br#"{"type": "x"}"#,
            br#"["zen:event-type:user.created", "e1"]"#,
            b"not json",
            b"",
        ]
        .iter()
        .map(|body| body.to_vec())
        .collect();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "json")
            {
                bodies.push(std::fs::read(path).unwrap());
            }
        }
        let mut ids = 0;
        for body in bodies {
            let delivery = Delivery::new("zd", body.clone(), rollcall_core::Timestamp::now());
            let from_text = event_id(&delivery);
            ids += usize::from(from_text.is_some());
            assert_eq!(
                from_text,
                event_id_in_document(&delivery),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        assert!(ids >= 30, "only {ids} bodies had an event id");
    }

    #[test]
    fn every_registered_event_type_has_a_mapping() {
        for event_type in EVENT_TYPES {
            let short = event_type
                .strip_prefix("zen:event-type:")
                .or_else(|| event_type.strip_prefix("zen:event-type/"))
                .unwrap();
            assert!(mapping::kind_of(short).is_some(), "{event_type}");
        }
        for (short, _) in mapping::USER_EVENT_KINDS {
            let colon = format!("zen:event-type:{short}");
            assert!(EVENT_TYPES.contains(&colon.as_str()), "{colon}");
        }
    }

    #[test]
    fn the_example_config_builds_with_its_secret_filled_in() {
        assert!(EXAMPLE_CONFIG.contains("connector = \"zendesk\""));
        let options = SourceOptions::new(
            "zendesk-acme",
            serde_json::json!({"signing_secret": "s3cret"}),
        );
        assert!(ZendeskConnector::from_options(&options).is_ok());
    }

    #[test]
    fn the_example_enrichment_options_build_once_uncommented() {
        let mut options = serde_json::json!({"signing_secret": "s3cret"});
        for line in EXAMPLE_CONFIG.lines() {
            let Some((key, value)) = line
                .strip_prefix("# ")
                .and_then(|line| line.split_once(" = "))
            else {
                continue;
            };
            let value = match value.strip_prefix('"') {
                Some(text) => serde_json::json!(text
                    .trim_end_matches('"')
                    .replace("${ZENDESK_API_TOKEN}", "t0ken")),
                None => serde_json::from_str(value).unwrap(),
            };
            options[key] = value;
        }
        assert_eq!(options.as_object().unwrap().len(), 8, "{options}");
        let options = SourceOptions::new("zendesk-acme", options);
        assert!(ZendeskConnector::from_options(&options).unwrap().enriches());
    }
}
