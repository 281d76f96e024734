//! The SQLite backend: the conformance suite, and what only this backend has (the single
//! writer's group commit, its rollback, the schema and its migrations, file permissions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rollcall_core::{EventType, Timestamp, User, UserEvent};

use super::writer::WriteError;
use super::{retention, schema, SqliteBackend};
use crate::conformance::{batch, event, hours_ago, rejected, Harness};
use crate::prelude::*;
use crate::{IngestOutcome, PrunePolicy, Store, StoreError};

/// A fresh database in a temporary directory (created by the store, as in production).
struct SqliteHarness {
    dir: tempfile::TempDir,
}

impl SqliteHarness {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("data/rollcall.db")
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Store {
        Store::open(self.path()).unwrap()
    }
}

crate::conformance_suite!(SqliteHarness::new());

fn open() -> (SqliteHarness, Arc<SqliteBackend>) {
    let harness = SqliteHarness::new();
    let backend = Arc::new(SqliteBackend::open(&harness.path()).unwrap());
    (harness, backend)
}

async fn journal_ids(store: &SqliteBackend) -> Vec<String> {
    store
        .journal_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.event_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_one_commit() {
    let (_dir, store) = open();
    let resume = store.writer().pause().await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
                .await
        }));
    }
    // Let every task queue its write behind the pause.
    while store.writer().queued() < 50 {
        tokio::task::yield_now().await;
    }
    let before = store.commit_stats();
    resume.send(()).unwrap();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            IngestOutcome::Accepted { .. }
        ));
    }
    let after = store.commit_stats();
    assert_eq!(after.writes - before.writes, 50);
    assert_eq!(after.commits - before.commits, 1);
}

#[tokio::test]
async fn a_refused_write_does_not_undo_the_others_in_its_commit() {
    let (_dir, store) = open();
    let quarantined = store
        .quarantine(rejected(Timestamp::now(), b"{}"))
        .await
        .unwrap();
    store
        .resolve_quarantine(quarantined, batch("k0", &["e0"]))
        .await
        .unwrap();
    let resume = store.writer().pause().await;
    let good = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.ingest(batch("k1", &["e1"])).await })
    };
    // The entry was replayed already: refused before anything of it is written.
    let refused = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .resolve_quarantine(quarantined, batch("k2", &["e2"]))
                .await
        })
    };
    let also_good = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.ingest(batch("k3", &["e3"])).await })
    };
    while store.writer().queued() < 3 {
        tokio::task::yield_now().await;
    }
    resume.send(()).unwrap();
    assert!(good.await.unwrap().is_ok());
    assert!(matches!(
        refused.await.unwrap(),
        Err(StoreError::NotFound { .. })
    ));
    assert!(also_good.await.unwrap().is_ok());
    assert_eq!(journal_ids(&store).await, ["e0", "e1", "e3"]);
    // The refused batch left no dedup key behind.
    assert!(!store.dedup_seen("src", "k2").await.unwrap());
}

#[tokio::test]
async fn a_database_failure_mid_write_rolls_back_the_whole_transaction_and_the_cache() {
    let (_dir, store) = open();
    let resume = store.writer().pause().await;
    let mut created = batch("k1", &[]);
    created.events = vec![UserEvent {
        user: User {
            name: Some("Ann".into()),
            ..User::with_id("7")
        },
        ..event("e1", "7")
    }];
    let ingest = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.ingest(created).await })
    };
    let failing = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .writer()
                .write(|context| -> Result<(), WriteError> {
                    // What a full disk looks like to a write: a database error.
                    context
                        .tx
                        .execute("INSERT INTO no_such_table VALUES (1)", [])?;
                    Ok(())
                })
                .await
        })
    };
    while store.writer().queued() < 2 {
        tokio::task::yield_now().await;
    }
    resume.send(()).unwrap();
    assert!(matches!(
        ingest.await.unwrap(),
        Err(StoreError::Unavailable { .. })
    ));
    assert!(failing.await.unwrap().is_err());
    assert!(journal_ids(&store).await.is_empty());
    assert!(!store.dedup_seen("src", "k1").await.unwrap());
    assert_eq!(*store.subscribe().borrow(), 0);
    // The vendor's retry commits as the first event of a user the directory never saw: the
    // rolled-back state did not linger in the writer's cache, and the sequence restarts at 1.
    let mut retried = batch("k1", &[]);
    retried.events = vec![UserEvent {
        event_type: EventType::Updated,
        ..event("e1", "7")
    }];
    store.ingest(retried).await.unwrap();
    let entry = store.journal_entry(1).await.unwrap().decode().unwrap();
    assert_eq!(entry.previous, None);
    assert_eq!(store.user("src", "7").await.unwrap().version, 1);
}

