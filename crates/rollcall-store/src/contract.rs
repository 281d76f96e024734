//! The store contract, one trait per role. A backend implements all of them ([`Backend`]);
//! a component depends on the roles it uses.

use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::Timestamp;
use tokio::sync::watch;

use crate::{
    Advance, CommitStats, DeadLetter, DeadLetterState, DirectoryEntry, IngestBatch, IngestOutcome,
    JournalEntry, Lease, ParkedEvent, PrunePolicy, PruneReport, QuarantineState,
    QuarantinedDelivery, RejectedDelivery, Result, StoreCounts, SyncBatch, SyncCommit, SyncState,
    UserQuery,
};

/// The ingest path: durable commits of verified deliveries, and quarantine of the ones that
/// could not be normalized.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Commits a delivery's events, its dedup key and the directory update in one atomic,
    /// durable commit, unless the key was committed before for the source (then nothing is
    /// written and the first delivery's event ids are returned).
    ///
    /// Each event is completed from the directory inside the commit
    /// ([`rollcall_core::directory::apply`]): the journal keeps the event with the best-known
    /// user, its previous state and the changes.
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome>;

    /// Whether a delivery with this dedup key was already committed for the source. A hint
    /// for skipping work on vendor retries; [`IngestStore::ingest`] makes the binding check.
    async fn dedup_seen(&self, source: &str, dedup_key: &str) -> Result<bool>;

    /// Keeps a delivery that could not be normalized; returns its id.
    async fn quarantine(&self, entry: RejectedDelivery) -> Result<i64>;

    /// Marks an open quarantined delivery replayed and commits the events it now produces
    /// (with dedup), atomically. `NotFound` when it is not open.
    async fn resolve_quarantine(&self, id: i64, batch: IngestBatch) -> Result<IngestOutcome>;
}

/// Reading the journal.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Up to `limit` entries after `after_seq`, in order.
    async fn journal_after(&self, after_seq: i64, limit: u32) -> Result<Vec<JournalEntry>>;

    /// The entry with that sequence number.
    async fn journal_entry(&self, seq: i64) -> Result<JournalEntry>;

    /// The latest committed sequence number; changes after every commit that adds events.
    fn subscribe(&self) -> watch::Receiver<i64>;

    async fn counts(&self) -> Result<StoreCounts>;
}

/// Delivery positions, one per sink, moved only under a lease.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Grants `holder` the lease of `sink` until `now + ttl`, or renews it when `holder`
    /// has it already. `None` while another holder's lease has not expired at `now`. The
    /// token grows whenever the lease changes hands or is re-granted after expiring.
    async fn acquire_lease(
        &self,
        sink: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>>;

    /// Gives the lease up (at shutdown), so another holder need not wait for it to expire.
    /// Does nothing when `lease` is no longer current.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;

    /// The last sequence number `sink` has finished with (0 when it has none).
    async fn position(&self, sink: &str) -> Result<i64>;

    /// Moves `sink`'s position from `from` to `to` under `lease`. `PositionChanged` (nothing
    /// moved) when the position is no longer `from`; `LeaseLost` when the lease's token is
    /// no longer current.
    async fn advance(&self, lease: &Lease, from: i64, to: i64) -> Result<Advance>;

    /// Records a dead letter for `entry` and moves the position from `from` past it, in one
    /// commit, under `lease`. `None` (nothing recorded) when the position is no longer
    /// `from`; `LeaseLost` as for [`DeliveryStore::advance`].
    async fn dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
        from: i64,
    ) -> Result<Option<i64>>;

    /// Records `parked` (insert, or replace the record of the same sink and sequence) under
    /// `lease`. `LeaseLost` when the lease is no longer current.
    async fn park(&self, lease: &Lease, parked: &ParkedEvent) -> Result<()>;

    /// Every parked event of `sink`, in sequence order.
    async fn parked(&self, sink: &str) -> Result<Vec<ParkedEvent>>;

    /// Forgets a parked event once delivered, under `lease` (nothing when there is none).
    async fn unpark(&self, lease: &Lease, seq: i64) -> Result<()>;

    /// Records a dead letter for `entry` without moving the position (a worker with several
    /// events in flight moves it once they are all finished), and forgets the event's parked
    /// record if it has one, in one commit, under `lease`.
    async fn record_dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
    ) -> Result<i64>;

    /// Gives `sink` the position `seq` unless it has one already (a new sink configured with
    /// `start = "now"`); returns the sink's position. A pause alone gives no position: a
    /// sink paused before its worker first ran still starts at `seq`.
    async fn start_at(&self, sink: &str, seq: i64) -> Result<i64>;

    /// Whether an operator paused `sink`.
    async fn paused(&self, sink: &str) -> Result<bool>;

    /// Dead letters of `sink` an operator asked to replay, oldest first, with their events.
    async fn pending_replays(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<(DeadLetter, JournalEntry)>>;

    /// Records a replay's outcome: `replayed` on success, back to `dead` with the error.
    async fn finish_replay(&self, id: i64, error: Option<String>) -> Result<()>;
}

