//! Hostile clients against the real binary over loopback: each attack gets a bounded answer,
//! and a healthy signed request sent during the attack is still accepted.
//!
//! Every attack is bounded in count and time: a few dozen connections at most, timeouts of a
//! second or two, and every socket read has its own deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// How long a test waits for the daemon to close a connection it should close; generous,
/// since a busy CI machine may be slow: the configured timeouts are 1-2 s.
const CLOSE_DEADLINE: Duration = Duration::from_secs(15);

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Opens a connection to `url`'s host and port.
fn connect(url: &str) -> TcpStream {
    let stream = TcpStream::connect(host_port(url)).unwrap();
    stream.set_read_timeout(Some(CLOSE_DEADLINE)).unwrap();
    stream
}

/// Reads until the peer closes; returns what it sent. Panics if it is still open after
/// [`CLOSE_DEADLINE`].
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return received,
            Err(error) => panic!(
                "connection still open after {:?}: {error}",
                started.elapsed()
            ),
        }
    }
}

/// A configuration with short connection timeouts, so attacks end within seconds.
fn short_timeouts() -> String {
    "header_read_timeout_seconds = 1\nbody_timeout_seconds = 1\nrequest_timeout_seconds = 3"
        .to_owned()
}

async fn healthy_request_is_accepted(daemon: &Daemon, id: u64) {
    let body = fixture("zendesk", "webhook_user_created.json");
    let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // A fresh delivery id, so it is not a duplicate of another test's request.
    value["id"] = serde_json::json!(format!("healthy-{id}"));
    let body = serde_json::to_vec(&value).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (status, answer) = daemon.send(&client, "zd", &body).await;
    assert_eq!(status, 202, "{answer}");
}

