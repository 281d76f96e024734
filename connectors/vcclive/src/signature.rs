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
use rollcall_core::{Delivery, Secrets, VerifyError};

/// The query parameter VCC Live's guide puts the secret in: the default of the
/// `secret_parameter` option.
pub const SECRET_QUERY_PARAMETER: &str = "secret-key";

/// Checks a configured parameter name: not blank, and one the host keeps out of quarantine.
pub fn check_parameter_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.contains(['&', '=', '#']) {
        return Err(format!("{name:?} is not a query parameter name"));
    }
    if rollcall_core::credentials::is_credential_parameter(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} would be kept with quarantined deliveries: use a name containing one of {}",
            rollcall_core::credentials::CREDENTIAL_PARAMETER_WORDS.join(", ")
        ))
    }
}

/// Fixed key for the digests compared; it only makes both sides the same length.
const DIGEST_KEY: &[u8] = b"rollcall vcclive secret-key";

/// The configured secret, kept only as a digest, and the query parameter it arrives in.
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct SecretKeyCheck {
    parameter: String,
    /// One digest per configured secret (several while one is rotated).
    expected: Vec<[u8; 32]>,
}

impl fmt::Debug for SecretKeyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeyCheck")
            .field("parameter", &self.parameter)
            .field("expected", &"***")
            .finish()
    }
}

impl SecretKeyCheck {
    pub fn new(parameter: &str, secret_keys: &Secrets) -> Self {
        Self {
            parameter: parameter.to_owned(),
            expected: secret_keys
                .iter()
                .map(|secret| digest(secret.expose()))
                .collect(),
        }
    }

    /// Passes when the secret query parameter is there (its value is not checked): what can
    /// be known before the body is read.
    pub fn present(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        match delivery.query_param(&self.parameter) {
            Some(_) => Ok(()),
            None => Err(VerifyError::missing(format!(
                "`{}` query parameter",
                self.parameter
            ))),
        }
    }

    /// Passes when the delivery's secret query parameter equals the secret.
    pub fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        let parameter = &self.parameter;
        let Some(given) = delivery.query_param(parameter) else {
            return Err(VerifyError::missing(format!(
                "`{parameter}` query parameter"
            )));
        };
        let given = digest(&given);
        // Every configured secret is compared, so timing does not tell which one matched.
        let matches = self.expected.iter().fold(false, |found, expected| {
            constant_time_eq(&given, expected) | found
        });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::invalid(format!(
                "the `{parameter}` query parameter does not match the configured secret_key"
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
