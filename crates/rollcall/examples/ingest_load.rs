//! A bounded load run against a real daemon over loopback: `cargo xtask bench ingest`.
//!
//! Starts the given `rollcall` binary on a temporary configuration (three sources, a file
//! sink), sends distinct signed requests at a fixed concurrency for a fixed time, stops the
//! daemon with SIGTERM (which drains the sink), and prints requests/s, latency percentiles
//! and the ledger: sent = accepted + duplicate + rejected + failed, and accepted = events
//! delivered to the file sink.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rollcall_core::{Delivery, SourceOptions, Timestamp};

// Link the connectors for signing.
use rollcall as _;

struct Args {
    binary: String,
    seconds: u64,
    concurrency: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        binary: "target/release/rollcall".to_owned(),
        seconds: 10,
        concurrency: 32,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().context("flag without value")?;
        match flag.as_str() {
            "--binary" => args.binary = value,
            "--seconds" => args.seconds = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    // Bounded by design: a load run never runs unattended for long.
    args.seconds = args.seconds.clamp(1, 120);
    args.concurrency = args.concurrency.clamp(1, 512);
    Ok(args)
}

const SECRET: &str = "whsec_bG9hZC10ZXN0LXNlY3JldC1mb3ItcmVxdWVzdHM=";

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events.jsonl");
    let config = format!(
        "[ingest]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [store]\ntype = \"sqlite\"\npath = \"{}\"\n\n\
         [[sources]]\nid = \"fs\"\nconnector = \"freshservice\"\nsigning_secret = \"{SECRET}\"\n\n\
         [[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
        dir.path().join("rollcall.db").display(),
        events.display()
    );
    let config_path = dir.path().join("rollcall.toml");
    std::fs::write(&config_path, config)?;

    let mut child = Command::new(&args.binary)
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("ROLLCALL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", args.binary))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ingest = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("rollcall: ingest listening on ") {
                ingest = Some(address.to_owned());
            }
            if let Some(address) = line.strip_prefix("rollcall: admin listening on ") {
                let _ = tx.send((ingest.clone().unwrap_or_default(), address.to_owned()));
            }
        }
    });
    let (base, admin) = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the daemon did not start")?;
    let url = format!("{base}/hooks/fs");

    let registration = rollcall_core::registration("freshservice").context("no freshservice")?;
    let connector = (registration.build)(&SourceOptions::new(
        "fs",
        serde_json::json!({"signing_secret": SECRET}),
    ))
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    let connector: Arc<dyn rollcall_core::Connector> = Arc::from(connector);
    let template: serde_json::Value = serde_json::from_slice(&std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../connectors/freshservice/fixtures/onUserCreate.json"),
    )?)?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let outcomes = Arc::new(Mutex::new([0usize; 4])); // accepted, duplicate, rejected, failed
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, stop, counter, latencies, outcomes, connector, template) = (
            client.clone(),
            url.clone(),
            Arc::clone(&stop),
            Arc::clone(&counter),
            Arc::clone(&latencies),
            Arc::clone(&outcomes),
            Arc::clone(&connector),
            template.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let mut body = template.clone();
                body["data"]["user"]["id"] = serde_json::json!(n + 1_000_000);
                body["data"]["user"]["primary_email"] =
                    serde_json::json!(format!("user{n}@example.com"));
                let body = serde_json::to_vec(&body).unwrap();
                let mut delivery = Delivery::new("fs", body, Timestamp::now());
                connector.sign(&mut delivery).unwrap();
                let mut request = client.post(&url).body(delivery.body.clone());
                for (name, value) in delivery.headers.iter() {
                    request = request.header(name, value);
                }
                let sent = Instant::now();
                let slot = match request.send().await {
                    Ok(response) => match response.status().as_u16() {
                        202 => 0,
                        200 => 1,
                        _ => 2,
                    },
                    Err(_) => 3,
                };
                let elapsed = sent.elapsed();
                latencies.lock().unwrap().push(elapsed);
                outcomes.lock().unwrap()[slot] += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();

    // Let the file sink catch up (bounded), so the ledger compares finished work; the time
    // it takes is the delivery backlog the load left behind.
    let accepted_so_far = outcomes.lock().unwrap()[0];
    let drain_started = Instant::now();
    let count_lines = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .count()
    };
    while count_lines() < accepted_so_far && drain_started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drain_started.elapsed();
    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let read_metric = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let commits = read_metric("rollcall_store_commits_total ");
    let writes = read_metric("rollcall_store_writes_total ");

    // SIGTERM: the daemon stops cleanly.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    let delivered = std::fs::read_to_string(&events)
        .unwrap_or_default()
        .lines()
        .count();

    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let [accepted, duplicate, rejected, failed] = *outcomes.lock().unwrap();
    let sent = latencies.len();
    println!(
        "ingest load run: {} s, concurrency {}",
        args.seconds, args.concurrency
    );
    println!("requests/s: {:.0}", sent as f64 / elapsed.as_secs_f64());
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(0.50).as_secs_f64() * 1000.0,
        percentile(0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    println!(
        "store: {writes:.0} writes in {commits:.0} commits ({:.1} writes per fsync)",
        writes / commits.max(1.0)
    );
    println!(
        "delivery: backlog drained {:.1} s after the load stopped; file sink {:.0} events/s over the run",
        drain.as_secs_f64(),
        delivered as f64 / (elapsed + drain).as_secs_f64()
    );
    println!(
        "ledger: sent {sent} = accepted {accepted} + duplicate {duplicate} + rejected {rejected} + failed {failed}; delivered to file sink {delivered}; daemon exit {status}"
    );
    let balanced = sent == accepted + duplicate + rejected + failed && accepted == delivered;
    println!("ledger balanced: {balanced}");
    if !balanced || !status.success() {
        bail!("the ledger does not balance");
    }
    Ok(())
}
