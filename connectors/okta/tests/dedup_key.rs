//! Deliveries are deduplicated on their events' `uuid`s, else on the body hash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_okta as _;
use serde_json::{json, Value};

const CONNECTOR: &str = "okta";

fn dedup_key(body: &[u8]) -> String {
    let connector = rollcall_testkit::offline_connector(CONNECTOR);
    connector.dedup_key(&rollcall_testkit::delivery(CONNECTOR, body.to_vec()))
}

fn key_of(body: &Value) -> String {
    dedup_key(&serde_json::to_vec(body).unwrap())
}

fn delivery_of(uuids: &[&str], event_id: &str) -> Value {
    let events: Vec<Value> = uuids
        .iter()
        .map(|uuid| json!({"uuid": uuid, "eventType": "user.lifecycle.suspend"}))
        .collect();
    json!({"eventType": "com.okta.event_hook", "eventId": event_id, "data": {"events": events}})
}

#[test]
fn a_delivery_of_one_event_is_keyed_on_its_uuid() {
    let body = include_bytes!("../fixtures/okta-guide-user-lifecycle-deactivate.json");
    assert_eq!(dedup_key(body), "okta:ab62c0bc-2837-11eb-9823-9fb8f750c5a9");
}

#[test]
fn the_same_events_sent_again_in_another_envelope_have_the_same_key() {
    // A retry may carry another envelope `eventId`, `eventTime` or layout, and its events in
    // another order: the events are what is delivered twice.
    let first = key_of(&delivery_of(&["u-1", "u-2", "u-3"], "delivery-1"));
    let again = key_of(&delivery_of(&["u-3", "u-1", "u-2"], "delivery-2"));
    assert_eq!(first, again);
    assert!(first.starts_with("okta:sha256:"), "{first}");
    assert_eq!(first.len(), "okta:sha256:".len() + 64);
}

#[test]
fn a_different_set_of_events_has_a_different_key() {
    let three = key_of(&delivery_of(&["u-1", "u-2", "u-3"], "d"));
    let two = key_of(&delivery_of(&["u-1", "u-2"], "d"));
    let other = key_of(&delivery_of(&["u-1", "u-2", "u-4"], "d"));
    assert_ne!(three, two);
    assert_ne!(three, other);
    assert_ne!(
        key_of(&delivery_of(&["u-1"], "d")),
        key_of(&delivery_of(&["u-2"], "d"))
    );
}

#[test]
fn without_a_uuid_on_every_event_the_key_is_the_body_hash() {
    for body in [
        json!({"data": {"events": [{"uuid": "u-1"}, {"eventType": "user.lifecycle.create"}]}}),
        json!({"data": {"events": [{"uuid": ""}]}}),
        json!({"data": {"events": [{"uuid": 42}]}}),
        json!({"data": {"events": []}}),
        json!({"eventType": "com.okta.user.pre-registration", "data": {"events": [{"uuid": "u-1"}]}}),
        json!([{"uuid": "u-1"}]),
    ] {
        let key = key_of(&body);
        assert!(key.starts_with("sha256:"), "{body}: {key}");
        assert_eq!(
            key,
            rollcall_testkit::delivery(CONNECTOR, serde_json::to_vec(&body).unwrap())
                .body_dedup_key()
        );
    }
    assert!(dedup_key(b"not json").starts_with("sha256:"));
    assert!(dedup_key(b"").starts_with("sha256:"));
}