#[tokio::test]
async fn pruning_shares_commits_with_ingest() {
    let (_dir, store) = open();
    let mut old = batch("k0", &["e0"]);
    old.received_at = hours_ago(200);
    store.ingest(old).await.unwrap();
    store.set_position("sink", 1).await.unwrap();
    let resume = store.writer().pause().await;
    let prune = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .prune(PrunePolicy::new(Some(hours_ago(168)), None, ["sink"]))
                .await
        })
    };
    let ingest = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.ingest(batch("k1", &["e1"])).await })
    };
    while store.writer().queued() < 2 {
        tokio::task::yield_now().await;
    }
    resume.send(()).unwrap();
    assert_eq!(prune.await.unwrap().unwrap().journal_events, 1);
    assert!(matches!(
        ingest.await.unwrap().unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    assert_eq!(journal_ids(&store).await, ["e1"]);
}

#[tokio::test]
async fn pruning_queries_use_the_age_indexes() {
    let (_dir, store) = open();
    let db = store.reader();
    for (sql, indexes) in [
        (
            retention::JOURNAL_BATCH,
            &["journal_received_at", "dead_letters_open_seq"][..],
        ),
        (retention::DEDUP_BATCH, &["dedup_received_at"][..]),
        (retention::QUARANTINE_BATCH, &["quarantine_replayed"][..]),
        (retention::DEAD_LETTER_BATCH, &["dead_letters_replayed"][..]),
        (
            retention::OPEN_QUARANTINE_EXPIRED,
            &["quarantine_state"][..],
        ),
    ] {
        let mut statement = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let parameters =
            rusqlite::params_from_iter(std::iter::repeat_n(0i64, statement.parameter_count()));
        let plan = statement
            .query_map(parameters, |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n");
        for index in indexes {
            assert!(plan.contains(index), "{sql}\n{plan}");
        }
        // No full scan of any table: the search walks an index, the delete goes by key.
        assert!(
            !plan
                .lines()
                .any(|line| line.trim_start().starts_with("SCAN") && !line.contains("INDEX")),
            "{sql}\n{plan}"
        );
    }
}

#[tokio::test]
async fn large_events_are_stored_compressed() {
    let (_dir, store) = open();
    let remote: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|n| {
            (
                format!("custom_field_{n}"),
                serde_json::json!(format!("value number {n}")),
            )
        })
        .collect();
    let mut delivery = batch("k1", &[]);
    delivery.events = vec![UserEvent {
        user: User {
            remote_data: Some(serde_json::Value::Object(remote).into()),
            ..User::with_id("7")
        },
        ..event("e1", "7")
    }];
    store.ingest(delivery).await.unwrap();
    let (stored, user): (Vec<u8>, Vec<u8>) = store
        .reader()
        .query_row(
            "SELECT j.event, u.user FROM journal j, users u WHERE j.seq = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let json = store.journal_entry(1).await.unwrap().event;
    assert!(
        stored.len() * 3 < json.len(),
        "{} bytes stored for {} bytes of JSON",
        stored.len(),
        json.len()
    );
    assert!(user.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]));
}

#[test]
fn a_database_from_a_newer_rollcall_is_refused() {
    let harness = SqliteHarness::new();
    drop(SqliteBackend::open(&harness.path()).unwrap());
    let connection = rusqlite::Connection::open(harness.path()).unwrap();
    connection
        .pragma_update(None, "user_version", schema::MIGRATIONS.len() + 1)
        .unwrap();
    drop(connection);
    let error = SqliteBackend::open(&harness.path()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Open { message, .. } if message.contains("newer")),
        "{error}"
    );
}

