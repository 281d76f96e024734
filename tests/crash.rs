//! `kill -9` in the middle of a burst of concurrent signed requests loses nothing that was
//! answered 202: after a restart, every accepted event reaches the file sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_core::Timestamp;
use support::*;

const REQUESTS: usize = 400;
const CONCURRENCY: usize = 32;
/// Kill once this many requests have been answered 202.
const KILL_AFTER: usize = 150;
/// The delivery worker's batch: at most this many events may be sent twice after a crash.
const CRASH_WINDOW: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_answered_202_is_delivered_after_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = format!(
        "{}[[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
        sources_toml(),
        events.display()
    );
    let daemon = Daemon::start(dir.path(), &config);
    let url = daemon.url("vcc");
    let client = client();
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);

    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, accepted, next) = (
            client.clone(),
            url.clone(),
            Arc::clone(&accepted),
            Arc::clone(&next),
        );
        let killed = killed_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= REQUESTS || *killed.borrow() {
                    return;
                }
                let body = format!(
                    r#"{{"old": null, "new": {{"userId": {n}, "name": "User {n}", "email": "user{n}@example.com", "state": "active"}}, "timestamp": "2026-11-22T10:00:00+01:00"}}"#
                );
                let signed = sign("vcc", body.as_bytes(), Timestamp::now());
                let mut request = client
                    .post(format!("{url}?{}", signed.url_query.clone().unwrap_or_default()))
                    .body(signed.body.clone());
                for (name, value) in &signed.headers {
                    request = request.header(name, value);
                }
                // Connection errors after the kill are expected: those requests were never
                // answered, so nothing was promised.
                let Ok(response) = request.send().await else { return };
                if response.status().as_u16() != 202 {
                    continue;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else { return };
                if let Some(id) = answer["event_ids"][0].as_str() {
                    accepted.lock().unwrap().push(id.to_owned());
                }
            }
        }));
    }

    // Kill -9 once enough requests have been acknowledged, with more in flight.
    eventually(
        Duration::from_secs(60),
        "enough requests are accepted",
        || accepted.lock().unwrap().len() >= KILL_AFTER,
    )
    .await;
    daemon.kill_hard();
    killed_tx.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= KILL_AFTER);

    // Restart on the same store: the worker resumes from its cursor.
    let daemon = Daemon::start(dir.path(), &config);
    eventually(
        Duration::from_secs(60),
        "every accepted event is in the file",
        || {
            let delivered: Vec<_> = file_lines(&events)
                .iter()
                .map(|e| e["id"].as_str().unwrap_or("").to_owned())
                .collect();
            accepted.iter().all(|id| delivered.contains(id))
        },
    )
    .await;
    let status = daemon.terminate();
    assert!(status.success());

    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in file_lines(&events) {
        *seen
            .entry(event["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let duplicated = seen.values().filter(|count| **count > 1).count();
    eprintln!(
        "crash test: {} answered 202 before the kill, {} distinct events delivered, {duplicated} delivered twice",
        accepted.len(),
        seen.len()
    );
    assert!(
        duplicated <= CRASH_WINDOW,
        "{duplicated} events delivered twice, more than one batch"
    );
    assert!(seen.values().all(|count| *count <= 2));
}
