//! What Okta sends: an event hook delivery carrying System Log events.
//!
//! ```json
//! {"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
//!  "contentType": "application/json", "eventId": "b5a188b9-...", "eventTime": "2019-03-27T16:59:53.032Z",
//!  "source": "https://{yourOktaDomain}/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3",
//!  "data": {"events": [ <LogEvent>, ... ]}}
//! ```
//!
//! The envelope is a CloudEvents 0.1 document whose `eventId` identifies the delivery. Okta
//! puts events that happen close together into one delivery: `data.events` holds one or
//! more System Log `LogEvent` objects, each with its own `uuid`, `published` time,
//! `eventType`, `actor`, `outcome` and `target[]` (the objects acted on; the user of a user
//! lifecycle event is the target whose `type` is `User`).
//!
//! The envelope is read by hand ([`events`]) so that every error names its path; each event
//! is then read into [`LogEvent`], and its user target into [`LogTarget`].

use rollcall_core::{de, Delivery, NormalizeError, Timestamp};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The envelope's `eventType` on every event hook delivery.
pub const EVENT_HOOK_TYPE: &str = "com.okta.event_hook";

/// A target's `type` for an Okta user.
pub const USER_TARGET_TYPE: &str = "User";

/// The outcome of an event that happened.
pub const SUCCESS: &str = "SUCCESS";

/// The delivery's `data.events`, after checking the envelope: a JSON object, whose
/// `eventType` (when sent) is [`EVENT_HOOK_TYPE`], with a non-empty `data.events` list.
pub fn events(body: &Value) -> Result<&[Value], NormalizeError> {
    let Value::Object(envelope) = body else {
        return Err(NormalizeError::invalid(".", "expected a JSON object"));
    };
    match envelope.get("eventType") {
        None | Some(Value::Null) => {}
        Some(Value::String(hook_type)) if hook_type == EVENT_HOOK_TYPE => {}
        // Another Okta hook (an inline hook's request) posted to this endpoint.
        Some(Value::String(hook_type)) => return Err(NormalizeError::unsupported(hook_type)),
        Some(_) => return Err(NormalizeError::invalid("eventType", "expected a string")),
    }
    let data = match envelope.get("data") {
        Some(Value::Object(data)) => data,
        None | Some(Value::Null) => return Err(NormalizeError::invalid("data", "missing")),
        Some(_) => return Err(NormalizeError::invalid("data", "expected an object")),
    };
    match data.get("events") {
        Some(Value::Array(events)) if !events.is_empty() => Ok(events),
        Some(Value::Array(_)) => Err(NormalizeError::invalid("data.events", "is empty")),
        None | Some(Value::Null) => Err(NormalizeError::invalid("data.events", "missing")),
        Some(_) => Err(NormalizeError::invalid("data.events", "expected a list")),
    }
}

/// An event's `eventType`: what decides whether rollcall reads the rest of it.
pub fn event_type(event: &Value) -> Result<&str, NormalizeError> {
    let Value::Object(event) = event else {
        return Err(NormalizeError::invalid(".", "expected an event object"));
    };
    match event.get("eventType") {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(Value::String(_)) => Err(NormalizeError::invalid("eventType", "is empty")),
        None | Some(Value::Null) => Err(NormalizeError::invalid("eventType", "missing")),
        Some(_) => Err(NormalizeError::invalid("eventType", "expected a string")),
    }
}

/// The `uuid` of every event in the delivery, in order; `None` unless the body is an event
/// hook delivery whose every event has one.
pub fn event_uuids(delivery: &Delivery) -> Option<Vec<String>> {
    events(delivery.json().ok()??)
        .ok()?
        .iter()
        .map(|event| match event.get("uuid") {
            Some(Value::String(uuid)) if !uuid.trim().is_empty() => Some(uuid.clone()),
            _ => None,
        })
        .collect()
}

/// One System Log event, the fields rollcall reads. The rest (`client`, `request`,
/// `debugContext`, `transaction`, ...) describes the request that caused it, not the user.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    pub event_type: String,
    /// The event's unique id: the same in the System Log and in every delivery of it.
    #[serde(default, deserialize_with = "opt_id_text")]
    pub uuid: Option<String>,
    /// When the event happened: RFC 3339, in UTC.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub published: Option<String>,
    /// Who did it: an admin, the user, an app or Okta itself.
    #[serde(default)]
    pub actor: Option<LogActor>,
    /// Whether it happened: `SUCCESS`, `FAILURE`, ...
    #[serde(default)]
    pub outcome: Option<LogOutcome>,
    /// What it was done to, as sent: the user is the entry with `type` = `User`.
    #[serde(default)]
    pub target: Option<Vec<Value>>,
}

/// `actor`: the entity that performed the action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogActor {
    #[serde(default, deserialize_with = "opt_id_text")]
    pub id: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "de::opt_text")]
    pub actor_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub alternate_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub display_name: Option<String>,
}

