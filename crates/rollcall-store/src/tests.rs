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
        .dead_letter("crm", &entry, 5, "HTTP 400")
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
        .quarantine(NewQuarantine {
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
    assert_eq!(open_entries[0].body, b"{}");
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
