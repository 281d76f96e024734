//! rollcall connector for HighLevel (GoHighLevel) user webhooks.
//!
//! # What HighLevel sends
//!
//! A marketplace app subscribed to HighLevel's user events receives one flat JSON object per
//! delivery: the user's fields (`id`, `locationId` or `companyId`, `firstName`, `lastName`,
//! `email`, `phone`, `extension`, `role`, `permissions`, `locations`) next to the envelope
//! fields `type` (`UserCreate`, `UserUpdate`, `UserDelete`; HighLevel's help center spells
//! them `user.created`, `user.updated`, `user.deleted`, and both spellings are accepted),
//! `timestamp` and `webhookId`. Sub-account users carry `locationId`; agency users carry
//! `companyId` and `locations[]`, the sub-accounts they can access. No status and no user
//! timestamps are sent.
//!
//! # How it is verified
//!
//! HighLevel signs the raw body with its private keys; receivers check with the public keys
//! it publishes:
//!
//! * `X-GHL-Signature`: base64 Ed25519 signature (preferred: when present it alone decides);
//! * `X-WH-Signature`: base64 RSASSA-PKCS1-v1_5 SHA-256 signature (legacy).
//!
//! A request with neither header is `signature_missing`. After the signature, a body
//! `timestamp` more than five minutes ahead of the receive time, or older than the retry
//! horizon plus five minutes (75 minutes), is `timestamp_out_of_tolerance`.
//!
//! # How HighLevel retries
//!
//! HighLevel retries a delivery only when the answer is `429`: the same payload, up to six
//! more times, about ten minutes apart (about 70 minutes in all); every other status, `5xx`
//! included, is final. [`retry_contract`] says so, and the host answers a transient failure
//! (the store cannot commit) with `429` and `Retry-After: 600` instead of `503`.
//! The keys are the options `ed25519_public_key` and `rsa_public_key` (PEM, or a list of PEM
//! keys while HighLevel rotates one: any verifies), defaulting to HighLevel's published keys
//! (`keys/`), so a source needs no option at all. As no secret is involved, a connector built
//! for offline normalizing verifies too, with those keys.
//!
//! For demos and tests only, the option `signing_key` gives a source its own Ed25519 private
//! key: the connector then signs test requests ([`Connector::sign`]) and, unless
//! `ed25519_public_key` says otherwise (it must then be the same key), verifies
//! `X-GHL-Signature` with that key's public key instead of HighLevel's.
//!
//! Deliveries are deduplicated on `webhookId` (`highlevel:<id>`) when the body has one, else
//! on the SHA-256 of the body.
#![forbid(unsafe_code)]

pub mod listing;
pub mod mapping;
pub mod payload;
pub mod signature;

use rollcall_core::verify::{encode_base64, Ed25519PublicKey, RsaPublicKey};
use rollcall_core::{
    ConfigError, Connector, ConnectorRegistration, Delivery, NormalizeError, Secret, SignError,
    SourceOptions, UserEvent, VerifyError,
};
use rollcall_core::{RetriedAnswers, RetryContract};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

use crate::payload::UserPayload;
use crate::signature::{
    SignatureKeys, SigningKey, DEFAULT_ED25519_PUBLIC_KEY, DEFAULT_RSA_PUBLIC_KEY,
    SIGNING_KEY_OPTION,
};

/// The connector's registry name, used for `connector = "highlevel"` and in every event.
pub const NAME: &str = "highlevel";

/// The event types handled, as HighLevel spells them.
pub const EVENT_TYPES: &[&str] = &[
    "UserCreate",
    "UserUpdate",
    "UserDelete",
    "user.created",
    "user.updated",
    "user.deleted",
];

/// A source's options. All are optional: HighLevel's published keys are the defaults.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HighLevelOptions {
    /// PEM `PUBLIC KEY` for `X-GHL-Signature` (Ed25519), for when HighLevel rotates it; or
    /// a list of them while it does (a signature by any of them verifies).
    #[serde(default)]
    pub ed25519_public_key: Option<PemKeys>,
    /// PEM `PUBLIC KEY` or `RSA PUBLIC KEY` for the legacy `X-WH-Signature`, or a list of
    /// them (any verifies).
    #[serde(default)]
    pub rsa_public_key: Option<PemKeys>,
    /// For demos and tests only: HighLevel signs production deliveries with its own private
    /// key. An Ed25519 private key (base64 of its 32 bytes, or a PKCS#8 PEM `PRIVATE KEY`)
    /// the connector signs test requests with; its public key is then the default
    /// `ed25519_public_key`.
    #[serde(default)]
    pub signing_key: Option<Secret>,
    /// Sync: a private integration token (or OAuth access token) with `users.readonly`.
    /// `api_token` and `location_id` go together.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Sync: the sub-account (location) whose users are listed.
    #[serde(default)]
    pub location_id: Option<String>,
    /// Sync: the API base URL (default `https://services.leadconnectorhq.com`).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Sync: API requests per second at most (default 5).
    #[serde(default)]
    pub api_rate_per_second: Option<f64>,
    /// Sync: the timeout of the user list request, in milliseconds (default 15000).
    #[serde(default)]
    pub api_timeout_ms: Option<u64>,
}

