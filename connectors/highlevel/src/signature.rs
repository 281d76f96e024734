//! HighLevel's signatures: public-key signatures over the raw body.
//!
//! * `X-GHL-Signature`: base64 Ed25519 signature of the raw body (the current scheme).
//! * `X-WH-Signature`: base64 RSASSA-PKCS1-v1_5 SHA-256 signature of the raw body (legacy).
//!
//! When `X-GHL-Signature` is present it alone decides; `X-WH-Signature` is checked only
//! when it is absent. A request with neither is rejected. After the signature, the body's
//! `timestamp` (when it has one) may be at most five minutes ahead of the receive time and at
//! most the retry horizon plus five minutes (75 minutes) behind it: HighLevel retries with
//! the same payload for about 70 minutes.
//!
//! Only HighLevel holds the private keys of its published public keys. For demos and tests a
//! source may be given its own Ed25519 [`SigningKey`] (option `signing_key`): it then signs
//! test requests with `X-GHL-Signature` and verifies with that key's public key.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::Signer as _;
use rollcall_core::verify::{
    check_timestamp, decode_base64, encode_base64, Ed25519PublicKey, RsaPublicKey,
};
use rollcall_core::{Delivery, Secret, Timestamp, VerifyError};
use serde_json::Value;

use crate::payload;

pub const ED25519_HEADER: &str = "X-GHL-Signature";
pub const RSA_HEADER: &str = "X-WH-Signature";

/// HighLevel's published Ed25519 key for `X-GHL-Signature`.
pub const DEFAULT_ED25519_PUBLIC_KEY: &str =
    include_str!("../keys/x-ghl-signature-ed25519-public-key.pem");
/// HighLevel's published RSA key (4096-bit) for the legacy `X-WH-Signature`.
pub const DEFAULT_RSA_PUBLIC_KEY: &str = include_str!("../keys/x-wh-signature-rsa-public-key.pem");

/// The clock tolerance around the body's `timestamp`: what HighLevel's guide suggests. A
/// timestamp ahead of the receive time may be this far ahead, no more.
pub const TOLERANCE_SECONDS: i64 = rollcall_core::verify::DEFAULT_TOLERANCE_SECONDS;

/// How old the body's `timestamp` may be: HighLevel retries a `429` with the same payload
/// (the same `timestamp`) for about 70 minutes, so the window is that horizon plus the clock
/// tolerance. Inside it, the dedup key (`webhookId`) stops a replay of a committed delivery.
pub fn replay_window_seconds() -> i64 {
    let window = crate::retry_contract().replay_window(std::time::Duration::from_secs(
        TOLERANCE_SECONDS.unsigned_abs(),
    ));
    i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
}

/// Whether one of the two signature headers is there (its value is not checked): what can be
/// known before the body is read.
pub fn signature_present(delivery: &Delivery) -> Result<(), VerifyError> {
    if header(delivery, ED25519_HEADER).is_some() || header(delivery, RSA_HEADER).is_some() {
        Ok(())
    } else {
        Err(VerifyError::missing(format!(
            "{ED25519_HEADER} or {RSA_HEADER} header"
        )))
    }
}

/// The public keys a source verifies with: for each scheme one key, or several while
/// HighLevel rotates it (a signature by any of them is authentic).
#[derive(Debug, Clone)]
pub struct SignatureKeys {
    pub ed25519: Vec<Ed25519PublicKey>,
    pub rsa: Vec<RsaPublicKey>,
}

impl SignatureKeys {
    /// Checks the signature, then the body's timestamp.
    pub fn verify(&self, delivery: &Delivery) -> Result<(), VerifyError> {
        if let Some(signature) = header(delivery, ED25519_HEADER) {
            any_verifies(&self.ed25519, |key| {
                key.verify_base64(&delivery.body, signature)
            })?;
        } else if let Some(signature) = header(delivery, RSA_HEADER) {
            any_verifies(&self.rsa, |key| {
                key.verify_base64(&delivery.body, signature)
            })?;
        } else {
            return Err(VerifyError::missing(format!(
                "{ED25519_HEADER} or {RSA_HEADER} header"
            )));
        }
        check_body_timestamp(delivery)
    }
}

/// `Ok` when `check` accepts one of `keys`; otherwise the first key's error (the current
/// key's, listed first).
fn any_verifies<K>(
    keys: &[K],
    check: impl Fn(&K) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    let mut first_error = None;
    for key in keys {
        match check(key) {
            Ok(()) => return Ok(()),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| VerifyError::invalid("no public key is configured")))
}

/// The option holding a source's own Ed25519 private key (demos and tests only).
pub const SIGNING_KEY_OPTION: &str = "signing_key";

/// An Ed25519 private key a source signs test requests with. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// Reads the base64 of the 32-byte private key (the seed), or a PKCS#8 PEM
    /// `PRIVATE KEY` block. The error message never contains the value.
    pub fn parse(secret: &Secret) -> Result<Self, String> {
        let text = secret.expose().trim();
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.starts_with("-----BEGIN") {
            return ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map(Self)
                .map_err(|_| "not an Ed25519 private key in PKCS#8 PEM".to_owned());
        }
        let seed: [u8; 32] = decode_base64(text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                "an Ed25519 private key is the base64 of its 32 bytes, or a PKCS#8 PEM \
                 `PRIVATE KEY` block"
                    .to_owned()
            })?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The public key that verifies this key's signatures.
    pub fn public_key(&self) -> Result<Ed25519PublicKey, String> {
        Ed25519PublicKey::from_bytes(self.0.verifying_key().as_bytes())
    }

    /// Whether `pem` (a `PUBLIC KEY` block) is this key's public key.
    pub fn matches_public_pem(&self, pem: &str) -> bool {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .is_ok_and(|public| public == self.0.verifying_key())
    }

    /// Sets `X-GHL-Signature` to the base64 Ed25519 signature of the raw body, replacing any
    /// value it had.
    pub fn sign(&self, delivery: &mut Delivery) {
        let signature = encode_base64(&self.0.sign(&delivery.body).to_bytes());
        delivery.headers = delivery
            .headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(ED25519_HEADER))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        delivery.headers.insert(ED25519_HEADER, signature);
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
    let Ok(Some(Value::Object(object))) = delivery.json() else {
        return Ok(());
    };
    match payload::read_timestamp(object.get("timestamp")) {
        Ok(Some(sent_at)) => check_sent_at(sent_at, delivery.received_at),
        Ok(None) | Err(_) => Ok(()),
    }
}

/// A `timestamp` up to [`replay_window_seconds`] old, or up to [`TOLERANCE_SECONDS`] ahead.
fn check_sent_at(sent_at: Timestamp, received_at: Timestamp) -> Result<(), VerifyError> {
    let age = sent_at.seconds_until(received_at);
    if age < 0 {
        return check_timestamp(sent_at, received_at, TOLERANCE_SECONDS);
    }
    let window = replay_window_seconds();
    if age > window {
        return Err(VerifyError::TimestampOutOfTolerance {
            skew_seconds: age,
            tolerance_seconds: window,
        });
    }
    Ok(())
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
