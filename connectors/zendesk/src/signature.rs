//! Zendesk's webhook signature.
//!
//! Every webhook request carries `X-Zendesk-Webhook-Signature`, the base64 HMAC-SHA256 of the
//! `X-Zendesk-Webhook-Signature-Timestamp` header value followed directly by the raw body
//! (`base64(HMACSHA256(TIMESTAMP + BODY))`), keyed with the webhook's signing secret used as
//! the bytes of the string Zendesk shows (it is not base64-decoded). The timestamp is
//! RFC 3339 and must be within the replay window of the receive time.
//!
//! [`sign_delivery`] makes the same headers for test requests (`rollcall sign`, demo sources).

use rollcall_core::verify::{
    check_timestamp, encode_base64, hmac_sha256, verify_hmac_sha256_base64,
};
use rollcall_core::{Delivery, Secret, Timestamp, VerifyError};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Zendesk-Webhook-Signature";
/// The header holding the signed timestamp.
pub const TIMESTAMP_HEADER: &str = "X-Zendesk-Webhook-Signature-Timestamp";

/// The `X-Zendesk-Webhook-Signature` value Zendesk sends for `body` signed at `timestamp`.
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    encode_base64(&hmac_sha256(
        secret.expose().as_bytes(),
        &[timestamp.as_bytes(), body],
    ))
}

/// Signs `delivery` as Zendesk does, at its receive time in whole seconds
/// (`2026-01-01T00:00:00Z`, the form Zendesk sends), replacing any signature headers it has.
pub fn sign_delivery(secret: &Secret, delivery: &mut Delivery) {
    let seconds = delivery.received_at.unix_seconds();
    let timestamp = Timestamp::from_unix_seconds(seconds)
        .unwrap_or(delivery.received_at)
        .to_string();
    let signature = sign(secret, &timestamp, &delivery.body);
    set_header(delivery, TIMESTAMP_HEADER, timestamp);
    set_header(delivery, SIGNATURE_HEADER, signature);
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

/// Checks a delivery's signature, then its timestamp against the receive time.
///
/// The MAC is checked before the clock, so a forged request learns nothing about the window
/// and a genuine but stale one gets its own error.
pub fn verify(
    secret: &Secret,
    delivery: &Delivery,
    tolerance_seconds: i64,
) -> Result<(), VerifyError> {
    let signature = header(delivery, SIGNATURE_HEADER)?;
    let timestamp = header(delivery, TIMESTAMP_HEADER)?;
    verify_hmac_sha256_base64(
        secret.expose().as_bytes(),
        &[timestamp.as_bytes(), &delivery.body],
        signature,
    )?;
    let signed_at = Timestamp::parse_rfc3339(timestamp)
        .map_err(|_| VerifyError::invalid(format!("{TIMESTAMP_HEADER} is not an RFC 3339 time")))?;
    check_timestamp(signed_at, delivery.received_at, tolerance_seconds)
}

/// Whether both signature headers are there (their values are not checked): what can be
/// known before the body is read.
pub fn headers_present(delivery: &Delivery) -> Result<(), VerifyError> {
    header(delivery, SIGNATURE_HEADER)?;
    header(delivery, TIMESTAMP_HEADER)?;
    Ok(())
}

/// A header's value; absent or blank is `signature_missing`.
fn header<'a>(delivery: &'a Delivery, name: &str) -> Result<&'a str, VerifyError> {
    delivery
        .header(name)
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| VerifyError::missing(format!("{name} header")))
}
