//! The conformance suite: the behaviour the store contract promises, written once and run
//! against every backend.
//!
//! A backend's tests provide a [`Harness`] (how to open a fresh store, and to open the same
//! store again) and expand [`conformance_suite!`](crate::conformance_suite) once; every
//! function here becomes a test of that backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::{EventType, Timestamp, User, UserEvent, VendorEvent};

use crate::{
    Advance, DeadLetterState, IngestBatch, IngestOutcome, PrunePolicy, QuarantineState,
    RejectedDelivery, Store, StoreError, SyncBatch, SyncChange, SyncCounts, SyncState, UserQuery,
};

/// How a backend's tests give the suite its stores.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens the harness's store: empty the first time, and the same data on every later
    /// call (after [`Backend::close`] of the previous handle), as a restarted process sees it.
    async fn open(&self) -> Store;
}

/// Expands to one `#[tokio::test]` per conformance check, each with a fresh harness from
/// `$harness` (an expression evaluated once per test).
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr) => {
        $crate::conformance_suite!(@each $harness;
            a_repeated_dedup_key_is_a_duplicate_with_the_first_event_ids,
            the_same_key_on_another_source_is_not_a_duplicate,
            committed_events_survive_a_reopen,
            subscribers_see_the_latest_committed_sequence,
            dead_letters_advance_the_position_and_replay_on_request,
            rewind_moves_the_position_back_to_the_time_given,
            quarantine_keeps_the_delivery_and_replay_commits_its_events,
            writes_after_close_fail_cleanly,
            the_directory_completes_updates_with_previous_and_changes,
            a_deleted_user_is_a_tombstone_hidden_from_listings_by_default,
            users_are_found_by_username_or_primary_email,
            old_delivered_events_are_pruned_and_undelivered_ones_kept_even_when_old,
            a_sink_without_a_position_keeps_everything,
            dead_lettered_events_are_kept_until_replayed,
            dedup_keys_older_than_their_window_are_pruned_and_the_key_is_accepted_again,
            the_directory_and_sequence_numbers_survive_pruning,
            replayed_quarantine_entries_are_pruned_and_open_ones_kept,
            a_big_backlog_is_pruned_in_batches_each_its_own_commit,
            a_position_moves_only_from_where_the_worker_saw_it,
            rewind_cuts_by_sequence_even_when_a_replay_kept_an_old_receive_time,
            a_lease_is_held_by_one_holder_until_it_expires,
            a_lost_lease_cannot_move_the_position,
            a_released_lease_is_free_at_once,
            the_directory_follows_many_events_of_one_user_in_one_delivery,
            large_events_read_back_exactly,
            states_parse_from_their_names,
            open_quarantine_entries_expire_by_age_and_by_size,
            parked_events_are_kept_until_delivered_or_dead_lettered,
            parked_events_survive_pruning_and_a_lost_lease_cannot_park,
            a_new_sink_starts_where_it_is_told_and_an_existing_one_keeps_its_position,
            a_pause_is_kept_until_resumed,
            a_sink_paused_before_its_first_run_still_starts_now,
            a_sync_commits_only_changes_whose_user_is_at_the_expected_version,
            the_sync_state_is_saved_with_its_page_and_survives_a_reopen,
            a_sync_state_without_changes_commits_no_event
        );
    };
    (@each $harness:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let harness = $harness;
                $crate::conformance::$name(&harness).await;
            }
        )+
    };
}

