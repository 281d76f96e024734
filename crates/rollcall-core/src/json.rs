//! JSON parsing that says where it failed.

use serde::de::DeserializeOwned;

use crate::error::NormalizeError;

/// Parses `bytes` into `T`. On failure the error is `payload_invalid` with the dotted path of
/// the offending field (`data.user.id`), or `.` when the document itself is not JSON.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NormalizeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(path_error)?;
    deserializer
        .end()
        .map_err(|error| NormalizeError::invalid(".", error.to_string()))?;
    Ok(value)
}

/// Converts an already parsed value into `T`, reporting the path on failure.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, NormalizeError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error(error: serde_path_to_error::Error<serde_json::Error>) -> NormalizeError {
    let path = error.path().to_string();
    NormalizeError::invalid(path, error.into_inner().to_string())
}

/// What [`check_body`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCheck {
    /// JSON with unique keys and no NUL in any string.
    Clean,
    /// Not JSON (an encrypted body, say): the connector decides, and its events are checked.
    NotJson,
}

/// Checks a body before any connector parses it: no object may repeat a key, and no string
/// (value or key) may contain NUL.
///
/// Parsers disagree on duplicate keys (first wins, last wins, error), so a body that has
/// them could give one id to the dedup key and another to the events. NUL (`\u0000`) is
/// valid JSON that PostgreSQL's `jsonb` and `text` cannot store: accepted, such an event
/// would dead-letter at that sink forever. Both are refused here, for every sink alike.
pub fn check_body(bytes: &[u8]) -> Result<BodyCheck, NormalizeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let outcome = serde::de::DeserializeSeed::deserialize(
        UniqueKeys { at: &Segment::Root },
        &mut deserializer,
    )
    .and_then(|()| deserializer.end());
    let Err(error) = outcome else {
        return Ok(BodyCheck::Clean);
    };
    let text = error.to_string();
    for (marker, message) in [
        (
            DUPLICATE_MARKER,
            "the key appears more than once in its object",
        ),
        (
            NUL_MARKER,
            "contains NUL (\\u0000), which rollcall does not accept",
        ),
    ] {
        if let Some((_, rest)) = text.split_once(marker) {
            let path = rest.split(" at line").next().unwrap_or("");
            return Err(NormalizeError::invalid(
                if path.is_empty() { "." } else { path },
                message,
            ));
        }
    }
    Ok(BodyCheck::NotJson)
}

const NUL_MARKER: &str = "rollcall-nul:";
const DUPLICATE_MARKER: &str = "rollcall-duplicate-key:";

/// Where a value sits in the document, as a chain to the root: the path is only written out
/// when a check fails, so a clean body costs no allocation per key.
enum Segment<'p> {
    Root,
    Key(&'p Segment<'p>, &'p str),
    Index(&'p Segment<'p>, usize),
}

impl Segment<'_> {
    fn render(&self) -> String {
        match self {
            Segment::Root => String::new(),
            Segment::Key(parent, key) => match parent.render() {
                path if path.is_empty() => (*key).to_owned(),
                path => format!("{path}.{key}"),
            },
            Segment::Index(parent, index) => format!("{}[{index}]", parent.render()),
        }
    }
}

/// Objects with at most this many keys are checked for repeats by a linear scan; larger ones
/// with a hash set.
const LINEAR_KEYS: usize = 16;

/// Walks a JSON document, failing at the first object that repeats a key.
struct UniqueKeys<'p> {
    at: &'p Segment<'p>,
}

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
        if text.contains('\0') {
            return Err(E::custom(format!("{NUL_MARKER}{}", self.at.render())));
        }
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let at = Segment::Index(self.at, index);
            if seq.next_element_seed(UniqueKeys { at: &at })?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        let mut many: Option<std::collections::HashSet<std::borrow::Cow<'de, str>>> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let repeated = match &mut many {
                Some(set) => !set.insert(key.clone()),
                None if seen.len() < LINEAR_KEYS => {
                    let repeated = seen.contains(&key);
                    seen.push(key.clone());
                    repeated
                }
                None => {
                    let mut set: std::collections::HashSet<_> = seen.drain(..).collect();
                    let repeated = !set.insert(key.clone());
                    many = Some(set);
                    repeated
                }
            };
            let at = Segment::Key(self.at, &key);
            if key.contains('\0') {
                return Err(serde::de::Error::custom(format!(
                    "{NUL_MARKER}{}",
                    at.render()
                )));
            }
            if repeated {
                return Err(serde::de::Error::custom(format!(
                    "{DUPLICATE_MARKER}{}",
                    at.render()
                )));
            }
            map.next_value_seed(UniqueKeys { at: &at })?;
        }
        Ok(())
    }
}

