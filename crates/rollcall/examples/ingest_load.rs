//! Bounded load runs over loopback: `cargo xtask bench ingest` (see docs/benchmarks.md).
//!
//! * Default: the given `rollcall` binary alone, on a temporary configuration (one
//!   Freshservice source, a file sink), with distinct signed requests made per request.
//!   `--store postgres` runs it on PostgreSQL (`--postgres URL`, default
//!   `postgres://postgres@127.0.0.1:5432/test`, in a fresh schema dropped afterwards);
//!   `--replicas N` starts N processes on that schema and spreads the requests over them.
//!   Prints requests/s, p50/p99 and server CPU (rollcall's, and PostgreSQL's).
//! * `--compare`: one server at a time, with identical traffic (the same pre-signed Zendesk
//!   `user.created` bodies, ~2 KB each): rollcall (SQLite store, a file sink), the axum +
//!   SQLite group-commit baseline and the fastify baseline (`benches/baselines/`). Prints
//!   requests/s, p50/p99, server CPU per 1,000 events, bytes on disk per event and the
//!   ratios.
//! * `--history N`: N Zendesk events into rollcall, bounded in time; throughput per tenth.
//! * `--target URL --secret S`: the Zendesk bodies against a server someone else started.
//!
//! Every run is bounded (seconds, concurrency and event counts are clamped), stays on
//! loopback, stops its servers with SIGTERM, and fails when a ledger does not balance:
//! sent = accepted + duplicate + rejected + failed, and accepted = what the server kept
//! (rollcall: events in the file sink; axum-sqlite: rows in its table; fastify: events its
//! workers mapped).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::body::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use rollcall_core::{Connector, Delivery, SourceOptions, Timestamp};

// Link the connectors for signing.
use rollcall as _;

/// The Freshservice source's secret in the default run.
const FRESHSERVICE_SECRET: &str = "whsec_bG9hZC10ZXN0LXNlY3JldC1mb3ItcmVxdWVzdHM=";
/// The Zendesk signing secret every server in `--compare` and `--history` verifies with.
const ZENDESK_SECRET: &str = "bench-zendesk-signing-secret-2f9c41";
/// Pre-signed bodies per second of window: above what any of the three servers reaches on
/// the standard machine, so running out means "faster than measured so far", and says so.
const PRESIGNED_PER_SECOND: usize = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Single,
    Compare,
    History,
    Target,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    binary: String,
    axum_sqlite: Option<String>,
    fastify: Option<String>,
    node: String,
    target: Option<String>,
    secret: String,
    pids: Vec<u32>,
    seconds: u64,
    concurrency: usize,
    history_events: usize,
    minutes: u64,
    /// The store of the default run: `sqlite`, or `postgres` (at `postgres_url`, in a fresh
    /// schema dropped afterwards).
    store: String,
    postgres_url: String,
    /// rollcall processes sharing the PostgreSQL store, requests spread round robin.
    replicas: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        mode: Mode::Single,
        binary: "target/release/rollcall".to_owned(),
        axum_sqlite: None,
        fastify: None,
        node: "node".to_owned(),
        target: None,
        secret: ZENDESK_SECRET.to_owned(),
        pids: Vec::new(),
        seconds: 10,
        concurrency: 0,
        history_events: 0,
        minutes: 15,
        store: "sqlite".to_owned(),
        postgres_url: std::env::var("ROLLCALL_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        replicas: 1,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        if flag == "--compare" {
            args.mode = Mode::Compare;
            continue;
        }
        let value = iter
            .next()
            .with_context(|| format!("{flag} without value"))?;
        match flag.as_str() {
            "--binary" => args.binary = value,
            "--axum-sqlite" => args.axum_sqlite = Some(value),
            "--fastify" => args.fastify = Some(value),
            "--node" => args.node = value,
            "--seconds" => args.seconds = value.parse()?,
            "--concurrency" => args.concurrency = value.parse()?,
            "--minutes" => args.minutes = value.parse()?,
            "--history" => {
                args.mode = Mode::History;
                args.history_events = value.replace('_', "").parse()?;
            }
            "--target" => {
                args.mode = Mode::Target;
                args.target = Some(value);
            }
            "--secret" => args.secret = value,
            "--pid" => args.pids.push(value.parse()?),
            "--store" => args.store = value,
            "--postgres" => args.postgres_url = value,
            "--replicas" => args.replicas = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    // Bounded by design: a load run never runs unattended for long.
    let default_concurrency = if args.mode == Mode::Single { 32 } else { 64 };
    if args.concurrency == 0 {
        args.concurrency = default_concurrency;
    }
    args.concurrency = args.concurrency.clamp(1, 512);
    args.seconds = args
        .seconds
        .clamp(1, if args.mode == Mode::Single { 120 } else { 60 });
    args.minutes = args.minutes.clamp(1, 60);
    args.history_events = args.history_events.clamp(1_000, 5_000_000);
    args.replicas = args.replicas.clamp(1, 4);
    ensure!(
        args.store == "sqlite" || args.store == "postgres",
        "--store is sqlite or postgres"
    );
    ensure!(
        args.replicas == 1 || args.store == "postgres",
        "--replicas needs --store postgres (SQLite serves one process)"
    );
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    match args.mode {
        Mode::Single => single(&args).await,
        Mode::Compare => compare(&args).await,
        Mode::History => history(&args).await,
        Mode::Target => target(&args).await,
    }
}

