//! rollcall's durable state on SQLite: the journal of accepted events, the dedup index,
//! quarantined deliveries, one delivery cursor per sink, and dead letters.
//!
//! # Durability and group commit
//!
//! All writes go through one writer thread that owns the write connection. It takes every
//! job waiting in its queue, applies them in one transaction (each job in its own savepoint,
//! so one failing job does not abort the others), commits once, and only then answers each
//! job. With `journal_mode=WAL` and `synchronous=FULL`, a commit is on disk when `COMMIT`
//! returns, so concurrent requests share one fsync and no caller hears "done" before its own
//! data is durable.
//!
//! Reads use a separate connection; WAL lets them run while the writer commits.
//!
//! # Retention
//!
//! [`Store::prune`] deletes delivered journal events, dedup keys and replayed quarantine
//! entries and dead letters by age, a batch per write job, so ingest keeps committing while
//! a backlog is pruned. It never deletes an event a configured sink has not finished, nor one
//! an open dead letter refers to; the user directory is never pruned.
#![forbid(unsafe_code)]

mod directory;
mod retention;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rollcall_core::{Timestamp, UserEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::watch;

pub use crate::directory::{DirectoryEntry, UserQuery};
pub use crate::retention::{PrunePolicy, PruneReport};
use crate::writer::Writer;
pub use crate::writer::WriterStats;

/// A store operation failed. Every variant means "not committed": the caller answers 503
/// and the vendor retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the store is shut down")]
    Closed,
    #[error("the store could not commit: {0}")]
    Unavailable(String),
    #[error("cannot open the store at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("no such {what}: {id}")]
    NotFound { what: &'static str, id: String },
}

impl StoreError {
    pub const fn code(&self) -> rollcall_core::ErrorCode {
        rollcall_core::ErrorCode::StoreUnavailable
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The events of one verified delivery, to be committed together with its dedup key.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub source: String,
    pub dedup_key: String,
    pub received_at: Timestamp,
    pub events: Vec<UserEvent>,
}

/// What happened to an [`IngestBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum IngestOutcome {
    /// Committed: the events are in the journal.
    Accepted { event_ids: Vec<String> },
    /// The dedup key was seen before; these are the events it produced then.
    Duplicate { event_ids: Vec<String> },
}

/// One journal row.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    pub seq: i64,
    pub event_id: String,
    pub source: String,
    pub event_type: String,
    pub received_at_ms: i64,
    /// The `UserEvent` as JSON.
    pub event: Vec<u8>,
}

impl JournalEntry {
    pub fn decode(&self) -> Result<UserEvent> {
        Ok(serde_json::from_slice(&self.event)?)
    }
}

/// A delivery that verified but could not be normalized: what quarantine keeps so it can be
/// re-run after a fix.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedDelivery {
    pub source: String,
    pub connector: String,
    pub received_at: Timestamp,
    /// The error code and message normalization gave, and where in the payload.
    pub code: String,
    pub message: String,
    pub path: Option<String>,
    pub method: String,
    /// Headers minus anything that carries a secret.
    pub headers: Vec<(String, String)>,
    /// The query string minus secret parameters.
    pub query: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl RejectedDelivery {
    /// The request again, as kept (credentials were not), for a re-run after a fix.
    pub fn to_delivery(&self) -> rollcall_core::Delivery {
        let mut delivery =
            rollcall_core::Delivery::new(self.source.clone(), self.body.clone(), self.received_at)
                .with_method(self.method.clone());
        for (name, value) in &self.headers {
            delivery.headers.insert(name.as_str(), value.as_str());
        }
        delivery.query = self.query.clone();
        delivery
    }
}

/// A quarantined delivery as stored.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedDelivery {
    pub id: i64,
    #[serde(flatten)]
    pub delivery: RejectedDelivery,
    pub body_bytes: usize,
    /// `open` or `replayed`.
    pub state: String,
}

