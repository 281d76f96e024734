//! The "bare receiver" baseline of `cargo xtask bench ingest --compare`: what a minimal,
//! hand-written durable Zendesk webhook receiver costs, to hold rollcall against.
//!
//! `baseline-axum-sqlite serve --data DIR [--listen 127.0.0.1:0]` (secret in
//! `BASELINE_SECRET`): axum on `POST /hooks/{source}`; each request is verified (Zendesk's
//! HMAC-SHA256 over timestamp + body, five-minute window), parsed, mapped to rollcall's
//! unified user shape and handed to one writer thread, which takes every queued event, inserts
//! each with one `INSERT` in one transaction (SQLite WAL, `synchronous=FULL`), commits, and
//! only then lets the requests answer: 202 for a new event, 200 for a duplicate envelope id.
//! It prints `axum-sqlite-baseline: listening on http://ADDR` and stops on SIGTERM.
//!
//! `baseline-axum-sqlite checkpoint --db FILE [--count-table NAME]`: checkpoints a SQLite
//! database that no process has open (the WAL folded in and truncated, so the file sizes
//! are the data's) and prints `rows N` for the table; the bench uses it on both this
//! baseline's database and rollcall's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

const SIGNATURE_HEADER: &str = "x-zendesk-webhook-signature";
const TIMESTAMP_HEADER: &str = "x-zendesk-webhook-signature-timestamp";
/// Zendesk's replay window, as rollcall applies it.
const TOLERANCE_SECONDS: i64 = 300;
/// A bound on one transaction, so one commit never holds an unbounded number of answers.
const MAX_BATCH: usize = 4096;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let data = PathBuf::from(flag(&args, "--data")?.context("serve needs --data DIR")?);
            let listen = flag(&args, "--listen")?.unwrap_or_else(|| "127.0.0.1:0".to_owned());
            let secret = std::env::var("BASELINE_SECRET").context("BASELINE_SECRET is not set")?;
            serve(&data, &listen, secret.into_bytes())
        }
        Some("checkpoint") => {
            let db = PathBuf::from(flag(&args, "--db")?.context("checkpoint needs --db FILE")?);
            let rows = checkpoint(&db, flag(&args, "--count-table")?.as_deref())?;
            if let Some(rows) = rows {
                println!("rows {rows}");
            }
            Ok(())
        }
        _ => bail!(
            "usage: baseline-axum-sqlite serve --data DIR [--listen ADDR] | \
             checkpoint --db FILE [--count-table NAME]"
        ),
    }
}

/// The value after `name`, if the flag is given.
fn flag(args: &[String], name: &str) -> Result<Option<String>> {
    match args.iter().position(|arg| arg == name) {
        Some(at) => Ok(Some(
            args.get(at + 1)
                .with_context(|| format!("{name} needs a value"))?
                .clone(),
        )),
        None => Ok(None),
    }
}

/// One event waiting for the writer, and where its request waits for the commit.
struct Job {
    dedup_key: String,
    received_at: String,
    event: String,
    /// `true` when the row was inserted, `false` for a duplicate envelope id.
    committed: oneshot::Sender<Result<bool, String>>,
}

struct AppState {
    secret: Vec<u8>,
    jobs: mpsc::Sender<Job>,
    /// Event ids: the start time and a counter make them unique within and across runs.
    started_nanos: u128,
    next_event: AtomicU64,
}

fn open(db: &Path) -> Result<Connection> {
    let connection = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(connection)
}

fn serve(data: &Path, listen: &str, secret: Vec<u8>) -> Result<()> {
    std::fs::create_dir_all(data)?;
    let connection = open(&data.join("events.db"))?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             seq INTEGER PRIMARY KEY,
             dedup_key TEXT NOT NULL UNIQUE,
             received_at TEXT NOT NULL,
             event TEXT NOT NULL
         );",
    )?;
    let (jobs, queue) = mpsc::channel();
    let writer = std::thread::Builder::new()
        .name("sqlite-writer".to_owned())
        .spawn(move || write_loop(connection, &queue))?;

    let state = Arc::new(AppState {
        secret,
        jobs,
        started_nanos: SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos(),
        next_event: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!(
            "axum-sqlite-baseline: listening on http://{}",
            listener.local_addr()?
        );
        let app = Router::new()
            .route("/hooks/{source}", post(ingest))
            .with_state(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(terminated())
            .await?;
        anyhow::Ok(())
    })?;
    // Every sender is gone with the router: the writer drains and returns.
    drop(runtime);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    eprintln!("axum-sqlite-baseline: stopped");
    Ok(())
}

async fn terminated() {
    if let Ok(mut signal) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        signal.recv().await;
    }
}

