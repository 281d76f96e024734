//! Initial sync (backfill) and periodic reconciliation from a vendor's user listing.
//!
//! A run lists the source's users page by page ([`Connector::list_users`]) and compares each
//! listed user with the directory, then commits, through the store's sync commit (the same
//! journal and directory as webhooks: [`SyncStore::commit_sync`]), exactly the differences:
//!
//! * `user.created` for a user the directory lacks (or holds as deleted);
//! * `user.updated` for a user whose unified fields differ, with the precise `changes` (the
//!   comparison is [`directory::apply`] itself, so it is what the commit would compute);
//! * nothing for a user that is the same (a change in the vendor's raw record alone, which
//!   is no unified field, is not an event);
//! * and, only after a listing that went from the first page to the last without an error
//!   in one run, `user.deleted` for each user the directory holds (not deleted) that the
//!   vendor no longer lists and that no event touched since the listing began.
//!
//! # Never older over newer
//!
//! A listed user whose vendor `updated_at` is older than the directory's `updated_at` for
//! that user is left alone (counted `stale`): a webhook brought a newer state than the
//! listing saw. And every event is committed only if the user's directory version is still
//! the one it was compared with; a webhook committed in between wins, and the user is
//! counted `stale` (the next run compares again).
//!
//! # Events
//!
//! A sync event says where it came from: `vendor_event.type = "rollcall.sync"`, no vendor
//! event id (the vendor sent no event), `occurred_at` absent (the vendor did not say when
//! the change happened). Its id is a ULID of the run's time, derived from the source, the
//! listed user and the run's start, like a webhook event's.
//!
//! # Resuming
//!
//! Each page's events and the cursor of the next page are committed together, so a run that
//! stops (a failed page, a crash) resumes from the page it had reached. A resumed run does
//! not know which users the earlier pages listed, so it decides no deletions; the next run,
//! from the first page, does.
//!
//! # Rate limits
//!
//! A page answered [`ListError::RateLimited`] is asked again after the vendor's
//! `Retry-After` (on tokio's clock); another transient failure is retried with a doubling
//! pause a few times, then the run stops with the error and keeps its cursor.
//!
//! [`Connector::list_users`]: rollcall_core::Connector::list_users
//! [`SyncStore::commit_sync`]: rollcall_store::SyncStore::commit_sync
//! [`directory::apply`]: rollcall_core::directory::apply

use std::collections::HashSet;
use std::time::Duration;

use rollcall_core::directory::{self, KnownUser};
use rollcall_core::{
    Delivery, EventType, ListCursor, ListError, Timestamp, User, UserEvent, UserPage, VendorEvent,
};
use rollcall_store::{StoreError, SyncBatch, SyncChange, SyncCounts, SyncState, UserQuery};
use serde::Serialize;

use crate::daemon::Source;
use crate::metrics::{Id, Metrics, SyncOutcome};

/// `vendor_event.type` of every event a sync commits.
pub const SYNC_EVENT_TYPE: &str = "rollcall.sync";

/// How a run retries a page.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How often a page is asked again after a rate limit before the run stops.
    pub rate_limited_attempts: u32,
    /// How often a page is asked again after another transient failure.
    pub transient_retries: u32,
    /// The first pause after a transient failure (doubled each time).
    pub first_retry_pause: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            rate_limited_attempts: 20,
            transient_retries: 3,
            first_retry_pause: Duration::from_secs(1),
        }
    }
}
/// The pause after a rate limit that names no time (or zero).
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);
/// Directory users read per query while deciding deletions, and deletions per commit.
const DIRECTORY_PAGE: u32 = 500;

/// Why a sync could not run at all (a listing failure is not one: it ends the run
/// incomplete, with its error in the report).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("source {source_id} cannot sync: {reason}")]
    Unsupported { source_id: String, reason: String },
    #[error("a sync of source {0} is already running")]
    Running(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    pub const fn code(&self) -> rollcall_core::ErrorCode {
        match self {
            Self::Unsupported { .. } => rollcall_core::ErrorCode::SyncUnsupported,
            Self::Running(_) => rollcall_core::ErrorCode::SyncFailed,
            Self::Store(error) => error.code(),
        }
    }
}

