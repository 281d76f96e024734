//! The embedded backend: one SQLite file in WAL mode, one process.
//!
//! # Durability and group commit
//!
//! All writes go through one writer thread that owns the write connection ([`writer`]): it
//! takes every write waiting in its queue, applies them in one transaction, commits once
//! (`synchronous=FULL`: on disk when `COMMIT` returns), and only then answers each caller.
//! Reads use a separate connection; WAL lets them run while the writer commits.
//!
//! # Leases
//!
//! One process owns the file (an exclusive lock on `<path>.lock`, taken at open and held
//! until the process ends), so a sink's lease is only ever contended by workers of that
//! process; it is still a real row (holder, fencing token, expiry) with the semantics of the
//! contract, so the delivery code is the same for every backend. Because no other process
//! can hold a lease on a file this process has locked, opening the store clears the leases a
//! crashed predecessor left: delivery resumes at once instead of after their expiry.

mod directory;
mod retention;
mod schema;
mod sync;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::watch;

use self::directory::DirectoryCache;
use self::writer::{WriteContext, WriteError, Writer};
use crate::codec::{Codec, Encoder, TrainingPlan};
use crate::contract::{
    Backend, DeliveryStore, DirectoryStore, IngestStore, JournalStore, OperatorStore,
    RetentionStore,
};
use crate::{
    Advance, CommitStats, DeadLetter, DeadLetterState, DirectoryEntry, IngestBatch, IngestOutcome,
    JournalEntry, Lease, ParkedEvent, PrunePolicy, PruneReport, QuarantineState,
    QuarantinedDelivery, RejectedDelivery, Result, StoreCounts, StoreError, UserQuery,
};

/// A database error as the contract's neutral error.
pub(crate) fn db_error(error: rusqlite::Error) -> StoreError {
    StoreError::unavailable(error)
}

