//! verify, normalize and dedup_key never panic, whatever the body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use rollcall_connector_highlevel as _;
use rollcall_core::SourceOptions;
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn the_offline_connector_never_panics() {
    let connector = rollcall_testkit::offline_connector("highlevel");
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}

#[test]
fn a_connector_with_configured_keys_never_panics() {
    let pem = ed25519_dalek::SigningKey::from_bytes(&[3; 32])
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let registration = rollcall_core::registration("highlevel").unwrap();
    let options = SourceOptions::new("highlevel-props", json!({ "ed25519_public_key": pem }));
    let connector = (registration.build)(&options).unwrap();
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}
