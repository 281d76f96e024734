//! What Zendesk sends, as serde types.
//!
//! Two shapes reach a Zendesk source:
//!
//! * the event-subscription webhook envelope, [`WebhookEvent`]:
//!   `{type, account_id, id, time, zendesk_event_version, subject, detail, event}`, where
//!   `detail` is a cut-down Support user (ids as strings, no name, no phone) and `event` holds
//!   what changed, in a shape that depends on the event type;
//! * a bare Support [`SupportUser`] object (seed 002), as a trigger or automation webhook with a
//!   custom body or an API export sends it, alone or wrapped as `{"user": {...}}`.
//!
//! Quirks handled here: ids arrive as JSON strings or numbers, and `"0"` or `""` mean "none"
//! (`organization_id: "0"`, `default_group_id: "0"`); empty strings mean "not set"; time
//! fields may be `null`. Only the fields rollcall maps are typed: everything else stays in
//! the raw JSON kept for `remote_data`.

use rollcall_core::de::opt_text;
use rollcall_core::{json, Delivery, NormalizeError, RemoteData, Timestamp};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The two forms of a Zendesk event type: the docs write most as `zen:event-type:user.created`
/// and a few as `zen:event-type/user.merged`.
const EVENT_TYPE_PREFIXES: [&str; 2] = ["zen:event-type:", "zen:event-type/"];

/// A parsed request body.
#[derive(Debug)]
pub enum Payload {
    /// An event-subscription webhook.
    Webhook(Box<WebhookEvent>),
    /// A bare Support user object.
    User(Box<BareUser>),
}

/// The webhook envelope.
#[derive(Debug, Deserialize)]
pub struct WebhookEvent {
    /// The event type as sent (`zen:event-type:user.created`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event id (a UUID), stable across Zendesk's retries.
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub id: Option<String>,
    /// When the event happened.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub time: Option<Timestamp>,
    /// `zen:user:<id>`.
    #[serde(default, deserialize_with = "opt_text")]
    pub subject: Option<String>,
    /// The user the event is about (a subset of the Support user).
    #[serde(default)]
    pub detail: Option<SupportUser>,
    /// What changed; its shape depends on the event type.
    #[serde(default)]
    pub event: Value,
    /// `remote_data` as received: `detail` (`{}` when it is not an object), with `event`
    /// under [`REMOTE_EVENT_KEY`] unless `event` is absent or `null`. What `event` alone
    /// carries (tags, custom fields, notes, the other user of a merge) is then not lost,
    /// whatever the event type.
    #[serde(skip)]
    pub remote_data: Option<RemoteData>,
}

/// Key of `remote_data` holding the webhook's raw `event` object.
pub const REMOTE_EVENT_KEY: &str = "event";

impl WebhookEvent {
    /// The event type without its `zen:event-type:` (or `zen:event-type/`) prefix, or `None`
    /// when the type is not a Zendesk event type.
    pub fn short_type(&self) -> Option<&str> {
        let event_type = self.event_type.trim();
        EVENT_TYPE_PREFIXES
            .iter()
            .find_map(|prefix| event_type.strip_prefix(prefix))
    }

    /// The user id from `subject` (`zen:user:6596848315901`), if it names a user.
    pub fn subject_user_id(&self) -> Option<String> {
        let id = self.subject.as_deref()?.trim().strip_prefix("zen:user:")?;
        (!id.is_empty() && id != "0").then(|| id.to_owned())
    }
}

/// A bare Support user object and where in the body it sits.
#[derive(Debug)]
pub struct BareUser {
    pub user: SupportUser,
    /// The user object as received, for `remote_data`.
    pub raw: Value,
    /// The dotted path of the user object in the body: `""` at the top, `"user."` wrapped.
    pub path_prefix: &'static str,
}

