//! Test harness for connectors: golden fixtures and never-panic properties.
//!
//! A connector keeps its fixtures in `connectors/<name>/fixtures/`: each `<case>.json` is a
//! request body as the vendor sends it, and `<case>.expected.json` beside it is what
//! `normalize` must produce, either `{"events": [...]}` or `{"error": {"code", "path"}}`.
//! Deliveries are built with a fixed receive time so event ids are stable.
//!
//! Set `ROLLCALL_BLESS=1` to rewrite the expected files after an intended change, then
//! review the diff. A fixture without an expected file fails, and gets one written for
//! review.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rollcall_core::{Connector, Delivery, SourceOptions, Timestamp};
use serde_json::{json, Value};

/// The receive time of every fixture delivery.
pub const RECEIVED_AT: &str = "2026-01-01T00:00:00Z";

pub fn received_at() -> Timestamp {
    Timestamp::parse_rfc3339(RECEIVED_AT).unwrap()
}

/// A POST delivery of `body` on source `source`, received at [`RECEIVED_AT`].
pub fn delivery(source: &str, body: impl Into<Vec<u8>>) -> Delivery {
    Delivery::new(source, body.into(), received_at())
}

/// Builds the registered connector `name` in offline mode (no secrets).
pub fn offline_connector(name: &str) -> Box<dyn Connector> {
    let registration = rollcall_core::registration(name)
        .unwrap_or_else(|| panic!("connector {name} is not registered"));
    (registration.build)(&SourceOptions::offline(name)).unwrap()
}

/// The `<case>.json` bodies in `dir`, sorted.
pub fn fixture_bodies(dir: &Path) -> Vec<PathBuf> {
    let mut bodies: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    bodies.sort();
    bodies
}

/// What `normalize` produced for a body, in the expected-file shape.
pub fn normalize_outcome(connector: &dyn Connector, source: &str, body: &[u8]) -> Value {
    match connector.normalize(&delivery(source, body.to_vec())) {
        Ok(events) => json!({ "events": events }),
        Err(error) => json!({
            "error": { "code": error.code().as_str(), "path": error.path() }
        }),
    }
}

/// Checks every fixture in `dir` against its expected file.
pub fn check_golden_fixtures(connector_name: &str, dir: &Path) {
    let connector = offline_connector(connector_name);
    let bless = std::env::var_os("ROLLCALL_BLESS").is_some();
    let bodies = fixture_bodies(dir);
    assert!(!bodies.is_empty(), "no fixtures in {}", dir.display());
    let mut failures = Vec::new();
    for body_path in bodies {
        let body = fs::read(&body_path).unwrap();
        let actual = normalize_outcome(connector.as_ref(), connector_name, &body);
        let expected_path = body_path.with_extension("expected.json");
        let rendered = format!("{}\n", serde_json::to_string_pretty(&actual).unwrap());
        match fs::read_to_string(&expected_path) {
            Ok(text) if !bless => {
                let expected: Value = serde_json::from_str(&text).unwrap_or_else(|error| {
                    panic!("{} is not JSON: {error}", expected_path.display())
                });
                if expected != actual {
                    failures.push(format!(
                        "{}\n--- expected\n{}\n--- actual\n{}",
                        body_path.display(),
                        text.trim_end(),
                        rendered.trim_end()
                    ));
                }
            }
            Ok(_) => fs::write(&expected_path, rendered).unwrap(),
            Err(_) => {
                fs::write(&expected_path, rendered).unwrap();
                if !bless {
                    failures.push(format!(
                        "{}: no expected file; wrote {} for review",
                        body_path.display(),
                        expected_path.display()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (ROLLCALL_BLESS=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Arbitrary JSON values, nested up to a few levels.
pub fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,24}".prop_map(Value::String),
        // Strings that look like the timestamps, ids and enum values connectors parse.
        prop_oneof![
            Just("2023-05-18T16:36:00+05:30"),
            Just("1684407960.307151"),
            Just("0"),
            Just(""),
            Just("active"),
            Just("inactive"),
            Just("UserCreate"),
            Just("onUserUpdate"),
            Just("zen:event-type:user.created"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,16}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Replaces one subtree of `value` (chosen by `choice`) with `replacement`.
fn replace_subtree(value: &mut Value, choice: usize, replacement: Value) {
    fn count(value: &Value) -> usize {
        1 + match value {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(value: &mut Value, target: &mut usize, replacement: &mut Option<Value>) {
        if *target == 0 {
            if let Some(new) = replacement.take() {
                *value = new;
            }
            return;
        }
        *target -= 1;
        match value {
            Value::Array(items) => {
                for item in items {
                    walk(item, target, replacement);
                }
            }
            Value::Object(map) => {
                for item in map.values_mut() {
                    walk(item, target, replacement);
                }
            }
            _ => {}
        }
    }
    let total = count(value);
    let mut target = choice % total;
    walk(value, &mut target, &mut Some(replacement));
}

/// Asserts that `verify` and `normalize` never panic: on arbitrary bytes, on arbitrary JSON,
/// and on each fixture with one subtree replaced by arbitrary JSON (which reaches the
/// deeper mapping code that random documents never get past).
pub fn assert_never_panics(connector: &dyn Connector, fixtures: &Path) {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let exercise = |body: Vec<u8>| {
        let delivery = delivery("property", body)
            .with_header("content-type", "application/json")
            .with_query("secret-key=x&iv=00");
        let _ = connector.verify(&delivery);
        let _ = connector.dedup_key(&delivery);
        let _ = connector.handshake(&delivery);
        if let Ok(events) = connector.normalize(&delivery) {
            for event in events {
                serde_json::to_vec(&event).unwrap();
            }
        }
    };

    let mut runner = TestRunner::new(config.clone());
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..1024), |bytes| {
            exercise(bytes);
            Ok(())
        })
        .unwrap();

    let mut runner = TestRunner::new(config.clone());
    runner
        .run(&arbitrary_json(), |value| {
            exercise(serde_json::to_vec(&value).unwrap());
            Ok(())
        })
        .unwrap();

    let documents: Vec<Value> = fixture_bodies(fixtures)
        .iter()
        .filter_map(|path| serde_json::from_slice(&fs::read(path).unwrap()).ok())
        .collect();
    if documents.is_empty() {
        return;
    }
    let mut runner = TestRunner::new(config);
    runner
        .run(
            &(0..documents.len(), any::<usize>(), arbitrary_json()),
            |(index, choice, replacement)| {
                let mut document = documents[index].clone();
                replace_subtree(&mut document, choice, replacement);
                exercise(serde_json::to_vec(&document).unwrap());
                Ok(())
            },
        )
        .unwrap();
}
