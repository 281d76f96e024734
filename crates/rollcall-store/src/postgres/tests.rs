//! The PostgreSQL backend against a real server: the conformance suite, each test in a fresh
//! schema dropped afterwards, and what only a shared store has to get right (two replicas
//! at once, the late-commit gap, schema versions).
//!
//! The server is `ROLLCALL_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::{EventType, Timestamp, User};

use super::{append, schema, PgOptions};
use crate::conformance::{batch, event, Harness};
use crate::{Advance, IngestOutcome, Store, StoreError};

fn server_url() -> String {
    std::env::var("ROLLCALL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh schema for one test, dropped when the test ends.
struct PgHarness {
    options: PgOptions,
}

impl PgHarness {
    fn new() -> Self {
        Self {
            options: PgOptions {
                url: server_url(),
                schema: format!("rollcall_test_{:016x}", rand::random::<u64>()),
                pool_size: 4,
            },
        }
    }

    /// A raw connection to the test's schema.
    async fn connect(&self) -> tokio_postgres::Client {
        let mut config: tokio_postgres::Config = self.options.url.parse().unwrap();
        config.options(format!("-c search_path={}", self.options.schema));
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn open(&self) -> Store {
        Store::open_postgres(&self.options).await.unwrap()
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        let url = self.options.url.clone();
        let schema = self.options.schema.clone();
        // Drop runs inside the test's runtime: clean up from a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let config: tokio_postgres::Config = url.parse().unwrap();
                let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .unwrap();
            });
        });
        let _ = cleanup.join();
    }
}

crate::conformance_suite!(PgHarness::new());

