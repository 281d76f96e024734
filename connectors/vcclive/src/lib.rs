//! rollcall connector for VCC Live.
//!
//! # What VCC Live sends
//!
//! VCC Live's asynchronous "User Created" and "User Changed" webhooks POST one JSON object,
//! `{old, new, timestamp}`: `new` is the user after the event, `old` the user before it
//! (`null` when the user was just created), `timestamp` an ISO 8601 time with an offset.
//! There is no event type, no event id and no delete event. See [`payload`].
//!
//! * `old` null or absent: one `user.created` event (vendor type `User Created`).
//! * `old` an object: one `user.updated` event (vendor type `User Changed`) with `previous`
//!   mapped from `old` and `changes` listing the unified fields that differ.
//!
//! The mapping is in [`mapping`] and documented in `docs/connectors/vcclive.md`.
//!
//! # How it is verified
//!
//! VCC Live signs nothing: the customer puts a secret in the webhook URL
//! (`?secret-key=...`), which [`signature`] compares in constant time with the `secret_key`
//! option. There is no replay window; the host deduplicates on the body's SHA-256.
//!
//! When the customer enables VCC Live's HTTP body encryption, the body is base64 ciphertext;
//! with the `cipher` and `encryption_key` options set, [`encryption`] decrypts it inside
//! `normalize`, before parsing, and the dedup key is the SHA-256 of the decrypted body (VCC
//! Live may encrypt a retry under a fresh IV).
//!
//! [`Connector::sign`] makes test requests the same way: the secret in the query string and,
//! with encryption configured, the body encrypted as VCC Live would. The user's `password` (sent only when encryption is on) is
//! dropped right after parsing and never reaches an event, `remote_data`, a log or an error.
#![forbid(unsafe_code)]

pub mod encryption;
pub mod listing;
pub mod mapping;
pub mod payload;
pub mod signature;

use std::borrow::Cow;

use rollcall_core::{
    inventory, ConfigError, Connector, ConnectorRegistration, Delivery, ListCursor, ListError,
    NormalizeError, Secret, Secrets, SignError, SourceOptions, UserEvent, UserPage, VerifyError,
};
use serde::Deserialize;

use crate::encryption::{BodyDecryption, Cipher, IV_QUERY_PARAMETER};
use crate::payload::UserRequest;
use crate::signature::{SecretKeyCheck, SECRET_QUERY_PARAMETER};

/// The connector name sources refer to.
pub const NAME: &str = "vcclive";

/// A source's options.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VccLiveOptions {
    /// The value of the `secret-key` query parameter in the webhook URL, or a list of them
    /// while one is rotated (any verifies; the first signs). Required, except when only
    /// normalizing offline.
    #[serde(default)]
    pub secret_key: Option<Secrets>,
    /// The query parameter the secret is in, when the webhook URL uses another name than
    /// VCC Live's guide (`secret-key`).
    #[serde(default)]
    pub secret_parameter: Option<String>,
    /// The body encryption cipher chosen in VCC Live: `aes-256-ctr` or `aes-256-cbc`. Set it
    /// (with `encryption_key`) only when HTTP body encryption is enabled.
    #[serde(default)]
    pub cipher: Option<Cipher>,
    /// The encryption secret key set in VCC Live, or a list of them while it is rotated (a
    /// body any of them decrypts is accepted; the first encrypts test requests).
    #[serde(default)]
    pub encryption_key: Option<Secrets>,
    /// Sync: the account's name (`mycc` for mycc.asp.virtual-call-center.eu), the Database
    /// API's user name. `account` and `api_password` go together.
    #[serde(default)]
    pub account: Option<String>,
    /// Sync: the Database API password.
    #[serde(default)]
    pub api_password: Option<Secret>,
    /// Sync: the API base URL, overriding `https://{account}.asp.virtual-call-center.eu`.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Sync: API requests per second at most (default 1).
    #[serde(default)]
    pub api_rate_per_second: Option<f64>,
    /// Sync: the timeout of the user list request, in milliseconds (default 30000).
    #[serde(default)]
    pub api_timeout_ms: Option<u64>,
}

