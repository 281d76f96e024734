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
#![forbid(unsafe_code)]

pub mod mapping;
pub mod payload;
pub mod signature;

use rollcall_core::verify::{encode_base64, DEFAULT_TOLERANCE_SECONDS};
use rollcall_core::{
    ConfigError, Connector, ConnectorRegistration, Delivery, NormalizeError, Secret, SignError,
    SourceOptions, UserEvent, VerifyError,
};
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZendeskOptions {
    /// The webhook's signing secret (Admin Center > Webhooks > the webhook > Reveal secret).
    /// Required, except for commands that only normalize.
    #[serde(default)]
    pub signing_secret: Option<Secret>,
    /// Reserved for enrichment from the Zendesk API: accepted, not used yet.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Reserved for enrichment: the email address the API token belongs to.
    #[serde(default)]
    pub email: Option<String>,
    /// Reserved for enrichment: the account's subdomain (`acme` for acme.zendesk.com).
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Reserved for enrichment: an API base URL overriding the subdomain's.
    #[serde(default)]
    pub api_base_url: Option<String>,
}

/// The Zendesk connector for one configured source.
#[derive(Debug)]
pub struct ZendeskConnector {
    /// `None` only for an offline connector.
    signing_secret: Option<Secret>,
}

impl ZendeskConnector {
    /// Builds a connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let parsed: ZendeskOptions = options.parse()?;
        let signing_secret = options.require_secret(parsed.signing_secret, "signing_secret")?;
        Ok(Self { signing_secret })
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
        signature::verify(secret, delivery, DEFAULT_TOLERANCE_SECONDS)
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        mapping::normalize(delivery)
    }

    /// `zendesk:<id>` for a webhook envelope carrying an event id (Zendesk resends the same id
    /// when it retries), else the SHA-256 of the body. A bare user object's `id` is the
    /// user's, not the delivery's, so it is never used.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        match event_id(&delivery.body) {
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
        signature::sign_delivery(secret, delivery);
        Ok(())
    }
}

/// The `id` of a webhook envelope (an object with `type`), when the body is one.
fn event_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        event_type: Option<serde::de::IgnoredAny>,
        #[serde(default, deserialize_with = "payload::opt_zendesk_id")]
        id: Option<String>,
    }
    // Only an object: serde would also read a struct from an array (`["type", 42]`).
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    envelope.event_type?;
    envelope.id
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
# Reserved for enrichment from the Zendesk API (accepted, not used yet):
# subdomain = "acme"
# email = "admin@acme.example"
# api_token = "${ZENDESK_API_TOKEN}"
# api_base_url = "https://acme.zendesk.com"
"#;

rollcall_core::inventory::submit! {
    ConnectorRegistration {
        name: mapping::CONNECTOR,
        vendor: "Zendesk",
        event_types: EVENT_TYPES,
        build,
        example_config: EXAMPLE_CONFIG,
        demo_options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
