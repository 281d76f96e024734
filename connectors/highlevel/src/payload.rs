//! What HighLevel sends: one flat JSON object per delivery.
//!
//! The user's fields sit at the top level next to the envelope fields `type`, `timestamp`
//! and `webhookId`. `UserCreate`, `UserUpdate` and `UserDelete` share one schema: `id`,
//! `locationId` (sub-account users) or `companyId` (agency users), `firstName`, `lastName`,
//! `email`, `phone`, `extension`, `role` (`user` | `admin`), `permissions` (a map of
//! booleans) and `locations` (the sub-accounts an agency user can access).

use rollcall_core::{de, NormalizeError, Timestamp};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The body keys that describe the delivery rather than the user. They are left out of
/// `remote_data`.
pub const ENVELOPE_KEYS: &[&str] = &["type", "timestamp", "webhookId"];

/// A HighLevel user event body. `type` is read separately (it decides whether the body is
/// a user event at all) and `permissions` is kept only in `remote_data`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPayload {
    #[serde(default, deserialize_with = "opt_id_text")]
    pub id: Option<String>,
    /// The sub-account (location) a sub-account user belongs to.
    #[serde(default, deserialize_with = "opt_id_text")]
    pub location_id: Option<String>,
    /// The agency (company) an agency user belongs to.
    #[serde(default, deserialize_with = "opt_id_text")]
    pub company_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub email: Option<String>,
    /// A phone number; some senders write it as a JSON number.
    #[serde(default, deserialize_with = "opt_id_text")]
    pub phone: Option<String>,
    /// The phone extension, as a string or a number.
    #[serde(default, deserialize_with = "opt_id_text")]
    pub extension: Option<String>,
    /// `user` or `admin`, kept as sent.
    #[serde(default, deserialize_with = "de::opt_text")]
    pub role: Option<String>,
    /// The sub-accounts (location ids) an agency user can access.
    #[serde(default, deserialize_with = "de::id_list")]
    pub locations: Vec<String>,
    /// The delivery id HighLevel asks receivers to deduplicate on.
    #[serde(default, deserialize_with = "opt_id_text")]
    pub webhook_id: Option<String>,
    /// When HighLevel sent the delivery: RFC 3339 or epoch seconds (or milliseconds).
    #[serde(default)]
    pub timestamp: Option<Value>,
}

/// An id or short text that may arrive as a string or a number. `null`, absent, `""` and
/// all-whitespace strings are `None`.
pub fn opt_id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(de::opt_id(deserializer)?.filter(|text| !text.trim().is_empty()))
}

/// The event type as sent. Absent, `null` or not a string is `payload_invalid` at `type`.
pub fn event_type(object: &Map<String, Value>) -> Result<&str, NormalizeError> {
    match object.get("type") {
        None | Some(Value::Null) => Err(NormalizeError::invalid("type", "missing field `type`")),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(Value::String(_)) => Err(NormalizeError::invalid("type", "is empty")),
        Some(_) => Err(NormalizeError::invalid("type", "expected a string")),
    }
}

/// Epoch values at or above this are milliseconds: read as seconds they would fall after
/// the year 5000, so no real delivery time is mistaken.
const EPOCH_MILLIS_THRESHOLD: f64 = 100_000_000_000.0;

/// Reads the body's `timestamp`: an RFC 3339 string, or epoch seconds or milliseconds as a
/// number or a numeric string. `null` is `Ok(None)`; anything unreadable is an error message.
pub fn read_timestamp(value: Option<&Value>) -> Result<Option<Timestamp>, String> {
    let epoch = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    let parsed = match (epoch, value) {
        (Some(seconds), _) if seconds.abs() >= EPOCH_MILLIS_THRESHOLD => {
            Timestamp::from_epoch_seconds(seconds / 1000.0)
        }
        (Some(seconds), _) => Timestamp::from_epoch_seconds(seconds),
        (None, Some(value)) => Timestamp::from_json(value),
        (None, None) => return Ok(None),
    };
    parsed.map(Some).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_read_in_every_documented_shape() {
        let at = |value: Value| read_timestamp(Some(&value)).unwrap().unwrap().to_string();
        assert_eq!(at(json!("2025-01-28T14:35:00Z")), "2025-01-28T14:35:00Z");
        assert_eq!(
            at(json!("2025-01-28T20:05:00+05:30")),
            "2025-01-28T14:35:00Z"
        );
        assert_eq!(at(json!(1_738_074_900)), "2025-01-28T14:35:00Z");
        assert_eq!(at(json!("1738074900")), "2025-01-28T14:35:00Z");
        assert_eq!(at(json!(1_738_074_900_123_u64)), "2025-01-28T14:35:00.123Z");
        assert_eq!(read_timestamp(Some(&Value::Null)).unwrap(), None);
        assert_eq!(read_timestamp(None).unwrap(), None);
        assert!(read_timestamp(Some(&json!("yesterday"))).is_err());
        assert!(read_timestamp(Some(&json!(true))).is_err());
        assert!(read_timestamp(Some(&json!(1e300))).is_err());
    }

    #[test]
    fn ids_and_phones_may_be_numbers_and_blank_means_absent() {
        let payload: UserPayload = serde_json::from_value(json!({
            "id": 42, "phone": 13235559998_u64, "extension": 111, "email": "",
            "locations": ["a", 7, null], "webhookId": "  "
        }))
        .unwrap();
        assert_eq!(payload.id.as_deref(), Some("42"));
        assert_eq!(payload.phone.as_deref(), Some("13235559998"));
        assert_eq!(payload.extension.as_deref(), Some("111"));
        assert_eq!(payload.email, None);
        assert_eq!(payload.locations, ["a", "7"]);
        assert_eq!(payload.webhook_id, None);
    }
}
