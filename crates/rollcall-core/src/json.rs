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
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(error) => check_error(&error).map_or(Ok(None), Err),
    }
}

/// [`check_body`] without building the document: the same checks and the same errors, for a
/// connector that reads the body's text itself (into its own types, with `RawValue`s) and
/// never needs the tree.
pub fn check_only(bytes: &[u8]) -> Result<BodyCheck, NormalizeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let outcome = serde::de::DeserializeSeed::deserialize(
        CheckedText { at: &Segment::Root },
        &mut deserializer,
    )
    .and_then(|()| deserializer.end());
    match outcome {
        Ok(()) => Ok(BodyCheck::Clean),
        Err(error) => check_error(&error).map_or(Ok(BodyCheck::NotJson), Err),
    }
}

/// The check that failed, from the error a checking visitor raised; `None` when the error
/// is the parser's own (the body is not JSON).
fn check_error(error: &serde_json::Error) -> Option<NormalizeError> {
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
            return Some(NormalizeError::invalid(
                if path.is_empty() { "." } else { path },
                message,
            ));
        }
    }
    None
}

/// The error a checking visitor raises at `at`, recognised by [`check_error`] by `marker`.
fn refuse<E: serde::de::Error>(marker: &str, at: &Segment<'_>) -> E {
    E::custom(format!("{marker}{}", at.render()))
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
            return Err(refuse(NUL_MARKER, self.at));
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
                return Err(refuse(NUL_MARKER, &Segment::Key(self.at, &key)));
            }
            // One search of the object per key: the free slot is found, then filled.
            let slot = match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => slot,
                serde_json::map::Entry::Occupied(taken) => {
                    return Err(refuse(
                        DUPLICATE_MARKER,
                        &Segment::Key(self.at, taken.key()),
                    ));
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

/// Walks a JSON value without building it, failing like [`CheckedValue`] at the first object
/// that repeats a key or the first string holding NUL.
struct CheckedText<'p> {
    at: &'p Segment<'p>,
}

/// Objects up to this many keys are searched for a repeat linearly (a Zendesk user has about
/// 30); larger ones use an ordered set.
const LINEAR_KEYS: usize = 48;

