//! Okta's authenticity scheme (the `Authorization` header secret), the source options, and
//! signing test requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_okta as _;
use rollcall_core::verify::encode_base64;
use rollcall_core::{Connector, Delivery, ErrorCode, SourceOptions};
use rollcall_testkit::{Signing, DEMO_SEED};
use serde_json::{json, Value};

const CONNECTOR: &str = "okta";
/// What an admin typed as the hook's authentication secret (Okta's guide uses a Basic
/// credential; any string works).
const SECRET: &str = "Basic YWRtaW46c3VwZXJzZWNyZXQ=";
const SAMPLE: &[u8] = include_bytes!("../fixtures/user.lifecycle.create.json");

fn build(options: Value) -> Result<Box<dyn Connector>, rollcall_core::ConfigError> {
    let registration = rollcall_core::registration(CONNECTOR).unwrap();
    (registration.build)(&SourceOptions::new(CONNECTOR, options))
}

fn connector() -> Box<dyn Connector> {
    build(json!({ "authorization_secret": SECRET })).unwrap()
}

/// A delivery of a sample body with these headers.
fn delivery(headers: &[(&str, &str)]) -> Delivery {
    headers.iter().fold(
        rollcall_testkit::delivery(CONNECTOR, SAMPLE),
        |delivery, (name, value)| delivery.with_header(*name, *value),
    )
}

fn verify_code(connector: &dyn Connector, delivery: &Delivery) -> Option<ErrorCode> {
    connector.verify(delivery).err().map(|error| error.code())
}

// ---- The Authorization header --------------------------------------------------------------

#[test]
fn accepts_the_configured_secret_in_the_authorization_header() {
    let delivery = delivery(&[("Authorization", SECRET)]);
    assert_eq!(verify_code(connector().as_ref(), &delivery), None);
}

#[test]
fn the_header_name_is_case_insensitive_and_its_value_is_not() {
    let lower = delivery(&[("authorization", SECRET)]);
    assert_eq!(verify_code(connector().as_ref(), &lower), None);
    let shouted = delivery(&[("Authorization", &SECRET.to_uppercase())]);
    assert_eq!(
        verify_code(connector().as_ref(), &shouted),
        Some(ErrorCode::SignatureInvalid)
    );
}

#[test]
fn a_request_without_the_authorization_header_is_signature_missing() {
    for headers in [
        vec![("Content-Type", "application/json")],
        vec![("Authorization", "")],
        vec![("Authorization", "   ")],
        vec![("X-Okta-Secret", SECRET)],
    ] {
        assert_eq!(
            verify_code(connector().as_ref(), &delivery(&headers)),
            Some(ErrorCode::SignatureMissing),
            "{headers:?}"
        );
    }
}

#[test]
fn a_wrong_secret_is_signature_invalid_whatever_its_length() {
    let mut last_changed = SECRET.to_owned();
    last_changed.pop();
    let prefix = last_changed.clone();
    last_changed.push('!');
    for wrong in [
        "another secret".to_owned(),
        last_changed,
        prefix,
        format!("{SECRET}="),
        format!("Bearer {SECRET}"),
    ] {
        let delivery = delivery(&[("Authorization", &wrong)]);
        assert_eq!(
            verify_code(connector().as_ref(), &delivery),
            Some(ErrorCode::SignatureInvalid),
            "{wrong:?}"
        );
    }
}

#[test]
fn the_secret_authenticates_the_sender_not_the_body() {
    // Okta signs nothing: a changed body with the right header verifies (see the doc page).
    let mut delivery = delivery(&[("Authorization", SECRET)]);
    delivery.replace_body(&b"{}"[..]);
    assert_eq!(verify_code(connector().as_ref(), &delivery), None);
}

#[test]
fn an_old_delivery_verifies_because_okta_signs_no_timestamp() {
    // The guide's event was published in 2020; the fixture delivery is received in 2026.
    let body = include_bytes!("../fixtures/okta-guide-user-lifecycle-deactivate.json");
    let delivery =
        rollcall_testkit::delivery(CONNECTOR, &body[..]).with_header("Authorization", SECRET);
    assert_eq!(verify_code(connector().as_ref(), &delivery), None);
}

