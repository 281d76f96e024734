//! The PostgreSQL schema and its versioned migrations.
//!
//! Every table lives in the configured schema (`rollcall` by default), so several
//! deployments, or tests, can share one database. The version is one row of
//! `schema_version`; migrations run at start inside one transaction under an advisory lock,
//! so replicas starting together apply each migration once, and a replica that finds a
//! version newer than it knows refuses to start (it would misread the data).

use tokio_postgres::Client;

use super::pg_error;
use crate::{Result, StoreError};

/// The migrations, in order; the schema's version is how many have been applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
-- meta.last_seq is the journal's sequence counter. Every transaction that appends to the
-- journal locks this row first and holds it until it commits, so sequence numbers become
-- visible in commit order: a reader that sees sequence n sees every sequence below it.
CREATE TABLE meta (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (name, value) VALUES ('last_seq', 0);

CREATE TABLE journal (
    seq         bigint PRIMARY KEY,
    received_at bigint NOT NULL,   -- Unix milliseconds
    source      text   NOT NULL,
    event_type  text   NOT NULL,
    event_id    text   NOT NULL,
    event       bytea  NOT NULL    -- the UserEvent as JSON (TOAST compresses large ones)
);
CREATE INDEX journal_received_at ON journal (received_at);

CREATE TABLE dedup (
    source      text   NOT NULL,
    key         text   NOT NULL,
    received_at bigint NOT NULL,
    event_ids   text   NOT NULL,   -- JSON array of the events the first delivery produced
    PRIMARY KEY (source, key)
);
CREATE INDEX dedup_received_at ON dedup (received_at);

CREATE TABLE quarantine (
    id          bigserial PRIMARY KEY,
    source      text   NOT NULL,
    connector   text   NOT NULL,
    received_at bigint NOT NULL,
    code        text   NOT NULL,
    message     text   NOT NULL,
    path        text,
    method      text   NOT NULL,
    headers     text   NOT NULL,   -- JSON [[name, value]], secrets removed
    query       text,              -- secrets removed
    body        bytea  NOT NULL,
    state       text   NOT NULL DEFAULT 'open',
    resolved_at bigint
);
CREATE INDEX quarantine_state ON quarantine (state, id);
CREATE INDEX quarantine_replayed ON quarantine (resolved_at) WHERE state = 'replayed';

-- A sink's delivery position and its lease: holder, fencing token, expiry.
CREATE TABLE cursors (
    sink       text   PRIMARY KEY,
    seq        bigint NOT NULL DEFAULT 0,
    holder     text,
    token      bigint NOT NULL DEFAULT 0,
    expires_at bigint NOT NULL DEFAULT 0
);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    sink        text    NOT NULL,
    seq         bigint  NOT NULL,
    event_id    text    NOT NULL,
    failed_at   bigint  NOT NULL,
    attempts    integer NOT NULL,
    error       text    NOT NULL,
    state       text    NOT NULL DEFAULT 'dead',
    resolved_at bigint
);
CREATE INDEX dead_letters_sink_state ON dead_letters (sink, state, id);
CREATE INDEX dead_letters_open_seq ON dead_letters (seq) WHERE state <> 'replayed';
CREATE INDEX dead_letters_replayed ON dead_letters (resolved_at) WHERE state = 'replayed';

CREATE TABLE users (
    source     text    NOT NULL,
    user_id    text    NOT NULL,
    version    bigint  NOT NULL,
    deleted    boolean NOT NULL,
    partial    boolean NOT NULL,   -- never seen complete
    status     text,
    username   text,
    email      text,               -- the primary (else first) email, lower case
    updated_at bigint  NOT NULL,   -- Unix milliseconds of the last event applied
    "user"     bytea   NOT NULL,   -- the unified User as JSON
    PRIMARY KEY (source, user_id)
);
CREATE INDEX users_status ON users (source, status);
CREATE INDEX users_username ON users (lower(username));
CREATE INDEX users_email ON users (email);
"#,
    r#"
-- Delivery through outages: a sink can be paused, and events whose user's line is held by a
-- transient failure are parked so the position moves on past them.
ALTER TABLE cursors ADD COLUMN paused boolean NOT NULL DEFAULT false;
CREATE TABLE parked (
    sink            text    NOT NULL,
    seq             bigint  NOT NULL,
    user_key        text    NOT NULL,
    attempts        integer NOT NULL,
    first_failed_at bigint,            -- Unix milliseconds
    next_attempt_at bigint  NOT NULL,  -- Unix milliseconds
    error           text    NOT NULL,
    PRIMARY KEY (sink, seq)
);
CREATE INDEX parked_seq ON parked (seq);
"#,
    r#"
-- Sync from vendors' user listings: one row per source, the state as JSON (cursor, run
-- times, counts, last error).
CREATE TABLE sync_state (
    source text PRIMARY KEY,
    state  text NOT NULL
);
"#,
    r#"
-- A sink paused before its worker first ran has a row for the pause but no position yet
-- (positioned = false), so `start = "now"` still places it at the journal's head.
ALTER TABLE cursors ADD COLUMN positioned boolean NOT NULL DEFAULT true;
"#,
];

/// Creates the schema if needed and applies the migrations it has not seen, in one
/// transaction. Refuses a schema written by a newer rollcall.
pub(crate) async fn migrate(client: &mut Client, schema: &str, location: &str) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    // One migrator per schema at a time: replicas starting together wait here, then see the
    // version the first one reached.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("rollcall migrations {schema}")],
    )
    .await
    .map_err(pg_error)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; \
         CREATE TABLE IF NOT EXISTS \"{schema}\".schema_version (version integer NOT NULL); \
         INSERT INTO \"{schema}\".schema_version (version) \
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM \"{schema}\".schema_version);"
    ))
    .await
    .map_err(pg_error)?;
    let version: i32 = tx
        .query_one(
            &format!("SELECT version FROM \"{schema}\".schema_version"),
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let known = MIGRATIONS.len();
    let version = usize::try_from(version).unwrap_or(0);
    if version > known {
        return Err(StoreError::Open {
            location: location.to_owned(),
            message: format!(
                "the schema has version {version}, newer than this rollcall knows ({known}); \
                 run a newer rollcall"
            ),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO \"{schema}\"; {migration}"
        ))
        .await
        .map_err(pg_error)?;
        let applied = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute(
            &format!("UPDATE \"{schema}\".schema_version SET version = $1"),
            &[&applied],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}
