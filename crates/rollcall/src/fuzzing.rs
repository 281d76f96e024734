//! The fuzz targets' bodies, shared by `fuzz/` (cargo-fuzz, nightly features through
//! `RUSTC_BOOTSTRAP`) and by the stable test below, which runs every target over its corpus
//! in `fuzz/corpus/<target>/` on each `cargo test`.
//!
//! A target may return errors for any input; it may not panic, hang or allocate without
//! bound. The few properties checked besides are those that must hold for every input.
#![doc(hidden)]

use rollcall_core::{Delivery, SourceOptions, Timestamp};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: its name (the file name under `fuzz/fuzz_targets/` and the corpus
/// directory) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("verify_freshservice", |data| verify("freshservice", data)),
    ("verify_highlevel", |data| verify("highlevel", data)),
    ("verify_okta", |data| verify("okta", data)),
    ("verify_vcclive", |data| verify("vcclive", data)),
    ("verify_zendesk", |data| verify("zendesk", data)),
    ("normalize_freshservice", |data| {
        normalize("freshservice", data)
    }),
    ("normalize_highlevel", |data| normalize("highlevel", data)),
    ("normalize_okta", |data| normalize("okta", data)),
    ("normalize_vcclive", |data| normalize("vcclive", data)),
    ("normalize_zendesk", |data| normalize("zendesk", data)),
    ("config", config),
    ("scim_filter", scim_filter),
];

/// Runs the target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    if let Some((_, target)) = TARGETS.iter().find(|(target, _)| *target == name) {
        target(data);
    }
}

/// A fixed receive time, so a run is reproducible.
fn received_at() -> Timestamp {
    Timestamp::from_unix_seconds(1_767_225_600).unwrap_or_else(|_| Timestamp::now())
}

/// A request from fuzz input: lines up to the first empty one are `name: value` headers (a
/// line starting with `?` is the query string), the rest is the body.
fn delivery(data: &[u8]) -> Delivery {
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(end) => (&data[..end], &data[end + 2..]),
        None => (&[][..], data),
    };
    let mut delivery = Delivery::new("fuzz", body.to_vec(), received_at());
    for line in String::from_utf8_lossy(head).lines() {
        if let Some(query) = line.strip_prefix('?') {
            delivery.query = Some(query.to_owned());
        } else if let Some((name, value)) = line.split_once(':') {
            delivery.headers.insert(name.trim(), value.trim());
        }
    }
    delivery
}

/// `precheck` and `verify` of a connector with the demo source's secrets, then a signed
/// copy of the same body, which must verify.
fn verify(connector: &str, data: &[u8]) {
    let Some(registration) = rollcall_core::registration(connector) else {
        return;
    };
    let options = SourceOptions::new("fuzz", (registration.demo_options)(&[7; 32]));
    let Ok(built) = (registration.build)(&options) else {
        return;
    };
    let delivery = delivery(data);
    let _ = built.precheck(&delivery);
    let _ = built.verify(&delivery);
    let _ = built.handshake(&delivery);
    let mut signed = Delivery::new("fuzz", delivery.body.clone(), received_at());
    if built.sign(&mut signed).is_ok() {
        assert!(
            built.precheck(&signed).is_ok(),
            "a signed delivery failed the precheck"
        );
    }
}

/// The host's body check, `normalize`, `dedup_key` and `without_secrets` of an offline
/// connector. What quarantine keeps must normalize exactly as the delivery did.
fn normalize(connector: &str, data: &[u8]) {
    let Some(registration) = rollcall_core::registration(connector) else {
        return;
    };
    let Ok(built) = (registration.build)(&SourceOptions::offline("fuzz")) else {
        return;
    };
    let delivery = delivery(data);
    let _ = rollcall_core::json::check_body(&delivery.body);
    let normalized = built.normalize(&delivery);
    let _ = built.dedup_key(&delivery);
    let kept = built.without_secrets(&delivery);
    if kept.body != delivery.body {
        assert_eq!(
            built
                .normalize(&kept)
                .map(|events| events.len())
                .map_err(|e| e.code()),
            normalized.as_ref().map(Vec::len).map_err(|e| e.code()),
            "removing secrets changed what the delivery normalizes to"
        );
    }
    if let Ok(events) = normalized {
        for event in events {
            let _ = serde_json::to_vec(&event);
        }
    }
}

/// The configuration loader, on text (invalid UTF-8 is the loader's `cannot read`).
fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::parse(text, |name| Some(format!("value-of-{name}")));
    }
}

/// The SCIM list parameters and filter parser, on a query string.
fn scim_filter(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let _ = crate::daemon::scim::list_params(Some(&query));
    let _ = crate::daemon::scim::parse_filter(&query);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every fuzz target over every file of its corpus, on stable.
    #[test]
    fn every_fuzz_target_runs_clean_over_its_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let mut count = 0;
            for entry in std::fs::read_dir(&dir).unwrap() {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                target(&data);
                count += 1;
            }
            assert!(count > 0, "no corpus for {name} in {}", dir.display());
        }
    }
}
