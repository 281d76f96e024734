//! Mapping rules that hold across event types (the per-type outputs are the golden fixtures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_zendesk::EVENT_TYPES;
use rollcall_core::{EventType, UserEvent};
use serde_json::json;

fn normalize(body: &serde_json::Value) -> Result<Vec<UserEvent>, rollcall_core::NormalizeError> {
    let connector = rollcall_testkit::offline_connector("zendesk");
    connector.normalize(&rollcall_testkit::delivery(
        "zendesk",
        serde_json::to_vec(body).unwrap(),
    ))
}

fn envelope(event_type: &str, event: serde_json::Value) -> serde_json::Value {
    json!({
        "type": event_type,
        "account_id": 12514403,
        "id": "2b24ef10-19d4-4740-93cf-8f98ec4776c0",
        "time": "2099-07-04T05:33:18Z",
        "zendesk_event_version": "2022-06-20",
        "subject": "zen:user:6596848315901",
        "detail": {
            "created_at": "2099-07-04T05:27:58Z",
            "email": "someone@example.com",
            "external_id": "",
            "default_group_id": "0",
            "id": "6596848315901",
            "organization_id": "0",
            "role": "end-user",
            "updated_at": "2099-07-04T05:33:18Z"
        },
        "event": event
    })
}

#[test]
fn every_registered_event_type_gives_one_partial_event_for_the_detail_user() {
    for event_type in EVENT_TYPES {
        let event = if event_type.ends_with("user.active_changed") {
            json!({"current": true, "previous": false})
        } else {
            json!({})
        };
        let events = normalize(&envelope(event_type, event)).unwrap();
        assert_eq!(events.len(), 1, "{event_type}");
        let event = &events[0];
        assert_eq!(event.user.id, "6596848315901", "{event_type}");
        assert_eq!(event.vendor_event.event_type, *event_type);
        assert!(
            event.partial,
            "{event_type}: detail never has the name or phone"
        );
        assert!(event.previous.is_none(), "{event_type}");
        let expected = match event_type.rsplit(['/', ':']).next().unwrap() {
            "user.created" => EventType::Created,
            "user.deleted" => EventType::Deleted,
            _ => EventType::Updated,
        };
        assert_eq!(event.event_type, expected, "{event_type}");
    }
}

#[test]
fn both_separators_of_an_event_type_map_the_same() {
    for short in ["user.merged", "user.identity_created", "user.name_changed"] {
        let event = json!({"current": "Ann", "previous": "Anne", "identity": {"type": "email", "value": "ann@example.com"}});
        let colon =
            normalize(&envelope(&format!("zen:event-type:{short}"), event.clone())).unwrap();
        let slash = normalize(&envelope(&format!("zen:event-type/{short}"), event)).unwrap();
        assert_eq!(colon[0].event_type, slash[0].event_type, "{short}");
        assert_eq!(colon[0].user, slash[0].user, "{short}");
        assert_eq!(colon[0].changes, slash[0].changes, "{short}");
    }
}

#[test]
fn zendesk_deletes_by_deactivating() {
    let deactivated = envelope(
        "zen:event-type:user.active_changed",
        json!({"current": false, "previous": true}),
    );
    let event = &normalize(&deactivated).unwrap()[0];
    assert_eq!(event.event_type, EventType::Deleted);
    assert_eq!(event.user.status, Some(rollcall_core::UserStatus::Deleted));
}

#[test]
fn a_bare_user_is_a_full_snapshot_and_not_partial() {
    let events = normalize(&json!({"id": 35436, "name": "Johnny Agent", "active": true})).unwrap();
    assert_eq!(events[0].event_type, EventType::Updated);
    assert!(!events[0].partial);
    assert!(events[0].changes.is_none());
    assert_eq!(events[0].vendor_event.event_type, "zendesk.user");
}

#[test]
fn types_outside_the_user_domain_are_unsupported() {
    for event_type in [
        "zen:event-type:organization.created",
        "zen:event-type:ticket.created",
        "zen:event-type:user.locale_changed",
        "user.created",
        "",
    ] {
        let error = normalize(&envelope(event_type, json!({}))).unwrap_err();
        assert_eq!(
            error.code(),
            rollcall_core::ErrorCode::EventUnsupported,
            "{event_type:?}"
        );
    }
}

/// The user known to the directory before a membership removal: in two groups and two
/// organizations.
fn known_member() -> rollcall_core::directory::KnownUser {
    use rollcall_core::{Group, Organization, User};
    rollcall_core::directory::KnownUser {
        user: User {
            groups: Some(vec![
                Group {
                    id: Some("360001234567".into()),
                    ..Group::default()
                },
                Group {
                    id: Some("360003333333".into()),
                    ..Group::default()
                },
            ]),
            organizations: Some(vec![
                Organization {
                    id: Some("360009876543".into()),
                    name: None,
                },
                Organization {
                    id: Some("360004444444".into()),
                    name: None,
                },
            ]),
            ..User::with_id("6596848315901")
        },
        version: 3,
        deleted: false,
        partial: true,
    }
}

fn fixture_event(name: &str) -> UserEvent {
    let path = format!("{}/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    normalize(&body).unwrap().remove(0)
}

#[test]
fn a_group_membership_deleted_removes_the_group_even_when_detail_still_names_it() {
    // `detail.default_group_id` is the group removed.
    let mut event = fixture_event("webhook_user_group_membership_deleted_default_group");
    let record = rollcall_core::directory::apply(Some(&known_member()), &mut event);
    let groups: Vec<_> = record
        .user
        .groups
        .unwrap_or_default()
        .into_iter()
        .filter_map(|group| group.id)
        .collect();
    assert_eq!(groups, ["360003333333"]);
}

#[test]
fn an_organization_membership_deleted_removes_it_even_when_detail_still_names_it() {
    let mut event =
        fixture_event("webhook_user_organization_membership_deleted_current_organization");
    let record = rollcall_core::directory::apply(Some(&known_member()), &mut event);
    let organizations: Vec<_> = record
        .user
        .organizations
        .unwrap_or_default()
        .into_iter()
        .filter_map(|organization| organization.id)
        .collect();
    assert_eq!(organizations, ["360004444444"]);
}

#[test]
fn every_webhook_keeps_its_raw_event_in_remote_data() {
    for event_type in EVENT_TYPES {
        let event = json!({"user": {"id": "6596848315999"}, "tags": ["vip"]});
        let Ok(events) = normalize(&envelope(event_type, event.clone())) else {
            continue; // a type whose `event` must have another shape; its fixture covers it
        };
        let remote = events[0].user.remote_data.as_ref().unwrap().to_value();
        assert_eq!(remote["event"], event, "{event_type}");
        assert_eq!(remote["email"], "someone@example.com", "{event_type}");
    }
}

#[test]
fn the_merge_partner_is_kept_in_remote_data_event() {
    let event = fixture_event("webhook_user_merged_colon");
    let remote = event.user.remote_data.unwrap().to_value();
    assert_eq!(remote["event"]["user"]["id"], "6596848315999");
}

#[test]
fn a_created_user_is_active_unless_detail_says_otherwise() {
    let event = fixture_event("webhook_user_created");
    assert_eq!(event.user.status, Some(rollcall_core::UserStatus::Active));
}
