//! Every fixture body normalizes to its `.expected.json` (ROLLCALL_BLESS=1 rewrites them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rollcall_connector_freshservice as _;

#[test]
fn fixtures_normalize_to_their_expected_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    rollcall_testkit::check_golden_fixtures("freshservice", &dir);
}

/// SHA-256 of Freshworks' published sample payloads (hosilva4/freshService_customAppPDF,
/// server/test_data/, commit 0298e981e865603f61a8427204905d37515d07d2).
const PUBLISHED_SAMPLES: [(&str, &str); 3] = [
    (
        "onUserCreate.json",
        "a0b71bbe4c0e12520156750e12eaf847d8a415c3b9a08b129b438dbb87e2b47b",
    ),
    (
        "onUserUpdate.json",
        "7da8ce21a836a805f69cabb2cc8530d5798b9b18085821a58323defeceb96884",
    ),
    (
        "onUserDelete.json",
        "351880f6c8bf5804595bc3a7b4936ef7ec10266aec2d97d1d8457086b9946530",
    ),
];

#[test]
fn the_published_samples_are_fixtures_byte_for_byte() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for (name, expected) in PUBLISHED_SAMPLES {
        let bytes = std::fs::read(fixtures.join(name)).unwrap();
        let delivery = rollcall_testkit::delivery("sha256", bytes);
        let actual: String = delivery
            .body_sha256()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(actual, expected, "{name} is not the published sample");
    }
}
