//! rollcall connector for Okta event hooks.
//!
//! # What Okta sends
//!
//! An Okta event hook POSTs a CloudEvents-style envelope whose `data.events` holds one or
//! more System Log events (Okta puts events that happen close together into one delivery).
//! Each user lifecycle event names its user in `target[]` (the entry with `type: "User"`:
//! `id`, `alternateId` = the login, `displayName`), who did it in `actor`, and when in
//! `published`. See [`payload`].
//!
//! Each event of a supported type becomes its own unified event, in order, its index being
//! its position in `data.events`: `user.lifecycle.create` is `user.created`;
//! `user.lifecycle.activate` and `user.lifecycle.unsuspend` are `user.updated` with status
//! `active`; `user.lifecycle.deactivate` and `user.lifecycle.suspend` are `user.updated`
//! with status `inactive`; `user.lifecycle.delete.initiated` and
//! `user.lifecycle.delete.completed` are `user.deleted`; `user.lifecycle.reactivate` is
//! `user.updated` with status `invited`; `user.account.lock` and `unlock` are `user.updated`
//! with status `inactive` and `active`; `user.account.update_profile` is `user.updated`;
//! `user.account.privilege.grant` / `revoke` and `group.user_membership.add` / `remove` are
//! `user.updated` carrying a delta of `roles` or `groups`. Events of other types and events that
//! did not succeed are skipped; a delivery left with none is `event_unsupported`. The user
//! is partial: events carry the id, login and display name only. See [`mapping`].
//!
//! # How it is verified
//!
//! Okta signs nothing: it sends the secret configured on the hook in a header
//! (`Authorization` unless the option `authorization_header` names another), which [`signature`] compares in constant time with `authorization_secret`. There
//! is no signed timestamp and so no replay window. Deliveries are deduplicated on their
//! events' `uuid`s: `okta:<uuid>` for one event, `okta:sha256:<hex>` of the sorted `uuid`s
//! for several, else the SHA-256 of the body.
//!
//! Okta verifies the endpoint once, before it sends events, with a GET carrying
//! `X-Okta-Verification-Challenge`; [`Connector::handshake`] answers it ([`handshake`]).
#![forbid(unsafe_code)]

pub mod handshake;
pub mod listing;
pub mod mapping;
pub mod payload;
pub mod signature;

use rollcall_core::verify::encode_base64;
use rollcall_core::RetryContract;
use rollcall_core::{
    ConfigError, Connector, ConnectorRegistration, Delivery, HandshakeResponse, ListCursor,
    ListError, NormalizeError, Secret, Secrets, SignError, SourceOptions, UserEvent, UserPage,
    VerifyError,
};
use serde::Deserialize;

use crate::signature::AuthorizationCheck;

/// The connector's registry name, used for `connector = "okta"` and in every event.
pub const NAME: &str = "okta";

/// The vendor's display name.
pub const VENDOR: &str = "Okta";

/// The event types handled, as Okta spells them.
pub const EVENT_TYPES: &[&str] = &[
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.delete.initiated",
    "user.lifecycle.delete.completed",
    "user.lifecycle.reactivate",
    "user.account.update_profile",
    "user.account.lock",
    "user.account.unlock",
    "user.account.privilege.grant",
    "user.account.privilege.revoke",
    "group.user_membership.add",
    "group.user_membership.remove",
];

/// The option holding the secret Okta sends in the `Authorization` header.
pub const SECRET_OPTION: &str = "authorization_secret";

/// The option naming the header the secret arrives in.
pub const HEADER_OPTION: &str = "authorization_header";

/// A source's options.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OktaOptions {
    /// The event hook's authentication secret, exactly as entered in Okta: Okta sends it as
    /// the `Authorization` header of every delivery; or a list of them while one is rotated
    /// (any verifies; the first signs). Required, except when only normalizing offline.
    #[serde(default)]
    pub authorization_secret: Option<Secrets>,
    /// The header Okta sends the secret in: the hook's authentication field
    /// (`authScheme.key`). Default `Authorization`.
    #[serde(default)]
    pub authorization_header: Option<String>,
    /// Sync: an Okta API token (Security > API > Tokens) of an admin who can read users (a
    /// Read-Only Administrator is enough). `api_token` and `org_url` go together.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Sync: the org's base URL (`https://acme.okta.com`).
    #[serde(default)]
    pub org_url: Option<String>,
    /// Sync: Users API requests per second at most (default 5).
    #[serde(default)]
    pub api_rate_per_second: Option<f64>,
    /// Sync: the timeout of one request, in milliseconds (default 10000).
    #[serde(default)]
    pub api_timeout_ms: Option<u64>,
}

/// The Okta connector for one source.
#[derive(Debug, Clone)]
pub struct Okta {
    /// The Users API listing, when the source has API options.
    lister: Option<std::sync::Arc<listing::Lister>>,
    /// `None` only for offline (normalize-only) connectors.
    check: Option<AuthorizationCheck>,
    /// The same secret, which test requests carry.
    secret: Option<Secret>,
    /// The header the secret arrives in.
    header: String,
}

