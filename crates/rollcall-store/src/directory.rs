//! The user directory: the latest unified user per (source, user id), with a version and a
//! tombstone, updated in the journal's transaction.

use rollcall_core::directory::{apply, KnownUser};
use rollcall_core::{Timestamp, User, UserEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{Result, Store, StoreError, WriteError};

/// One user as the directory knows it.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryEntry {
    pub source: String,
    pub version: i64,
    pub deleted: bool,
    /// True while rollcall has only seen partial events for the user.
    pub partial: bool,
    pub updated_at: Timestamp,
    pub user: User,
}

/// A directory listing: filters and a page.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub source: Option<String>,
    pub status: Option<String>,
    /// Exact match on the username, else the primary email (case-insensitive).
    pub user_name: Option<String>,
    pub include_deleted: bool,
    /// Zero-based offset.
    pub offset: u32,
    pub limit: u32,
}

/// Completes `event` from the directory and records the user's new state.
pub(crate) fn apply_event(
    tx: &Connection,
    source: &str,
    event: &mut UserEvent,
    received_at: i64,
) -> std::result::Result<(), WriteError> {
    let known = tx
        .prepare_cached(
            "SELECT version, deleted, partial, user FROM users WHERE source = ?1 AND user_id = ?2",
        )?
        .query_row(params![source, event.user.id], |row| {
            let user: Vec<u8> = row.get(3)?;
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, bool>(2)?,
                user,
            ))
        })
        .optional()?;
    let known = match known {
        Some((version, deleted, partial, user)) => Some(KnownUser {
            user: serde_json::from_slice(&user).map_err(WriteError::Encode)?,
            version,
            deleted,
            partial,
        }),
        None => None,
    };
    let record = apply(known.as_ref(), event);
    let json = serde_json::to_vec(&record.user).map_err(WriteError::Encode)?;
    tx.prepare_cached(
        "INSERT INTO users (source, user_id, version, deleted, partial, status, username, email, updated_at, user) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (source, user_id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, \
         partial = excluded.partial, status = excluded.status, username = excluded.username, \
         email = excluded.email, updated_at = excluded.updated_at, user = excluded.user",
    )?
    .execute(params![
        source,
        record.user.id,
        record.version,
        record.deleted,
        record.partial,
        record.user.status.as_ref().map(|status| status.as_str().to_owned()),
        record.user.username,
        primary_email(&record.user),
        received_at,
        json
    ])?;
    Ok(())
}

fn primary_email(user: &User) -> Option<String> {
    let emails = user.emails.as_ref()?;
    emails
        .iter()
        .find(|email| email.is_primary == Some(true))
        .or_else(|| emails.first())
        .map(|email| email.email.to_ascii_lowercase())
}

fn entry_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, bool, bool, i64, Vec<u8>)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn decode(row: (String, i64, bool, bool, i64, Vec<u8>)) -> Result<DirectoryEntry> {
    let (source, version, deleted, partial, updated_at, user) = row;
    Ok(DirectoryEntry {
        source,
        version,
        deleted,
        partial,
        updated_at: Timestamp::from_unix_millis(updated_at).map_err(|error| {
            StoreError::Unavailable(format!("bad directory timestamp: {error}"))
        })?,
        user: serde_json::from_slice(&user)?,
    })
}

impl Store {
    /// One user of one source.
    pub async fn user(&self, source: &str, user_id: &str) -> Result<DirectoryEntry> {
        let (source, user_id) = (source.to_owned(), user_id.to_owned());
        self.read(move |db| {
            let row = db
                .query_row(
                    "SELECT source, version, deleted, partial, updated_at, user FROM users \
                     WHERE source = ?1 AND user_id = ?2",
                    params![source, user_id],
                    entry_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound {
                    what: "user",
                    id: format!("{source}/{user_id}"),
                })?;
            decode(row)
        })
        .await
    }

    /// A page of users and the total count matching the query, ordered by source and id.
    pub async fn users(&self, query: UserQuery) -> Result<(Vec<DirectoryEntry>, u64)> {
        self.read(move |db| {
            let user_name = query.user_name.as_ref().map(|name| name.to_ascii_lowercase());
            let filter = "(?1 IS NULL OR source = ?1) AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR lower(username) = ?3 OR (username IS NULL AND email = ?3)) \
                 AND (?4 OR deleted = 0)";
            let total: i64 = db.query_row(
                &format!("SELECT COUNT(*) FROM users WHERE {filter}"),
                params![query.source, query.status, user_name, query.include_deleted],
                |row| row.get(0),
            )?;
            let mut statement = db.prepare_cached(&format!(
                "SELECT source, version, deleted, partial, updated_at, user FROM users WHERE {filter} \
                 ORDER BY source, user_id LIMIT ?5 OFFSET ?6"
            ))?;
            let rows = statement.query_map(
                params![
                    query.source,
                    query.status,
                    user_name,
                    query.include_deleted,
                    query.limit,
                    query.offset
                ],
                entry_row,
            )?;
            let mut entries = Vec::new();
            for row in rows {
                entries.push(decode(row?)?);
            }
            Ok((entries, u64::try_from(total).unwrap_or(0)))
        })
        .await
    }
}
