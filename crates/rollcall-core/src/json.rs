//! JSON parsing that says where it failed.

use serde::de::DeserializeOwned;

use crate::error::NormalizeError;

/// Parses `bytes` into `T`. On failure the error is `payload_invalid` with the dotted path of
/// the offending field (`data.user.id`), or `.` when the document itself is not JSON.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NormalizeError> {
    // Path tracking costs a third of a parse on every body; a body that reads is the rule,
    // so it is read plainly and read again with tracking only to say where it failed.
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(_) => Err(tracked_from_slice::<T>(bytes)),
    }
}

/// The error of reading `bytes` as `T`, with its path.
fn tracked_from_slice<T: DeserializeOwned>(bytes: &[u8]) -> NormalizeError {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Err(error) => path_error(error),
        Ok(_) => match deserializer.end() {
            Err(error) => NormalizeError::invalid(".", error.to_string()),
            // Unreachable while both reads agree; still an error, never a panic.
            Ok(()) => NormalizeError::invalid(".", "the document could not be read"),
        },
    }
}

/// Converts an already parsed value into `T`, reporting the path on failure.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, NormalizeError> {
    match T::deserialize(value) {
        Ok(converted) => Ok(converted),
        Err(_) => Err(match serde_path_to_error::deserialize::<_, T>(value) {
            Err(error) => path_error(error),
            Ok(_) => NormalizeError::invalid(".", "the document could not be read"),
        }),
    }
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
/// A repeated key is refused because two readers of the same document may pick different
/// values (serde keeps the last, other parsers the first), so the dedup key, the signature's
/// view and the events could disagree. NUL is refused because sinks such as PostgreSQL
/// cannot store it. A body that is not JSON at all is [`BodyCheck::NotJson`]: the connector
/// decides what it is.
pub fn check_body(bytes: &[u8]) -> Result<BodyCheck, NormalizeError> {
    Ok(match parse_checked(bytes)? {
        Some(_) => BodyCheck::Clean,
        None => BodyCheck::NotJson,
    })
}

/// Reads a body as JSON with [`check_body`]'s checks in the same pass: the document when
/// the body is JSON with unique keys and no NUL, `None` when it is not JSON at all.
///
/// The host reads every body this way once ([`Delivery::json`]) and connectors read the
/// same document, instead of a check and a parse of their own.
///
/// [`Delivery::json`]: crate::Delivery::json
pub fn parse_checked(bytes: &[u8]) -> Result<Option<serde_json::Value>, NormalizeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let outcome = serde::de::DeserializeSeed::deserialize(
        CheckedValue { at: &Segment::Root },
        &mut deserializer,
    )
    .and_then(|value| deserializer.end().map(|()| value));
    let error = match outcome {
        Ok(value) => return Ok(Some(value)),
        Err(error) => error,
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
    Ok(None)
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

/// Builds a JSON value, failing at the first object that repeats a key or the first string
/// holding NUL.
struct CheckedValue<'p> {
    at: &'p Segment<'p>,
}

impl<'de> serde::de::DeserializeSeed<'de> for CheckedValue<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<serde_json::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CheckedValue<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Number(value.into()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Number(value.into()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<serde_json::Value, E> {
        // JSON has no NaN or infinity; serde_json's own value reads them as null too.
        Ok(serde_json::Number::from_f64(value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<serde_json::Value, E> {
        self.visit_string(text.to_owned())
    }
    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<serde_json::Value, E> {
        if text.contains('\0') {
            return Err(E::custom(format!("{NUL_MARKER}{}", self.at.render())));
        }
        Ok(serde_json::Value::String(text))
    }
    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let at = Segment::Index(self.at, items.len());
            match seq.next_element_seed(CheckedValue { at: &at })? {
                Some(item) => items.push(item),
                None => return Ok(serde_json::Value::Array(items)),
            }
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.contains('\0') {
                let at = Segment::Key(self.at, &key);
                return Err(serde::de::Error::custom(format!(
                    "{NUL_MARKER}{}",
                    at.render()
                )));
            }
            // One search of the object per key: the free slot is found, then filled.
            let slot = match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => slot,
                serde_json::map::Entry::Occupied(taken) => {
                    let at = Segment::Key(self.at, taken.key());
                    return Err(serde::de::Error::custom(format!(
                        "{DUPLICATE_MARKER}{}",
                        at.render()
                    )));
                }
            };
            let value = {
                let at = Segment::Key(self.at, slot.key());
                map.next_value_seed(CheckedValue { at: &at })?
            };
            slot.insert(value);
        }
        Ok(serde_json::Value::Object(object))
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

    /// Any JSON value without repeated keys or NUL, written out by serde_json.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            (-1.0e12f64..1.0e12).prop_map(|n| serde_json::json!(n)),
            "[^\\x00]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[^\\x00]{0,8}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The checked read builds exactly the value serde_json's own reader builds.
        #[test]
        fn the_checked_read_is_serde_jsons_value(value in json_value()) {
            let text = serde_json::to_vec(&value).unwrap();
            let checked = parse_checked(&text).unwrap();
            let plain: serde_json::Value = serde_json::from_slice(&text).unwrap();
            proptest::prop_assert_eq!(checked, Some(plain));
        }
    }

    #[test]
    fn a_delivery_reads_its_body_once_and_again_after_a_new_body() {
        let mut delivery =
            crate::Delivery::new("src", &br#"{"id": 1}"#[..], crate::Timestamp::now());
        assert_eq!(
            delivery.json().unwrap(),
            Some(&serde_json::json!({"id": 1}))
        );
        delivery.replace_body(&br#"{"id": 1, "id": 2}"#[..]);
        assert_eq!(delivery.json().unwrap_err().path(), Some("id"));
        delivery.replace_body(&b"bm90IGpzb24="[..]);
        assert_eq!(delivery.json().unwrap(), None);
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
