//! The forwarder app's Standard Webhooks signature, as rollcall checks it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_freshservice as _;
use rollcall_core::verify::StandardWebhooks;
use rollcall_core::{Connector, Delivery, ErrorCode, Secret, SourceOptions, Timestamp};
use rollcall_testkit::{demo_connector, Signing, DEMO_SEED};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmch";
const SIGNED_AT: i64 = 1_767_225_600;
const BODY: &[u8] = include_bytes!("../fixtures/onUserCreate.json");
const WEBHOOK_ID: &str = "msg_5b0c3e9f2a7d41c8b6e0f1a2d3c4b5a6";

fn build(options: serde_json::Value) -> Result<Box<dyn Connector>, rollcall_core::ConfigError> {
    let registration = rollcall_core::registration("freshservice").unwrap();
    (registration.build)(&SourceOptions::new("freshservice-acme", options))
}

fn connector() -> Box<dyn Connector> {
    build(json!({"signing_secret": SECRET})).unwrap()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

/// A delivery as the forwarder app sends it, signed with `secret`, received at `received`.
fn signed(secret: &str, body: &[u8], received: i64) -> Delivery {
    let scheme = StandardWebhooks::new(&Secret::new(secret)).unwrap();
    Delivery::new("freshservice-acme", body.to_vec(), at(received))
        .with_header("content-type", "application/json")
        .with_header("webhook-id", WEBHOOK_ID)
        .with_header("webhook-timestamp", SIGNED_AT.to_string())
        .with_header(
            "webhook-signature",
            scheme.sign(WEBHOOK_ID, SIGNED_AT, body),
        )
}

fn code(delivery: &Delivery) -> ErrorCode {
    connector().verify(delivery).unwrap_err().code()
}

#[test]
fn accepts_a_body_signed_with_the_configured_secret() {
    assert_eq!(
        connector().verify(&signed(SECRET, BODY, SIGNED_AT + 2)),
        Ok(())
    );
}

#[test]
fn accepts_a_signature_among_several_during_a_secret_rotation() {
    let mut delivery = signed(SECRET, BODY, SIGNED_AT);
    let scheme = StandardWebhooks::new(&Secret::new(OTHER_SECRET)).unwrap();
    let current = delivery.header("webhook-signature").unwrap().to_owned();
    let old = scheme.sign(WEBHOOK_ID, SIGNED_AT, BODY);
    delivery.headers = delivery
        .headers
        .iter()
        .filter(|(name, _)| *name != "webhook-signature")
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .chain([("webhook-signature".to_owned(), format!("{old} {current}"))])
        .collect();
    assert_eq!(connector().verify(&delivery), Ok(()));
}

#[test]
fn rejects_a_body_signed_with_another_secret() {
    assert_eq!(
        code(&signed(OTHER_SECRET, BODY, SIGNED_AT)),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn rejects_a_body_changed_by_one_byte() {
    let mut delivery = signed(SECRET, BODY, SIGNED_AT);
    let mut body = BODY.to_vec();
    let position = body.iter().position(|&byte| byte == b'3').unwrap();
    body[position] = b'4';
    delivery.body = body.into();
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_changed_webhook_id() {
    let mut delivery = signed(SECRET, BODY, SIGNED_AT);
    delivery.headers = delivery
        .headers
        .iter()
        .map(|(name, value)| {
            let value = if name == "webhook-id" {
                "msg_other"
            } else {
                value
            };
            (name.to_owned(), value.to_owned())
        })
        .collect();
    assert_eq!(code(&delivery), ErrorCode::SignatureInvalid);
}

#[test]
fn rejects_a_delivery_missing_any_of_the_three_headers() {
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut delivery = signed(SECRET, BODY, SIGNED_AT);
        delivery.headers = delivery
            .headers
            .iter()
            .filter(|(name, _)| *name != missing)
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        assert_eq!(
            code(&delivery),
            ErrorCode::SignatureMissing,
            "without {missing}"
        );
    }
}

#[test]
fn rejects_an_unsigned_body() {
    let delivery = Delivery::new("freshservice-acme", BODY.to_vec(), at(SIGNED_AT));
    assert_eq!(code(&delivery), ErrorCode::SignatureMissing);
}

#[test]
fn rejects_a_signature_older_than_five_minutes() {
    let delivery = signed(SECRET, BODY, SIGNED_AT + 301);
    assert_eq!(code(&delivery), ErrorCode::TimestampOutOfTolerance);
    assert_eq!(
        connector().verify(&signed(SECRET, BODY, SIGNED_AT + 300)),
        Ok(())
    );
}

#[test]
fn rejects_a_signature_from_more_than_five_minutes_ahead() {
    let delivery = signed(SECRET, BODY, SIGNED_AT - 301);
    assert_eq!(code(&delivery), ErrorCode::TimestampOutOfTolerance);
}

#[test]
fn an_offline_connector_answers_source_misconfigured() {
    let connector = rollcall_testkit::offline_connector("freshservice");
    let error = connector
        .verify(&signed(SECRET, BODY, SIGNED_AT))
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::SourceMisconfigured);
}

#[test]
fn building_online_without_a_signing_secret_names_the_option() {
    let error = build(json!({})).unwrap_err();
    assert_eq!(error.key, "signing_secret");
    let error = build(json!({"signing_secret": ""})).unwrap_err();
    assert_eq!(error.key, "signing_secret");
}

#[test]
fn a_secret_that_is_not_whsec_base64_is_a_config_error_that_hides_the_value() {
    let error = build(json!({"signing_secret": "whsec_not base64 at all!"})).unwrap_err();
    assert_eq!(error.key, "signing_secret");
    assert_eq!(error.code(), ErrorCode::ConfigInvalid);
    assert!(!error.to_string().contains("not base64 at all"));
}

#[test]
fn unknown_option_keys_are_rejected() {
    let error = build(json!({"signing_secret": SECRET, "signing_secert": SECRET})).unwrap_err();
    assert!(error.message.contains("signing_secert"), "{error}");
}

#[test]
fn the_connector_debug_output_never_shows_the_secret() {
    let text = format!("{:?}", connector());
    assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{text}");
}

#[test]
fn deliveries_are_deduplicated_on_the_webhook_id() {
    let connector = connector();
    let first = signed(SECRET, BODY, SIGNED_AT);
    assert_eq!(
        connector.dedup_key(&first),
        format!("webhook-id:{WEBHOOK_ID}")
    );
    // A retry re-signs with a new timestamp but keeps the id.
    let scheme = StandardWebhooks::new(&Secret::new(SECRET)).unwrap();
    let retry = Delivery::new("freshservice-acme", BODY.to_vec(), at(SIGNED_AT + 60))
        .with_header("webhook-id", WEBHOOK_ID)
        .with_header("webhook-timestamp", (SIGNED_AT + 60).to_string())
        .with_header(
            "webhook-signature",
            scheme.sign(WEBHOOK_ID, SIGNED_AT + 60, BODY),
        );
    assert_eq!(connector.verify(&retry), Ok(()));
    assert_eq!(connector.dedup_key(&retry), connector.dedup_key(&first));
}

#[test]
fn without_a_webhook_id_the_dedup_key_is_the_body_hash() {
    let connector = connector();
    let plain = Delivery::new("freshservice-acme", BODY.to_vec(), at(SIGNED_AT));
    let key = connector.dedup_key(&plain);
    assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
    let other = Delivery::new("freshservice-acme", b"{}".to_vec(), at(SIGNED_AT));
    assert_ne!(connector.dedup_key(&other), key);
}

// Signing test requests (`rollcall sign`, demo sources).

/// The shared checks of `rollcall_testkit::assert_signing_round_trips`: the Standard Webhooks
/// signature covers the body, and the demo secret is the seed in `whsec_` form.
#[test]
fn sign_meets_the_shared_signing_specification() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let secret = format!("whsec_{}", rollcall_core::verify::encode_base64(&DEMO_SEED));
    rollcall_testkit::assert_signing_round_trips(
        "freshservice",
        &fixtures,
        &Signing {
            demo_options: json!({ "signing_secret": secret }),
            key_option: "signing_secret",
            covers_body: true,
            stale_fixtures: &[],
        },
    );
}

#[test]
fn signing_sets_the_three_headers_at_the_receive_time() {
    let connector = demo_connector("freshservice", &DEMO_SEED);
    let mut delivery = rollcall_testkit::delivery("freshservice", BODY.to_vec());
    connector.sign(&mut delivery).unwrap();
    let id = delivery.header("webhook-id").unwrap().to_owned();
    assert!(id.starts_with("msg_") && id.len() == 4 + 32, "{id}");
    assert_eq!(delivery.header("webhook-timestamp"), Some("1767225600"));
    assert!(delivery
        .header("webhook-signature")
        .unwrap()
        .starts_with("v1,"));
    // The signature is the Standard Webhooks MAC under the demo secret.
    let secret = rollcall_testkit::demo_options("freshservice", &DEMO_SEED);
    let scheme =
        StandardWebhooks::new(&Secret::new(secret["signing_secret"].as_str().unwrap())).unwrap();
    assert_eq!(
        delivery.header("webhook-signature"),
        Some(scheme.sign(&id, SIGNED_AT, BODY).as_str())
    );
    assert_eq!(connector.dedup_key(&delivery), format!("webhook-id:{id}"));
}

#[test]
fn the_same_body_gets_the_same_webhook_id_and_another_body_another() {
    let connector = demo_connector("freshservice", &DEMO_SEED);
    let id = |body: &[u8], received: i64| {
        let mut delivery = Delivery::new("freshservice", body.to_vec(), at(received));
        connector.sign(&mut delivery).unwrap();
        delivery.header("webhook-id").unwrap().to_owned()
    };
    assert_eq!(id(BODY, SIGNED_AT), id(BODY, SIGNED_AT + 60));
    assert_ne!(id(BODY, SIGNED_AT), id(b"{}", SIGNED_AT));
}

#[test]
fn re_signing_a_retry_keeps_its_webhook_id_and_replaces_the_other_headers() {
    let connector = demo_connector("freshservice", &DEMO_SEED);
    let mut delivery = signed(SECRET, BODY, SIGNED_AT);
    delivery.received_at = at(SIGNED_AT + 3600);
    connector.sign(&mut delivery).unwrap();
    assert_eq!(connector.verify(&delivery), Ok(()));
    assert_eq!(delivery.header("webhook-id"), Some(WEBHOOK_ID));
    assert_eq!(
        delivery.header("webhook-timestamp"),
        Some((SIGNED_AT + 3600).to_string().as_str())
    );
    assert_eq!(
        delivery
            .headers
            .names()
            .filter(|n| *n == "webhook-signature")
            .count(),
        1
    );
}