/// A Zendesk Support user: the full API object, or the subset a webhook's `detail` carries.
#[derive(Debug, Default, Deserialize)]
pub struct SupportUser {
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub id: Option<String>,
    /// The user's API URL.
    #[serde(default, deserialize_with = "opt_text")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
    /// The primary email address.
    #[serde(default, deserialize_with = "opt_text")]
    pub email: Option<String>,
    /// The primary phone number.
    #[serde(default, deserialize_with = "opt_text")]
    pub phone: Option<String>,
    #[serde(default)]
    pub photo: Option<Photo>,
    /// A locale such as `en-US`.
    #[serde(default, deserialize_with = "opt_text")]
    pub locale: Option<String>,
    /// A Rails time-zone name such as `Eastern Time (US & Canada)`.
    #[serde(default, deserialize_with = "opt_text")]
    pub time_zone: Option<String>,
    /// The IANA name of `time_zone`, when Zendesk sends it.
    #[serde(default, deserialize_with = "opt_text")]
    pub iana_time_zone: Option<String>,
    /// The default organization.
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub organization_id: Option<String>,
    /// `end-user`, `agent` or `admin`.
    #[serde(default, deserialize_with = "opt_text")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub custom_role_id: Option<String>,
    /// `false` once the user is deleted (Zendesk deletes by deactivating).
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub suspended: Option<bool>,
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub default_group_id: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub updated_at: Option<Timestamp>,
}

/// The user's photo, an attachment object.
#[derive(Debug, Default, Deserialize)]
pub struct Photo {
    #[serde(default, deserialize_with = "opt_text")]
    pub content_url: Option<String>,
}

/// `event` of the `*_changed` types whose values are booleans (`active`, `suspended`).
#[derive(Debug, Default, Deserialize)]
pub struct FlagChange {
    #[serde(default)]
    pub current: Option<bool>,
    #[serde(default)]
    pub previous: Option<bool>,
}

/// `event` of the `*_changed` types whose values are strings (`name`, `role`, `time_zone`).
#[derive(Debug, Default, Deserialize)]
pub struct TextChange {
    #[serde(default, deserialize_with = "opt_text")]
    pub current: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub previous: Option<String>,
}

/// `event` of the `*_changed` types whose values are ids (`default_group`).
#[derive(Debug, Default, Deserialize)]
pub struct IdChange {
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub current: Option<String>,
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub previous: Option<String>,
}

/// `event` of the `*_changed` types whose values are not documented precisely enough to type
/// (`custom_role`, `photo`): read with [`Reference::from_value`] or [`photo_url`].
#[derive(Debug, Default, Deserialize)]
pub struct ValueChange {
    #[serde(default)]
    pub current: Value,
    #[serde(default)]
    pub previous: Value,
}

/// `event` of `identity_created` and `identity_deleted`.
#[derive(Debug, Default, Deserialize)]
pub struct IdentityEvent {
    #[serde(default)]
    pub identity: Option<Identity>,
}

/// `event` of `identity_changed`.
#[derive(Debug, Default, Deserialize)]
pub struct IdentityChange {
    #[serde(default)]
    pub current: Option<Identity>,
    #[serde(default)]
    pub previous: Option<Identity>,
}

/// A user identity: an email address, a phone number, a social account...
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Identity {
    /// `email`, `phone_number`, `twitter`, `facebook`, `google`, `agent_forwarding`, `sdk`...
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    pub identity_type: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub value: Option<String>,
    #[serde(default)]
    pub primary: Option<bool>,
}

/// `event` of `group_membership_created` and `group_membership_deleted`.
#[derive(Debug, Default, Deserialize)]
pub struct GroupMembership {
    #[serde(default)]
    pub group: Option<Reference>,
}

/// `event` of `organization_membership_created` and `organization_membership_deleted`.
#[derive(Debug, Default, Deserialize)]
pub struct OrganizationMembership {
    #[serde(default)]
    pub organization: Option<Reference>,
}

/// A group, organization or custom role named by an event.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Reference {
    #[serde(default, deserialize_with = "opt_zendesk_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
}

impl Reference {
    /// Reads a value that is either an id (string or number) or an object `{id, name}`.
    pub fn from_value(value: &Value) -> Option<Self> {
        let reference = match value {
            Value::String(_) | Value::Number(_) => Self {
                id: id_text(value),
                name: None,
            },
            Value::Object(map) => Self {
                id: map.get("id").and_then(id_text),
                name: map
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned),
            },
            _ => return None,
        };
        (reference.id.is_some() || reference.name.is_some()).then_some(reference)
    }
}