/// One PEM public key, or several while HighLevel rotates its key: list the new one with
/// the old one until HighLevel signs only with the new one.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged, expecting = "a PEM public key or a list of them")]
pub enum PemKeys {
    One(String),
    Many(Vec<String>),
}

impl PemKeys {
    /// Every key, as written.
    pub fn pems(&self) -> Vec<&str> {
        match self {
            Self::One(pem) => vec![pem.as_str()],
            Self::Many(pems) => pems.iter().map(String::as_str).collect(),
        }
    }
}

/// HighLevel's retry contract ("Automated Webhook Retries", HighLevel help center): only
/// `429` is retried, about every 10 minutes, six times, so for about 1 h 10 min. HighLevel
/// publishes no answer deadline.
pub fn retry_contract() -> RetryContract {
    RetryContract::default()
        .with_retried(RetriedAnswers::Only(&[429]))
        .with_retry_interval(Duration::from_secs(10 * 60))
        .with_horizon(Duration::from_secs(70 * 60))
}

/// The HighLevel connector for one source.
#[derive(Debug, Clone)]
pub struct HighLevel {
    /// The location's user list, when the source has API options.
    lister: Option<std::sync::Arc<listing::Lister>>,
    keys: SignatureKeys,
    /// Only with the `signing_key` option (demos and tests).
    signing_key: Option<SigningKey>,
}

impl HighLevel {
    /// Builds the connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let options: HighLevelOptions = options.parse()?;
        let signing_key = options
            .signing_key
            .as_ref()
            .map(|secret| {
                SigningKey::parse(secret)
                    .map_err(|message| ConfigError::new(SIGNING_KEY_OPTION, message))
            })
            .transpose()?;
        let configured_ed25519 = options.ed25519_public_key.as_ref().map(PemKeys::pems);
        let ed25519 = match (&signing_key, configured_ed25519.as_deref()) {
            (Some(signing_key), None) => vec![signing_key
                .public_key()
                .map_err(|message| ConfigError::new(SIGNING_KEY_OPTION, message))?],
            (signing_key, configured) => {
                let keys = read_keys(
                    "ed25519_public_key",
                    configured,
                    DEFAULT_ED25519_PUBLIC_KEY,
                    Ed25519PublicKey::from_pem,
                )?;
                if let (Some(signing_key), Some(pems)) = (signing_key, configured) {
                    if !pems.iter().any(|pem| signing_key.matches_public_pem(pem)) {
                        return Err(ConfigError::new(
                            SIGNING_KEY_OPTION,
                            "is not the private key of ed25519_public_key: set only one of \
                             them, or a matching pair",
                        ));
                    }
                }
                keys
            }
        };
        let rsa = read_keys(
            "rsa_public_key",
            options
                .rsa_public_key
                .as_ref()
                .map(PemKeys::pems)
                .as_deref(),
            DEFAULT_RSA_PUBLIC_KEY,
            RsaPublicKey::from_pem,
        )?;
        let lister = listing::Lister::from_options(&listing::ListingOptions {
            api_token: options.api_token.as_ref(),
            location_id: options.location_id.as_deref(),
            api_base_url: options.api_base_url.as_deref(),
            api_rate_per_second: options.api_rate_per_second,
            api_timeout_ms: options.api_timeout_ms,
        })?
        .map(std::sync::Arc::new);
        Ok(Self {
            lister,
            keys: SignatureKeys { ed25519, rsa },
            signing_key,
        })
    }
}

