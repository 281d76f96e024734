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
//!
//! The mapping is documented field by field in `docs/connectors/freshservice.md`.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use rollcall_core::verify::StandardWebhooks;
use rollcall_core::{
    async_trait, inventory, ConfigError, Connector, ConnectorRegistration, Delivery,
    NormalizeError, Secret, SourceOptions, UserEvent, VerifyError,
};
use serde::Deserialize;

mod changes;
pub mod mapping;
pub mod payload;
pub mod signature;

/// The name sources use in `connector = "freshservice"`.
pub const CONNECTOR_NAME: &str = "freshservice";

/// A source's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshserviceOptions {
    /// The forwarder app's Standard Webhooks secret, `whsec_` followed by base64. Required
    /// except when only normalizing offline.
    #[serde(default)]
    pub signing_secret: Option<Secret>,
}

/// The Freshservice connector for one configured source.
#[derive(Debug)]
pub struct FreshserviceConnector {
    /// `None` only offline, where verify answers `source_misconfigured`.
    scheme: Option<StandardWebhooks>,
}

impl FreshserviceConnector {
    /// Builds the connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let parsed: FreshserviceOptions = options.parse()?;
        let secret = options.require_secret(parsed.signing_secret, signature::SECRET_OPTION)?;
        let scheme = secret.as_ref().map(signature::scheme).transpose()?;
        Ok(Self { scheme })
    }
}

#[async_trait]
impl Connector for FreshserviceConnector {
    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        match &self.scheme {
            Some(scheme) => signature::verify(scheme, delivery),
            None => Err(VerifyError::NotConfigured {
                what: signature::SECRET_OPTION.to_owned(),
            }),
        }
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        mapping::normalize(delivery)
    }

    /// `webhook-id:<id>` from the forwarder's header (stable across retries), else
    /// `sha256:<hex>` of the body.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        if let Some(id) = signature::webhook_id(delivery) {
            return format!("webhook-id:{id}");
        }
        let mut key = String::from("sha256:");
        for byte in delivery.body_sha256() {
            let _ = write!(key, "{byte:02x}");
        }
        key
    }
}

fn build(options: &SourceOptions) -> Result<Box<dyn Connector>, ConfigError> {
    Ok(Box::new(FreshserviceConnector::from_options(options)?))
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
"#,
    }
}