/// The VCC Live connector for one source.
#[derive(Debug)]
pub struct VccLiveConnector {
    /// `None` only for offline (normalize-only) connectors.
    secret_key: Option<SecretKeyCheck>,
    /// The same secret, which test requests carry in their query string.
    signing_secret: Option<Secret>,
    /// The query parameter the secret is in.
    secret_parameter: String,
    decryption: Option<BodyDecryption>,
    /// The Database API user list, when the source has API options.
    lister: Option<listing::Lister>,
}

impl VccLiveConnector {
    /// Builds the connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let parsed: VccLiveOptions = options.parse()?;
        let secret_parameter = parsed
            .secret_parameter
            .unwrap_or_else(|| SECRET_QUERY_PARAMETER.to_owned());
        signature::check_parameter_name(&secret_parameter)
            .map_err(|message| ConfigError::new("secret_parameter", message))?;
        let secret_key = options.require_secrets(parsed.secret_key, "secret_key")?;
        let decryption = match (parsed.cipher, parsed.encryption_key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "encryption_key",
                    "is required when cipher is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "cipher",
                    "is required when encryption_key is set (aes-256-ctr or aes-256-cbc)",
                ))
            }
            (Some(_), Some(keys)) if keys.iter().any(|key| key.expose().is_empty()) => {
                return Err(ConfigError::new("encryption_key", "must not be empty"))
            }
            (Some(cipher), Some(keys)) => Some(BodyDecryption::with_keys(cipher, &keys)),
        };
        let lister = listing::Lister::from_options(&listing::ListingOptions {
            account: parsed.account.as_deref(),
            api_password: parsed.api_password.as_ref(),
            api_base_url: parsed.api_base_url.as_deref(),
            api_rate_per_second: parsed.api_rate_per_second,
            api_timeout_ms: parsed.api_timeout_ms,
        })?;
        Ok(Self {
            lister,
            secret_key: secret_key
                .as_ref()
                .map(|secret| SecretKeyCheck::new(&secret_parameter, secret)),
            signing_secret: secret_key.map(|secrets| secrets.first().clone()),
            secret_parameter,
            decryption,
        })
    }

    /// The body as JSON bytes: decrypted when body encryption is configured.
    fn plaintext<'a>(&self, delivery: &'a Delivery) -> Result<Cow<'a, [u8]>, NormalizeError> {
        match &self.decryption {
            None => Ok(Cow::Borrowed(&delivery.body[..])),
            Some(decryption) => decryption
                .decrypt(
                    &delivery.body,
                    delivery.query_param(IV_QUERY_PARAMETER).as_deref(),
                )
                .map(Cow::Owned),
        }
    }
}

#[rollcall_core::async_trait]
impl Connector for VccLiveConnector {
    /// With `account` and `api_password`: the Database API lists every user ([`listing`]).
    fn lists_users(&self) -> bool {
        self.lister.is_some()
    }

