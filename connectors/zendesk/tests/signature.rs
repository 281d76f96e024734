//! Zendesk's signature: base64(HMAC-SHA256(secret, timestamp + body)), timestamp within 5 min.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use rollcall_connector_zendesk::signature::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use rollcall_core::{Connector, Delivery, ErrorCode, Secret, SourceOptions};
use rollcall_testkit::{demo_connector, Signing, DEMO_SEED};
use serde_json::json;

/// The test secret of Zendesk's "Verifying webhook authenticity" page, used (like every
/// Zendesk signing secret) as the ASCII bytes of the string.
const DOCS_TEST_SECRET: &str = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==";

/// The published sample body.
const SAMPLE: &[u8] = include_bytes!("../fixtures/user.active_changed.webhook.json");

/// The fixtures' receive time.
const SIGNED_AT: &str = rollcall_testkit::RECEIVED_AT;

fn connector(secret: &str) -> Box<dyn Connector> {
    let registration = rollcall_core::registration("zendesk").unwrap();
    let options = SourceOptions::new("zendesk", serde_json::json!({"signing_secret": secret}));
    (registration.build)(&options).unwrap()
}

fn signed(body: &[u8], timestamp: &str, signature: &str) -> Delivery {
    rollcall_testkit::delivery("zendesk", body.to_vec())
        .with_header(SIGNATURE_HEADER, signature)
        .with_header(TIMESTAMP_HEADER, timestamp)
}

fn signed_with(secret: &str, body: &[u8], timestamp: &str) -> Delivery {
    signed(
        body,
        timestamp,
        &sign(&Secret::new(secret), timestamp, body),
    )
}

fn code(delivery: &Delivery) -> ErrorCode {
    connector(DOCS_TEST_SECRET)
        .verify(delivery)
        .unwrap_err()
        .code()
}

