//! The unified user model and the event envelope.
//!
//! [`User`] is the Users object of the unified user-directory API, field for field: same
//! names, same shapes. Every field but `id` is optional and absent stays absent: a connector
//! never invents a value its vendor did not send. Ids are strings everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::Timestamp;

/// A user as rollcall knows it, in the unified shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The vendor's identifier of the user.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<Email>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<Phone>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<UserStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizations: Option<Vec<Organization>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// An IANA time zone name when the vendor's value maps to one, else the vendor's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<Url>>,
    /// The vendor's user object as received, minus secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_data: Option<RemoteData>,
}

/// The vendor's object as JSON text.
///
/// Kept as text because rollcall stores and forwards it far more often than it looks
/// inside: a connector that has the vendor's text hands it over as it is (in the vendor's
/// key order), and the store and the sinks write it out as it is. A merge of two versions of
/// a user reads it as a [`Value`] and writes it back in serde_json's sorted key order, as
/// [`RemoteData::from_value`] does; the directory's partial-state checks and the CloudEvents
/// rendering read it too.
///
/// The text is always compact (no whitespace between tokens), so a pretty-printed body still
/// makes one line of a JSON-lines sink. Two `RemoteData` are equal when they hold the same
/// JSON value, whatever the key order. Text that serde_json can skip but not read as a
/// `Value` (a number beyond `f64`, a lone surrogate, nesting deeper than 128) reads as
/// `null`: connectors hand over text the host has checked, or a `Value`.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RemoteData(Box<serde_json::value::RawValue>);

impl RemoteData {
    /// The JSON text of `value`.
    pub fn from_value(value: &Value) -> Self {
        // Writing a `Value` cannot fail: its keys are strings and its numbers finite.
        Self(serde_json::value::to_raw_value(value).unwrap_or_else(|_| Self::null_text()))
    }

    /// Vendor text that is already known to be one JSON value, compacted if need be.
    pub fn from_raw(raw: Box<serde_json::value::RawValue>) -> Self {
        match compact_json(raw.get()) {
            None => Self(raw),
            Some(compact) => Self(
                serde_json::value::RawValue::from_string(compact)
                    .unwrap_or_else(|_| Self::null_text()),
            ),
        }
    }

    /// Checks that `text` is one JSON value and keeps it, compacted if need be.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Self::from_raw)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The text read as a value.
    pub fn to_value(&self) -> Value {
        // The text is one JSON value (checked when it was made), so this read succeeds.
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }

    fn null_text() -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::NULL.to_owned()
    }
}

impl<'de> Deserialize<'de> for RemoteData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(deserializer).map(Self::from_raw)
    }
}

/// `text` (valid JSON) without the whitespace between its tokens, or `None` when it has
/// none. Whitespace bytes outside strings are the only ones dropped: inside a string, JSON
/// escapes every control character, and spaces are kept.
fn compact_json(text: &str) -> Option<String> {
    let is_space = |byte: u8| matches!(byte, b' ' | b'\n' | b'\r' | b'\t');
    let bytes = text.as_bytes();
    // Started at the first whitespace byte: most vendor text has none and is kept as it is.
    let mut compact: Option<Vec<u8>> = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'"' {
            // A string, kept whole: jump to its closing quote past any escapes.
            let mut end = at + 1;
            while let Some(offset) = bytes
                .get(end..)
                .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
            {
                end += offset;
                if bytes[end] == b'"' {
                    break;
                }
                end += 2;
            }
            let end = (end + 1).min(bytes.len());
            if let Some(out) = &mut compact {
                out.extend_from_slice(&bytes[at..end]);
            }
            at = end;
            continue;
        }
        match (&mut compact, is_space(byte)) {
            (Some(out), false) => out.push(byte),
            (None, true) => {
                let mut out = Vec::with_capacity(bytes.len());
                out.extend_from_slice(&bytes[..at]);
                compact = Some(out);
            }
            _ => {}
        }
        at += 1;
    }
    // Only ASCII whitespace was dropped, between tokens: the rest is the same UTF-8.
    compact.and_then(|out| String::from_utf8(out).ok())
}

impl From<Value> for RemoteData {
    fn from(value: Value) -> Self {
        Self::from_value(&value)
    }
}

impl PartialEq for RemoteData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl fmt::Debug for RemoteData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl User {
    /// A user with only an id.
    pub fn with_id(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub email: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub email_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_primary: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub phone_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The group this role applies in, when roles are per group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The organization this role applies in, when roles are per organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The workspace this role applies in, when roles are per workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The id of the organization the workspace belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The id of the organization the group belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    pub url: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub url_type: Option<String>,
}

/// `active | inactive | deleted | invited`, or the vendor's raw value when nothing maps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserStatus {
    Active,
    Inactive,
    Deleted,
    Invited,
    /// A vendor value with no clear mapping, passed through as sent.
    Other(String),
}