// ---------------------------------------------------------------------------------------
// Requests: what the generator sends.

/// One request, signed and ready to send.
#[derive(Clone)]
struct SignedRequest {
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

/// Where a load run's requests come from.
#[derive(Clone)]
enum Requests {
    /// Made and signed before the window, so the window measures the server, not the
    /// generator's JSON and HMAC work; also the way to give several servers identical bodies.
    Presigned(Arc<Vec<SignedRequest>>),
    /// Made and signed as they go: for runs too long to hold in memory, or whose signed
    /// timestamps would leave the five-minute replay window before they are sent.
    Made(Arc<dyn Fn(usize) -> SignedRequest + Send + Sync>),
}

impl Requests {
    fn get(&self, n: usize) -> Option<SignedRequest> {
        match self {
            Requests::Presigned(requests) => requests.get(n).cloned(),
            Requests::Made(make) => Some(make(n)),
        }
    }
}

/// Signs `body` for `connector` as the vendor would, now.
fn sign(connector: &dyn Connector, source: &str, body: Bytes) -> SignedRequest {
    let mut delivery = Delivery::new(source, body, Timestamp::now());
    connector.sign(&mut delivery).unwrap();
    let mut headers = vec![(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    for (name, value) in delivery.headers.iter() {
        headers.push((
            HeaderName::try_from(name).unwrap(),
            HeaderValue::try_from(value).unwrap(),
        ));
    }
    SignedRequest {
        headers,
        body: delivery.body,
    }
}

fn connector(name: &str, source: &str, secret: &str) -> Result<Arc<dyn Connector>> {
    let registration =
        rollcall_core::registration(name).with_context(|| format!("no {name} connector"))?;
    let connector = (registration.build)(&SourceOptions::new(
        source,
        serde_json::json!({ "signing_secret": secret }),
    ))
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(Arc::from(connector))
}

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// Distinct Zendesk `user.created` envelopes of ~2 KB, from
/// `benches/baselines/zendesk-user-created.template.json`: body `n` has its own event id
/// (rollcall's dedup key), user id and email.
struct ZendeskBodies {
    /// The template, compact as Zendesk sends it, with its placeholders.
    template: String,
}

impl ZendeskBodies {
    fn load() -> Result<Self> {
        let path = workspace_file("benches/baselines/zendesk-user-created.template.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        Ok(Self {
            template: value.to_string(),
        })
    }

    fn body(&self, n: usize) -> Bytes {
        let event_id = format!("5f8d1c2e-7b3a-4e19-9c0d-{n:012x}");
        let user_id = (6_596_848_315_901 + n as u64).to_string();
        Bytes::from(
            self.template
                .replace("{{EVENT_ID}}", &event_id)
                .replace("{{USER_ID}}", &user_id),
        )
    }
}

/// `count` bodies, built once and shared by every server of a comparison.
fn zendesk_body_set(count: usize) -> Result<Arc<Vec<Bytes>>> {
    let bodies = ZendeskBodies::load()?;
    Ok(Arc::new((0..count).map(|n| bodies.body(n)).collect()))
}

/// The body set signed now (signatures carry a timestamp, so each server gets its own,
/// made just before its window).
fn presign(connector: &dyn Connector, source: &str, bodies: &[Bytes]) -> Requests {
    Requests::Presigned(Arc::new(
        bodies
            .iter()
            .map(|body| sign(connector, source, body.clone()))
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------
// The load run.

struct Plan {
    url: String,
    /// More servers to spread the requests over, round robin with `url` (replicas).
    also: Vec<String>,
    concurrency: usize,
    duration: Duration,
    /// At most this many requests.
    limit: usize,
    /// Record when every tenth of `limit` completes (`--history`).
    tenths: bool,
}

#[derive(Default)]
struct LoadResult {
    sent: usize,
    accepted: usize,
    duplicate: usize,
    rejected: usize,
    failed: usize,
    /// Rejections by status, and one body of each, to say why.
    rejected_by_status: BTreeMap<u16, (usize, String)>,
    latencies: Vec<Duration>,
    elapsed: Duration,
    /// The requests ran out before the window ended.
    exhausted: bool,
    /// When each tenth of the limit completed, from the start.
    tenth_marks: Vec<Duration>,
}

impl LoadResult {
    fn requests_per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let index = ((self.latencies.len() as f64 * p) as usize)
            .min(self.latencies.len().saturating_sub(1));
        self.latencies
            .get(index)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latencies
            .last()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    }

    fn client_ledger_balances(&self) -> bool {
        self.sent == self.accepted + self.duplicate + self.rejected + self.failed
    }
}

#[derive(Default)]
struct TaskTally {
    accepted: usize,
    duplicate: usize,
    rejected: usize,
    failed: usize,
    rejected_by_status: BTreeMap<u16, (usize, String)>,
    latencies: Vec<Duration>,
}

/// Sends `requests` from `plan.concurrency` keep-alive connections, each with one request in
/// flight, until the window ends, the limit is reached or the requests run out.
async fn drive(plan: &Plan, requests: &Requests) -> Result<LoadResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .no_proxy()
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let tenth = if plan.tenths { plan.limit / 10 } else { 0 };
    let tenth_marks = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency {
        let urls: Vec<String> = std::iter::once(plan.url.clone())
            .chain(plan.also.iter().cloned())
            .collect();
        let (client, requests) = (client.clone(), requests.clone());
        let (next, sent, completed, exhausted, tenth_marks) = (
            Arc::clone(&next),
            Arc::clone(&sent),
            Arc::clone(&completed),
            Arc::clone(&exhausted),
            Arc::clone(&tenth_marks),
        );
        let limit = plan.limit;
        tasks.push(tokio::spawn(async move {
            let mut tally = TaskTally::default();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let Some(request) = requests.get(n) else {
                    exhausted.store(true, Ordering::Relaxed);
                    break;
                };
                let mut builder = client.post(&urls[n % urls.len()]).body(request.body);
                for (name, value) in request.headers {
                    builder = builder.header(name, value);
                }
                sent.fetch_add(1, Ordering::Relaxed);
                let start = Instant::now();
                // The body is read so the connection goes back to the pool.
                let outcome = match builder.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        Ok((status, body))
                    }
                    Err(error) => Err(error),
                };
                tally.latencies.push(start.elapsed());
                match outcome {
                    Ok((202, _)) => tally.accepted += 1,
                    Ok((200, _)) => tally.duplicate += 1,
                    Ok((status, body)) => {
                        tally.rejected += 1;
                        let entry = tally.rejected_by_status.entry(status).or_default();
                        entry.0 += 1;
                        if entry.1.is_empty() {
                            entry.1 = body.chars().take(200).collect();
                        }
                    }
                    Err(_) => tally.failed += 1,
                }
                let done = completed.fetch_add(1, Ordering::Relaxed) + 1;
                if tenth > 0 && done % tenth == 0 {
                    let at = started.elapsed();
                    tenth_marks.lock().unwrap().push(at);
                    eprintln!("  {done} events after {:.1} s", at.as_secs_f64());
                }
            }
            tally
        }));
    }
    let mut result = LoadResult::default();
    for task in tasks {
        let tally = task.await?;
        result.accepted += tally.accepted;
        result.duplicate += tally.duplicate;
        result.rejected += tally.rejected;
        result.failed += tally.failed;
        for (status, (count, body)) in tally.rejected_by_status {
            let entry = result.rejected_by_status.entry(status).or_default();
            entry.0 += count;
            if entry.1.is_empty() {
                entry.1 = body;
            }
        }
        result.latencies.extend(tally.latencies);
    }
    result.elapsed = started.elapsed();
    result.sent = sent.load(Ordering::Relaxed);
    result.exhausted = exhausted.load(Ordering::Relaxed);
    result.latencies.sort_unstable();
    let mut marks = tenth_marks.lock().unwrap().clone();
    marks.sort_unstable();
    result.tenth_marks = marks;
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// Server processes: CPU, disk, starting and stopping.

/// CPU time (user + system, with reaped children) of `roots` and all their descendants, in
/// clock ticks, from /proc.
fn tree_cpu_ticks(roots: &[u32]) -> u64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields count from after it.
        let Some((_, after_name)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // After the name: state (3), ppid (4), ... utime (14), stime (15), cutime (16),
        // cstime (17); index = field number - 3.
        let field = |number: usize| -> u64 {
            fields
                .get(number - 3)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        children.entry(field(4) as u32).or_default().push(pid);
        ticks.insert(pid, field(14) + field(15) + field(16) + field(17));
    }
    let mut total = 0;
    let mut pending: Vec<u32> = roots.to_vec();
    while let Some(pid) = pending.pop() {
        total += ticks.get(&pid).copied().unwrap_or(0);
        pending.extend(children.get(&pid).into_iter().flatten());
    }
    total
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// The apparent size of the files under `dir`.
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Counts the lines of a growing file, reading only what was appended since the last call.
#[derive(Default)]
struct LineCounter {
    offset: u64,
    lines: usize,
}

impl LineCounter {
    fn count(&mut self, path: &Path) -> usize {
        let Ok(mut file) = std::fs::File::open(path) else {
            return self.lines;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return self.lines;
        }
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    self.offset += read as u64;
                    self.lines += buffer[..read].iter().filter(|&&byte| byte == b'\n').count();
                }
            }
        }
        self.lines
    }
}