/// A photo URL from a value that is either the URL or a photo object with `content_url`.
pub fn photo_url(value: &Value) -> Option<String> {
    let url = match value {
        Value::String(url) => url.as_str(),
        Value::Object(map) => map.get("content_url").and_then(Value::as_str)?,
        _ => return None,
    };
    let url = url.trim();
    (url.starts_with("https://") || url.starts_with("http://")).then(|| url.to_owned())
}

/// Reads a delivery. A well-formed webhook envelope is read from the body's text, with
/// `detail` and `event` kept as their text for `remote_data` (no document is built, and the
/// vendor's text is what is stored and forwarded). Anything else (a bare user, a malformed
/// envelope) is read from the document the host reads once ([`Delivery::json`]), which also
/// words every error.
pub fn parse_delivery(delivery: &Delivery) -> Result<Payload, NormalizeError> {
    // The host's checks (unique keys, no NUL) hold for the text read here as well.
    if delivery.check_json()? == json::BodyCheck::Clean {
        if let Some(event) = webhook_from_text(&delivery.body) {
            return Ok(Payload::Webhook(Box::new(event)));
        }
    }
    from_document(delivery.json_document()?)
}

/// A webhook envelope read from the body's text, or `None` when the body is anything else
/// or anything about it is unusual: the document path then reads it and says what is wrong.
fn webhook_from_text(body: &[u8]) -> Option<WebhookEvent> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "type")]
        event_type: String,
        #[serde(default, deserialize_with = "opt_zendesk_id")]
        id: Option<String>,
        #[serde(default, deserialize_with = "opt_timestamp")]
        time: Option<Timestamp>,
        #[serde(default, deserialize_with = "opt_text")]
        subject: Option<String>,
        #[serde(borrow)]
        detail: &'a RawValue,
        #[serde(default, borrow)]
        event: Option<&'a RawValue>,
    }
    // A struct reads from a JSON array too: only an object is an envelope.
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    let detail_text = envelope.detail.get();
    // Only an object `detail` that does not itself hold the key `event` is spliced (the
    // document path decides which `event` wins). Without escapes the key can only be
    // spelled `"event"` (the text also turns up in a value: then the document path reads
    // it all the same); with escapes (`"\u0065vent"`) the keys are read to be sure.
    if !detail_text.starts_with('{')
        || detail_text.contains("\"event\"")
        || (detail_text.contains('\\') && has_event_key(detail_text))
    {
        return None;
    }
    let detail: SupportUser = serde_json::from_str(detail_text).ok()?;
    let event_text = envelope
        .event
        .map(RawValue::get)
        .filter(|text| *text != "null");
    let event = match event_text {
        Some(text) => serde_json::from_str(text).ok()?,
        None => Value::Null,
    };
    let remote_data = match event_text {
        None => RemoteData::from_raw(envelope.detail.to_owned()),
        Some(event_text) => RemoteData::from_text(with_event_key(detail_text, event_text)).ok()?,
    };
    Some(WebhookEvent {
        event_type: envelope.event_type,
        id: envelope.id,
        time: envelope.time,
        subject: envelope.subject,
        detail: Some(detail),
        event,
        remote_data: Some(remote_data),
    })
}

/// Whether the object `text` has a key `event`, however escaped (unreadable: as if it had).
fn has_event_key(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Keys {
        #[serde(default, deserialize_with = "present")]
        event: bool,
    }
    fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
    }
    serde_json::from_str::<Keys>(text).map_or(true, |keys| keys.event)
}

/// The text of the object `detail` with `"event": <event>` added as its last member.
fn with_event_key(detail: &str, event: &str) -> String {
    let members = detail[1..detail.len() - 1].trim();
    let mut text = String::with_capacity(detail.len() + event.len() + REMOTE_EVENT_KEY.len() + 4);
    text.push('{');
    if !members.is_empty() {
        text.push_str(members);
        text.push(',');
    }
    text.push('"');
    text.push_str(REMOTE_EVENT_KEY);
    text.push_str("\":");
    text.push_str(event);
    text.push('}');
    text
}

