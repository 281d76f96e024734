//! Appending to the journal: dedup, the directory update and the journal rows of many
//! deliveries in one transaction, and the per-replica writer that groups concurrent ingests
//! into it.
//!
//! # Sequence numbers commit in order
//!
//! A transaction that appends first locks the counter row (`meta.last_seq`, `FOR UPDATE`)
//! and holds it until it commits. A second appender, on this replica or another, waits at
//! that lock, so it takes its sequence numbers only after the first committed: sequence
//! order is commit order, and a delivery position that moved past sequence n can never
//! skip an event committed later with a lower number (there is none).
//!
//! Under that lock every statement reads the latest committed state (READ COMMITTED), so
//! the dedup check sees every delivery any replica committed before, and the directory
//! update (`previous`, `changes`, `version`) is computed from the state this commit really
//! follows. The user rows are also locked (`FOR UPDATE`) for any writer that does not
//! append. The unique key on `dedup (source, key)` backs the dedup check.
//!
//! # Group commit
//!
//! Each replica has one writer task. It takes every ingest waiting in its queue, commits
//! them in one transaction of five round trips whatever the group's size (`BEGIN`; the
//! counter lock; the dedup and user lookups, pipelined; the journal, user, dedup and counter
//! writes, pipelined, the rows as arrays through `unnest`; `COMMIT`), and only then answers
//! each caller: concurrent requests share the counter lock, the round trips and the commit's
//! WAL flush.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rollcall_core::directory::{apply, KnownUser};
use rollcall_core::User;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

use super::{pg_error, Counters, Shared};
use crate::{IngestBatch, IngestOutcome, Result, StoreError};

/// How many queued ingests one transaction takes at most.
const MAX_GROUP: usize = 512;

/// How long one group transaction may take before its callers hear 503 and the writer
/// moves on (the connection is discarded): longer than the lock timeout, shorter than a
/// vendor's patience.
const GROUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Locks the journal's counter until the transaction ends and returns the last sequence
/// number assigned.
pub(crate) async fn lock_counter(tx: &Transaction<'_>) -> Result<i64> {
    Ok(tx
        .query_one(
            "SELECT value FROM meta WHERE name = 'last_seq' FOR UPDATE",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0))
}

