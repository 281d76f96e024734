//! How Okta authenticates a delivery: a header secret, in `Authorization` by default.
//!
//! Okta signs nothing. An event hook is configured with an authentication field (the header
//! name, `authScheme.key` in the API: `Authorization` unless the admin chose another) and an
//! authentication secret (any string the admin chooses), and Okta sends that secret,
//! verbatim, in that header of every request. rollcall compares the header named by the
//! `authorization_header` option with the `authorization_secret` option in constant time:
//! both are first reduced to a keyed SHA-256 digest, so the comparison does not even depend
//! on their lengths.
//!
//! The secret authenticates the sender, not the bytes: there is no body signature and no
//! signed timestamp, so no replay window. Repeats are caught by the dedup key (the events'
//! `uuid`s).
//!
//! Test requests (`rollcall sign`) carry the secret in the header, as Okta does.

use std::fmt;

use rollcall_core::verify::{constant_time_eq, hmac_sha256};
use rollcall_core::{Delivery, Secret, Secrets, VerifyError};

/// The header Okta sends the secret in unless the hook names another.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Checks a configured header name: a valid HTTP header name that the host keeps out of
/// quarantine. The error says why, for the option's `ConfigError`.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
    if !valid {
        return Err(format!("{name:?} is not an HTTP header name"));
    }
    if rollcall_core::credentials::is_credential_header(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} would be kept with quarantined deliveries: use Authorization, or a name \
             containing one of {}",
            rollcall_core::credentials::CREDENTIAL_HEADER_WORDS.join(", ")
        ))
    }
}

/// Fixed key for the digests compared; it only makes both sides the same length.
const DIGEST_KEY: &[u8] = b"rollcall okta authorization";

/// The configured secret, kept only as a digest, and the header it arrives in. `Debug`
/// never shows the secret.
#[derive(Clone)]
pub struct AuthorizationCheck {
    header: String,
    /// One digest per configured secret (several while one is rotated).
    expected: Vec<[u8; 32]>,
}

impl fmt::Debug for AuthorizationCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCheck")
            .field("header", &self.header)
            .field("expected", &"***")
            .finish()
    }
}

impl AuthorizationCheck {
    pub fn new(header: &str, secrets: &Secrets) -> Self {
        Self {
            header: header.to_owned(),
            expected: secrets
                .iter()
                .map(|secret| digest(secret.expose()))
                .collect(),
        }
    }

    /// Passes when the configured header is there (its value is not checked): what can be
    /// known before the body is read.
    pub fn present(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let header = &self.header;
        match delivery.header(header) {
            Some(value) if !value.trim().is_empty() => Ok(()),
            _ => Err(VerifyError::missing(format!("{header} header"))),
        }
    }

    /// Passes when the configured header is exactly the secret.
    pub fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let header = &self.header;
        let Some(given) = delivery
            .header(header)
            .filter(|value| !value.trim().is_empty())
        else {
            return Err(VerifyError::missing(format!("{header} header")));
        };
        let given = digest(given);
        // Every configured secret is compared, so timing does not tell which one matched.
        let matches = self.expected.iter().fold(false, |found, expected| {
            constant_time_eq(&given, expected) | found
        });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::invalid(format!(
                "the {header} header is not the configured authorization_secret"
            )))
        }
    }
}

fn digest(value: &str) -> [u8; 32] {
    hmac_sha256(DIGEST_KEY, &[value.as_bytes()])
}

/// Sets `header` to the secret, replacing any value it had.
pub fn sign(header: &str, secret: &Secret, delivery: &mut Delivery) {
    delivery.headers = delivery
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case(header))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    delivery.headers.insert(header, secret.expose());
}