/// A server process under test, started from a command that prints its address on stderr.
struct Server {
    name: &'static str,
    child: Child,
    /// Where the hooks are: `http://127.0.0.1:PORT`.
    base: String,
    /// rollcall's admin listener, for its metrics.
    admin: Option<String>,
    /// Every stderr line after startup, for what the server says when it stops.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `command` and waits (bounded) for the line `<listening_prefix>http://ADDR`.
    fn start(
        name: &'static str,
        mut command: Command,
        listening_prefix: &'static str,
    ) -> Result<Self> {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut base = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix(listening_prefix) {
                    base = Some(address.to_owned());
                    // rollcall prints its admin address right after the ingest one.
                    if !listening_prefix.starts_with("rollcall") {
                        let _ = tx.send((address.to_owned(), None));
                    }
                } else if let Some(admin) = line.strip_prefix("rollcall: admin listening on ") {
                    let _ = tx.send((base.clone().unwrap_or_default(), Some(admin.to_owned())));
                }
                kept.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((base, admin)) => Ok(Self {
                name,
                child,
                base,
                admin,
                stderr: lines,
            }),
            Err(_) => {
                let _ = child.kill();
                let said = lines.lock().unwrap().join("\n");
                bail!("{name} did not start within 30 s; it said:\n{said}")
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    fn stop(mut self) -> Result<(ExitStatus, Vec<String>)> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the stderr reader take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let lines = self.stderr.lock().unwrap().clone();
                return Ok((status, lines));
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                bail!("{} did not stop within 60 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------------------
// rollcall.

/// A rollcall daemon on a temporary configuration: the store in `data/`, the file sink in
/// `sink/` (so the data directory holds only the store).
struct Rollcall {
    _temp: tempfile::TempDir,
    data: PathBuf,
    events: PathBuf,
    server: Server,
}

impl Rollcall {
    fn start(binary: &str, source: &str, connector: &str, secret: &str) -> Result<Self> {
        Self::start_on(binary, source, connector, secret, None, None)
    }

    /// As [`Rollcall::start`], on the `[store]` keys `store` (else SQLite in `data/`) and
    /// with the file sink at `events` (else in `sink/`).
    fn start_on(
        binary: &str,
        source: &str,
        connector: &str,
        secret: &str,
        store: Option<&str>,
        events: Option<&Path>,
    ) -> Result<Self> {
        let temp = tempfile::tempdir()?;
        let data = temp.path().join("data");
        let sink = temp.path().join("sink");
        std::fs::create_dir_all(&data)?;
        std::fs::create_dir_all(&sink)?;
        let events = events.map_or_else(|| sink.join("events.jsonl"), Path::to_path_buf);
        let store = store.map_or_else(
            || {
                format!(
                    "type = \"sqlite\"\npath = \"{}\"",
                    data.join("rollcall.db").display()
                )
            },
            str::to_owned,
        );
        let config = format!(
            "[ingest]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [store]\n{store}\n\n\
             [[sources]]\nid = \"{source}\"\nconnector = \"{connector}\"\nsigning_secret = \"{secret}\"\n\n\
             [[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
            events.display()
        );
        let config_path = temp.path().join("rollcall.toml");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("ROLLCALL_LOG", "warn");
        let server = Server::start("rollcall", command, "rollcall: ingest listening on ")?;
        Ok(Self {
            _temp: temp,
            data,
            events,
            server,
        })
    }

    /// Waits (bounded) until the file sink holds `accepted` events; returns how long it took
    /// and how many it holds.
    async fn drain(
        &self,
        counter: &mut LineCounter,
        accepted: usize,
        bound: Duration,
    ) -> (Duration, usize) {
        let started = Instant::now();
        while counter.count(&self.events) < accepted && started.elapsed() < bound {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (started.elapsed(), counter.count(&self.events))
    }

    /// The store's writes and commits so far, from the admin metrics.
    async fn writes_per_commit(&self) -> Option<(f64, f64)> {
        let admin = self.server.admin.as_ref()?;
        let metrics = reqwest::Client::builder()
            .no_proxy()
            .build()
            .ok()?
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let read = |name: &str| {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Some((
            read("rollcall_store_writes_total "),
            read("rollcall_store_commits_total "),
        ))
    }
}

/// Folds a stopped server's WAL into its database (so the directory's size is the data's)
/// and counts a table's rows, with the axum-sqlite baseline's `checkpoint` command.
fn checkpoint(tool: &str, db: &Path, table: Option<&str>) -> Result<Option<usize>> {
    let mut command = Command::new(tool);
    command.arg("checkpoint").arg("--db").arg(db);
    if let Some(table) = table {
        command.args(["--count-table", table]);
    }
    let output = command
        .output()
        .with_context(|| format!("running {tool}"))?;
    ensure!(
        output.status.success(),
        "{tool} checkpoint {}: {}",
        db.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("rows ")?.trim().parse().ok()))
}

// ---------------------------------------------------------------------------------------
// The default run: rollcall alone, Freshservice bodies.

async fn single(args: &Args) -> Result<()> {
    // With PostgreSQL: a fresh schema, shared by every replica and dropped afterwards; the
    // replicas share one file sink too (only the lease holder writes it).
    let shared = tempfile::tempdir()?;
    let events = shared.path().join("events.jsonl");
    let schema = (args.store == "postgres")
        .then(|| format!("rollcall_bench_{:016x}", rand::random::<u64>()));
    let store = schema.as_ref().map(|schema| {
        format!(
            "type = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"",
            args.postgres_url
        )
    });
    let mut replicas = Vec::new();
    for _ in 0..args.replicas {
        replicas.push(Rollcall::start_on(
            &args.binary,
            "fs",
            "freshservice",
            FRESHSERVICE_SECRET,
            store.as_deref(),
            Some(&events),
        )?);
    }
    let urls: Vec<String> = replicas
        .iter()
        .map(|replica| format!("{}/hooks/fs", replica.server.base))
        .collect();
    let connector = connector("freshservice", "fs", FRESHSERVICE_SECRET)?;
    let template: serde_json::Value = serde_json::from_slice(&std::fs::read(workspace_file(
        "connectors/freshservice/fixtures/onUserCreate.json",
    ))?)?;
    let requests = Requests::Made(Arc::new(move |n| {
        let mut body = template.clone();
        body["data"]["user"]["id"] = serde_json::json!(n + 1_000_000);
        body["data"]["user"]["primary_email"] = serde_json::json!(format!("user{n}@example.com"));
        sign(
            connector.as_ref(),
            "fs",
            Bytes::from(serde_json::to_vec(&body).unwrap()),
        )
    }));
    let plan = Plan {
        url: urls[0].clone(),
        also: urls[1..].to_vec(),
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.seconds),
        limit: usize::MAX,
        tenths: false,
    };
    let rollcall_cpu = Window::open(
        replicas
            .iter()
            .map(|replica| replica.server.pid())
            .collect(),
    );
    let postgres_cpu = schema.as_ref().map(|_| Window::open(postgres_roots()));
    let load = drive(&plan, &requests).await?;
    let rollcall_cpu_ms = rollcall_cpu.cpu_ms();
    let postgres_cpu_ms = postgres_cpu.map(|window| window.cpu_ms());

    // Let the file sink catch up (bounded), so the ledger compares finished work; the time
    // it takes is the delivery backlog the load left behind.
    let mut counter = LineCounter::default();
    let (drain, _) = replicas[0]
        .drain(&mut counter, load.accepted, Duration::from_secs(120))
        .await;
    let (mut writes, mut commits) = (0.0, 0.0);
    for replica in &replicas {
        let (w, c) = replica.writes_per_commit().await.unwrap_or_default();
        writes += w;
        commits += c;
    }
    let mut clean = true;
    let mut statuses = Vec::new();
    for replica in replicas {
        let (status, _) = replica.server.stop()?;
        clean &= status.success();
        statuses.push(status.to_string());
    }
    let delivered = counter.count(&events);
    if let Some(schema) = &schema {
        drop_schema(&args.postgres_url, schema).await?;
    }

    println!(
        "ingest load run: {} s, concurrency {}, store {}, {} replica(s)",
        args.seconds, args.concurrency, args.store, args.replicas
    );
    println!("requests/s: {:.0}", load.requests_per_second());
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        load.percentile_ms(0.50),
        load.percentile_ms(0.99),
        load.max_ms()
    );
    let per_thousand = |ms: f64| ms * 1000.0 / load.accepted.max(1) as f64;
    match postgres_cpu_ms {
        Some(postgres_ms) => println!(
            "server CPU: rollcall {:.0} ms + PostgreSQL {:.0} ms per 1,000 events (PostgreSQL: every process of the server, other clients included)",
            per_thousand(rollcall_cpu_ms),
            per_thousand(postgres_ms)
        ),
        None => println!(
            "server CPU: rollcall {:.0} ms per 1,000 events",
            per_thousand(rollcall_cpu_ms)
        ),
    }
    println!(
        "store: {writes:.0} writes in {commits:.0} commits ({:.1} writes per commit)",
        writes / f64::max(commits, 1.0)
    );
    println!(
        "delivery: backlog drained {:.1} s after the load stopped; file sink {:.0} events/s over the run",
        drain.as_secs_f64(),
        delivered as f64 / (load.elapsed + drain).as_secs_f64()
    );
    println!(
        "ledger: sent {} = accepted {} + duplicate {} + rejected {} + failed {}; delivered to file sink {delivered}; servers {}",
        load.sent,
        load.accepted,
        load.duplicate,
        load.rejected,
        load.failed,
        statuses.join(", ")
    );
    let balanced = load.client_ledger_balances() && load.accepted == delivered;
    println!("ledger balanced: {balanced}");
    if !balanced || !clean {
        bail!("the ledger does not balance");
    }
    Ok(())
}

/// The PostgreSQL server's root processes (the postmaster), found by name in /proc: its
/// CPU is the store's share of a run.
fn postgres_roots() -> Vec<u32> {
    let mut parents: HashMap<u32, u32> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((head, after_name)) = stat.rsplit_once(')') else {
                continue;
            };
            if !head.ends_with("(postgres") && !head.ends_with("(postmaster") {
                continue;
            }
            let ppid = after_name
                .split_whitespace()
                .nth(1)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            parents.insert(pid, ppid);
        }
    }
    parents
        .iter()
        .filter(|(_, parent)| !parents.contains_key(parent))
        .map(|(pid, _)| *pid)
        .collect()
}

async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    let config: tokio_postgres::Config = url.parse()?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// --compare: three servers, identical traffic.

/// One server's figures in a comparison.
struct Measured {
    name: &'static str,
    load: LoadResult,
    cpu_ms: f64,
    /// Bytes on disk after the server stopped and its WAL was checkpointed.
    disk_bytes: Option<u64>,
    /// What the server kept, by its own count (see the module doc).
    kept: usize,
    kept_what: &'static str,
    exit: ExitStatus,
    notes: Vec<String>,
}

impl Measured {
    fn cpu_per_thousand(&self) -> f64 {
        self.cpu_ms * 1000.0 / (self.load.accepted.max(1) as f64)
    }

