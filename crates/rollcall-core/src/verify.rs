//! Signature primitives shared by connectors.
//!
//! Connectors own their vendor's scheme (which header, which bytes are signed); the
//! cryptography, the constant-time comparison and the replay window live here once.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::connector::Delivery;
use crate::error::VerifyError;
use crate::secret::Secret;
use crate::time::Timestamp;

/// The replay window vendors' own libraries use: five minutes either way.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac_for(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hmac_for(key: &[u8]) -> Hmac<Sha256> {
    use sha2::Digest;
    // HMAC hashes keys longer than the block and zero-pads shorter ones (RFC 2104), so a
    // block-sized key built here gives the same MAC and needs no fallible constructor.
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <Hmac<Sha256> as Mac>::new(&block.into())
}

/// Checks a base64 HMAC-SHA256 signature of `parts` in constant time.
pub fn verify_hmac_sha256_base64(
    key: &[u8],
    parts: &[&[u8]],
    signature_base64: &str,
) -> Result<(), VerifyError> {
    let expected = hmac_sha256(key, parts);
    let given = decode_base64(signature_base64)?;
    if constant_time_eq(&expected, &given) {
        Ok(())
    } else {
        Err(VerifyError::invalid("HMAC-SHA256 does not match"))
    }
}

/// Decodes standard base64 (padding optional); a decoding failure is `signature_invalid`.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, VerifyError> {
    let text = text.trim();
    BASE64
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| VerifyError::invalid("signature is not base64"))
}

pub fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Fails unless `signed_at` is within `tolerance_seconds` of `now`, in either direction.
pub fn check_timestamp(
    signed_at: Timestamp,
    now: Timestamp,
    tolerance_seconds: i64,
) -> Result<(), VerifyError> {
    let skew = signed_at.seconds_until(now);
    if skew.abs() > tolerance_seconds {
        return Err(VerifyError::TimestampOutOfTolerance {
            skew_seconds: skew,
            tolerance_seconds,
        });
    }
    Ok(())
}

/// The Standard Webhooks scheme (standardwebhooks.com): `webhook-id`, `webhook-timestamp`
/// (epoch seconds) and `webhook-signature` (space-separated `v1,<base64>` entries) over
/// `id.timestamp.body`, keyed with the base64-decoded `whsec_` secret.
#[derive(Clone)]
pub struct StandardWebhooks {
    key: Vec<u8>,
}

impl std::fmt::Debug for StandardWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandardWebhooks(***)")
    }
}

impl StandardWebhooks {
    pub const ID_HEADER: &'static str = "webhook-id";
    pub const TIMESTAMP_HEADER: &'static str = "webhook-timestamp";
    pub const SIGNATURE_HEADER: &'static str = "webhook-signature";

