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
//!
//! [`sign`] makes the same headers for test requests (`rollcall sign`, demo sources).

use std::fmt::Write as _;

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

/// Whether the three Standard Webhooks headers are there (their values are not checked):
/// what can be known before the body is read.
pub fn headers_present(delivery: &Delivery) -> Result<(), VerifyError> {
    for name in [
        StandardWebhooks::ID_HEADER,
        StandardWebhooks::TIMESTAMP_HEADER,
        StandardWebhooks::SIGNATURE_HEADER,
    ] {
        if delivery
            .header(name)
            .is_none_or(|value| value.trim().is_empty())
        {
            return Err(VerifyError::missing(format!("{name} header")));
        }
    }
    Ok(())
}

/// The forwarder's `webhook-id`, the same on every retry of one product event.
pub fn webhook_id(delivery: &Delivery) -> Option<&str> {
    delivery
        .header(StandardWebhooks::ID_HEADER)
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

/// Signs `delivery` with the three Standard Webhooks headers, replacing any it already has.
///
/// `webhook-timestamp` is `received_at` in epoch seconds. `webhook-id` is kept when the
/// delivery already has one (a retry keeps its id, as the forwarder's do); otherwise it is
/// [`message_id`] of the body.
pub fn sign(scheme: &StandardWebhooks, delivery: &mut Delivery) {
    let id = webhook_id(delivery)
        .map(str::to_owned)
        .unwrap_or_else(|| message_id(delivery));
    let timestamp = delivery.received_at.unix_seconds();
    let signature = scheme.sign(&id, timestamp, &delivery.body);
    set_header(delivery, StandardWebhooks::ID_HEADER, id);
    set_header(
        delivery,
        StandardWebhooks::TIMESTAMP_HEADER,
        timestamp.to_string(),
    );
    set_header(delivery, StandardWebhooks::SIGNATURE_HEADER, signature);
}

/// `msg_` followed by the first 32 hex digits of the body's SHA-256: the same shape as the
/// forwarder's ids, and the same id for the same body.
pub fn message_id(delivery: &Delivery) -> String {
    delivery
        .body_sha256()
        .iter()
        .take(16)
        .fold(String::from("msg_"), |mut id, byte| {
            let _ = write!(id, "{byte:02x}");
            id
        })
}

/// Sets a header, dropping the values it had.
fn set_header(delivery: &mut Delivery, name: &str, value: String) {
    delivery.headers = delivery
        .headers
        .iter()
        .filter(|(existing, _)| !existing.eq_ignore_ascii_case(name))
        .map(|(existing, old)| (existing.to_owned(), old.to_owned()))
        .collect();
    delivery.headers.insert(name, value);
}
