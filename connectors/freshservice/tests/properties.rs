//! verify, normalize and dedup_key never panic, offline or with a secret configured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rollcall_connector_freshservice::FreshserviceConnector;
use rollcall_core::SourceOptions;
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn the_offline_connector_never_panics() {
    let connector = rollcall_testkit::offline_connector("freshservice");
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}

#[test]
fn a_connector_with_a_signing_secret_never_panics() {
    let options = SourceOptions::new(
        "property",
        json!({"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );
    let connector = FreshserviceConnector::from_options(&options).unwrap();
    rollcall_testkit::assert_never_panics(&connector, &fixtures());
}