/// The user directory: the latest unified user per (source, user id).
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// One user of one source, tombstones included.
    async fn user(&self, source: &str, user_id: &str) -> Result<DirectoryEntry>;

    /// A page of users and the total matching the query, ordered by source and id.
    async fn users(&self, query: UserQuery) -> Result<(Vec<DirectoryEntry>, u64)>;
}

/// Syncs from vendors' user listings: their events, committed conditionally, and each
/// source's sync state.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Commits a sync page in one atomic, durable commit: each change whose user is still at
    /// its `expected_version` (absent from the directory for `None`) is completed from the
    /// directory and journalled exactly as [`IngestStore::ingest`] does (no dedup key), the
    /// others are left out and reported as conflicts; and the source's sync state becomes
    /// `batch.state`. A batch without changes only saves the state.
    async fn commit_sync(&self, batch: SyncBatch) -> Result<SyncCommit>;

    /// The source's sync state; `None` before its first sync.
    async fn sync_state(&self, source: &str) -> Result<Option<SyncState>>;

    /// Every source's sync state, ordered by source.
    async fn sync_states(&self) -> Result<Vec<SyncState>>;
}

/// What operators do: look at quarantine and dead letters, ask for replays, move positions.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Quarantined deliveries, newest first, optionally in one state.
    async fn quarantined(
        &self,
        state: Option<QuarantineState>,
        limit: u32,
    ) -> Result<Vec<QuarantinedDelivery>>;

    async fn quarantined_by_id(&self, id: i64) -> Result<QuarantinedDelivery>;

    /// Dead letters, newest first, optionally of one sink and in one state.
    async fn dead_letters(
        &self,
        sink: Option<String>,
        state: Option<DeadLetterState>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>>;

    /// Asks the sink's worker to send dead letters again: the given ids, or every dead
    /// letter (of `sink`, when given) when `ids` is empty. Returns how many were queued.
    async fn request_replay(&self, sink: Option<String>, ids: Vec<i64>) -> Result<usize>;

    /// Moves `sink`'s position back so everything received at or after `since` is delivered
    /// again (by sequence: the first event received at or after `since` and everything
    /// after it). Never moves it forward. Returns the new position.
    async fn rewind(&self, sink: &str, since: Timestamp) -> Result<i64>;

    /// Pauses or resumes `sink`: a paused sink's worker sends nothing until resumed, and
    /// the pause survives restarts. It does not give a new sink a position.
    async fn set_paused(&self, sink: &str, paused: bool) -> Result<()>;

    /// Sets `sink`'s position outright (an operator skipping ahead, or a test's setup).
    async fn set_position(&self, sink: &str, seq: i64) -> Result<()>;
}

/// Deleting what is no longer needed, by age.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes what `policy` allows, a batch at a time, each batch its own write so ingest
    /// keeps committing while a backlog is pruned. Never an undelivered or dead-lettered
    /// event; never the user directory. Cancel-safe between batches.
    async fn prune(&self, policy: PrunePolicy) -> Result<PruneReport>;
}

/// A whole store backend.
#[async_trait]
pub trait Backend:
    IngestStore
    + JournalStore
    + DeliveryStore
    + DirectoryStore
    + OperatorStore
    + RetentionStore
    + SyncStore
    + std::fmt::Debug
{
    /// A short name for logs (`sqlite`, `postgres`).
    fn kind(&self) -> &'static str;

    /// Checks that the backend can read and commit (for readiness probes): a failing disk
    /// or a lost database makes this fail.
    async fn ping(&self) -> Result<()>;

    fn commit_stats(&self) -> CommitStats;

    /// Stops accepting writes and waits until what was accepted is committed.
    async fn close(&self);
}