    fn disk_per_event(&self) -> Option<f64> {
        self.disk_bytes
            .map(|bytes| bytes as f64 / self.load.accepted.max(1) as f64)
    }

    /// Every request accounted for, every accepted event kept, none rejected, a clean exit.
    fn problems(&self) -> Vec<String> {
        let load = &self.load;
        let mut problems = Vec::new();
        if !load.client_ledger_balances() {
            problems.push(format!(
                "sent {} != accepted {} + duplicate {} + rejected {} + failed {}",
                load.sent, load.accepted, load.duplicate, load.rejected, load.failed
            ));
        }
        if load.accepted != self.kept {
            problems.push(format!(
                "accepted {} != {} {}",
                load.accepted, self.kept_what, self.kept
            ));
        }
        if load.accepted == 0 {
            problems.push("nothing accepted".to_owned());
        }
        // Every body is genuine, fresh and new: a rejection means the server and the
        // generator disagree about the scheme, and the figures compare nothing.
        for (status, (count, body)) in &load.rejected_by_status {
            problems.push(format!("{count} rejected with {status}: {body}"));
        }
        if !self.exit.success() {
            problems.push(format!("server {}", self.exit));
        }
        problems
    }
}

struct Window {
    roots: Vec<u32>,
    ticks_before: u64,
}

impl Window {
    fn open(roots: Vec<u32>) -> Self {
        let ticks_before = tree_cpu_ticks(&roots);
        Self {
            roots,
            ticks_before,
        }
    }

