//! The Freshservice mapping rules, stated on the published samples and on small payloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_freshservice as _;
use rollcall_core::{ErrorCode, EventType, NormalizeError, UserEvent, UserStatus};
use serde_json::{json, Value};

fn normalize(body: &[u8]) -> Result<Vec<UserEvent>, NormalizeError> {
    rollcall_testkit::offline_connector("freshservice")
        .normalize(&rollcall_testkit::delivery("freshservice", body.to_vec()))
}

fn one_event(body: &[u8]) -> UserEvent {
    let mut events = normalize(body).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn fields(event: &UserEvent) -> Vec<&str> {
    let changes = event.changes.as_ref().expect("changes are known");
    changes.iter().map(|change| change.field.as_str()).collect()
}

const SAMPLE_CREATE: &[u8] = include_bytes!("../fixtures/onUserCreate.json");
const SAMPLE_UPDATE: &[u8] = include_bytes!("../fixtures/onUserUpdate.json");
const SAMPLE_DELETE: &[u8] = include_bytes!("../fixtures/onUserDelete.json");

#[test]
fn each_freshworks_user_event_maps_to_its_unified_type() {
    assert_eq!(one_event(SAMPLE_CREATE).event_type, EventType::Created);
    assert_eq!(one_event(SAMPLE_UPDATE).event_type, EventType::Updated);
    assert_eq!(one_event(SAMPLE_DELETE).event_type, EventType::Deleted);
}

#[test]
fn the_sample_update_reports_exactly_the_unified_fields_that_changed() {
    let event = one_event(SAMPLE_UPDATE);
    // job_title -> title, both phone numbers -> phones, language -> languages; vip_user,
    // address, background_information and custom_fields are not unified.
    assert_eq!(
        fields(&event),
        ["last_name", "title", "phones", "languages"]
    );
    let previous = event.previous.unwrap();
    assert_eq!(previous.title.as_deref(), Some("EngineerXXX"));
    assert_eq!(previous.last_name.as_deref(), Some("8"));
}

#[test]
fn chennai_to_mumbai_is_no_timezone_change_because_both_are_asia_kolkata() {
    let event = one_event(SAMPLE_UPDATE);
    assert_eq!(event.user.timezone.as_deref(), Some("Asia/Kolkata"));
    assert_eq!(
        event.previous.as_ref().unwrap().timezone.as_deref(),
        Some("Asia/Kolkata")
    );
    assert!(!fields(&event).contains(&"timezone"));
}

#[test]
fn deactivation_reports_status_going_from_active_to_inactive() {
    let event = one_event(include_bytes!("../fixtures/onUserUpdate.deactivated.json"));
    let changes = event.changes.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, "status");
    assert_eq!(changes[0].from, json!("active"));
    assert_eq!(changes[0].to, json!("inactive"));
}

#[test]
fn changes_to_custom_fields_with_unknown_keys_never_fail_and_change_nothing_unified() {
    let event = one_event(include_bytes!(
        "../fixtures/onUserUpdate.non_unified_changes.json"
    ));
    assert_eq!(event.changes, Some(Vec::new()));
}

#[test]
fn an_update_without_changes_leaves_previous_unknown() {
    let event = one_event(include_bytes!(
        "../fixtures/onUserUpdate.without_changes.json"
    ));
    assert_eq!(event.previous, None);
    assert_eq!(event.changes, None);
}

#[test]
fn a_change_rollcall_cannot_read_leaves_previous_unknown() {
    let body = json!({
        "event": "onUserUpdate", "timestamp": 1767226500.0,
        "data": {"user": {"id": 1, "job_title": "B"}, "changes": {"job_title": "B"}}
    });
    let event = one_event(body.to_string().as_bytes());
    assert_eq!(event.previous, None);
    assert_eq!(event.changes, None);
}

#[test]
fn a_forgotten_user_is_deleted_and_never_named_forgotten_user() {
    let event = one_event(SAMPLE_DELETE);
    let user = &event.user;
    assert_eq!(user.id, "93");
    assert_eq!(user.status, Some(UserStatus::Deleted));
    assert_eq!(user.first_name, None);
    assert_eq!(user.name, None);
    assert_eq!(user.emails, None);
    assert_eq!(user.roles, None);
    assert_eq!(user.organizations, None);
    assert_eq!(user.updated_at.unwrap().to_string(), "2023-05-19T06:52:56Z");
}

#[test]
fn on_user_delete_is_deleted_even_without_the_forgotten_flag() {
    let body = json!({"event": "onUserDelete", "data": {"user": {"id": 5, "active": true}}});
    let event = one_event(body.to_string().as_bytes());
    assert_eq!(event.user.status, Some(UserStatus::Deleted));
}

#[test]
fn remote_data_is_the_user_object_as_received() {
    let sample: Value = serde_json::from_slice(SAMPLE_CREATE).unwrap();
    let event = one_event(SAMPLE_CREATE);
    assert_eq!(
        event
            .user
            .remote_data
            .as_ref()
            .map(rollcall_core::RemoteData::to_value)
            .as_ref(),
        Some(&sample["data"]["user"])
    );
}

#[test]
fn the_payload_timestamp_is_when_it_occurred_and_user_times_are_utc() {
    let event = one_event(SAMPLE_CREATE);
    let occurred_at = event.vendor_event.occurred_at.unwrap();
    assert_eq!(occurred_at.to_string(), "2023-05-18T11:06:00.307151Z");
    assert_eq!(event.vendor_event.event_type, "onUserCreate");
    assert_eq!(event.vendor_event.id, None);
    assert_eq!(
        event.user.created_at.unwrap().to_string(),
        "2023-05-18T11:06:00Z"
    );
}

#[test]
fn the_actor_is_who_freshservice_says_made_the_change() {
    let actor = one_event(SAMPLE_CREATE).actor.unwrap();
    assert_eq!(actor.id.as_deref(), Some("14"));
    assert_eq!(actor.name.as_deref(), Some("Raja H"));
}

#[test]
fn roles_are_freshservice_role_names_and_the_license_type() {
    let user = one_event(SAMPLE_UPDATE).user;
    let roles: Vec<_> = user
        .roles
        .unwrap()
        .into_iter()
        .map(|role| (role.id, role.name.unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            (Some("29".to_owned()), "SD Supervisor".to_owned()),
            (Some("30".to_owned()), "SD Agent".to_owned()),
            (None, "it_agent".to_owned()),
        ]
    );
}

#[test]
fn observer_groups_are_listed_with_member_groups() {
    let groups = one_event(SAMPLE_CREATE).user.groups.unwrap();
    let names: Vec<_> = groups.iter().filter_map(|g| g.name.as_deref()).collect();
    assert_eq!(names, ["Change Team", "Database Team"]);
}

#[test]
fn account_id_may_be_a_number() {
    let event = one_event(include_bytes!(
        "../fixtures/onUserCreate.account_id_number.json"
    ));
    assert_eq!(event.user.id, "501");
}

#[test]
fn an_unknown_event_is_unsupported_whatever_its_data() {
    let error = normalize(br#"{"event": "onTicketCreate", "data": 5}"#).unwrap_err();
    assert_eq!(error.code(), ErrorCode::EventUnsupported);
    assert_eq!(error, NormalizeError::unsupported("onTicketCreate"));
}

#[test]
fn a_missing_user_id_names_its_path() {
    let error =
        normalize(br#"{"event": "onUserCreate", "data": {"user": {"id": null}}}"#).unwrap_err();
    assert_eq!(error.code(), ErrorCode::PayloadInvalid);
    assert_eq!(error.path(), Some("data.user.id"));
}
