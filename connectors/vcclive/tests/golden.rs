//! Every fixture body normalizes to its `.expected.json` (ROLLCALL_BLESS=1 rewrites them).

use std::path::Path;

use rollcall_connector_vcclive as _;

#[test]
fn fixtures_normalize_to_their_expected_events() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    rollcall_testkit::check_golden_fixtures("vcclive", &fixtures);
}

#[test]
fn the_connector_registers_as_vcclive_with_both_user_events() {
    let registration = rollcall_core::registration("vcclive").expect("vcclive is registered");
    assert_eq!(registration.vendor, "VCC Live");
    assert_eq!(registration.event_types, ["User Created", "User Changed"]);
    assert!(registration.example_config.contains("secret_key"));
}