impl UserStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Deleted => "deleted",
            Self::Invited => "invited",
            Self::Other(raw) => raw,
        }
    }

    /// The unified status for a vendor string, case-insensitively; unknown values pass through.
    pub fn from_vendor(raw: &str) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "deleted" => Self::Deleted,
            "invited" => Self::Invited,
            _ => Self::Other(raw.to_owned()),
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for UserStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UserStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|raw| Self::from_vendor(&raw))
    }
}

/// What happened to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "user.created")]
    Created,
    #[serde(rename = "user.updated")]
    Updated,
    #[serde(rename = "user.deleted")]
    Deleted,
}

impl EventType {
    pub const ALL: [EventType; 3] = [Self::Created, Self::Updated, Self::Deleted];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "user.created",
            Self::Updated => "user.updated",
            Self::Deleted => "user.deleted",
        }
    }

    /// The type named `name` (`user.created`, ...), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|event_type| event_type.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The vendor's own name for what happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VendorEvent {
    /// The vendor's event or delivery id, when it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The vendor's event type, as sent (`zen:event-type:user.created`, `onUserUpdate`...).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the vendor says it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
}

/// Who made the change, when the vendor says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One unified field that changed. `field` is a unified field path (`status`, `emails`,
/// `workspace.name`); `from`/`to` are its JSON values, `null` when absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// The envelope every sink receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEvent {
    /// rollcall's ULID for the event, stable across redeliveries.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The configured source the delivery arrived on.
    pub source: String,
    /// The connector that normalized it.
    pub connector: String,
    pub vendor_event: VendorEvent,
    pub received_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The best-known full state of the user after the event.
    pub user: User,
    /// The user before the event, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<User>,
    /// The unified fields that changed, when known. Absent means "not known", an empty list
    /// means "the vendor reported a change that touches no unified field".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<FieldChange>>,
    /// True when `user` holds only part of the vendor's state (a delta with no full object).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// [`UserEvent`]'s JSON layout with `user` already encoded: see [`UserEvent::to_vec_with_user`].
/// The fields and their attributes are `UserEvent`'s; a test holds the two to the same bytes.
#[derive(Serialize)]
struct EventWithEncodedUser<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: EventType,
    source: &'a str,
    connector: &'a str,
    vendor_event: &'a VendorEvent,
    received_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Actor>,
    user: &'a serde_json::value::RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a [FieldChange]>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
}

impl UserEvent {
    /// The event as JSON, as `serde_json::to_vec(self)` writes it, with `user` given already
    /// encoded (`serde_json::value::to_raw_value(&self.user)`): a store that writes the user
    /// on its own as well encodes it once, not twice. `user` is written as given; it must be
    /// this event's user.
    pub fn to_vec_with_user(
        &self,
        user: &serde_json::value::RawValue,
    ) -> serde_json::Result<Vec<u8>> {
        // Every field named, none skipped with `..`: a field added to `UserEvent` does not
        // compile here until it is written here too.
        let UserEvent {
            id,
            event_type,
            source,
            connector,
            vendor_event,
            received_at,
            actor,
            user: _,
            previous,
            changes,
            partial,
        } = self;
        serde_json::to_vec(&EventWithEncodedUser {
            id,
            event_type: *event_type,
            source,
            connector,
            vendor_event,
            received_at: *received_at,
            actor: actor.as_ref(),
            user,
            previous: previous.as_ref(),
            changes: changes.as_deref(),
            partial: *partial,
        })
    }

    /// The event as a CloudEvents 1.0 structured-mode JSON document.
    ///
    /// `type` is `dev.rollcall.<type>`, `source` is `/sources/<source>`, `subject` is the
    /// user id, `time` the receive time, and `data` the whole envelope.
    pub fn to_cloudevent(&self) -> Value {
        let mut document = serde_json::Map::new();
        document.insert("specversion".into(), Value::from("1.0"));
        document.insert("id".into(), Value::from(self.id.as_str()));
        document.insert(
            "type".into(),
            Value::from(format!("dev.rollcall.{}", self.event_type)),
        );
        document.insert(
            "source".into(),
            Value::from(format!("/sources/{}", self.source)),
        );
        document.insert("subject".into(), Value::from(self.user.id.as_str()));
        document.insert("time".into(), Value::from(self.received_at.to_string()));
        document.insert("datacontenttype".into(), Value::from("application/json"));
        document.insert(
            "data".into(),
            serde_json::to_value(self).unwrap_or(Value::Null),
        );
        Value::Object(document)
    }
}