/// The configured PEM keys, or the published default; an unusable one names its option.
fn read_keys<K>(
    option: &str,
    configured: Option<&[&str]>,
    default: &str,
    parse: fn(&str) -> Result<K, String>,
) -> Result<Vec<K>, ConfigError> {
    match configured {
        Some([]) => Err(ConfigError::new(option, "the list of keys is empty")),
        Some(pems) => pems
            .iter()
            .map(|pem| {
                if pem.trim().is_empty() {
                    Err(ConfigError::new(option, "must not be empty"))
                } else {
                    parse(pem).map_err(|message| ConfigError::new(option, message))
                }
            })
            .collect(),
        None => parse(default).map(|key| vec![key]).map_err(|message| {
            ConfigError::new(
                option,
                format!("the published default key is unusable: {message}"),
            )
        }),
    }
}

#[rollcall_core::async_trait]
impl Connector for HighLevel {
    /// With `api_token` and `location_id`: the API lists the location's users ([`listing`]).
    fn lists_users(&self) -> bool {
        self.lister.is_some()
    }

    async fn list_users(
        &self,
        cursor: Option<&rollcall_core::ListCursor>,
    ) -> Result<rollcall_core::UserPage, rollcall_core::ListError> {
        match &self.lister {
            Some(lister) => lister.list_users(cursor).await,
            None => Err(rollcall_core::ListError::Unsupported(
                "the source has no API options (api_token, location_id)".to_owned(),
            )),
        }
    }

    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        self.keys.verify(delivery)
    }

    fn precheck(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        signature::signature_present(delivery)
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        let body = delivery.json_document()?;
        let Value::Object(object) = body else {
            return Err(NormalizeError::invalid(".", "expected a JSON object"));
        };
        let vendor_type = payload::event_type(object)?;
        let event_type = mapping::event_type_for(vendor_type)
            .ok_or_else(|| NormalizeError::unsupported(vendor_type))?;
        let payload: UserPayload = rollcall_core::json::from_value(body)?;
        let user = mapping::user(event_type, &payload, object)?;
        let vendor_event = mapping::vendor_event(vendor_type, &payload)?;
        Ok(vec![delivery.new_event(
            NAME,
            0,
            event_type,
            vendor_event,
            user,
        )])
    }

    /// `highlevel:<webhookId>` when the body carries one, else the SHA-256 of the body.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        match webhook_id(delivery) {
            Some(id) => format!("{NAME}:{id}"),
            None => delivery.body_dedup_key(),
        }
    }

    /// Sets `X-GHL-Signature` with the source's `signing_key`. Without one there is nothing
    /// to sign with: HighLevel's private key is HighLevel's.
    fn sign(&self, delivery: &mut Delivery) -> Result<(), SignError> {
        let Some(signing_key) = &self.signing_key else {
            return Err(SignError::MissingKey(format!(
                "HighLevel signs with its own private key; set {SIGNING_KEY_OPTION} (for demos \
                 and tests only) to sign test requests"
            )));
        };
        signing_key.sign(delivery);
        Ok(())
    }

    fn retry_contract(&self) -> RetryContract {
        retry_contract()
    }
}

/// The body's `webhookId`, when it is a JSON object with a usable one.
fn webhook_id(delivery: &Delivery) -> Option<String> {
    let Ok(Some(Value::Object(object))) = delivery.json() else {
        return None;
    };
    payload::opt_id_text(object.get("webhookId")?)
        .ok()
        .flatten()
}

fn build(options: &SourceOptions) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(HighLevel::from_options(options)?))
}

/// A demo source's options: its own signing key, the seed, so it can sign test requests.
fn demo_options(seed: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({ SIGNING_KEY_OPTION: encode_base64(seed) })
}

rollcall_core::inventory::submit! {
    ConnectorRegistration {
        name: NAME,
        vendor: "HighLevel",
        event_types: EVENT_TYPES,
        build,
        example_config: r#"[[sources]]
id = "highlevel-agency"
connector = "highlevel"
# Both keys are optional: HighLevel's published public keys are the defaults.
# Set them only when HighLevel announces a key rotation.
# ed25519_public_key = """
# -----BEGIN PUBLIC KEY-----
# MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
# -----END PUBLIC KEY-----
# """
# rsa_public_key = "${HIGHLEVEL_RSA_PUBLIC_KEY}"
# For demos and tests only (HighLevel signs real deliveries with its own key): an Ed25519
# private key to sign test requests with, whose public key then verifies X-GHL-Signature.
# signing_key = "${HIGHLEVEL_TEST_SIGNING_KEY}"
# Optional: sync (rollcall sync, sync_interval) of one sub-account's users from the API v2.
# location_id = "ve9EPM428h8vShlRW1KT"
# api_token = "${HIGHLEVEL_API_TOKEN}"
"#,
        demo_options,
        options_schema: Some(rollcall_core::options_schema::<HighLevelOptions>),
    }
}