/// `outcome`: the event's result and, on failure, why.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogOutcome {
    #[serde(default, deserialize_with = "de::opt_text")]
    pub result: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub reason: Option<String>,
}

impl LogOutcome {
    /// Whether the action happened: `result` is `SUCCESS`, or not given.
    pub fn succeeded(&self) -> bool {
        self.result
            .as_deref()
            .is_none_or(|result| result.eq_ignore_ascii_case(SUCCESS))
    }
}

/// A `target[]` entry of type `User`: the user an event is about.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogTarget {
    /// The Okta user id (`00u...`).
    #[serde(default, deserialize_with = "opt_id_text")]
    pub id: Option<String>,
    /// The user's Okta login (usually, not always, an email address).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub alternate_id: Option<String>,
    /// The user's display name (first and last name).
    #[serde(default, deserialize_with = "de::opt_text")]
    pub display_name: Option<String>,
}

/// The position and raw value of the first `target[]` entry whose `type` is `User`.
pub fn user_target(targets: &[Value]) -> Option<(usize, &Value)> {
    target_of_type(targets, USER_TARGET_TYPE)
}

/// The `type` of the group target of `group.user_membership.*` events.
pub const GROUP_TARGET_TYPE: &str = "UserGroup";

/// The position and raw value of the first `target[]` entry of type `wanted`.
pub fn target_of_type<'a>(targets: &'a [Value], wanted: &str) -> Option<(usize, &'a Value)> {
    targets.iter().enumerate().find(|(_, target)| {
        target
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|target_type| target_type == wanted)
    })
}

/// Reads `published`: RFC 3339 with any offset.
pub fn read_published(published: Option<&str>) -> Result<Option<Timestamp>, String> {
    published
        .map(|text| Timestamp::parse_rfc3339(text).map_err(|error| error.to_string()))
        .transpose()
}

/// An id that may arrive as a string or a number. `null`, absent, `""` and all-whitespace
/// strings are `None`.
pub fn opt_id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(de::opt_id(deserializer)?.filter(|text| !text.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_must_hold_a_non_empty_event_list() {
        let path = |body: Value| events(&body).unwrap_err().path().map(str::to_owned);
        assert_eq!(path(json!([])), Some(".".into()));
        assert_eq!(path(json!({})), Some("data".into()));
        assert_eq!(path(json!({"data": []})), Some("data".into()));
        assert_eq!(path(json!({"data": {}})), Some("data.events".into()));
        assert_eq!(
            path(json!({"data": {"events": {}}})),
            Some("data.events".into())
        );
        assert_eq!(
            path(json!({"data": {"events": []}})),
            Some("data.events".into())
        );
        assert_eq!(
            path(json!({"eventType": 1, "data": {"events": [{}]}})),
            Some("eventType".into())
        );
        assert_eq!(events(&json!({"data": {"events": [{}]}})).unwrap().len(), 1);
    }

    #[test]
    fn another_okta_hook_type_is_unsupported() {
        let body = json!({"eventType": "com.okta.import.transform", "data": {"events": [{}]}});
        let error = events(&body).unwrap_err();
        assert_eq!(error.code(), rollcall_core::ErrorCode::EventUnsupported);
    }

    #[test]
    fn uuids_are_read_only_when_every_event_has_one() {
        let delivery = |body: &[u8]| Delivery::new("okta", body.to_vec(), Timestamp::now());
        let uuids = |body: Value| event_uuids(&delivery(&serde_json::to_vec(&body).unwrap()));
        assert_eq!(
            uuids(json!({"data": {"events": [{"uuid": "a"}, {"uuid": "b"}]}})),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            uuids(json!({"data": {"events": [{"uuid": "a"}, {}]}})),
            None
        );
        assert_eq!(uuids(json!({"data": {"events": [{"uuid": " "}]}})), None);
        assert_eq!(uuids(json!({"data": {"events": [{"uuid": 7}]}})), None);
        assert_eq!(event_uuids(&delivery(b"not json")), None);
    }

    #[test]
    fn a_missing_outcome_or_result_counts_as_success() {
        assert!(LogOutcome::default().succeeded());
        let outcome = |result: &str| LogOutcome {
            result: Some(result.to_owned()),
            reason: None,
        };
        assert!(outcome("SUCCESS").succeeded());
        assert!(!outcome("FAILURE").succeeded());
        assert!(!outcome("SKIPPED").succeeded());
    }

    #[test]
    fn the_user_target_is_found_by_type_wherever_it_is() {
        let targets = vec![
            json!({"type": "AppInstance", "id": "0oa1"}),
            json!(null),
            json!({"type": "User", "id": "00u1"}),
            json!({"type": "User", "id": "00u2"}),
        ];
        let (index, target) = user_target(&targets).unwrap();
        assert_eq!((index, &target["id"]), (2, &json!("00u1")));
        assert!(user_target(&targets[..2]).is_none());
    }
}
