//! Outputs checked against their published contracts: the CloudEvents 1.0 projection of every
//! connector's events, the example configuration against `rollcall config schema`, and each
//! connector doc page against the unified field list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rollcall_core::{Delivery, Format, OutboundEvent, SourceOptions, Timestamp};
use serde_json::Value;

// Link the connectors.
use rollcall as _;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap()
}

#[test]
fn every_connectors_events_are_valid_cloudevents() {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/schemas/cloudevents-1.0.json")).unwrap(),
    )
    .unwrap();
    let validator = validator(&schema);
    let received_at = Timestamp::parse_rfc3339("2026-01-01T00:00:00.123Z").unwrap();
    let mut checked = 0;
    for registration in rollcall_core::registrations() {
        let connector = (registration.build)(&SourceOptions::offline("acme")).unwrap();
        let fixtures = repo()
            .join("connectors")
            .join(registration.name)
            .join("fixtures");
        for entry in std::fs::read_dir(fixtures).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.ends_with(".expected.json") {
                continue;
            }
            let delivery = Delivery::new("acme", std::fs::read(&path).unwrap(), received_at);
            let Ok(events) = connector.normalize(&delivery) else {
                continue;
            };
            for event in events {
                let rendered = OutboundEvent::render(&event, Format::Cloudevents).unwrap();
                assert_eq!(rendered.content_type, "application/cloudevents+json");
                let document: Value = serde_json::from_slice(&rendered.body).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&document)
                    .map(|error| format!("{error} at {}", error.instance_path()))
                    .collect();
                assert!(errors.is_empty(), "{name}: {errors:?}");
                assert_eq!(
                    document["type"],
                    format!("dev.rollcall.{}", event.event_type)
                );
                assert_eq!(document["source"], "/sources/acme");
                assert_eq!(document["subject"], event.user.id);
                assert_eq!(document["data"]["id"], event.id);
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} events checked");
}

#[test]
fn a_document_breaking_the_cloudevents_rules_is_rejected() {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/schemas/cloudevents-1.0.json")).unwrap(),
    )
    .unwrap();
    let validator = validator(&schema);
    let valid = serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t"});
    assert!(validator.is_valid(&valid));
    for broken in [
        serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s"}),
        serde_json::json!({"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}),
        serde_json::json!({"specversion": "1.0", "id": "", "source": "/s", "type": "t"}),
        serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "time": "yesterday"}),
        serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "Bad_Name": 1}),
    ] {
        assert!(!validator.is_valid(&broken), "{broken}");
    }
}

#[test]
fn the_example_configuration_matches_the_published_schema() {
    let example = rollcall::config::example();
    // Every `${VAR}` set to a value each secret format accepts.
    let config =
        rollcall::config::Config::parse(&example, |_| Some("whsec_c2VjcmV0LXZhbHVl".to_owned()));
    assert!(config.is_ok());
    let as_json: Value = toml::from_str::<toml::Value>(&example.replace("${", "SET-"))
        .map(|value| serde_json::to_value(value).unwrap())
        .unwrap();
    let validator = validator(&rollcall::config::schema());
    let errors: Vec<String> = validator
        .iter_errors(&as_json)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn every_connector_doc_page_has_a_row_for_every_unified_field() {
    for registration in rollcall_core::registrations() {
        let page = repo()
            .join("docs/connectors")
            .join(format!("{}.md", registration.name));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|error| panic!("{}: {error}", page.display()));
        for field in rollcall_core::model::USER_FIELDS
            .iter()
            .copied()
            .chain(["remote_data"])
        {
            assert!(
                text.lines()
                    .any(|line| line.starts_with(&format!("| `{field}`"))),
                "{} has no row for `{field}`",
                page.display()
            );
        }
    }
}

/// The schema `rollcall schema event` prints.
fn published_event_schema() -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["schema", "event"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn every_fixtures_events_match_the_published_event_schema() {
    let schema = published_event_schema();
    assert!(schema["$id"]
        .as_str()
        .unwrap()
        .ends_with("user-event.v1.json"));
    let validator = validator(&schema);
    let received_at = Timestamp::parse_rfc3339("2026-01-01T00:00:00.123Z").unwrap();
    let mut checked = 0;
    for registration in rollcall_core::registrations() {
        let connector = (registration.build)(&SourceOptions::offline("acme")).unwrap();
        let fixtures = repo()
            .join("connectors")
            .join(registration.name)
            .join("fixtures");
        for entry in std::fs::read_dir(fixtures).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.ends_with(".expected.json") {
                continue;
            }
            let delivery = Delivery::new("acme", std::fs::read(&path).unwrap(), received_at);
            let Ok(events) = connector.normalize(&delivery) else {
                continue;
            };
            for event in events {
                let document = serde_json::to_value(&event).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&document)
                    .map(|error| format!("{error} at {}", error.instance_path()))
                    .collect();
                assert!(errors.is_empty(), "{name}: {errors:?}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} events checked");
}

#[test]
fn the_event_schema_rejects_what_the_contract_forbids() {
    let validator = validator(&published_event_schema());
    let valid = serde_json::json!({
        "id": "01KDVDNA007D1QGNQ66GAD5YMN", "type": "user.created", "source": "zd",
        "connector": "zendesk", "vendor_event": {"type": "x"},
        "received_at": "2026-01-01T00:00:00Z", "user": {"id": "1"}
    });
    assert!(validator.is_valid(&valid));
    for (pointer, value) in [
        ("/type", serde_json::json!("user.merged")),
        ("/user/id", serde_json::json!(1)),
        (
            "/received_at",
            serde_json::json!("2026-01-01T01:00:00+01:00"),
        ),
        ("/user/nickname", serde_json::json!("x")),
    ] {
        let mut document = valid.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        document
            .pointer_mut(if parent.is_empty() { "" } else { parent })
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), value);
        assert!(!validator.is_valid(&document), "{pointer} accepted");
    }
}
