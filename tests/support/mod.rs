//! Shared harness for end-to-end tests: a real `rollcall serve` process on free ports, a
//! programmable HTTP receiver standing in for a downstream sink, and signed requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollcall_core::{Delivery, SourceOptions, Timestamp};

// Link the connectors (registered at link time) for signing.
use rollcall as _;
use serde_json::Value;

pub mod fake_api;

/// Secrets used by the test configurations.
pub const ZENDESK_SECRET: &str = "zendesk-test-secret";
pub const FRESHSERVICE_SECRET: &str = "whsec_c2VjcmV0LWZvci1mcmVzaHNlcnZpY2UtdGVzdHM=";
pub const VCC_SECRET: &str = "vcc-secret-key";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(connector: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        repo()
            .join("connectors")
            .join(connector)
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

/// The `[[sources]]` of every test configuration.
pub fn sources_toml() -> String {
    format!(
        r#"
[[sources]]
id = "zd"
connector = "zendesk"
signing_secret = "{ZENDESK_SECRET}"

[[sources]]
id = "fs"
connector = "freshservice"
signing_secret = "{FRESHSERVICE_SECRET}"

[[sources]]
id = "vcc"
connector = "vcclive"
secret_key = "{VCC_SECRET}"
"#
    )
}

/// The `[store]` keys of a SQLite store in `dir`.
fn sqlite_store(dir: &Path) -> String {
    format!(
        "type = \"sqlite\"\npath = \"{}\"",
        dir.join("rollcall.db").display()
    )
}

/// A running daemon. Killed on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    pub ingest: String,
    pub admin: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `rollcall serve` with `config` (TOML, without listeners: they are added on
    /// port 0) in `dir`, and waits until both listeners are up.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        Self::start_with_listeners(dir, "", "", config)
    }

    /// As [`Daemon::start`], with extra keys (TOML lines) for the `[ingest]` and `[admin]`
    /// tables.
    pub fn start_with_listeners(dir: &Path, ingest: &str, admin: &str, config: &str) -> Daemon {
        Self::start_with_store(dir, ingest, admin, &sqlite_store(dir), config)
    }

    /// As [`Daemon::start`], with `env` added to the daemon's environment.
    pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_configured(dir, "", "", &sqlite_store(dir), config, env)
    }

    /// As [`Daemon::start_with_listeners`], with the keys (TOML lines) of the `[store]`
    /// table.
    pub fn start_with_store(
        dir: &Path,
        ingest: &str,
        admin: &str,
        store: &str,
        config: &str,
    ) -> Daemon {
        Self::start_configured(dir, ingest, admin, store, config, &[])
    }

    fn start_configured(
        dir: &Path,
        ingest: &str,
        admin: &str,
        store: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let text = format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\n{ingest}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n\n[store]\n{store}\n\n{config}"
        );
        let config_path = dir.join("rollcall.toml");
        std::fs::write(&config_path, text).unwrap();
        let config_arg = config_path.display().to_string();
        let mut env = env.to_vec();
        env.insert(0, ("ROLLCALL_LOG", "warn"));
        Self::spawn(dir, &["serve", "--config", &config_arg], &env)
    }

    /// Runs `rollcall ARGS` in `dir` with `env` added, and waits until both listeners are
    /// up (their start-up lines, as text or as JSON).
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ports_tx, ports_rx) = std::sync::mpsc::channel();
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut ingest = None;
                let mut admin = None;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let message = announcement(&line);
                    if let Some(rest) = message
                        .as_deref()
                        .and_then(|m| m.strip_prefix("ingest listening on "))
                    {
                        ingest = Some(rest.to_owned());
                    }
                    if let Some(rest) = message
                        .as_deref()
                        .and_then(|m| m.strip_prefix("admin listening on "))
                    {
                        admin = Some(rest.to_owned());
                    }
                    if let (Some(i), Some(a)) = (&ingest, &admin) {
                        let _ = ports_tx.send((i.clone(), a.clone()));
                        ingest = None;
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let (ingest, admin) = match ports_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(ports) => ports,
            Err(_) => {
                let _ = child.kill();
                panic!("daemon did not start: {:?}", lines.lock().unwrap());
            }
        };
        Daemon {
            child,
            dir: dir.to_path_buf(),
            ingest,
            admin,
            stderr: lines,
        }
    }

    pub fn url(&self, source: &str) -> String {
        format!("{}/hooks/{source}", self.ingest)
    }

    /// Signs `body` for `source` now and POSTs it; returns the status and the JSON body.
    pub async fn send(&self, client: &reqwest::Client, source: &str, body: &[u8]) -> (u16, Value) {
        post_signed(
            client,
            &self.url(source),
            &sign(source, body, Timestamp::now()),
        )
        .await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message of a start-up line: `rollcall: <message>` in text, the `message` field of
/// a JSON line.
pub fn announcement(line: &str) -> Option<String> {
    if let Some(message) = line.strip_prefix("rollcall: ") {
        return Some(message.to_owned());
    }
    let value: Value = serde_json::from_str(line).ok()?;
    value["fields"]["message"].as_str().map(str::to_owned)
}

/// A request as a vendor would send it, signed by the source's connector.
pub struct Signed {
    pub url_query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Signs `body` for a source of [`sources_toml`], at `at`.
pub fn sign(source: &str, body: &[u8], at: Timestamp) -> Signed {
    let (connector, options) = match source {
        "zd" => (
            "zendesk",
            serde_json::json!({"signing_secret": ZENDESK_SECRET}),
        ),
        "fs" => (
            "freshservice",
            serde_json::json!({"signing_secret": FRESHSERVICE_SECRET}),
        ),
        "vcc" => ("vcclive", serde_json::json!({"secret_key": VCC_SECRET})),
        other => panic!("no test source {other}"),
    };
    let registration = rollcall_core::registration(connector).unwrap();
    let built = (registration.build)(&SourceOptions::new(source, options)).unwrap();
    let mut delivery = Delivery::new(source, body.to_vec(), at);
    built.sign(&mut delivery).unwrap();
    Signed {
        url_query: delivery.query.clone(),
        headers: delivery
            .headers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        body: delivery.body.to_vec(),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GETs `url` and parses the answer as JSON.
pub async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// POSTs `body` as JSON (or nothing) to `url` and parses the answer as JSON.
pub async fn post_json(client: &reqwest::Client, url: String, body: Option<Value>) -> Value {
    let mut request = client.post(url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// POSTs a signed request; returns the status and the JSON body.
pub async fn post_signed(
    client: &reqwest::Client,
    daemon_url: &str,
    signed: &Signed,
) -> (u16, Value) {
    let url = match &signed.url_query {
        Some(query) => format!("{daemon_url}?{query}"),
        None => daemon_url.to_owned(),
    };
    let mut request = client.post(url).body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The JSON lines of a file sink.
pub fn file_lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits until `check` holds, polling; panics with `what` after `timeout`.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A downstream HTTP receiver whose answers the test programs: it fails the first
/// `failures` requests with `status`, then answers 200.
/// What a failing [`Receiver`] answers with: an email, a phone number and a token.
pub const RECEIVER_ERROR_BODY: &str =
    "rejected user ann.smith@example.com (+1 415 555 0100): token sk_live_4f9a8b7c6d5e4f3a2b1c";

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<(u16, Value)>>>,
    pub failures: Arc<AtomicUsize>,
    pub status: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(failures: usize, status: u16) -> Receiver {
        let receiver = Receiver {
            url: String::new(),
            received: Arc::default(),
            failures: Arc::new(AtomicUsize::new(failures)),
            status: Arc::new(AtomicUsize::new(status as usize)),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let failing = state
                        .failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let status = if failing {
                        state.status.load(Ordering::SeqCst) as u16
                    } else {
                        200
                    };
                    state.received.lock().unwrap().push((status, value));
                    // A failing endpoint echoes personal data and a token in its error body,
                    // as real receivers do: rollcall must never keep them.
                    let body = if failing { RECEIVER_ERROR_BODY } else { "" };
                    (axum::http::StatusCode::from_u16(status).unwrap(), body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{address}/hook"),
            ..receiver
        }
    }

    /// The events the receiver answered 200 to.
    pub fn delivered(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, value)| value.clone())
            .collect()
    }

    pub fn attempts(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// The API token and user of [`zendesk_enrich_source_toml`] sources.
pub const ZENDESK_API_TOKEN: &str = "zendesk-test-api-token";
pub const ZENDESK_API_EMAIL: &str = "agent@acme.example";

/// A Zendesk `[[sources]]` table with id `id` (signed with [`ZENDESK_SECRET`]) that enriches
/// partial users from the Zendesk API at `api_base_url` (an `http://` fake in tests).
pub fn zendesk_enrich_source_toml(id: &str, api_base_url: &str) -> String {
    format!(
        r#"
[[sources]]
id = "{id}"
connector = "zendesk"
signing_secret = "{ZENDESK_SECRET}"
api_token = "{ZENDESK_API_TOKEN}"
email = "{ZENDESK_API_EMAIL}"
subdomain = "acme"
api_base_url = "{api_base_url}"
api_timeout_ms = 2000
"#
    )
}

/// Signs `body` as the `connector` of a source `source` built from `options` would, at `at`:
/// for sources other than those of [`sources_toml`].
pub fn sign_with(
    source: &str,
    connector: &str,
    options: Value,
    body: &[u8],
    at: Timestamp,
) -> Signed {
    let registration = rollcall_core::registration(connector).unwrap();
    let built = (registration.build)(&SourceOptions::new(source, options)).unwrap();
    let mut delivery = Delivery::new(source, body.to_vec(), at);
    built.sign(&mut delivery).unwrap();
    Signed {
        url_query: delivery.query.clone(),
        headers: delivery
            .headers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        body: delivery.body.to_vec(),
    }
}