/// Appends `batches` in `tx` (which must hold the counter lock, taken at `last_seq`):
/// returns each batch's outcome and the new last sequence number. Nothing is committed.
pub(crate) async fn append(
    tx: &Transaction<'_>,
    mut last_seq: i64,
    batches: Vec<IngestBatch>,
) -> Result<(Vec<IngestOutcome>, i64)> {
    // Dedup (what any replica committed before) and the users the events touch (locked, as
    // committed), in one round trip: the two queries are pipelined.
    let (sources, keys): (Vec<&str>, Vec<&str>) = batches
        .iter()
        .map(|batch| (batch.source.as_str(), batch.dedup_key.as_str()))
        .unzip();
    let mut wanted: Vec<(&str, &str)> = batches
        .iter()
        .flat_map(|batch| {
            batch
                .events
                .iter()
                .map(|event| (batch.source.as_str(), event.user.id.as_str()))
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let (user_sources, user_ids): (Vec<&str>, Vec<&str>) = wanted.into_iter().unzip();
    let dedup_params: [&(dyn ToSql + Sync); 2] = [&sources, &keys];
    let user_params: [&(dyn ToSql + Sync); 2] = [&user_sources, &user_ids];
    let (dedup_rows, user_rows) = tokio::try_join!(
        tx.query(
            "SELECT d.source, d.key, d.event_ids FROM dedup AS d \
             JOIN unnest($1::text[], $2::text[]) AS k (source, key) \
             ON d.source = k.source AND d.key = k.key",
            &dedup_params,
        ),
        tx.query(
            "SELECT u.source, u.user_id, u.version, u.deleted, u.partial, u.\"user\" \
             FROM users AS u JOIN unnest($1::text[], $2::text[]) AS k (source, user_id) \
             ON u.source = k.source AND u.user_id = k.user_id \
             ORDER BY u.source, u.user_id FOR UPDATE OF u",
            &user_params,
        )
    )
    .map_err(pg_error)?;
    // Repeats within this group are added as the group is applied.
    let mut seen: HashMap<(String, String), Vec<String>> = HashMap::new();
    for row in dedup_rows {
        let ids: String = row.get(2);
        seen.insert(
            (row.get(0), row.get(1)),
            serde_json::from_str(&ids).unwrap_or_default(),
        );
    }
    let mut users: HashMap<(String, String), KnownUser> = HashMap::new();
    for row in user_rows {
        let stored: Vec<u8> = row.get(5);
        users.insert(
            (row.get(0), row.get(1)),
            KnownUser {
                user: serde_json::from_slice(&stored)?,
                version: row.get(2),
                deleted: row.get(3),
                partial: row.get(4),
            },
        );
    }

    let mut journal = JournalRows::default();
    let mut dedup = DedupRows::default();
    // The users this group changes, in first-touch order, with the receive time of the last
    // event applied to each.
    let mut touched: Vec<(String, String)> = Vec::new();
    let mut updated_at: HashMap<(String, String), i64> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batches.len());
    for mut batch in batches {
        let dedup_key = (batch.source.clone(), batch.dedup_key.clone());
        if let Some(event_ids) = seen.get(&dedup_key) {
            outcomes.push(IngestOutcome::Duplicate {
                event_ids: event_ids.clone(),
            });
            continue;
        }
        let received_at = batch.received_at.unix_millis();
        let mut event_ids = Vec::with_capacity(batch.events.len());
        for event in &mut batch.events {
            let key = (batch.source.clone(), event.user.id.clone());
            let record = apply(users.get(&key), event);
            if updated_at.insert(key.clone(), received_at).is_none() {
                touched.push(key.clone());
            }
            users.insert(key, record);
            last_seq += 1;
            journal.seq.push(last_seq);
            journal.received_at.push(received_at);
            journal.source.push(batch.source.clone());
            journal
                .event_type
                .push(event.event_type.as_str().to_owned());
            journal.event.push(serde_json::to_vec(event)?);
            event_ids.push(std::mem::take(&mut event.id));
        }
        journal.event_id.extend(event_ids.iter().cloned());
        dedup.source.push(batch.source.clone());
        dedup.key.push(batch.dedup_key.clone());
        dedup.received_at.push(received_at);
        dedup.event_ids.push(serde_json::to_string(&event_ids)?);
        seen.insert(dedup_key, event_ids.clone());
        outcomes.push(IngestOutcome::Accepted { event_ids });
    }
    if dedup.source.is_empty() {
        return Ok((outcomes, last_seq));
    }

    let rows = UserRows::from_records(&touched, &users, &updated_at)?;
    write_appended(tx, &journal, &rows, &dedup, last_seq).await?;
    Ok((outcomes, last_seq))
}

/// Writes what an append produced, in one round trip (pipelined; any failure aborts the
/// transaction): the journal rows, the users' new states, the dedup keys, the counter.
async fn write_appended(
    tx: &Transaction<'_>,
    journal: &JournalRows,
    rows: &UserRows,
    dedup: &DedupRows,
    last_seq: i64,
) -> Result<()> {
    // The four writes in one round trip (pipelined; any failure aborts the transaction).
    let journal_params: [&(dyn ToSql + Sync); 6] = [
        &journal.seq,
        &journal.received_at,
        &journal.source,
        &journal.event_type,
        &journal.event_id,
        &journal.event,
    ];
    let user_params: [&(dyn ToSql + Sync); 10] = [
        &rows.source,
        &rows.user_id,
        &rows.version,
        &rows.deleted,
        &rows.partial,
        &rows.status,
        &rows.username,
        &rows.email,
        &rows.updated_at,
        &rows.user,
    ];
    let dedup_params: [&(dyn ToSql + Sync); 4] = [
        &dedup.source,
        &dedup.key,
        &dedup.received_at,
        &dedup.event_ids,
    ];
    let counter_params: [&(dyn ToSql + Sync); 1] = [&last_seq];
    tokio::try_join!(
        tx.execute(
            "INSERT INTO journal (seq, received_at, source, event_type, event_id, event) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[])",
            &journal_params,
        ),
        tx.execute(
            "INSERT INTO users (source, user_id, version, deleted, partial, status, username, email, updated_at, \"user\") \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[], $5::boolean[], \
                                  $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bytea[]) \
             ON CONFLICT (source, user_id) DO UPDATE SET version = excluded.version, \
                 deleted = excluded.deleted, partial = excluded.partial, status = excluded.status, \
                 username = excluded.username, email = excluded.email, \
                 updated_at = excluded.updated_at, \"user\" = excluded.\"user\"",
            &user_params,
        ),
        tx.execute(
            "INSERT INTO dedup (source, key, received_at, event_ids) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])",
            &dedup_params,
        ),
        tx.execute(
            "UPDATE meta SET value = $1 WHERE name = 'last_seq'",
            &counter_params,
        ),
    )
    .map_err(pg_error)?;
    Ok(())
}

/// Appends a sync page in `tx` (which must hold the counter lock, taken at `last_seq`):
/// each change is journalled only if its user is still at the version the sync compared
/// with (earlier changes of the page count), the others are reported as conflicts. No dedup
/// key. Returns what was committed and the new last sequence number.
pub(crate) async fn append_sync(
    tx: &Transaction<'_>,
    mut last_seq: i64,
    source: &str,
    received_at: i64,
    changes: Vec<crate::SyncChange>,
) -> Result<(crate::SyncCommit, i64)> {
    let mut wanted: Vec<&str> = changes.iter().map(|c| c.event.user.id.as_str()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut users: HashMap<(String, String), KnownUser> = HashMap::new();
    for row in tx
        .query(
            "SELECT u.source, u.user_id, u.version, u.deleted, u.partial, u.\"user\" \
             FROM users AS u WHERE u.source = $1 AND u.user_id = ANY($2) \
             ORDER BY u.user_id FOR UPDATE",
            &[&source, &wanted],
        )
        .await
        .map_err(pg_error)?
    {
        let stored: Vec<u8> = row.get(5);
        users.insert(
            (row.get(0), row.get(1)),
            KnownUser {
                user: serde_json::from_slice(&stored)?,
                version: row.get(2),
                deleted: row.get(3),
                partial: row.get(4),
            },
        );
    }
    let mut commit = crate::SyncCommit::default();
    let mut journal = JournalRows::default();
    let mut touched: Vec<(String, String)> = Vec::new();
    let mut updated_at: HashMap<(String, String), i64> = HashMap::new();
    for mut change in changes {
        let key = (source.to_owned(), change.event.user.id.clone());
        let version = users.get(&key).map(|user| user.version);
        if version != change.expected_version {
            commit.conflicts.push(key.1);
            continue;
        }
        let event = &mut change.event;
        let record = apply(users.get(&key), event);
        if updated_at.insert(key.clone(), received_at).is_none() {
            touched.push(key.clone());
        }
        users.insert(key, record);
        last_seq += 1;
        journal.seq.push(last_seq);
        journal.received_at.push(received_at);
        journal.source.push(source.to_owned());
        journal
            .event_type
            .push(event.event_type.as_str().to_owned());
        journal.event.push(serde_json::to_vec(&*event)?);
        journal.event_id.push(event.id.clone());
        commit.event_ids.push(std::mem::take(&mut event.id));
    }
    if !journal.seq.is_empty() {
        let rows = UserRows::from_records(&touched, &users, &updated_at)?;
        write_appended(tx, &journal, &rows, &DedupRows::default(), last_seq).await?;
    }
    Ok((commit, last_seq))
}

#[derive(Default)]
struct JournalRows {
    seq: Vec<i64>,
    received_at: Vec<i64>,
    source: Vec<String>,
    event_type: Vec<String>,
    event_id: Vec<String>,
    event: Vec<Vec<u8>>,
}

#[derive(Default)]
struct DedupRows {
    source: Vec<String>,
    key: Vec<String>,
    received_at: Vec<i64>,
    event_ids: Vec<String>,
}

#[derive(Default)]
struct UserRows {
    source: Vec<String>,
    user_id: Vec<String>,
    version: Vec<i64>,
    deleted: Vec<bool>,
    partial: Vec<bool>,
    status: Vec<Option<String>>,
    username: Vec<Option<String>>,
    email: Vec<Option<String>>,
    updated_at: Vec<i64>,
    user: Vec<Vec<u8>>,
}

impl UserRows {
    /// One row per touched user, its final state in this transaction.
    fn from_records(
        touched: &[(String, String)],
        users: &HashMap<(String, String), KnownUser>,
        updated_at: &HashMap<(String, String), i64>,
    ) -> Result<Self> {
        let mut rows = Self::default();
        for key in touched {
            let Some(record) = users.get(key) else {
                continue;
            };
            rows.source.push(key.0.clone());
            rows.user_id.push(key.1.clone());
            rows.version.push(record.version);
            rows.deleted.push(record.deleted);
            rows.partial.push(record.partial);
            rows.status.push(
                record
                    .user
                    .status
                    .as_ref()
                    .map(|status| status.as_str().to_owned()),
            );
            rows.username.push(record.user.username.clone());
            rows.email.push(primary_email(&record.user));
            rows.updated_at
                .push(updated_at.get(key).copied().unwrap_or_default());
            rows.user.push(serde_json::to_vec(&record.user)?);
        }
        Ok(rows)
    }
}

pub(crate) fn primary_email(user: &User) -> Option<String> {
    let emails = user.emails.as_ref()?;
    emails
        .iter()
        .find(|email| email.is_primary == Some(true))
        .or_else(|| emails.first())
        .map(|email| email.email.to_ascii_lowercase())
}

/// One queued ingest and where its answer goes.
pub(crate) struct Job {
    batch: IngestBatch,
    reply: oneshot::Sender<Result<IngestOutcome>>,
}

pub(crate) enum Message {
    Ingest(Job),
    /// Commit what is queued before this message, then stop.
    Stop(oneshot::Sender<()>),
}

/// The handle to a replica's ingest writer.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Message>,
}

impl Writer {
    pub(crate) fn start(shared: Arc<Shared>) -> Self {
        let (queue, receiver) = mpsc::channel(MAX_GROUP * 4);
        tokio::spawn(run(shared, receiver));
        Self { queue }
    }

    pub(crate) async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Message::Ingest(Job { batch, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Message>) {
    let mut stopped = None;
    while stopped.is_none() {
        let Some(first) = receiver.recv().await else {
            break;
        };
        let mut jobs = Vec::new();
        match first {
            Message::Ingest(job) => jobs.push(job),
            Message::Stop(done) => stopped = Some(done),
        }
        while stopped.is_none() && jobs.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(Message::Ingest(job)) => jobs.push(job),
                Ok(Message::Stop(done)) => stopped = Some(done),
                Err(_) => break,
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let (batches, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|job| (job.batch, job.reply)).unzip();
        let writes = batches.len() as u64;
        match commit_group(&shared, batches).await {
            Ok((outcomes, last_seq)) => {
                shared.counters.committed(writes);
                raise(&shared.committed, last_seq);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, writes, "store: ingest transaction failed; rolled back");
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable {
                        message: message.clone(),
                        source: None,
                    }));
                }
            }
        }
    }
    receiver.close();
    while let Ok(message) = receiver.try_recv() {
        match message {
            Message::Ingest(job) => {
                let _ = job.reply.send(Err(StoreError::Closed));
            }
            Message::Stop(done) => {
                let _ = done.send(());
            }
        }
    }
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}

async fn commit_group(
    shared: &Shared,
    batches: Vec<IngestBatch>,
) -> Result<(Vec<IngestOutcome>, i64)> {
    let mut client = shared.client().await?;
    let committed = tokio::time::timeout(GROUP_TIMEOUT, async {
        let tx = client.transaction().await.map_err(pg_error)?;
        let last_seq = lock_counter(&tx).await?;
        let appended = append(&tx, last_seq, batches).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(appended)
    })
    .await;
    match committed {
        Ok(result) => result,
        Err(_) => {
            // The connection may be mid-transaction: it must not go back to the pool.
            drop(deadpool_postgres::Object::take(client));
            Err(StoreError::Unavailable {
                message: format!("the ingest transaction did not finish within {GROUP_TIMEOUT:?}"),
                source: None,
            })
        }
    }
}

impl Counters {
    pub(crate) fn committed(&self, writes: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
    }
}

/// Keeps `committed` at the highest sequence number seen committed.
pub(crate) fn raise(committed: &watch::Sender<i64>, last_seq: i64) {
    committed.send_if_modified(|current| {
        let raised = last_seq > *current;
        if raised {
            *current = last_seq;
        }
        raised
    });
}