/// What a run did: the JSON summary of `rollcall sync` and of the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub source: String,
    /// The listing reached its last page without an error.
    pub complete: bool,
    /// The run continued an unfinished listing from its cursor.
    pub resumed: bool,
    /// Whether users the vendor no longer lists were looked for (complete and not resumed).
    pub deletions_checked: bool,
    pub pages: u64,
    #[serde(flatten)]
    pub counts: SyncCounts,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// Why the run stopped short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs one sync of `source`. `progress` is called after each committed page with the run's
/// counts so far.
pub async fn run(
    store: &rollcall_store::Store,
    source: &Source,
    metrics: &Metrics,
    progress: &mut (dyn FnMut(&SyncCounts) + Send),
) -> Result<SyncReport, SyncError> {
    run_with(store, source, metrics, progress, Pacing::default()).await
}

/// [`run`] with its own retry pacing.
pub async fn run_with(
    store: &rollcall_store::Store,
    source: &Source,
    metrics: &Metrics,
    progress: &mut (dyn FnMut(&SyncCounts) + Send),
    pacing: Pacing,
) -> Result<SyncReport, SyncError> {
    if !source.connector.lists_users() {
        return Err(SyncError::Unsupported {
            source_id: source.id.clone(),
            reason: format!(
                "connector {} has no user listing for this source (see its page in docs/connectors/)",
                source.connector_name
            ),
        });
    }
    let Ok(_running) = source.sync_lock.try_lock() else {
        return Err(SyncError::Running(source.id.clone()));
    };
    let started_at = Timestamp::now();
    let previous = store.sync_state(&source.id).await?;
    let resumed_from = previous.as_ref().and_then(|state| state.cursor.clone());
    let resumed = resumed_from.is_some();
    let mut state = match previous {
        // Resuming: the run keeps its start (deletions are not decided anyway) and counts.
        Some(previous) if resumed => previous,
        Some(previous) => SyncState {
            source: source.id.clone(),
            cursor: None,
            run_started_at: Some(started_at),
            last_run_at: previous.last_run_at,
            last_complete_at: previous.last_complete_at,
            counts: SyncCounts::default(),
            last_error: None,
        },
        None => SyncState {
            source: source.id.clone(),
            run_started_at: Some(started_at),
            ..SyncState::default()
        },
    };
    let run_started_at = state.run_started_at.unwrap_or(started_at);
    // A resumed run's counts start from what the stopped run counted (and already reported
    // as metrics): this invocation reports only what it adds.
    let counted_before = state.counts;
    let mut run = Run {
        store,
        source,
        metrics,
        run_started_at,
        listed: HashSet::new(),
        index: 0,
    };
    let mut cursor = resumed_from;
    let mut pages = 0u64;
    let mut error = None;
    loop {
        let fetched_at = Timestamp::now();
        let page = match fetch_page(source, cursor.as_ref(), pacing).await {
            Ok(page) => page,
            Err(failure) => {
                tracing::warn!(source = %source.id, error = %failure, "sync listing stopped; it resumes from its cursor");
                error = Some(failure.to_string());
                break;
            }
        };
        pages += 1;
        let changes = run
            .compare(&page.users, page.unlisted, fetched_at, &mut state.counts)
            .await?;
        state.cursor.clone_from(&page.next);
        let conflicts = run.commit(changes, &state).await?;
        for event_type in conflicts {
            state.counts.uncount(event_type);
        }
        progress(&state.counts);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let complete = error.is_none();
    let deletions_checked = complete && !resumed;
    if deletions_checked {
        run.delete_unlisted(&mut state).await?;
        progress(&state.counts);
    }
    let finished_at = Timestamp::now();
    state.last_run_at = Some(finished_at);
    state.last_error.clone_from(&error);
    if complete {
        state.cursor = None;
        state.last_complete_at = Some(finished_at);
    }
    run.commit(Vec::new(), &state).await?;
    record_metrics(metrics, &source.id, &state, &counted_before, complete);
    Ok(SyncReport {
        source: source.id.clone(),
        complete,
        resumed,
        deletions_checked,
        pages,
        counts: state.counts,
        started_at,
        finished_at,
        error,
    })
}

/// One page, asked again after rate limits and transient failures.
async fn fetch_page(
    source: &Source,
    cursor: Option<&ListCursor>,
    pacing: Pacing,
) -> Result<UserPage, ListError> {
    let mut rate_limited = 0u32;
    let mut transient = 0u32;
    loop {
        match source.connector.list_users(cursor).await {
            Ok(page) => return Ok(page),
            Err(ListError::RateLimited { retry_after })
                if rate_limited < pacing.rate_limited_attempts =>
            {
                rate_limited += 1;
                let pause = if retry_after.is_zero() {
                    DEFAULT_RATE_LIMIT_PAUSE
                } else {
                    retry_after
                };
                tracing::info!(source = %source.id, wait_ms = pause.as_millis() as u64, "sync rate limited by the vendor; waiting");
                tokio::time::sleep(pause).await;
            }
            Err(error) if error.is_retryable() && transient < pacing.transient_retries => {
                let pause = pacing.first_retry_pause * 2u32.pow(transient);
                transient += 1;
                tracing::info!(source = %source.id, error = %error, wait_ms = pause.as_millis() as u64, "sync page failed; retrying");
                tokio::time::sleep(pause).await;
            }
            Err(error) => return Err(error),
        }
    }
}

struct Run<'a> {
    store: &'a rollcall_store::Store,
    source: &'a Source,
    metrics: &'a Metrics,
    run_started_at: Timestamp,
    /// Ids the vendor listed in this run.
    listed: HashSet<String>,
    /// Events built so far, for their ids.
    index: usize,
}

