//! HighLevel's signature schemes: Ed25519 `X-GHL-Signature` (preferred) and legacy RSA
//! `X-WH-Signature`, both over the raw body, then the body `timestamp` replay window.
//!
//! Ed25519 keys are derived from fixed seeds; RSA keys are generated with the `openssl` CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use rollcall_connector_highlevel as _;
use rollcall_core::verify::encode_base64;
use rollcall_core::{Connector, Delivery, ErrorCode, SignError, SourceOptions, Timestamp};
use rollcall_testkit::{demo_connector, openssl, Signing, DEMO_SEED};
use serde_json::{json, Value};

const RECEIVED_AT: &str = "2026-01-01T00:00:00Z";
const SUBACCOUNT_SAMPLE: &[u8] = include_bytes!("../fixtures/UserCreate-subaccount-user.json");

fn received_at() -> Timestamp {
    Timestamp::parse_rfc3339(RECEIVED_AT).unwrap()
}

fn build(options: Value) -> Result<Box<dyn Connector>, rollcall_core::ConfigError> {
    let registration = rollcall_core::registration("highlevel").unwrap();
    (registration.build)(&SourceOptions::new("highlevel-test", options))
}

fn connector(options: Value) -> Box<dyn Connector> {
    build(options).unwrap()
}

fn delivery(body: &[u8], headers: &[(&str, &str)]) -> Delivery {
    headers.iter().fold(
        Delivery::new("highlevel-test", body.to_vec(), received_at()),
        |delivery, (name, value)| delivery.with_header(*name, *value),
    )
}

fn error_code(connector: &dyn Connector, delivery: &Delivery) -> ErrorCode {
    connector.verify(delivery).unwrap_err().code()
}

/// A body as HighLevel sends it, with a `timestamp` `offset_seconds` from the receive time.
fn body_sent(offset_seconds: i64) -> Vec<u8> {
    let sent = Timestamp::from_unix_seconds(received_at().unix_seconds() + offset_seconds).unwrap();
    serde_json::to_vec(&json!({
        "type": "UserCreate",
        "timestamp": sent.to_string(),
        "webhookId": "wh-1",
        "locationId": "loc-1",
        "id": "user-1",
        "email": "ann@example.com"
    }))
    .unwrap()
}

// ---- Ed25519 ----------------------------------------------------------------------------

fn ed25519_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ed25519_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

fn ed25519_sign(key: &SigningKey, body: &[u8]) -> String {
    encode_base64(&key.sign(body).to_bytes())
}

fn ed25519_connector() -> Box<dyn Connector> {
    connector(json!({ "ed25519_public_key": ed25519_pem(&ed25519_key(1)) }))
}

#[test]
fn accepts_a_body_signed_with_the_configured_ed25519_key() {
    let body = body_sent(0);
    let signature = ed25519_sign(&ed25519_key(1), &body);
    let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
    assert_eq!(ed25519_connector().verify(&delivery), Ok(()));
}

#[test]
fn accepts_a_published_example_without_timestamp_signed_with_ed25519() {
    let signature = ed25519_sign(&ed25519_key(1), SUBACCOUNT_SAMPLE);
    let delivery = delivery(SUBACCOUNT_SAMPLE, &[("x-ghl-signature", &signature)]);
    assert_eq!(ed25519_connector().verify(&delivery), Ok(()));
}

