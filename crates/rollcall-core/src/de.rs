//! Deserializers for what vendors really send.
//!
//! Ids are strings in the unified model, but vendors send integers, strings, or both in the
//! same payload (Freshworks' `account_id`, Zendesk's `"6596848315901"`). Use these with
//! `#[serde(deserialize_with = ...)]` on vendor payload types.

use serde::{Deserialize, Deserializer};

/// An id that may arrive as a JSON string or number. Always returned as a string.
pub fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match opt_id(deserializer)? {
        Some(id) => Ok(id),
        None => Err(serde::de::Error::custom("id is null")),
    }
}

/// Like [`id`], but `null` and absent are `None`. Use with `#[serde(default)]`.
pub fn opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    // A visitor rather than an untagged enum: untagged deserialization buffers the value and
    // builds a throw-away error for every variant it rejects, which costs more than the id.
    deserializer.deserialize_any(IdVisitor)
}

struct IdVisitor;

impl<'de> serde::de::Visitor<'de> for IdVisitor {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an id (a string or a whole number)")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Some(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(value.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(value.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        if value.fract() == 0.0 && value.abs() < 9.0e15 {
            Ok(Some(format!("{value:.0}")))
        } else {
            Err(E::custom(format!("id {value} is not a whole number")))
        }
    }
}

/// A list of ids that may be strings or numbers; `null` and absent are an empty list.
pub fn id_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Item(#[serde(deserialize_with = "opt_id")] Option<String>);
    let items = Option::<Vec<Item>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(items.into_iter().filter_map(|Item(id)| id).collect())
}

/// A string that vendors sometimes send as `null`; both absent and `null` are `None`, and so
/// is an empty or all-whitespace string (vendors use `""` for "not set").
pub fn opt_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "id")]
        id: String,
        #[serde(default, deserialize_with = "opt_id")]
        other: Option<String>,
        #[serde(default, deserialize_with = "id_list")]
        list: Vec<String>,
        #[serde(default, deserialize_with = "opt_text")]
        text: Option<String>,
    }

    #[test]
    fn ids_are_strings_whatever_the_vendor_sent() {
        let h: Holder = serde_json::from_str(
            r#"{"id": 6957494, "other": "42", "list": [1, "2", null], "text": ""}"#,
        )
        .unwrap();
        assert_eq!(h.id, "6957494");
        assert_eq!(h.other.as_deref(), Some("42"));
        assert_eq!(h.list, vec!["1", "2"]);
        assert_eq!(h.text, None);
    }

    #[test]
    fn null_id_is_an_error_and_null_optional_id_is_none() {
        assert!(serde_json::from_str::<Holder>(r#"{"id": null}"#).is_err());
        let h: Holder = serde_json::from_str(r#"{"id": "1", "other": null}"#).unwrap();
        assert_eq!(h.other, None);
        assert!(serde_json::from_str::<Holder>(r#"{"id": 1.5}"#).is_err());
    }
}
