//! Replicas sharing one PostgreSQL store, as real processes: two `rollcall serve` on one
//! schema survive a `kill -9`; a replica that loses PostgreSQL answers 503 and recovers by
//! itself; a replica refuses a schema newer than it knows.
//!
//! The server is `ROLLCALL_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test works in a fresh schema, dropped afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rollcall_core::Timestamp;
use serde_json::Value;
use support::*;

fn server_url() -> String {
    std::env::var("ROLLCALL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema name, dropped (with everything in it) when the guard goes.
struct Schema(String);

impl Schema {
    fn new() -> Self {
        Self(format!("rollcall_replicas_{:016x}", rand::random::<u64>()))
    }

    fn store_toml(&self, url: &str) -> String {
        format!(
            "type = \"postgres\"\nurl = \"{url}\"\nschema = \"{}\"\npool_size = 4",
            self.0
        )
    }

    async fn execute(&self, statement: &str) {
        execute(statement).await;
    }

    /// Who holds `sink`'s delivery lease now (empty when nobody).
    async fn lease_holder(&self, sink: &str) -> String {
        let config: tokio_postgres::Config = server_url().parse().unwrap();
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let row = client
            .query_opt(
                &format!("SELECT holder FROM \"{}\".cursors WHERE sink = $1", self.0),
                &[&sink],
            )
            .await
            .unwrap();
        row.and_then(|row| row.get::<_, Option<String>>(0))
            .unwrap_or_default()
    }
}

/// Runs `statement` on the test server.
async fn execute(statement: &str) {
    let config: tokio_postgres::Config = server_url().parse().unwrap();
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(statement).await.unwrap();
}

impl Drop for Schema {
    fn drop(&mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(execute(&statement));
        });
        let _ = cleanup.join();
    }
}

/// A VCC Live user event: user `user`'s `version`-th state. Signed once, so the same
/// delivery sent to two replicas has one dedup key.
fn vcc_delivery(user: usize, version: usize) -> Signed {
    let state = |version: usize| {
        format!(
            r#"{{"userId": {user}, "name": "User {user} v{version}", "email": "user{user}@example.com", "state": "active"}}"#
        )
    };
    let old = if version == 0 {
        "null".to_owned()
    } else {
        state(version - 1)
    };
    let body = format!(
        r#"{{"old": {old}, "new": {}, "timestamp": "2026-11-22T10:00:00+01:00"}}"#,
        state(version)
    );
    sign("vcc", body.as_bytes(), Timestamp::now())
}