/// A database as the previous schema (version 3) left it: AUTOINCREMENT sequence numbers, a
/// pruned journal whose last number lives only in `sqlite_sequence`, and a cursor.
#[tokio::test]
async fn a_version_3_database_is_migrated_with_its_sequence_and_cursors() {
    let harness = SqliteHarness::new();
    std::fs::create_dir_all(harness.path().parent().unwrap()).unwrap();
    {
        let connection = rusqlite::Connection::open(harness.path()).unwrap();
        for migration in &schema::MIGRATIONS[..3] {
            connection.execute_batch(migration).unwrap();
        }
        connection.pragma_update(None, "user_version", 3).unwrap();
        connection
            .execute_batch(
                "INSERT INTO journal (event_id, source, event_type, user_id, received_at, event) VALUES \
                 ('e1', 'src', 'user.created', '7', 1, CAST('{}' AS BLOB)), ('e2', 'src', 'user.created', '8', 2, CAST('{\"id\":\"e2\"}' AS BLOB));
                 DELETE FROM journal WHERE seq = 1;
                 INSERT INTO journal (event_id, source, event_type, user_id, received_at, event) VALUES \
                 ('e3', 'src', 'user.created', '9', 3, CAST('{\"id\":\"e3\"}' AS BLOB));
                 DELETE FROM journal WHERE seq = 3;
                 INSERT INTO cursors (sink, seq) VALUES ('crm', 2);
                 INSERT INTO users (source, user_id, version, deleted, partial, status, updated_at, user) \
                 VALUES ('src', '8', 3, 0, 0, 'active', 2, CAST('{\"id\":\"8\",\"name\":\"Ann\"}' AS BLOB));",
            )
            .unwrap();
    }
    let store = SqliteBackend::open(&harness.path()).unwrap();
    // Sequence 3 was assigned (then pruned): the next event gets 4, never 3 again.
    assert_eq!(*store.subscribe().borrow(), 3);
    assert_eq!(store.position("crm").await.unwrap(), 2);
    assert_eq!(journal_ids(&store).await, ["e2"]);
    let user = store.user("src", "8").await.unwrap();
    assert_eq!((user.version, user.user.name.as_deref()), (3, Some("Ann")));
    store.ingest(batch("k", &["e4"])).await.unwrap();
    let seqs: Vec<i64> = store
        .journal_after(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.seq)
        .collect();
    assert_eq!(seqs, [2, 4]);
}

#[cfg(unix)]
#[test]
fn the_database_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let harness = SqliteHarness::new();
    let store = SqliteBackend::open(&harness.path()).unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(harness.path().parent().unwrap()), 0o700);
    assert_eq!(mode(&harness.path()), 0o600);
    let mut wal = harness.path().into_os_string();
    wal.push("-wal");
    assert_eq!(mode(std::path::Path::new(&wal)), 0o600);
    drop(store);
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let harness = SqliteHarness::new();
    let first = SqliteBackend::open(&harness.path()).unwrap();
    let error = SqliteBackend::open(&harness.path()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Open { message, .. } if message.contains("another rollcall process")),
        "{error}"
    );
    drop(first);
    SqliteBackend::open(&harness.path()).unwrap();
}

