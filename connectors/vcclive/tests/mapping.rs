//! The mapping rules that matter most, stated as specifications.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_vcclive::payload::UserRequest;
use rollcall_core::{EventType, UserEvent, UserStatus};
use serde_json::{json, Value};

const PASSWORD: &str = "Hunter2-Correct-Horse";

fn normalize(body: &[u8]) -> Vec<UserEvent> {
    let connector = rollcall_testkit::offline_connector("vcclive");
    connector
        .normalize(&rollcall_testkit::delivery("vcclive", body))
        .unwrap()
}

fn only(events: Vec<UserEvent>) -> UserEvent {
    assert_eq!(events.len(), 1);
    events.into_iter().next().unwrap()
}

fn fields(event: &UserEvent) -> Vec<&str> {
    event
        .changes
        .as_ref()
        .expect("a User Changed event lists its changes")
        .iter()
        .map(|change| change.field.as_str())
        .collect()
}

#[test]
fn vcc_user_created_has_a_null_old_and_becomes_user_created() {
    let event = only(normalize(include_bytes!("../fixtures/user_created.json")));
    assert_eq!(event.event_type, EventType::Created);
    assert_eq!(event.vendor_event.event_type, "User Created");
    assert_eq!(event.user.id, "180");
    assert_eq!(event.previous, None);
    assert_eq!(event.changes, None);
    // The request timestamp is VCC Live's "time of user creation".
    let occurred = event.vendor_event.occurred_at.unwrap().to_string();
    assert_eq!(occurred, "2017-06-06T08:53:43Z");
    assert_eq!(
        event.user.created_at.map(|at| at.to_string()),
        Some(occurred)
    );
}

#[test]
fn vcc_user_changed_reports_only_the_fields_that_changed() {
    // The seed's sample changes only `redistribution`, which is no unified field.
    let event = only(normalize(include_bytes!("../fixtures/user_changed.json")));
    assert_eq!(event.event_type, EventType::Updated);
    assert_eq!(event.vendor_event.event_type, "User Changed");
    assert!(fields(&event).is_empty());
    let previous = event.previous.as_ref().unwrap();
    assert_eq!(
        previous.remote_data.as_ref().unwrap().to_value()["redistribution"],
        0
    );
    assert_eq!(
        event.user.remote_data.as_ref().unwrap().to_value()["redistribution"],
        1
    );
    assert_eq!(event.user.created_at, None);

    let event = only(normalize(include_bytes!(
        "../fixtures/user_changed_name_email_and_phones.json"
    )));
    assert_eq!(
        fields(&event),
        ["name", "emails", "phones", "roles", "groups"]
    );
    let changes = event.changes.as_ref().unwrap();
    assert_eq!(changes[0].from, json!("Rachel Smith"));
    assert_eq!(changes[0].to, json!("Rachel Jones"));
}

#[test]
fn vcc_state_inactive_is_a_deactivation() {
    let event = only(normalize(include_bytes!(
        "../fixtures/user_changed_deactivated.json"
    )));
    assert_eq!(fields(&event), ["status"]);
    assert_eq!(event.user.status, Some(UserStatus::Inactive));
    assert_eq!(
        event.previous.as_ref().unwrap().status,
        Some(UserStatus::Active)
    );
}

#[test]
fn the_password_appears_nowhere_in_the_events() {
    let body = include_bytes!("../fixtures/user_changed_with_new_password.json");
    assert!(String::from_utf8_lossy(body).contains(PASSWORD));
    let event = only(normalize(body));
    let serialized = serde_json::to_string(&event).unwrap();
    assert!(!serialized.contains(PASSWORD), "{serialized}");
    assert!(!format!("{event:?}").contains(PASSWORD));
    let remote = event.user.remote_data.as_ref().unwrap().to_value();
    assert_eq!(remote.get("password"), None);
    assert_eq!(remote["username"], "tkovacs");
    // A new password alone changes no unified field.
    assert!(fields(&event).is_empty());
}

#[test]
fn the_password_is_dropped_from_old_and_new_whatever_its_case() {
    let body = json!({
        "old": {"userId": 1, "password": PASSWORD, "PASSWORD": PASSWORD},
        "new": {"userId": 1, "Password": PASSWORD, "state": "active"},
        "timestamp": "2024-03-08T10:00:00+00:00"
    });
    let event = only(normalize(&serde_json::to_vec(&body).unwrap()));
    assert!(!serde_json::to_string(&event).unwrap().contains(PASSWORD));
    assert_eq!(
        event.user.remote_data,
        Some(json!({"userId": 1, "state": "active"}).into())
    );
    assert_eq!(
        event.previous.unwrap().remote_data,
        Some(json!({"userId": 1}).into())
    );
}

