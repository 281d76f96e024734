//! VCC Live's authenticity scheme: the `secret-key` query parameter, and the source options.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_vcclive::VccLiveConnector;
use rollcall_core::{Connector, Delivery, ErrorCode, SourceOptions};
use rollcall_testkit::{demo_connector, Signing, DEMO_SEED};
use serde_json::json;

const SECRET: &str = "s3cr3t-k3y+/&=";
const SAMPLE: &[u8] = include_bytes!("../fixtures/user_created.json");

fn connector() -> VccLiveConnector {
    let options = SourceOptions::new("vcclive-test", json!({ "secret_key": SECRET }));
    VccLiveConnector::from_options(&options).unwrap()
}

/// A delivery of the seed's User Created sample with this query string.
fn delivery(query: &str) -> Delivery {
    rollcall_testkit::delivery("vcclive-test", SAMPLE).with_query(query)
}

/// `secret-key=<value>` percent-encoded, as it appears in the URL configured in VCC Live.
fn secret_query(value: &str) -> String {
    let encoded: String = value
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect();
    format!("secret-key={encoded}")
}

fn verify_code(connector: &dyn Connector, delivery: &Delivery) -> Option<ErrorCode> {
    connector.verify(delivery).err().map(|error| error.code())
}

#[test]
fn accepts_the_configured_secret_key() {
    assert_eq!(
        verify_code(&connector(), &delivery(&secret_query(SECRET))),
        None
    );
}

#[test]
fn accepts_the_secret_key_among_other_query_parameters() {
    let query = format!("iv=00ff&{}&project=4", secret_query(SECRET));
    assert_eq!(verify_code(&connector(), &delivery(&query)), None);
}

#[test]
fn rejects_a_request_carrying_another_secret_key() {
    let delivery = delivery(&secret_query("another secret"));
    assert_eq!(
        verify_code(&connector(), &delivery),
        Some(ErrorCode::SignatureInvalid)
    );
}

#[test]
fn rejects_a_secret_key_that_differs_only_in_its_last_byte_or_length() {
    let mut last_byte_changed = SECRET.to_owned();
    last_byte_changed.pop();
    let prefix = last_byte_changed.clone();
    last_byte_changed.push('!');
    for wrong in [
        last_byte_changed,
        prefix,
        format!("{SECRET}x"),
        String::new(),
    ] {
        assert_eq!(
            verify_code(&connector(), &delivery(&secret_query(&wrong))),
            Some(ErrorCode::SignatureInvalid),
            "{wrong:?} was accepted"
        );
    }
}

#[test]
fn rejects_a_request_without_the_secret_key_parameter() {
    let connector = connector();
    let no_query = rollcall_testkit::delivery("vcclive-test", SAMPLE);
    assert_eq!(
        verify_code(&connector, &no_query),
        Some(ErrorCode::SignatureMissing)
    );
    // The secret sent under another name is not the secret-key parameter.
    let renamed = delivery(&format!("secret_key={SECRET}"));
    assert_eq!(
        verify_code(&connector, &renamed),
        Some(ErrorCode::SignatureMissing)
    );
}

#[test]
fn a_changed_body_still_verifies_because_vcc_live_signs_nothing() {
    // The secret key authenticates the sender, not the bytes: documented in the doc page.
    let mut body = SAMPLE.to_vec();
    let position = body.iter().position(|byte| *byte == b'R').unwrap();
    body[position] = b'M';
    let changed = rollcall_testkit::delivery("vcclive-test", body).with_query(secret_query(SECRET));
    assert_eq!(verify_code(&connector(), &changed), None);
}

#[test]
fn accepts_an_old_delivery_because_vcc_live_has_no_replay_window() {
    // The sample's timestamp is from 2017; the fixture delivery is received in 2026.
    let delivery = delivery(&secret_query(SECRET));
    assert_eq!(verify_code(&connector(), &delivery), None);
    assert!(connector().normalize(&delivery).is_ok());
}

