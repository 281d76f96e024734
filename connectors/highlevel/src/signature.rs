//! HighLevel's signatures: public-key signatures over the raw body.
//!
//! * `X-GHL-Signature`: base64 Ed25519 signature of the raw body (the current scheme).
//! * `X-WH-Signature`: base64 RSASSA-PKCS1-v1_5 SHA-256 signature of the raw body (legacy).
//!
//! When `X-GHL-Signature` is present it alone decides; `X-WH-Signature` is checked only
//! when it is absent. A request with neither is rejected. After the signature, the body's
//! `timestamp` (when it has one) must be within five minutes of the receive time.

use rollcall_core::verify::{check_timestamp, Ed25519PublicKey, RsaPublicKey};
use rollcall_core::{Delivery, VerifyError};
use serde_json::Value;

use crate::payload;

pub const ED25519_HEADER: &str = "X-GHL-Signature";
pub const RSA_HEADER: &str = "X-WH-Signature";

/// HighLevel's published Ed25519 key for `X-GHL-Signature`.
pub const DEFAULT_ED25519_PUBLIC_KEY: &str =
    include_str!("../keys/x-ghl-signature-ed25519-public-key.pem");
/// HighLevel's published RSA key (4096-bit) for the legacy `X-WH-Signature`.
pub const DEFAULT_RSA_PUBLIC_KEY: &str = include_str!("../keys/x-wh-signature-rsa-public-key.pem");

/// The replay window around the body's `timestamp`: what HighLevel's guide suggests.
pub const TOLERANCE_SECONDS: i64 = rollcall_core::verify::DEFAULT_TOLERANCE_SECONDS;

/// The two public keys a source verifies with.
#[derive(Debug, Clone)]
pub struct SignatureKeys {
    pub ed25519: Ed25519PublicKey,
    pub rsa: RsaPublicKey,
}

impl SignatureKeys {
    /// Checks the signature, then the body's timestamp.
    pub fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        if let Some(signature) = header(delivery, ED25519_HEADER) {
            self.ed25519.verify_base64(&delivery.body, signature)?;
        } else if let Some(signature) = header(delivery, RSA_HEADER) {
            self.rsa.verify_base64(&delivery.body, signature)?;
        } else {
            return Err(VerifyError::missing(format!(
                "{ED25519_HEADER} or {RSA_HEADER} header"
            )));
        }
        check_body_timestamp(delivery)
    }
}

/// A header's value, with a blank value counted as absent.
fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a str> {
    delivery
        .header(name)
        .filter(|value| !value.trim().is_empty())
}

/// The replay window. A body that is not a JSON object, or whose `timestamp` is absent or
/// unreadable, has nothing to check here: `normalize` rejects the unreadable ones.
fn check_body_timestamp(delivery: &Delivery) -> Result<(), VerifyError> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&delivery.body) else {
        return Ok(());
    };
    match payload::read_timestamp(object.get("timestamp")) {
        Ok(Some(sent_at)) => check_timestamp(sent_at, delivery.received_at, TOLERANCE_SECONDS),
        Ok(None) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_keys_parse() {
        assert!(Ed25519PublicKey::from_pem(DEFAULT_ED25519_PUBLIC_KEY).is_ok());
        assert!(RsaPublicKey::from_pem(DEFAULT_RSA_PUBLIC_KEY).is_ok());
    }
}