/// The SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    writer: Writer,
    reader: Arc<Mutex<Connection>>,
    committed: watch::Receiver<i64>,
    path: PathBuf,
    /// Every compression dictionary of the store, for reading.
    codec: Arc<Codec>,
    /// Held open for the backend's life: the file's exclusive lock is the process's claim.
    _lock: Arc<std::fs::File>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the store at `path`, and starts its writer thread. The
    /// directory is created 0700 and the database files 0600, whatever the umask.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, TrainingPlan::default())
    }

    pub(crate) fn open_with(path: &Path, plan: TrainingPlan) -> Result<Self> {
        let path = path.to_path_buf();
        let open_error = |message: String| StoreError::Open {
            location: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|error| open_error(error.to_string()))?;
        }
        let lock = lock_exclusively(&path)?;
        let write_connection = schema::open_connection(&path)?;
        schema::enlarge_cache(&write_connection)?;
        schema::migrate(&write_connection)?;
        write_connection
            .execute("UPDATE cursors SET holder = NULL, expires_at = 0", [])
            .map_err(db_error)?;
        restrict_files(&path).map_err(|error| open_error(error.to_string()))?;
        let last_seq = schema::last_seq(&write_connection).map_err(db_error)?;
        let reader = schema::open_connection(&path)?;
        let codec = Arc::new(Codec::default());
        let latest = load_dictionaries(&write_connection, &codec).map_err(db_error)?;
        let encoder = Encoder::new(plan, latest.as_deref());
        let (committed_tx, committed) = watch::channel(last_seq);
        let writer = Writer::start(
            write_connection,
            DirectoryCache::new(),
            encoder,
            Arc::clone(&codec),
            committed_tx,
        )?;
        Ok(Self {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            committed,
            path,
            codec,
            _lock: Arc::new(lock),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    #[cfg(test)]
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    #[cfg(test)]
    pub(crate) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes every stored dictionary known to `codec`; returns the newest (the one to pack with).
fn load_dictionaries(connection: &Connection, codec: &Codec) -> rusqlite::Result<Option<Vec<u8>>> {
    let mut statement =
        connection.prepare("SELECT dict FROM dictionaries ORDER BY created_at, rowid")?;
    let dictionaries = statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for dictionary in &dictionaries {
        codec.add_dictionary(dictionary.clone().into());
    }
    Ok(dictionaries.into_iter().last())
}

/// Takes the store's process lock, or says which file another process holds.
fn lock_exclusively(path: &Path) -> Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&lock_path).map_err(|error| StoreError::Open {
        location: lock_path.display().to_string(),
        message: error.to_string(),
    })?;
    file.try_lock().map_err(|error| StoreError::Open {
        location: path.display().to_string(),
        message: match error {
            std::fs::TryLockError::WouldBlock => {
                "another rollcall process has this store open (SQLite serves one process; \
                 run replicas on the PostgreSQL store)"
                    .to_owned()
            }
            std::fs::TryLockError::Error(error) => {
                format!("cannot lock {}: {error}", lock_path.display())
            }
        },
    })?;
    Ok(file)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// The database, its WAL and shared-memory files are the user's alone: they hold the
/// directory and every event.
#[cfg(unix)]
fn restrict_files(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_files(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Inserts a delivery's events and its dedup key, unless the key was seen before. Checks
/// dedup before writing anything. The batch stays the caller's: see [`SqliteBackend::ingest`].
fn insert_batch(
    context: &mut WriteContext<'_>,
    batch: &mut IngestBatch,
) -> std::result::Result<IngestOutcome, WriteError> {
    let tx = context.tx;
    let previous: Option<String> = tx
        .prepare_cached("SELECT event_ids FROM dedup WHERE source = ?1 AND key = ?2")?
        .query_row(params![batch.source, batch.dedup_key], |row| row.get(0))
        .optional()?;
    if let Some(previous) = previous {
        let event_ids = serde_json::from_str(&previous).unwrap_or_default();
        return Ok(IngestOutcome::Duplicate { event_ids });
    }
    let received_at = batch.received_at.unix_millis();
    let mut event_ids = Vec::with_capacity(batch.events.len());
    for event in &mut batch.events {
        event_ids.push(journal_event(context, &batch.source, event, received_at)?);
    }
    let ids_json = serde_json::to_string(&event_ids)?;
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

/// Completes `event` from the directory, records the user's new state and appends the event
/// to the journal; returns the event's id.
fn journal_event(
    context: &mut WriteContext<'_>,
    source: &str,
    event: &mut rollcall_core::UserEvent,
    received_at: i64,
) -> std::result::Result<String, WriteError> {
    let applied = directory::apply_event(context, source, event, received_at)?;
    let json = event.to_vec_with_user(applied.user_json())?;
    *context.last_seq += 1;
    context
        .tx
        .prepare_cached(
            "INSERT INTO journal (seq, received_at, source, event_type, event_id, event) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            *context.last_seq,
            received_at,
            source,
            event.event_type.as_str(),
            event.id,
            context.encoder.pack(json)
        ])?;
    applied.remember(context.directory);
    Ok(event.id.clone())
}

/// The sink's position and lease as stored.
struct CursorRow {
    seq: i64,
    holder: Option<String>,
    token: i64,
    expires_at: i64,
}

fn cursor_row(tx: &Connection, sink: &str) -> rusqlite::Result<Option<CursorRow>> {
    tx.prepare_cached("SELECT seq, holder, token, expires_at FROM cursors WHERE sink = ?1")?
        .query_row([sink], |row| {
            Ok(CursorRow {
                seq: row.get(0)?,
                holder: row.get(1)?,
                token: row.get(2)?,
                expires_at: row.get(3)?,
            })
        })
        .optional()
}

fn current_position(tx: &Connection, sink: &str) -> rusqlite::Result<i64> {
    Ok(cursor_row(tx, sink)?.map_or(0, |row| row.seq))
}

fn set_position(tx: &Connection, sink: &str, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO cursors (sink, seq) VALUES (?1, ?2) \
         ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq, positioned = 1",
    )?
    .execute(params![sink, seq])?;
    Ok(())
}

/// Refuses (without writing) when `lease` is no longer the sink's current lease.
fn check_lease(tx: &Connection, lease: &Lease) -> std::result::Result<i64, WriteError> {
    match cursor_row(tx, &lease.sink)? {
        Some(row) if row.token == lease.token && row.holder.as_deref() == Some(&lease.holder) => {
            Ok(row.seq)
        }
        _ => Err(WriteError::Refused(StoreError::LeaseLost {
            sink: lease.sink.clone(),
        })),
    }
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

fn parse_state<T: std::str::FromStr>(index: usize, text: String) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}

/// A journal row as stored (the event still packed).
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

fn unpack_entry(codec: &Codec, mut entry: JournalEntry) -> Result<JournalEntry> {
    entry.event = codec.unpack(std::mem::take(&mut entry.event))?;
    Ok(entry)
}

const JOURNAL_COLUMNS: &str = "seq, event_id, source, event_type, received_at, event";

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
        state: parse_state(11, row.get(11)?)?,
    })
}

