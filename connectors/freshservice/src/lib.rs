//! rollcall connector for Freshservice.
//!
//! # What arrives
//!
//! Freshservice has no outgoing user webhooks: it raises product events inside a Freshworks
//! app. rollcall ships that app (`connectors/freshservice/forwarder-app/`); it subscribes to
//! `onUserCreate`, `onUserUpdate` and `onUserDelete` and POSTs each event payload, as
//! Freshworks hands it to the app, to the rollcall source:
//!
//! ```json
//! {"account_id": "6957494", "domain": "sample.freshservice.com", "event": "onUserUpdate",
//!  "region": "us-east-1", "timestamp": 1684406756.665395, "version": "1.0.0",
//!  "data": {"user": {...}, "actor": {"id": 14, "name": "Raja H"}, "changes": {...}}}
//! ```
//!
//! Each payload becomes one event: `user.created`, `user.updated` (with `previous` and
//! `changes` rebuilt from `data.changes`) or `user.deleted` (GDPR "forget": the user is
//! purged). Any other `event` is `event_unsupported`.
//!
//! # How it is verified
//!
//! The app signs with Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) using the `whsec_` secret the source is configured with; see
//! [`signature`]. Deliveries are deduplicated on `webhook-id`, which the app derives from the
//! account, the event, the user and the payload's timestamp, so a retried event is recognised.
//! The connector signs test requests with the same headers ([`Connector::sign`]).
//!
//! The mapping is documented field by field in `docs/connectors/freshservice.md`.
#![forbid(unsafe_code)]

use rollcall_core::verify::{encode_base64, StandardWebhooks};
use rollcall_core::{
    async_trait, inventory, ConfigError, Connector, ConnectorRegistration, Delivery, ListCursor,
    ListError, NormalizeError, Secret, Secrets, SignError, SourceOptions, UserEvent, UserPage,
    VerifyError,
};
use serde::Deserialize;

mod changes;
pub mod listing;
pub mod mapping;
pub mod payload;
pub mod signature;

/// The name sources use in `connector = "freshservice"`.
pub const CONNECTOR_NAME: &str = "freshservice";

/// A source's options.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreshserviceOptions {
    /// The forwarder app's Standard Webhooks secret, `whsec_` followed by base64, or a list
    /// of them while one is rotated (any verifies; the first signs). Required except when
    /// only normalizing offline.
    #[serde(default)]
    pub signing_secret: Option<Secrets>,
    /// Sync: an API key (Profile settings > Your API key) of an agent who can view agents
    /// and requesters. `api_key` and `domain` go together.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Sync: the account's domain (`acme.freshservice.com`).
    #[serde(default)]
    pub domain: Option<String>,
    /// Sync: the API base URL, overriding `https://{domain}` (proxies and tests).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Sync: API requests per second at most (default 1).
    #[serde(default)]
    pub api_rate_per_second: Option<f64>,
    /// Sync: the timeout of one request, in milliseconds (default 15000).
    #[serde(default)]
    pub api_timeout_ms: Option<u64>,
}

/// The Freshservice connector for one configured source.
#[derive(Debug)]
pub struct FreshserviceConnector {
    /// One per configured secret, the signing one first; empty only offline, where verify
    /// answers `source_misconfigured`.
    schemes: Vec<StandardWebhooks>,
    /// The agents and requesters listing, when the source has API options.
    lister: Option<listing::Lister>,
}

impl FreshserviceConnector {
    /// Builds the connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let parsed: FreshserviceOptions = options.parse()?;
        let secrets = options.require_secrets(parsed.signing_secret, signature::SECRET_OPTION)?;
        let schemes = secrets
            .iter()
            .flat_map(Secrets::iter)
            .map(signature::scheme)
            .collect::<Result<_, _>>()?;
        let lister = listing::Lister::from_options(&listing::ListingOptions {
            api_key: parsed.api_key.as_ref(),
            domain: parsed.domain.as_deref(),
            api_base_url: parsed.api_base_url.as_deref(),
            api_rate_per_second: parsed.api_rate_per_second,
            api_timeout_ms: parsed.api_timeout_ms,
        })?;
        Ok(Self { schemes, lister })
    }
}

#[async_trait]
impl Connector for FreshserviceConnector {
    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let Some((first, others)) = self.schemes.split_first() else {
            return Err(VerifyError::NotConfigured {
                what: signature::SECRET_OPTION.to_owned(),
            });
        };
        // Any secret verifies; the error reported is the first (current) one's.
        let result = signature::verify(first, delivery);
        if result.is_err()
            && others
                .iter()
                .any(|scheme| signature::verify(scheme, delivery).is_ok())
        {
            return Ok(());
        }
        result
    }

    fn precheck(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        signature::headers_present(delivery)
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        mapping::normalize(delivery)
    }

    /// `webhook-id:<id>` from the forwarder's header (stable across retries), else
    /// `sha256:<hex>` of the body.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        match signature::webhook_id(delivery) {
            Some(id) => format!("webhook-id:{id}"),
            None => delivery.body_dedup_key(),
        }
    }

    /// Signs as the forwarder app does, with the source's `signing_secret`, at `received_at`.
    fn sign(&self, delivery: &mut Delivery) -> Result<(), SignError> {
        let scheme = self.schemes.first().ok_or_else(|| {
            SignError::MissingKey(format!(
                "the source has no {} (built offline)",
                signature::SECRET_OPTION
            ))
        })?;
        signature::sign(scheme, delivery);
        Ok(())
    }

    fn retry_contract(&self) -> rollcall_core::RetryContract {
        retry_contract()
    }

    /// With `api_key` and `domain`: the API lists agents, then requesters ([`listing`]).
    fn lists_users(&self) -> bool {
        self.lister.is_some()
    }

    async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        match &self.lister {
            Some(lister) => lister.list_users(cursor).await,
            None => Err(ListError::Unsupported(
                "the source has no API options (api_key, domain)".to_owned(),
            )),
        }
    }
}

/// The forwarder app's contract: Freshworks' request method waits 15 s for an answer (its
/// default request timeout), and the `forwardToRollcall` template retries network errors,
/// `429` and `5xx` up to 3 times, one second apart (`config/requests.json`).
pub fn retry_contract() -> rollcall_core::RetryContract {
    rollcall_core::RetryContract::default()
        .with_answer_deadline(std::time::Duration::from_secs(15))
        .with_horizon(std::time::Duration::from_secs(3))
}

fn build(options: &SourceOptions) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(FreshserviceConnector::from_options(options)?))
}

/// A demo source's options: the seed is the signing key, as a `whsec_` secret.
fn demo_options(seed: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({ signature::SECRET_OPTION: format!("whsec_{}", encode_base64(seed)) })
}

inventory::submit! {
    ConnectorRegistration {
        name: CONNECTOR_NAME,
        vendor: "Freshservice",
        event_types: mapping::EVENT_TYPES,
        build,
        example_config: r#"[[sources]]
id = "freshservice-acme"
connector = "freshservice"
# The forwarder app's Standard Webhooks secret (`whsec_` + base64), the same value as its
# "Signing secret" installation parameter.
signing_secret = "${FRESHSERVICE_SIGNING_SECRET}"
# Optional: sync (rollcall sync, sync_interval) of agents and requesters from the API v2.
# domain = "acme.freshservice.com"
# api_key = "${FRESHSERVICE_API_KEY}"
"#,
        demo_options,
        options_schema: Some(rollcall_core::options_schema::<FreshserviceOptions>),
    }
}