#[test]
fn an_offline_connector_answers_source_misconfigured() {
    let connector = rollcall_testkit::offline_connector(CONNECTOR);
    let delivery = delivery(&[("Authorization", SECRET)]);
    assert_eq!(
        verify_code(connector.as_ref(), &delivery),
        Some(ErrorCode::SourceMisconfigured)
    );
}

#[test]
fn errors_and_debug_output_never_show_the_secret() {
    let connector = connector();
    assert!(!format!("{connector:?}").contains("YWRtaW46"));
    let error = connector
        .verify(&delivery(&[("Authorization", "Basic guess")]))
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains("YWRtaW46") && !error.contains("guess"),
        "{error}"
    );
}

// ---- Options -------------------------------------------------------------------------------

#[test]
fn building_online_without_the_secret_names_the_option() {
    for options in [json!({}), json!({"authorization_secret": ""})] {
        let error = build(options).unwrap_err();
        assert_eq!(error.key, "authorization_secret");
        assert_eq!(error.code(), ErrorCode::ConfigInvalid);
    }
}

#[test]
fn unknown_option_keys_are_rejected() {
    let error = build(json!({"authorization_secret": "s", "auth_header": "X-Secret"})).unwrap_err();
    assert!(error.message.contains("auth_header"), "{error}");
}

// ---- A custom header name (the hook's authScheme.key) ---------------------------------------

#[test]
fn the_secret_is_read_from_the_configured_header_instead_of_authorization() {
    let connector = build(json!({
        "authorization_secret": SECRET,
        "authorization_header": "X-Okta-Hook-Secret"
    }))
    .unwrap();
    let custom = delivery(&[("x-okta-hook-secret", SECRET)]);
    assert_eq!(verify_code(connector.as_ref(), &custom), None);
    // The secret in `Authorization` is not where this hook sends it.
    let default = delivery(&[("Authorization", SECRET)]);
    assert_eq!(
        verify_code(connector.as_ref(), &default),
        Some(ErrorCode::SignatureMissing)
    );
    let mut signed = delivery(&[]);
    connector.sign(&mut signed).unwrap();
    assert_eq!(signed.header("X-Okta-Hook-Secret"), Some(SECRET));
    assert_eq!(signed.header("Authorization"), None);
}

#[test]
fn a_header_name_the_quarantine_would_keep_or_no_header_name_is_refused() {
    for header in ["X-Okta-Hook", "", "Bad Header", "x-secret\n"] {
        let error = build(json!({"authorization_secret": SECRET, "authorization_header": header}))
            .unwrap_err();
        assert_eq!(error.key, "authorization_header", "{header:?}");
    }
    for header in [
        "authorization",
        "X-Api-Key",
        "X-Hook-Token",
        "X-Okta-Secret",
    ] {
        assert!(
            build(json!({"authorization_secret": SECRET, "authorization_header": header})).is_ok(),
            "{header:?}"
        );
    }
}

// ---- Signing test requests ------------------------------------------------------------------

/// The shared checks of `rollcall_testkit::assert_signing_round_trips` over at least ten
/// fixtures with events: the secret authenticates the sender, not the body, and the demo
/// secret is the seed in base64.
#[test]
fn sign_meets_the_shared_signing_specification() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let with_events = rollcall_testkit::fixtures_with_events(&fixtures).len();
    assert!(with_events >= 10, "{with_events} fixtures with events");
    rollcall_testkit::assert_signing_round_trips(
        CONNECTOR,
        &fixtures,
        &Signing {
            demo_options: json!({"authorization_secret": encode_base64(&DEMO_SEED)}),
            key_option: "authorization_secret",
            covers_body: false,
            stale_fixtures: &[],
        },
    );
}

#[test]
fn signing_sets_the_authorization_header_once_and_leaves_the_body() {
    let connector = connector();
    let mut delivery = delivery(&[
        ("authorization", "stale"),
        ("Content-Type", "application/json"),
    ]);
    connector.sign(&mut delivery).unwrap();
    assert_eq!(delivery.header("Authorization"), Some(SECRET));
    assert_eq!(
        delivery
            .headers
            .names()
            .filter(|name| *name == "authorization")
            .count(),
        1
    );
    assert_eq!(delivery.header("content-type"), Some("application/json"));
    assert_eq!(&delivery.body[..], SAMPLE);
}
