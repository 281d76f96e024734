//! verify, normalize, dedup_key and handshake never panic, whatever the request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rollcall_connector_okta as _;
use rollcall_core::SourceOptions;

const CONNECTOR: &str = "okta";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
fn the_offline_connector_never_panics() {
    let connector = rollcall_testkit::offline_connector(CONNECTOR);
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}

#[test]
fn a_connector_with_its_secrets_never_panics() {
    let registration = rollcall_core::registration(CONNECTOR).unwrap();
    let options = (registration.demo_options)(&[3; 32]);
    let options = SourceOptions::new(CONNECTOR, options);
    let connector = (registration.build)(&options).unwrap();
    rollcall_testkit::assert_never_panics(connector.as_ref(), &fixtures());
}
