//! Test harness for connectors: golden fixtures, never-panic properties, and the shared
//! specification of signing test requests.
//!
//! A connector keeps its fixtures in `connectors/<name>/fixtures/`: each `<case>.json` is a
//! request body as the vendor sends it, and `<case>.expected.json` beside it is what
//! `normalize` must produce, either `{"events": [...]}` or `{"error": {"code", "path"}}`.
//! Deliveries are built with a fixed receive time so event ids are stable.
//!
//! Set `ROLLCALL_BLESS=1` to rewrite the expected files after an intended change, then
//! review the diff. A fixture without an expected file fails, and gets one written for
//! review.
//!
//! [`assert_signing_round_trips`] checks what every connector's `sign` and `demo_options`
//! must do; a connector's own tests keep what is particular to its vendor's scheme.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rollcall_core::{
    Connector, ConnectorRegistration, Delivery, ErrorCode, SignError, SourceOptions, Timestamp,
};
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

fn registration(name: &str) -> &'static ConnectorRegistration {
    rollcall_core::registration(name)
        .unwrap_or_else(|| panic!("connector {name} is not registered"))
}

/// Builds the registered connector `name` in offline mode (no secrets).
pub fn offline_connector(name: &str) -> Box<dyn Connector> {
    (registration(name).build)(&SourceOptions::offline(name)).unwrap()
}

/// The seed signing tests build demo sources from.
pub const DEMO_SEED: [u8; 32] = [7; 32];

/// Another seed: a demo source built from it must reject what one built from [`DEMO_SEED`]
/// signs.
pub const OTHER_DEMO_SEED: [u8; 32] = [8; 32];

/// The demo options the registered connector `name` derives from `seed`.
pub fn demo_options(name: &str, seed: &[u8; 32]) -> Value {
    (registration(name).demo_options)(seed)
}

