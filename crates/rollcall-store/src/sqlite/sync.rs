//! Sync commits and sync state on SQLite.
//!
//! A sync page goes through the writer like any ingest: its events are completed from the
//! directory and journalled in the group transaction, each only if its user is still at the
//! version the sync compared with, and the source's sync state is saved in the same
//! transaction, so a crash leaves either the page and its cursor or neither.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::writer::WriteError;
use super::{db_error, directory, journal_event, SqliteBackend};
use crate::contract::SyncStore;
use crate::{Result, StoreError, SyncBatch, SyncCommit, SyncState};

#[async_trait]
impl SyncStore for SqliteBackend {
    async fn commit_sync(&self, batch: SyncBatch) -> Result<SyncCommit> {
        if batch.state.source != batch.source {
            return Err(StoreError::Invalid(format!(
                "the sync state of {:?} cannot be saved with a batch of {:?}",
                batch.state.source, batch.source
            )));
        }
        let state = serde_json::to_string(&batch.state)?;
        self.writer
            .write(move |context| {
                let received_at = batch.received_at.unix_millis();
                let mut commit = SyncCommit::default();
                for mut change in batch.changes {
                    let user_id = change.event.user.id.clone();
                    let version = directory::current_version(context, &batch.source, &user_id)?;
                    if version != change.expected_version {
                        commit.conflicts.push(user_id);
                        continue;
                    }
                    commit.event_ids.push(journal_event(
                        context,
                        &batch.source,
                        &mut change.event,
                        received_at,
                    )?);
                }
                context
                    .tx
                    .prepare_cached(
                        "INSERT INTO sync_state (source, state) VALUES (?1, ?2) \
                         ON CONFLICT (source) DO UPDATE SET state = excluded.state",
                    )?
                    .execute(params![batch.source, state])?;
                Ok::<_, WriteError>(commit)
            })
            .await
    }

    async fn sync_state(&self, source: &str) -> Result<Option<SyncState>> {
        let source = source.to_owned();
        let stored: Option<String> = self
            .read(move |db| {
                db.prepare_cached("SELECT state FROM sync_state WHERE source = ?1")
                    .and_then(|mut statement| {
                        statement.query_row([source], |row| row.get(0)).optional()
                    })
                    .map_err(db_error)
            })
            .await?;
        stored
            .map(|json| serde_json::from_str(&json).map_err(StoreError::from))
            .transpose()
    }

    async fn sync_states(&self) -> Result<Vec<SyncState>> {
        let stored: Vec<String> = self
            .read(|db| {
                db.prepare_cached("SELECT state FROM sync_state ORDER BY source")
                    .and_then(|mut statement| {
                        statement
                            .query_map([], |row| row.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(db_error)
            })
            .await?;
        stored
            .iter()
            .map(|json| serde_json::from_str(json).map_err(StoreError::from))
            .collect()
    }
}