/// Group commit: wait for one event, take every other queued one, insert them all in one
/// transaction, commit (an fsync with `synchronous=FULL`), then answer every request.
fn write_loop(mut connection: Connection, queue: &mpsc::Receiver<Job>) -> Result<()> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit(&mut connection, &batch) {
            Ok(inserted) => {
                for (job, inserted) in batch.drain(..).zip(inserted) {
                    let _ = job.committed.send(Ok(inserted));
                }
            }
            Err(error) => {
                for job in batch.drain(..) {
                    let _ = job.committed.send(Err(error.to_string()));
                }
            }
        }
    }
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

fn commit(connection: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<bool>> {
    let transaction = connection.transaction()?;
    let mut inserted = Vec::with_capacity(batch.len());
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO events (dedup_key, received_at, event) VALUES (?1, ?2, ?3)
             ON CONFLICT (dedup_key) DO NOTHING",
        )?;
        for job in batch {
            inserted.push(insert.execute(params![job.dedup_key, job.received_at, job.event])? == 1);
        }
    }
    transaction.commit()?;
    Ok(inserted)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    UrlPath(source): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let received_seconds = i64::try_from(received.as_secs()).unwrap_or(i64::MAX);
    if let Err(why) = verify(&state.secret, &headers, &body, received_seconds) {
        return answer(StatusCode::UNAUTHORIZED, json!({ "error": why }));
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(_) => return answer(StatusCode::BAD_REQUEST, json!({ "error": "not JSON" })),
    };
    let received_at = format_rfc3339(received_seconds, Some(received.subsec_millis()));
    let sequence = state.next_event.fetch_add(1, Ordering::Relaxed);
    let event_id = format!("{:x}-{sequence:x}", state.started_nanos);
    let event = match map_event(&source, &payload, &event_id, &received_at) {
        Ok(event) => event,
        Err(why) => return answer(StatusCode::UNPROCESSABLE_ENTITY, json!({ "error": why })),
    };
    // The envelope id is stable across Zendesk's retries; without one, the body decides.
    let dedup_key = match zendesk_id(payload.get("id")) {
        Some(id) => id,
        None => format!("sha256:{:x}", Sha256::digest(&body)),
    };
    let (committed, outcome) = oneshot::channel();
    let job = Job {
        dedup_key,
        received_at,
        event: event.to_string(),
        committed,
    };
    if state.jobs.send(job).is_err() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": "stopping" }),
        );
    }
    match outcome.await {
        Ok(Ok(true)) => answer(
            StatusCode::ACCEPTED,
            json!({ "accepted": 1, "event_ids": [event_id] }),
        ),
        Ok(Ok(false)) => answer(StatusCode::OK, json!({ "duplicate": true })),
        Ok(Err(error)) => answer(StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": error })),
        Err(_) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": "writer gone" }),
        ),
    }
}

/// Zendesk's signature: base64(HMAC-SHA256(secret, timestamp header + body)), checked before
/// the timestamp's window.
fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    received_seconds: i64,
) -> Result<(), &'static str> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.trim().is_empty())
    };
    let (Some(signature), Some(timestamp)) = (header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER))
    else {
        return Err("signature_missing");
    };
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| "signature_invalid")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "signature_invalid")?;
    mac.update(timestamp.as_bytes());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| "signature_invalid")?;
    let signed_at = parse_rfc3339(timestamp).ok_or("timestamp_invalid")?;
    if (received_seconds - signed_at).abs() > TOLERANCE_SECONDS {
        return Err("timestamp_outside_window");
    }
    Ok(())
}

/// A Zendesk id: a string or an integer; `"0"` and `""` mean none.
fn zendesk_id(value: Option<&Value>) -> Option<String> {
    let id = match value? {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) if number.is_u64() || number.is_i64() => number.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id != "0").then_some(id)
}

/// A string that is not blank ("" means "not set").
fn text(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
}

/// An RFC 3339 time, re-encoded in whole seconds; `None` when absent or unreadable.
fn time(value: Option<&Value>) -> Option<String> {
    text(value)
        .and_then(parse_rfc3339)
        .map(|seconds| format_rfc3339(seconds, None))
}

/// The unified event of a Zendesk webhook envelope.
fn map_event(
    source: &str,
    payload: &Value,
    event_id: &str,
    received_at: &str,
) -> Result<Value, String> {
    let envelope = payload.as_object().ok_or("body is not an object")?;
    let vendor_type = text(envelope.get("type")).unwrap_or("").trim();
    let short_type = ["zen:event-type:", "zen:event-type/"]
        .iter()
        .find_map(|prefix| vendor_type.strip_prefix(prefix))
        .filter(|short| short.starts_with("user."))
        .ok_or_else(|| format!("unsupported event type {vendor_type}"))?;
    let detail = envelope
        .get("detail")
        .and_then(Value::as_object)
        .ok_or("missing user detail")?;
    let subject_id = text(envelope.get("subject"))
        .and_then(|subject| subject.trim().strip_prefix("zen:user:"))
        .map(|id| Value::String(id.to_owned()));
    let user_id = zendesk_id(detail.get("id"))
        .or_else(|| zendesk_id(subject_id.as_ref()))
        .ok_or("missing user id")?;
    let mut user = user_from_detail(user_id, detail);
    let event_type = match short_type {
        "user.created" => "user.created",
        "user.deleted" => {
            user.insert("status".to_owned(), json!("deleted"));
            "user.deleted"
        }
        _ => "user.updated",
    };
    Ok(json!({
        "id": event_id,
        "source": source,
        "connector": "zendesk",
        "type": event_type,
        "received_at": received_at,
        "partial": true,
        "vendor_event": present([
            ("id", zendesk_id(envelope.get("id")).map(Value::String)),
            ("type", Some(json!(vendor_type))),
            ("occurred_at", time(envelope.get("time")).map(Value::String)),
        ]),
        "user": user,
    }))
}

