//! Every fixture body normalizes to its `.expected.json` (ROLLCALL_BLESS=1 rewrites them).

use std::path::Path;

use rollcall_connector_okta as _;

const CONNECTOR: &str = "okta";

#[test]
fn fixtures_normalize_to_their_expected_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    rollcall_testkit::check_golden_fixtures(CONNECTOR, &dir);
}