    fn cpu_ms(&self) -> f64 {
        let ticks = tree_cpu_ticks(&self.roots).saturating_sub(self.ticks_before);
        ticks as f64 * 1000.0 / clock_ticks_per_second() as f64
    }
}

async fn compare(args: &Args) -> Result<()> {
    let axum_sqlite = args
        .axum_sqlite
        .clone()
        .context("--compare needs --axum-sqlite PATH (the baseline's binary)")?;
    let fastify = args
        .fastify
        .clone()
        .context("--compare needs --fastify DIR (benches/baselines/fastify, installed)")?;
    let count = args.seconds as usize * PRESIGNED_PER_SECOND;
    eprintln!("building {count} distinct Zendesk user.created bodies");
    let bodies = zendesk_body_set(count)?;
    eprintln!(
        "bodies: {count}, {} bytes each on average",
        bodies.iter().map(Bytes::len).sum::<usize>() / count.max(1)
    );
    let zendesk = connector("zendesk", "zd", ZENDESK_SECRET)?;
    let plan = |base: &str| Plan {
        url: format!("{base}/hooks/zd"),
        also: Vec::new(),
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.seconds),
        limit: usize::MAX,
        tenths: false,
    };

    let mut results = Vec::new();

    // (a) rollcall: SQLite store, a file sink.
    {
        eprintln!("== rollcall");
        let rollcall = Rollcall::start(&args.binary, "zd", "zendesk", ZENDESK_SECRET)?;
        let requests = presign(zendesk.as_ref(), "zd", &bodies);
        let window = Window::open(vec![rollcall.server.pid()]);
        let load = drive(&plan(&rollcall.server.base), &requests).await?;
        // The sink's work for these events is part of their cost: the CPU window closes
        // once the file sink holds them all.
        let mut counter = LineCounter::default();
        let (drain, _) = rollcall
            .drain(&mut counter, load.accepted, Duration::from_secs(120))
            .await;
        let cpu_ms = window.cpu_ms();
        let metrics = rollcall.writes_per_commit().await;
        let (exit, _) = rollcall.server.stop()?;
        let db = rollcall.data.join("rollcall.db");
        checkpoint(&axum_sqlite, &db, None)?;
        let mut notes = vec![format!(
            "file sink caught up {:.1} s after the window",
            drain.as_secs_f64()
        )];
        if let Some((writes, commits)) = metrics {
            notes.push(format!(
                "{writes:.0} writes in {commits:.0} commits ({:.1} per fsync)",
                writes / commits.max(1.0)
            ));
        }
        results.push(Measured {
            name: "rollcall",
            kept: counter.count(&rollcall.events),
            kept_what: "events in the file sink",
            disk_bytes: Some(directory_bytes(&rollcall.data)),
            load,
            cpu_ms,
            exit,
            notes,
        });
    }

