//! How rollcall knows a Freshservice delivery is genuine.
//!
//! Freshworks signs nothing: a product event reaches the forwarder app (a Freshworks
//! serverless app, `connectors/freshservice/forwarder-app/`) and nothing else. The app signs
//! what it POSTs with the Standard Webhooks scheme, keyed with the `whsec_` secret held in its
//! secure installation parameter:
//!
//! ```text
//! webhook-id:        msg_<32 hex>            derived from account, event, user and payload time
//! webhook-timestamp: <epoch seconds>         when the app signed
//! webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//! ```
//!
//! rollcall checks the MAC over the raw body in constant time, then that the timestamp is
//! within [`DEFAULT_TOLERANCE_SECONDS`] of the receive time.

use rollcall_core::verify::{StandardWebhooks, DEFAULT_TOLERANCE_SECONDS};
use rollcall_core::{ConfigError, Delivery, Secret, VerifyError};

/// The source option holding the forwarder app's signing secret.
pub const SECRET_OPTION: &str = "signing_secret";

/// Reads the `whsec_<base64>` signing secret; anything else is a configuration error that
/// names the option (never its value).
pub fn scheme(secret: &Secret) -> Result<StandardWebhooks, ConfigError> {
    StandardWebhooks::new(secret).map_err(|message| ConfigError::new(SECRET_OPTION, message))
}

/// Verifies a delivery's Standard Webhooks headers, with the default five-minute window.
pub fn verify(scheme: &StandardWebhooks, delivery: &Delivery) -> Result<(), VerifyError> {
    scheme.verify(delivery, DEFAULT_TOLERANCE_SECONDS)
}

/// The forwarder's `webhook-id`, the same on every retry of one product event.
pub fn webhook_id(delivery: &Delivery) -> Option<&str> {
    delivery
        .header(StandardWebhooks::ID_HEADER)
        .map(str::trim)
        .filter(|id| !id.is_empty())
}
