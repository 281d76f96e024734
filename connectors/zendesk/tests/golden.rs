//! Every fixture body normalizes to its `.expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rollcall_connector_zendesk as _;

#[test]
fn fixtures_normalize_to_their_expected_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    rollcall_testkit::check_golden_fixtures("zendesk", &dir);
}