impl<'de> serde::de::DeserializeSeed<'de> for CheckedText<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CheckedText<'_> {
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
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<(), E> {
        if text.contains('\0') {
            return Err(refuse(NUL_MARKER, self.at));
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let at = Segment::Index(self.at, index);
            if seq.next_element_seed(CheckedText { at: &at })?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = SeenKeys::default();
        while let Some(key) = map.next_key_seed(KeyText)? {
            if key.contains('\0') {
                return Err(refuse(NUL_MARKER, &Segment::Key(self.at, &key)));
            }
            if seen.contains(&key) {
                return Err(refuse(DUPLICATE_MARKER, &Segment::Key(self.at, &key)));
            }
            map.next_value_seed(CheckedText {
                at: &Segment::Key(self.at, &key),
            })?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// The keys of one object so far, borrowed from the body unless they hold escapes: the
/// first [`LINEAR_KEYS`] in a list searched linearly, the rest in an ordered set.
#[derive(Default)]
struct SeenKeys<'de> {
    few: Vec<std::borrow::Cow<'de, str>>,
    many: std::collections::BTreeSet<std::borrow::Cow<'de, str>>,
}

impl<'de> SeenKeys<'de> {
    fn contains(&self, key: &str) -> bool {
        self.few.iter().any(|seen| seen == key) || self.many.contains(key)
    }

    fn insert(&mut self, key: std::borrow::Cow<'de, str>) {
        if self.few.len() < LINEAR_KEYS {
            self.few.push(key);
        } else {
            self.many.insert(key);
        }
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct KeyText;

impl<'de> serde::de::DeserializeSeed<'de> for KeyText {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyText {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(key))
    }
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key.to_owned()))
    }
    fn visit_string<E>(self, key: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(key))
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
pub(crate) mod tests {
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
    pub(crate) fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
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

    /// What a check concluded, comparable across the two checks.
    fn verdict(outcome: Result<BodyCheck, NormalizeError>) -> Result<BodyCheck, String> {
        outcome.map_err(|error| format!("{:?}: {error}", error.path()))
    }

    #[test]
    fn the_check_without_a_tree_says_what_the_checked_read_says() {
        let keys: Vec<String> = (0..40).map(|n| format!("\"k{n}\": {n}")).collect();
        let mut bodies: Vec<String> = [
            r#"{"a": 1, "b": {"a": 2}}"#,
            r#"{"id": "x", "id": "y"}"#,
            r#"{"data": [{"u": 1}, {"u": 1, "u": 2}]}"#,
            r#"{"id": 1, "\u0069d": 2}"#,
            r#"{"user": {"name": "a\u0000b"}}"#,
            r#"{"us\u0000er": 1}"#,
            r#"[1, "x\u0000"]"#,
            "bm90IGpzb24=",
            "{} x",
            r#"{"a": "#,
            "",
        ]
        .iter()
        .map(|body| (*body).to_owned())
        .collect();
        bodies.push(format!("{{\"user\": {{{}}}}}", keys.join(", ")));
        let many: Vec<String> = (0..60).map(|n| format!("\"k{n}\": {n}")).collect();
        bodies.push(format!("{{\"user\": {{{}}}}}", many.join(", ")));
        for repeat in ["k3", "k47", "k48", "k59"] {
            bodies.push(format!(
                "{{\"user\": {{{}, \"{repeat}\": 0}}}}",
                many.join(", ")
            ));
        }
        for repeat in ["k3", "k15", "k16", "k20", "k39"] {
            bodies.push(format!(
                "{{\"user\": {{{}, \"{repeat}\": 0}}}}",
                keys.join(", ")
            ));
        }
        for body in &bodies {
            assert_eq!(
                verdict(check_only(body.as_bytes())),
                verdict(check_body(body.as_bytes())),
                "{body}"
            );
        }
    }

    proptest::proptest! {
        /// On any document, and on the same document with a key repeated, a NUL put in or
        /// its end cut off, the check without a tree concludes what the checked read does.
        #[test]
        fn the_check_without_a_tree_agrees_with_the_checked_read(
            value in json_value(),
            cut in 0usize..64,
            at in 0usize..64,
        ) {
            let text = serde_json::to_string(&value).unwrap();
            let mut variants = vec![text.clone().into_bytes()];
            // Cut at a byte: the cut may fall inside a character, which both must refuse.
            variants.push(text.as_bytes()[..text.len().saturating_sub(cut)].to_vec());
            if let Some(open) = text.match_indices('{').nth(at % 4).map(|(index, _)| index) {
                let mut repeated = text.clone();
                repeated.insert_str(open + 1, r#""k":1,"k":2,"#);
                variants.push(repeated.into_bytes());
            }
            if let Some(quote) = text.match_indices('"').nth(at).map(|(index, _)| index) {
                let mut nul = text.clone();
                nul.insert_str(quote + 1, "\\u0000");
                variants.push(nul.into_bytes());
            }
            for body in variants {
                proptest::prop_assert_eq!(
                    verdict(check_only(&body)),
                    verdict(check_body(&body)),
                    "{}", String::from_utf8_lossy(&body)
                );
            }
        }

        /// Objects of up to 64 keys (past the switch from a linear search to a set), with
        /// one of their keys repeated or not: both checks find the same repeat, or none.
        #[test]
        fn both_checks_find_a_repeated_key_in_a_large_object(
            keys in proptest::collection::btree_set("[a-z]{1,3}", 1..64),
            repeat in proptest::option::of(0usize..64),
        ) {
            let keys: Vec<String> = keys.into_iter().collect();
            let mut members: Vec<String> =
                keys.iter().map(|key| format!("\"{key}\": 1")).collect();
            if let Some(index) = repeat {
                members.push(format!("\"{}\": 2", keys[index % keys.len()]));
            }
            let body = format!("{{\"user\": {{{}}}}}", members.join(", "));
            let verdict_only = verdict(check_only(body.as_bytes()));
            proptest::prop_assert_eq!(verdict_only.is_err(), repeat.is_some());
            proptest::prop_assert_eq!(verdict_only, verdict(check_body(body.as_bytes())));
        }

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
