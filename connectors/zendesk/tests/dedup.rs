//! Deliveries are deduplicated on the webhook event id, else on the body hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_zendesk as _;

fn key(body: &[u8]) -> String {
    let connector = rollcall_testkit::offline_connector("zendesk");
    connector.dedup_key(&rollcall_testkit::delivery("zendesk", body.to_vec()))
}

#[test]
fn a_webhook_is_deduplicated_on_its_event_id() {
    let sample = include_bytes!("../fixtures/user.active_changed.webhook.json");
    assert_eq!(key(sample), "zendesk:2b24ef10-19d4-4740-93cf-8f98ec4776c0");
    // A redelivery with other formatting is still the same event.
    let compact = br#"{"id":"2b24ef10-19d4-4740-93cf-8f98ec4776c0","type":"zen:event-type:user.active_changed"}"#;
    assert_eq!(key(compact), key(sample));
}

#[test]
fn a_numeric_event_id_is_used_as_a_string() {
    assert_eq!(key(br#"{"type": "x", "id": 42}"#), "zendesk:42");
}

#[test]
fn a_bare_user_is_deduplicated_on_its_body_not_its_user_id() {
    let first = key(br#"{"id": 35436, "name": "Johnny Agent"}"#);
    let second = key(br#"{"id": 35436, "name": "Johnny B. Agent"}"#);
    assert!(first.starts_with("sha256:"), "{first}");
    assert_eq!(first.len(), "sha256:".len() + 64);
    assert_ne!(first, second);
}

#[test]
fn a_webhook_without_an_id_falls_back_to_the_body_hash() {
    for body in [
        &br#"{"type": "zen:event-type:user.created", "detail": {"id": "1"}}"#[..],
        br#"{"type": "zen:event-type:user.created", "id": ""}"#,
        br#"{"type": "zen:event-type:user.created", "id": null}"#,
        br#"{"type": "zen:event-type:user.created", "id": {"nested": true}}"#,
    ] {
        assert!(key(body).starts_with("sha256:"));
    }
}

#[test]
fn garbage_gets_a_body_hash_key() {
    for body in [
        &b""[..],
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        b"{\"type\": ",
    ] {
        assert!(key(body).starts_with("sha256:"));
    }
}