#[tokio::test]
async fn leases_left_by_a_crashed_process_are_cleared_at_open() {
    let harness = SqliteHarness::new();
    {
        let store = SqliteBackend::open(&harness.path()).unwrap();
        store
            .acquire_lease(
                "crm",
                "crashed",
                std::time::Duration::from_secs(3600),
                Timestamp::now(),
            )
            .await
            .unwrap()
            .unwrap();
        store.close().await;
    }
    let store = SqliteBackend::open(&harness.path()).unwrap();
    assert!(store
        .acquire_lease(
            "crm",
            "restarted",
            std::time::Duration::from_secs(30),
            Timestamp::now()
        )
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_compression_dictionary_is_trained_stored_and_read_after_a_reopen() {
    let harness = SqliteHarness::new();
    let plan = crate::codec::TrainingPlan {
        first_after: 60,
        then_every: 1_000_000,
        sample_every: 1,
        samples: 200,
    };
    let event_with_data = |n: usize| {
        UserEvent {
        user: User {
            name: Some(format!("User number {n}")),
            remote_data: Some(serde_json::json!({
                "id": n, "email": format!("user{n}@example.com"), "role": "end-user",
                "tags": ["alpha", "beta"], "time_zone": "Europe/Berlin", "locale": "en-US",
                "user_fields": {"department": "engineering", "cost_center": format!("cc-{}", n % 9)},
            }).into()),
            ..User::with_id(n.to_string())
        },
        ..event(&format!("e{n}"), &n.to_string())
    }
    };
    let mut n = 0;
    {
        let store = SqliteBackend::open_with(&harness.path(), plan).unwrap();
        let dictionaries = || {
            store
                .reader()
                .query_row("SELECT COUNT(*) FROM dictionaries", [], |row| {
                    row.get::<_, i64>(0)
                })
                .unwrap()
        };
        // The dictionary is trained beside the writer, which keeps packing without it until
        // it is ready: ingest until it is stored (a bounded number of events, no clock),
        // then 20 more, which are packed with it.
        let mut with_dictionary_from = None;
        while n < 5_000 && with_dictionary_from.is_none_or(|from| n < from + 20) {
            let mut delivery = batch(&format!("k{n}"), &[]);
            delivery.events = vec![event_with_data(n)];
            store.ingest(delivery).await.unwrap();
            n += 1;
            if with_dictionary_from.is_none() && dictionaries() == 1 {
                with_dictionary_from = Some(n);
            }
        }
        assert!(
            with_dictionary_from.is_some(),
            "no dictionary after {n} events"
        );
        let (first, last): (i64, i64) = store
            .reader()
            .query_row(
                "SELECT (SELECT length(event) FROM journal WHERE seq = 1),                  (SELECT length(event) FROM journal WHERE seq = ?1)",
                [n as i64],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(dictionaries(), 1);
        assert!(
            last * 2 < first,
            "{first} bytes before the dictionary, {last} after"
        );
        store.close().await;
    }
    // A new process knows the dictionary from the table: every row reads back.
    let store = SqliteBackend::open(&harness.path()).unwrap();
    let entries = store.journal_after(0, 10_000).await.unwrap();
    assert_eq!(entries.len(), n);
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(entry.decode().unwrap().user, event_with_data(n).user);
    }
    assert_eq!(
        store.user("src", &(n - 1).to_string()).await.unwrap().user,
        event_with_data(n - 1).user
    );
}

/// The writer's cache keeps a user as JSON; an update completed from it must read exactly
/// as one completed from the stored row (after a reopen, the cache is empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_completed_from_the_cache_equals_one_completed_from_the_stored_row() {
    let created = User {
        name: Some("Ann".into()),
        emails: Some(vec![rollcall_core::Email {
            email: "ann@example.com".into(),
            email_type: None,
            is_primary: Some(true),
        }]),
        created_at: Some(Timestamp::from_unix_seconds(1_600_000_000).unwrap()),
        remote_data: Some(serde_json::json!({"id": 7, "notes": "vip", "tags": ["a"]}).into()),
        ..User::with_id("7")
    };
    let delta = User {
        name: Some("Ann B".into()),
        remote_data: Some(serde_json::json!({"id": 7, "role": "agent"}).into()),
        ..User::with_id("7")
    };
    let delivery = |key: &str, id: &str, event_type: EventType, user: &User, partial: bool| {
        let mut delivery = batch(key, &[]);
        let mut event = event(id, "7");
        event.event_type = event_type;
        event.user = user.clone();
        event.partial = partial;
        delivery.events = vec![event];
        delivery
    };
    let mut updates = Vec::new();
    for reopen in [false, true] {
        let harness = SqliteHarness::new();
        let mut store = harness.open().await;
        store
            .ingest(delivery("k1", "e1", EventType::Created, &created, false))
            .await
            .unwrap();
        if reopen {
            store.close().await;
            drop(store);
            store = harness.open().await;
        }
        store
            .ingest(delivery("k2", "e2", EventType::Updated, &delta, true))
            .await
            .unwrap();
        let journal = store.journal_after(0, 10).await.unwrap();
        let update = journal[1].decode().unwrap();
        assert_eq!(update.previous.as_ref(), Some(&created));
        assert_eq!(
            update.user.remote_data,
            Some(
                serde_json::json!({"id": 7, "notes": "vip", "tags": ["a"], "role": "agent"}).into()
            )
        );
        let entry = store.user("src", "7").await.unwrap();
        updates.push((update, entry.version, entry.user));
    }
    assert_eq!(updates[0], updates[1]);
}
