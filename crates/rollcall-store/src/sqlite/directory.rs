//! The user directory on SQLite: the latest unified user per (source, user id), with a
//! version and a tombstone, updated in the journal's transaction.
//!
//! The writer keeps the most recently written users in a bounded in-memory cache, so an
//! event for a user seen lately costs no read and no decompression of the stored user. The
//! cache is the writer's alone and follows its transactions: what a rolled-back transaction
//! put there is taken out again.
//!
//! A cached user is the JSON the users row was written from, not the `User` value: one
//! allocation per user instead of a tree of them. The tree is what made the cache costly:
//! every new user evicted an old one, and dropping a cold tree allocated on another thread
//! was 8.5 % of the daemon's CPU at full ingest (docs/benchmarks.md). A hit reads the JSON
//! back, as a miss reads the row.

use std::num::NonZeroUsize;

use lru::LruCache;
use rollcall_core::directory::{apply_in_place, Applied, KnownUser};
use rollcall_core::{Timestamp, User, UserEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;

use std::sync::Arc;

use super::writer::{WriteContext, WriteError};
use super::{db_error, SqliteBackend};
use crate::codec::Codec;
use crate::{DirectoryEntry, Result, StoreError, UserQuery};

/// Users the writer keeps in memory. At a few KB of JSON each, about 20-40 MB at most.
const CACHED_USERS: usize = 10_000;

type UserKey = (String, String);

/// A user's record as the cache keeps it: the directory's counters and the user as JSON.
#[derive(Debug)]
pub(crate) struct CachedUser {
    applied: Applied,
    user: Box<RawValue>,
}

impl CachedUser {
    fn known(&self) -> std::result::Result<KnownUser, WriteError> {
        let user: User = serde_json::from_str(self.user.get())?;
        Ok(self.applied.with_user(user))
    }
}

/// The writer's cache of current users, with an undo log for the open transaction.
pub(crate) struct DirectoryCache {
    users: LruCache<UserKey, CachedUser>,
    /// What each key held before the open transaction first changed it.
    undo: Vec<(UserKey, Option<CachedUser>)>,
}

impl DirectoryCache {
    pub(crate) fn new() -> Self {
        Self::with_capacity(CACHED_USERS)
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            users: LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN)),
            undo: Vec::new(),
        }
    }

    /// The open transaction committed: its changes stay.
    pub(crate) fn commit(&mut self) {
        self.undo.clear();
    }

    /// The open transaction rolled back: put back what it changed, newest change first.
    pub(crate) fn rollback(&mut self) {
        while let Some((key, before)) = self.undo.pop() {
            match before {
                Some(user) => {
                    self.users.put(key, user);
                }
                None => {
                    self.users.pop(&key);
                }
            }
        }
    }
}

/// Completes `event` from the directory and writes the user's new state (the event's
/// `user` afterwards). The cache learns it from [`AppliedEvent::remember`], once the event
/// is journalled.
pub(crate) fn apply_event(
    context: &mut WriteContext<'_>,
    source: &str,
    event: &mut UserEvent,
    received_at: i64,
) -> std::result::Result<AppliedEvent, WriteError> {
    let tx = context.tx;
    let key = (source.to_owned(), event.user.id.clone());
    let cached = context.directory.users.pop(&key);
    let known = match &cached {
        Some(cached) => Some(cached.known()?),
        None => read_known(tx, context.codec, source, &event.user.id)?,
    };
    let applied = apply_in_place(known.as_ref(), event);
    let user = &event.user;
    // Encoded once: for the row, the cache and the journal's copy of the event.
    let json = serde_json::value::to_raw_value(user)?;
    tx.prepare_cached(
        "INSERT INTO users (source, user_id, version, deleted, partial, status, username, email, updated_at, user) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (source, user_id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted, \
         partial = excluded.partial, status = excluded.status, username = excluded.username, \
         email = excluded.email, updated_at = excluded.updated_at, user = excluded.user",
    )?
    .execute(params![
        source,
        user.id,
        applied.version,
        applied.deleted,
        applied.partial,
        user.status.as_ref().map(|status| status.as_str()),
        user.username,
        primary_email(user),
        received_at,
        context.encoder.pack(json.get().as_bytes().to_vec())
    ])?;
    Ok(AppliedEvent {
        key,
        cached,
        remembered: CachedUser {
            applied,
            user: json,
        },
    })
}

/// A user's new state, written to the database and not yet to the writer's cache.
pub(crate) struct AppliedEvent {
    key: UserKey,
    /// What the cache held before (for its undo log).
    cached: Option<CachedUser>,
    remembered: CachedUser,
}

impl AppliedEvent {
    /// The applied event's user as JSON (the event's `user` now).
    pub(crate) fn user_json(&self) -> &RawValue {
        &self.remembered.user
    }

    /// Puts the user's new state into the cache.
    pub(crate) fn remember(self, directory: &mut DirectoryCache) {
        // `apply_event` took the key out of the cache: record what it held (or nothing)
        // for a rollback.
        directory.undo.push((self.key.clone(), self.cached));
        directory.users.put(self.key, self.remembered);
    }
}