#[test]
fn deduplicates_on_the_body_hash() {
    let connector = connector();
    let first = delivery(&secret_query(SECRET));
    let again = delivery("other=query");
    let other = rollcall_testkit::delivery(
        "vcclive-test",
        &include_bytes!("../fixtures/user_changed.json")[..],
    );
    assert_eq!(connector.dedup_key(&first), connector.dedup_key(&again));
    assert_ne!(connector.dedup_key(&first), connector.dedup_key(&other));
    assert!(connector.dedup_key(&first).starts_with("sha256:"));
}

#[test]
fn an_offline_connector_answers_source_misconfigured() {
    let connector = rollcall_testkit::offline_connector("vcclive");
    assert_eq!(
        verify_code(&*connector, &delivery(&secret_query(SECRET))),
        Some(ErrorCode::SourceMisconfigured)
    );
}

#[test]
fn building_online_without_a_secret_key_names_the_option() {
    let error = VccLiveConnector::from_options(&SourceOptions::new("s", json!({}))).unwrap_err();
    assert_eq!(error.key, "secret_key");
    let error = VccLiveConnector::from_options(&SourceOptions::new("s", json!({"secret_key": ""})))
        .unwrap_err();
    assert_eq!(error.key, "secret_key");
}

#[test]
fn unknown_option_keys_are_rejected() {
    let options = SourceOptions::new("s", json!({"secret_key": "k", "signing_secret": "k"}));
    let error = VccLiveConnector::from_options(&options).unwrap_err();
    assert!(error.message.contains("signing_secret"), "{error}");
}

#[test]
fn encryption_options_come_as_a_pair_with_a_known_cipher() {
    let build = |options| VccLiveConnector::from_options(&SourceOptions::new("s", options));
    let error = build(json!({"secret_key": "k", "cipher": "aes-256-ctr"})).unwrap_err();
    assert_eq!(error.key, "encryption_key");
    let error = build(json!({"secret_key": "k", "encryption_key": "e"})).unwrap_err();
    assert_eq!(error.key, "cipher");
    let error = build(json!({"secret_key": "k", "cipher": "aes-256-ctr", "encryption_key": ""}))
        .unwrap_err();
    assert_eq!(error.key, "encryption_key");
    let error =
        build(json!({"secret_key": "k", "cipher": "des-ede3", "encryption_key": "e"})).unwrap_err();
    assert_eq!(error.key, "cipher");
    for cipher in ["aes-256-ctr", "aes-256-cbc", "AES-256-CBC"] {
        assert!(build(json!({"secret_key": "k", "cipher": cipher, "encryption_key": "e"})).is_ok());
    }
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let options = SourceOptions::new(
        "s",
        json!({"secret_key": SECRET, "cipher": "aes-256-cbc", "encryption_key": "enc-key-value"}),
    );
    let connector = VccLiveConnector::from_options(&options).unwrap();
    let debug = format!("{connector:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("enc-key-value"),
        "{debug}"
    );
    let error = connector
        .verify(&delivery(&secret_query("guess")))
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains(SECRET) && !error.contains("guess"),
        "{error}"
    );
}

// ---- Signing test requests (`rollcall sign`, demo sources) --------------------------------

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The shared checks of `rollcall_testkit::assert_signing_round_trips`: the secret key in the
/// URL authenticates the sender, not the body, and the demo secret key is the seed in hex.
#[test]
fn sign_meets_the_shared_signing_specification() {
    rollcall_testkit::assert_signing_round_trips(
        "vcclive",
        &fixtures(),
        &Signing {
            demo_options: json!({"secret_key": "07".repeat(32)}),
            key_option: "secret_key",
            covers_body: false,
            stale_fixtures: &[],
        },
    );
}