/// The unified fields that differ between `before` and `after`, in model order.
///
/// Fields are compared as values and only differing ones are rendered to JSON; `workspace`
/// is compared key by key (`workspace.name`). `remote_data` is never part of a change list:
/// it is the vendor's raw object, not a unified field (and rendering it would cost more
/// than the rest of the comparison).
pub fn diff_users(before: &User, after: &User) -> Vec<FieldChange> {
    fn json<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap_or(Value::Null)
    }
    let mut changes = Vec::new();
    let mut push = |field: &str, from: Value, to: Value| {
        changes.push(FieldChange {
            field: field.to_owned(),
            from,
            to,
        })
    };
    macro_rules! compare {
        ($($field:ident),*) => {$(
            if before.$field != after.$field {
                push(stringify!($field), json(&before.$field), json(&after.$field));
            }
        )*};
    }
    compare!(
        id,
        first_name,
        last_name,
        title,
        name,
        username,
        emails,
        phones,
        status,
        roles,
        organizations
    );
    if before.workspace != after.workspace {
        match (&before.workspace, &after.workspace) {
            (Some(from), Some(to)) => {
                for (key, from, to) in [
                    ("workspace.id", &from.id, &to.id),
                    ("workspace.name", &from.name, &to.name),
                    (
                        "workspace.organization",
                        &from.organization,
                        &to.organization,
                    ),
                ] {
                    if from != to {
                        push(key, json(from), json(to));
                    }
                }
            }
            (from, to) => push("workspace", json(from), json(to)),
        }
    }
    compare!(groups, avatar, timezone, languages, created_at, updated_at, urls);
    changes
}

