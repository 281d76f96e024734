//! VCC Live's authenticity scheme: a shared secret in the webhook URL.
//!
//! VCC Live signs nothing. Its "Securing Requests" guide has the customer add a secret to the
//! webhook URL (`https://your-url/resource?secret-key=xxxxxxxxxxxxxx`) and answer
//! `401 Unauthorized` when it is wrong. rollcall compares the `secret-key` query parameter
//! with the configured `secret_key` in constant time: both are first reduced to a keyed
//! SHA-256 digest, so the comparison does not even depend on their lengths.
//!
//! The scheme has no timestamp and no delivery id, so there is no replay window: duplicate
//! deliveries are caught by the host's dedup on the body hash.

use std::fmt;

use rollcall_core::verify::{constant_time_eq, hmac_sha256};
use rollcall_core::{Delivery, Secret, VerifyError};

/// The query parameter VCC Live's guide puts the secret in.
pub const SECRET_QUERY_PARAMETER: &str = "secret-key";

/// Fixed key for the digests compared; it only makes both sides the same length.
const DIGEST_KEY: &[u8] = b"rollcall vcclive secret-key";

/// The configured secret, kept only as a digest. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKeyCheck {
    expected: [u8; 32],
}

impl fmt::Debug for SecretKeyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyCheck(***)")
    }
}

impl SecretKeyCheck {
    pub fn new(secret_key: &Secret) -> Self {
        Self {
            expected: digest(secret_key.expose()),
        }
    }

    /// Passes when the delivery's `secret-key` query parameter equals the secret.
    pub fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let Some(given) = delivery.query_param(SECRET_QUERY_PARAMETER) else {
            return Err(VerifyError::missing(format!(
                "`{SECRET_QUERY_PARAMETER}` query parameter"
            )));
        };
        if constant_time_eq(&digest(&given), &self.expected) {
            Ok(())
        } else {
            Err(VerifyError::invalid(format!(
                "the `{SECRET_QUERY_PARAMETER}` query parameter does not match the configured secret_key"
            )))
        }
    }
}

fn digest(value: &str) -> [u8; 32] {
    hmac_sha256(DIGEST_KEY, &[value.as_bytes()])
}