const QUARANTINE_COLUMNS: &str =
    "id, source, connector, received_at, code, message, path, method, headers, query, body, state";

fn dead_letter_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        sink: row.get(1)?,
        seq: row.get(2)?,
        event_id: row.get(3)?,
        failed_at: timestamp_from_millis(row.get(4)?)?,
        attempts: row.get(5)?,
        error: row.get(6)?,
        state: parse_state(7, row.get(7)?)?,
    })
}

#[async_trait]
impl IngestStore for SqliteBackend {
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome> {
        // The events go back to this task with the outcome and are freed here, on a tokio
        // worker, not on the writer: its one thread is the ingest path's bottleneck, and
        // freeing hundreds of allocations per event there (most made on other threads, so
        // mimalloc's slower cross-thread path) held up every commit behind it.
        let (outcome, _spent) = self
            .writer
            .write(move |context| {
                let mut batch = batch;
                let outcome = insert_batch(context, &mut batch)?;
                Ok::<_, WriteError>((outcome, batch))
            })
            .await?;
        Ok(outcome)
    }

    async fn dedup_seen(&self, source: &str, dedup_key: &str) -> Result<bool> {
        let (source, dedup_key) = (source.to_owned(), dedup_key.to_owned());
        self.read(move |db| {
            db.prepare_cached("SELECT 1 FROM dedup WHERE source = ?1 AND key = ?2")
                .and_then(|mut statement| {
                    statement
                        .query_row(params![source, dedup_key], |_| Ok(()))
                        .optional()
                })
                .map(|found| found.is_some())
                .map_err(db_error)
        })
        .await
    }

