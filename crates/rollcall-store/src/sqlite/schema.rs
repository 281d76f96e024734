//! Connection settings and the schema.
//!
//! The journal is not an archive: delivered events are pruned after a retention window, so
//! rows stay lean (the event stored once, compressed above a size threshold by
//! [`crate::codec`]; no index but the one retention and rewinds need) and every table that
//! grows has an index on its age column for cheap deletion by time. Sequence numbers are
//! assigned by the writer from `meta.last_seq`, which only grows, so a pruned sequence number
//! is never reused (a sink's position must never point at a different event).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::db_error;
use crate::{Result, StoreError};

pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(|error| StoreError::Open {
        location: path.display().to_string(),
        message: error.to_string(),
    })?;
    configure(&connection).map_err(db_error)?;
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers never block the writer. synchronous=FULL: COMMIT returns only after the
    // WAL is fsynced, which is the promise behind every 202.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // After a checkpoint the WAL is cut back to this size instead of keeping its peak.
    connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The writer's page cache: the hot end of the journal, the users table and the indexes.
/// Only the writer gets a large one: a reader's cache is discarded whenever the writer has
/// committed since its last read, and discarding walks the whole cache (the profile showed
/// it), so readers keep SQLite's small default.
pub(crate) fn enlarge_cache(connection: &Connection) -> Result<()> {
    connection
        .pragma_update(None, "cache_size", -32 * 1024)
        .map_err(db_error)
}

pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE journal (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL UNIQUE,
    source      TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,   -- Unix milliseconds
    event       BLOB    NOT NULL    -- the UserEvent as JSON
);
CREATE INDEX journal_received_at ON journal (received_at);

CREATE TABLE dedup (
    source      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    event_ids   TEXT    NOT NULL,   -- JSON array of the events the first delivery produced
    PRIMARY KEY (source, key)
) WITHOUT ROWID;
CREATE INDEX dedup_received_at ON dedup (received_at);

CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL,
    connector   TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    code        TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    path        TEXT,
    method      TEXT    NOT NULL,
    headers     TEXT    NOT NULL,   -- JSON [[name, value]], secrets removed
    query       TEXT,               -- secrets removed
    body        BLOB    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'open',
    resolved_at INTEGER
);
CREATE INDEX quarantine_state ON quarantine (state, id);

CREATE TABLE cursors (
    sink TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sink        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    failed_at   INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'dead',
    resolved_at INTEGER
);
CREATE INDEX dead_letters_sink_state ON dead_letters (sink, state, id);
"#,
    r#"
CREATE TABLE users (
    source     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,   -- 1: a tombstone
    partial    INTEGER NOT NULL,   -- 1: never seen complete
    status     TEXT,
    username   TEXT,
    email      TEXT,               -- the primary (else first) email, lower case
    updated_at INTEGER NOT NULL,   -- Unix milliseconds of the last event applied
    user       BLOB    NOT NULL,   -- the unified User as JSON
    PRIMARY KEY (source, user_id)
) WITHOUT ROWID;
CREATE INDEX users_status ON users (source, status);
CREATE INDEX users_username ON users (username);
CREATE INDEX users_email ON users (email);
"#,
    r#"
-- Retention (retention.rs). An open dead letter keeps its journal row, so the pruner looks
-- dead letters up by seq; replayed entries are pruned by the time of their replay.
CREATE INDEX dead_letters_open_seq ON dead_letters (seq) WHERE state != 'replayed';
CREATE INDEX dead_letters_replayed ON dead_letters (resolved_at) WHERE state = 'replayed';
CREATE INDEX quarantine_replayed ON quarantine (resolved_at) WHERE state = 'replayed';
"#,
    r#"
-- Lean journal rows: the writer assigns sequence numbers (meta.last_seq only grows, so a
-- pruned number is never reused), the event is stored once (compressed above a threshold),
-- and the only index is the one retention and rewinds walk. Event ids are not unique keys:
-- dedup decides what is new, and a sink sees an event id at most once per delivery anyway.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) SELECT 'last_seq',
    MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0),
        COALESCE((SELECT MAX(seq) FROM journal), 0));
CREATE TABLE journal_v4 (
    seq         INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,   -- Unix milliseconds
    source      TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    event       BLOB    NOT NULL    -- the UserEvent as JSON (codec.rs)
);
INSERT INTO journal_v4 (seq, received_at, source, event_type, event_id, event)
    SELECT seq, received_at, source, event_type, event_id, event FROM journal;
