//! The values the store contract speaks in; none of them names a backend.

use std::fmt;
use std::str::FromStr;

use rollcall_core::{Timestamp, User, UserEvent};
use serde::Serialize;

use crate::{Result, StoreError};

/// The events of one verified delivery, to be committed together with its dedup key.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub source: String,
    pub dedup_key: String,
    pub received_at: Timestamp,
    pub events: Vec<UserEvent>,
}

/// What happened to an [`IngestBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum IngestOutcome {
    /// Committed: the events are in the journal.
    Accepted { event_ids: Vec<String> },
    /// The dedup key was seen before; these are the events it produced then.
    Duplicate { event_ids: Vec<String> },
}

/// One journal entry, as a sink receives it.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    pub seq: i64,
    pub event_id: String,
    pub source: String,
    pub event_type: String,
    pub received_at_ms: i64,
    /// The `UserEvent` as JSON.
    pub event: Vec<u8>,
}

impl JournalEntry {
    pub fn decode(&self) -> Result<UserEvent> {
        Ok(serde_json::from_slice(&self.event)?)
    }
}

/// A delivery that verified but could not be normalized: what quarantine keeps so it can be
/// re-run after a fix.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedDelivery {
    pub source: String,
    pub connector: String,
    pub received_at: Timestamp,
    /// The error code and message normalization gave, and where in the payload.
    pub code: String,
    pub message: String,
    pub path: Option<String>,
    pub method: String,
    /// Headers minus anything that carries a secret.
    pub headers: Vec<(String, String)>,
    /// The query string minus secret parameters.
    pub query: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

impl RejectedDelivery {
    /// The request again, as kept (credentials were not), for a re-run after a fix.
    pub fn to_delivery(&self) -> rollcall_core::Delivery {
        let mut delivery =
            rollcall_core::Delivery::new(self.source.clone(), self.body.clone(), self.received_at)
                .with_method(self.method.clone());
        for (name, value) in &self.headers {
            delivery.headers.insert(name.as_str(), value.as_str());
        }
        delivery.query = self.query.clone();
        delivery
    }
}

/// Declares a state enum with its stable snake_case names (serialized, parsed, stored).
macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(StoreError::Invalid(format!(
                        "unknown {} {other:?} (expected one of: {})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

state_enum! {
    /// Where a quarantined delivery is in its life.
    QuarantineState {
        /// Waiting for a fix and a replay.
        Open => "open",
        /// Replayed: its events (if any) are in the journal.
        Replayed => "replayed",
    }
}

state_enum! {
    /// Where a dead letter is in its life.
    DeadLetterState {
        /// The sink could not take the event; waiting for an operator.
        Dead => "dead",
        /// An operator asked for a replay; the sink's worker will send it.
        Replay => "replay",
        /// Sent again successfully.
        Replayed => "replayed",
    }
}

/// A quarantined delivery as stored.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedDelivery {
    pub id: i64,
    #[serde(flatten)]
    pub delivery: RejectedDelivery,
    pub body_bytes: usize,
    pub state: QuarantineState,
}

/// An event a sink could not take.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub sink: String,
    pub seq: i64,
    pub event_id: String,
    pub failed_at: Timestamp,
    pub attempts: u32,
    pub error: String,
    pub state: DeadLetterState,
}

/// Counts for health and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreCounts {
    pub journal_events: i64,
    pub last_seq: i64,
    pub quarantined_open: i64,
    pub dead_letters: i64,
}

/// Counters that show group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    /// Transactions committed.
    pub commits: u64,
    /// Write operations committed (several share one commit).
    pub writes: u64,
}

/// The right to deliver one sink's events, held by one worker at a time until it expires.
///
/// `token` is a fencing token: it grows every time the lease passes to a new holder (or is
/// re-granted after expiring), and every position change names it, so a worker that lost
/// its lease (paused, partitioned, presumed dead) cannot move the position any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub sink: String,
    pub holder: String,
    pub token: i64,
    /// The sink's delivery position when the lease was granted or renewed: everything up to
    /// it is finished.
    pub position: i64,
    pub expires_at: Timestamp,
}

/// An event a sink's worker set aside because its user's line is held by a transient
/// failure: the position moves past it, and the worker retries it from this record (in
/// sequence order per user) until it is delivered, rejected or past the sink's horizon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedEvent {
    pub sink: String,
    pub seq: i64,
    /// The line the event waits in: its source and user id (`source/user-id`).
    pub user_key: String,
    /// Attempts made so far (0 for an event parked behind an earlier one of its user).
    pub attempts: u32,
    /// The first failed attempt: the sink's horizon counts from it.
    pub first_failed_at: Option<Timestamp>,
    /// When the next attempt is due.
    pub next_attempt_at: Timestamp,
    /// The last error, scrubbed (empty while the event only waits behind another).
    pub error: String,
}

/// What an attempt to move a delivery position did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The position moved.
    Moved,
    /// The position was no longer where the holder saw it (an operator rewound it): nothing
    /// moved; start again from the new position.
    PositionChanged,
}

/// One user as the directory knows it.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryEntry {
    pub source: String,
    pub version: i64,
    pub deleted: bool,
    /// True while rollcall has only seen partial events for the user.
    pub partial: bool,
    pub updated_at: Timestamp,
    pub user: User,
}

/// A directory listing: filters and a page.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub source: Option<String>,
    pub status: Option<String>,
    /// Exact match on the username, else the primary email (case-insensitive).
    pub user_name: Option<String>,
    pub include_deleted: bool,
    /// Zero-based offset.
    pub offset: u32,
    pub limit: u32,
}