/// A `user.created` event `id` for user `user` of source `src`.
pub fn event(id: &str, user: &str) -> UserEvent {
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

/// A delivery of source `src` with dedup key `key`: one event per id, all for user `u1`.
pub fn batch(key: &str, ids: &[&str]) -> IngestBatch {
    IngestBatch {
        source: "src".to_owned(),
        dedup_key: key.to_owned(),
        received_at: Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
        events: ids.iter().map(|id| event(id, "u1")).collect(),
    }
}

pub async fn a_repeated_dedup_key_is_a_duplicate_with_the_first_event_ids(harness: &dyn Harness) {
    let store = harness.open().await;
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

pub async fn the_same_key_on_another_source_is_not_a_duplicate(harness: &dyn Harness) {
    let store = harness.open().await;
    store.ingest(batch("k", &["e1"])).await.unwrap();
    let mut other = batch("k", &["e2"]);
    other.source = "other".into();
    assert!(matches!(
        store.ingest(other).await.unwrap(),
        IngestOutcome::Accepted { .. }
    ));
}

pub async fn committed_events_survive_a_reopen(harness: &dyn Harness) {
    {
        let store = harness.open().await;
        store.ingest(batch("k1", &["e1"])).await.unwrap();
        store.set_position("sink", 1).await.unwrap();
        store.close().await;
    }
    let store = harness.open().await;
    assert_eq!(store.journal_after(0, 10).await.unwrap().len(), 1);
    assert_eq!(store.position("sink").await.unwrap(), 1);
    assert_eq!(*store.subscribe().borrow(), 1);
    assert!(matches!(
        store.ingest(batch("k1", &["e9"])).await.unwrap(),
        IngestOutcome::Duplicate { .. }
    ));
}

pub async fn subscribers_see_the_latest_committed_sequence(harness: &dyn Harness) {
    let store = harness.open().await;
    let mut committed = store.subscribe();
    assert_eq!(*committed.borrow_and_update(), 0);
    store.ingest(batch("k1", &["e1", "e2"])).await.unwrap();
    committed.changed().await.unwrap();
    assert_eq!(*committed.borrow(), 2);
}

pub async fn dead_letters_advance_the_position_and_replay_on_request(harness: &dyn Harness) {
    let store = harness.open().await;
    store.ingest(batch("k1", &["e1"])).await.unwrap();
    let entry = store.journal_entry(1).await.unwrap();
    store
        .dead_letter(&lease(&store, "crm").await, &entry, 5, "HTTP 400", 0)
        .await
        .unwrap();
    assert_eq!(store.position("crm").await.unwrap(), 1);
    let letters = store
        .dead_letters(Some("crm".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].state, DeadLetterState::Dead);
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
    assert_eq!(letters[0].state, DeadLetterState::Replayed);
    assert!(store.pending_replays("crm", 10).await.unwrap().is_empty());
}

pub async fn rewind_moves_the_position_back_to_the_time_given(harness: &dyn Harness) {
    let store = harness.open().await;
    for (n, seconds) in [(1, 100), (2, 200), (3, 300)] {
        let mut b = batch(&format!("k{n}"), &[&format!("e{n}")]);
        b.received_at = Timestamp::from_unix_seconds(seconds).unwrap();
        store.ingest(b).await.unwrap();
    }
    store.set_position("archive", 3).await.unwrap();
    let cursor = store
        .rewind("archive", Timestamp::from_unix_seconds(200).unwrap())
        .await
        .unwrap();
    assert_eq!(cursor, 1);
    assert_eq!(store.position("archive").await.unwrap(), 1);
}

pub async fn quarantine_keeps_the_delivery_and_replay_commits_its_events(harness: &dyn Harness) {
    let store = harness.open().await;
    let id = store
        .quarantine(RejectedDelivery {
            path: Some("id".into()),
            headers: vec![("content-type".into(), "application/json".into())],
            ..rejected(Timestamp::from_unix_seconds(1_700_000_000).unwrap(), b"{}")
        })
        .await
        .unwrap();
    let open_entries = store
        .quarantined(Some(QuarantineState::Open), 10)
        .await
        .unwrap();
    assert_eq!(open_entries.len(), 1);
    assert_eq!(open_entries[0].delivery.body, b"{}");
    let outcome = store
        .resolve_quarantine(id, batch("k", &["e1"]))
        .await
        .unwrap();
    assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
    assert_eq!(
        store.quarantined_by_id(id).await.unwrap().state,
        QuarantineState::Replayed
    );
    // A second replay of the same entry is refused and commits nothing.
    assert!(store
        .resolve_quarantine(id, batch("k9", &["e9"]))
        .await
        .is_err());
    assert_eq!(store.journal_after(0, 10).await.unwrap().len(), 1);
}

pub async fn writes_after_close_fail_cleanly(harness: &dyn Harness) {
    let store = harness.open().await;
    store.close().await;
    assert!(matches!(
        store.ingest(batch("k", &["e"])).await,
        Err(StoreError::Closed)
    ));
}

/// The lease of `sink` for holder `worker-a`, for a minute from now.
async fn lease(store: &Store, sink: &str) -> crate::Lease {
    store
        .acquire_lease(sink, "worker-a", Duration::from_secs(60), Timestamp::now())
        .await
        .unwrap()
        .expect("the lease is free")
}

fn user_event(id: &str, event_type: EventType, user: User) -> UserEvent {
    UserEvent {
        event_type,
        user,
        ..event(id, "unused")
    }
}

pub async fn the_directory_completes_updates_with_previous_and_changes(harness: &dyn Harness) {
    let store = harness.open().await;
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

pub async fn a_deleted_user_is_a_tombstone_hidden_from_listings_by_default(harness: &dyn Harness) {
    let store = harness.open().await;
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

pub async fn users_are_found_by_username_or_primary_email(harness: &dyn Harness) {
    let store = harness.open().await;
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

/// A delivery of source `src` that failed normalization, received at `received_at`, with
/// `body` as its kept body.
pub fn rejected(received_at: Timestamp, body: &[u8]) -> RejectedDelivery {
    RejectedDelivery {
        source: "src".into(),
        connector: "test".into(),
        received_at,
        code: "payload_invalid".into(),
        message: "bad".into(),
        path: None,
        method: "POST".into(),
        headers: Vec::new(),
        query: None,
        body: body.to_vec(),
    }
}

/// Now minus `hours`.
pub fn hours_ago(hours: i64) -> Timestamp {
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

pub async fn old_delivered_events_are_pruned_and_undelivered_ones_kept_even_when_old(
    harness: &dyn Harness,
) {
    let store = harness.open().await;
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
    store.set_position("fast", 4).await.unwrap();
    store.set_position("slow", 2).await.unwrap();

    let report = store
        .prune(journal_policy(hours_ago(168), &["fast", "slow"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 2);
    assert!(report.complete);
    // 3 is old but undelivered to `slow`; 4 is delivered but recent.
    assert_eq!(journal_seqs(&store).await, [3, 4]);

    store.set_position("slow", 4).await.unwrap();
    let report = store
        .prune(journal_policy(hours_ago(168), &["fast", "slow"]))
        .await
        .unwrap();
    assert_eq!(report.journal_events, 1);
    assert_eq!(journal_seqs(&store).await, [4]);
}

pub async fn a_sink_without_a_position_keeps_everything(harness: &dyn Harness) {
    let store = harness.open().await;
    store
        .ingest(batch_at("k1", &["e1", "e2"], hours_ago(200)))
        .await
        .unwrap();
    store.set_position("archive", 2).await.unwrap();
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

pub async fn dead_lettered_events_are_kept_until_replayed(harness: &dyn Harness) {
    let store = harness.open().await;
    store
        .ingest(batch_at("k1", &["e1", "e2", "e3"], hours_ago(200)))
        .await
        .unwrap();
    let first = store.journal_entry(1).await.unwrap();
    let second = store.journal_entry(2).await.unwrap();
    store
        .dead_letter(&lease(&store, "crm").await, &first, 8, "HTTP 400", 0)
        .await
        .unwrap();
    let second_letter = store
        .dead_letter(
            &lease(&store, "crm").await,
            &second,
            8,
            "HTTP 400",
            first.seq,
        )
        .await
        .unwrap()
        .expect("the cursor was where the worker saw it");
    store.set_position("crm", 3).await.unwrap();

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
    assert_eq!(letters[0].state, DeadLetterState::Dead);
    assert_eq!(journal_seqs(&store).await, [1]);
}

pub async fn dedup_keys_older_than_their_window_are_pruned_and_the_key_is_accepted_again(
    harness: &dyn Harness,
) {
    let store = harness.open().await;
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

pub async fn the_directory_and_sequence_numbers_survive_pruning(harness: &dyn Harness) {
    let store = harness.open().await;
    let mut first = batch_at("k1", &[], hours_ago(200));
    first.events = vec![user_event("e1", EventType::Created, User::with_id("7"))];
    store.ingest(first).await.unwrap();
    let mut second = batch_at("k2", &[], hours_ago(200));
    second.events = vec![user_event("e2", EventType::Deleted, User::with_id("7"))];
    store.ingest(second).await.unwrap();
    store.set_position("sink", 2).await.unwrap();

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
    drop(store);
    let store = harness.open().await;
    assert_eq!(*store.subscribe().borrow(), 2);
    store.ingest(batch("k3", &["e3"])).await.unwrap();
    assert_eq!(journal_seqs(&store).await, [3]);
}

pub async fn replayed_quarantine_entries_are_pruned_and_open_ones_kept(harness: &dyn Harness) {
    let store = harness.open().await;
    let entry = |n: i64| rejected(hours_ago(200 + n), b"{}");
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

pub async fn a_big_backlog_is_pruned_in_batches_each_its_own_commit(harness: &dyn Harness) {
    let store = harness.open().await;
    for n in 0..25 {
        let ids: Vec<String> = (0..100).map(|i| format!("e{n}-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        store
            .ingest(batch_at(&format!("k{n}"), &ids, hours_ago(200)))
            .await
            .unwrap();
    }
    store.set_position("sink", 2_500).await.unwrap();

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

    let before = store.commit_stats();
    let report = store
        .prune(PrunePolicy {
            batch: 400,
            ..journal_policy(hours_ago(168), &["sink"])
        })
        .await
        .unwrap();
    let after = store.commit_stats();
    assert_eq!(report.journal_events, 1_900);
    assert!(report.complete);
    // 400 x 4 + 300 for the journal, then one (empty) batch each for quarantine and dead
    // letters. Every batch is a job of its own and a commit of its own: the write lock is
    // never held across batches.
    assert_eq!(report.batches, 7);
    assert_eq!(after.writes - before.writes, 7);
    assert_eq!(after.commits - before.commits, 7);
    assert_eq!(store.counts().await.unwrap().journal_events, 0);
}

pub async fn a_position_moves_only_from_where_the_worker_saw_it(harness: &dyn Harness) {
    let store = harness.open().await;
    for n in 1..=3 {
        store
            .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    let held = lease(&store, "crm").await;
    assert_eq!(store.advance(&held, 0, 2).await.unwrap(), Advance::Moved);
    // An operator rewinds while the worker still believes the cursor is at 2.
    store
        .rewind("crm", Timestamp::from_unix_seconds(0).unwrap())
        .await
        .unwrap();
    assert_eq!(
        store.advance(&held, 2, 3).await.unwrap(),
        Advance::PositionChanged
    );
    assert_eq!(store.position("crm").await.unwrap(), 0);
    let entry = store.journal_entry(3).await.unwrap();
    assert_eq!(
        store
            .dead_letter(&lease(&store, "crm").await, &entry, 1, "x", 2)
            .await
            .unwrap(),
        None
    );
    assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
}

pub async fn rewind_cuts_by_sequence_even_when_a_replay_kept_an_old_receive_time(
    harness: &dyn Harness,
) {
    let store = harness.open().await;
    for (n, seconds) in [(1, 100), (2, 200), (3, 300)] {
        let mut b = batch(&format!("k{n}"), &[&format!("e{n}")]);
        b.received_at = Timestamp::from_unix_seconds(seconds).unwrap();
        store.ingest(b).await.unwrap();
    }
    // A quarantine replay commits late (seq 4) with its original, older receive time.
    let mut replayed = batch("k4", &["e4"]);
    replayed.received_at = Timestamp::from_unix_seconds(50).unwrap();
    store.ingest(replayed).await.unwrap();
    store.set_position("archive", 4).await.unwrap();
    let cursor = store
        .rewind("archive", Timestamp::from_unix_seconds(200).unwrap())
        .await
        .unwrap();
    assert_eq!(
        cursor, 1,
        "events 2 and 3 (and the replay after them) are sent again"
    );
}

pub async fn a_lease_is_held_by_one_holder_until_it_expires(harness: &dyn Harness) {
    let store = harness.open().await;
    let t0 = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
    let at = |seconds: i64| Timestamp::from_unix_millis(t0.unix_millis() + seconds * 1000).unwrap();
    let ttl = Duration::from_secs(30);
    let first = store
        .acquire_lease("crm", "a", ttl, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.holder.as_str(), first.position), ("a", 0));
    // Another holder is refused while the lease runs.
    assert_eq!(
        store.acquire_lease("crm", "b", ttl, at(29)).await.unwrap(),
        None
    );
    // The holder renews: same token, later expiry.
    let renewed = store
        .acquire_lease("crm", "a", ttl, at(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renewed.token, first.token);
    assert!(renewed.expires_at > first.expires_at);
    // Not renewed in time: another holder takes it over with a new fencing token.
    let taken = store
        .acquire_lease("crm", "b", ttl, at(51))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.holder, "b");
    assert!(taken.token > first.token);
    // Leases are per sink.
    assert!(store
        .acquire_lease("other", "a", ttl, at(51))
        .await
        .unwrap()
        .is_some());
}

pub async fn a_lost_lease_cannot_move_the_position(harness: &dyn Harness) {
    let store = harness.open().await;
    for n in 1..=3 {
        store
            .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    let t0 = Timestamp::now();
    let later = Timestamp::from_unix_millis(t0.unix_millis() + 120_000).unwrap();
    let ttl = Duration::from_secs(60);
    let stale = store
        .acquire_lease("crm", "a", ttl, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.advance(&stale, 0, 1).await.unwrap(), Advance::Moved);
    // `a` stalls past its expiry; `b` takes over and delivers from where `a` left off.
    let current = store
        .acquire_lease("crm", "b", ttl, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.position, 1);
    // `a` wakes up and tries to record its progress: fenced off, nothing moves.
    assert!(matches!(
        store.advance(&stale, 1, 3).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let entry = store.journal_entry(2).await.unwrap();
    assert!(matches!(
        store.dead_letter(&stale, &entry, 1, "x", 1).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
    assert_eq!(store.position("crm").await.unwrap(), 1);
    assert_eq!(store.advance(&current, 1, 3).await.unwrap(), Advance::Moved);
    assert_eq!(store.position("crm").await.unwrap(), 3);
}

pub async fn a_released_lease_is_free_at_once(harness: &dyn Harness) {
    let store = harness.open().await;
    let t0 = Timestamp::now();
    let ttl = Duration::from_secs(60);
    let first = store
        .acquire_lease("crm", "a", ttl, t0)
        .await
        .unwrap()
        .unwrap();
    store.release_lease(&first).await.unwrap();
    let next = store
        .acquire_lease("crm", "b", ttl, t0)
        .await
        .unwrap()
        .unwrap();
    assert!(next.token > first.token);
    // Releasing a lease one no longer holds changes nothing.
    store.release_lease(&first).await.unwrap();
    assert_eq!(
        store.acquire_lease("crm", "c", ttl, t0).await.unwrap(),
        None
    );
}

pub async fn the_directory_follows_many_events_of_one_user_in_one_delivery(harness: &dyn Harness) {
    let store = harness.open().await;
    let mut delivery = batch("k1", &[]);
    delivery.events = (1..=5)
        .map(|n| {
            user_event(
                &format!("e{n}"),
                if n == 1 {
                    EventType::Created
                } else {
                    EventType::Updated
                },
                User {
                    name: Some(format!("Name {n}")),
                    ..User::with_id("7")
                },
            )
        })
        .collect();
    store.ingest(delivery).await.unwrap();
    let journal = store.journal_after(0, 10).await.unwrap();
    assert_eq!(journal.len(), 5);
    for (n, entry) in journal.iter().enumerate().skip(1) {
        let event = entry.decode().unwrap();
        assert_eq!(
            event.previous.and_then(|user| user.name),
            Some(format!("Name {n}")),
            "event {}",
            n + 1
        );
    }
    assert_eq!(store.user("src", "7").await.unwrap().version, 5);
}

pub async fn large_events_read_back_exactly(harness: &dyn Harness) {
    let store = harness.open().await;
    let remote: serde_json::Map<String, serde_json::Value> = (0..200)
        .map(|n| {
            (
                format!("field_{n}"),
                serde_json::json!(format!("value {n} \u{e9}\u{1F600}")),
            )
        })
        .collect();
    let user = User {
        remote_data: Some(serde_json::Value::Object(remote).into()),
        ..User::with_id("7")
    };
    let mut delivery = batch("k1", &[]);
    delivery.events = vec![user_event("e1", EventType::Created, user.clone())];
    store.ingest(delivery).await.unwrap();
    let entry = store.journal_entry(1).await.unwrap();
    assert_eq!(entry.decode().unwrap().user, user);
    assert_eq!(store.user("src", "7").await.unwrap().user, user);
    let (listed, _) = store
        .users(UserQuery {
            limit: 10,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].user, user);
}

pub async fn states_parse_from_their_names(_harness: &dyn Harness) {
    for state in QuarantineState::ALL {
        assert_eq!(state.as_str().parse::<QuarantineState>().unwrap(), *state);
    }
    for state in DeadLetterState::ALL {
        assert_eq!(state.as_str().parse::<DeadLetterState>().unwrap(), *state);
    }
    assert!(matches!(
        "gone".parse::<DeadLetterState>(),
        Err(StoreError::Invalid(_))
    ));
}

pub async fn open_quarantine_entries_expire_by_age_and_by_size(harness: &dyn Harness) {
    let store = harness.open().await;
    let kept = |received_at: Timestamp, bytes: usize| rejected(received_at, &vec![b'x'; bytes]);
    let old = store.quarantine(kept(hours_ago(800), 100)).await.unwrap();
    let replayed_old = store.quarantine(kept(hours_ago(800), 100)).await.unwrap();
    store
        .resolve_quarantine(replayed_old, batch("k1", &["e1"]))
        .await
        .unwrap();
    let recent: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(store.quarantine(kept(hours_ago(1), 1_000)).await.unwrap());
        }
        ids
    };
    // By age: the old open entry goes; the replayed one is retention's business, not this.
    let report = store
        .prune(PrunePolicy {
            open_quarantine_older_than: Some(hours_ago(720)),
            ..PrunePolicy::new(None, None, Vec::<String>::new())
        })
        .await
        .unwrap();
    assert_eq!(report.quarantine_expired, 1);
    assert!(matches!(
        store.quarantined_by_id(old).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.quarantined_by_id(replayed_old).await.unwrap().state,
        QuarantineState::Replayed
    );
    // By size: 4,000 bytes open, a 2,500-byte cap: the two oldest go.
    let report = store
        .prune(PrunePolicy {
            open_quarantine_max_bytes: Some(2_500),
            ..PrunePolicy::new(None, None, Vec::<String>::new())
        })
        .await
        .unwrap();
    assert_eq!(report.quarantine_expired, 2);
    let open: Vec<i64> = store
        .quarantined(Some(QuarantineState::Open), 10)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(open, [recent[3], recent[2]]);
}

fn at(unix_millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(unix_millis).unwrap()
}

fn parked_at(seq: i64, user: &str, attempts: u32) -> crate::ParkedEvent {
    crate::ParkedEvent {
        sink: "crm".into(),
        seq,
        user_key: user.into(),
        attempts,
        first_failed_at: (attempts > 0).then(|| at(1_800_000_000_000)),
        next_attempt_at: at(1_800_000_060_000),
        error: if attempts > 0 {
            "HTTP 503".into()
        } else {
            String::new()
        },
    }
}

pub async fn parked_events_are_kept_until_delivered_or_dead_lettered(harness: &dyn Harness) {
    let store = harness.open().await;
    for n in 1..=3 {
        store
            .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    let lease = lease(&store, "crm").await;
    store.park(&lease, &parked_at(1, "s/u1", 1)).await.unwrap();
    store.park(&lease, &parked_at(3, "s/u1", 0)).await.unwrap();
    assert_eq!(store.advance(&lease, 0, 3).await.unwrap(), Advance::Moved);
    // A later attempt replaces the record.
    let mut retried = parked_at(1, "s/u1", 2);
    retried.error = "HTTP 502".into();
    store.park(&lease, &retried).await.unwrap();
    let parked = store.parked("crm").await.unwrap();
    assert_eq!(parked, vec![retried, parked_at(3, "s/u1", 0)]);
    assert!(store.parked("other").await.unwrap().is_empty());
    // Delivered: forgotten. Past the horizon: a dead letter, the position unmoved.
    store.unpark(&lease, 3).await.unwrap();
    let entry = store.journal_entry(1).await.unwrap();
    let id = store
        .record_dead_letter(&lease, &entry, 9, "horizon exhausted")
        .await
        .unwrap();
    assert!(store.parked("crm").await.unwrap().is_empty());
    let letters = store
        .dead_letters(Some("crm".into()), None, 10)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].id, letters[0].seq, letters[0].attempts),
        (id, 1, 9)
    );
    assert_eq!(store.position("crm").await.unwrap(), 3);
}

pub async fn parked_events_survive_pruning_and_a_lost_lease_cannot_park(harness: &dyn Harness) {
    let store = harness.open().await;
    let old = hours_ago(48);
    for n in 1..=3 {
        store
            .ingest(batch_at(&format!("k{n}"), &[&format!("e{n}")], old))
            .await
            .unwrap();
    }
    let t0 = Timestamp::now();
    let ttl = Duration::from_secs(60);
    let stale = store
        .acquire_lease("crm", "a", ttl, t0)
        .await
        .unwrap()
        .unwrap();
    store.park(&stale, &parked_at(2, "s/u2", 1)).await.unwrap();
    assert_eq!(store.advance(&stale, 0, 3).await.unwrap(), Advance::Moved);
    store
        .prune(journal_policy(hours_ago(24), &["crm"]))
        .await
        .unwrap();
    assert_eq!(journal_seqs(&store).await, vec![2]);
    // Another holder takes over: the old one can neither park nor forget.
    let later = Timestamp::from_unix_millis(t0.unix_millis() + 120_000).unwrap();
    let current = store
        .acquire_lease("crm", "b", ttl, later)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        store.park(&stale, &parked_at(3, "s/u3", 1)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        store.unpark(&stale, 2).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(store.parked("crm").await.unwrap().len(), 1);
    store.unpark(&current, 2).await.unwrap();
    store
        .prune(journal_policy(hours_ago(24), &["crm"]))
        .await
        .unwrap();
    assert!(journal_seqs(&store).await.is_empty());
}

pub async fn a_new_sink_starts_where_it_is_told_and_an_existing_one_keeps_its_position(
    harness: &dyn Harness,
) {
    let store = harness.open().await;
    for n in 1..=3 {
        store
            .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    assert_eq!(store.start_at("new", 3).await.unwrap(), 3);
    assert_eq!(store.position("new").await.unwrap(), 3);
    // A sink with a position keeps it: `start` only decides a sink's first position.
    store.set_position("old", 1).await.unwrap();
    assert_eq!(store.start_at("old", 3).await.unwrap(), 1);
    assert_eq!(store.start_at("new", 0).await.unwrap(), 3);
    let lease = lease(&store, "new").await;
    assert_eq!(lease.position, 3);
}

pub async fn a_pause_is_kept_until_resumed(harness: &dyn Harness) {
    {
        let store = harness.open().await;
        assert!(!store.paused("crm").await.unwrap());
        store.set_paused("crm", true).await.unwrap();
        assert!(store.paused("crm").await.unwrap());
        let lease = lease(&store, "crm").await;
        assert_eq!(lease.position, 0);
        assert!(
            store.paused("crm").await.unwrap(),
            "a lease does not resume"
        );
        store.close().await;
    }
    let store = harness.open().await;
    assert!(
        store.paused("crm").await.unwrap(),
        "a pause survives a restart"
    );
    store.set_paused("crm", false).await.unwrap();
    assert!(!store.paused("crm").await.unwrap());
}

pub async fn a_sink_paused_before_its_first_run_still_starts_now(harness: &dyn Harness) {
    let store = harness.open().await;
    for n in 0..3 {
        store
            .ingest(batch(&format!("k{n}"), &[&format!("e{n}")]))
            .await
            .unwrap();
    }
    // Paused (and resumed) before its worker ever ran: still a new sink.
    store.set_paused("new", true).await.unwrap();
    store.set_paused("new", false).await.unwrap();
    store.set_paused("new", true).await.unwrap();
    assert_eq!(store.start_at("new", 3).await.unwrap(), 3);
    assert_eq!(store.position("new").await.unwrap(), 3);
    assert!(
        store.paused("new").await.unwrap(),
        "start_at keeps the pause"
    );
    // Once it has a position, a later `start_at` keeps it.
    assert_eq!(store.start_at("new", 0).await.unwrap(), 3);
    store.set_paused("new", false).await.unwrap();
    assert_eq!(store.start_at("new", 0).await.unwrap(), 3);
    // A position an operator set on a paused sink is a position too.
    store.set_paused("moved", true).await.unwrap();
    store.set_position("moved", 1).await.unwrap();
    assert_eq!(store.start_at("moved", 3).await.unwrap(), 1);
    // So is one a worker reached (start = "beginning") while the sink had only a pause.
    store.set_paused("worked", true).await.unwrap();
    let lease = lease(&store, "worked").await;
    assert_eq!(store.advance(&lease, 0, 2).await.unwrap(), Advance::Moved);
    assert_eq!(store.start_at("worked", 3).await.unwrap(), 2);
}

fn sync_state(cursor: Option<&str>, listed: u64) -> SyncState {
    SyncState {
        source: "src".to_owned(),
        cursor: cursor.map(rollcall_core::ListCursor::new),
        run_started_at: Some(Timestamp::from_unix_seconds(1_700_000_000).unwrap()),
        counts: SyncCounts {
            listed,
            ..SyncCounts::default()
        },
        ..SyncState::default()
    }
}

fn sync_batch(changes: Vec<SyncChange>, state: SyncState) -> SyncBatch {
    SyncBatch {
        source: "src".to_owned(),
        received_at: Timestamp::from_unix_seconds(1_700_000_100).unwrap(),
        changes,
        state,
    }
}

pub async fn a_sync_commits_only_changes_whose_user_is_at_the_expected_version(
    harness: &dyn Harness,
) {
    let store = harness.open().await;
    // User 7 is known at version 1 (a webhook); user 8 is unknown.
    let mut first = batch("k1", &[]);
    first.events = vec![user_event("e1", EventType::Created, User::with_id("7"))];
    store.ingest(first).await.unwrap();
    let named = |id: &str| User {
        name: Some("Synced".into()),
        ..User::with_id(id)
    };
    let changes = vec![
        // Compared with version 1: still current, committed.
        SyncChange {
            event: user_event("s1", EventType::Updated, named("7")),
            expected_version: Some(1),
        },
        // Compared with "absent", but 7 exists: a webhook got there first.
        SyncChange {
            event: user_event("s2", EventType::Created, named("7")),
            expected_version: None,
        },
        // Absent and still absent: committed.
        SyncChange {
            event: user_event("s3", EventType::Created, named("8")),
            expected_version: None,
        },
        // Compared with a version the user is no longer at (s1 moved it to 2).
        SyncChange {
            event: user_event("s4", EventType::Updated, User::with_id("7")),
            expected_version: Some(1),
        },
    ];
    let commit = store
        .commit_sync(sync_batch(changes, sync_state(None, 2)))
        .await
        .unwrap();
    assert_eq!(commit.event_ids, vec!["s1".to_owned(), "s3".to_owned()]);
    assert_eq!(commit.conflicts, vec!["7".to_owned(), "7".to_owned()]);

    let journal = store.journal_after(0, 10).await.unwrap();
    assert_eq!(journal.len(), 3);
    let update = journal[1].decode().unwrap();
    assert_eq!(update.id, "s1");
    assert_eq!(update.previous, Some(User::with_id("7")));
    assert_eq!(update.changes.unwrap()[0].field, "name");
    assert_eq!(store.user("src", "7").await.unwrap().version, 2);
    assert_eq!(
        store.user("src", "8").await.unwrap().user.name.as_deref(),
        Some("Synced")
    );
}

pub async fn the_sync_state_is_saved_with_its_page_and_survives_a_reopen(harness: &dyn Harness) {
    let store = harness.open().await;
    assert_eq!(store.sync_state("src").await.unwrap(), None);
    let change = SyncChange {
        event: user_event("s1", EventType::Created, User::with_id("7")),
        expected_version: None,
    };
    let state = sync_state(Some("page-2"), 1);
    store
        .commit_sync(sync_batch(vec![change], state.clone()))
        .await
        .unwrap();
    let mut other = sync_state(None, 0);
    other.source = "another".to_owned();
    store
        .commit_sync(SyncBatch {
            source: "another".to_owned(),
            ..sync_batch(Vec::new(), other.clone())
        })
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = harness.open().await;
    assert_eq!(store.sync_state("src").await.unwrap(), Some(state.clone()));
    assert_eq!(store.sync_states().await.unwrap(), vec![other, state]);
    assert_eq!(store.journal_after(0, 10).await.unwrap().len(), 1);
    // A batch may not save another source's state.
    let error = store
        .commit_sync(sync_batch(Vec::new(), SyncState::default()))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid(_)), "{error:?}");
}

pub async fn a_sync_state_without_changes_commits_no_event(harness: &dyn Harness) {
    let store = harness.open().await;
    let mut watch = store.subscribe();
    let before = *watch.borrow_and_update();
    let mut finished = sync_state(None, 3);
    finished.last_complete_at = Some(Timestamp::from_unix_seconds(1_700_000_200).unwrap());
    finished.last_error = None;
    let commit = store
        .commit_sync(sync_batch(Vec::new(), finished.clone()))
        .await
        .unwrap();
    assert!(commit.event_ids.is_empty() && commit.conflicts.is_empty());
    assert_eq!(store.counts().await.unwrap().last_seq, before);
    assert_eq!(store.sync_state("src").await.unwrap(), Some(finished));
}
