//! What VCC Live sends: the "User Created" and "User Changed" asynchronous webhooks.
//!
//! Both arrive as one JSON object `{old, new, timestamp}`: `new` is the user object after the
//! event, `old` the user object before it or `null` when the user was just created, and
//! `timestamp` an ISO 8601 time with a UTC offset (`2017-06-06T10:53:43+02:00`).
//!
//! The user object's quirks, handled here:
//! * the id is documented as `userid` but the samples send `userId`: both are read;
//! * ids (`userId`, `privGroup`) may be numbers or strings;
//! * `""` and `null` mean "not set";
//! * `password` (sent only when a new password was entered and body encryption is on) is
//!   removed from the parsed document before anything else reads it, so no type in this
//!   crate ever holds it and it never reaches `remote_data`, an error message or a log.

use rollcall_core::{de, json, NormalizeError, Timestamp};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The user-object keys that carry a password. Matched case-insensitively.
const PASSWORD_KEY: &str = "password";

/// A parsed "User Created" or "User Changed" request, password removed.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRequest {
    /// The user after the event.
    pub new: VccUser,
    /// The user before the event; `None` for "User Created".
    pub old: Option<VccUser>,
    /// The request's `timestamp`, when sent.
    pub timestamp: Option<Timestamp>,
}

/// A VCC Live user object: the fields rollcall maps, plus the whole object as received
/// (minus the password) for `remote_data`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct VccUser {
    /// `userId`, as the samples spell it.
    #[serde(rename = "userId", default, deserialize_with = "opt_id")]
    pub user_id: Option<String>,
    /// `userid`, as the field table spells it.
    #[serde(rename = "userid", default, deserialize_with = "opt_id")]
    pub userid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "opt_phone")]
    pub extension: Option<String>,
    #[serde(rename = "contactPhone", default, deserialize_with = "opt_phone")]
    pub contact_phone: Option<String>,
    #[serde(rename = "outboundPhone", default, deserialize_with = "opt_phone")]
    pub outbound_phone: Option<String>,
    #[serde(rename = "mobilePhone", default, deserialize_with = "opt_phone")]
    pub mobile_phone: Option<String>,
    #[serde(rename = "isAgent", default, deserialize_with = "opt_flag")]
    pub is_agent: Option<bool>,
    #[serde(rename = "privGroup", default, deserialize_with = "opt_id")]
    pub priv_group: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub state: Option<String>,
    /// The user object as received, without its password.
    #[serde(skip)]
    pub raw: Value,
}

/// The typed view of the request; `new` and `old` are checked for presence afterwards.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    new: Option<VccUser>,
    #[serde(default)]
    old: Option<VccUser>,
    #[serde(default, deserialize_with = "de::opt_text")]
    timestamp: Option<String>,
}

impl UserRequest {
    /// Parses a (decrypted) request body.
    ///
    /// A JSON object with neither `new` nor `old` is another VCC Live webhook (a call
    /// disposition, a payment...) and answers `event_unsupported`.
    pub fn parse(body: &[u8]) -> Result<Self, NormalizeError> {
        let mut document: Value = json::from_slice(body)?;
        let Value::Object(request) = &mut document else {
            return Err(NormalizeError::invalid(
                ".",
                "expected a JSON object {old, new, timestamp}",
            ));
        };
        if !request.contains_key("new") && !request.contains_key("old") {
            return Err(NormalizeError::unsupported(
                "a VCC Live request without `new` or `old` (not User Created or User Changed)",
            ));
        }
        for key in ["new", "old"] {
            if let Some(Value::Object(user)) = request.get_mut(key) {
                remove_passwords(user);
            }
        }

        let envelope: Envelope = json::from_value(&document)?;
        let Some(mut new) = envelope.new else {
            return Err(NormalizeError::invalid(
                "new",
                "the user object is missing or null",
            ));
        };
        new.raw = document.get("new").cloned().unwrap_or(Value::Null);
        let old = envelope.old.map(|mut old| {
            old.raw = document.get("old").cloned().unwrap_or(Value::Null);
            old
        });
        let timestamp = envelope
            .timestamp
            .map(|text| {
                Timestamp::parse_rfc3339(&text).map_err(|_| {
                    NormalizeError::invalid(
                        "timestamp",
                        "expected ISO 8601 with a UTC offset, such as 2017-06-06T10:53:43+02:00",
                    )
                })
            })
            .transpose()?;
        Ok(Self {
            new,
            old,
            timestamp,
        })
    }
}

/// The body with every `password` key (any case) removed from `new` and `old`, re-serialized;
/// `None` when it is not a JSON object or has no password to remove (keep it byte for byte).
pub fn without_passwords(body: &[u8]) -> Option<Vec<u8>> {
    let mut document: Value = serde_json::from_slice(body).ok()?;
    let Value::Object(request) = &mut document else {
        return None;
    };
    let mut removed = false;
    for key in ["new", "old"] {
        if let Some(Value::Object(user)) = request.get_mut(key) {
            let before = user.len();
            remove_passwords(user);
            removed |= user.len() != before;
        }
    }
    removed
        .then(|| serde_json::to_vec(&document).ok())
        .flatten()
}

/// Drops every `password` key (any case) from a user object.
fn remove_passwords(user: &mut Map<String, Value>) {
    user.retain(|key, _| !key.eq_ignore_ascii_case(PASSWORD_KEY));
}

/// An id sent as a number or a string (`de::opt_id`); `""` is "not set".
fn opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(de::opt_id(deserializer)?.filter(|id| !id.trim().is_empty()))
}

/// A phone number or extension: documented as a string, read from a number too (`189`).
/// `null`, `""` and whitespace are "not set".
fn opt_phone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(match Option::<Raw>::deserialize(deserializer)? {
        None => None,
        Some(Raw::Text(text)) => Some(text.trim().to_owned()).filter(|text| !text.is_empty()),
        Some(Raw::Unsigned(number)) => Some(number.to_string()),
        Some(Raw::Signed(number)) => Some(number.to_string()),
    })
}

/// `isAgent`: documented as a boolean; `0`/`1` (VCC Live's flags elsewhere, such as
/// `redistribution`) are read too. `null` is "not set".
fn opt_flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Number(u64),
    }
    match Option::<Raw>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Raw::Flag(flag)) => Ok(Some(flag)),
        Some(Raw::Number(0)) => Ok(Some(false)),
        Some(Raw::Number(1)) => Ok(Some(true)),
        Some(Raw::Number(_)) => Err(serde::de::Error::custom("expected true, false, 0 or 1")),
    }
}