/// What [`crate::RetentionStore::prune`] may delete.
#[derive(Debug, Clone)]
pub struct PrunePolicy {
    /// Journal events received before this instant are deleted once every sink in `sinks`
    /// has finished with them and no dead letter that is not `replayed` refers to them.
    /// Replayed quarantine entries and replayed dead letters whose replay was before this
    /// instant go too. `None` keeps all of them.
    pub journal_older_than: Option<Timestamp>,
    /// Dedup keys recorded before this instant are deleted; a repeat of their delivery is
    /// then accepted as new. `None` keeps them.
    pub dedup_older_than: Option<Timestamp>,
    /// Open (never replayed) quarantine entries received before this instant are deleted:
    /// signed junk or an event type nobody will support must not fill the disk. `None`
    /// keeps them until replayed.
    pub open_quarantine_older_than: Option<Timestamp>,
    /// The most the bodies of open quarantine entries may take together, in bytes; beyond
    /// it the oldest are deleted. `None`: no cap.
    pub open_quarantine_max_bytes: Option<u64>,
    /// Rows deleted per write (at least 1).
    pub batch: u32,
    /// Writes per kind of row per call, at most (at least 1). A call that reaches it
    /// reports `complete: false`; call again for the rest.
    pub max_batches: u32,
    /// The configured sinks. The smallest of their positions bounds the journal deletion; a
    /// sink without a position yet counts as 0, so nothing goes before it has started.
    /// With no sinks no journal row is deleted (nothing has been delivered). Positions of
    /// sinks not listed (removed from the configuration) are ignored.
    pub sinks: Vec<String>,
}

impl PrunePolicy {
    /// Rows per write by default: a few milliseconds of deletion in one commit.
    pub const DEFAULT_BATCH: u32 = 1000;
    /// Writes per kind of row per call by default.
    pub const DEFAULT_MAX_BATCHES: u32 = 100;

    /// A policy with the default batch size and cap.
    pub fn new(
        journal_older_than: Option<Timestamp>,
        dedup_older_than: Option<Timestamp>,
        sinks: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            journal_older_than,
            dedup_older_than,
            open_quarantine_older_than: None,
            open_quarantine_max_bytes: None,
            batch: Self::DEFAULT_BATCH,
            max_batches: Self::DEFAULT_MAX_BATCHES,
            sinks: sinks.into_iter().map(Into::into).collect(),
        }
    }
}

/// What one prune call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub journal_events: u64,
    pub dedup_keys: u64,
    pub quarantined: u64,
    pub dead_letters: u64,
    /// Open quarantine entries deleted by age or by the size cap (never replayed).
    pub quarantine_expired: u64,
    /// Writes (each its own short transaction or group-commit share) the call used.
    pub batches: u32,
    /// False when the per-call cap stopped a kind of row with more possibly left.
    pub complete: bool,
}

impl PruneReport {
    /// Rows deleted, all kinds together.
    pub fn total(&self) -> u64 {
        self.journal_events
            + self.dedup_keys
            + self.quarantined
            + self.dead_letters
            + self.quarantine_expired
    }
}

/// What a source's sync (backfill or reconciliation) has done and where an unfinished
/// listing resumes. One per source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncState {
    pub source: String,
    /// Where the listing of the run in progress resumes; `None` when no run is unfinished
    /// (the next run starts from the first page).
    pub cursor: Option<rollcall_core::ListCursor>,
    /// When the run in progress (or the last run) started listing.
    pub run_started_at: Option<Timestamp>,
    /// When the last run ended, complete or not.
    pub last_run_at: Option<Timestamp>,
    /// When a listing last completed without error (and its deletions were decided).
    pub last_complete_at: Option<Timestamp>,
    /// What the run in progress (or the last run) counted.
    pub counts: SyncCounts,
    /// Why the last run stopped short; `None` after a run that completed.
    pub last_error: Option<String>,
}

/// Users a sync run has seen, by what it did with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncCounts {
    /// Users the vendor listed.
    pub listed: u64,
    /// `user.created` events committed (users the directory lacked or had deleted).
    pub created: u64,
    /// `user.updated` events committed (users that differed).
    pub updated: u64,
    /// `user.deleted` events committed (users the vendor no longer lists).
    pub deleted: u64,
    /// Listed users identical to the directory's.
    pub unchanged: u64,
    /// Listed users older than the directory's (a webhook brought a newer state), or changed
    /// by a webhook between the comparison and the commit: left alone.
    pub stale: u64,
}

/// One event of a sync, with the directory state it was computed from.
#[derive(Debug, Clone)]
pub struct SyncChange {
    pub event: UserEvent,
    /// The directory version of the user the sync compared with; `None` when the directory
    /// had no record of the user. The event is committed only if the user is still at that
    /// version, so a webhook committed in between is never overwritten by an older listing.
    pub expected_version: Option<i64>,
}

/// A page of a sync: its events and the source's sync state after it, committed together.
#[derive(Debug, Clone)]
pub struct SyncBatch {
    pub source: String,
    pub received_at: Timestamp,
    pub changes: Vec<SyncChange>,
    pub state: SyncState,
}

/// What [`crate::SyncStore::commit_sync`] committed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncCommit {
    /// Ids of the events committed, in order.
    pub event_ids: Vec<String>,
    /// User ids whose event was not committed: the directory had moved past the expected
    /// version.
    pub conflicts: Vec<String>,
}