    async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        match &self.lister {
            Some(lister) => lister.list_users(cursor).await,
            None => Err(ListError::Unsupported(
                "the source has no API options (account, api_password)".to_owned(),
            )),
        }
    }

    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        match &self.secret_key {
            Some(check) => check.verify(delivery),
            None => Err(VerifyError::NotConfigured {
                what: "secret_key".to_owned(),
            }),
        }
    }

    fn precheck(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        match &self.secret_key {
            Some(check) => check.present(delivery),
            None => Err(VerifyError::NotConfigured {
                what: "secret_key".to_owned(),
            }),
        }
    }

    /// The delivery without the users' `password` keys (any case, under `new` and `old`).
    /// An encrypted body is decrypted, cleaned and encrypted again under an IV derived from
    /// the cleaned body (the `iv` query parameter changes with it), so a replay decrypts it
    /// as it did the original. A body that does not decrypt, or is not a JSON object, is
    /// kept as it came: there is no field to remove from it.
    fn without_secrets(&self, delivery: &Delivery) -> Delivery {
        let Ok(plaintext) = self.plaintext(delivery) else {
            return delivery.clone();
        };
        let Some(cleaned) = payload::without_passwords(&plaintext) else {
            return delivery.clone();
        };
        let mut kept = delivery.clone();
        match &self.decryption {
            None => kept.replace_body(cleaned),
            Some(encryption) => {
                let mut cleartext = Delivery::new(&delivery.source, cleaned, delivery.received_at);
                let iv = encryption.iv_for(cleartext.body_sha256());
                let ciphertext = encryption.encrypt(&cleartext.body, &iv);
                cleartext.replace_body(ciphertext);
                kept.replace_body(cleartext.body);
                signature::set_query_parameters(
                    &mut kept,
                    &[(IV_QUERY_PARAMETER, &hex::encode(iv))],
                );
            }
        }
        kept
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        let body = self.plaintext(delivery)?;
        let request = UserRequest::parse(&body)?;
        mapping::events(NAME, delivery, &request)
    }

    /// The SHA-256 of the body; with body encryption configured, of the decrypted body (a
    /// retry may be encrypted again under a fresh IV), or of the body as received when it
    /// does not decrypt.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        if self.decryption.is_some() {
            if let Ok(plaintext) = self.plaintext(delivery) {
                let mut decrypted = delivery.clone();
                decrypted.replace_body(plaintext.into_owned());
                return decrypted.body_dedup_key();
            }
        }
        delivery.body_dedup_key()
    }

    /// Adds `<secret_parameter>=<secret_key>` to the query string (keeping its other parameters)
    /// and, with body encryption configured, encrypts the body as VCC Live does, under an IV
    /// derived from the body (passed as the hex `iv` parameter).
    fn sign(&self, delivery: &mut Delivery) -> Result<(), SignError> {
        let Some(secret) = &self.signing_secret else {
            return Err(SignError::MissingKey(
                "the source has no secret_key (built offline)".to_owned(),
            ));
        };
        let mut iv_hex = None;
        if let Some(encryption) = &self.decryption {
            let iv = encryption.iv_for(delivery.body_sha256());
            let ciphertext = encryption.encrypt(&delivery.body, &iv);
            delivery.replace_body(ciphertext);
            iv_hex = Some(hex::encode(iv));
        }
        let mut parameters = vec![(self.secret_parameter.as_str(), secret.expose())];
        if let Some(iv_hex) = &iv_hex {
            parameters.push((IV_QUERY_PARAMETER, iv_hex));
        }
        signature::set_query_parameters(delivery, &parameters);
        Ok(())
    }
}

fn build(options: &SourceOptions) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(VccLiveConnector::from_options(options)?))
}

/// A demo source's options: the secret key is the seed in hex; no body encryption.
fn demo_options(seed: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({ "secret_key": hex::encode(seed) })
}

const EXAMPLE_CONFIG: &str = r#"[[sources]]
id = "vcclive"
connector = "vcclive"
# The secret in the webhook URL set up in VCC Live:
#   https://rollcall.example.com/hooks/vcclive?secret-key=<secret_key>
secret_key = "${VCCLIVE_SECRET_KEY}"
# When the URL names the parameter otherwise (default secret-key). The name must contain
# secret, token, key, password, signature, sig or auth, so quarantine never keeps it.
# secret_parameter = "rollcall-secret"
# Only when HTTP body encryption is enabled in VCC Live (add an `iv` query parameter to the
# URL when the random initialization vector is on):
# cipher = "aes-256-ctr"          # or "aes-256-cbc"
# encryption_key = "<the encryption secret key set in VCC Live>"
# Optional: sync (rollcall sync, sync_interval) from the Database API's user list.
# account = "mycc"
# api_password = "${VCCLIVE_API_PASSWORD}"
"#;

inventory::submit! {
    ConnectorRegistration {
        name: NAME,
        vendor: "VCC Live",
        event_types: &[mapping::USER_CREATED, mapping::USER_CHANGED],
        build,
        example_config: EXAMPLE_CONFIG,
        demo_options,
        options_schema: Some(rollcall_core::options_schema::<VccLiveOptions>),
    }
}
