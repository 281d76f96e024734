use rollcall_core::{EventType, User, UserEvent, VendorEvent};

use super::*;

fn event(id: &str, user: &str) -> UserEvent {
    UserEvent {
        id: id.to_owned(),
        event_type: EventType::Created,
        source: "src".to_owned(),
        connector: "test".to_owned(),
        vendor_event: VendorEvent {
            id: None,
            event_type: "created".to_owned(),
            occurred_at: None,
        },
        received_at: Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
        actor: None,
        user: User::with_id(user),
        previous: None,
        changes: None,
        partial: false,
    }
}

fn batch(key: &str, ids: &[&str]) -> IngestBatch {
    IngestBatch {
        source: "src".to_owned(),
        dedup_key: key.to_owned(),
        received_at: Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
        events: ids.iter().map(|id| event(id, "u1")).collect(),
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("data/rollcall.db")).unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_repeated_dedup_key_is_a_duplicate_with_the_first_event_ids() {
    let (_dir, store) = open();
    let first = store.ingest(batch("k1", &["e1", "e2"])).await.unwrap();
    assert_eq!(
        first,
        IngestOutcome::Accepted {
            event_ids: vec!["e1".into(), "e2".into()]
        }
    );
    let again = store.ingest(batch("k1", &["e3"])).await.unwrap();
    assert_eq!(
        again,
        IngestOutcome::Duplicate {
            event_ids: vec!["e1".into(), "e2".into()]
        }
    );
    let journal = store.journal_after(0, 10).await.unwrap();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[1].decode().unwrap().id, "e2");
}

#[tokio::test]
async fn the_same_key_on_another_source_is_not_a_duplicate() {
    let (_dir, store) = open();
    store.ingest(batch("k", &["e1"])).await.unwrap();
    let mut other = batch("k", &["e2"]);
    other.source = "other".into();
    assert!(matches!(
        store.ingest(other).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
}

#[tokio::test]
async fn committed_events_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollcall.db");
    {
        let store = Store::open(&path).unwrap();
        store.ingest(batch("k1", &["e1"])).await.unwrap();
        store.advance_cursor("sink", 1).await.unwrap();
        store.close().await;
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.journal_after(0, 10).await.unwrap().len(), 1);
    assert_eq!(store.cursor("sink").await.unwrap(), 1);
    assert_eq!(*store.subscribe().borrow(), 1);
    assert!(matches!(
        store.ingest(batch("k1", &["e9"])).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_one_commit() {
    let (_dir, store) = open();
    let resume = store.writer.pause().await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
                .await
        }));
    }
    // Let every task queue its job behind the pause.
    while store.writer.queued() < 50 {
        tokio::task::yield_now().await;
    }
    let before = store.writer_stats();
    resume.send(()).unwrap();
    for task in tasks {
        assert!(matches!(
            task.await.unwrap().unwrap(),
            IngestOutcome::Accepted { .. }
        ));
    }
    let after = store.writer_stats();
    assert_eq!(after.jobs - before.jobs, 50);
    assert_eq!(after.commits - before.commits, 1);
}