DROP TABLE journal;
ALTER TABLE journal_v4 RENAME TO journal;
CREATE INDEX journal_received_at ON journal (received_at);

-- Users as a rowid table: a row of a WITHOUT ROWID table lives in an index page, whose
-- local payload is capped near 1 KB, so every compressed user spilled an overflow page
-- (measured: 4.7 KB of pages per 1.2 KB user). Rowid rows fit a table page and append.
CREATE TABLE users_v4 (
    id         INTEGER PRIMARY KEY,
    source     TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,   -- 1: a tombstone
    partial    INTEGER NOT NULL,   -- 1: never seen complete
    status     TEXT,
    username   TEXT,
    email      TEXT,               -- the primary (else first) email, lower case
    updated_at INTEGER NOT NULL,   -- Unix milliseconds of the last event applied
    user       BLOB    NOT NULL,   -- the unified User as JSON (codec.rs)
    UNIQUE (source, user_id)
);
INSERT INTO users_v4 (source, user_id, version, deleted, partial, status, username, email, updated_at, user)
    SELECT source, user_id, version, deleted, partial, status, username, email, updated_at, user
    FROM users ORDER BY source, user_id;
DROP TABLE users;
ALTER TABLE users_v4 RENAME TO users;
CREATE INDEX users_status ON users (source, status);
CREATE INDEX users_username ON users (username);
CREATE INDEX users_email ON users (email);

-- Compression dictionaries (codec.rs), by zstd dictionary id: a frame names the one it
-- needs, so none is ever deleted.
CREATE TABLE dictionaries (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    dict       BLOB    NOT NULL
);

-- Delivery positions are held under leases: a holder, a fencing token, an expiry.
ALTER TABLE cursors ADD COLUMN holder TEXT;
ALTER TABLE cursors ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cursors ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Delivery through outages: a sink can be paused, and events whose user's line is held by a
-- transient failure are parked so the position moves on past them.
ALTER TABLE cursors ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
CREATE TABLE parked (
    sink            TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    user_key        TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    first_failed_at INTEGER,            -- Unix milliseconds
    next_attempt_at INTEGER NOT NULL,   -- Unix milliseconds
    error           TEXT    NOT NULL,
    PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
CREATE INDEX parked_seq ON parked (seq);
"#,
    r#"
-- Sync from vendors' user listings (sync.rs): one row per source, the state as JSON (cursor,
-- run times, counts, last error). Touches no other table.
CREATE TABLE sync_state (
    source TEXT PRIMARY KEY,
    state  TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- A sink paused before its worker first ran has a row for the pause but no position yet
-- (positioned = 0), so `start = "now"` still places it at the journal's head.
ALTER TABLE cursors ADD COLUMN positioned INTEGER NOT NULL DEFAULT 1;
"#,
    r#"
-- The directory's listing filters (`(?3 IS NULL OR lower(username) = ?3 OR ...)`) scan the
-- table: SQLite's plan uses neither index. Both were still updated at every commit, each
-- new user's entry dirtying a page at a random place in each, which was most of the pages a
-- commit wrote to the WAL.
DROP INDEX users_username;
DROP INDEX users_email;
"#,
];

/// Applies the migrations the database has not seen (tracked in `user_version`). Refuses a
/// database written by a newer rollcall: this one would misread it.
pub(crate) fn migrate(connection: &Connection) -> Result<()> {
    let version: usize = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(db_error)?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Open {
            location: connection.path().unwrap_or("?").to_owned(),
            message: format!(
                "the database has schema version {version}, newer than this rollcall knows \
                 ({}); run a newer rollcall",
                MIGRATIONS.len()
            ),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let apply = || -> rusqlite::Result<()> {
            let tx = connection.unchecked_transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", index + 1)?;
            tx.commit()
        };
        apply().map_err(db_error)?;
    }
    Ok(())
}

/// The largest sequence number ever assigned; it does not go back when pruning empties the
/// journal.
pub(crate) fn last_seq(connection: &Connection) -> rusqlite::Result<i64> {
    connection
        .prepare_cached("SELECT value FROM meta WHERE name = 'last_seq'")?
        .query_row([], |row| row.get(0))
}
