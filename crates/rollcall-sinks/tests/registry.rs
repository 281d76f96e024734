//! Which sinks register themselves, and whether their example configs build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_core::SinkOptions;

// Links the crate so its registrations are in the registry.
use rollcall_sinks as _;

/// The kinds this build's features enable, sorted like `sink_registrations`.
fn enabled_kinds() -> Vec<&'static str> {
    let mut kinds = Vec::new();
    if cfg!(feature = "file") {
        kinds.push("file");
    }
    if cfg!(feature = "http") {
        kinds.push("http");
    }
    if cfg!(feature = "nats") {
        kinds.push("nats");
    }
    if cfg!(feature = "postgres") {
        kinds.push("postgres");
    }
    if cfg!(feature = "redis") {
        kinds.push("redis");
    }
    if cfg!(feature = "stdout") {
        kinds.push("stdout");
    }
    kinds
}

#[test]
fn the_registry_lists_exactly_the_enabled_sink_kinds() {
    let kinds: Vec<&str> = rollcall_core::sink_registrations()
        .iter()
        .map(|registration| registration.kind)
        .collect();
    assert_eq!(kinds, enabled_kinds());
}

/// `${NAME}` replaced by a value every option accepts (a valid `whsec_` secret), as the
/// host's interpolation would do with a real environment.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}').expect("a closing brace");
        out.push_str(&rest[..start]);
        out.push_str("whsec_c2VjcmV0");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_example_config_is_one_sinks_table_that_builds() {
    for registration in rollcall_core::sink_registrations() {
        let kind = registration.kind;
        assert!(!registration.description.is_empty(), "{kind}");
        let document: toml::Table = toml::from_str(&interpolate(registration.example_config))
            .unwrap_or_else(|error| panic!("{kind}: {error}"));
        let sinks = document["sinks"].as_array().expect("a [[sinks]] array");
        assert_eq!(sinks.len(), 1, "{kind}");
        let mut table: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::to_value(&sinks[0]).unwrap()).unwrap();
        assert_eq!(table.remove("type"), Some(kind.into()), "{kind}");
        let id = table.remove("id").expect("an id");
        let options = SinkOptions::new(id.as_str().unwrap(), table.into());
        if let Err(error) = (registration.build)(&options) {
            panic!("{kind}: the example does not build: {error}");
        }
    }
}