fn updated(id: &str, user: &str, name: &str) -> rollcall_core::UserEvent {
    rollcall_core::UserEvent {
        event_type: EventType::Updated,
        user: User {
            name: Some(name.to_owned()),
            ..User::with_id(user)
        },
        ..event(id, user)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_at_two_replicas_at_once_is_accepted_once() {
    let harness = PgHarness::new();
    let (one, two) = (harness.open().await, harness.open().await);
    let mut races = Vec::new();
    for n in 0..40 {
        let (one, two) = (one.clone(), two.clone());
        races.push(tokio::spawn(async move {
            let key = format!("k{n}");
            let (a, b) = tokio::join!(
                one.ingest(batch(&key, &[&format!("a{n}")])),
                two.ingest(batch(&key, &[&format!("b{n}")]))
            );
            (a.unwrap(), b.unwrap())
        }));
    }
    for race in races {
        let outcomes = race.await.unwrap();
        match outcomes {
            (
                IngestOutcome::Accepted { event_ids },
                IngestOutcome::Duplicate { event_ids: seen },
            )
            | (
                IngestOutcome::Duplicate { event_ids: seen },
                IngestOutcome::Accepted { event_ids },
            ) => {
                assert_eq!(event_ids, seen, "the duplicate names the accepted events")
            }
            other => panic!("accepted once and a duplicate once, not {other:?}"),
        }
    }
    assert_eq!(one.journal_after(0, 1000).await.unwrap().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_updating_one_user_at_once_lose_no_update() {
    let harness = PgHarness::new();
    let (one, two) = (harness.open().await, harness.open().await);
    one.ingest(batch("created", &["e0"])).await.unwrap();
    let mut writers = Vec::new();
    for (replica, store) in [("a", one.clone()), ("b", two.clone())] {
        writers.push(tokio::spawn(async move {
            let mut sends = Vec::new();
            for n in 0..30 {
                let store = store.clone();
                sends.push(tokio::spawn(async move {
                    let mut delivery = batch(&format!("{replica}{n}"), &[]);
                    delivery.events = vec![updated(
                        &format!("{replica}-e{n}"),
                        "u1",
                        &format!("{replica}-{n}"),
                    )];
                    store.ingest(delivery).await.unwrap()
                }));
            }
            for send in sends {
                assert!(matches!(
                    send.await.unwrap(),
                    IngestOutcome::Accepted { .. }
                ));
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // Every update counted, and each one's `previous` is the user the commit before it left.
    assert_eq!(one.user("src", "u1").await.unwrap().version, 61);
    let journal = one.journal_after(0, 1000).await.unwrap();
    assert_eq!(journal.len(), 61);
    for pair in journal.windows(2) {
        let (before, after) = (pair[0].decode().unwrap(), pair[1].decode().unwrap());
        assert_eq!(
            after.previous.and_then(|user| user.name),
            before.user.name,
            "seq {} follows seq {}",
            pair[1].seq,
            pair[0].seq
        );
    }
    let last = journal.last().unwrap().decode().unwrap();
    assert_eq!(
        two.user("src", "u1").await.unwrap().user.name,
        last.user.name
    );
}

/// Moves a simulated delivery position the way a worker does: everything `journal_after`
/// returns is delivered and the position jumps to the last of it.
async fn deliver(store: &Store, position: &mut i64, delivered: &mut Vec<i64>) {
    for entry in store.journal_after(*position, 100).await.unwrap() {
        delivered.push(entry.seq);
        *position = entry.seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_sequence_committing_after_a_higher_one_is_still_delivered() {
    let harness = PgHarness::new();
    let store = harness.open().await;
    // Transaction A takes its sequence number first and stays open.
    let mut first = harness.connect().await;
    let tx_a = first.transaction().await.unwrap();
    let last = append::lock_counter(&tx_a).await.unwrap();
    let (_, seq_a) = append::append(&tx_a, last, vec![batch("a", &["ea"])])
        .await
        .unwrap();
    assert_eq!(seq_a, 1);

    // Transaction B, on another connection (another replica), appends and commits.
    let mut second = harness.connect().await;
    let second_pid: i32 = second
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let b = tokio::spawn(async move {
        let tx_b = second.transaction().await.unwrap();
        let last = append::lock_counter(&tx_b).await.unwrap();
        let (_, seq_b) = append::append(&tx_b, last, vec![batch("b", &["eb"])])
            .await
            .unwrap();
        tx_b.commit().await.unwrap();
        seq_b
    });
    // Until B either finished or is seen waiting for A's lock.
    let observer = harness.connect().await;
    loop {
        let waiting = observer
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                &[&second_pid],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            > 0;
        if waiting || b.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }

    // A worker delivers what it can see now, then A commits, then the worker goes on.
    let (mut position, mut delivered) = (0, Vec::new());
    deliver(&store, &mut position, &mut delivered).await;
    tx_a.commit().await.unwrap();
    let seq_b = b.await.unwrap();
    assert_eq!(seq_b, 2, "B numbered its event after A's");
    deliver(&store, &mut position, &mut delivered).await;
    assert_eq!(delivered, [1, 2], "no event skipped, none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_this_rollcall_is_refused() {
    let harness = PgHarness::new();
    let store = harness.open().await;
    store.close().await;
    let newer = i32::try_from(schema::MIGRATIONS.len() + 1).unwrap();
    harness
        .connect()
        .await
        .execute("UPDATE schema_version SET version = $1", &[&newer])
        .await
        .unwrap();
    match Store::open_postgres(&harness.options).await {
        Err(StoreError::Open { message, location }) => {
            assert!(
                message.contains("newer than this rollcall knows"),
                "{message}"
            );
            assert!(location.contains(&harness.options.schema), "{location}");
        }
        other => panic!("refused, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let harness = PgHarness::new();
    let (one, two) = tokio::join!(harness.open(), harness.open());
    one.ingest(batch("k", &["e"])).await.unwrap();
    assert_eq!(two.journal_after(0, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_on_one_replica_share_commits() {
    let harness = PgHarness::new();
    let store = harness.open().await;
    let before = store.commit_stats();
    let mut sends = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        sends.push(tokio::spawn(async move {
            store
                .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
                .await
                .unwrap()
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
    let after = store.commit_stats();
    assert_eq!(after.writes - before.writes, 200);
    assert!(
        after.commits - before.commits < 200,
        "some ingests shared a transaction: {after:?}"
    );
    let seqs: Vec<i64> = store
        .journal_after(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.seq)
        .collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_hears_of_commits_made_by_another() {
    let harness = PgHarness::new();
    let (one, two) = (harness.open().await, harness.open().await);
    let mut committed = two.subscribe();
    assert_eq!(*committed.borrow_and_update(), 0);
    one.ingest(batch("k", &["e1", "e2"])).await.unwrap();
    // Bounded by the poll interval; the generous limit only keeps a broken build from
    // hanging.
    tokio::time::timeout(Duration::from_secs(30), async {
        while *committed.borrow_and_update() < 2 {
            committed.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_passes_between_replicas_only_after_it_expires_and_fences_the_old_holder() {
    let harness = PgHarness::new();
    let (one, two) = (harness.open().await, harness.open().await);
    for n in 1..=2 {
        one.ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    let t0 = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
    let later = Timestamp::from_unix_seconds(1_800_000_031).unwrap();
    let ttl = Duration::from_secs(30);
    let held = one
        .acquire_lease("crm", "replica-1", ttl, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        two.acquire_lease("crm", "replica-2", ttl, t0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(one.advance(&held, 0, 1).await.unwrap(), Advance::Moved);
    // Replica 1 dies; once its lease expired replica 2 takes over where it left off.
    let taken = two
        .acquire_lease("crm", "replica-2", ttl, later)
        .await
        .unwrap()
        .unwrap();
    assert!(taken.token > held.token);
    assert_eq!(taken.position, 1);
    assert!(matches!(
        one.advance(&held, 1, 2).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(two.advance(&taken, 1, 2).await.unwrap(), Advance::Moved);
    assert_eq!(one.position("crm").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schema_name_or_url_is_refused_without_echoing_the_password() {
    let mut options = PgHarness::new().options.clone();
    options.schema = "Bad-Name".into();
    assert!(matches!(
        Store::open_postgres(&options).await,
        Err(StoreError::Open { .. })
    ));
    let options = PgOptions {
        url: "postgres://rollcall:hunter2@127.0.0.1:1/test".into(),
        schema: "rollcall".into(),
        pool_size: 2,
    };
    let error = Store::open_postgres(&options)
        .await
        .unwrap_err()
        .to_string();
    assert!(!error.contains("hunter2"), "{error}");
    assert!(error.contains("127.0.0.1:1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_replica_cannot_hold_the_journal_lock_for_long() {
    let harness = PgHarness::new();
    let backend = super::PgBackend::open(&harness.options).await.unwrap();
    let client = backend.client().await.unwrap();
    let setting = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    // The session of a replica that stops talking mid-transaction is ended, releasing its
    // locks; a waiter gives up (503) instead of hanging behind it.
    assert_eq!(setting("idle_in_transaction_session_timeout").await, "10s");
    assert_eq!(setting("lock_timeout").await, "10s");
    assert_eq!(setting("search_path").await, harness.options.schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_quarantine_and_replay_work_the_same_from_either_replica() {
    let harness = PgHarness::new();
    let (one, two) = (harness.open().await, harness.open().await);
    one.ingest(batch("k1", &["e1"])).await.unwrap();
    let lease = one
        .acquire_lease(
            "crm",
            "replica-1",
            Duration::from_secs(60),
            Timestamp::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let entry = one.journal_entry(1).await.unwrap();
    one.dead_letter(&lease, &entry, 3, "HTTP 400", 0)
        .await
        .unwrap();
    // An operator on replica 2 asks for the replay; the lease holder on replica 1 sees it.
    assert_eq!(
        two.request_replay(Some("crm".into()), vec![])
            .await
            .unwrap(),
        1
    );
    let pending = one.pending_replays("crm", 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.event_id, "e1");
    // Quarantined on one replica, replayed through the other.
    let id = two
        .quarantine(crate::conformance::rejected(Timestamp::now(), b"{}"))
        .await
        .unwrap();
    assert!(matches!(
        one.resolve_quarantine(id, batch("k2", &["e2"]))
            .await
            .unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    assert_eq!(two.journal_after(1, 10).await.unwrap()[0].event_id, "e2");
}
