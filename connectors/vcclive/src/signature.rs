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
//!
//! Test requests (`rollcall sign`) are "signed" by putting the secret in the query string
//! ([`set_query_parameters`]).

use std::fmt;
use std::fmt::Write as _;

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

/// Sets query parameters on `delivery`: any existing parameter with one of these names is
/// dropped, every other one is kept as it was, and the new ones are appended,
/// percent-encoded.
pub fn set_query_parameters(delivery: &mut Delivery, parameters: &[(&str, &str)]) {
    let mut pieces: Vec<String> = delivery
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|piece| !piece.is_empty())
        .filter(|piece| {
            let name = piece.split_once('=').map_or(*piece, |(name, _)| name);
            !parameters.iter().any(|(replaced, _)| *replaced == name)
        })
        .map(str::to_owned)
        .collect();
    for (name, value) in parameters {
        pieces.push(format!("{name}={}", percent_encode(value)));
    }
    delivery.query = Some(pieces.join("&"));
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    value.bytes().fold(String::new(), |mut encoded, byte| {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
        encoded
    })
}
