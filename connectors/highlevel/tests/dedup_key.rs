//! Deliveries are deduplicated on HighLevel's `webhookId`, else on the body hash.

use rollcall_connector_highlevel as _;

fn dedup_key(body: &str) -> String {
    let connector = rollcall_testkit::offline_connector("highlevel");
    connector.dedup_key(&rollcall_testkit::delivery("highlevel", body))
}

#[test]
fn the_webhook_id_is_the_dedup_key_when_the_body_has_one() {
    let first = r#"{"type":"UserCreate","id":"u1","webhookId":"abc123xyz"}"#;
    let resent = r#"{"type": "UserCreate", "id": "u1", "webhookId": "abc123xyz"}"#;
    assert_eq!(dedup_key(first), "highlevel:abc123xyz");
    assert_eq!(dedup_key(first), dedup_key(resent));
    assert_eq!(dedup_key(r#"{"webhookId": 98765}"#), "highlevel:98765");
}

#[test]
fn without_a_usable_webhook_id_the_key_is_the_body_hash() {
    let body = r#"{"type":"UserCreate","id":"u1"}"#;
    let key = dedup_key(body);
    assert!(key.starts_with("sha256:"), "{key}");
    assert_eq!(key.len(), "sha256:".len() + 64);
    assert_ne!(key, dedup_key(r#"{"type":"UserCreate","id":"u2"}"#));
    for body in [
        r#"{"webhookId": ""}"#,
        r#"{"webhookId": null}"#,
        r#"{"webhookId": {"nested": 1}}"#,
        r#"{"webhookId": 1.5}"#,
        r#"["webhookId", "abc"]"#,
        "not json",
        "",
    ] {
        assert!(dedup_key(body).starts_with("sha256:"), "{body}");
    }
}