#[test]
fn an_empty_admin_token_is_refused_at_start() {
    for (token, env) in [("\"\"", None), ("\"${ROLLCALL_ADMIN_TOKEN}\"", Some(""))] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rollcall.toml");
        std::fs::write(
            &config,
            format!(
                "[ingest]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = {token}\n"
            ),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir.path());
        if let Some(value) = env {
            command.env("ROLLCALL_ADMIN_TOKEN", value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with token {token}");
        assert!(
            stderr.contains("admin.token") && stderr.contains("empty"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_senders_are_cut_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(dir.path(), &short_timeouts(), "", &sources_toml());
    // 20 connections, each sending a header byte every 200 ms: never a complete head.
    let mut attackers: Vec<TcpStream> = (0..20).map(|_| connect(&daemon.ingest)).collect();
    let trickle = std::thread::spawn({
        let mut streams: Vec<TcpStream> =
            attackers.iter().map(|s| s.try_clone().unwrap()).collect();
        move || {
            let head = b"POST /hooks/zd HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaa";
            for byte in head.iter().take(15) {
                for stream in &mut streams {
                    let _ = stream.write_all(&[*byte]);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    healthy_request_is_accepted(&daemon, 1).await;
    for stream in &mut attackers {
        let answer = read_until_closed(stream);
        // hyper answers 408 when it can, then closes; a bare close is as good.
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    trickle.join().unwrap();
    healthy_request_is_accepted(&daemon, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(dir.path(), &short_timeouts(), "", &sources_toml());
    for url in [&daemon.ingest, &daemon.admin] {
        let mut stream = connect(url);
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        // The answer, then nothing: the connection stays idle until the daemon closes it.
        let answer = String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned();
        assert!(answer.starts_with("HTTP/1.1 "), "{url}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "header_read_timeout_seconds = 3\nmax_connections = 4",
        "",
        &sources_toml(),
    );
    // Fill every slot with connections that send nothing.
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect(&daemon.ingest)).collect();
    std::thread::sleep(Duration::from_millis(100));
    // A fifth connection is not served while the four hold their slots (the kernel has
    // accepted it; rollcall has not).
    let mut waiting = connect(&daemon.ingest);
    waiting
        .write_all(b"GET /hooks/zd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buffer = [0u8; 64];
    let early = waiting.read(&mut buffer);
    assert!(
        matches!(&early, Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served beyond max_connections: {early:?}"
    );
    // The admin listener has its own slots: health checks still answer.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let health = client
        .get(format!("{}/healthz", daemon.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // A vendor's request waits in the backlog until the header timeout frees a slot, then
    // is served: late, never refused, and the process is still there.
    healthy_request_is_accepted(&daemon, 3).await;
    for stream in &mut idle {
        read_until_closed(stream);
    }
    // The waiting connection got its turn too.
    waiting.set_read_timeout(Some(CLOSE_DEADLINE)).unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut waiting)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    healthy_request_is_accepted(&daemon, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_answered_408_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(dir.path(), &short_timeouts(), "", &sources_toml());
    let mut stream = connect(&daemon.ingest);
    stream
        .write_all(
            b"POST /hooks/zd HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              X-Zendesk-Webhook-Signature: AAAA\r\nX-Zendesk-Webhook-Signature-Timestamp: x\r\n\
              Content-Length: 100\r\n\r\n{\"id\":",
        )
        .unwrap();
    // The rest never comes.
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");
    healthy_request_is_accepted(&daemon, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_within_its_bound_while_slow_clients_hang_on() {
    let dir = tempfile::tempdir().unwrap();
    // Long header timeout: only shutdown's own bound can end these connections.
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "header_read_timeout_seconds = 600\nbody_timeout_seconds = 1\nrequest_timeout_seconds = 2",
        "header_read_timeout_seconds = 600",
        &sources_toml(),
    );
    healthy_request_is_accepted(&daemon, 6).await;
    let mut slow: Vec<TcpStream> = (0..10).map(|_| connect(&daemon.ingest)).collect();
    let mut slow_admin = connect(&daemon.admin);
    for stream in slow.iter_mut().chain(std::iter::once(&mut slow_admin)) {
        stream.write_all(b"POST /hooks/zd HTTP/1.1\r\nHo").unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    // `terminate` fails the test if the daemon is still running 30 s after SIGTERM.
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    for stream in slow.iter_mut().chain(std::iter::once(&mut slow_admin)) {
        read_until_closed(stream);
    }
}

/// The daemon's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One raw request on its own connection: the head, then the body in one write (errors
/// ignored: the daemon may answer and close before reading it). Returns the status line and
/// the rest of the answer.
fn raw_request(url: &str, head: &str, body: &[u8]) -> String {
    let mut stream = connect(url);
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_flood_is_held_to_the_body_budget_and_unsigned_bodies_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    // 8 MiB of bodies in flight at most; 1 MiB bodies.
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "max_body_bytes = 1048576\nmax_body_bytes_in_flight = 8388608",
        "",
        &sources_toml(),
    );
    healthy_request_is_accepted(&daemon, 10).await;
    let before = peak_rss_kib(&daemon);
    let body = vec![b'x'; 1024 * 1024];
    // 200 unsigned uploads (no signature headers) and 200 with forged ones, all at once.
    let mut attackers = Vec::new();
    for index in 0..400 {
        let url = daemon.ingest.clone();
        let body = body.clone();
        attackers.push(std::thread::spawn(move || {
            let forged = if index % 2 == 0 {
                ""
            } else {
                "X-Zendesk-Webhook-Signature: AAAA\r\nX-Zendesk-Webhook-Signature-Timestamp: 2026-01-01T00:00:00Z\r\n"
            };
            let head = format!(
                "POST /hooks/zd HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n{forged}Connection: close\r\n\r\n",
                body.len()
            );
            (index % 2 == 1, raw_request(&url, &head, &body))
        }));
    }
    healthy_request_is_accepted(&daemon, 11).await;
    let mut busy = 0;
    for attacker in attackers {
        let (forged, answer) = attacker.join().unwrap();
        if !forged {
            // Refused on its headers alone (or the connection closed while the body was
            // still being written).
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 401"),
                "{answer}"
            );
            assert!(
                answer.is_empty() || answer.contains("signature_missing"),
                "{answer}"
            );
        } else if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("ingest_busy"), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 30"),
                "{answer}"
            );
            busy += 1;
        } else {
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 401"),
                "{answer}"
            );
        }
    }
    healthy_request_is_accepted(&daemon, 12).await;
    let after = peak_rss_kib(&daemon);
    // 400 MiB were sent. The budget lets 8 MiB of bodies in at once; each is held about
    // twice while it is collected (chunks, then one buffer), hyper's buffers are capped at
    // 64 KiB per connection. 64 MiB over the peak before the attack leaves room for the
    // allocator's slack and the threads, and is far below what unbounded reads took.
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("peak RSS before {before} KiB, after {after} KiB, {busy} answered ingest_busy");
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_at_its_request_limit_answers_busy_and_others_still_accept() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "max_requests_per_source = 2\nbody_timeout_seconds = 5\nrequest_timeout_seconds = 8",
        "",
        &sources_toml(),
    );
    // Two slow bodies hold zd's two slots.
    let head = "POST /hooks/zd HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\
                X-Zendesk-Webhook-Signature: AAAA\r\nX-Zendesk-Webhook-Signature-Timestamp: x\r\n\r\n{";
    let mut holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = connect(&daemon.ingest);
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let answer = raw_request(&daemon.ingest, head, b"");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("ingest_busy"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Another source is not affected.
    let client = client();
    let body = fixture("freshservice", "onUserCreate.json");
    let (status, answer) = daemon.send(&client, "fs", &body).await;
    assert_eq!(status, 202, "{answer}");
    for stream in &mut holders {
        let answer = String::from_utf8_lossy(&read_until_closed(stream)).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    healthy_request_is_accepted(&daemon, 13).await;
}

/// POSTs to the admin listener; returns the status and the JSON answer.
async fn admin_request(
    daemon: &Daemon,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut request = client()
        .request(method, format!("{}{path}", daemon.admin))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcc_live_password_never_reaches_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let body = serde_json::json!({
        "old": {"userId": 181},
        "new": {"userId": 181, "email": "a@example.com", "password": "Hunter2-Correct-Horse"},
        "timestamp": "not a time"
    });
    let (status, answer) = daemon
        .send(&client(), "vcc", &serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, 400, "{answer}");
    let id = answer["error"]["quarantine_id"].as_i64().unwrap();
    let (status, entry) = admin_request(
        &daemon,
        reqwest::Method::GET,
        &format!("/v1/quarantine/{id}"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let text = entry.to_string();
    assert!(!text.contains("Hunter2"), "{text}");
    assert!(text.contains("a@example.com"), "{text}");
    healthy_request_is_accepted(&daemon, 14).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_and_nul_are_refused_at_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let fixture = String::from_utf8(fixture("zendesk", "webhook_user_created.json")).unwrap();
    // The same delivery with a second `id` key, and with a NUL in a string.
    let duplicate = fixture.replacen('{', "{\"id\": \"other-id\",", 1);
    let nul = fixture.replacen('{', "{\"note\": \"a\\u0000b\",", 1);
    for (body, path) in [(duplicate, "id"), (nul, "note")] {
        let (status, answer) = daemon.send(&client(), "zd", body.as_bytes()).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "payload_invalid", "{answer}");
        assert_eq!(answer["error"]["path"], path, "{answer}");
    }
    healthy_request_is_accepted(&daemon, 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_host_name_cannot_read_the_token_less_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_listeners(
        dir.path(),
        "",
        "allowed_hosts = [\"rollcall.internal\"]",
        &sources_toml(),
    );
    let (status, answer) = admin_request(
        &daemon,
        reqwest::Method::GET,
        "/v1/users",
        &[("host", "attacker.example:9090")],
        "",
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "host_not_allowed");
    for host in ["rollcall.internal:9090", "localhost"] {
        let (status, answer) = admin_request(
            &daemon,
            reqwest::Method::GET,
            "/v1/users",
            &[("host", host)],
            "",
        )
        .await;
        assert_eq!(status, 200, "{host}: {answer}");
    }
    healthy_request_is_accepted(&daemon, 16).await;
}

/// A request (listener, method, path and query, headers) and the status and code it gets.
type ErrorCase<'a> = (
    &'a str,
    reqwest::Method,
    String,
    Vec<(&'a str, &'a str)>,
    u16,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_has_the_json_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let long_path = format!("/hooks/zd?{}", "q".repeat(10_000));
    let big_header = "h".repeat(40_000);
    let cases: Vec<ErrorCase<'_>> = vec![
        (
            &daemon.ingest,
            reqwest::Method::GET,
            "/nope".into(),
            vec![],
            404,
            "route_not_found",
        ),
        (
            &daemon.admin,
            reqwest::Method::GET,
            "/nope".into(),
            vec![],
            404,
            "route_not_found",
        ),
        (
            &daemon.ingest,
            reqwest::Method::POST,
            long_path.clone(),
            vec![],
            414,
            "uri_too_long",
        ),
        (
            &daemon.admin,
            reqwest::Method::GET,
            long_path,
            vec![],
            414,
            "uri_too_long",
        ),
        (
            &daemon.ingest,
            reqwest::Method::POST,
            "/hooks/zd".into(),
            vec![("x-big", big_header.as_str())],
            431,
            "headers_too_large",
        ),
        (
            &daemon.admin,
            reqwest::Method::POST,
            "/v1/replay".into(),
            vec![("content-type", "text/plain")],
            415,
            "unsupported_media_type",
        ),
        (
            &daemon.admin,
            reqwest::Method::POST,
            "/v1/replay".into(),
            vec![("content-type", "application/json")],
            400,
            "config_invalid",
        ),
        (
            &daemon.admin,
            reqwest::Method::POST,
            "/healthz".into(),
            vec![],
            405,
            "method_not_allowed",
        ),
        (
            &daemon.ingest,
            reqwest::Method::PUT,
            "/hooks/zd".into(),
            vec![],
            405,
            "method_not_allowed",
        ),
    ];
    for (base, method, path, headers, status, code) in cases {
        let mut request = client()
            .request(method.clone(), format!("{base}{path}"))
            .body("{");
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        let answer: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {base}{:.40}: not JSON: {text}", path));
        assert_eq!(got, status, "{method} {:.40}: {answer}", path);
        assert_eq!(answer["error"]["code"], code, "{method} {:.40}", path);
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    healthy_request_is_accepted(&daemon, 17).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let events = data.join("out/events.jsonl");
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "{}\n[[sinks]]\nid = \"file\"\ntype = \"file\"\npath = \"{}\"\n",
            sources_toml(),
            events.display()
        ),
    );
    healthy_request_is_accepted(&daemon, 18).await;
    eventually(Duration::from_secs(10), "the file sink wrote", || {
        events.exists()
    })
    .await;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&events), 0o600);
    assert_eq!(mode(&data.join("out")), 0o700);
    assert_eq!(mode(&dir.path().join("rollcall.db")), 0o600);
}

/// A sink endpoint that echoes personal data in its error: the dead letter (and so the admin
/// API and the logs) keeps the status and a redacted snippet, never the email, phone or token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_error_body_with_personal_data_is_kept_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(usize::MAX, 400).await;
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "{}[[sinks]]\nid = \"crm\"\ntype = \"http\"\nurl = \"{}\"\n",
            sources_toml(),
            receiver.url
        ),
    );
    healthy_request_is_accepted(&daemon, 7).await;
    let client = client();
    let started = Instant::now();
    let letters = loop {
        let page: serde_json::Value = get_json(
            &client,
            format!("{}/v1/dead-letters?sink=crm", daemon.admin),
        )
        .await;
        if !page["dead_letters"].as_array().unwrap().is_empty() {
            break page;
        }
        assert!(started.elapsed() < CLOSE_DEADLINE, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = letters["dead_letters"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("400"), "{error}");
    for secret in [
        "ann.smith@example.com",
        "555 0100",
        "sk_live_4f9a8b7c6d5e4f3a2b1c",
    ] {
        assert!(!error.contains(secret), "{secret} kept in: {error}");
    }
    let logs = daemon.stderr.lock().unwrap().join("\n");
    assert!(!logs.contains("ann.smith@example.com"), "{logs}");
}

/// `${VAR}` cannot break out of a TOML string: the real binary's `config check` reads a
/// variable holding quotes and a new key as a plain value.
#[test]
fn an_environment_value_cannot_break_out_of_a_toml_string() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollcall.toml");
    std::fs::write(
        &config,
        "[admin]\nlisten = \"0.0.0.0:9090\"\ntoken = '${ROLLCALL_ADMIN_TOKEN}'\n",
    )
    .unwrap();
    // Were it pasted into the text, this would close the literal string and add a key that
    // does not exist (a config error) or switch the listener back to loopback.
    let hostile = "x'\nlisten = \"127.0.0.1:9\"\nevil = '";
    let output = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["config", "check", "--config"])
        .arg(&config)
        .env("ROLLCALL_ADMIN_TOKEN", hostile)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
