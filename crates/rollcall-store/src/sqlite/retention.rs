//! Retention: deleting what the store no longer needs, by age, in small batches.
//!
//! The journal is not an archive. A journal row goes once it is older than the retention
//! window, every configured sink's cursor is past it, and no open dead letter or parked
//! event refers to it.
//! Dedup keys go after their own (longer) window. Quarantined deliveries and dead letters go
//! only once replayed, after the journal window counted from the replay. The user directory
//! is the current state and is never pruned.
//!
//! Every batch is one job of the single writer, so it shares a group commit with ingest and
//! never holds the write lock for more than one batch. Rows are found through the age
//! indexes and deleted by primary key.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::writer::{WriteContext, WriteError};
use super::SqliteBackend;
use crate::{PrunePolicy, PruneReport, Result};

/// Journal rows to delete: old enough, finished by every sink (`seq <= ?2`), and neither the
/// event of an open dead letter nor a parked one. Walks `journal_received_at` from the oldest
/// entry, so a run
/// with nothing to delete touches only the index entries older than the cutoff.
pub(crate) const JOURNAL_BATCH: &str = "DELETE FROM journal WHERE seq IN (\
     SELECT j.seq FROM journal AS j INDEXED BY journal_received_at \
     WHERE j.received_at < ?1 AND j.seq <= ?2 \
     AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.seq = j.seq AND d.state != 'replayed') \
     AND NOT EXISTS (SELECT 1 FROM parked AS p WHERE p.seq = j.seq) \
     ORDER BY j.received_at LIMIT ?3)";

/// Dedup keys to delete: older than their window. `dedup_received_at` holds the primary key,
/// so the search never reads the table.
pub(crate) const DEDUP_BATCH: &str = "DELETE FROM dedup WHERE (source, key) IN (\
     SELECT source, key FROM dedup INDEXED BY dedup_received_at \
     WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)";

/// Replayed quarantine entries, by the time of their replay.
pub(crate) const QUARANTINE_BATCH: &str = "DELETE FROM quarantine WHERE id IN (\
     SELECT id FROM quarantine INDEXED BY quarantine_replayed \
     WHERE state = 'replayed' AND resolved_at < ?1 ORDER BY resolved_at LIMIT ?2)";

/// Replayed dead letters, by the time of their replay.
pub(crate) const DEAD_LETTER_BATCH: &str = "DELETE FROM dead_letters WHERE id IN (\
     SELECT id FROM dead_letters INDEXED BY dead_letters_replayed \
     WHERE state = 'replayed' AND resolved_at < ?1 ORDER BY resolved_at LIMIT ?2)";

/// Open quarantine entries received before a cutoff, oldest first (ids grow with arrival).
pub(crate) const OPEN_QUARANTINE_EXPIRED: &str = "DELETE FROM quarantine WHERE id IN (\
     SELECT id FROM quarantine INDEXED BY quarantine_state \
     WHERE state = 'open' AND received_at < ?1 ORDER BY id LIMIT ?2)";

/// Deletes the oldest open quarantine entries while their bodies together exceed `cap` bytes,
/// at most `batch` of them. `length()` of a blob is read from the record header, so this
/// never loads the bodies.
fn trim_open_quarantine(tx: &Connection, cap: u64, batch: u32) -> rusqlite::Result<usize> {
    let total: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(length(body)), 0) FROM quarantine WHERE state = 'open'",
        )?
        .query_row([], |row| row.get(0))?;
    let mut excess = u64::try_from(total).unwrap_or(0).saturating_sub(cap);
    if excess == 0 {
        return Ok(0);
    }
    let mut oldest = tx.prepare_cached(
        "SELECT id, length(body) FROM quarantine INDEXED BY quarantine_state \
         WHERE state = 'open' ORDER BY id LIMIT ?1",
    )?;
    let mut doomed = Vec::new();
    let mut rows = oldest.query([batch])?;
    while let Some(row) = rows.next()? {
        if excess == 0 {
            break;
        }
        let (id, bytes): (i64, i64) = (row.get(0)?, row.get(1)?);
        doomed.push(id);
        excess = excess.saturating_sub(u64::try_from(bytes).unwrap_or(0));
    }
    drop(rows);
    let mut delete = tx.prepare_cached("DELETE FROM quarantine WHERE id = ?1")?;
    for id in &doomed {
        delete.execute([id])?;
    }
    Ok(doomed.len())
}