/// HMAC-SHA256 then base64, computed by the openssl command-line tool rather than by Rust.
fn openssl_signature(secret: &str, message: &[u8]) -> Option<String> {
    let mut hmac = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    hmac.stdin.take()?.write_all(message).ok()?;
    let digest = hmac.wait_with_output().ok()?.stdout;
    let mut base64 = Command::new("openssl")
        .args(["base64", "-A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    base64.stdin.take()?.write_all(&digest).ok()?;
    let encoded = base64.wait_with_output().ok()?.stdout;
    Some(String::from_utf8(encoded).ok()?.trim().to_owned())
}

#[test]
fn accepts_the_sample_signed_with_the_docs_test_secret() {
    // Computed with:
    // (printf '%s' '2026-01-01T00:00:00Z'; cat fixtures/user.active_changed.webhook.json) \
    //   | openssl dgst -sha256 -hmac 'dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==' -binary \
    //   | openssl base64 -A
    let expected = "wZAPXwYQniKKLrrq9iCNhaVWqD0CLtZdKK2jDQzt3aY=";
    assert_eq!(
        sign(&Secret::new(DOCS_TEST_SECRET), SIGNED_AT, SAMPLE),
        expected
    );
    let delivery = signed(SAMPLE, SIGNED_AT, expected);
    assert_eq!(connector(DOCS_TEST_SECRET).verify(&delivery), Ok(()));
}

#[test]
fn signs_timestamp_then_body_like_openssl_does() {
    let timestamp = "2026-01-01T00:02:30Z";
    let body = br#"{"type":"zen:event-type:user.created","detail":{"id":"1"}}"#;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    let Some(expected) = openssl_signature(DOCS_TEST_SECRET, &message) else {
        eprintln!("openssl is not installed; the hard-coded vector test still runs");
        return;
    };
    assert_eq!(
        sign(&Secret::new(DOCS_TEST_SECRET), timestamp, body),
        expected
    );
    let delivery = signed(body, timestamp, &expected);
    assert_eq!(connector(DOCS_TEST_SECRET).verify(&delivery), Ok(()));
}

#[test]
fn the_old_published_vector_signs_body_then_timestamp_so_it_is_rejected() {
    let secret = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=";
    let body = br#"{"say": "hello"}"#;
    let timestamp = "2021-07-25T10:00:00Z";
    let published = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw=";
    // The vector is the MAC of body + timestamp...
    let body_then_timestamp = rollcall_core::verify::hmac_sha256(
        secret.as_bytes(),
        &[body.as_slice(), timestamp.as_bytes()],
    );
    assert_eq!(
        rollcall_core::verify::encode_base64(&body_then_timestamp),
        published
    );
    // ...not of timestamp + body, which is what Zendesk signs and rollcall checks.
    assert_ne!(sign(&Secret::new(secret), timestamp, body), published);
    let delivery = Delivery::new(
        "zendesk",
        body.to_vec(),
        rollcall_core::Timestamp::parse_rfc3339(timestamp).unwrap(),
    )
    .with_header(SIGNATURE_HEADER, published)
    .with_header(TIMESTAMP_HEADER, timestamp);
    let error = connector(secret).verify(&delivery).unwrap_err();
    assert_eq!(error.code(), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_body_signed_with_another_secret() {
    let delivery = signed_with("another-secret", SAMPLE, SIGNED_AT);
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn does_not_base64_decode_the_secret() {
    let decoded = "this_secret_is_for_testing_only";
    let delivery = signed_with(decoded, SAMPLE, SIGNED_AT);
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_body_with_one_byte_changed() {
    let mut delivery = signed_with(DOCS_TEST_SECRET, SAMPLE, SIGNED_AT);
    let mut body = SAMPLE.to_vec();
    let last_digit = body.iter().rposition(u8::is_ascii_digit).unwrap();
    body[last_digit] = if body[last_digit] == b'1' { b'2' } else { b'1' };
    delivery.body = body.into();
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_signature_over_another_timestamp() {
    let signature = sign(&Secret::new(DOCS_TEST_SECRET), SIGNED_AT, SAMPLE);
    let delivery = signed(SAMPLE, "2026-01-01T00:00:01Z", &signature);
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_signature_that_is_not_base64() {
    let delivery = signed(SAMPLE, SIGNED_AT, "not base64!");
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_delivery_without_the_signature_header() {
    let delivery = rollcall_testkit::delivery("zendesk", SAMPLE.to_vec())
        .with_header(TIMESTAMP_HEADER, SIGNED_AT);
    assert_eq!(code(&delivery), ErrorCode::SignatureMissing);
    let blank = signed(SAMPLE, SIGNED_AT, " ");
    assert_eq!(code(&blank), ErrorCode::SignatureMissing);
}

#[test]
fn rejects_a_delivery_without_the_timestamp_header() {
    let signature = sign(&Secret::new(DOCS_TEST_SECRET), SIGNED_AT, SAMPLE);
    let delivery = rollcall_testkit::delivery("zendesk", SAMPLE.to_vec())
        .with_header(SIGNATURE_HEADER, signature);
    assert_eq!(code(&delivery), ErrorCode::SignatureMissing);
}

#[test]
fn rejects_a_timestamp_more_than_five_minutes_old_or_ahead() {
    // Received at 2026-01-01T00:00:00Z.
    for stale in ["2025-12-31T23:54:59Z", "2026-01-01T00:05:01Z"] {
        let delivery = signed_with(DOCS_TEST_SECRET, SAMPLE, stale);
        assert_eq!(
            code(&delivery),
            ErrorCode::TimestampOutOfTolerance,
            "{stale}"
        );
    }
}

#[test]
fn accepts_a_timestamp_within_five_minutes_in_any_offset() {
    for recent in [
        "2025-12-31T23:55:00Z",
        "2026-01-01T00:04:59Z",
        "2026-01-01T01:03:00+01:00",
    ] {
        let delivery = signed_with(DOCS_TEST_SECRET, SAMPLE, recent);
        assert_eq!(
            connector(DOCS_TEST_SECRET).verify(&delivery),
            Ok(()),
            "{recent}"
        );
    }
}

#[test]
fn rejects_a_signed_timestamp_that_is_not_rfc_3339() {
    let delivery = signed_with(DOCS_TEST_SECRET, SAMPLE, "1767225600");
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn an_offline_connector_cannot_verify() {
    let connector = rollcall_testkit::offline_connector("zendesk");
    let delivery = signed_with(DOCS_TEST_SECRET, SAMPLE, SIGNED_AT);
    let error = connector.verify(&delivery).unwrap_err();
    assert_eq!(error.code(), ErrorCode::SourceMisconfigured);
    assert!(error.to_string().contains("signing_secret"));
}

#[test]
fn building_online_without_a_signing_secret_names_the_key() {
    let registration = rollcall_core::registration("zendesk").unwrap();
    for options in [
        serde_json::json!({}),
        serde_json::json!({"signing_secret": ""}),
        serde_json::json!({"subdomain": "acme"}),
    ] {
        let error = (registration.build)(&SourceOptions::new("zendesk", options)).unwrap_err();
        assert_eq!(error.key, "signing_secret");
        assert_eq!(error.code(), ErrorCode::ConfigInvalid);
    }
}

#[test]
fn rejects_unknown_option_keys() {
    let registration = rollcall_core::registration("zendesk").unwrap();
    let options = SourceOptions::new(
        "zendesk",
        serde_json::json!({"signing_secret": "s", "signing_secrte": "typo"}),
    );
    let error = (registration.build)(&options).unwrap_err();
    assert!(error.message.contains("signing_secrte"), "{error}");
}

#[test]
fn accepts_the_enrichment_options() {
    let registration = rollcall_core::registration("zendesk").unwrap();
    let options = SourceOptions::new(
        "zendesk",
        serde_json::json!({
            "signing_secret": "s",
            "api_token": "t",
            "email": "admin@acme.example",
            "subdomain": "acme",
            "api_base_url": "http://zendesk-proxy.internal:8080",
            "api_timeout_ms": 3000,
            "api_rate_per_second": 10,
            "api_breaker_cooldown_ms": 30000,
        }),
    );
    assert!((registration.build)(&options).is_ok());
    // The real API, over TLS.
    let options = SourceOptions::new(
        "zendesk",
        serde_json::json!({
            "signing_secret": "s",
            "api_token": "t",
            "email": "admin@acme.example",
            "subdomain": "acme",
            "api_base_url": "https://acme.zendesk.com",
        }),
    );
    assert!((registration.build)(&options).is_ok());
    // Not a web URL.
    let options = SourceOptions::new(
        "zendesk",
        serde_json::json!({
            "signing_secret": "s",
            "api_token": "t",
            "email": "admin@acme.example",
            "subdomain": "acme",
            "api_base_url": "ftp://acme.zendesk.com",
        }),
    );
    assert_eq!(
        (registration.build)(&options).unwrap_err().key,
        "api_base_url"
    );
}

#[test]
fn the_secret_never_appears_in_debug_output_or_errors() {
    let secret = "hunter2-signing-secret";
    let connector = connector(secret);
    assert!(!format!("{connector:?}").contains(secret));
    let error = connector
        .verify(&signed_with("other", SAMPLE, SIGNED_AT))
        .unwrap_err();
    assert!(!error.to_string().contains(secret));
}

// Signing test requests (`rollcall sign`, demo sources).

/// The shared checks of `rollcall_testkit::assert_signing_round_trips`: the HMAC covers the
/// timestamp and the body, and the demo secret is the seed in base64.
#[test]
fn sign_meets_the_shared_signing_specification() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    rollcall_testkit::assert_signing_round_trips(
        "zendesk",
        &fixtures,
        &Signing {
            demo_options: json!({"signing_secret": rollcall_core::verify::encode_base64(&DEMO_SEED)}),
            key_option: "signing_secret",
            covers_body: true,
            stale_fixtures: &[],
        },
    );
}

#[test]
fn signing_stamps_the_receive_time_in_whole_seconds_and_signs_it_with_the_body() {
    let connector = demo_connector("zendesk", &DEMO_SEED);
    let received = rollcall_core::Timestamp::parse_rfc3339("2026-01-01T00:00:00.750Z").unwrap();
    let mut delivery = Delivery::new("zendesk", SAMPLE.to_vec(), received);
    connector.sign(&mut delivery).unwrap();
    assert_eq!(delivery.header(TIMESTAMP_HEADER), Some(SIGNED_AT));
    let secret = rollcall_testkit::demo_options("zendesk", &DEMO_SEED);
    let secret = Secret::new(secret["signing_secret"].as_str().unwrap());
    assert_eq!(
        delivery.header(SIGNATURE_HEADER),
        Some(sign(&secret, SIGNED_AT, SAMPLE).as_str())
    );
    assert_eq!(connector.verify(&delivery), Ok(()));
}

#[test]
fn re_signing_replaces_the_previous_signature_headers() {
    let connector = demo_connector("zendesk", &DEMO_SEED);
    let mut delivery = signed_with("another-secret", SAMPLE, "2025-12-31T23:00:00Z");
    connector.sign(&mut delivery).unwrap();
    assert_eq!(connector.verify(&delivery), Ok(()));
    for name in [SIGNATURE_HEADER, TIMESTAMP_HEADER] {
        let name = name.to_ascii_lowercase();
        assert_eq!(delivery.headers.names().filter(|n| *n == name).count(), 1);
    }
}