/// Reads a body: a webhook envelope (an object with `type`), a wrapped user
/// (`{"user": {...}}`) or a bare user object.
pub fn parse(body: &[u8]) -> Result<Payload, NormalizeError> {
    let document: Value = json::from_slice(body)?;
    from_document(&document)
}

fn from_document(document: &Value) -> Result<Payload, NormalizeError> {
    let Value::Object(map) = document else {
        return Err(NormalizeError::invalid(".", "expected a JSON object"));
    };
    if map.contains_key("type") {
        let mut event: WebhookEvent = json::from_value(document)?;
        let mut remote = match map.get("detail") {
            Some(Value::Object(detail)) => detail.clone(),
            _ => Map::new(),
        };
        if !event.event.is_null() {
            remote.insert(REMOTE_EVENT_KEY.to_owned(), event.event.clone());
        }
        event.remote_data = Some(RemoteData::from(Value::Object(remote)));
        return Ok(Payload::Webhook(Box::new(event)));
    }
    let (raw, path_prefix) = match map.get("user") {
        Some(inner @ Value::Object(_)) => (inner, "user."),
        Some(_) if !map.contains_key("id") => {
            return Err(NormalizeError::invalid("user", "expected a user object"))
        }
        _ => (document, ""),
    };
    let user: SupportUser = json::from_value(raw).map_err(|error| match path_prefix {
        "" => error,
        prefix => error.within(prefix.trim_end_matches('.')),
    })?;
    Ok(Payload::User(Box::new(BareUser {
        user,
        raw: raw.clone(),
        path_prefix,
    })))
}

/// Reads the `event` object of a webhook as `T`; an absent or `null` event reads as `{}`.
pub fn parse_event<T: serde::de::DeserializeOwned>(event: &Value) -> Result<T, NormalizeError> {
    let empty = Value::Object(Map::new());
    let event = if event.is_null() { &empty } else { event };
    json::from_value(event).map_err(|error| error.within("event"))
}

/// A Zendesk id from a string or a number; `"0"`, `""` and `null` are `None`.
pub fn opt_zendesk_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(rollcall_core::de::opt_id(deserializer)?.and_then(|id| meaningful_id(&id)))
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => meaningful_id(text),
        Value::Number(number) if number.is_u64() || number.is_i64() => {
            meaningful_id(&number.to_string())
        }
        _ => None,
    }
}

fn meaningful_id(id: &str) -> Option<String> {
    let id = id.trim();
    (!id.is_empty() && id != "0").then(|| id.to_owned())
}