    // (c) axum + SQLite group commit.
    {
        eprintln!("== axum-sqlite");
        let temp = tempfile::tempdir()?;
        let data = temp.path().join("data");
        let mut command = Command::new(&axum_sqlite);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("BASELINE_SECRET", ZENDESK_SECRET);
        let server = Server::start(
            "axum-sqlite",
            command,
            "axum-sqlite-baseline: listening on ",
        )?;
        let requests = presign(zendesk.as_ref(), "zd", &bodies);
        let window = Window::open(vec![server.pid()]);
        let load = drive(&plan(&server.base), &requests).await?;
        let cpu_ms = window.cpu_ms();
        let (exit, _) = server.stop()?;
        let rows = checkpoint(&axum_sqlite, &data.join("events.db"), Some("events"))?;
        results.push(Measured {
            name: "axum-sqlite",
            kept: rows.unwrap_or(0),
            kept_what: "rows in its table",
            disk_bytes: Some(directory_bytes(&data)),
            load,
            cpu_ms,
            exit,
            notes: Vec::new(),
        });
    }

    // (b) fastify, 2 processes, no storage.
    {
        eprintln!("== fastify");
        let mut command = Command::new(&args.node);
        command
            .arg("server.js")
            .current_dir(&fastify)
            .env("BASELINE_SECRET", ZENDESK_SECRET)
            .env("BASELINE_WORKERS", "2")
            .env("NODE_ENV", "production");
        let server = Server::start("fastify", command, "fastify-baseline: listening on ")?;
        let requests = presign(zendesk.as_ref(), "zd", &bodies);
        // The primary and both workers.
        let window = Window::open(vec![server.pid()]);
        let load = drive(&plan(&server.base), &requests).await?;
        let cpu_ms = window.cpu_ms();
        let (exit, said) = server.stop()?;
        let mapped = said.iter().find_map(|line| {
            line.strip_prefix("fastify-baseline: mapped ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        results.push(Measured {
            name: "fastify",
            kept: mapped.unwrap_or(0),
            kept_what: "events its workers mapped",
            disk_bytes: None,
            load,
            cpu_ms,
            exit,
            notes: Vec::new(),
        });
    }

    print_comparison(args, count, &results);
    let mut failed = false;
    for measured in &results {
        let problems = measured.problems();
        if !problems.is_empty() {
            failed = true;
            println!(
                "{}: ledger does not balance: {}",
                measured.name,
                problems.join("; ")
            );
        }
    }
    if failed {
        bail!("a ledger does not balance");
    }
    println!("ledgers balanced: all three");
    Ok(())
}

fn print_comparison(args: &Args, bodies: usize, results: &[Measured]) {
    println!(
        "ingest side by side: {} s per server, concurrency {}, {bodies} distinct signed Zendesk user.created bodies (~2 KB)",
        args.seconds, args.concurrency
    );
    println!();
    println!("| server | requests/s | p50 | p99 | server CPU per 1,000 events | bytes on disk per event | ledger |");
    println!("|---|---|---|---|---|---|---|");
    for measured in results {
        let load = &measured.load;
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} ms | {} | sent {} = accepted {} + duplicate {} + rejected {} + failed {}; {} {} |",
            measured.name,
            load.requests_per_second(),
            load.percentile_ms(0.50),
            load.percentile_ms(0.99),
            measured.cpu_per_thousand(),
            measured
                .disk_per_event()
                .map(|bytes| format!("{bytes:.0} B"))
                .unwrap_or_else(|| "n/a".to_owned()),
            load.sent,
            load.accepted,
            load.duplicate,
            load.rejected,
            load.failed,
            measured.kept_what,
            measured.kept,
        );
    }
    println!();
    let find = |name: &str| results.iter().find(|measured| measured.name == name);
    if let Some(rollcall) = find("rollcall") {
        for other in ["axum-sqlite", "fastify"] {
            let Some(other) = find(other) else { continue };
            println!(
                "rollcall / {}: requests/s {:.2}x, p99 {:.2}x, CPU per event {:.2}x",
                other.name,
                rollcall.load.requests_per_second()
                    / other.load.requests_per_second().max(f64::MIN_POSITIVE),
                rollcall.load.percentile_ms(0.99)
                    / other.load.percentile_ms(0.99).max(f64::MIN_POSITIVE),
                rollcall.cpu_per_thousand() / other.cpu_per_thousand().max(f64::MIN_POSITIVE),
            );
        }
    }
    for measured in results {
        let mut notes = measured.notes.clone();
        if measured.load.exhausted {
            notes.push(format!(
                "used all {bodies} bodies before the window ended: requests/s are over {:.1} s",
                measured.load.elapsed.as_secs_f64()
            ));
        }
        notes.push(format!(
            "CPU {:.0} ms over the window, max latency {:.1} ms",
            measured.cpu_ms,
            measured.load.max_ms()
        ));
        println!("{}: {}", measured.name, notes.join("; "));
    }
}