/// The directory version of a user as the open transaction sees it (`None`: no record).
pub(crate) fn current_version(
    context: &mut WriteContext<'_>,
    source: &str,
    user_id: &str,
) -> std::result::Result<Option<i64>, WriteError> {
    let key = (source.to_owned(), user_id.to_owned());
    if let Some(known) = context.directory.users.peek(&key) {
        return Ok(Some(known.applied.version));
    }
    Ok(context
        .tx
        .prepare_cached("SELECT version FROM users WHERE source = ?1 AND user_id = ?2")?
        .query_row(params![source, user_id], |row| row.get(0))
        .optional()?)
}

fn read_known(
    tx: &Connection,
    codec: &Codec,
    source: &str,
    user_id: &str,
) -> std::result::Result<Option<KnownUser>, WriteError> {
    let row = tx
        .prepare_cached(
            "SELECT version, deleted, partial, user FROM users WHERE source = ?1 AND user_id = ?2",
        )?
        .query_row(params![source, user_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    let Some((version, deleted, partial, user)) = row else {
        return Ok(None);
    };
    Ok(Some(KnownUser {
        user: decode_user(codec, user)?,
        version,
        deleted,
        partial,
    }))
}

fn decode_user(codec: &Codec, stored: Vec<u8>) -> Result<User> {
    Ok(serde_json::from_slice(&codec.unpack(stored)?)?)
}

fn primary_email(user: &User) -> Option<String> {
    let emails = user.emails.as_ref()?;
    emails
        .iter()
        .find(|email| email.is_primary == Some(true))
        .or_else(|| emails.first())
        .map(|email| email.email.to_ascii_lowercase())
}

type EntryRow = (String, i64, bool, bool, i64, Vec<u8>);

fn entry_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn decode(codec: &Codec, row: EntryRow) -> Result<DirectoryEntry> {
    let (source, version, deleted, partial, updated_at, user) = row;
    Ok(DirectoryEntry {
        source,
        version,
        deleted,
        partial,
        updated_at: Timestamp::from_unix_millis(updated_at)
            .map_err(|error| StoreError::Corrupt(format!("directory timestamp: {error}")))?,
        user: decode_user(codec, user)?,
    })
}

impl SqliteBackend {
    pub(crate) async fn read_user(&self, source: &str, user_id: &str) -> Result<DirectoryEntry> {
        let (source, user_id) = (source.to_owned(), user_id.to_owned());
        let codec = Arc::clone(&self.codec);
        self.read(move |db| {
            let row = db
                .prepare_cached(
                    "SELECT source, version, deleted, partial, updated_at, user FROM users \
                     WHERE source = ?1 AND user_id = ?2",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row(params![source, user_id], entry_row)
                        .optional()
                })
                .map_err(db_error)?
                .ok_or_else(|| StoreError::NotFound {
                    what: "user",
                    id: format!("{source}/{user_id}"),
                })?;
            decode(&codec, row)
        })
        .await
    }

    pub(crate) async fn read_users(&self, query: UserQuery) -> Result<(Vec<DirectoryEntry>, u64)> {
        let codec = Arc::clone(&self.codec);
        self.read(move |db| {
            let user_name = query.user_name.as_ref().map(|name| name.to_ascii_lowercase());
            let filter = "(?1 IS NULL OR source = ?1) AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR lower(username) = ?3 OR (username IS NULL AND email = ?3)) \
                 AND (?4 OR deleted = 0)";
            let total: i64 = db
                .query_row(
                    &format!("SELECT COUNT(*) FROM users WHERE {filter}"),
                    params![query.source, query.status, user_name, query.include_deleted],
                    |row| row.get(0),
                )
                .map_err(db_error)?;
            let rows = db
                .prepare_cached(&format!(
                    "SELECT source, version, deleted, partial, updated_at, user FROM users WHERE {filter} \
                     ORDER BY source, user_id LIMIT ?5 OFFSET ?6"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_map(
                            params![
                                query.source,
                                query.status,
                                user_name,
                                query.include_deleted,
                                query.limit,
                                query.offset
                            ],
                            entry_row,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(db_error)?;
            let entries = rows
                .into_iter()
                .map(|row| decode(&codec, row))
                .collect::<Result<Vec<_>>>()?;
            Ok((entries, u64::try_from(total).unwrap_or(0)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(version: i64) -> CachedUser {
        CachedUser {
            applied: Applied {
                version,
                deleted: false,
                partial: false,
            },
            user: serde_json::value::to_raw_value(&User::with_id("7")).unwrap(),
        }
    }

    #[test]
    fn a_rollback_restores_what_the_transaction_changed() {
        let mut cache = DirectoryCache::with_capacity(4);
        let key = ("s".to_owned(), "7".to_owned());
        cache.users.put(key.clone(), known(1));
        cache.commit();
        // Two changes to one user and a new user in one transaction, then a rollback.
        let before = cache.users.pop(&key);
        cache.undo.push((key.clone(), before));
        cache.users.put(key.clone(), known(2));
        let before = cache.users.pop(&key);
        cache.undo.push((key.clone(), before));
        cache.users.put(key.clone(), known(3));
        let new = ("s".to_owned(), "8".to_owned());
        cache.undo.push((new.clone(), None));
        cache.users.put(new.clone(), known(1));
        cache.rollback();
        assert_eq!(
            cache.users.get(&key).map(|user| user.applied.version),
            Some(1)
        );
        assert!(cache.users.get(&new).is_none());
    }
}
