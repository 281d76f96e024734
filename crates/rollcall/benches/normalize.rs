//! `normalize` throughput per connector over its fixtures.
//!
//! Run with `cargo xtask bench normalize` (or `cargo bench -p rollcall --bench normalize`).
//! Each fixture that normalizes successfully is one benchmark; criterion reports time per
//! body and bytes/s. Events/s on one core = events per body / time per body.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rollcall_core::{Delivery, SourceOptions, Timestamp};

// Link every connector into the bench binary.
use rollcall as _;

fn normalize(c: &mut Criterion) {
    let received_at = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors");
    for registration in rollcall_core::registrations() {
        let connector = (registration.build)(&SourceOptions::offline(registration.name)).unwrap();
        let dir = root.join(registration.name).join("fixtures");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                let name = path.to_string_lossy();
                name.ends_with(".json") && !name.ends_with(".expected.json")
            })
            .collect();
        paths.sort();
        let mut group = c.benchmark_group(format!("normalize/{}", registration.name));
        for path in paths {
            let body = std::fs::read(&path).unwrap();
            let delivery = Delivery::new("bench", body.clone(), received_at);
            if connector.normalize(&delivery).is_err() {
                continue;
            }
            let case = path.file_stem().unwrap().to_string_lossy().into_owned();
            group.throughput(Throughput::Bytes(body.len() as u64));
            // Cloning the template shares the body bytes; its body hash is never computed, so
            // every iteration pays for hashing as a real delivery does.
            let template = Delivery::new("bench", body, received_at);
            group.bench_function(BenchmarkId::from_parameter(case), |b| {
                b.iter(|| connector.normalize(&template.clone()).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, normalize);
criterion_main!(benches);
