//! `verify` and `normalize` never panic, whatever the body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rollcall_connector_vcclive::VccLiveConnector;
use rollcall_core::SourceOptions;
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn the_offline_connector_never_panics() {
    let connector = rollcall_testkit::offline_connector("vcclive");
    rollcall_testkit::assert_never_panics(&*connector, &fixtures());
}

#[test]
fn a_connector_with_a_secret_key_never_panics() {
    let options = SourceOptions::new("property", json!({"secret_key": "x"}));
    let connector = VccLiveConnector::from_options(&options).unwrap();
    rollcall_testkit::assert_never_panics(&connector, &fixtures());
}

#[test]
fn connectors_that_decrypt_bodies_never_panic() {
    for cipher in ["aes-256-ctr", "aes-256-cbc"] {
        let options = SourceOptions::new(
            "property",
            json!({"secret_key": "x", "cipher": cipher, "encryption_key": "very secret key"}),
        );
        let connector = VccLiveConnector::from_options(&options).unwrap();
        rollcall_testkit::assert_never_panics(&connector, &fixtures());
    }
}