#[test]
fn signing_puts_the_secret_key_in_the_query_and_keeps_the_other_parameters() {
    let connector = connector();
    let mut delivery = delivery("project=4&secret-key=stale&x=a%20b");
    connector.sign(&mut delivery).unwrap();
    assert_eq!(
        delivery.query.as_deref(),
        Some("project=4&x=a%20b&secret-key=s3cr3t-k3y%2B%2F%26%3D")
    );
    assert_eq!(delivery.query_param("secret-key").as_deref(), Some(SECRET));
    assert_eq!(verify_code(&connector, &delivery), None);

    let mut bare = rollcall_testkit::delivery("vcclive-test", SAMPLE);
    connector.sign(&mut bare).unwrap();
    assert_eq!(bare.query.as_deref(), Some(secret_query(SECRET).as_str()));
}

#[test]
fn a_changed_secret_key_after_signing_fails_but_the_body_is_not_covered() {
    let connector = demo_connector("vcclive", &DEMO_SEED);
    let mut delivery = rollcall_testkit::delivery("vcclive", SAMPLE);
    connector.sign(&mut delivery).unwrap();
    let mut changed_query = delivery.clone();
    changed_query.query = changed_query.query.map(|query| format!("{query}0"));
    assert_eq!(
        verify_code(&*connector, &changed_query),
        Some(ErrorCode::SignatureInvalid)
    );
    // VCC Live signs nothing, so a changed body keeps verifying (see the doc page).
    delivery.replace_body(&b"{}"[..]);
    assert_eq!(verify_code(&*connector, &delivery), None);
}

/// Events without their ids, which derive from the body bytes (here the ciphertext).
fn without_ids(events: serde_json::Value) -> serde_json::Value {
    let mut events = events;
    for event in events.as_array_mut().unwrap() {
        event.as_object_mut().unwrap().remove("id");
    }
    events
}

#[test]
fn with_body_encryption_signing_encrypts_the_body_reproducibly() {
    for cipher in ["aes-256-ctr", "aes-256-cbc"] {
        let options =
            json!({"secret_key": SECRET, "cipher": cipher, "encryption_key": "very secret key"});
        let connector =
            VccLiveConnector::from_options(&SourceOptions::new("vcclive", options)).unwrap();
        for (name, body, events) in rollcall_testkit::fixtures_with_events(&fixtures()) {
            let mut delivery = rollcall_testkit::delivery("vcclive", body.clone());
            connector.sign(&mut delivery).unwrap();
            assert_ne!(delivery.body, body, "{cipher} {name}");
            assert_eq!(verify_code(&connector, &delivery), None, "{cipher} {name}");
            let iv = delivery.query_param("iv").unwrap().into_owned();
            assert!(
                iv.len() == 32 && iv.bytes().all(|b| b.is_ascii_hexdigit()),
                "{iv}"
            );
            let normalized = serde_json::to_value(connector.normalize(&delivery).unwrap()).unwrap();
            assert_eq!(
                without_ids(normalized),
                without_ids(events),
                "{cipher} {name}"
            );
            // The dedup key is the plaintext's.
            assert_eq!(
                connector.dedup_key(&delivery),
                rollcall_testkit::delivery("vcclive", body.clone()).body_dedup_key()
            );
            // No randomness: the same body signs to the same request.
            let mut again = rollcall_testkit::delivery("vcclive", body);
            connector.sign(&mut again).unwrap();
            assert_eq!((again.body, again.query), (delivery.body, delivery.query));
        }
    }
}

// ---- A custom secret parameter name ---------------------------------------------------------

#[test]
fn the_secret_is_read_from_the_configured_query_parameter() {
    let connector = VccLiveConnector::from_options(&SourceOptions::new(
        "vcclive-test",
        json!({"secret_key": SECRET, "secret_parameter": "rollcall-token"}),
    ))
    .unwrap();
    let default = delivery(&secret_query(SECRET));
    let custom = delivery(&secret_query(SECRET).replacen("secret-key", "rollcall-token", 1));
    assert!(connector.verify(&custom).is_ok());
    assert_eq!(
        connector.verify(&default).unwrap_err().code(),
        ErrorCode::SignatureMissing
    );
    let mut signed = delivery("");
    connector.sign(&mut signed).unwrap();
    assert_eq!(
        signed.query_param("rollcall-token").as_deref(),
        Some(SECRET)
    );
    assert_eq!(signed.query_param("secret-key"), None);
}