#[test]
fn debug_of_the_payload_types_never_shows_the_password() {
    let request = UserRequest::parse(include_bytes!(
        "../fixtures/user_changed_with_new_password.json"
    ))
    .unwrap();
    let debug = format!("{request:?}");
    assert!(debug.contains("tkovacs"), "{debug}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(!format!("{:?}", request.new).contains(PASSWORD));
}

#[test]
fn errors_about_a_request_with_a_password_never_quote_it() {
    let body = json!({
        "old": null,
        "new": {"userId": 1, "password": PASSWORD, "name": ["not", "a", "string"]},
    });
    let connector = rollcall_testkit::offline_connector("vcclive");
    let delivery = rollcall_testkit::delivery("vcclive", serde_json::to_vec(&body).unwrap());
    let error = connector.normalize(&delivery).unwrap_err();
    assert_eq!(error.path(), Some("new.name"));
    assert!(!error.to_string().contains(PASSWORD), "{error}");
}

#[test]
fn ids_are_strings_whether_vcc_sends_numbers_or_strings() {
    let numbers = only(normalize(
        br#"{"new": {"userId": 180, "privGroup": 4, "isAgent": true}}"#,
    ));
    let strings = only(normalize(
        br#"{"new": {"userId": "180", "privGroup": "4", "isAgent": true}}"#,
    ));
    let lower = only(normalize(
        br#"{"new": {"userid": 180, "privGroup": 4, "isAgent": true}}"#,
    ));
    for event in [&numbers, &strings, &lower] {
        assert_eq!(event.user.id, "180");
        let groups = serde_json::to_value(&event.user.groups).unwrap();
        assert_eq!(groups, json!([{"id": "4"}]));
        let roles = serde_json::to_value(&event.user.roles).unwrap();
        assert_eq!(roles, json!([{"name": "agent", "group": "4"}]));
    }
}

#[test]
fn empty_strings_and_nulls_are_not_set() {
    let event = only(normalize(
        br#"{"new": {"userId": 9, "name": "", "email": " ", "username": null,
             "extension": "", "contactPhone": "", "outboundPhone": null, "mobilePhone": "",
             "state": "", "privGroup": "", "isAgent": null}}"#,
    ));
    let user = serde_json::to_value(&event.user).unwrap();
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "remote_data"]);
}

#[test]
fn each_phone_keeps_the_vcc_field_it_came_from_as_its_type() {
    let event = only(normalize(
        br#"{"new": {"userId": 9, "extension": 189, "contactPhone": "3618888888",
             "outboundPhone": "3617777777", "mobilePhone": "36709876543"}}"#,
    ));
    let phones = serde_json::to_value(&event.user.phones).unwrap();
    assert_eq!(
        phones,
        json!([
            {"number": "3618888888", "type": "contact"},
            {"number": "3617777777", "extension": "189", "type": "outbound"},
            {"number": "36709876543", "type": "mobile"}
        ])
    );
}

#[test]
fn the_extension_is_never_a_phone_number_of_its_own() {
    // An admin or supervisor: a contact phone, no outbound phone.
    let event = only(normalize(
        br#"{"new": {"userId": 9, "extension": "201", "contactPhone": "3618888888"}}"#,
    ));
    let phones = serde_json::to_value(&event.user.phones).unwrap();
    assert_eq!(
        phones,
        json!([{"number": "3618888888", "extension": "201", "type": "contact"}])
    );
    // No number to put it beside: no phone at all, the extension stays in remote_data.
    let event = only(normalize(br#"{"new": {"userId": 9, "extension": "201"}}"#));
    assert_eq!(event.user.phones, None);
    assert_eq!(
        event.user.remote_data.unwrap().to_value()["extension"],
        "201"
    );
}

#[test]
fn a_user_that_is_not_an_agent_is_an_admin_or_supervisor() {
    let event = only(normalize(br#"{"new": {"userId": 9, "isAgent": false}}"#));
    let roles: Value = serde_json::to_value(&event.user.roles).unwrap();
    assert_eq!(roles, json!([{"name": "admin_or_supervisor"}]));
    let event = only(normalize(br#"{"new": {"userId": 9, "isAgent": 1}}"#));
    assert_eq!(event.user.roles.unwrap()[0].name.as_deref(), Some("agent"));
}

#[test]
fn the_full_name_is_never_split_into_first_and_last_names() {
    let event = only(normalize(include_bytes!("../fixtures/user_created.json")));
    assert_eq!(event.user.name.as_deref(), Some("Rachel Smith"));
    assert_eq!(event.user.first_name, None);
    assert_eq!(event.user.last_name, None);
}