    async fn quarantine(&self, entry: RejectedDelivery) -> Result<i64> {
        let headers = serde_json::to_string(&entry.headers)?;
        self.writer
            .write(move |context| {
                context.tx.execute(
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
                Ok(context.tx.last_insert_rowid())
            })
            .await
    }

    async fn resolve_quarantine(&self, id: i64, mut batch: IngestBatch) -> Result<IngestOutcome> {
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |context| {
                let open: Option<i64> = context
                    .tx
                    .prepare_cached("SELECT 1 FROM quarantine WHERE id = ?1 AND state = 'open'")?
                    .query_row([id], |row| row.get(0))
                    .optional()?;
                if open.is_none() {
                    return Err(WriteError::Refused(StoreError::NotFound {
                        what: "open quarantined delivery",
                        id: id.to_string(),
                    }));
                }
                let outcome = insert_batch(context, &mut batch)?;
                context.tx.execute(
                    "UPDATE quarantine SET state = 'replayed', resolved_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                Ok(outcome)
            })
            .await
    }
}

#[async_trait]
impl JournalStore for SqliteBackend {
    async fn journal_after(&self, after_seq: i64, limit: u32) -> Result<Vec<JournalEntry>> {
        let rows = self
            .read(move |db| {
                db.prepare_cached(&format!(
                    "SELECT {JOURNAL_COLUMNS} FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_map(params![after_seq, limit], journal_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db_error)
            })
            .await?;
        // Decompressed here, on the caller's thread, not in the shared reader's.
        rows.into_iter()
            .map(|entry| unpack_entry(&self.codec, entry))
            .collect()
    }

    async fn journal_entry(&self, seq: i64) -> Result<JournalEntry> {
        let row = self
            .read(move |db| {
                db.prepare_cached(&format!(
                    "SELECT {JOURNAL_COLUMNS} FROM journal WHERE seq = ?1"
                ))
                .and_then(|mut statement| statement.query_row([seq], journal_row).optional())
                .map_err(db_error)?
                .ok_or_else(|| StoreError::NotFound {
                    what: "journal entry",
                    id: seq.to_string(),
                })
            })
            .await?;
        unpack_entry(&self.codec, row)
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    async fn counts(&self) -> Result<StoreCounts> {
        self.read(|db| {
            let count = |sql: &str| db.query_row(sql, [], |row| row.get::<_, i64>(0));
            Ok(StoreCounts {
                journal_events: count("SELECT COUNT(*) FROM journal").map_err(db_error)?,
                last_seq: schema::last_seq(db).map_err(db_error)?,
                quarantined_open: count("SELECT COUNT(*) FROM quarantine WHERE state = 'open'")
                    .map_err(db_error)?,
                dead_letters: count("SELECT COUNT(*) FROM dead_letters WHERE state != 'replayed'")
                    .map_err(db_error)?,
            })
        })
        .await
    }
}

#[async_trait]
impl DeliveryStore for SqliteBackend {
    async fn acquire_lease(
        &self,
        sink: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let (sink, holder) = (sink.to_owned(), holder.to_owned());
        let now_ms = now.unix_millis();
        let expires_ms = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let expires_at = Timestamp::from_unix_millis(expires_ms)
            .map_err(|error| StoreError::Invalid(format!("lease expiry: {error}")))?;
        self.writer
            .write(move |context| {
                let row = cursor_row(context.tx, &sink)?;
                let (seq, token) = match &row {
                    // Another holder's lease still runs.
                    Some(row)
                        if row.holder.as_deref().is_some_and(|current| current != holder)
                            && row.expires_at > now_ms =>
                    {
                        return Ok(None)
                    }
                    // Renewal: same holder, lease still running.
                    Some(row)
                        if row.holder.as_deref() == Some(&holder) && row.expires_at > now_ms =>
                    {
                        (row.seq, row.token)
                    }
                    // A new grant (free, expired, or taken over): a new fencing token.
                    Some(row) => (row.seq, row.token + 1),
                    None => (0, 1),
                };
                context
                    .tx
                    .prepare_cached(
                        "INSERT INTO cursors (sink, seq, holder, token, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT(sink) DO UPDATE SET holder = excluded.holder, token = excluded.token, \
                         expires_at = excluded.expires_at",
                    )?
                    .execute(params![sink, seq, holder, token, expires_ms])?;
                Ok(Some(Lease {
                    sink,
                    holder,
                    token,
                    position: seq,
                    expires_at,
                }))
            })
            .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        self.writer
            .write(move |context| {
                context.tx.execute(
                    "UPDATE cursors SET holder = NULL, expires_at = 0 \
                     WHERE sink = ?1 AND token = ?2 AND holder = ?3",
                    params![lease.sink, lease.token, lease.holder],
                )?;
                Ok(())
            })
            .await
    }

    async fn position(&self, sink: &str) -> Result<i64> {
        let sink = sink.to_owned();
        self.read(move |db| current_position(db, &sink).map_err(db_error))
            .await
    }

    async fn advance(&self, lease: &Lease, from: i64, to: i64) -> Result<Advance> {
        let lease = lease.clone();
        self.writer
            .write(move |context| {
                if check_lease(context.tx, &lease)? != from {
                    return Ok(Advance::PositionChanged);
                }
                set_position(context.tx, &lease.sink, to)?;
                Ok(Advance::Moved)
            })
            .await
    }

    async fn dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
        from: i64,
    ) -> Result<Option<i64>> {
        let lease = lease.clone();
        let seq = entry.seq;
        let event_id = entry.event_id.clone();
        let error = error.to_owned();
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |context| {
                if check_lease(context.tx, &lease)? != from {
                    return Ok(None);
                }
                context.tx.execute(
                    "INSERT INTO dead_letters (sink, seq, event_id, failed_at, attempts, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![lease.sink, seq, event_id, now, attempts, error],
                )?;
                let id = context.tx.last_insert_rowid();
                set_position(context.tx, &lease.sink, seq)?;
                Ok(Some(id))
            })
            .await
    }

    async fn park(&self, lease: &Lease, parked: &ParkedEvent) -> Result<()> {
        let lease = lease.clone();
        let parked = parked.clone();
        self.writer
            .write(move |context| {
                check_lease(context.tx, &lease)?;
                context
                    .tx
                    .prepare_cached(
                        "INSERT INTO parked (sink, seq, user_key, attempts, first_failed_at, next_attempt_at, error) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT(sink, seq) DO UPDATE SET user_key = excluded.user_key, \
                         attempts = excluded.attempts, first_failed_at = excluded.first_failed_at, \
                         next_attempt_at = excluded.next_attempt_at, error = excluded.error",
                    )?
                    .execute(params![
                        lease.sink,
                        parked.seq,
                        parked.user_key,
                        parked.attempts,
                        parked.first_failed_at.map(|at| at.unix_millis()),
                        parked.next_attempt_at.unix_millis(),
                        parked.error,
                    ])?;
                Ok(())
            })
            .await
    }

    async fn parked(&self, sink: &str) -> Result<Vec<ParkedEvent>> {
        let sink = sink.to_owned();
        self.read(move |db| {
            db.prepare_cached(
                "SELECT sink, seq, user_key, attempts, first_failed_at, next_attempt_at, error \
                 FROM parked WHERE sink = ?1 ORDER BY seq",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([sink], |row| {
                        let first_failed_at: Option<i64> = row.get(4)?;
                        Ok(ParkedEvent {
                            sink: row.get(0)?,
                            seq: row.get(1)?,
                            user_key: row.get(2)?,
                            attempts: row.get(3)?,
                            first_failed_at: first_failed_at
                                .map(timestamp_from_millis)
                                .transpose()?,
                            next_attempt_at: timestamp_from_millis(row.get(5)?)?,
                            error: row.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db_error)
        })
        .await
    }

    async fn unpark(&self, lease: &Lease, seq: i64) -> Result<()> {
        let lease = lease.clone();
        self.writer
            .write(move |context| {
                check_lease(context.tx, &lease)?;
                context
                    .tx
                    .prepare_cached("DELETE FROM parked WHERE sink = ?1 AND seq = ?2")?
                    .execute(params![lease.sink, seq])?;
                Ok(())
            })
            .await
    }

    async fn record_dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
    ) -> Result<i64> {
        let lease = lease.clone();
        let seq = entry.seq;
        let event_id = entry.event_id.clone();
        let error = error.to_owned();
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |context| {
                check_lease(context.tx, &lease)?;
                context.tx.execute(
                    "INSERT INTO dead_letters (sink, seq, event_id, failed_at, attempts, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![lease.sink, seq, event_id, now, attempts, error],
                )?;
                let id = context.tx.last_insert_rowid();
                context
                    .tx
                    .prepare_cached("DELETE FROM parked WHERE sink = ?1 AND seq = ?2")?
                    .execute(params![lease.sink, seq])?;
                Ok(id)
            })
            .await
    }

    async fn start_at(&self, sink: &str, seq: i64) -> Result<i64> {
        let sink = sink.to_owned();
        self.writer
            .write(move |context| {
                context
                    .tx
                    .prepare_cached(
                        "INSERT INTO cursors (sink, seq) VALUES (?1, ?2) \
                         ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq, positioned = 1 \
                         WHERE cursors.positioned = 0",
                    )?
                    .execute(params![sink, seq])?;
                Ok(current_position(context.tx, &sink)?)
            })
            .await
    }

    async fn paused(&self, sink: &str) -> Result<bool> {
        let sink = sink.to_owned();
        self.read(move |db| {
            db.prepare_cached("SELECT paused FROM cursors WHERE sink = ?1")
                .and_then(|mut statement| {
                    statement
                        .query_row([sink], |row| row.get::<_, bool>(0))
                        .optional()
                })
                .map(|paused| paused.unwrap_or(false))
                .map_err(db_error)
        })
        .await
    }

    async fn pending_replays(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<(DeadLetter, JournalEntry)>> {
        let sink = sink.to_owned();
        let rows = self
            .read(move |db| {
                db.prepare_cached(
                    "SELECT d.id, d.sink, d.seq, d.event_id, d.failed_at, d.attempts, d.error, d.state, \
                     j.seq, j.event_id, j.source, j.event_type, j.received_at, j.event \
                     FROM dead_letters d JOIN journal j ON j.seq = d.seq \
                     WHERE d.sink = ?1 AND d.state = 'replay' ORDER BY d.id LIMIT ?2",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![sink, limit], |row| {
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
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db_error)
            })
            .await?;
        rows.into_iter()
            .map(|(letter, entry)| Ok((letter, unpack_entry(&self.codec, entry)?)))
            .collect()
    }

    async fn finish_replay(&self, id: i64, error: Option<String>) -> Result<()> {
        let now = Timestamp::now().unix_millis();
        self.writer
            .write(move |context| {
                match error {
                    None => context.tx.execute(
                        "UPDATE dead_letters SET state = 'replayed', resolved_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )?,
                    Some(error) => context.tx.execute(
                        "UPDATE dead_letters SET state = 'dead', attempts = attempts + 1, error = ?2, failed_at = ?3 WHERE id = ?1",
                        params![id, error, now],
                    )?,
                };
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl DirectoryStore for SqliteBackend {
    async fn user(&self, source: &str, user_id: &str) -> Result<DirectoryEntry> {
        self.read_user(source, user_id).await
    }

    async fn users(&self, query: UserQuery) -> Result<(Vec<DirectoryEntry>, u64)> {
        self.read_users(query).await
    }
}

#[async_trait]
impl OperatorStore for SqliteBackend {
    async fn quarantined(
        &self,
        state: Option<QuarantineState>,
        limit: u32,
    ) -> Result<Vec<QuarantinedDelivery>> {
        self.read(move |db| {
            db.prepare_cached(&format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE (?1 IS NULL OR state = ?1) \
                 ORDER BY id DESC LIMIT ?2"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map(params![state.map(|s| s.as_str()), limit], quarantine_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db_error)
        })
        .await
    }

    async fn quarantined_by_id(&self, id: i64) -> Result<QuarantinedDelivery> {
        self.read(move |db| {
            db.prepare_cached(&format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = ?1"
            ))
            .and_then(|mut statement| statement.query_row([id], quarantine_row).optional())
            .map_err(db_error)?
            .ok_or_else(|| StoreError::NotFound {
                what: "quarantined delivery",
                id: id.to_string(),
            })
        })
        .await
    }

    async fn dead_letters(
        &self,
        sink: Option<String>,
        state: Option<DeadLetterState>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        self.read(move |db| {
            db.prepare_cached(
                "SELECT id, sink, seq, event_id, failed_at, attempts, error, state FROM dead_letters \
                 WHERE (?1 IS NULL OR sink = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY id DESC LIMIT ?3",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(params![sink, state.map(|s| s.as_str()), limit], dead_letter_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db_error)
        })
        .await
    }

    async fn request_replay(&self, sink: Option<String>, ids: Vec<i64>) -> Result<usize> {
        self.writer
            .write(move |context| {
                if ids.is_empty() {
                    return Ok(context.tx.execute(
                        "UPDATE dead_letters SET state = 'replay' WHERE state = 'dead' AND (?1 IS NULL OR sink = ?1)",
                        params![sink],
                    )?);
                }
                let mut count = 0;
                for id in &ids {
                    count += context.tx.execute(
                        "UPDATE dead_letters SET state = 'replay' WHERE state = 'dead' AND id = ?1 AND (?2 IS NULL OR sink = ?2)",
                        params![id, sink],
                    )?;
                }
                Ok(count)
            })
            .await
    }

    async fn rewind(&self, sink: &str, since: Timestamp) -> Result<i64> {
        let sink = sink.to_owned();
        self.writer
            .write(move |context| {
                // The first event received at or after `since`, by sequence: events replayed
                // from quarantine keep their original receive time but get a new sequence
                // number, so "the last event before `since`" is not the cut.
                let first: Option<i64> = context.tx.query_row(
                    "SELECT MIN(seq) FROM journal WHERE received_at >= ?1",
                    [since.unix_millis()],
                    |row| row.get(0),
                )?;
                let current = current_position(context.tx, &sink)?;
                let target = match first {
                    Some(first) => (first - 1).min(current),
                    None => current,
                };
                set_position(context.tx, &sink, target)?;
                Ok(target)
            })
            .await
    }

    async fn set_paused(&self, sink: &str, paused: bool) -> Result<()> {
        let sink = sink.to_owned();
        self.writer
            .write(move |context| {
                context
                    .tx
                    .prepare_cached(
                        "INSERT INTO cursors (sink, seq, paused, positioned) VALUES (?1, 0, ?2, 0) \
                         ON CONFLICT(sink) DO UPDATE SET paused = excluded.paused",
                    )?
                    .execute(params![sink, paused])?;
                Ok(())
            })
            .await
    }

    async fn set_position(&self, sink: &str, seq: i64) -> Result<()> {
        let sink = sink.to_owned();
        self.writer
            .write(move |context| Ok(set_position(context.tx, &sink, seq)?))
            .await
    }
}

#[async_trait]
impl RetentionStore for SqliteBackend {
    async fn prune(&self, policy: PrunePolicy) -> Result<PruneReport> {
        self.prune_batches(policy).await
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        // A write, not only a read: a full disk or a read-only file must make the store
        // unready, since every commit would fail.
        self.writer
            .write(|context| {
                context
                    .tx
                    .prepare_cached("UPDATE meta SET value = value WHERE name = 'last_seq'")?
                    .execute([])?;
                Ok(())
            })
            .await
    }

    fn commit_stats(&self) -> CommitStats {
        self.writer.stats()
    }

    async fn close(&self) {
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests;