impl Okta {
    /// Builds the connector from a source's options.
    pub fn from_options(options: &SourceOptions) -> Result<Self, ConfigError> {
        let parsed: OktaOptions = options.parse()?;
        let header = parsed
            .authorization_header
            .unwrap_or_else(|| signature::AUTHORIZATION_HEADER.to_owned());
        signature::check_header_name(&header)
            .map_err(|message| ConfigError::new(HEADER_OPTION, message))?;
        let secrets = options.require_secrets(parsed.authorization_secret, SECRET_OPTION)?;
        let lister = listing::Lister::from_options(&listing::ListingOptions {
            api_token: parsed.api_token.as_ref(),
            org_url: parsed.org_url.as_deref(),
            api_rate_per_second: parsed.api_rate_per_second,
            api_timeout_ms: parsed.api_timeout_ms,
        })?
        .map(std::sync::Arc::new);
        Ok(Self {
            lister,
            check: secrets
                .as_ref()
                .map(|secrets| AuthorizationCheck::new(&header, secrets)),
            secret: secrets.map(|secrets| secrets.first().clone()),
            header,
        })
    }
}

#[rollcall_core::async_trait]
impl Connector for Okta {
    fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        match &self.check {
            Some(check) => check.verify(delivery),
            None => Err(VerifyError::NotConfigured {
                what: SECRET_OPTION.to_owned(),
            }),
        }
    }

    fn precheck(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        match &self.check {
            Some(check) => check.present(delivery),
            None => Err(VerifyError::NotConfigured {
                what: SECRET_OPTION.to_owned(),
            }),
        }
    }

    fn normalize(&self, delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
        mapping::events(delivery, delivery.json_document()?)
    }

    /// `okta:<uuid>` for a delivery of one event, `okta:sha256:<hex>` of its events'
    /// `uuid`s (sorted, one per line) for several; the SHA-256 of the body when an event has
    /// no `uuid` or the body is no event hook delivery.
    fn dedup_key(&self, delivery: &Delivery) -> String {
        match payload::event_uuids(delivery) {
            Some(uuids) if uuids.len() == 1 => format!("{NAME}:{}", uuids[0]),
            Some(mut uuids) => {
                uuids.sort_unstable();
                let listed = Delivery::new(NAME, uuids.join("\n"), delivery.received_at);
                format!("{NAME}:{}", listed.body_dedup_key())
            }
            None => delivery.body_dedup_key(),
        }
    }

    /// Sets the configured header to the source's secret, as Okta does.
    fn sign(&self, delivery: &mut Delivery) -> Result<(), SignError> {
        let Some(secret) = &self.secret else {
            return Err(SignError::MissingKey(format!(
                "the source has no {SECRET_OPTION} (built offline)"
            )));
        };
        signature::sign(&self.header, secret, delivery);
        Ok(())
    }

    /// Answers Okta's one-time verification GET.
    fn handshake(&self, delivery: &Delivery) -> Option<HandshakeResponse> {
        handshake::answer(delivery)
    }

    fn retry_contract(&self) -> RetryContract {
        retry_contract()
    }

    /// With `api_token` and `org_url`: the Users API lists every user ([`listing`]).
    fn lists_users(&self) -> bool {
        self.lister.is_some()
    }

    async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
        match &self.lister {
            Some(lister) => lister.list_users(cursor).await,
            None => Err(ListError::Unsupported(
                "the source has no API options (api_token, org_url)".to_owned(),
            )),
        }
    }
}

/// Okta's event hook contract (developer.okta.com, event hooks, "Timeout and retry"): an
/// answer within 3 seconds, else the delivery failed; a timeout or a `5xx` is retried once,
/// a `4xx` never.
pub fn retry_contract() -> RetryContract {
    RetryContract::default().with_answer_deadline(std::time::Duration::from_secs(3))
}

fn build(options: &SourceOptions) -> Result<Box<dyn Connector>, ConfigError> {
    let connector = Okta::from_options(options)?;
    Ok(Box::new(connector))
}

/// A demo source's options: its secret derives from the seed, so it can sign test requests.
fn demo_options(seed: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({ SECRET_OPTION: encode_base64(seed) })
}

rollcall_core::inventory::submit! {
    ConnectorRegistration {
        name: NAME,
        vendor: VENDOR,
        event_types: EVENT_TYPES,
        build,
        example_config: r#"[[sources]]
id = "okta"
connector = "okta"
# In Okta (Workflow > Event Hooks > Create Event Hook): the URL is
# https://<rollcall>/hooks/okta, the authentication field `Authorization`, and the
# authentication secret this value, exactly as typed there.
authorization_secret = "${OKTA_EVENT_HOOK_SECRET}"
# When the hook's authentication field is not `Authorization` (authScheme.key in the API).
# The name must be Authorization or contain secret, token, signature, api-key, apikey or
# password, so quarantined deliveries never keep the secret.
# authorization_header = "X-Okta-Hook-Secret"
# Optional: sync (rollcall sync, sync_interval) from the Users API. api_token and org_url
# go together; the token's admin needs to read users (Read-Only Administrator).
# org_url = "https://acme.okta.com"
# api_token = "${OKTA_API_TOKEN}"
# api_rate_per_second = 5
# api_timeout_ms = 10000
"#,
        demo_options,
        options_schema: Some(rollcall_core::options_schema::<OktaOptions>),
    }
}
