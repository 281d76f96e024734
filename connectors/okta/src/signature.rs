//! How Okta authenticates a delivery: the `Authorization` header secret.
//!
//! Okta signs nothing. An event hook is configured with an authentication field (the header
//! name, `Authorization`) and an authentication secret (any string the admin chooses), and
//! Okta sends that secret, verbatim, in the header of every request. rollcall compares the
//! header with the `authorization_secret` option in constant time: both are first reduced
//! to a keyed SHA-256 digest, so the comparison does not even depend on their lengths.
//!
//! The secret authenticates the sender, not the bytes: there is no body signature and no
//! signed timestamp, so no replay window. Repeats are caught by the dedup key (the events'
//! `uuid`s).
//!
//! Test requests (`rollcall sign`) carry the secret in the header, as Okta does.

use std::fmt;

use rollcall_core::verify::{constant_time_eq, hmac_sha256};
use rollcall_core::{Delivery, Secret, VerifyError};

/// The header Okta sends the secret in. rollcall reads this one only: the host keeps
/// `Authorization` out of quarantined requests, a custom header name it would not know.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Fixed key for the digests compared; it only makes both sides the same length.
const DIGEST_KEY: &[u8] = b"rollcall okta authorization";

/// The configured secret, kept only as a digest. `Debug` never shows it.
#[derive(Clone)]
pub struct AuthorizationCheck {
    expected: [u8; 32],
}

impl fmt::Debug for AuthorizationCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationCheck(***)")
    }
}

impl AuthorizationCheck {
    pub fn new(secret: &Secret) -> Self {
        Self {
            expected: digest(secret.expose()),
        }
    }

    /// Passes when the `Authorization` header is exactly the secret.
    pub fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let Some(given) = delivery
            .header(AUTHORIZATION_HEADER)
            .filter(|value| !value.trim().is_empty())
        else {
            return Err(VerifyError::missing(format!(
                "{AUTHORIZATION_HEADER} header"
            )));
        };
        if constant_time_eq(&digest(given), &self.expected) {
            Ok(())
        } else {
            Err(VerifyError::invalid(format!(
                "the {AUTHORIZATION_HEADER} header is not the configured authorization_secret"
            )))
        }
    }
}

fn digest(value: &str) -> [u8; 32] {
    hmac_sha256(DIGEST_KEY, &[value.as_bytes()])
}

/// Sets the `Authorization` header to the secret, replacing any value it had.
pub fn sign(secret: &Secret, delivery: &mut Delivery) {
    delivery.headers = delivery
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case(AUTHORIZATION_HEADER))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    delivery
        .headers
        .insert(AUTHORIZATION_HEADER, secret.expose());
}
