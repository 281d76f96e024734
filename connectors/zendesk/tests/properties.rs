//! verify, normalize and dedup_key never panic, whatever the body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rollcall_connector_zendesk as _;
use rollcall_core::SourceOptions;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn an_offline_connector_never_panics() {
    let connector = rollcall_testkit::offline_connector("zendesk");
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}

#[test]
fn a_connector_with_a_signing_secret_never_panics() {
    let registration = rollcall_core::registration("zendesk").unwrap();
    let options = SourceOptions::new(
        "zendesk",
        serde_json::json!({"signing_secret": "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="}),
    );
    let connector = (registration.build)(&options).unwrap();
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}