/// POSTs `signed` to `ingest`'s VCC hook; `None` when no answer came (the replica is down).
async fn try_send(client: &reqwest::Client, ingest: &str, signed: &Signed) -> Option<(u16, Value)> {
    let mut request = client
        .post(format!(
            "{ingest}/hooks/vcc?{}",
            signed.url_query.clone().unwrap_or_default()
        ))
        .body(signed.body.clone());
    for (name, value) in &signed.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// A 2xx answer: (user, version, status, event id).
type Answer = (usize, usize, u16, String);

const USERS: usize = 10;
const VERSIONS: usize = 30;
/// Kill replica A once this many vendor events were accepted.
const KILL_AFTER: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_schema_deliver_everything_once_in_order_across_a_kill_9() {
    let schema = Schema::new();
    let receiver = Receiver::start(0, 200).await;
    let config = format!(
        "{}\n[delivery]\nlease_seconds = 3\n\n[[sinks]]\nid = \"crm\"\ntype = \"http\"\nurl = \"{}\"\n",
        sources_toml(),
        receiver.url
    );
    let store = schema.store_toml(&server_url());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let replicas: Vec<Daemon> = dirs
        .iter()
        .map(|dir| Daemon::start_with_store(dir.path(), "", "", &store, &config))
        .collect();
    let ingest: Arc<[RwLock<String>; 2]> = Arc::new([
        RwLock::new(replicas[0].ingest.clone()),
        RwLock::new(replicas[1].ingest.clone()),
    ]);
    let mut replicas: Vec<Option<Daemon>> = replicas.into_iter().map(Some).collect();

    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let client = client();
    let mut senders = Vec::new();
    for user in 0..USERS {
        let (client, ingest, answers) = (client.clone(), Arc::clone(&ingest), Arc::clone(&answers));
        // One user's events go one after another, each to both replicas at once (as a
        // vendor retrying against a load balancer might), and again until one replica
        // takes it: the user's commit order is its version order.
        senders.push(tokio::spawn(async move {
            for version in 0..VERSIONS {
                let signed = vcc_delivery(user, version);
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let (a, b) = (
                        ingest[0].read().unwrap().clone(),
                        ingest[1].read().unwrap().clone(),
                    );
                    let (to_a, to_b) = tokio::join!(
                        try_send(&client, &a, &signed),
                        try_send(&client, &b, &signed)
                    );
                    let mut taken = false;
                    for (status, body) in [to_a, to_b].into_iter().flatten() {
                        if status == 200 || status == 202 {
                            taken = true;
                            let id = body["event_ids"][0].as_str().unwrap_or("").to_owned();
                            answers.lock().unwrap().push((user, version, status, id));
                        }
                    }
                    if taken {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "user {user} v{version} never taken"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }

    // kill -9 the replica delivering the sink (its lease must pass to the other) mid-run,
    // then start it again on the same schema.
    let accepted = || {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|answer| answer.2 == 202)
            .count()
    };
    eventually(
        Duration::from_secs(60),
        "enough events are accepted",
        || accepted() >= KILL_AFTER,
    )
    .await;
    let holder = schema.lease_holder("crm").await;
    let victim = replicas
        .iter()
        .position(|replica| {
            let pid = replica.as_ref().unwrap().child.id();
            holder.starts_with(&format!("rollcall-{pid}-"))
        })
        .unwrap_or_else(|| panic!("the lease holder {holder:?} is one of the replicas"));
    replicas[victim].take().unwrap().kill_hard();
    let accepted_at_kill = accepted();
    let (dir, store_toml, config_toml) = (
        dirs[victim].path().to_path_buf(),
        store.clone(),
        config.clone(),
    );
    let restarted = tokio::task::spawn_blocking(move || {
        Daemon::start_with_store(&dir, "", "", &store_toml, &config_toml)
    })
    .await
    .unwrap();
    *ingest[victim].write().unwrap() = restarted.ingest.clone();
    replicas[victim] = Some(restarted);
    for sender in senders {
        sender.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    assert!(accepted_at_kill < USERS * VERSIONS, "the kill came mid-run");

    // No vendor event accepted twice: one 202 per event, and duplicates name its event.
    let mut accepted_ids: HashMap<(usize, usize), String> = HashMap::new();
    for (user, version, status, id) in &answers {
        if *status == 202 {
            let earlier = accepted_ids.insert((*user, *version), id.clone());
            assert!(earlier.is_none(), "user {user} v{version} accepted twice");
        }
    }
    for (user, version, status, id) in &answers {
        if *status == 200 {
            if let Some(accepted) = accepted_ids.get(&(*user, *version)) {
                assert_eq!(accepted, id, "a duplicate names the accepted event");
            }
        }
    }

    // Every event answered 202 reaches the sink.
    let delivered_ids = || -> HashSet<String> {
        receiver
            .delivered()
            .iter()
            .map(|event| event["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    eventually(
        Duration::from_secs(45),
        "every accepted event reaches the sink",
        || {
            let delivered = delivered_ids();
            accepted_ids.values().all(|id| delivered.contains(id))
        },
    )
    .await;

    // Each vendor event is one event downstream (re-sends after the kill repeat its id), and
    // each user's events arrive in commit order.
    let mut ids_by_version: HashMap<(usize, usize), HashSet<String>> = HashMap::new();
    let mut order: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut first_seen = HashSet::new();
    for event in receiver.delivered() {
        let name = event["user"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (user, version) = parse_name(&name).unwrap_or_else(|| panic!("{event}"));
        let id = event["id"].as_str().unwrap().to_owned();
        ids_by_version
            .entry((user, version))
            .or_default()
            .insert(id.clone());
        if first_seen.insert(id) {
            order.entry(user).or_default().push(version);
        }
    }
    for ((user, version), ids) in &ids_by_version {
        assert_eq!(ids.len(), 1, "user {user} v{version} committed as {ids:?}");
    }
    for (user, versions) in &order {
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "user {user}'s events arrived out of commit order: {versions:?}"
        );
    }
    eprintln!(
        "replicas: {} accepted ({accepted_at_kill} before replica {victim} was killed), {} delivered requests",
        accepted_ids.len(),
        receiver.delivered().len()
    );
    let taken_over = schema.lease_holder("crm").await;
    assert_ne!(taken_over, holder, "the lease changed hands");
    for replica in replicas.into_iter().flatten() {
        assert!(replica.terminate().success());
    }
}

/// `User 3 v17` as (3, 17).
fn parse_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("User ")?;
    let (user, version) = rest.split_once(" v")?;
    Some((user.parse().ok()?, version.parse().ok()?))
}

/// A loopback TCP proxy in front of PostgreSQL that the test can cut (every connection
/// closed, new ones refused) and restore.
struct Proxy {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            address: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            connections: Arc::default(),
        };
        let (up, connections) = (Arc::clone(&proxy.up), Arc::clone(&proxy.connections));
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                connections.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        proxy
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn upstream_address() -> SocketAddr {
    let config: tokio_postgres::Config = server_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap()
}

async fn ready(client: &reqwest::Client, daemon: &Daemon) -> (u16, Value) {
    let response = client
        .get(format!("{}/readyz", daemon.admin))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_postgres_answers_503_and_recovers_by_itself() {
    let schema = Schema::new();
    let proxy = Proxy::start(upstream_address()).await;
    let url: tokio_postgres::Config = server_url().parse().unwrap();
    let user = url.get_user().unwrap_or("postgres").to_owned();
    let database = url.get_dbname().unwrap_or("postgres").to_owned();
    let via_proxy = format!(
        "postgres://{user}@127.0.0.1:{}/{database}",
        proxy.address.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_store(
        dir.path(),
        "",
        "",
        &schema.store_toml(&via_proxy),
        &sources_toml(),
    );
    let client = client();
    let (status, _) = try_send(&client, &daemon.ingest, &vcc_delivery(1, 0))
        .await
        .unwrap();
    assert_eq!(status, 202);
    assert_eq!(ready(&client, &daemon).await.0, 200);

    proxy.cut();
    let lost = vcc_delivery(1, 1);
    let (status, body) = try_send(&client, &daemon.ingest, &lost).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    let (status, body) = ready(&client, &daemon).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("store_unavailable"))
    );

    proxy.restore();
    // No restart, no operator: the next attempts get fresh connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(&client, &daemon).await.0 != 200 {
        assert!(Instant::now() < deadline, "the replica did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = try_send(&client, &daemon.ingest, &lost).await.unwrap();
    assert_eq!(status, 202, "the vendor's retry is accepted: {body}");
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refuses_to_start_on_a_schema_newer_than_it_knows() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().unwrap();
    let store = schema.store_toml(&server_url());
    let first = Daemon::start_with_store(dir.path(), "", "", &store, &sources_toml());
    // Ready first: SIGTERM before the daemon's signal handler is installed would kill it.
    assert_eq!(ready(&client(), &first).await.0, 200);
    let stderr = Arc::clone(&first.stderr);
    let status = first.terminate();
    assert!(status.success(), "{status}: {:?}", stderr.lock().unwrap());
    schema
        .execute(&format!(
            "UPDATE \"{}\".schema_version SET version = version + 1",
            schema.0
        ))
        .await;
    let config_path = dir.path().join("rollcall.toml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("newer than this rollcall knows"),
        "{stderr}"
    );
}