// ---------------------------------------------------------------------------------------
// --history N: does throughput stay flat as the store grows?

/// Free bytes on the file system holding `path`, from `df`.
fn free_bytes(path: &Path) -> Option<u64> {
    let output = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let kilobytes: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kilobytes * 1024)
}

async fn history(args: &Args) -> Result<()> {
    let total = args.history_events;
    // Today's store takes ~7 KB per event and the file sink ~3 KB: refuse early rather than
    // fill the disk minutes into the run.
    let needed = total as u64 * 12 * 1024;
    let temp_dir = std::env::temp_dir();
    if let Some(free) = free_bytes(&temp_dir) {
        ensure!(
            free > needed,
            "{total} events need about {} GB under {} and {} GB are free",
            needed >> 30,
            temp_dir.display(),
            free >> 30
        );
    }
    let rollcall = Rollcall::start(&args.binary, "zd", "zendesk", ZENDESK_SECRET)?;
    let zendesk = connector("zendesk", "zd", ZENDESK_SECRET)?;
    let bodies = ZendeskBodies::load()?;
    let requests = Requests::Made(Arc::new(move |n| {
        sign(zendesk.as_ref(), "zd", bodies.body(n))
    }));
    let plan = Plan {
        url: format!("{}/hooks/zd", rollcall.server.base),
        also: Vec::new(),
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.minutes * 60),
        limit: total,
        tenths: true,
    };
    eprintln!(
        "history: {total} events into rollcall, concurrency {}, at most {} min",
        args.concurrency, args.minutes
    );
    let window = Window::open(vec![rollcall.server.pid()]);
    let load = drive(&plan, &requests).await?;
    let mut counter = LineCounter::default();
    let (drain, _) = rollcall
        .drain(&mut counter, load.accepted, Duration::from_secs(300))
        .await;
    let cpu_ms = window.cpu_ms();
    let (exit, _) = rollcall.server.stop()?;
    let tool = args.axum_sqlite.as_deref();
    if let Some(tool) = tool {
        checkpoint(tool, &rollcall.data.join("rollcall.db"), None)?;
    }
    let delivered = counter.count(&rollcall.events);
    let disk = directory_bytes(&rollcall.data);

    println!(
        "ingest history: {total} distinct signed Zendesk user.created events into rollcall, concurrency {}, bounded at {} min",
        args.concurrency, args.minutes
    );
    println!();
    println!("| tenth | events | seconds | events/s |");
    println!("|---|---|---|---|");
    let tenth = total / 10;
    let mut rates = Vec::new();
    let mut previous = Duration::ZERO;
    for (index, mark) in load.tenth_marks.iter().enumerate() {
        let seconds = (*mark - previous).as_secs_f64();
        let rate = tenth as f64 / seconds.max(f64::MIN_POSITIVE);
        rates.push(rate);
        println!(
            "| {} | {}-{} | {seconds:.1} | {rate:.0} |",
            index + 1,
            index * tenth + 1,
            (index + 1) * tenth
        );
        previous = *mark;
    }
    println!();
    let completed = load.sent;
    if completed < total {
        println!(
            "stopped by the time bound after {completed} of {total} events ({:.1} s)",
            load.elapsed.as_secs_f64()
        );
    }
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        let ratio = last / first;
        println!(
            "last tenth / first tenth: {ratio:.2} ({}within 10 %)",
            if (ratio - 1.0).abs() <= 0.10 {
                ""
            } else {
                "not "
            }
        );
    }
    println!(
        "overall: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.0} ms per 1,000 events",
        load.requests_per_second(),
        load.percentile_ms(0.50),
        load.percentile_ms(0.99),
        cpu_ms * 1000.0 / load.accepted.max(1) as f64
    );
    println!(
        "disk: {:.0} bytes per event in the store's directory{}; file sink caught up {:.1} s after the load",
        disk as f64 / load.accepted.max(1) as f64,
        if tool.is_some() { " after a checkpoint" } else { " (not checkpointed)" },
        drain.as_secs_f64()
    );
    println!(
        "ledger: sent {} = accepted {} + duplicate {} + rejected {} + failed {}; delivered to file sink {delivered}; daemon {exit}",
        load.sent, load.accepted, load.duplicate, load.rejected, load.failed
    );
    let balanced =
        load.client_ledger_balances() && load.accepted == delivered && load.rejected == 0;
    println!("ledger balanced: {balanced}");
    if !balanced || !exit.success() {
        bail!("the ledger does not balance");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// --target URL: someone else's server.

async fn target(args: &Args) -> Result<()> {
    let url = args.target.clone().context("--target URL")?;
    ensure!(
        url.starts_with("http://127.")
            || url.starts_with("http://localhost")
            || url.starts_with("http://[::1]"),
        "--target must be a loopback http:// URL"
    );
    let source = url.rsplit('/').next().unwrap_or("zd").to_owned();
    let count = args.seconds as usize * PRESIGNED_PER_SECOND;
    let bodies = zendesk_body_set(count)?;
    let zendesk = connector("zendesk", &source, &args.secret)?;
    let requests = presign(zendesk.as_ref(), &source, &bodies);
    let window = Window::open(args.pids.clone());
    let plan = Plan {
        url: url.clone(),
        also: Vec::new(),
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.seconds),
        limit: usize::MAX,
        tenths: false,
    };
    let load = drive(&plan, &requests).await?;
    let cpu_ms = window.cpu_ms();
    println!(
        "{url}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms{}",
        load.requests_per_second(),
        load.percentile_ms(0.50),
        load.percentile_ms(0.99),
        if args.pids.is_empty() {
            String::new()
        } else {
            format!(
                ", server CPU {:.0} ms per 1,000 events",
                cpu_ms * 1000.0 / load.accepted.max(1) as f64
            )
        }
    );
    println!(
        "ledger: sent {} = accepted {} + duplicate {} + rejected {} + failed {}",
        load.sent, load.accepted, load.duplicate, load.rejected, load.failed
    );
    for (status, (count, body)) in &load.rejected_by_status {
        println!("  {count} rejected with {status}: {body}");
    }
    ensure!(load.client_ledger_balances(), "the ledger does not balance");
    ensure!(load.accepted > 0, "the server accepted nothing");
    Ok(())
}