impl SqliteBackend {
    /// Deletes what `policy` allows, in batches of `policy.batch` rows, each batch its own
    /// write job. Stops when nothing is left or after `policy.max_batches` jobs per kind of
    /// row. The user directory is never touched.
    ///
    /// Cancel-safe between batches: dropping the future lets the batch in flight commit and
    /// starts no other.
    pub(crate) async fn prune_batches(&self, policy: PrunePolicy) -> Result<PruneReport> {
        let batch = policy.batch.max(1);
        let max_batches = policy.max_batches.max(1);
        let mut report = PruneReport {
            complete: true,
            ..PruneReport::default()
        };
        if let Some(older_than) = policy.journal_older_than {
            let cutoff = older_than.unix_millis();
            let sinks: Arc<[String]> = policy.sinks.into();
            let (deleted, done) = self
                .prune_in_batches(batch, max_batches, &mut report.batches, move |tx| {
                    Ok(prune_journal(tx, cutoff, &sinks, batch)?)
                })
                .await?;
            report.journal_events = deleted;
            report.complete &= done;
            let (deleted, done) = self
                .prune_in_batches(batch, max_batches, &mut report.batches, move |tx| {
                    Ok(tx
                        .prepare_cached(QUARANTINE_BATCH)?
                        .execute(params![cutoff, batch])?)
                })
                .await?;
            report.quarantined = deleted;
            report.complete &= done;
            let (deleted, done) = self
                .prune_in_batches(batch, max_batches, &mut report.batches, move |tx| {
                    Ok(tx
                        .prepare_cached(DEAD_LETTER_BATCH)?
                        .execute(params![cutoff, batch])?)
                })
                .await?;
            report.dead_letters = deleted;
            report.complete &= done;
        }
        if let Some(older_than) = policy.open_quarantine_older_than {
            let cutoff = older_than.unix_millis();
            let (deleted, done) = self
                .prune_in_batches(batch, max_batches, &mut report.batches, move |tx| {
                    Ok(tx
                        .prepare_cached(OPEN_QUARANTINE_EXPIRED)?
                        .execute(params![cutoff, batch])?)
                })
                .await?;
            report.quarantine_expired += deleted;
            report.complete &= done;
        }
        if let Some(cap) = policy.open_quarantine_max_bytes {
            let (deleted, done) = self
                .prune_in_batches(batch, max_batches, &mut report.batches, move |tx| {
                    Ok(trim_open_quarantine(tx, cap, batch)?)
                })
                .await?;
            report.quarantine_expired += deleted;
            report.complete &= done;
        }
        if let Some(older_than) = policy.dedup_older_than {
            let cutoff = older_than.unix_millis();
            let (deleted, done) = self
                .prune_in_batches(batch, max_batches, &mut report.batches, move |tx| {
                    Ok(tx
                        .prepare_cached(DEDUP_BATCH)?
                        .execute(params![cutoff, batch])?)
                })
                .await?;
            report.dedup_keys = deleted;
            report.complete &= done;
        }
        Ok(report)
    }

    /// Runs `job` as write jobs until one deletes less than a full batch (done) or
    /// `max_batches` ran. Returns the rows deleted and whether it finished.
    async fn prune_in_batches<F>(
        &self,
        batch: u32,
        max_batches: u32,
        batches: &mut u32,
        job: F,
    ) -> Result<(u64, bool)>
    where
        F: Fn(&Connection) -> std::result::Result<usize, WriteError> + Clone + Send + 'static,
    {
        let mut total = 0u64;
        for _ in 0..max_batches {
            let job = job.clone();
            let deleted = self
                .writer
                .write(move |context: &mut WriteContext<'_>| job(context.tx))
                .await?;
            *batches += 1;
            total += deleted as u64;
            if deleted < batch as usize {
                return Ok((total, true));
            }
        }
        Ok((total, false))
    }
}

/// One batch of journal rows. The bound is read inside the write job, so no cursor can move
/// between reading it and deleting.
fn prune_journal(
    tx: &Connection,
    cutoff: i64,
    sinks: &[String],
    batch: u32,
) -> rusqlite::Result<usize> {
    let Some(delivered) = delivered_bound(tx, sinks)? else {
        return Ok(0);
    };
    if delivered <= 0 {
        return Ok(0);
    }
    tx.prepare_cached(JOURNAL_BATCH)?
        .execute(params![cutoff, delivered, batch])
}

/// The smallest cursor over `sinks` (0 for a sink without one); `None` without sinks.
fn delivered_bound(tx: &Connection, sinks: &[String]) -> rusqlite::Result<Option<i64>> {
    let mut statement = tx.prepare_cached("SELECT seq FROM cursors WHERE sink = ?1")?;
    let mut bound: Option<i64> = None;
    for sink in sinks {
        let seq: i64 = statement
            .query_row([sink], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        bound = Some(bound.map_or(seq, |current| current.min(seq)));
    }
    Ok(bound)
}