#[test]
fn rejects_a_body_signed_with_another_ed25519_key() {
    let body = body_sent(0);
    let signature = ed25519_sign(&ed25519_key(2), &body);
    let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
    assert_eq!(
        error_code(ed25519_connector().as_ref(), &delivery),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn while_keys_rotate_a_body_signed_with_the_old_or_the_new_ed25519_key_is_accepted() {
    let rotating = connector(json!({
        "ed25519_public_key": [ed25519_pem(&ed25519_key(3)), ed25519_pem(&ed25519_key(1))],
    }));
    let body = body_sent(0);
    for signer in [ed25519_key(3), ed25519_key(1)] {
        let signature = ed25519_sign(&signer, &body);
        let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
        assert_eq!(rotating.verify(&delivery), Ok(()));
    }
    // A key in neither place is still refused.
    let signature = ed25519_sign(&ed25519_key(2), &body);
    let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
    assert_eq!(
        error_code(rotating.as_ref(), &delivery),
        ErrorCode::SignatureInvalid
    );
    // An empty list verifies nothing: refused when the source is built.
    let error = build(json!({ "ed25519_public_key": [] })).unwrap_err();
    assert_eq!(error.key, "ed25519_public_key");
}

#[test]
fn rejects_an_ed25519_signed_body_with_one_byte_changed() {
    let body = body_sent(0);
    let signature = ed25519_sign(&ed25519_key(1), &body);
    let mut changed = body.clone();
    let last = changed.len() - 2;
    changed[last] ^= 0x01;
    let delivery = delivery(&changed, &[("X-GHL-Signature", &signature)]);
    assert_eq!(
        error_code(ed25519_connector().as_ref(), &delivery),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn rejects_a_signature_that_is_not_base64_or_not_a_signature() {
    let body = body_sent(0);
    for bogus in ["not base64!", "c2hvcnQ="] {
        let delivery = delivery(&body, &[("X-GHL-Signature", bogus)]);
        assert_eq!(
            error_code(ed25519_connector().as_ref(), &delivery),
            ErrorCode::SignatureInvalid,
            "{bogus}"
        );
    }
}

#[test]
fn rejects_a_request_with_no_signature_header() {
    let body = body_sent(0);
    let unsigned = delivery(&body, &[("Content-Type", "application/json")]);
    assert_eq!(
        error_code(ed25519_connector().as_ref(), &unsigned),
        ErrorCode::SignatureMissing
    );
    let blank = delivery(&body, &[("X-GHL-Signature", " "), ("X-WH-Signature", "")]);
    assert_eq!(
        error_code(ed25519_connector().as_ref(), &blank),
        ErrorCode::SignatureMissing
    );
}

#[test]
fn rejects_a_validly_signed_body_whose_timestamp_is_stale_or_ahead() {
    // Older than the retry horizon (70 min) plus the tolerance (5 min), or ahead by more
    // than the tolerance.
    for offset in [-(75 * 60 + 1), -3 * 3600, 301] {
        let body = body_sent(offset);
        let signature = ed25519_sign(&ed25519_key(1), &body);
        let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
        assert_eq!(
            error_code(ed25519_connector().as_ref(), &delivery),
            ErrorCode::TimestampOutOfTolerance,
            "offset {offset}"
        );
    }
}

#[test]
fn accepts_a_timestamp_within_five_minutes_either_way() {
    for offset in [-300, -60, 0, 299, 300] {
        let body = body_sent(offset);
        let signature = ed25519_sign(&ed25519_key(1), &body);
        let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
        assert_eq!(
            ed25519_connector().verify(&delivery),
            Ok(()),
            "offset {offset}"
        );
    }
}

#[test]
fn accepts_a_retry_of_the_same_payload_until_the_retry_horizon_has_passed() {
    // HighLevel retries a 429 with the same body (the same `timestamp`) about every 10
    // minutes, six times: the last retry arrives about 70 minutes after the first attempt.
    for offset in [-11 * 60, -60 * 60, -70 * 60, -75 * 60] {
        let body = body_sent(offset);
        let signature = ed25519_sign(&ed25519_key(1), &body);
        let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
        assert_eq!(
            ed25519_connector().verify(&delivery),
            Ok(()),
            "offset {offset}"
        );
    }
}

#[test]
fn reads_epoch_second_and_millisecond_timestamps_for_the_replay_window() {
    let stale = received_at().unix_seconds() - 76 * 60;
    for timestamp in [json!(stale), json!(stale.to_string()), json!(stale * 1000)] {
        let body =
            serde_json::to_vec(&json!({"type": "UserUpdate", "id": "u", "timestamp": timestamp}))
                .unwrap();
        let signature = ed25519_sign(&ed25519_key(1), &body);
        let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
        assert_eq!(
            error_code(ed25519_connector().as_ref(), &delivery),
            ErrorCode::TimestampOutOfTolerance,
            "{timestamp}"
        );
    }
}

#[test]
fn checks_the_signature_before_the_timestamp() {
    let body = body_sent(-3600);
    let signature = ed25519_sign(&ed25519_key(2), &body);
    let delivery = delivery(&body, &[("X-GHL-Signature", &signature)]);
    assert_eq!(
        error_code(ed25519_connector().as_ref(), &delivery),
        ErrorCode::SignatureInvalid
    );
}

// ---- RSA (legacy X-WH-Signature), keys made by the openssl CLI ----------------------------

struct RsaKey {
    private_pem: String,
    public_pem: String,
}

fn generate_rsa_key() -> RsaKey {
    let private = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        b"",
    );
    let public = openssl(&["pkey", "-pubout"], &private);
    RsaKey {
        private_pem: String::from_utf8(private).unwrap(),
        public_pem: String::from_utf8(public).unwrap(),
    }
}

/// Two RSA keys, generated once per test run: [configured, another].
fn rsa_keys() -> &'static [RsaKey; 2] {
    static KEYS: OnceLock<[RsaKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [generate_rsa_key(), generate_rsa_key()])
}

/// `openssl dgst -sha256 -sign key.pem` over `body`, base64. The private key sits in a
/// temporary directory only while openssl reads it.
fn rsa_sign(key: &RsaKey, body: &[u8]) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rollcall-highlevel-rsa-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, &key.private_pem).unwrap();
    let signature = openssl(
        &["dgst", "-sha256", "-sign", key_path.to_str().unwrap()],
        body,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    encode_base64(&signature)
}

fn rsa_connector() -> Box<dyn Connector> {
    connector(json!({
        "ed25519_public_key": ed25519_pem(&ed25519_key(1)),
        "rsa_public_key": rsa_keys()[0].public_pem,
    }))
}

#[test]
fn accepts_a_legacy_rsa_signature_made_with_the_configured_key() {
    let body = body_sent(0);
    let signature = rsa_sign(&rsa_keys()[0], &body);
    let delivery = delivery(&body, &[("X-WH-Signature", &signature)]);
    assert_eq!(rsa_connector().verify(&delivery), Ok(()));
}

#[test]
fn while_keys_rotate_a_legacy_rsa_signature_by_either_listed_key_is_accepted() {
    let rotating = connector(json!({
        "rsa_public_key": [rsa_keys()[1].public_pem, rsa_keys()[0].public_pem],
    }));
    let body = body_sent(0);
    for key in rsa_keys() {
        let signature = rsa_sign(key, &body);
        let delivery = delivery(&body, &[("X-WH-Signature", &signature)]);
        assert_eq!(rotating.verify(&delivery), Ok(()));
    }
}

#[test]
fn rejects_a_legacy_rsa_signature_made_with_another_key() {
    let body = body_sent(0);
    let signature = rsa_sign(&rsa_keys()[1], &body);
    let delivery = delivery(&body, &[("X-WH-Signature", &signature)]);
    assert_eq!(
        error_code(rsa_connector().as_ref(), &delivery),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn rejects_a_legacy_rsa_signed_body_with_one_byte_changed() {
    let body = body_sent(0);
    let signature = rsa_sign(&rsa_keys()[0], &body);
    let mut changed = body.clone();
    changed[1] ^= 0x20;
    let delivery = delivery(&changed, &[("X-WH-Signature", &signature)]);
    assert_eq!(
        error_code(rsa_connector().as_ref(), &delivery),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn rejects_a_legacy_rsa_signed_body_whose_timestamp_is_stale() {
    // Older than the retry horizon plus the tolerance (75 minutes).
    let body = body_sent(-(75 * 60 + 1));
    let signature = rsa_sign(&rsa_keys()[0], &body);
    let delivery = delivery(&body, &[("X-WH-Signature", &signature)]);
    assert_eq!(
        error_code(rsa_connector().as_ref(), &delivery),
        ErrorCode::TimestampOutOfTolerance
    );
}

#[test]
fn x_ghl_signature_alone_decides_when_both_headers_are_present() {
    let body = body_sent(0);
    let ed25519 = ed25519_sign(&ed25519_key(1), &body);
    let rsa = rsa_sign(&rsa_keys()[0], &body);
    let bogus_rsa = rsa_sign(&rsa_keys()[1], &body);
    let bogus_ed25519 = ed25519_sign(&ed25519_key(2), &body);

    let good_ed25519 = delivery(
        &body,
        &[
            ("X-GHL-Signature", &ed25519),
            ("X-WH-Signature", &bogus_rsa),
        ],
    );
    assert_eq!(rsa_connector().verify(&good_ed25519), Ok(()));

    let bad_ed25519 = delivery(
        &body,
        &[
            ("X-GHL-Signature", &bogus_ed25519),
            ("X-WH-Signature", &rsa),
        ],
    );
    assert_eq!(
        error_code(rsa_connector().as_ref(), &bad_ed25519),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn an_rsa_key_in_pkcs1_pem_is_accepted_too() {
    let pkcs1 = openssl(
        &["rsa", "-pubin", "-RSAPublicKey_out"],
        rsa_keys()[0].public_pem.as_bytes(),
    );
    let pkcs1 = String::from_utf8(pkcs1).unwrap();
    assert!(pkcs1.contains("BEGIN RSA PUBLIC KEY"));
    let connector = connector(json!({ "rsa_public_key": pkcs1 }));
    let body = body_sent(0);
    let signature = rsa_sign(&rsa_keys()[0], &body);
    assert_eq!(
        connector.verify(&delivery(&body, &[("X-WH-Signature", &signature)])),
        Ok(())
    );
}

// ---- Configuration ----------------------------------------------------------------------

#[test]
fn building_with_no_options_uses_the_published_keys() {
    let connector = connector(json!({}));
    let body = body_sent(0);
    // Only HighLevel holds the private keys: a well-formed signature from anyone else fails.
    let ed25519 = ed25519_sign(&ed25519_key(1), &body);
    assert_eq!(
        error_code(
            connector.as_ref(),
            &delivery(&body, &[("X-GHL-Signature", &ed25519)])
        ),
        ErrorCode::SignatureInvalid
    );
    let rsa = rsa_sign(&rsa_keys()[0], &body);
    assert_eq!(
        error_code(
            connector.as_ref(),
            &delivery(&body, &[("X-WH-Signature", &rsa)])
        ),
        ErrorCode::SignatureInvalid
    );
    assert_eq!(
        error_code(connector.as_ref(), &delivery(&body, &[])),
        ErrorCode::SignatureMissing
    );
}

#[test]
fn an_offline_connector_still_verifies_with_the_published_keys() {
    let connector = rollcall_testkit::offline_connector("highlevel");
    let body = body_sent(0);
    assert_eq!(
        error_code(connector.as_ref(), &delivery(&body, &[])),
        ErrorCode::SignatureMissing
    );
    let signature = ed25519_sign(&ed25519_key(1), &body);
    assert_eq!(
        error_code(
            connector.as_ref(),
            &delivery(&body, &[("X-GHL-Signature", &signature)])
        ),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn a_bad_pem_option_is_a_config_error_naming_the_key() {
    let ed25519_as_rsa = ed25519_pem(&ed25519_key(1));
    let cases = [
        (
            json!({"ed25519_public_key": "not a key"}),
            "ed25519_public_key",
        ),
        (json!({"ed25519_public_key": ""}), "ed25519_public_key"),
        (json!({"ed25519_public_key": 42}), "ed25519_public_key"),
        (
            json!({"ed25519_public_key": rsa_keys()[0].public_pem}),
            "ed25519_public_key",
        ),
        (
            json!({"rsa_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
            "rsa_public_key",
        ),
        (json!({"rsa_public_key": ed25519_as_rsa}), "rsa_public_key"),
        (json!({"rsa_public_key": "  "}), "rsa_public_key"),
    ];
    for (options, key) in cases {
        let error = build(options.clone()).unwrap_err();
        assert_eq!(error.key, key, "{options}");
        assert_eq!(error.code(), ErrorCode::ConfigInvalid);
    }
}

#[test]
fn unknown_option_keys_are_rejected() {
    let error = build(json!({"signing_secret": "abc"})).unwrap_err();
    assert!(error.message.contains("signing_secret"), "{error}");
    let error = build(json!({"ed25519_public_key_pem": "x"})).unwrap_err();
    assert!(error.message.contains("ed25519_public_key_pem"), "{error}");
}

#[test]
fn the_registration_names_the_vendor_and_its_event_types() {
    let registration = rollcall_core::registration("highlevel").unwrap();
    assert_eq!(registration.vendor, "HighLevel");
    assert_eq!(
        registration.event_types,
        [
            "UserCreate",
            "UserUpdate",
            "UserDelete",
            "user.created",
            "user.updated",
            "user.deleted"
        ]
    );
    assert!(registration
        .example_config
        .contains("connector = \"highlevel\""));
}

// ---- Signing test requests (`signing_key`, demo sources) ---------------------------------

/// The demo sources' seed, which is also their Ed25519 signing key.
const SEED: [u8; 32] = DEMO_SEED;

/// Fixtures sent in 2025: outside the replay window of the fixtures' receive time.
const STALE_FIXTURES: &[&str] = &[
    "UserDelete-agency-user.json",
    "UserUpdate-subaccount-user.json",
    "numbers-where-strings-are-expected.json",
    "timestamp-epoch-milliseconds.json",
    "timestamp-epoch-seconds-as-string.json",
    "timestamp-local-offset.json",
];

/// The shared checks of `rollcall_testkit::assert_signing_round_trips`: the Ed25519
/// signature covers the raw body, the demo signing key is the seed, and the stale fixtures
/// sign but fail the replay window.
#[test]
fn sign_meets_the_shared_signing_specification() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    rollcall_testkit::assert_signing_round_trips(
        "highlevel",
        &fixtures,
        &Signing {
            demo_options: json!({"signing_key": encode_base64(&SEED)}),
            key_option: "signing_key",
            covers_body: true,
            stale_fixtures: STALE_FIXTURES,
        },
    );
}

#[test]
fn signing_sets_x_ghl_signature_to_the_ed25519_signature_of_the_raw_body() {
    let connector = demo_connector("highlevel", &SEED);
    let body = body_sent(0);
    let mut delivery = delivery(&body, &[("X-GHL-Signature", "stale")]);
    connector.sign(&mut delivery).unwrap();
    let expected = ed25519_sign(&SigningKey::from_bytes(&SEED), &body);
    assert_eq!(delivery.header("X-GHL-Signature"), Some(expected.as_str()));
    assert_eq!(
        delivery
            .headers
            .names()
            .filter(|name| *name == "x-ghl-signature")
            .count(),
        1
    );
    assert_eq!(connector.verify(&delivery), Ok(()));
}

#[test]
fn without_a_signing_key_sign_is_missing_the_key() {
    for connector in [
        connector(json!({})),
        connector(json!({ "ed25519_public_key": ed25519_pem(&ed25519_key(1)) })),
        rollcall_testkit::offline_connector("highlevel"),
    ] {
        let mut delivery = delivery(&body_sent(0), &[]);
        let error = connector.sign(&mut delivery).unwrap_err();
        assert!(
            matches!(&error, SignError::MissingKey(what) if what.contains("signing_key")),
            "{error:?}"
        );
        assert_eq!(delivery.header("X-GHL-Signature"), None);
    }
}

#[test]
fn a_signing_key_replaces_the_published_ed25519_key_and_keeps_the_rsa_one() {
    let demo = demo_connector("highlevel", &SEED);
    let body = body_sent(0);
    // The demo source verifies X-GHL-Signature with its own key only...
    let other = ed25519_sign(&ed25519_key(1), &body);
    assert_eq!(
        error_code(
            demo.as_ref(),
            &delivery(&body, &[("X-GHL-Signature", &other)])
        ),
        ErrorCode::SignatureInvalid
    );
    // ...and a source without the option does not accept what the demo source signs.
    let mut signed = delivery(&body, &[]);
    demo.sign(&mut signed).unwrap();
    assert_eq!(
        error_code(connector(json!({})).as_ref(), &signed),
        ErrorCode::SignatureInvalid
    );
    // The legacy RSA key is still HighLevel's published one.
    let rsa = rsa_sign(&rsa_keys()[0], &body);
    assert_eq!(
        error_code(demo.as_ref(), &delivery(&body, &[("X-WH-Signature", &rsa)])),
        ErrorCode::SignatureInvalid
    );
}

#[test]
fn a_signing_key_with_its_own_public_key_builds_and_with_another_names_signing_key() {
    let key = encode_base64(&SEED);
    let matching = ed25519_pem(&SigningKey::from_bytes(&SEED));
    let paired = connector(json!({"signing_key": key, "ed25519_public_key": matching}));
    let mut delivery = delivery(&body_sent(0), &[]);
    paired.sign(&mut delivery).unwrap();
    assert_eq!(paired.verify(&delivery), Ok(()));

    let other = ed25519_pem(&ed25519_key(1));
    let error = build(json!({"signing_key": key, "ed25519_public_key": other})).unwrap_err();
    assert_eq!(error.key, "signing_key");
    assert_eq!(error.code(), ErrorCode::ConfigInvalid);
    assert!(!error.to_string().contains(&key), "{error}");
}

#[test]
fn a_signing_key_may_be_a_pkcs8_pem_private_key() {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let pem = SigningKey::from_bytes(&SEED)
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    let from_pem = connector(json!({"signing_key": pem.as_str()}));
    let body = body_sent(0);
    let mut by_pem = delivery(&body, &[]);
    from_pem.sign(&mut by_pem).unwrap();
    let mut by_seed = delivery(&body, &[]);
    demo_connector("highlevel", &SEED)
        .sign(&mut by_seed)
        .unwrap();
    assert_eq!(
        by_pem.header("X-GHL-Signature"),
        by_seed.header("X-GHL-Signature")
    );
    assert_eq!(from_pem.verify(&by_pem), Ok(()));
}

#[test]
fn an_unusable_signing_key_is_a_config_error_that_hides_the_value() {
    let short = encode_base64(&[7; 31]);
    for value in [
        "",
        "  ",
        "not base64 at all!",
        short.as_str(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ] {
        let error = build(json!({ "signing_key": value })).unwrap_err();
        assert_eq!(error.key, "signing_key", "{value:?}");
        assert_eq!(error.code(), ErrorCode::ConfigInvalid);
        if !value.trim().is_empty() {
            assert!(!error.to_string().contains(value.trim()), "{error}");
        }
    }
    // An RSA key is not an Ed25519 one.
    let error = build(json!({ "signing_key": rsa_keys()[0].private_pem })).unwrap_err();
    assert_eq!(error.key, "signing_key");
}

#[test]
fn the_connector_debug_output_never_shows_the_signing_key() {
    let text = format!("{:?}", demo_connector("highlevel", &SEED));
    assert!(!text.contains(&encode_base64(&SEED)), "{text}");
    assert!(!text.contains("7, 7, 7"), "{text}");
}