#[test]
fn a_parameter_name_the_quarantine_would_keep_is_refused() {
    for name in ["rc", "", "a=b", "project"] {
        let options = json!({"secret_key": SECRET, "secret_parameter": name});
        let error = VccLiveConnector::from_options(&SourceOptions::new("s", options)).unwrap_err();
        assert_eq!(error.key, "secret_parameter", "{name:?}");
    }
}

mod secrets_removed_before_quarantine {
    use rollcall_core::{Connector, Delivery, SourceOptions, Timestamp};

    fn connector(options: serde_json::Value) -> Box<dyn Connector> {
        let registration = rollcall_core::registration("vcclive").unwrap();
        (registration.build)(&SourceOptions::new("vcc", options)).unwrap()
    }

    /// A User Changed body whose `new` and `old` carry a password, with a timestamp that
    /// makes normalization fail (so the host would quarantine it).
    fn failing_body() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "old": {"userId": 181, "Password": "Old-Secret-1"},
            "new": {"userId": 181, "email": "a@example.com", "password": "Hunter2-Correct-Horse"},
            "timestamp": "not a time"
        }))
        .unwrap()
    }

    fn plaintext_of(connector: &dyn Connector, delivery: &Delivery) -> Vec<u8> {
        // Normalizing the kept delivery fails the same way; the error names no password.
        let error = connector.normalize(delivery).unwrap_err();
        assert_eq!(error.path(), Some("timestamp"));
        delivery.body.to_vec()
    }

    #[test]
    fn a_plaintext_body_loses_its_passwords_and_still_fails_the_same_way() {
        let connector = connector(serde_json::json!({"secret_key": "k"}));
        let mut delivery = Delivery::new("vcc", failing_body(), Timestamp::now());
        connector.sign(&mut delivery).unwrap();
        let kept = connector.without_secrets(&delivery);
        let body = String::from_utf8(plaintext_of(connector.as_ref(), &kept)).unwrap();
        assert!(!body.contains("Hunter2"), "{body}");
        assert!(!body.contains("Old-Secret"), "{body}");
        assert!(body.contains("a@example.com"), "{body}");
    }

    #[test]
    fn an_encrypted_body_is_cleaned_and_encrypted_again_under_a_new_iv() {
        let connector = connector(serde_json::json!({
            "secret_key": "k",
            "cipher": "aes-256-cbc",
            "encryption_key": "0123456789abcdef0123456789abcdef"
        }));
        let mut delivery = Delivery::new("vcc", failing_body(), Timestamp::now());
        connector.sign(&mut delivery).unwrap();
        let kept = connector.without_secrets(&delivery);
        assert_ne!(kept.body, delivery.body);
        assert_ne!(kept.query_param("iv"), delivery.query_param("iv"));
        // Decrypting the kept body (what a replay does) yields a body without passwords.
        let offline = self::connector(serde_json::json!({
            "secret_key": "k",
            "cipher": "aes-256-cbc",
            "encryption_key": "0123456789abcdef0123456789abcdef"
        }));
        let error = offline.normalize(&kept).unwrap_err();
        assert_eq!(error.path(), Some("timestamp"));
        let again = offline.without_secrets(&kept);
        // Nothing left to remove: kept byte for byte.
        assert_eq!(again.body, kept.body);
    }

    #[test]
    fn a_body_without_passwords_is_kept_byte_for_byte() {
        let connector = connector(serde_json::json!({"secret_key": "k"}));
        let delivery = Delivery::new(
            "vcc",
            &b"{ \"new\": {\"userId\": 1} }"[..],
            Timestamp::now(),
        );
        assert_eq!(connector.without_secrets(&delivery).body, delivery.body);
    }
}
