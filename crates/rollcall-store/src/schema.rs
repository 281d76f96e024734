//! Connection settings and the schema.
//!
//! The journal is not an archive: delivered events are pruned after a retention window, so
//! rows stay lean and every table that grows has an index on its age column for cheap
//! deletion by time. `seq` uses AUTOINCREMENT so a pruned sequence number is never reused
//! (a sink's cursor must never point at a different event).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::{Result, StoreError};

pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(|error| StoreError::Open {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    connection.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers never block the writer. synchronous=FULL: COMMIT returns only after the
    // WAL is fsynced, which is the promise behind every 202.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

const MIGRATIONS: &[&str] = &[
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
];

/// Applies the migrations the database has not seen (tracked in `user_version`).
pub(crate) fn migrate(connection: &Connection) -> Result<()> {
    let version: usize = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = connection.unchecked_transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The largest sequence number ever assigned. Read from `sqlite_sequence` (AUTOINCREMENT's
/// record), so it does not go back when pruning empties the journal.
pub(crate) fn last_seq(connection: &Connection) -> Result<i64> {
    Ok(connection.query_row(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0), \
         COALESCE((SELECT MAX(seq) FROM journal), 0))",
        [],
        |row| row.get(0),
    )?)
}