/// The dotted path of the first string (value or object key) in `value` that contains NUL
/// (`\u0000`), which PostgreSQL's `jsonb` and `text` cannot store.
pub fn nul_path(value: &serde_json::Value) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => Some(path.to_owned()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(index, item)| walk(item, &format!("{path}[{index}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.contains('\0') {
                    Some(here)
                } else {
                    walk(item, &here)
                }
            }),
            _ => None,
        }
    }
    walk(value, "").map(|path| {
        if path.is_empty() {
            ".".to_owned()
        } else {
            path
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        data: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        id: u64,
    }

    #[test]
    fn reports_the_path_of_the_bad_field() {
        let error = from_slice::<Outer>(br#"{"data": {"id": "x"}}"#).unwrap_err();
        assert_eq!(error.path(), Some("data.id"));
    }

    #[test]
    fn reports_the_document_when_it_is_not_json() {
        let error = from_slice::<Outer>(b"not json").unwrap_err();
        assert_eq!(error.path(), Some("."));
        let error = from_slice::<Outer>(br#"{"data": {"id": 1}} trailing"#).unwrap_err();
        assert_eq!(error.path(), Some("."));
    }

    #[test]
    fn duplicate_keys_and_nul_are_found_with_their_path() {
        assert_eq!(
            check_body(br#"{"a": 1, "b": {"a": 2}}"#).unwrap(),
            BodyCheck::Clean
        );
        let error = check_body(br#"{"id": "x", "id": "y"}"#).unwrap_err();
        assert_eq!(error.path(), Some("id"));
        let error = check_body(br#"{"data": [{"u": 1}, {"u": 1, "u": 2}]}"#).unwrap_err();
        assert_eq!(error.path(), Some("data[1].u"));
        // Escapes that spell the same key are the same key.
        assert!(check_body(br#"{"id": 1, "\u0069d": 2}"#).is_err());
        let error = check_body(br#"{"user": {"name": "a\u0000b"}}"#).unwrap_err();
        assert_eq!(error.path(), Some("user.name"));
        assert!(error.to_string().contains("NUL"));
        // Objects past the linear-scan size are checked as well, before and after the switch.
        let keys: Vec<String> = (0..40).map(|n| format!("\"k{n}\": {n}")).collect();
        let clean = format!("{{\"user\": {{{}}}}}", keys.join(", "));
        assert_eq!(check_body(clean.as_bytes()).unwrap(), BodyCheck::Clean);
        for repeat in ["k3", "k20", "k39"] {
            let body = format!("{{\"user\": {{{}, \"{repeat}\": 0}}}}", keys.join(", "));
            let error = check_body(body.as_bytes()).unwrap_err();
            assert_eq!(error.path(), Some(format!("user.{repeat}").as_str()));
        }
        // Not JSON (or JSON followed by more): left to the connector.
        assert_eq!(check_body(b"bm90IGpzb24=").unwrap(), BodyCheck::NotJson);
        assert_eq!(check_body(b"{} x").unwrap(), BodyCheck::NotJson);
    }

    #[test]
    fn nul_is_found_in_values_and_keys() {
        assert_eq!(
            nul_path(&serde_json::json!({"a": ["ok", "x\u{0}"]})).as_deref(),
            Some("a[1]")
        );
        assert_eq!(
            nul_path(&serde_json::json!({"k\u{0}": 1})).as_deref(),
            Some("k\u{0}")
        );
        assert_eq!(nul_path(&serde_json::json!({"a": "fine"})), None);
    }
}