impl Run<'_> {
    /// The events a page's users call for, each with the directory version it was compared
    /// with.
    async fn compare(
        &mut self,
        users: &[User],
        unlisted: &[&str],
        fetched_at: Timestamp,
        counts: &mut SyncCounts,
    ) -> Result<Vec<SyncChange>, StoreError> {
        let mut changes = Vec::new();
        for listed in users {
            if listed.id.is_empty() || !self.listed.insert(listed.id.clone()) {
                // A user listed twice (a listing that shifted under concurrent changes) is
                // compared once.
                continue;
            }
            counts.listed += 1;
            let known = match self.store.user(&self.source.id, &listed.id).await {
                Ok(entry) => Some(entry),
                Err(StoreError::NotFound { .. }) => None,
                Err(error) => return Err(error),
            };
            let Some(entry) = known else {
                counts.created += 1;
                changes.push(self.change(EventType::Created, listed.clone(), None));
                continue;
            };
            // An event committed since the page was asked for may be newer than what the
            // page says.
            if entry.updated_at > fetched_at {
                counts.stale += 1;
                continue;
            }
            if entry.deleted {
                counts.created += 1;
                changes.push(self.change(EventType::Created, listed.clone(), Some(entry.version)));
                continue;
            }
            let listed = &keep_unlisted(listed, unlisted, &entry.user);
            if let (Some(known_at), Some(listed_at)) = (entry.user.updated_at, listed.updated_at) {
                if listed_at < known_at {
                    counts.stale += 1;
                    continue;
                }
            }
            let record = KnownUser {
                user: entry.user,
                version: entry.version,
                deleted: entry.deleted,
                partial: entry.partial,
            };
            let mut candidate =
                self.change(EventType::Updated, listed.clone(), Some(record.version));
            directory::apply(Some(&record), &mut candidate.event);
            let differs = candidate
                .event
                .changes
                .as_ref()
                .is_some_and(|changes| !changes.is_empty());
            // A user known only partially becomes complete: that is news even when the
            // fields the webhooks told match.
            if differs || record.partial {
                counts.updated += 1;
                changes.push(self.change(EventType::Updated, listed.clone(), Some(record.version)));
            } else {
                counts.unchanged += 1;
            }
        }
        Ok(changes)
    }

    /// `user.deleted` for every user the directory holds that this run's listing lacks and
    /// no event touched since the listing began.
    async fn delete_unlisted(&mut self, state: &mut SyncState) -> Result<(), StoreError> {
        let mut offset = 0u32;
        let mut gone = Vec::new();
        loop {
            let (entries, _) = self
                .store
                .users(UserQuery {
                    source: Some(self.source.id.clone()),
                    offset,
                    limit: DIRECTORY_PAGE,
                    ..UserQuery::default()
                })
                .await?;
            let read = entries.len() as u32;
            for entry in entries {
                if !self.listed.contains(&entry.user.id) && entry.updated_at < self.run_started_at {
                    gone.push(entry);
                }
            }
            if read < DIRECTORY_PAGE {
                break;
            }
            offset += read;
        }
        for chunk in gone.chunks(DIRECTORY_PAGE as usize) {
            let changes: Vec<SyncChange> = chunk
                .iter()
                .map(|entry| {
                    // The known user, to be marked deleted by the directory.
                    self.change(EventType::Deleted, entry.user.clone(), Some(entry.version))
                })
                .collect();
            state.counts.deleted += changes.len() as u64;
            for event_type in self.commit(changes, state).await? {
                state.counts.uncount(event_type);
            }
        }
        Ok(())
    }

    fn change(
        &mut self,
        event_type: EventType,
        user: User,
        expected_version: Option<i64>,
    ) -> SyncChange {
        SyncChange {
            event: self.event(event_type, user),
            expected_version,
        }
    }

    /// A sync event: derived id, `vendor_event.type = "rollcall.sync"`, no vendor id.
    fn event(&mut self, event_type: EventType, mut user: User) -> UserEvent {
        // What the id derives from: the source (inside new_event), the run and the user.
        let seed = serde_json::json!({
            "run": self.run_started_at,
            "type": event_type.as_str(),
            "user": &user.id,
            "index": self.index,
        });
        self.index += 1;
        let delivery = Delivery::new(
            self.source.id.clone(),
            serde_json::to_vec(&seed).unwrap_or_default(),
            Timestamp::now(),
        );
        if event_type == EventType::Deleted {
            user.remote_data = None;
        }
        delivery.new_event(
            self.source.connector_name,
            0,
            event_type,
            VendorEvent {
                id: None,
                event_type: SYNC_EVENT_TYPE.to_owned(),
                occurred_at: None,
            },
            user,
        )
    }

    /// Commits `changes` with `state`; returns the types of the events left out because a
    /// webhook changed their user in between.
    async fn commit(
        &self,
        changes: Vec<SyncChange>,
        state: &SyncState,
    ) -> Result<Vec<EventType>, StoreError> {
        let types: Vec<(String, EventType)> = changes
            .iter()
            .map(|change| (change.event.user.id.clone(), change.event.event_type))
            .collect();
        let commit = self
            .store
            .commit_sync(SyncBatch {
                source: self.source.id.clone(),
                received_at: Timestamp::now(),
                changes,
                state: state.clone(),
            })
            .await?;
        if !commit.event_ids.is_empty() {
            self.metrics
                .events_accepted(&Id::new(&self.source.id))
                .inc_by(commit.event_ids.len() as u64);
        }
        let mut conflicts = Vec::with_capacity(commit.conflicts.len());
        for user_id in &commit.conflicts {
            if let Some((_, event_type)) = types.iter().find(|(id, _)| id == user_id) {
                conflicts.push(*event_type);
            }
            tracing::info!(source = %self.source.id, "a webhook changed a user during the sync; the sync leaves it");
        }
        Ok(conflicts)
    }
}

