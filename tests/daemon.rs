//! The daemon end to end: a real `rollcall serve` on free ports, real HTTP, a real
//! SQLite journal, file and HTTP sinks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use rollcall_core::Timestamp;
use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Sends raw request bytes and reads one response: status and JSON body.
async fn raw_request(base: &str, head: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (
                    status,
                    serde_json::from_str(&body[..length]).unwrap_or(Value::Null),
                );
            }
        }
    }
    panic!(
        "no complete response: {}",
        String::from_utf8_lossy(&response)
    );
}

fn file_sink(dir: &std::path::Path) -> String {
    format!(
        "[[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
        dir.join("events.jsonl").display()
    )
}

/// An HTTP sink `crm` posting to `url`.
fn http_sink(url: &str) -> String {
    format!("[[sinks]]\nid = \"crm\"\ntype = \"http\"\nurl = \"{url}\"\n")
}

fn fast_retries() -> &'static str {
    "[delivery]\nmax_attempts = 4\ninitial_backoff_ms = 20\nmax_backoff_ms = 100\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ingest_answer_has_its_status_and_code() {
    let dir = tempfile::tempdir().unwrap();
    // No ingest limit configured: the default 1 MiB applies.
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let client = client();
    let body = fixture("zendesk", "webhook_user_created.json");

    // 202 once the commit is durable.
    let signed = sign("zd", &body, Timestamp::now());
    let (status, answer) = post_signed(&client, &daemon.url("zd"), &signed).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let event_ids = answer["event_ids"].clone();
    assert_eq!(event_ids.as_array().unwrap().len(), 1);

    // 200 duplicate for the same vendor event, with the first event ids.
    let again = sign("zd", &body, Timestamp::now());
    let (status, answer) = post_signed(&client, &daemon.url("zd"), &again).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"duplicate": true, "event_ids": event_ids}));

    // 401 signature_missing: no signature headers.
    let (status, answer) = post_signed(
        &client,
        &daemon.url("zd"),
        &Signed {
            url_query: None,
            headers: vec![],
            body: body.clone(),
        },
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("signature_missing"))
    );

    // 401 signature_invalid: one byte changed after signing.
    let mut tampered = sign("zd", &body, Timestamp::now());
    tampered.body[10] ^= 1;
    let (status, answer) = post_signed(&client, &daemon.url("zd"), &tampered).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("signature_invalid"))
    );

    // 401 timestamp_out_of_tolerance: signed an hour ago.
    let stale = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() - 3600).unwrap();
    let (status, answer) = post_signed(&client, &daemon.url("zd"), &sign("zd", &body, stale)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("timestamp_out_of_tolerance"))
    );

    // 400 payload_invalid, with the path, and the delivery kept in quarantine.
    let bad = br#"{"type": "zen:event-type:user.created", "id": "x1", "time": "not a time", "detail": {"id": "5"}}"#;
    let (status, answer) = daemon.send(&client, "zd", bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_invalid");
    assert_eq!(answer["error"]["path"], "time");
    assert!(answer["error"]["quarantine_id"].is_i64());

    // 400 event_unsupported, also quarantined.
    let other = br#"{"type": "zen:event-type:organization.created", "id": "x2", "time": "2099-07-04T05:33:18Z", "detail": {"id": "5"}}"#;
    let (status, answer) = daemon.send(&client, "zd", other).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("event_unsupported"))
    );

    // 404 source_unknown.
    let (status, answer) = post_signed(&client, &daemon.url("nope"), &signed).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("source_unknown"))
    );

    // 413 body_too_large, answered from the declared length before the body is read (a
    // raw request: an HTTP client would still be writing the body when the answer comes).
    let (status, answer) = raw_request(
        &daemon.ingest,
        "POST /hooks/zd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n\r\n",
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    // 405 for a GET that is no vendor handshake.
    let response = client.get(daemon.url("zd")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);

    // The quarantine holds both rejected deliveries, without their signature headers.
    let quarantine: Value = get_json(&client, format!("{}/v1/quarantine", daemon.admin)).await;
    let entries = quarantine["quarantine"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        let headers = entry["headers"].to_string().to_ascii_lowercase();
        assert!(!headers.contains("signature\""), "{headers}");
    }

    // Metrics count each outcome by code.
    let metrics = client
        .get(format!("{}/metrics", daemon.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"rollcall_ingest_requests_total{source="zd",outcome="accepted"} 1"#));
    assert!(
        metrics.contains(r#"rollcall_ingest_requests_total{source="zd",outcome="duplicate"} 1"#)
    );
    assert!(metrics
        .contains(r#"rollcall_ingest_rejected_total{source="zd",code="signature_invalid"} 1"#));
    assert!(metrics
        .contains(r#"rollcall_ingest_rejected_total{source="_unknown",code="source_unknown"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_delivered_once_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &format!("{}{}", sources_toml(), file_sink(dir.path())),
    );
    let client = client();
    let body = fixture("vcclive", "user_created.json");
    for _ in 0..3 {
        let (status, _) = daemon.send(&client, "vcc", &body).await;
        assert!(status == 202 || status == 200);
    }
    // Several distinct deliveries right before SIGTERM: all answered 202 must reach the file.
    let mut accepted = Vec::new();
    for n in 0..20 {
        let body = format!(
            r#"{{"old": null, "new": {{"userId": {n}, "name": "User {n}", "state": "active"}}, "timestamp": "2026-11-22T10:00:00+01:00"}}"#
        );
        let (status, answer) = daemon.send(&client, "vcc", body.as_bytes()).await;
        assert_eq!(status, 202);
        accepted.push(answer["event_ids"][0].as_str().unwrap().to_owned());
    }
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status:?}");
    let lines = file_lines(&dir.path().join("events.jsonl"));
    let ids: Vec<_> = lines
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let created_180 = lines.iter().filter(|e| e["user"]["id"] == "180").count();
    assert_eq!(
        created_180, 1,
        "the repeated delivery reached the sink more than once"
    );
    for id in &accepted {
        assert!(
            ids.contains(id),
            "event {id} was accepted but not delivered before exit"
        );
    }
    assert_eq!(ids.len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_sink_failing_three_times_then_succeeding_gets_the_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(3, 503).await;
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "{}{}{}",
            fast_retries(),
            sources_toml(),
            http_sink(&receiver.url)
        ),
    );
    let client = client();
    let body = fixture("freshservice", "onUserCreate.json");
    let (status, answer) = daemon.send(&client, "fs", &body).await;
    assert_eq!(status, 202);
    let id = answer["event_ids"][0].clone();
    eventually(WAIT, "the event is delivered", || {
        receiver.delivered().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.attempts(), 4);
    assert_eq!(receiver.delivered().len(), 1);
    assert_eq!(receiver.delivered()[0]["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failing_sink_makes_a_dead_letter_that_replays() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(usize::MAX, 400).await;
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "{}{}{}",
            fast_retries(),
            sources_toml(),
            http_sink(&receiver.url)
        ),
    );
    let client = client();
    let body = fixture("vcclive", "user_created.json");
    let (status, _) = daemon.send(&client, "vcc", &body).await;
    assert_eq!(status, 202);
    let admin = daemon.admin.clone();
    let letters = loop {
        let page: Value = get_json(&client, format!("{admin}/v1/dead-letters?sink=crm")).await;
        if !page["dead_letters"].as_array().unwrap().is_empty() {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A 400 is permanent: one attempt, no retries.
    assert_eq!(receiver.attempts(), 1);
    assert_eq!(letters["dead_letters"][0]["state"], "dead");

    // The receiver is fixed; the operator replays the dead letters.
    receiver
        .failures
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let replay: Value = post_json(
        &client,
        format!("{admin}/v1/dead-letters/replay"),
        Some(json!({"sink": "crm"})),
    )
    .await;
    assert_eq!(replay["queued"], 1);
    eventually(WAIT, "the replayed event arrives", || {
        receiver.delivered().len() == 1
    })
    .await;
    assert_eq!(receiver.delivered()[0]["user"]["id"], "180");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_delivery_replays_after_the_source_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    // The source is misconfigured: it expects encrypted bodies but VCC sends plain JSON.
    let broken = sources_toml().replace(
        &format!("secret_key = \"{VCC_SECRET}\""),
        &format!("secret_key = \"{VCC_SECRET}\"\ncipher = \"aes-256-ctr\"\nencryption_key = \"k\""),
    );
    let daemon = Daemon::start(dir.path(), &format!("{broken}{}", file_sink(dir.path())));
    let client = client();
    let body = fixture("vcclive", "user_created.json");
    let signed = Signed {
        url_query: Some(format!("secret-key={VCC_SECRET}")),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.clone(),
    };
    let (status, answer) = post_signed(&client, &daemon.url("vcc"), &signed).await;
    assert_eq!(status, 400, "{answer}");
    let id = answer["error"]["quarantine_id"].as_i64().unwrap();
    // The stored query has no secret key.
    let entry: Value = get_json(&client, format!("{}/v1/quarantine/{id}", daemon.admin)).await;
    assert!(!entry.to_string().contains(VCC_SECRET));
    drop(daemon);

    // Fixed configuration, same store: the replay commits and delivers the event.
    let daemon = Daemon::start(
        dir.path(),
        &format!("{}{}", sources_toml(), file_sink(dir.path())),
    );
    let replay: Value = post_json(
        &client,
        format!("{}/v1/quarantine/{id}/replay", daemon.admin),
        None,
    )
    .await;
    assert_eq!(replay["accepted"], 1, "{replay}");
    let path = dir.path().join("events.jsonl");
    eventually(WAIT, "the replayed event reaches the file", || {
        file_lines(&path).len() == 1
    })
    .await;
    assert_eq!(file_lines(&path)[0]["user"]["id"], "180");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollcall_sign_prints_a_request_the_daemon_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let body = repo().join("connectors/zendesk/fixtures/webhook_user_created.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args([
            "sign",
            "--json",
            "--source",
            "zd",
            "--url",
            &daemon.ingest,
            "--config",
        ])
        .arg(dir.path().join("rollcall.toml"))
        .arg(&body)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let request: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(request["url"], daemon.url("zd"));
    let mut post = client().post(request["url"].as_str().unwrap());
    for header in request["headers"].as_array().unwrap() {
        post = post.header(header[0].as_str().unwrap(), header[1].as_str().unwrap());
    }
    let response = post
        .body(request["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);

    // The curl form carries the same signature headers, shell-quoted.
    let curl = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["sign", "--source", "zd", "--config"])
        .arg(dir.path().join("rollcall.toml"))
        .arg(&body)
        .output()
        .unwrap();
    let text = String::from_utf8(curl.stdout).unwrap();
    assert!(text.starts_with("curl -sS -X POST '"), "{text}");
    assert!(text.contains("-H 'x-zendesk-webhook-signature: "), "{text}");
    assert!(text.contains("--data-binary '"), "{text}");

    // An unknown source is a coded error naming the ones that exist.
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["sign", "--source", "nope", "--config"])
        .arg(dir.path().join("rollcall.toml"))
        .arg(&body)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("source_unknown"));
}

fn rollcall_cli(daemon: &Daemon, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .args(["--admin", &daemon.admin])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_read_and_replay_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &format!("{}{}", sources_toml(), file_sink(dir.path())),
    );
    let client = client();
    let body = fixture("vcclive", "user_created.json");
    let (status, answer) = daemon.send(&client, "vcc", &body).await;
    assert_eq!(status, 202);
    let id = answer["event_ids"][0].as_str().unwrap().to_owned();
    let bad =
        br#"{"old": null, "new": {"name": "no id"}, "timestamp": "2026-11-22T10:00:00+01:00"}"#;
    let (status, _) = daemon.send(&client, "vcc", bad).await;
    assert_eq!(status, 400);
    let path = dir.path().join("events.jsonl");
    eventually(WAIT, "the event reaches the file", || {
        file_lines(&path).len() == 1
    })
    .await;

    // events tail prints the journal as JSON lines, each with its sequence number.
    let (code, out) = rollcall_cli(&daemon, &["events", "tail"]);
    assert_eq!(code, 0);
    let tailed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tailed.len(), 1);
    assert_eq!(tailed[0]["event"]["id"], id.as_str());
    assert!(tailed[0]["seq"].is_i64());

    // quarantine list shows the rejected delivery.
    let (code, out) = rollcall_cli(&daemon, &["quarantine", "list", "--state", "open"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["quarantine"][0]["code"], "payload_invalid");
    assert_eq!(listed["quarantine"][0]["path"], "new.userId");

    // dead-letters list is empty: the file sink took everything.
    let (code, out) = rollcall_cli(&daemon, &["dead-letters", "list"]);
    assert_eq!(code, 0);
    let letters: Value = serde_json::from_str(&out).unwrap();
    assert!(letters["dead_letters"].as_array().unwrap().is_empty());

    // replay --since sends the event to the sink again.
    let (code, out) = rollcall_cli(
        &daemon,
        &[
            "replay",
            "--sink",
            "archive",
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{out}");
    eventually(WAIT, "the replayed event reaches the file", || {
        file_lines(&path).len() == 2
    })
    .await;
    let lines = file_lines(&path);
    assert_eq!(lines[0]["id"], lines[1]["id"]);

    // An unknown sink is an error with its code, exit 2.
    let (code, _) = rollcall_cli(
        &daemon,
        &[
            "replay",
            "--sink",
            "nope",
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 2);
}

/// `/v1/sinks` for one sink.
async fn sink_view(client: &reqwest::Client, admin: &str, id: &str) -> Value {
    let page: Value = get_json(client, format!("{admin}/v1/sinks")).await;
    page["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sink| sink["id"] == id)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sink_holds_its_events_until_resumed_and_shows_its_lag() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 200).await;
    let daemon = Daemon::start(
        dir.path(),
        &format!("{}{}", sources_toml(), http_sink(&receiver.url)),
    );
    let client = client();
    let view = sink_view(&client, &daemon.admin, "crm").await;
    assert_eq!(view["concurrency"], 16);
    assert_eq!(view["retry_horizon_hours"], 72.0);
    assert_eq!(view["paused"], false);

    let (code, out) = rollcall_cli(&daemon, &["sinks", "pause", "crm"]);
    assert_eq!(code, 0, "{out}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["paused"], true);
    let (status, _) = daemon
        .send(&client, "vcc", &fixture("vcclive", "user_created.json"))
        .await;
    assert_eq!(status, 202);
    // The pause was committed before the event: the worker sees it first and sends nothing,
    // while the lag shows what waits.
    let mut view = Value::Null;
    for _ in 0..400 {
        view = sink_view(&client, &daemon.admin, "crm").await;
        if view["lag_events"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(view["state"], "paused");
    assert_eq!(view["lag_events"], 1, "{view}");
    assert_eq!(view["position"], 0);
    assert!(receiver.delivered().is_empty());
    let (code, out) = rollcall_cli(&daemon, &["sinks", "list"]);
    assert_eq!(code, 0, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["sinks"][0]["state"], "paused");

    let (code, _) = rollcall_cli(&daemon, &["sinks", "resume", "crm"]);
    assert_eq!(code, 0);
    eventually(WAIT, "the held event arrives after the resume", || {
        receiver.delivered().len() == 1
    })
    .await;
    let metrics = client
        .get(format!("{}/metrics", daemon.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "rollcall_sink_lag_events{sink=\"crm\"}",
        "rollcall_sink_oldest_undelivered_seconds{sink=\"crm\"}",
        "rollcall_sink_inflight{sink=\"crm\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // An unknown sink is a 404 with its code.
    let (code, _) = rollcall_cli(&daemon, &["sinks", "pause", "nope"]);
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replay_refuses_an_older_state_unless_forced_and_needs_all_for_every_sink() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(usize::MAX, 400).await;
    let daemon = Daemon::start(
        dir.path(),
        &format!("{}{}", sources_toml(), http_sink(&receiver.url)),
    );
    let client = client();
    // User 180 is created, then changed: both are refused (400) and become dead letters.
    for name in ["user_created.json", "user_changed.json"] {
        let (status, _) = daemon.send(&client, "vcc", &fixture("vcclive", name)).await;
        assert_eq!(status, 202);
    }
    let admin = daemon.admin.clone();
    let letters = loop {
        let page: Value = get_json(&client, format!("{admin}/v1/dead-letters?sink=crm")).await;
        if page["dead_letters"].as_array().unwrap().len() == 2 {
            break page["dead_letters"].as_array().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let created = letters.iter().find(|l| l["seq"] == 1).unwrap()["id"].clone();
    let changed = letters.iter().find(|l| l["seq"] == 2).unwrap()["id"].clone();
    receiver
        .failures
        .store(0, std::sync::atomic::Ordering::SeqCst);

    // Every sink at once needs --all.
    let (code, _) = rollcall_cli(&daemon, &["dead-letters", "replay"]);
    assert_eq!(code, 2);
    // A dry run says what would go and what would not: the creation is older than the
    // user's current state.
    let (code, out) = rollcall_cli(&daemon, &["dead-letters", "replay", "--all", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["would_replay"][0]["id"], changed);
    assert_eq!(plan["refused"][0]["id"], created);
    assert!(plan["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("newer state"));
    assert!(receiver.delivered().is_empty());

    let (code, out) = rollcall_cli(&daemon, &["dead-letters", "replay", "--sink", "crm"]);
    assert_eq!(code, 0, "{out}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["queued"], 1);
    eventually(WAIT, "the current state arrives", || {
        receiver.delivered().len() == 1
    })
    .await;
    assert_eq!(receiver.delivered()[0]["type"], "user.updated");

    // --force sends the older one too, knowingly.
    let (code, out) = rollcall_cli(
        &daemon,
        &["dead-letters", "replay", "--sink", "crm", "--force"],
    );
    assert_eq!(code, 0, "{out}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["queued"], 1);
    eventually(WAIT, "the forced replay arrives", || {
        receiver.delivered().len() == 2
    })
    .await;

    // replay --since needs a sink or --all, and --dry-run moves nothing.
    let (code, _) = rollcall_cli(&daemon, &["replay", "--since", "2000-01-01T00:00:00Z"]);
    assert_eq!(code, 2);
    let (code, out) = rollcall_cli(
        &daemon,
        &[
            "replay",
            "--all",
            "--since",
            "2000-01-01T00:00:00Z",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["sinks"][0]["cursor"], 0);
    assert_eq!(plan["sinks"][0]["events"], 2);
    let view = sink_view(&client, &admin, "crm").await;
    assert_eq!(view["position"], 2);
}