    /// Reads a `whsec_<base64>` secret. Without the prefix the value must still be base64.
    pub fn new(secret: &Secret) -> Result<Self, String> {
        let encoded = secret.expose();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        let key = BASE64
            .decode(encoded.trim())
            .map_err(|_| "a Standard Webhooks secret is `whsec_` followed by base64".to_owned())?;
        if key.is_empty() {
            return Err("the secret is empty".to_owned());
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` value for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mac = hmac_sha256(
            &self.key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        );
        format!("v1,{}", encode_base64(&mac))
    }

    /// Verifies a delivery's Standard Webhooks headers against its body.
    pub fn verify(&self, delivery: &Delivery, tolerance_seconds: i64) -> Result<(), VerifyError> {
        let id = delivery
            .header(Self::ID_HEADER)
            .ok_or_else(|| VerifyError::missing("webhook-id header"))?;
        let timestamp = delivery
            .header(Self::TIMESTAMP_HEADER)
            .ok_or_else(|| VerifyError::missing("webhook-timestamp header"))?;
        let signatures = delivery
            .header(Self::SIGNATURE_HEADER)
            .ok_or_else(|| VerifyError::missing("webhook-signature header"))?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::invalid("webhook-timestamp is not epoch seconds"))?;
        let signed_at = Timestamp::from_unix_seconds(seconds)
            .map_err(|_| VerifyError::invalid("webhook-timestamp is out of range"))?;
        // The MAC is checked before the clock so a forged request learns nothing about the
        // window; a genuine but stale one gets its own code.
        let expected = hmac_sha256(
            &self.key,
            &[
                id.as_bytes(),
                b".",
                timestamp.trim().as_bytes(),
                b".",
                &delivery.body,
            ],
        );
        let matched = signatures.split_whitespace().any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|encoded| decode_base64(encoded).ok())
                .is_some_and(|given| constant_time_eq(&expected, &given))
        });
        if !matched {
            return Err(VerifyError::invalid("no v1 signature matches"));
        }
        check_timestamp(signed_at, delivery.received_at, tolerance_seconds)
    }
}

/// An Ed25519 public key.
#[derive(Clone, Debug)]
pub struct Ed25519PublicKey(ed25519_dalek::VerifyingKey);

impl Ed25519PublicKey {
    /// From a PEM `PUBLIC KEY` (SPKI) block.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map(Self)
            .map_err(|error| format!("not an Ed25519 public key in PEM: {error}"))
    }

    /// From the 32 raw key bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, String> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|error| format!("not an Ed25519 public key: {error}"))
    }

    /// Verifies a base64 signature over `message`.
    pub fn verify_base64(&self, message: &[u8], signature_base64: &str) -> Result<(), VerifyError> {
        let bytes = decode_base64(signature_base64)?;
        let signature = ed25519_dalek::Signature::from_slice(&bytes)
            .map_err(|_| VerifyError::invalid("not an Ed25519 signature"))?;
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| VerifyError::invalid("Ed25519 signature does not match"))
    }
}

/// An RSA public key for PKCS#1 v1.5 signatures with SHA-256.
#[derive(Clone, Debug)]
pub struct RsaPublicKey(rsa::pkcs1v15::VerifyingKey<Sha256>);

impl RsaPublicKey {
    /// From a PEM `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) block.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        let pem = pem.trim();
        let key = rsa::RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|error| format!("not an RSA public key in PEM: {error}"))?;
        Ok(Self(rsa::pkcs1v15::VerifyingKey::new(key)))
    }

    /// Verifies a base64 RSASSA-PKCS1-v1_5 SHA-256 signature over `message`.
    pub fn verify_base64(&self, message: &[u8], signature_base64: &str) -> Result<(), VerifyError> {
        use rsa::signature::Verifier;
        let bytes = decode_base64(signature_base64)?;
        let signature = rsa::pkcs1v15::Signature::try_from(bytes.as_slice())
            .map_err(|_| VerifyError::invalid("not an RSA signature"))?;
        self.0
            .verify(message, &signature)
            .map_err(|_| VerifyError::invalid("RSA signature does not match"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds).unwrap()
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    // RFC 4231 test case 2.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn timestamps_outside_the_window_fail_with_their_own_code() {
        assert!(check_timestamp(at(1000), at(1300), 300).is_ok());
        assert!(check_timestamp(at(1301), at(1000), 300).is_err());
        let error = check_timestamp(at(1000), at(1301), 300).unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::TimestampOutOfTolerance);
    }

    // The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn standard_webhooks_matches_the_reference_vector() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let scheme = StandardWebhooks::new(&secret).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = scheme.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let delivery = Delivery::new("s", &body[..], at(1_614_265_330))
            .with_header("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
            .with_header("webhook-timestamp", "1614265330")
            .with_header("webhook-signature", format!("v1,bogus= {signature}"));
        assert!(scheme.verify(&delivery, 300).is_ok());
    }

    #[test]
    fn standard_webhooks_rejects_each_failure_with_its_code() {
        let scheme = StandardWebhooks::new(&Secret::new("whsec_c2VjcmV0")).unwrap();
        let other = StandardWebhooks::new(&Secret::new("whsec_b3RoZXI=")).unwrap();
        let body = b"{}";
        let signed = |scheme: &StandardWebhooks, ts: i64, now: i64| {
            Delivery::new("s", &body[..], at(now))
                .with_header("webhook-id", "msg_1")
                .with_header("webhook-timestamp", ts.to_string())
                .with_header("webhook-signature", scheme.sign("msg_1", ts, body))
        };
        use crate::ErrorCode::*;
        let code = |d: &Delivery| scheme.verify(d, 300).unwrap_err().code();
        assert_eq!(code(&signed(&other, 1000, 1000)), SignatureInvalid);
        assert_eq!(code(&signed(&scheme, 1000, 2000)), TimestampOutOfTolerance);
        let mut tampered = signed(&scheme, 1000, 1000);
        tampered.body = bytes::Bytes::from_static(b"{ }");
        assert_eq!(code(&tampered), SignatureInvalid);
        let unsigned = Delivery::new("s", &body[..], at(1000));
        assert_eq!(code(&unsigned), SignatureMissing);
    }

    #[test]
    fn ed25519_verifies_and_rejects() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let key = Ed25519PublicKey::from_bytes(signing.verifying_key().as_bytes()).unwrap();
        use ed25519_dalek::Signer;
        let signature = encode_base64(&signing.sign(b"body").to_bytes());
        assert!(key.verify_base64(b"body", &signature).is_ok());
        assert!(key.verify_base64(b"bodx", &signature).is_err());
        assert!(key.verify_base64(b"body", "not base64!").is_err());
    }

    #[test]
    fn published_keys_parse() {
        let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n-----END PUBLIC KEY-----\n";
        assert!(Ed25519PublicKey::from_pem(ed).is_ok());
        assert!(RsaPublicKey::from_pem(ed).is_err());
    }
}