/// Unified field names in model order, without `remote_data`: the list every per-field
/// table (connector doc pages, the scaffold's template) is checked against.
pub const USER_FIELDS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "title",
    "name",
    "username",
    "emails",
    "phones",
    "status",
    "roles",
    "organizations",
    "workspace",
    "groups",
    "avatar",
    "timezone",
    "languages",
    "created_at",
    "updated_at",
    "urls",
];

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Vendor text kept as `remote_data` is the compact text serde_json writes for the
        /// same value, whether it came pretty-printed or compact, so a JSON-lines sink gets
        /// one line per event; and it reads back as that value.
        #[test]
        fn remote_data_text_is_compact_and_reads_back_as_its_value(
            value in crate::json::tests::json_value()
        ) {
            let compact = serde_json::to_string(&value).unwrap();
            // serde_json's own read of the text (its float parsing may differ from `value`
            // in the last digit, which is serde_json's, not rollcall's).
            let read: Value = serde_json::from_str(&compact).unwrap();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            // A raw newline is always between tokens (strings escape theirs).
            let crlf = pretty.replace('\n', "\r\n\t ");
            for text in [pretty, crlf, compact.clone()] {
                let kept = RemoteData::from_text(text).unwrap();
                proptest::prop_assert_eq!(kept.get(), compact.as_str());
                proptest::prop_assert_eq!(kept.to_value(), read.clone());
            }
            let written = RemoteData::from_value(&value);
            proptest::prop_assert_eq!(written.get(), compact.as_str());
        }
    }

    #[test]
    fn remote_data_keeps_the_vendors_key_order_and_equals_by_value() {
        let vendor =
            RemoteData::from_text("{ \"b\": 1,\n  \"a\": \"x  y\\n\" }".to_owned()).unwrap();
        assert_eq!(vendor.get(), r#"{"b":1,"a":"x  y\n"}"#);
        assert_eq!(
            vendor,
            RemoteData::from(serde_json::json!({"a": "x  y\n", "b": 1}))
        );
        assert_ne!(
            vendor,
            RemoteData::from(serde_json::json!({"a": "x y\n", "b": 1}))
        );
        // Read from a stored user, pretty or not, it is compact too.
        let user: User =
            serde_json::from_str("{\"id\": \"1\", \"remote_data\": {\n \"k\": [1, 2]\n}}").unwrap();
        assert_eq!(user.remote_data.unwrap().get(), r#"{"k":[1,2]}"#);
        assert!(RemoteData::from_text("{\"a\": }".to_owned()).is_err());
        // Whitespace before a colon or a comma, escaped quotes and slashes, and a backslash
        // ending a string: only the whitespace between tokens goes.
        let vendor = r#"{ "a\"b" : "c\\" , "u" :"\/x y\" z" }"#;
        let kept = RemoteData::from_text(vendor.to_owned()).unwrap();
        assert_eq!(kept.get(), r#"{"a\"b":"c\\","u":"\/x y\" z"}"#);
        assert_eq!(
            kept.to_value(),
            serde_json::from_str::<Value>(vendor).unwrap()
        );
    }

    /// Every event of every connector's golden fixtures (full and partial, with and without
    /// `actor`, `previous` and `changes`) encodes to the same bytes both ways.
    #[test]
    fn an_event_with_its_user_encoded_beforehand_is_the_same_json() {
        let connectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors");
        let mut checked = 0;
        for connector in std::fs::read_dir(connectors).unwrap() {
            let Ok(fixtures) = std::fs::read_dir(connector.unwrap().path().join("fixtures")) else {
                continue;
            };
            for fixture in fixtures {
                let path = fixture.unwrap().path();
                if !path.to_string_lossy().ends_with(".expected.json") {
                    continue;
                }
                let expected: Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let Some(events) = expected.get("events") else {
                    continue;
                };
                let events: Vec<UserEvent> = serde_json::from_value(events.clone()).unwrap();
                for event in events {
                    // Each event as the fixture has it, and with `actor` set or taken away.
                    let mut toggled = event.clone();
                    toggled.actor = match toggled.actor {
                        Some(_) => None,
                        None => Some(Actor {
                            id: Some("a1".into()),
                            name: None,
                        }),
                    };
                    for event in [event, toggled] {
                        let user = serde_json::value::to_raw_value(&event.user).unwrap();
                        assert_eq!(
                            String::from_utf8(event.to_vec_with_user(&user).unwrap()).unwrap(),
                            serde_json::to_string(&event).unwrap(),
                            "{}",
                            path.display()
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 150, "only {checked} fixture events found");
    }

    #[test]
    fn absent_fields_stay_absent_in_json() {
        let json = serde_json::to_value(User::with_id("7")).unwrap();
        assert_eq!(json, serde_json::json!({"id": "7"}));
    }

    #[test]
    fn status_keeps_unmapped_vendor_values() {
        assert_eq!(UserStatus::from_vendor("Active"), UserStatus::Active);
        let raw = UserStatus::from_vendor("pending_review");
        assert_eq!(
            serde_json::to_value(&raw).unwrap(),
            serde_json::json!("pending_review")
        );
    }

    #[test]
    fn diff_lists_only_changed_unified_fields_and_never_remote_data() {
        let before = User {
            status: Some(UserStatus::Active),
            name: Some("Ann".into()),
            remote_data: Some(serde_json::json!({"x": 1}).into()),
            workspace: Some(Workspace {
                id: Some("1".into()),
                name: Some("A".into()),
                organization: None,
            }),
            ..User::with_id("1")
        };
        let after = User {
            status: Some(UserStatus::Inactive),
            remote_data: Some(serde_json::json!({"x": 2}).into()),
            workspace: Some(Workspace {
                id: Some("1".into()),
                name: Some("B".into()),
                organization: None,
            }),
            ..before.clone()
        };
        let changes = diff_users(&before, &after);
        let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["status", "workspace.name"]);
        assert_eq!(changes[0].from, serde_json::json!("active"));
        assert_eq!(changes[0].to, serde_json::json!("inactive"));
    }

    /// A user with every field set, each to a value unlike [`User::with_id`]'s.
    fn every_field_set() -> User {
        serde_json::from_value(serde_json::json!({
            "id": "1", "first_name": "A", "last_name": "B", "title": "T", "name": "A B",
            "username": "ab", "emails": [{"email": "a@b.c"}], "phones": [{"number": "1"}],
            "status": "active", "roles": [{"name": "r"}], "organizations": [{"id": "o"}],
            "workspace": {"id": "w", "name": "W", "organization": "o"}, "groups": [{"id": "g"}],
            "avatar": "https://a", "timezone": "UTC", "languages": ["en"],
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
            "urls": [{"url": "https://u"}], "remote_data": {"x": 1}
        }))
        .unwrap()
    }

    #[test]
    fn user_fields_lists_every_unified_field() {
        let json = serde_json::to_value(every_field_set()).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        let mut expected: Vec<String> = USER_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        expected.push("remote_data".to_owned());
        // serde_json sorts map keys: compare as sets (diff_compares_every_unified_field checks the order).
        let (mut sorted_keys, mut sorted_expected) = (keys, expected);
        sorted_keys.sort();
        sorted_expected.sort();
        assert_eq!(sorted_keys, sorted_expected);
    }

    #[test]
    fn diff_compares_every_unified_field() {
        let full = every_field_set();
        let fields: Vec<String> = diff_users(&User::with_id("1"), &full)
            .into_iter()
            .map(|change| change.field)
            .collect();
        // Every field but the id differs; a workspace that appears is one change.
        let expected: Vec<&str> = USER_FIELDS.iter().copied().filter(|f| *f != "id").collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn diff_reports_a_field_that_appears() {
        let before = User::with_id("1");
        let after = User {
            title: Some("Engineer".into()),
            ..User::with_id("1")
        };
        let changes = diff_users(&before, &after);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].from, Value::Null);
    }
}