/// `listed` with the fields its listing never states taken from the directory's `known`
/// user (present or absent as known).
fn keep_unlisted(listed: &User, unlisted: &[&str], known: &User) -> User {
    if unlisted.is_empty() {
        return listed.clone();
    }
    let (Ok(serde_json::Value::Object(mut merged)), Ok(serde_json::Value::Object(known))) =
        (serde_json::to_value(listed), serde_json::to_value(known))
    else {
        return listed.clone();
    };
    for field in unlisted {
        match known.get(*field) {
            Some(value) => {
                merged.insert((*field).to_owned(), value.clone());
            }
            None => {
                merged.remove(*field);
            }
        }
    }
    serde_json::from_value(serde_json::Value::Object(merged)).unwrap_or_else(|_| listed.clone())
}

trait Uncount {
    /// Moves an event that was not committed (a conflict) from its count to `stale`.
    fn uncount(&mut self, event_type: EventType);
}

impl Uncount for SyncCounts {
    fn uncount(&mut self, event_type: EventType) {
        let count = match event_type {
            EventType::Created => &mut self.created,
            EventType::Updated => &mut self.updated,
            EventType::Deleted => &mut self.deleted,
        };
        *count = count.saturating_sub(1);
        self.stale += 1;
    }
}

/// `rollcall_sync_users_total{source,outcome}` for the run's counts, and
/// `rollcall_sync_last_success_timestamp_seconds{source}` after a complete run.
fn record_metrics(
    metrics: &Metrics,
    source: &str,
    state: &SyncState,
    before: &SyncCounts,
    complete: bool,
) {
    let source = Id::new(source);
    let counts = &state.counts;
    for (outcome, now, then) in [
        (SyncOutcome::Created, counts.created, before.created),
        (SyncOutcome::Updated, counts.updated, before.updated),
        (SyncOutcome::Deleted, counts.deleted, before.deleted),
        (SyncOutcome::Unchanged, counts.unchanged, before.unchanged),
        (SyncOutcome::Stale, counts.stale, before.stale),
    ] {
        metrics
            .sync_users(&source, outcome)
            .inc_by(now.saturating_sub(then));
    }
    if complete {
        if let Some(at) = state.last_complete_at {
            metrics
                .sync_last_success_timestamp_seconds(&source)
                .set(at.unix_millis() / 1000);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use rollcall_core::{Delivery, NormalizeError, UserStatus, VerifyError};
    use rollcall_store::{IngestBatch, Store};

    use super::*;

    type Asked = Arc<Mutex<Vec<(Option<ListCursor>, tokio::time::Instant)>>>;

    /// A connector whose listing answers from a script, one answer per call, and records
    /// when it was asked for which page.
    #[derive(Debug)]
    struct Scripted {
        answers: Mutex<VecDeque<Result<UserPage, ListError>>>,
        asked: Asked,
    }

    #[rollcall_core::async_trait]
    impl rollcall_core::Connector for Scripted {
        fn verify(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
            Ok(())
        }
        fn normalize(&self, _delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
            Ok(Vec::new())
        }
        fn lists_users(&self) -> bool {
            true
        }
        async fn list_users(&self, cursor: Option<&ListCursor>) -> Result<UserPage, ListError> {
            self.asked
                .lock()
                .unwrap()
                .push((cursor.cloned(), tokio::time::Instant::now()));
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(ListError::failed(false, "script exhausted")))
        }
    }

    fn source(answers: Vec<Result<UserPage, ListError>>) -> (Source, Asked) {
        let asked = Asked::default();
        let source = Source {
            id: "s".to_owned(),
            connector_name: "test",
            connector: Box::new(Scripted {
                answers: Mutex::new(answers.into()),
                asked: Arc::clone(&asked),
            }),
            sync_interval: None,
            sync_lock: Default::default(),
            metrics: Metrics::default().source("s"),
        };
        (source, asked)
    }

    fn user(id: &str, name: &str, updated_at: &str) -> User {
        User {
            name: Some(name.to_owned()),
            status: Some(UserStatus::Active),
            updated_at: Some(Timestamp::parse_rfc3339(updated_at).unwrap()),
            ..User::with_id(id)
        }
    }

    fn page(users: Vec<User>, next: Option<&str>) -> Result<UserPage, ListError> {
        Ok(UserPage {
            users,
            next: next.map(ListCursor::new),
            unlisted: &[],
        })
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        (dir, store)
    }

    async fn webhook(store: &Store, key: &str, event_type: EventType, user: User) {
        let mut event = rollcall_store::conformance::event(key, &user.id);
        event.source = "s".to_owned();
        event.event_type = event_type;
        event.user = user;
        store
            .ingest(IngestBatch {
                source: "s".to_owned(),
                dedup_key: key.to_owned(),
                received_at: Timestamp::now(),
                events: vec![event],
            })
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_page_is_asked_again_after_the_vendors_retry_after() {
        let (_dir, store) = store();
        let (source, asked) = source(vec![
            page(vec![user("1", "Ann", "2025-01-01T00:00:00Z")], Some("p2")),
            Err(ListError::RateLimited {
                retry_after: Duration::from_secs(7),
            }),
            page(vec![user("2", "Bob", "2025-01-01T00:00:00Z")], None),
        ]);
        let report = run(&store, &source, &Metrics::default(), &mut |_| {})
            .await
            .unwrap();
        assert!(report.complete, "{report:?}");
        assert_eq!(report.counts.created, 2);
        let asked = asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 3);
        assert_eq!(asked[1].0, Some(ListCursor::new("p2")));
        assert_eq!(
            asked[2].0,
            Some(ListCursor::new("p2")),
            "the same page again"
        );
        let waited = asked[2].1 - asked[1].1;
        assert!(
            waited >= Duration::from_secs(7) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_with_a_doubling_pause_then_the_run_stops() {
        let (_dir, store) = store();
        let failing = || Err(ListError::failed(true, "the vendor answered 503"));
        let (source, asked) = source(vec![failing(), failing(), failing(), failing()]);
        let report = run(&store, &source, &Metrics::default(), &mut |_| {})
            .await
            .unwrap();
        assert!(!report.complete);
        assert_eq!(report.error.as_deref(), Some("the vendor answered 503"));
        let times: Vec<_> = asked.lock().unwrap().iter().map(|(_, at)| *at).collect();
        let pauses: Vec<u64> = times
            .windows(2)
            .map(|pair| (pair[1] - pair[0]).as_secs())
            .collect();
        assert_eq!(pauses, [1, 2, 4]);
        let state = store.sync_state("s").await.unwrap().unwrap();
        assert_eq!(state.last_error.as_deref(), Some("the vendor answered 503"));
        assert_eq!(state.last_complete_at, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listing_older_than_a_webhooks_state_leaves_the_user_alone() {
        let (_dir, store) = store();
        // A webhook brought Ann's newer state (updated at noon).
        webhook(
            &store,
            "w1",
            EventType::Created,
            user("1", "Ann B.", "2025-01-01T12:00:00Z"),
        )
        .await;
        let before = store.counts().await.unwrap().last_seq;
        // The listing still shows her as of the morning.
        let (source, _) = source(vec![page(
            vec![user("1", "Ann", "2025-01-01T08:00:00Z")],
            None,
        )]);
        let report = run(&store, &source, &Metrics::default(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!((report.counts.stale, report.counts.updated), (1, 0));
        assert_eq!(store.counts().await.unwrap().last_seq, before);
        assert_eq!(
            store.user("s", "1").await.unwrap().user.name.as_deref(),
            Some("Ann B.")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_changed_by_a_webhook_after_the_page_was_fetched_is_left_alone() {
        let (_dir, store) = store();
        let (source, _) = source(Vec::new());
        let mut run = Run {
            store: &store,
            source: &source,
            metrics: &Metrics::default(),
            run_started_at: Timestamp::now(),
            listed: HashSet::new(),
            index: 0,
        };
        let fetched_at = Timestamp::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The webhook lands between the page's fetch and the comparison.
        webhook(&store, "w1", EventType::Created, User::with_id("1")).await;
        let mut counts = SyncCounts::default();
        let changes = run
            .compare(
                &[user("1", "Ann", "2025-01-01T00:00:00Z")],
                &[],
                fetched_at,
                &mut counts,
            )
            .await
            .unwrap();
        assert!(changes.is_empty());
        assert_eq!(counts.stale, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_a_webhook_created_during_the_listing_is_not_deleted() {
        let (_dir, store) = store();
        webhook(&store, "w0", EventType::Created, User::with_id("old")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (source, _) = source(vec![page(Vec::new(), None)]);
        let mut run = Run {
            store: &store,
            source: &source,
            metrics: &Metrics::default(),
            run_started_at: Timestamp::now(),
            listed: HashSet::new(),
            index: 0,
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        webhook(&store, "w1", EventType::Created, User::with_id("new")).await;
        let mut state = SyncState {
            source: "s".to_owned(),
            ..SyncState::default()
        };
        run.delete_unlisted(&mut state).await.unwrap();
        assert_eq!(state.counts.deleted, 1);
        assert!(store.user("s", "old").await.unwrap().deleted);
        assert!(!store.user("s", "new").await.unwrap().deleted);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_without_a_listing_cannot_sync_and_one_sync_runs_at_a_time() {
        let (_dir, store) = store();
        #[derive(Debug)]
        struct NoListing;
        #[rollcall_core::async_trait]
        impl rollcall_core::Connector for NoListing {
            fn verify(&self, _delivery: &Delivery) -> Result<(), VerifyError> {
                Ok(())
            }
            fn normalize(&self, _delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
                Ok(Vec::new())
            }
        }
        let plain = Source {
            id: "plain".to_owned(),
            connector_name: "test",
            connector: Box::new(NoListing),
            sync_interval: None,
            sync_lock: Default::default(),
            metrics: Metrics::default().source("plain"),
        };
        let error = run(&store, &plain, &Metrics::default(), &mut |_| {})
            .await
            .unwrap_err();
        assert_eq!(error.code(), rollcall_core::ErrorCode::SyncUnsupported);

        let (source, _) = source(vec![page(Vec::new(), None)]);
        let _held = source.sync_lock.lock().await;
        let error = run(&store, &source, &Metrics::default(), &mut |_| {})
            .await
            .unwrap_err();
        assert!(matches!(error, SyncError::Running(_)), "{error:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fields_a_listing_never_states_keep_what_the_directory_knows() {
        let (_dir, store) = store();
        let grouped = User {
            groups: Some(vec![rollcall_core::Group {
                id: Some("g1".into()),
                name: Some("Engineering".into()),
                organization: None,
            }]),
            ..user("1", "Ann", "2025-01-01T00:00:00Z")
        };
        webhook(&store, "w1", EventType::Created, grouped.clone()).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let before = store.counts().await.unwrap().last_seq;
        let (source, _) = source(vec![Ok(UserPage {
            users: vec![user("1", "Ann", "2025-01-01T00:00:00Z")],
            next: None,
            unlisted: &["groups", "roles"],
        })]);
        let report = run(&store, &source, &Metrics::default(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(report.counts.unchanged, 1, "{report:?}");
        assert_eq!(store.counts().await.unwrap().last_seq, before);
        assert_eq!(
            store.user("s", "1").await.unwrap().user.groups,
            grouped.groups
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_events_say_so_and_carry_no_vendor_id() {
        let (_dir, store) = store();
        let (source, _) = source(vec![page(
            vec![user("1", "Ann", "2025-01-01T00:00:00Z")],
            None,
        )]);
        let metrics = Metrics::default();
        run(&store, &source, &metrics, &mut |_| {}).await.unwrap();
        let event = store.journal_after(0, 10).await.unwrap()[0]
            .decode()
            .unwrap();
        assert_eq!(event.vendor_event.event_type, SYNC_EVENT_TYPE);
        assert_eq!(event.vendor_event.id, None);
        assert_eq!(event.vendor_event.occurred_at, None);
        assert_eq!(event.event_type, EventType::Created);
        assert!(!event.partial);
        let source = Id::new("s");
        assert_eq!(metrics.sync_users(&source, SyncOutcome::Created).get(), 1);
        assert_eq!(metrics.events_accepted(&source).get(), 1);
        assert!(metrics.sync_last_success_timestamp_seconds(&source).get() > 0);
    }
}
