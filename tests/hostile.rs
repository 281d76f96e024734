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
