//! What a platform team meets first, with the real binary: health on the ingest listener,
//! listeners moved by flag or environment, `sign` that never invents secrets, operator
//! commands that need only the admin address and token, the store's process lock, JSON logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

fn rollcall(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command.args(args).current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the curl-free form of `rollcall sign --json` and sends the request it prints.
async fn send_signed_request(request: &Value) -> u16 {
    let mut post = client().post(request["url"].as_str().unwrap());
    for header in request["headers"].as_array().unwrap() {
        post = post.header(header[0].as_str().unwrap(), header[1].as_str().unwrap());
    }
    post.body(request["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_listener_answers_healthz_for_load_balancers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let response = client()
        .get(format!("{}/healthz", daemon.ingest))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // `rollcall health` is the container's health check: 0 when it answers, 1 when not.
    let url = format!("{}/healthz", daemon.ingest);
    let up = rollcall(dir.path(), &["health", "--url", &url], &[]);
    assert_eq!(up.status.code(), Some(0), "{}", stderr(&up));
    drop(daemon);
    let down = rollcall(dir.path(), &["health", "--url", &url], &[]);
    assert_eq!(down.status.code(), Some(1));
    assert!(stderr(&down).contains("cannot reach"), "{}", stderr(&down));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_each_seq_so_after_resumes_where_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let client = client();
    let (status, first) = daemon
        .send(&client, "vcc", &fixture("vcclive", "user_created.json"))
        .await;
    assert_eq!(status, 202);
    let (status, second) = daemon
        .send(
            &client,
            "zd",
            &fixture("zendesk", "webhook_user_created.json"),
        )
        .await;
    assert_eq!(status, 202);

    let tail = |after: &str| {
        let output = rollcall(
            dir.path(),
            &["events", "tail", "--after", after, "--admin", &daemon.admin],
            &[],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .collect::<Vec<_>>()
    };
    let all = tail("0");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["event"]["id"], first["event_ids"][0]);
    let seq = all[0]["seq"].as_i64().expect("each line carries its seq");
    let rest = tail(&seq.to_string());
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["event"]["id"], second["event_ids"][0]);
    assert!(rest[0]["seq"].as_i64().unwrap() > seq);
}

#[test]
fn sign_from_another_directory_creates_no_secrets_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let body = repo().join("connectors/zendesk/fixtures/webhook_user_created.json");
    let output = rollcall(
        dir.path(),
        &["sign", "--source", "zendesk-demo", body.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = stderr(&output);
    assert!(
        message.contains("no demo secrets at rollcall-data/demo-sources.json"),
        "{message}"
    );
    assert!(message.contains("never creates secrets"), "{message}");
    assert!(output.stdout.is_empty());
    assert!(
        !dir.path().join("rollcall-data").exists(),
        "sign created a data directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_file_moves_off_the_default_ports_and_keeps_its_demo_sources() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(!daemon.ingest.ends_with(":8080"));
    assert!(!daemon.admin.ends_with(":9090"));
    // `sign` run where the daemon runs signs with the daemon's own demo secrets.
    let body = repo().join("connectors/zendesk/fixtures/webhook_user_created.json");
    let output = rollcall(
        dir.path(),
        &[
            "sign",
            "--json",
            "--source",
            "zendesk-demo",
            "--url",
            &daemon.ingest,
            body.to_str().unwrap(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let request: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(send_signed_request(&request).await, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_override_keys_and_json_logs_cover_every_start_up_line() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(
        dir.path(),
        &["serve"],
        &[
            ("ROLLCALL_INGEST_LISTEN", "127.0.0.1:0"),
            ("ROLLCALL_ADMIN_LISTEN", "127.0.0.1:0"),
            ("ROLLCALL_INGEST_MAX_BODY_BYTES", "2000"),
            ("ROLLCALL_LOG_FORMAT", "json"),
            ("ROLLCALL_LOG", "info"),
        ],
    );
    // The override reached the daemon: a body over 2,000 bytes is refused.
    let response = client()
        .post(daemon.url("zendesk-demo"))
        .header("content-length", "5000")
        .body(vec![b' '; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);

    let lines = daemon.stderr.clone();
    assert_eq!(daemon.terminate().code(), Some(0));
    let lines = lines.lock().unwrap().clone();
    // Start-up (listeners, demo secrets), requests, shutdown: every line is one JSON object.
    assert!(lines.len() >= 6, "{lines:?}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for line in &parsed {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let messages: Vec<&str> = parsed
        .iter()
        .map(|line| line["fields"]["message"].as_str().unwrap())
        .collect();
    assert!(messages
        .iter()
        .any(|m| m.starts_with("running on embedded defaults")));
    assert!(messages.iter().any(|m| m.contains("zendesk-demo")));
    let ingest = parsed
        .iter()
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .unwrap()
                .starts_with("ingest listening on ")
        })
        .unwrap();
    assert_eq!(ingest["level"], "INFO");
    assert!(ingest["fields"]["address"].is_string(), "{ingest}");
    assert_eq!(*messages.last().unwrap(), "stopped cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_table_in_the_file_chooses_json_and_an_unknown_override_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &format!("[log]\nformat = \"json\"\n{}", sources_toml()),
    );
    let lines = daemon.stderr.clone();
    assert_eq!(daemon.terminate().code(), Some(0));
    for line in lines.lock().unwrap().iter() {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed["fields"]["message"].is_string(), "{line}");
    }

    let output = rollcall(
        dir.path(),
        &["serve", "--config", "rollcall.toml"],
        &[("ROLLCALL_INGEST_LISTN", "127.0.0.1:0")],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("ingest.listn: unknown key (set by ROLLCALL_INGEST_LISTN)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_read_only_the_admin_table_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "",
        "token = \"operator-token\"",
        &sources_toml(),
    );
    // The operator's file: the daemon's admin table, and sources whose secrets only the
    // daemon's environment holds.
    let address = daemon.admin.trim_start_matches("http://");
    let operator = dir.path().join("operator.toml");
    std::fs::write(
        &operator,
        format!(
            "[admin]\nlisten = \"{address}\"\ntoken = \"${{OPERATOR_TOKEN}}\"\n\n\
             [[sources]]\nid = \"zd\"\nconnector = \"zendesk\"\n\
             signing_secret = \"${{ROLLCALL_TEST_UNSET_SECRET}}\"\n"
        ),
    )
    .unwrap();
    let output = rollcall(
        dir.path(),
        &["users", "list", "--config", "operator.toml"],
        &[("OPERATOR_TOKEN", "operator-token")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let page: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(page["total"], 0);

    // ROLLCALL_ADMIN_TOKEN wins over the file, like every ROLLCALL_ override.
    let output = rollcall(
        dir.path(),
        &["users", "list", "--config", "operator.toml"],
        &[
            ("OPERATOR_TOKEN", "operator-token"),
            ("ROLLCALL_ADMIN_TOKEN", "wrong"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unauthorized"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_refuse_an_address_that_is_not_a_rollcall_admin_api() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Something else on the port: it answers every request 200 with an empty list.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let body = r#"{"users":[],"total":0}"#;
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            rollcall(
                &dir,
                &["users", "list", "--admin", &format!("http://{address}")],
                &[],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("it is not a rollcall admin API"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_second_daemon_on_the_same_sqlite_store_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Daemon::start(dir.path(), &sources_toml());
    // The same file, other ports.
    let output = rollcall(dir.path(), &["serve", "--config", "rollcall.toml"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("another rollcall process has this store open"),
        "{message}"
    );
    assert!(message.contains("rollcall.db"), "{message}");
    // The first is untouched.
    assert_eq!(first.terminate().code(), Some(0));
}

#[test]
fn every_command_describes_itself() {
    let output = rollcall(Path::new("."), &["--help"], &[]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("Where the admin API is"), "{text}");
    for command in [
        ["dead-letters", "list"],
        ["quarantine", "list"],
        ["quarantine", "show"],
    ] {
        let output = rollcall(Path::new("."), &[command[0], "--help"], &[]);
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(!text.contains("Where the admin API is"), "{text}");
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(command[1]))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.trim_start().len() > command[1].len() + 10,
            "{command:?} has no description: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_reads_metrics_users_and_scim_but_cannot_replay() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "",
        "token = \"operate-token\"\ntokens = [{ token = \"read-token\", scope = \"read\" }]",
        &format!(
            "{}\n[[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
            sources_toml(),
            dir.path().join("events.jsonl").display()
        ),
    );
    let client = client();
    let status = |token: Option<&'static str>, method: reqwest::Method, path: &str| {
        let mut request = client.request(method, format!("{}{path}", daemon.admin));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request
                .json(&serde_json::json!({"sink": "archive", "since": "2000-01-01T00:00:00Z"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    use reqwest::Method;
    for path in ["/metrics", "/v1/users", "/v1/events", "/scim/v2/Users"] {
        let (code, _) = status(Some("read-token"), Method::GET, path).await;
        assert_eq!(code, 200, "read token on {path}");
        let (code, _) = status(None, Method::GET, path).await;
        assert_eq!(code, 401, "no token on {path}");
    }
    let (code, body) = status(Some("read-token"), Method::POST, "/v1/replay").await;
    assert_eq!(code, 403);
    assert_eq!(body["error"]["code"], "scope_insufficient");
    let (code, body) = status(Some("read-token"), Method::POST, "/v1/dead-letters/replay").await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = status(Some("operate-token"), Method::POST, "/v1/replay").await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = status(Some("wrong"), Method::GET, "/metrics").await;
    assert_eq!(code, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_and_its_successor_are_both_valid_while_listed() {
    const NEW_FRESHSERVICE: &str = "whsec_bmV3LWZyZXNoc2VydmljZS1zZWNyZXQ=";
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            r#"
[[sources]]
id = "zd"
connector = "zendesk"
signing_secret = ["zendesk-new-secret", "{ZENDESK_SECRET}"]

[[sources]]
id = "fs"
connector = "freshservice"
signing_secret = ["{NEW_FRESHSERVICE}", "{FRESHSERVICE_SECRET}"]

[[sources]]
id = "vcc"
connector = "vcclive"
secret_key = ["vcc-new-key", "{VCC_SECRET}"]
"#
        ),
    );
    let client = client();
    let now = rollcall_core::Timestamp::now;
    let cases = [
        (
            "zd",
            "zendesk",
            "signing_secret",
            "zendesk-new-secret",
            fixture("zendesk", "webhook_user_created.json"),
        ),
        (
            "fs",
            "freshservice",
            "signing_secret",
            NEW_FRESHSERVICE,
            fixture("freshservice", "onUserCreate.json"),
        ),
        (
            "vcc",
            "vcclive",
            "secret_key",
            "vcc-new-key",
            fixture("vcclive", "user_created.json"),
        ),
    ];
    for (source, connector, option, new_secret, body) in cases {
        // The old secret (what the harness signs with) still verifies...
        let (status, answer) = daemon.send(&client, source, &body).await;
        assert_eq!(status, 202, "{source} old secret: {answer}");
        // ...and so does the new one (a new body: the first is now a duplicate).
        let mut other = body.clone();
        other.extend_from_slice(b"\n");
        let signed = sign_with(
            source,
            connector,
            serde_json::json!({ option: new_secret }),
            &other,
            now(),
        );
        let (status, answer) = post_signed(&client, &daemon.url(source), &signed).await;
        assert!(
            status == 202 || status == 200,
            "{source} new secret: {status} {answer}"
        );
        // A secret that is not listed does not.
        let wrong = match connector {
            "freshservice" => "whsec_d3Jvbmctc2VjcmV0",
            _ => "not-a-listed-secret",
        };
        let signed = sign_with(
            source,
            connector,
            serde_json::json!({ option: wrong }),
            &body,
            now(),
        );
        let (status, answer) = post_signed(&client, &daemon.url(source), &signed).await;
        assert_eq!(status, 401, "{source} unlisted secret: {answer}");
        assert_eq!(answer["error"]["code"], "signature_invalid");
    }
}

/// The daemon runs without transparent huge pages (each first touch of one zeroed 2 MiB for
/// the allocator's short-lived request memory), unless `MIMALLOC_ALLOW_THP` hands the choice
/// back to the allocator.
#[cfg(target_os = "linux")]
#[test]
fn the_daemon_turns_transparent_huge_pages_off_unless_the_allocator_is_told_otherwise() {
    fn thp_enabled(pid: u32) -> String {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("THP_enabled:"))
            .map(|value| value.trim().to_owned())
            .expect("/proc/<pid>/status has THP_enabled (Linux 5.0 and later)")
    }
    // The setting is inherited: a runner that already has huge pages off (or a kernel built
    // without them), or that sets the variable for its children, cannot show the difference.
    if thp_enabled(std::process::id()) != "1" || std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        eprintln!("skipped: this test process already has THP off or MIMALLOC_ALLOW_THP set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(dir.path(), &sources_toml(), &[]);
    assert_eq!(thp_enabled(daemon.child.id()), "0");
    daemon.terminate();

    let daemon =
        Daemon::start_with_env(dir.path(), &sources_toml(), &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(thp_enabled(daemon.child.id()), "1");
}