#[tokio::test]
async fn a_failing_job_does_not_undo_the_others_in_its_commit() {
    let (_dir, store) = open();
    store.ingest(batch("k1", &["e1"])).await.unwrap();
    let resume = store.writer.pause().await;
    let good = {
        let store = store.clone();
        tokio::spawn(async move { store.ingest(batch("k2", &["e2"])).await })
    };
    // Same event id under a new key: violates the journal's unique event_id.
    let bad = {
        let store = store.clone();
        tokio::spawn(async move { store.ingest(batch("k3", &["e1"])).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    resume.send(()).unwrap();
    assert!(good.await.unwrap().is_ok());
    assert!(bad.await.unwrap().is_err());
    let ids: Vec<_> = store
        .journal_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.event_id)
        .collect();
    assert_eq!(ids, ["e1", "e2"]);
    // The failed delivery left no dedup key behind, so the vendor's retry is not lost.
    assert!(matches!(
        store.ingest(batch("k3", &["e3"])).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
}

#[tokio::test]
async fn subscribers_see_the_latest_committed_sequence() {
    let (_dir, store) = open();
    let mut committed = store.subscribe();
    assert_eq!(*committed.borrow_and_update(), 0);
    store.ingest(batch("k1", &["e1", "e2"])).await.unwrap();
    committed.changed().await.unwrap();
    assert_eq!(*committed.borrow(), 2);
}

#[tokio::test]
async fn dead_letters_advance_the_cursor_and_replay_on_request() {
    let (_dir, store) = open();
    store.ingest(batch("k1", &["e1"])).await.unwrap();
    let entry = store.journal_entry(1).await.unwrap();
    store
        .dead_letter("crm", &entry, 5, "HTTP 400", 0)
        .await
        .unwrap();
    assert_eq!(store.cursor("crm").await.unwrap(), 1);
    let letters = store
        .dead_letters(Some("crm".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].state, "dead");
    assert_eq!(
        store
            .request_replay(Some("crm".into()), vec![])
            .await
            .unwrap(),
        1
    );
    let pending = store.pending_replays("crm", 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.event_id, "e1");
    store.finish_replay(pending[0].0.id, None).await.unwrap();
    let letters = store.dead_letters(None, None, 10).await.unwrap();
    assert_eq!(letters[0].state, "replayed");
    assert!(store.pending_replays("crm", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn rewind_moves_the_cursor_back_to_the_time_given() {
    let (_dir, store) = open();
    for (n, seconds) in [(1, 100), (2, 200), (3, 300)] {
        let mut b = batch(&format!("k{n}"), &[&format!("e{n}")]);
        b.received_at = Timestamp::from_unix_seconds(seconds).unwrap();
        store.ingest(b).await.unwrap();
    }
    store.advance_cursor("archive", 3).await.unwrap();
    let cursor = store
        .rewind("archive", Timestamp::from_unix_seconds(200).unwrap())
        .await
        .unwrap();
    assert_eq!(cursor, 1);
    assert_eq!(store.cursor("archive").await.unwrap(), 1);
}

#[tokio::test]
async fn quarantine_keeps_the_delivery_and_replay_commits_its_events() {
    let (_dir, store) = open();
    let id = store
        .quarantine(RejectedDelivery {
            source: "src".into(),
            connector: "test".into(),
            received_at: Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
            code: "payload_invalid".into(),
            message: "bad".into(),
            path: Some("id".into()),
            method: "POST".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            query: None,
            body: b"{}".to_vec(),
        })
        .await
        .unwrap();
    let open_entries = store.quarantined(Some("open".into()), 10).await.unwrap();
    assert_eq!(open_entries.len(), 1);
    assert_eq!(open_entries[0].delivery.body, b"{}");
    let outcome = store
        .resolve_quarantine(id, batch("k", &["e1"]))
        .await
        .unwrap();
    assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
    assert_eq!(store.quarantined_by_id(id).await.unwrap().state, "replayed");
    // A second replay of the same entry is refused and commits nothing.
    assert!(store
        .resolve_quarantine(id, batch("k9", &["e9"]))
        .await
        .is_err());
    assert_eq!(store.journal_after(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let (_dir, store) = open();
    store.close().await;
    assert!(matches!(
        store.ingest(batch("k", &["e"])).await,
        Err(StoreError::Closed)
    ));
}

fn user_event(id: &str, event_type: EventType, user: User) -> UserEvent {
    UserEvent {
        event_type,
        user,
        ..event(id, "unused")
    }
}

#[tokio::test]
async fn the_directory_completes_updates_with_previous_and_changes() {
    let (_dir, store) = open();
    let created = User {
        name: Some("Ann".into()),
        status: Some(rollcall_core::UserStatus::Active),
        ..User::with_id("7")
    };
    let mut first = batch("k1", &[]);
    first.events = vec![user_event("e1", EventType::Created, created.clone())];
    store.ingest(first).await.unwrap();
    let updated = User {
        status: Some(rollcall_core::UserStatus::Inactive),
        ..created.clone()
    };
    let mut second = batch("k2", &[]);
    second.events = vec![user_event("e2", EventType::Updated, updated.clone())];
    store.ingest(second).await.unwrap();

    let journal = store.journal_after(0, 10).await.unwrap();
    let update = journal[1].decode().unwrap();
    assert_eq!(update.previous, Some(created));
    let changes = update.changes.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, "status");

    let entry = store.user("src", "7").await.unwrap();
    assert_eq!(entry.version, 2);
    assert_eq!(entry.user, updated);
    let (inactive, total) = store
        .users(UserQuery {
            status: Some("inactive".into()),
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((inactive.len(), total), (1, 1));
}

#[tokio::test]
async fn a_deleted_user_is_a_tombstone_hidden_from_listings_by_default() {
    let (_dir, store) = open();
    let mut first = batch("k1", &[]);
    first.events = vec![user_event("e1", EventType::Created, User::with_id("7"))];
    store.ingest(first).await.unwrap();
    let mut second = batch("k2", &[]);
    second.events = vec![user_event("e2", EventType::Deleted, User::with_id("7"))];
    store.ingest(second).await.unwrap();
    let entry = store.user("src", "7").await.unwrap();
    assert!(entry.deleted);
    let (visible, _) = store
        .users(UserQuery {
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert!(visible.is_empty());
    let (all, _) = store
        .users(UserQuery {
            include_deleted: true,
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn users_are_found_by_username_or_primary_email() {
    let (_dir, store) = open();
    let user = User {
        emails: Some(vec![rollcall_core::Email {
            email: "Ann@Example.com".into(),
            email_type: None,
            is_primary: Some(true),
        }]),
        ..User::with_id("7")
    };
    let mut first = batch("k1", &[]);
    first.events = vec![user_event("e1", EventType::Created, user)];
    store.ingest(first).await.unwrap();
    let (found, _) = store
        .users(UserQuery {
            user_name: Some("ann@example.com".into()),
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

// Retention.

fn batch_at(key: &str, ids: &[&str], received_at: Timestamp) -> IngestBatch {
    IngestBatch {
        received_at,
        ..batch(key, ids)
    }
}

fn hours_ago(hours: i64) -> Timestamp {
    Timestamp::from_unix_millis(Timestamp::now().unix_millis() - hours * 3_600_000).unwrap()
}

/// Prunes the journal (and replayed entries) older than `older_than` for `sinks`; keeps
/// dedup keys.
fn journal_policy(older_than: Timestamp, sinks: &[&str]) -> PrunePolicy {
    PrunePolicy::new(Some(older_than), None, sinks.iter().copied())
}

async fn journal_seqs(store: &Store) -> Vec<i64> {
    store
        .journal_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.seq)
        .collect()
}

#[tokio::test]
async fn old_delivered_events_are_pruned_and_undelivered_ones_kept_even_when_old() {
    let (_dir, store) = open();
    for n in 1..=3 {
        store
            .ingest(batch_at(
                &format!("k{n}"),
                &[&format!("e{n}")],
                hours_ago(200),
            ))
            .await
            .unwrap();
    }
    store
        .ingest(batch_at("k4", &["e4"], hours_ago(1)))
        .await
        .unwrap();
    // Both sinks have the recent event; `slow` has not finished 3 yet.
    store.advance_cursor("fast", 4).await.unwrap();
    store.advance_cursor("slow", 2).await.unwrap();

    let report = store
        .prune(journal_policy(hours_ago(168), &["fast", "slow"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 2);
    assert!(report.complete);
    // 3 is old but undelivered to `slow`; 4 is delivered but recent.
    assert_eq!(journal_seqs(&store).await, [3, 4]);

    store.advance_cursor("slow", 4).await.unwrap();
    let report = store
        .prune(journal_policy(hours_ago(168), &["fast", "slow"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 1);
    assert_eq!(journal_seqs(&store).await, [4]);
}

#[tokio::test]
async fn a_sink_without_a_cursor_keeps_everything() {
    let (_dir, store) = open();
    store
        .ingest(batch_at("k1", &["e1", "e2"], hours_ago(200)))
        .await
        .unwrap();
    store.advance_cursor("archive", 2).await.unwrap();
    // `crm` is configured but has not recorded a cursor yet: it has received nothing.
    let report = store
        .prune(journal_policy(hours_ago(168), &["archive", "crm"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 0);
    // No sinks at all: nothing has been delivered anywhere, so nothing goes either.
    let report = store
        .prune(journal_policy(hours_ago(168), &[]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 0);
    assert_eq!(journal_seqs(&store).await, [1, 2]);
    // The cursor of a sink no longer configured holds nothing back.
    let report = store
        .prune(journal_policy(hours_ago(168), &["archive"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 2);
}

#[tokio::test]
async fn dead_lettered_events_are_kept_until_replayed() {
    let (_dir, store) = open();
    store
        .ingest(batch_at("k1", &["e1", "e2", "e3"], hours_ago(200)))
        .await
        .unwrap();
    let first = store.journal_entry(1).await.unwrap();
    let second = store.journal_entry(2).await.unwrap();
    store
        .dead_letter("crm", &first, 8, "HTTP 400", 0)
        .await
        .unwrap();
    let second_letter = store
        .dead_letter("crm", &second, 8, "HTTP 400", first.seq)
        .await
        .unwrap()
        .expect("the cursor was where the worker saw it");
    store.advance_cursor("crm", 3).await.unwrap();

    let report = store
        .prune(journal_policy(hours_ago(168), &["crm"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 1);
    assert_eq!(journal_seqs(&store).await, [1, 2]);

    // Replay requested (state `replay`): still kept, the worker needs the event.
    store
        .request_replay(Some("crm".into()), vec![second_letter])
        .await
        .unwrap();
    let report = store
        .prune(journal_policy(hours_ago(168), &["crm"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 0);
    let pending = store.pending_replays("crm", 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.event_id, "e2");

    // Replayed: the event may go; the dead letter stays for the window after its replay.
    store.finish_replay(second_letter, None).await.unwrap();
    let report = store
        .prune(journal_policy(hours_ago(168), &["crm"]))
        .await
        .unwrap();
    assert_eq!((report.journal_events, report.dead_letters), (1, 0));
    assert_eq!(journal_seqs(&store).await, [1]);
    assert_eq!(store.dead_letters(None, None, 10).await.unwrap().len(), 2);

    // Once the replay itself is older than the window, the replayed letter goes; the open
    // one and its event stay.
    let later = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 1_000).unwrap();
    let report = store.prune(journal_policy(later, &["crm"])).await.unwrap();
    assert_eq!((report.journal_events, report.dead_letters), (0, 1));
    let letters = store.dead_letters(None, None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].state, "dead");
    assert_eq!(journal_seqs(&store).await, [1]);
}

#[tokio::test]
async fn dedup_keys_older_than_their_window_are_pruned_and_the_key_is_accepted_again() {
    let (_dir, store) = open();
    store
        .ingest(batch_at("old", &["e1"], hours_ago(800)))
        .await
        .unwrap();
    store
        .ingest(batch_at("recent", &["e2"], hours_ago(2)))
        .await
        .unwrap();
    let report = store
        .prune(PrunePolicy::new(None, Some(hours_ago(720)), ["sink"]))
        .await
        .unwrap();
    assert_eq!(report.dedup_keys, 1);
    // Without a journal window the journal is left alone.
    assert_eq!(report.journal_events, 0);
    assert_eq!(journal_seqs(&store).await, [1, 2]);

    assert!(matches!(
        store.ingest(batch("old", &["e3"])).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    assert_eq!(
        store.ingest(batch("recent", &["e4"])).await.unwrap(),
        IngestOutcome::Duplicate {
            event_ids: vec!["e2".into()]
        }
    );
}

#[tokio::test]
async fn the_directory_and_sequence_numbers_survive_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollcall.db");
    let store = Store::open(&path).unwrap();
    let mut first = batch_at("k1", &[], hours_ago(200));
    first.events = vec![user_event("e1", EventType::Created, User::with_id("7"))];
    store.ingest(first).await.unwrap();
    let mut second = batch_at("k2", &[], hours_ago(200));
    second.events = vec![user_event("e2", EventType::Deleted, User::with_id("7"))];
    store.ingest(second).await.unwrap();
    store.advance_cursor("sink", 2).await.unwrap();

    let report = store
        .prune(PrunePolicy::new(
            Some(hours_ago(1)),
            Some(hours_ago(1)),
            ["sink"],
        ))
        .await
        .unwrap();
    assert_eq!((report.journal_events, report.dedup_keys), (2, 2));
    assert!(journal_seqs(&store).await.is_empty());

    // The directory is the current state: untouched.
    let entry = store.user("src", "7").await.unwrap();
    assert_eq!(entry.version, 2);
    assert!(entry.deleted);

    // The last sequence number does not go back with an empty journal, and is never reused.
    assert_eq!(*store.subscribe().borrow(), 2);
    assert_eq!(store.counts().await.unwrap().last_seq, 2);
    store.close().await;
    let store = Store::open(&path).unwrap();
    assert_eq!(*store.subscribe().borrow(), 2);
    store.ingest(batch("k3", &["e3"])).await.unwrap();
    assert_eq!(journal_seqs(&store).await, [3]);
}

#[tokio::test]
async fn replayed_quarantine_entries_are_pruned_and_open_ones_kept() {
    let (_dir, store) = open();
    let entry = |n: i64| RejectedDelivery {
        source: "src".into(),
        connector: "test".into(),
        received_at: hours_ago(200 + n),
        code: "payload_invalid".into(),
        message: "bad".into(),
        path: None,
        method: "POST".into(),
        headers: vec![],
        query: None,
        body: b"{}".to_vec(),
    };
    let replayed = store.quarantine(entry(1)).await.unwrap();
    let open_id = store.quarantine(entry(2)).await.unwrap();
    store
        .resolve_quarantine(replayed, batch("k", &["e1"]))
        .await
        .unwrap();
    // The replay was just now: within the window, kept.
    let report = store
        .prune(journal_policy(hours_ago(168), &["sink"]))
        .await
        .unwrap();
    assert_eq!(report.quarantined, 0);
    let later = Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 1_000).unwrap();
    let report = store.prune(journal_policy(later, &["sink"])).await.unwrap();
    assert_eq!(report.quarantined, 1);
    let left: Vec<_> = store
        .quarantined(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(left, [open_id]);
}

#[tokio::test]
async fn a_big_backlog_is_pruned_in_batches_each_its_own_commit() {
    let (_dir, store) = open();
    for n in 0..25 {
        let ids: Vec<String> = (0..100).map(|i| format!("e{n}-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        store
            .ingest(batch_at(&format!("k{n}"), &ids, hours_ago(200)))
            .await
            .unwrap();
    }
    store.advance_cursor("sink", 2_500).await.unwrap();

    // A capped call deletes its share, says so, and the next call goes on.
    let capped = PrunePolicy {
        batch: 300,
        max_batches: 2,
        ..journal_policy(hours_ago(168), &["sink"])
    };
    let report = store.prune(capped).await.unwrap();
    assert_eq!(report.journal_events, 600);
    assert!(!report.complete);
    assert_eq!(store.counts().await.unwrap().journal_events, 1_900);

    let before = store.writer_stats();
    let report = store
        .prune(PrunePolicy {
            batch: 400,
            ..journal_policy(hours_ago(168), &["sink"])
        })
        .await
        .unwrap();
    let after = store.writer_stats();
    assert_eq!(report.journal_events, 1_900);
    assert!(report.complete);
    // 400 x 4 + 300 for the journal, then one (empty) batch each for quarantine and dead
    // letters. Every batch is a job of its own and a commit of its own: the write lock is
    // never held across batches.
    assert_eq!(report.batches, 7);
    assert_eq!(after.jobs - before.jobs, 7);
    assert_eq!(after.commits - before.commits, 7);
    assert_eq!(store.counts().await.unwrap().journal_events, 0);
}

#[tokio::test]
async fn pruning_shares_commits_with_ingest() {
    let (_dir, store) = open();
    store
        .ingest(batch_at("k0", &["e0"], hours_ago(200)))
        .await
        .unwrap();
    store.advance_cursor("sink", 1).await.unwrap();
    let resume = store.writer.pause().await;
    let prune = {
        let store = store.clone();
        tokio::spawn(async move { store.prune(journal_policy(hours_ago(168), &["sink"])).await })
    };
    let ingest = {
        let store = store.clone();
        tokio::spawn(async move { store.ingest(batch("k1", &["e1"])).await })
    };
    while store.writer.queued() < 2 {
        tokio::task::yield_now().await;
    }
    resume.send(()).unwrap();
    assert_eq!(prune.await.unwrap().unwrap().journal_events, 1);
    assert!(matches!(
        ingest.await.unwrap().unwrap(),
        IngestOutcome::Accepted { .. }
    ));
    assert_eq!(journal_seqs(&store).await, [2]);
}

#[tokio::test]
async fn pruning_queries_use_the_age_indexes() {
    let (_dir, store) = open();
    let db = store.reader.lock().unwrap();
    for (sql, indexes) in [
        (
            retention::JOURNAL_BATCH,
            &["journal_received_at", "dead_letters_open_seq"][..],
        ),
        (retention::DEDUP_BATCH, &["dedup_received_at"][..]),
        (retention::QUARANTINE_BATCH, &["quarantine_replayed"][..]),
        (retention::DEAD_LETTER_BATCH, &["dead_letters_replayed"][..]),
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
async fn a_cursor_moves_only_from_where_the_worker_saw_it() {
    let (_dir, store) = open();
    for n in 1..=3 {
        store
            .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    assert!(store.move_cursor("crm", 0, 2).await.unwrap());
    // An operator rewinds while the worker still believes the cursor is at 2.
    store
        .rewind("crm", Timestamp::from_unix_seconds(0).unwrap())
        .await
        .unwrap();
    assert!(!store.move_cursor("crm", 2, 3).await.unwrap());
    assert_eq!(store.cursor("crm").await.unwrap(), 0);
    let entry = store.journal_entry(3).await.unwrap();
    assert_eq!(
        store.dead_letter("crm", &entry, 1, "x", 2).await.unwrap(),
        None
    );
    assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn rewind_cuts_by_sequence_even_when_a_replay_kept_an_old_receive_time() {
    let (_dir, store) = open();
    for (n, seconds) in [(1, 100), (2, 200), (3, 300)] {
        let mut b = batch(&format!("k{n}"), &[&format!("e{n}")]);
        b.received_at = Timestamp::from_unix_seconds(seconds).unwrap();
        store.ingest(b).await.unwrap();
    }
    // A quarantine replay commits late (seq 4) with its original, older receive time.
    let mut replayed = batch("k4", &["e4"]);
    replayed.received_at = Timestamp::from_unix_seconds(50).unwrap();
    store.ingest(replayed).await.unwrap();
    store.advance_cursor("archive", 4).await.unwrap();
    let cursor = store
        .rewind("archive", Timestamp::from_unix_seconds(200).unwrap())
        .await
        .unwrap();
    assert_eq!(
        cursor, 1,
        "events 2 and 3 (and the replay after them) are sent again"
    );
}