/// The unified user for a webhook's `detail`, field by field as rollcall's Zendesk mapping.
fn user_from_detail(id: String, detail: &Map<String, Value>) -> Map<String, Value> {
    let mut user = Map::new();
    user.insert("id".to_owned(), Value::String(id));
    let mut set = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            user.insert(name.to_owned(), value);
        }
    };
    set("name", text(detail.get("name")).map(|name| json!(name)));
    set(
        "emails",
        text(detail.get("email")).map(|email| json!([{ "email": email, "is_primary": true }])),
    );
    set(
        "phones",
        text(detail.get("phone")).map(|number| json!([{ "number": number }])),
    );
    let status = match (
        detail.get("active").and_then(Value::as_bool),
        detail.get("suspended").and_then(Value::as_bool),
    ) {
        (Some(false), _) => Some("deleted"),
        (_, Some(true)) => Some("inactive"),
        (Some(true), _) | (None, Some(false)) => Some("active"),
        (None, None) => None,
    };
    set("status", status.map(|status| json!(status)));
    let role = text(detail.get("role"));
    let custom_role = zendesk_id(detail.get("custom_role_id"));
    if role.is_some() || custom_role.is_some() {
        let role = present([
            ("id", custom_role.map(Value::String)),
            ("name", role.map(|name| json!(name))),
        ]);
        set("roles", Some(json!([role])));
    }
    set(
        "organizations",
        zendesk_id(detail.get("organization_id")).map(|id| json!([{ "id": id }])),
    );
    set(
        "groups",
        zendesk_id(detail.get("default_group_id")).map(|id| json!([{ "id": id }])),
    );
    set(
        "avatar",
        text(
            detail
                .get("photo")
                .and_then(|photo| photo.get("content_url")),
        )
        .map(|url| json!(url)),
    );
    set(
        "timezone",
        text(detail.get("iana_time_zone"))
            .or_else(|| text(detail.get("time_zone")))
            .map(|zone| json!(zone)),
    );
    set(
        "languages",
        text(detail.get("locale")).map(|locale| json!([locale])),
    );
    set(
        "created_at",
        time(detail.get("created_at")).map(Value::String),
    );
    set(
        "updated_at",
        time(detail.get("updated_at")).map(Value::String),
    );
    set(
        "urls",
        text(detail.get("url")).map(|url| json!([{ "url": url, "type": "api" }])),
    );
    set("remote_data", Some(Value::Object(detail.clone())));
    user
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the civil-calendar arithmetic
/// in Howard Hinnant's date algorithms, written out).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = rest.get(1..)?.split_once(':')?;
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60)
        }
    };
    Some(
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset,
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`, or `YYYY-MM-DDTHH:MM:SS.mmmZ` with milliseconds.
fn format_rfc3339(seconds: i64, millis: Option<u32>) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let fraction = millis
        .map(|millis| format!(".{millis:03}"))
        .unwrap_or_default();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// A JSON object of the fields that are present (the unified shape omits absent ones).
fn present<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect(),
    )
}

/// Folds the WAL into the database and truncates it; counts `table`'s rows if asked.
fn checkpoint(db: &Path, table: Option<&str>) -> Result<Option<u64>> {
    let connection = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let rows = match table {
        Some(table) => {
            if !table
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
            {
                bail!("not a table name: {table}");
            }
            let count: i64 =
                connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                    row.get(0)
                })?;
            Some(u64::try_from(count)?)
        }
        None => None,
    };
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-03-10T14:02:12Z"), Some(1_741_615_332));
        assert_eq!(
            parse_rfc3339("2025-03-10T15:02:12.5+01:00"),
            Some(1_741_615_332)
        );
        assert_eq!(
            format_rfc3339(1_741_615_332, Some(7)),
            "2025-03-10T14:02:12.007Z"
        );
        assert_eq!(format_rfc3339(1_741_615_332, None), "2025-03-10T14:02:12Z");
        assert_eq!(parse_rfc3339("2025-03-10"), None);
    }
}