/// Builds the registered connector `name` from its demo options for `seed`, through the
/// registry like the host, as the source `name` (the source of fixture deliveries).
pub fn demo_connector(name: &str, seed: &[u8; 32]) -> Box<dyn Connector> {
    let options = SourceOptions::new(name, demo_options(name, seed));
    (registration(name).build)(&options)
        .unwrap_or_else(|error| panic!("the demo options of {name} do not build: {error}"))
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

/// The fixtures in `dir` whose expected file lists events, sorted: each as its file name, its
/// body, and the `events` array of its expected file.
pub fn fixtures_with_events(dir: &Path) -> Vec<(String, Vec<u8>, Value)> {
    fixture_bodies(dir)
        .into_iter()
        .filter_map(|path| {
            let expected_path = path.with_extension("expected.json");
            let expected = fs::read(&expected_path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", expected_path.display()));
            let expected: Value = serde_json::from_slice(&expected)
                .unwrap_or_else(|error| panic!("{} is not JSON: {error}", expected_path.display()));
            let events = expected.get("events")?.clone();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            Some((name, fs::read(&path).unwrap(), events))
        })
        .collect()
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

/// What [`assert_signing_round_trips`] needs to know of one connector's signing scheme.
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    /// What `demo_options(&DEMO_SEED)` returns: the secret or key the demo source signs with.
    pub demo_options: Value,
    /// The option an offline connector's [`SignError::MissingKey`] names.
    pub key_option: &'a str,
    /// Whether the signature covers the body. When it does, a body changed after signing
    /// fails verification with `signature_invalid`; when the vendor authenticates only the
    /// sender (a shared secret in the URL or a header), the changed body still verifies.
    pub covers_body: bool,
    /// Fixtures (file names) whose body `timestamp` lies outside the replay window around
    /// [`RECEIVED_AT`]. Signing leaves the body alone, so they sign, pass the signature check
    /// and fail verification with `timestamp_out_of_tolerance` only.
    pub stale_fixtures: &'a [&'a str],
}

/// `verify`'s outcome as an error code.
fn verify_outcome(connector: &dyn Connector, delivery: &Delivery) -> Result<(), ErrorCode> {
    connector.verify(delivery).map_err(|error| error.code())
}

/// Asserts the specification every connector's signing of test requests shares, with
/// demo sources built through the registry from [`DEMO_SEED`] and [`OTHER_DEMO_SEED`]:
///
/// * signing then verifying round trips: every fixture in `fixtures` whose expected file
///   lists events (there must be one) signs, keeps its body, verifies (or, if stale, fails
///   only the replay window), and still normalizes to exactly those events;
/// * a body changed by one byte after signing fails verification with `signature_invalid`,
///   or still verifies when the signature does not cover the body;
/// * a delivery signed for one seed fails on a source with another, `signature_invalid`;
/// * demo options are stable for a seed, differ across seeds, and are
///   [`Signing::demo_options`] for [`DEMO_SEED`];
/// * an offline connector cannot sign: `sign` answers [`SignError::MissingKey`] naming
///   [`Signing::key_option`] and leaves the delivery as it was.
pub fn assert_signing_round_trips(name: &str, fixtures: &Path, signing: &Signing<'_>) {
    let cases = fixtures_with_events(fixtures);
    assert!(
        !cases.is_empty(),
        "{name}: no fixture in {} normalizes to events",
        fixtures.display()
    );
    for stale in signing.stale_fixtures {
        assert!(
            cases.iter().any(|(fixture, _, _)| fixture == stale),
            "{name}: the stale fixture {stale} is not a fixture with events"
        );
    }

    let connector = demo_connector(name, &DEMO_SEED);
    let other_seed = demo_connector(name, &OTHER_DEMO_SEED);
    for (fixture, body, events) in &cases {
        let expected = if signing.stale_fixtures.contains(&fixture.as_str()) {
            Err(ErrorCode::TimestampOutOfTolerance)
        } else {
            Ok(())
        };
        let mut signed = delivery(name, body.clone());
        connector.sign(&mut signed).unwrap_or_else(|error| {
            panic!("{name} {fixture}: the demo source cannot sign: {error}")
        });

        // Event ids derive from the body bytes, so the expected events need the body as is.
        assert_eq!(
            &signed.body[..],
            &body[..],
            "signing then verifying round trips: {name} {fixture}: the demo source changed the body"
        );
        assert_eq!(
            verify_outcome(connector.as_ref(), &signed),
            expected,
            "signing then verifying round trips: {name} {fixture}"
        );
        let normalized = connector.normalize(&signed).unwrap_or_else(|error| {
            panic!("signing then verifying round trips: {name} {fixture}: {error}")
        });
        assert_eq!(
            &serde_json::to_value(normalized).unwrap(),
            events,
            "signing then verifying round trips: {name} {fixture}: the events"
        );

        let mut changed = body.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        let mut tampered = signed.clone();
        tampered.replace_body(changed);
        if signing.covers_body {
            assert_eq!(
                verify_outcome(connector.as_ref(), &tampered),
                Err(ErrorCode::SignatureInvalid),
                "a body changed after signing fails verification: {name} {fixture}"
            );
        } else {
            assert_eq!(
                verify_outcome(connector.as_ref(), &tampered),
                expected,
                "a body changed after signing still verifies (the signature does not cover \
                 it): {name} {fixture}"
            );
        }

        assert_eq!(
            verify_outcome(other_seed.as_ref(), &signed),
            Err(ErrorCode::SignatureInvalid),
            "a delivery signed for one seed fails on a source with another: {name} {fixture}"
        );
    }

    assert_eq!(
        demo_options(name, &DEMO_SEED),
        demo_options(name, &DEMO_SEED),
        "demo options are stable for a seed: {name}"
    );
    assert_ne!(
        demo_options(name, &DEMO_SEED),
        demo_options(name, &OTHER_DEMO_SEED),
        "demo options differ across seeds: {name}"
    );
    assert_eq!(
        demo_options(name, &DEMO_SEED),
        signing.demo_options,
        "the demo options for DEMO_SEED: {name}"
    );

    let offline = offline_connector(name);
    let unsigned = delivery(name, cases[0].1.clone())
        .with_header("content-type", "application/json")
        .with_query("project=4");
    let mut attempted = unsigned.clone();
    let Err(error) = offline.sign(&mut attempted) else {
        panic!("an offline connector cannot sign: {name} signed without its secret");
    };
    assert!(
        matches!(&error, SignError::MissingKey(what) if what.contains(signing.key_option)),
        "an offline connector cannot sign: {name}: {error:?} does not name {}",
        signing.key_option
    );
    assert!(
        attempted.headers == unsigned.headers
            && attempted.query == unsigned.query
            && attempted.body == unsigned.body,
        "an offline connector cannot sign: {name} changed the delivery: {attempted:?}"
    );
}

/// Runs the `openssl` command line tool with `args`, `input` on its standard input, and
/// returns its standard output. Panics if it is not installed or fails: tests that need an
/// independent implementation of a vendor's cryptography call it.
pub fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("these tests need the `openssl` command line tool");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
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