/// An event a sink could not take.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub sink: String,
    pub seq: i64,
    pub event_id: String,
    pub failed_at: Timestamp,
    pub attempts: u32,
    pub error: String,
    /// `dead`, `replay` (requested, waiting for the worker) or `replayed`.
    pub state: String,
}

/// Counts for health and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreCounts {
    pub journal_events: i64,
    pub last_seq: i64,
    pub quarantined_open: i64,
    pub dead_letters: i64,
}

/// The handle to the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    writer: Writer,
    reader: Arc<Mutex<Connection>>,
    committed: watch::Receiver<i64>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, and starts its writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| StoreError::Open {
                path: path.clone(),
                message: error.to_string(),
            })?;
        }
        let write_connection = schema::open_connection(&path)?;
        schema::migrate(&write_connection)?;
        let last_seq = schema::last_seq(&write_connection)?;
        let reader = schema::open_connection(&path)?;
        let (committed_tx, committed) = watch::channel(last_seq);
        let writer = Writer::start(write_connection, committed_tx)?;
        Ok(Self {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            committed,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number of the latest committed event; changes after every commit that
    /// adds events.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Commits a delivery's events and its dedup key in one transaction, unless the key was
    /// seen before. Returns once the commit is on disk.
    ///
    /// Each event goes through the user directory in the same transaction
    /// ([`rollcall_core::directory::apply`]): the journal keeps the completed event, with the
    /// best-known user, its previous state and the changes.
    pub async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome> {
        self.writer.write(move |tx| insert_batch(tx, batch)).await
    }

    /// Whether a delivery with this dedup key was already committed for the source. A hint
    /// for skipping work on vendor retries; [`Store::ingest`] makes the binding check.
    pub async fn dedup_seen(&self, source: &str, dedup_key: &str) -> Result<bool> {
        let (source, dedup_key) = (source.to_owned(), dedup_key.to_owned());
        self.read(move |db| {
            Ok(db
                .prepare_cached("SELECT 1 FROM dedup WHERE source = ?1 AND key = ?2")?
                .query_row(params![source, dedup_key], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    /// Keeps a delivery that could not be normalized.
    pub async fn quarantine(&self, entry: RejectedDelivery) -> Result<i64> {
        let headers = serde_json::to_string(&entry.headers)?;
        self.writer
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO quarantine (source, connector, received_at, code, message, path, \
                     method, headers, query, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        entry.source,
                        entry.connector,
                        entry.received_at.unix_millis(),
                        entry.code,
                        entry.message,
                        entry.path,
                        entry.method,
                        headers,
                        entry.query,
                        entry.body,
                    ],
                )?;
                Ok(tx.last_insert_rowid())
            })
            .await
    }

    /// Marks a quarantined delivery replayed, committing the events it now produces (with
    /// dedup) in the same transaction.
    pub async fn resolve_quarantine(&self, id: i64, batch: IngestBatch) -> Result<IngestOutcome> {
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |tx| {
                let outcome = insert_batch(tx, batch)?;
                let changed = tx.execute(
                    "UPDATE quarantine SET state = 'replayed', resolved_at = ?2 WHERE id = ?1 AND state = 'open'",
                    params![id, now],
                )?;
                if changed == 0 {
                    return Err(WriteError::NotFound {
                        what: "open quarantined delivery",
                        id: id.to_string(),
                    });
                }
                Ok(outcome)
            })
            .await
    }

    /// Quarantined deliveries, newest first.
    pub async fn quarantined(
        &self,
        state: Option<String>,
        limit: u32,
    ) -> Result<Vec<QuarantinedDelivery>> {
        self.read(move |db| {
            let mut statement = db.prepare_cached(
                "SELECT id, source, connector, received_at, code, message, path, method, headers, \
                 query, body, state FROM quarantine WHERE (?1 IS NULL OR state = ?1) \
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![state, limit], quarantine_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(Into::into)
        })
        .await
    }

    pub async fn quarantined_by_id(&self, id: i64) -> Result<QuarantinedDelivery> {
        self.read(move |db| {
            db.query_row(
                "SELECT id, source, connector, received_at, code, message, path, method, headers, \
                 query, body, state FROM quarantine WHERE id = ?1",
                [id],
                quarantine_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "quarantined delivery",
                id: id.to_string(),
            })
        })
        .await
    }

    /// Up to `limit` journal entries after `after_seq`, in order.
    pub async fn journal_after(&self, after_seq: i64, limit: u32) -> Result<Vec<JournalEntry>> {
        self.read(move |db| {
            let mut statement = db.prepare_cached(
                "SELECT seq, event_id, source, event_type, received_at, event FROM journal \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = statement.query_map(params![after_seq, limit], journal_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(Into::into)
        })
        .await
    }

    /// The journal entry with that sequence number.
    pub async fn journal_entry(&self, seq: i64) -> Result<JournalEntry> {
        self.read(move |db| {
            db.query_row(
                "SELECT seq, event_id, source, event_type, received_at, event FROM journal WHERE seq = ?1",
                [seq],
                journal_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "journal entry",
                id: seq.to_string(),
            })
        })
        .await
    }

    /// The last sequence number `sink` has finished with (0 when it has none).
    pub async fn cursor(&self, sink: &str) -> Result<i64> {
        let sink = sink.to_owned();
        self.read(move |db| {
            Ok(db
                .query_row("SELECT seq FROM cursors WHERE sink = ?1", [sink], |row| {
                    row.get(0)
                })
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    /// Records that `sink` is done with everything up to `seq`.
    pub async fn advance_cursor(&self, sink: &str, seq: i64) -> Result<()> {
        let sink = sink.to_owned();
        self.writer
            .write(move |tx| {
                set_cursor(tx, &sink, seq)?;
                Ok(())
            })
            .await
    }

    /// Moves `sink`'s cursor from `from` to `to`, only if it is still at `from`; returns
    /// whether it moved. Delivery workers advance this way so an operator's rewind that lands
    /// while they send is not overwritten by the position they computed before it.
    pub async fn move_cursor(&self, sink: &str, from: i64, to: i64) -> Result<bool> {
        let sink = sink.to_owned();
        self.writer
            .write(move |tx| {
                if current_cursor(tx, &sink)? != from {
                    return Ok(false);
                }
                set_cursor(tx, &sink, to)?;
                Ok(true)
            })
            .await
    }

    /// Moves a sink's cursor back so everything received at or after `since` is delivered
    /// again. Returns the new cursor.
    pub async fn rewind(&self, sink: &str, since: Timestamp) -> Result<i64> {
        let sink = sink.to_owned();
        self.writer
            .write(move |tx| {
                // The first event received at or after `since`, by sequence: events replayed
                // from quarantine keep their original receive time but get a new sequence
                // number, so "the last event before `since`" is not the cut.
                let first: Option<i64> = tx.query_row(
                    "SELECT MIN(seq) FROM journal WHERE received_at >= ?1",
                    [since.unix_millis()],
                    |row| row.get(0),
                )?;
                let current = current_cursor(tx, &sink)?;
                let target = match first {
                    Some(first) => (first - 1).min(current),
                    None => current,
                };
                set_cursor(tx, &sink, target)?;
                Ok(target)
            })
            .await
    }

    /// Records a dead letter for `entry` and moves the sink's cursor from `expected_cursor`
    /// past it, atomically. When the cursor is no longer at `expected_cursor` (an operator
    /// rewound it meanwhile) nothing is recorded and `None` is returned: the event will be
    /// sent again from the new position.
    pub async fn dead_letter(
        &self,
        sink: &str,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
        expected_cursor: i64,
    ) -> Result<Option<i64>> {
        let sink = sink.to_owned();
        let seq = entry.seq;
        let event_id = entry.event_id.clone();
        let error = error.to_owned();
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |tx| {
                if current_cursor(tx, &sink)? != expected_cursor {
                    return Ok(None);
                }
                tx.execute(
                    "INSERT INTO dead_letters (sink, seq, event_id, failed_at, attempts, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![sink, seq, event_id, now, attempts, error],
                )?;
                let id = tx.last_insert_rowid();
                set_cursor(tx, &sink, seq)?;
                Ok(Some(id))
            })
            .await
    }

    /// Dead letters, newest first, optionally for one sink and in one state.
    pub async fn dead_letters(
        &self,
        sink: Option<String>,
        state: Option<String>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        self.read(move |db| {
            let mut statement = db.prepare_cached(
                "SELECT id, sink, seq, event_id, failed_at, attempts, error, state FROM dead_letters \
                 WHERE (?1 IS NULL OR sink = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = statement.query_map(params![sink, state, limit], dead_letter_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(Into::into)
        })
        .await
    }

    /// Asks the sink's worker to send dead letters again: the given ids, or every dead letter
    /// of `sink` when `ids` is empty. Returns how many were queued.
    pub async fn request_replay(&self, sink: Option<String>, ids: Vec<i64>) -> Result<usize> {
        self.writer
            .write(move |tx| {
                if ids.is_empty() {
                    return Ok(tx.execute(
                        "UPDATE dead_letters SET state = 'replay' WHERE state = 'dead' AND (?1 IS NULL OR sink = ?1)",
                        params![sink],
                    )?);
                }
                let mut count = 0;
                for id in &ids {
                    count += tx.execute(
                        "UPDATE dead_letters SET state = 'replay' WHERE state = 'dead' AND id = ?1 AND (?2 IS NULL OR sink = ?2)",
                        params![id, sink],
                    )?;
                }
                Ok(count)
            })
            .await
    }

    /// Dead letters of `sink` waiting to be replayed, oldest first, with their events.
    pub async fn pending_replays(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<(DeadLetter, JournalEntry)>> {
        let sink = sink.to_owned();
        self.read(move |db| {
            let mut statement = db.prepare_cached(
                "SELECT d.id, d.sink, d.seq, d.event_id, d.failed_at, d.attempts, d.error, d.state, \
                 j.seq, j.event_id, j.source, j.event_type, j.received_at, j.event \
                 FROM dead_letters d JOIN journal j ON j.seq = d.seq \
                 WHERE d.sink = ?1 AND d.state = 'replay' ORDER BY d.id LIMIT ?2",
            )?;
            let rows = statement.query_map(params![sink, limit], |row| {
                let letter = dead_letter_row(row)?;
                let entry = JournalEntry {
                    seq: row.get(8)?,
                    event_id: row.get(9)?,
                    source: row.get(10)?,
                    event_type: row.get(11)?,
                    received_at_ms: row.get(12)?,
                    event: row.get(13)?,
                };
                Ok((letter, entry))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(Into::into)
        })
        .await
    }

    /// Records the outcome of a replay: `replayed` on success, back to `dead` otherwise.
    pub async fn finish_replay(&self, id: i64, error: Option<String>) -> Result<()> {
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |tx| {
                match error {
                    None => tx.execute(
                        "UPDATE dead_letters SET state = 'replayed', resolved_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )?,
                    Some(error) => tx.execute(
                        "UPDATE dead_letters SET state = 'dead', attempts = attempts + 1, error = ?2, failed_at = ?3 WHERE id = ?1",
                        params![id, error, now],
                    )?,
                };
                Ok(())
            })
            .await
    }

    pub async fn counts(&self) -> Result<StoreCounts> {
        self.read(|db| {
            let journal_events =
                db.query_row("SELECT COUNT(*) FROM journal", [], |row| row.get(0))?;
            let last_seq = schema::last_seq(db)?;
            let quarantined_open = db.query_row(
                "SELECT COUNT(*) FROM quarantine WHERE state = 'open'",
                [],
                |row| row.get(0),
            )?;
            let dead_letters = db.query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE state != 'replayed'",
                [],
                |row| row.get(0),
            )?;
            Ok(StoreCounts {
                journal_events,
                last_seq,
                quarantined_open,
                dead_letters,
            })
        })
        .await
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        self.read(|db| {
            db.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// Stops accepting writes and waits for the writer to commit what it has.
    pub async fn close(&self) {
        self.writer.close().await;
    }

    async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave the connection half-written (reads
            // only), so a poisoned lock is still safe to use.
            let db = reader
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            read(&db)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// An error inside a write job: a database error, or a precondition that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Database(#[from] rusqlite::Error),
    #[error("no such {what}: {id}")]
    NotFound { what: &'static str, id: String },
    #[error(transparent)]
    Encode(serde_json::Error),
}

impl From<WriteError> for StoreError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Database(error) => StoreError::Database(error),
            WriteError::NotFound { what, id } => StoreError::NotFound { what, id },
            WriteError::Encode(error) => StoreError::Encode(error),
        }
    }
}

fn insert_batch(
    tx: &Connection,
    mut batch: IngestBatch,
) -> std::result::Result<IngestOutcome, WriteError> {
    let previous: Option<String> = tx
        .prepare_cached("SELECT event_ids FROM dedup WHERE source = ?1 AND key = ?2")?
        .query_row(params![batch.source, batch.dedup_key], |row| row.get(0))
        .optional()?;
    if let Some(previous) = previous {
        let event_ids = serde_json::from_str(&previous).unwrap_or_default();
        return Ok(IngestOutcome::Duplicate { event_ids });
    }
    let received_at = batch.received_at.unix_millis();
    let mut insert = tx.prepare_cached(
        "INSERT INTO journal (event_id, source, event_type, user_id, received_at, event) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut event_ids = Vec::with_capacity(batch.events.len());
    for event in &mut batch.events {
        directory::apply_event(tx, &batch.source, event, received_at)?;
        let json = serde_json::to_vec(event).map_err(WriteError::Encode)?;
        insert.execute(params![
            event.id,
            batch.source,
            event.event_type.as_str(),
            event.user.id,
            received_at,
            json
        ])?;
        event_ids.push(event.id.clone());
    }
    let ids_json = serde_json::Value::from(event_ids.clone()).to_string();
    tx.prepare_cached(
        "INSERT INTO dedup (source, key, received_at, event_ids) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        batch.source,
        batch.dedup_key,
        received_at,
        ids_json
    ])?;
    Ok(IngestOutcome::Accepted { event_ids })
}

fn current_cursor(tx: &Connection, sink: &str) -> rusqlite::Result<i64> {
    Ok(tx
        .prepare_cached("SELECT seq FROM cursors WHERE sink = ?1")?
        .query_row([sink], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

fn set_cursor(tx: &Connection, sink: &str, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO cursors (sink, seq) VALUES (?1, ?2) ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq",
    )?
    .execute(params![sink, seq])?;
    Ok(())
}

fn timestamp_from_millis(millis: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_unix_millis(millis).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            Box::new(error),
        )
    })
}

fn journal_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        seq: row.get(0)?,
        event_id: row.get(1)?,
        source: row.get(2)?,
        event_type: row.get(3)?,
        received_at_ms: row.get(4)?,
        event: row.get(5)?,
    })
}

fn quarantine_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantinedDelivery> {
    let headers: String = row.get(8)?;
    let body: Vec<u8> = row.get(10)?;
    Ok(QuarantinedDelivery {
        id: row.get(0)?,
        body_bytes: body.len(),
        delivery: RejectedDelivery {
            source: row.get(1)?,
            connector: row.get(2)?,
            received_at: timestamp_from_millis(row.get(3)?)?,
            code: row.get(4)?,
            message: row.get(5)?,
            path: row.get(6)?,
            method: row.get(7)?,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            query: row.get(9)?,
            body,
        },
        state: row.get(11)?,
    })
}

fn dead_letter_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        sink: row.get(1)?,
        seq: row.get(2)?,
        event_id: row.get(3)?,
        failed_at: timestamp_from_millis(row.get(4)?)?,
        attempts: row.get(5)?,
        error: row.get(6)?,
        state: row.get(7)?,
    })
}

#[cfg(test)]
mod tests;
