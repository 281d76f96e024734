//! Delivery to a slow endpoint: `cargo xtask bench delivery` (see docs/benchmarks.md).
//!
//! Journals `--events` events (default 5,000) for `--users` users (default 500) in a
//! temporary store, then delivers them with a real delivery worker and the HTTP sink to a
//! local receiver that answers each request after `--latency-ms` (default 100 ms), once per
//! `--concurrency` value (default `1,16`). Prints the wall-clock time and events/s of each
//! run and their ratio, and fails unless every event arrived and no user's events arrived
//! out of order (checked at the receiver). Bounded: at most 20,000 events, 64 in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use axum::body::Bytes;
use axum::extract::State;
use rollcall::config::{DeliveryConfig, SinkConfig, SinkDelivery};
use rollcall::daemon::worker::Worker;
use rollcall::metrics::Metrics;
use rollcall_core::{EventType, SinkOptions, Timestamp, User, UserEvent, VendorEvent};
use rollcall_store::{IngestBatch, Store};
use tokio::sync::watch;

#[derive(Debug)]
struct Options {
    events: usize,
    users: usize,
    latency: Duration,
    concurrency: Vec<usize>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        events: 5_000,
        users: 500,
        latency: Duration::from_millis(100),
        concurrency: vec![1, 16],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().map(String::as_str).unwrap_or_default();
        match arg.as_str() {
            "--events" => options.events = value.parse::<usize>()?.clamp(1, 20_000),
            "--users" => options.users = value.parse::<usize>()?.clamp(1, 20_000),
            "--latency-ms" => {
                options.latency = Duration::from_millis(value.parse::<u64>()?.min(2_000))
            }
            "--concurrency" => {
                options.concurrency = value
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().map(|n| n.clamp(1, 64)))
                    .collect::<Result<_, _>>()?
            }
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(options)
}

/// What the receiver saw: per user, the event numbers in arrival order.
#[derive(Debug, Default)]
struct Received {
    by_user: Mutex<HashMap<String, Vec<u64>>>,
    latency: Duration,
}

async fn receive(State(received): State<Arc<Received>>, body: Bytes) -> &'static str {
    tokio::time::sleep(received.latency).await;
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let user = event["user"]["id"].as_str().unwrap_or_default().to_owned();
    let number = event["id"]
        .as_str()
        .and_then(|id| id.strip_prefix('e'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    received
        .by_user
        .lock()
        .unwrap()
        .entry(user)
        .or_default()
        .push(number);
    "ok"
}

async fn journal(store: &Store, events: usize, users: usize) -> Result<()> {
    let base = 1_800_000_000_000;
    let mut batch = Vec::new();
    for n in 1..=events {
        let at = Timestamp::from_unix_millis(base + n as i64)?;
        batch.push(UserEvent {
            id: format!("e{n:06}"),
            event_type: EventType::Updated,
            source: "bench".into(),
            connector: "bench".into(),
            vendor_event: VendorEvent::default(),
            received_at: at,
            actor: None,
            user: User::with_id(format!("u{:05}", n % users)),
            previous: None,
            changes: None,
            partial: false,
        });
        if batch.len() == 100 || n == events {
            store
                .ingest(IngestBatch {
                    source: "bench".into(),
                    dedup_key: format!("k{n}"),
                    received_at: at,
                    events: std::mem::take(&mut batch),
                })
                .await?;
        }
    }
    Ok(())
}

/// One run: returns the wall-clock time from the worker's start to its last event.
async fn run(options: &Options, concurrency: usize) -> Result<Duration> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("rollcall.db"))?;
    journal(&store, options.events, options.users).await?;
    let received = Arc::new(Received {
        latency: options.latency,
        ..Received::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/", axum::routing::post(receive))
        .with_state(Arc::clone(&received));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let registration = rollcall_core::sink_registration("http").expect("the http sink");
    let sink = (registration.build)(&SinkOptions::new(
        "bench",
        serde_json::json!({ "url": url }),
    ))?;
    let mut delivery = SinkDelivery::for_kind("http");
    delivery.concurrency = concurrency;
    let config = SinkConfig {
        id: "bench".into(),
        kind: "http".into(),
        sources: None,
        types: None,
        format: Default::default(),
        delivery,
        options: serde_json::Value::Null,
    };
    let worker = Worker::new(
        config,
        sink,
        store.clone(),
        Arc::new(Metrics::default()),
        DeliveryConfig::default(),
        "bench".into(),
    );
    let started = Instant::now();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(worker.run(shutdown));
    let last = options.events as i64;
    while store.position("bench").await? < last {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let _ = stop.send(true);
    task.await?;
    server.abort();
    store.close().await;

    let by_user = received.by_user.lock().unwrap();
    let arrived: usize = by_user.values().map(Vec::len).sum();
    ensure!(
        arrived >= options.events,
        "only {arrived} of {} events arrived",
        options.events
    );
    for (user, numbers) in by_user.iter() {
        ensure!(
            numbers.windows(2).all(|pair| pair[0] <= pair[1]),
            "user {user}: events arrived out of order: {numbers:?}"
        );
    }
    let distinct: usize = by_user
        .values()
        .map(|numbers| {
            let mut numbers = numbers.clone();
            numbers.dedup();
            numbers.len()
        })
        .sum();
    ensure!(
        distinct == options.events,
        "{distinct} distinct events arrived"
    );
    Ok(took)
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    println!(
        "delivery: {} events for {} users, receiver answering in {} ms",
        options.events,
        options.users,
        options.latency.as_millis()
    );
    let mut results = Vec::new();
    for &concurrency in &options.concurrency {
        let took = run(&options, concurrency).await?;
        let rate = options.events as f64 / took.as_secs_f64();
        println!(
            "concurrency {concurrency:>3}: {:>8.2} s  {rate:>8.1} events/s  (every event arrived, per-user order kept)",
            took.as_secs_f64()
        );
        results.push((concurrency, took));
    }
    if let (Some((low, slow)), Some((high, fast))) = (results.first(), results.last()) {
        if low != high {
            println!(
                "concurrency {high} is {:.1}x faster than concurrency {low}",
                slow.as_secs_f64() / fast.as_secs_f64()
            );
        }
    }
    Ok(())
}
