//! Enrichment end to end: a real `rollcall serve` with a Zendesk source whose API is a fake
//! server in the test, and a file sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use rollcall_core::Timestamp;
use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(20);
const SOURCE: &str = "zd-api";

/// The path and `Authorization` header of each request the fake API received.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A fake Zendesk API answering `GET /api/v2/users/6596848315901.json` with the recorded
/// user (404 for other paths), or every request with `status` when it is not 200.
struct FakeApi {
    base_url: String,
    seen: Seen,
}

impl FakeApi {
    async fn start(status: u16) -> FakeApi {
        let recorded: Value = serde_json::from_slice(
            &std::fs::read(repo().join("connectors/zendesk/tests/api/users_6596848315901.json"))
                .unwrap(),
        )
        .unwrap();
        let status = StatusCode::from_u16(status).unwrap();
        let seen: Seen = Arc::default();
        let app = {
            let seen = Arc::clone(&seen);
            axum::Router::new().fallback(move |request: Request<Body>| {
                let authorization = request
                    .headers()
                    .get("authorization")
                    .map(|value| value.to_str().unwrap().to_owned());
                let path = request.uri().path().to_owned();
                seen.lock().unwrap().push((path.clone(), authorization));
                let json = [("content-type", "application/json")];
                let response = if status != StatusCode::OK {
                    (status, json, json!({"error": "InternalError"}).to_string()).into_response()
                } else if path == "/api/v2/users/6596848315901.json" {
                    (status, json, recorded.to_string()).into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                };
                async move { response }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeApi {
            base_url: format!("http://{address}"),
            seen,
        }
    }
}

fn config(dir: &std::path::Path, api: &FakeApi) -> String {
    format!(
        "{}[[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
        zendesk_enrich_source_toml(SOURCE, &api.base_url),
        dir.join("events.jsonl").display()
    )
}

async fn post_created(daemon: &Daemon) -> (u16, Value) {
    let body = fixture("zendesk", "webhook_user_created.json");
    let signed = sign_with(
        SOURCE,
        "zendesk",
        json!({"signing_secret": ZENDESK_SECRET}),
        &body,
        Timestamp::now(),
    );
    post_signed(&client(), &daemon.url(SOURCE), &signed).await
}

async fn metrics(daemon: &Daemon) -> String {
    client()
        .get(format!("{}/metrics", daemon.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_user_is_completed_from_the_api_before_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(200).await;
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &api));

    let (status, answer) = post_created(&daemon).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["event_ids"][0].as_str().unwrap().to_owned();

    let path = dir.path().join("events.jsonl");
    eventually(WAIT, "the event reaches the file sink", || {
        !file_lines(&path).is_empty()
    })
    .await;
    let lines = file_lines(&path);
    assert_eq!(lines.len(), 1);
    let event = &lines[0];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["type"], "user.created");
    assert!(event.get("partial").is_none(), "{event}");
    let user = &event["user"];
    assert_eq!(user["id"], "6596848315901");
    assert_eq!(user["name"], "Maria Garcia");
    assert_eq!(user["phones"], json!([{"number": "+34 910 123 456"}]));
    assert_eq!(user["timezone"], "Europe/Madrid");
    assert_eq!(user["languages"], json!(["es"]));
    assert_eq!(user["status"], "active");
    assert_eq!(user["remote_data"]["name"], "Maria Garcia");

    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/api/v2/users/6596848315901.json");
    assert!(seen[0].1.as_deref().unwrap().starts_with("Basic "));

    let text = metrics(&daemon).await;
    assert!(
        text.contains(r#"rollcall_enrich_total{source="zd-api",outcome="ok"} 1"#),
        "{text}"
    );
    // The directory holds the complete user.
    let directory: Value = get_json(
        &client(),
        format!("{}/v1/users/{SOURCE}/6596848315901", daemon.admin),
    )
    .await;
    assert_eq!(directory["partial"], false, "{directory}");
    assert_eq!(directory["user"]["name"], "Maria Garcia");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_never_blocks_acceptance_and_the_event_goes_out_partial() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(500).await;
    let daemon = Daemon::start(dir.path(), &config(dir.path(), &api));

    let (status, answer) = post_created(&daemon).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(api.seen.lock().unwrap().len(), 1);

    let path = dir.path().join("events.jsonl");
    eventually(WAIT, "the event reaches the file sink", || {
        !file_lines(&path).is_empty()
    })
    .await;
    let event = file_lines(&path).remove(0);
    assert_eq!(event["partial"], true, "{event}");
    assert_eq!(event["user"]["id"], "6596848315901");
    assert!(event["user"].get("name").is_none(), "{event}");

    let text = metrics(&daemon).await;
    assert!(
        text.contains(r#"rollcall_enrich_total{source="zd-api",outcome="failed"} 1"#),
        "{text}"
    );
    let directory: Value = get_json(
        &client(),
        format!("{}/v1/users/{SOURCE}/6596848315901", daemon.admin),
    )
    .await;
    assert_eq!(directory["partial"], true, "{directory}");
}