/// A timestamp that may be `null` or `""` (both `None`), RFC 3339 or epoch seconds.
pub fn opt_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Timestamp>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(value) => Timestamp::from_json(&value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a webhook read says, comparable across the two ways of reading it.
    fn summary(event: &WebhookEvent) -> String {
        format!(
            "{} {:?} {:?} {:?} {:?} {} {}",
            event.event_type,
            event.id,
            event.time,
            event.subject,
            event.detail,
            event.event,
            event
                .remote_data
                .as_ref()
                .map_or(Value::Null, RemoteData::to_value),
        )
    }

    #[test]
    fn a_webhook_read_from_its_text_is_the_webhook_read_from_the_document() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut from_text = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.display().to_string();
            if !name.ends_with(".json") || name.ends_with(".expected.json") {
                continue;
            }
            let pretty = std::fs::read(&path).unwrap();
            let Ok(document) = serde_json::from_slice::<Value>(&pretty) else {
                assert!(webhook_from_text(&pretty).is_none(), "{name}");
                continue;
            };
            // As the file has it (pretty-printed) and as a vendor that sends compact JSON.
            for body in [pretty.clone(), serde_json::to_vec(&document).unwrap()] {
                let Some(text) = webhook_from_text(&body) else {
                    continue;
                };
                from_text += 1;
                let Ok(Payload::Webhook(tree)) = from_document(&document) else {
                    panic!("{name}: read from its text, but not a webhook as a document");
                };
                assert_eq!(summary(&text), summary(&tree), "{name}");
                // The kept text is compact whatever the body's layout.
                let remote = text.remote_data.as_ref().unwrap().get().to_owned();
                assert!(
                    !remote.contains('\n') && !remote.contains(": "),
                    "{name}: {remote}"
                );
            }
        }
        assert!(
            from_text >= 40,
            "only {from_text} fixture bodies took the text path"
        );
    }

    #[test]
    fn an_unusual_detail_or_event_is_left_to_the_document() {
        let envelope = |detail: &str, event: &str| {
            format!(
                r#"{{"type": "zen:event-type:user.created", "detail": {detail}, "event": {event}}}"#
            )
        };
        // `detail` naming a key `event` of its own: the document path decides which wins.
        let body = envelope(r#"{"id": "1", "event": 5}"#, "{}");
        assert!(webhook_from_text(body.as_bytes()).is_none());
        // The same key spelled with an escape, even with a null value: never two `event`s.
        for value in ["5", "null"] {
            let detail = format!(r#"{{"id": "1", "\u0065vent": {value}}}"#);
            assert!(webhook_from_text(envelope(&detail, "{}").as_bytes()).is_none());
        }
        // Other escapes in `detail` are fine.
        let read =
            webhook_from_text(envelope(r#"{"id": "1", "n\u0061me": "A\/B"}"#, "{}").as_bytes());
        assert!(read.is_some());
        let body = envelope(r#""not an object""#, "{}");
        assert!(webhook_from_text(body.as_bytes()).is_none());
        // An array in the envelope's field order is not an envelope.
        let body = r#"["zen:event-type:user.created", null, null, null, {"id": "1"}, {}]"#;
        assert!(webhook_from_text(body.as_bytes()).is_none());
        // A null or absent `event` is not kept; an empty `detail` still gets it.
        let read = webhook_from_text(envelope(r#"{"id": "1"}"#, "null").as_bytes()).unwrap();
        assert_eq!(
            read.remote_data.unwrap().get(),
            r#"{"id": "1"}"#.replace(' ', "")
        );
        let read = webhook_from_text(envelope("{ }", r#"{"a": [1, 2]}"#).as_bytes()).unwrap();
        assert_eq!(read.remote_data.unwrap().get(), r#"{"event":{"a":[1,2]}}"#);
    }

    #[test]
    fn zero_and_empty_ids_mean_none() {
        let user: SupportUser = serde_json::from_str(
            r#"{"id": 7, "organization_id": "0", "default_group_id": "", "custom_role_id": null}"#,
        )
        .unwrap();
        assert_eq!(user.id.as_deref(), Some("7"));
        assert_eq!(user.organization_id, None);
        assert_eq!(user.default_group_id, None);
        assert_eq!(user.custom_role_id, None);
    }

    #[test]
    fn both_event_type_separators_are_recognised() {
        for sent in ["zen:event-type:user.merged", "zen:event-type/user.merged"] {
            let Payload::Webhook(event) =
                parse(format!(r#"{{"type": "{sent}", "detail": {{"id": "1"}}}}"#).as_bytes())
                    .unwrap()
            else {
                panic!("not a webhook");
            };
            assert_eq!(event.short_type(), Some("user.merged"));
        }
    }

    #[test]
    fn references_read_ids_and_objects() {
        assert_eq!(
            Reference::from_value(&serde_json::json!(42)),
            Some(Reference {
                id: Some("42".into()),
                name: None
            })
        );
        assert_eq!(
            Reference::from_value(&serde_json::json!({"id": "9", "name": "Tier 2"})),
            Some(Reference {
                id: Some("9".into()),
                name: Some("Tier 2".into())
            })
        );
        assert_eq!(Reference::from_value(&serde_json::json!("0")), None);
        assert_eq!(Reference::from_value(&Value::Null), None);
    }

    #[test]
    fn errors_in_the_event_object_name_their_path() {
        let error = parse_event::<FlagChange>(&serde_json::json!({"current": "yes"})).unwrap_err();
        assert_eq!(error.path(), Some("event.current"));
    }
}
