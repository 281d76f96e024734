//! Delivery workers: one per sink, at least once, ordered per user, parallel across users.
//!
//! A worker reads the journal after its sink's position a batch at a time and splits the
//! batch into lines, one per user (source and user id): a line's events go to the sink in
//! journal order, a run of them per call ([`Sink::send_batch`]; one event per call when the
//! sink is rate limited, so the limit paces events), and up to `concurrency` lines are in
//! flight at once. With `concurrency = 1` the whole batch is one line, so the sink sees
//! journal order. When an event of a run fails, the events before it are delivered, the
//! failed one goes on exactly as a failed single send (below), and the rest follow it.
//!
//! A permanent failure makes the event a dead letter and its line goes on. A transient one
//! holds its user's line:
//!
//! * with several lines in flight, the event is *parked* in the store with its next attempt
//!   time, and so is every later event of that user the worker reaches. The position moves on
//!   past parked events, so one user's outage stalls neither the sink nor a restart (which
//!   re-sends at most one batch, and retries parked events from their records). Parked lines
//!   are retried first in every round, each when its attempt is due;
//! * with one line, the worker retries the event in place: the sink is an ordered stream.
//!
//! Either way an event is retried with capped exponential backoff and full jitter (or the
//! sink's `Retry-After`) until its sink's retry horizon, counted from its first failure, is
//! spent, or `delivery.max_attempts` attempts failed when that is set (whichever comes
//! first); then it becomes a dead letter. A circuit breaker shared by the sink's lines stops
//! sending while the endpoint fails (one trial request after each cool-down), and an
//! optional rate limit paces requests. When the breaker closes again, every parked line is
//! due at once.
//!
//! After each batch the worker flushes the sink and moves the position to the end of what
//! is finished (sent, dead-lettered or parked), so an event is only forgotten once the sink
//! has it or the store holds it as parked. Every round runs under the sink's lease (taken or
//! renewed at the start of the round, for `delivery.lease_seconds`): only its holder moves the position
//! or parks, and a worker whose lease was taken over is fenced off by the store.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use rollcall_core::backoff::{Backoff, CircuitBreaker, Health, MAX_RETRY_AFTER};
use rollcall_core::rate::{self, RateLimit};
use rollcall_core::{BatchOutcome, EventType, Format, OutboundEvent, Sink, SinkError, Timestamp};
use rollcall_store::{Advance, JournalEntry, Lease, ParkedEvent, Store};
use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{DeliveryConfig, SinkConfig, StartAt};
use crate::metrics::{FailureKind, Metrics, SinkMetrics};

/// How often an idle (or paused) worker looks for requested replays and a resume.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How long a half-open trial request holds off the other lines, in case it never reports
/// back (its future dropped at shutdown).
const TRIAL_CLAIM: Duration = Duration::from_secs(60);

/// The most events handed to the sink in one call: bounds the memory a sink's batch buffer
/// takes and how much one failed write has to send again.
const MAX_SEND_BATCH: usize = 256;

/// The worker's clock: tokio's (paused in tests), read as wall time from when the worker
/// started. Horizons and next-attempt times are measured on it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Timestamp,
    origin: tokio::time::Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            wall: Timestamp::now(),
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.after(Duration::ZERO)
    }

    /// The time `wait` from now.
    fn after(&self, wait: Duration) -> Timestamp {
        let elapsed = self.origin.elapsed().saturating_add(wait);
        let millis = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 2);
        Timestamp::from_unix_millis(self.wall.unix_millis().saturating_add(millis))
            .unwrap_or(self.wall)
    }
}

/// governor's view of tokio's clock, so a paused test clock paces the rate limit too.
#[derive(Debug, Clone)]
struct RateClock(tokio::time::Instant);

impl governor::clock::Clock for RateClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

type SinkRateLimiter = RateLimit<RateClock>;

/// What `/v1/sinks` shows of a sink's worker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatusView {
    /// `running`, `paused`, `backing_off` (the breaker is open), or `standby` (another
    /// process holds the sink's lease).
    pub state: &'static str,
    /// Journal events after the position plus parked events.
    pub lag_events: i64,
    /// Age of the oldest event not finished yet (0 when none).
    pub oldest_undelivered_seconds: i64,
    pub inflight: i64,
    pub parked_events: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// When the next retry is due: the breaker's next trial, else the earliest parked line.
    pub next_attempt_at: Option<Timestamp>,
}

/// A worker's status, shared with the admin API.
#[derive(Debug, Default)]
pub struct SinkStatus(Mutex<SinkStatusView>);

impl SinkStatus {
    pub fn view(&self) -> SinkStatusView {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, SinkStatusView> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One sink's delivery loop.
#[derive(Debug)]
pub struct Worker {
    config: SinkConfig,
    sink: Box<dyn Sink>,
    store: Store,
    metrics: SinkMetrics,
    delivery: DeliveryConfig,
    /// Who this worker is to the store's leases: unique per process.
    holder: String,
    /// The lease this worker last took or renewed.
    held: Mutex<Option<Lease>>,
    clock: Clock,
    breaker: Mutex<CircuitBreaker>,
    /// Bumped on every outcome the breaker records, so lines waiting on it look again.
    breaker_changed: watch::Sender<u64>,
    /// Set when the breaker closes after being open: every parked line is due.
    recovered: AtomicBool,
    limiter: Option<SinkRateLimiter>,
    /// Parked events by user line, in sequence order, as the store holds them.
    parked: Mutex<BTreeMap<String, VecDeque<ParkedEvent>>>,
    /// The lease token the parked lines were loaded under (reloaded on a new token).
    parked_token: Mutex<Option<i64>>,
    inflight: AtomicI64,
    status: Arc<SinkStatus>,
}

/// How one event's delivery ended.
enum Outcome {
    Sent,
    /// A dead letter: attempts made and the last error.
    Dead {
        attempts: u32,
        error: String,
    },
    /// A transient failure with horizon left: park the line (several lines in flight).
    Held {
        attempts: u32,
        first_failed_at: Timestamp,
        wait: Duration,
        error: String,
    },
    /// Shutdown was requested; the event stays where it is.
    Stopped,
}

/// The events of one user in a batch, in journal order (indexes into the batch).
struct Line {
    key: String,
    entries: Vec<usize>,
}

impl Worker {
    pub fn new(
        config: SinkConfig,
        sink: Box<dyn Sink>,
        store: Store,
        metrics: Arc<Metrics>,
        delivery: DeliveryConfig,
        holder: String,
    ) -> Self {
        let cooldown = Backoff::new(delivery.initial_backoff(), delivery.max_backoff());
        let breaker = CircuitBreaker::new(config.delivery.breaker_failures, cooldown);
        let rate_clock = RateClock(tokio::time::Instant::now());
        let limiter = config
            .delivery
            .rate_limit_per_second
            .and_then(rate::quota_paced)
            .map(|quota| RateLimit::with_clock(quota, rate_clock));
        Self {
            metrics: metrics.sink(&config.id),
            config,
            sink,
            store,
            delivery,
            holder,
            held: Mutex::new(None),
            clock: Clock::start(),
            breaker: Mutex::new(breaker),
            breaker_changed: watch::Sender::new(0),
            recovered: AtomicBool::new(false),
            limiter,
            parked: Mutex::new(BTreeMap::new()),
            parked_token: Mutex::new(None),
            inflight: AtomicI64::new(0),
            status: Arc::new(SinkStatus::default()),
        }
    }

    /// The status the admin API shows for this worker's sink.
    pub fn status(&self) -> Arc<SinkStatus> {
        Arc::clone(&self.status)
    }

    /// One line at a time: the sink keeps journal order and a failure holds it in place.
    fn holds_in_place(&self) -> bool {
        self.config.delivery.concurrency <= 1
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.delivery.initial_backoff(), self.delivery.max_backoff())
    }

    /// Runs until `shutdown` turns true; then delivers what the journal holds (one attempt
    /// per event), flushes and records its position.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let sink_id = self.config.id.clone();
        let mut committed = self.store.subscribe();
        tracing::info!(sink = %sink_id, kind = %self.config.kind, concurrency = self.config.delivery.concurrency, "delivery worker started");
        if self.config.delivery.start == StartAt::Now {
            let latest = *self.store.subscribe().borrow();
            match self.store.start_at(&sink_id, latest).await {
                Ok(position) => {
                    tracing::info!(sink = %sink_id, position, "a new sink starts from now; a known one keeps its position")
                }
                Err(error) => {
                    tracing::error!(sink = %sink_id, error = %error, "cannot record where the sink starts")
                }
            }
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.store.paused(&sink_id).await {
                Ok(true) => {
                    self.status.lock().state = "paused";
                    // Keep the lag current: a paused sink is where it grows.
                    if let Ok(position) = self.store.position(&sink_id).await {
                        if let Ok(next) = self.store.journal_after(position, 1).await {
                            self.report_lag(position, next.first()).await;
                        }
                    }
                    self.status.lock().state = "paused";
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                    }
                    continue;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(sink = %sink_id, error = %error, "cannot read whether the sink is paused")
                }
            }
            if let Err(error) = self.replay_dead_letters(&shutdown).await {
                tracing::error!(sink = %sink_id, error = %error, "dead-letter replay failed");
            }
            match self.deliver_batch(&shutdown).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    // The lease may be what failed (taken over): ask the store next round,
                    // and read the parked lines afresh.
                    self.forget_lease_unless(None);
                    *lock(&self.parked_token) = None;
                    tracing::error!(sink = %sink_id, error = %error, "delivery round failed");
                }
            }
            let idle = IDLE_POLL.min(self.next_parked_due());
            wait_for_round(&mut committed, &mut shutdown, self.delivery.linger(), idle).await;
        }
        // The listeners have stopped, so the journal no longer grows: deliver what it holds,
        // one attempt per event (a failure parks or ends the drain without a backoff wait),
        // so a clean stop leaves nothing behind that a healthy sink could take. The daemon
        // bounds this (WORKER_DRAIN); whatever is left stays in the journal for the next
        // start.
        if !matches!(self.store.paused(&sink_id).await, Ok(true)) {
            loop {
                match self.deliver_batch(&shutdown).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(error) => {
                        tracing::warn!(sink = %sink_id, error = %error, "delivery at shutdown failed");
                        break;
                    }
                }
            }
        }
        if let Err(error) = self.sink.flush().await {
            tracing::warn!(sink = %sink_id, error = %error, "flush at shutdown failed");
        }
        // Hand the lease back so another replica need not wait for it to expire.
        if let Ok(Some(lease)) = self.lease().await {
            if let Err(error) = self.store.release_lease(&lease).await {
                tracing::warn!(sink = %sink_id, error = %error, "cannot release the lease");
            }
        }
        tracing::info!(sink = %sink_id, "delivery worker stopped");
    }

    /// The sink's lease, with the current position; `None` while another holder has it.
    ///
    /// A lease with more than half its time left is reused (the position read afresh, since
    /// an operator may have rewound it); only then is it renewed, because a renewal is a
    /// commit of its own and rounds come as often as ingest commits.
    async fn lease(&self) -> anyhow::Result<Option<Lease>> {
        let now = Timestamp::now();
        let ttl = self.delivery.lease_ttl();
        let reusable = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .filter(|lease| {
                let left = lease.expires_at.unix_millis() - now.unix_millis();
                u128::try_from(left).unwrap_or(0) > ttl.as_millis() / 2
            });
        if let Some(mut lease) = reusable {
            lease.position = self.store.position(&self.config.id).await?;
            return Ok(Some(lease));
        }
        let lease = self
            .store
            .acquire_lease(&self.config.id, &self.holder, ttl, now)
            .await?;
        self.forget_lease_unless(lease.clone());
        Ok(lease)
    }

    /// Replaces the lease this worker believes it holds (`None`: it must ask the store).
    fn forget_lease_unless(&self, lease: Option<Lease>) {
        *self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = lease;
    }

    /// Delivers the parked lines that are due, then one batch after the sink's position.
    /// Returns whether anything moved.
    async fn deliver_batch(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<bool> {
        let sink_id = &self.config.id;
        let Some(lease) = self.lease().await? else {
            tracing::debug!(sink = %sink_id, "another holder delivers this sink");
            self.status.lock().state = "standby";
            return Ok(false);
        };
        self.load_parked(&lease).await?;
        let parked_moved = self.retry_parked(&lease, shutdown).await?;
        let cursor = lease.position;
        let entries = self
            .store
            .journal_after(cursor, self.delivery.batch_size)
            .await?;
        self.report_lag(cursor, entries.first()).await;
        if entries.is_empty() {
            return Ok(parked_moved);
        }
        let mut finished = HashSet::new();
        let mut lines: Vec<Line> = Vec::new();
        let mut line_of: HashMap<String, usize> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            if !self.config.accepts(&entry.source, &entry.event_type) {
                finished.insert(entry.seq);
                continue;
            }
            let key = if self.holds_in_place() {
                String::new()
            } else {
                user_key(entry)
            };
            if self.is_parked(&key) {
                // Its user's line is held: it waits behind the parked events.
                self.park(&lease, waiting(sink_id, entry, &key, self.clock.now()))
                    .await?;
                finished.insert(entry.seq);
                continue;
            }
            let line = *line_of.entry(key.clone()).or_insert_with(|| {
                lines.push(Line {
                    key,
                    entries: Vec::new(),
                });
                lines.len() - 1
            });
            lines[line].entries.push(index);
        }
        let batch = entries.as_slice();
        let lease = &lease;
        let results: Vec<anyhow::Result<Vec<i64>>> = stream::iter(lines)
            .map(move |line| self.deliver_line(lease, batch, line, shutdown))
            .buffer_unordered(self.config.delivery.concurrency.max(1))
            .collect()
            .await;
        for result in results {
            finished.extend(result?);
        }
        // The position moves to the end of the finished prefix of the batch.
        let mut done = cursor;
        for entry in &entries {
            if !finished.contains(&entry.seq) {
                break;
            }
            done = entry.seq;
        }
        if !self.flush_and_advance(lease, cursor, done).await? {
            return Ok(true);
        }
        Ok(done > cursor || parked_moved)
    }

    /// Sends one user's events of a batch in order, a run of them per call to the sink
    /// ([`Sink::send_batch`]). Returns the sequence numbers finished (sent, dead-lettered
    /// or parked).
    async fn deliver_line(
        &self,
        lease: &Lease,
        batch: &[JournalEntry],
        line: Line,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<i64>> {
        let mut finished = Vec::with_capacity(line.entries.len());
        let entries: Vec<&JournalEntry> = line
            .entries
            .iter()
            .filter_map(|index| batch.get(*index))
            .collect();
        let mut next = 0;
        while let Some(&entry) = entries.get(next) {
            // Render the run that goes to the sink in one call. It ends before an event
            // that cannot be rendered: that one takes the per-event path (a dead letter).
            let mut run = Vec::new();
            for later in entries[next..].iter().take(self.send_batch_limit()) {
                match self.render(later) {
                    Ok(outbound) => run.push(outbound),
                    Err(_) => break,
                }
            }
            let outcome = match run.len() {
                0 => {
                    self.deliver_one(entry, 0, None, shutdown)
                        .instrument(send_span(&self.config.id, entry))
                        .await
                }
                1 => {
                    self.deliver_rendered(entry, &run[0], 0, None, None, shutdown)
                        .instrument(send_span(&self.config.id, entry))
                        .await
                }
                _ => {
                    let last = entries[next + run.len() - 1];
                    let span = tracing::info_span!(
                        "send_batch",
                        sink = %self.config.id,
                        events = run.len(),
                        first_seq = entry.seq,
                        last_seq = last.seq,
                    );
                    let Some(sent) = self.send_batch_paced(&run, shutdown).instrument(span).await
                    else {
                        break;
                    };
                    // A sink answering more than it was given is taken at its batch's size.
                    let delivered = sent.delivered.min(run.len());
                    finished.extend(entries[next..next + delivered].iter().map(|sent| sent.seq));
                    next += delivered;
                    let Some(error) = sent.failure else {
                        continue;
                    };
                    let (Some(&failed), Some(outbound)) = (entries.get(next), run.get(delivered))
                    else {
                        // Every event of the run delivered: nothing failed after all.
                        continue;
                    };
                    // The first failed event goes on exactly as a failed single send: retried
                    // in place, held (parked) or a dead letter. The rest of the run was not
                    // attempted and is sent after it.
                    self.deliver_rendered(failed, outbound, 0, None, Some(error), shutdown)
                        .instrument(send_span(&self.config.id, failed))
                        .await
                }
            };
            let entry = entries[next];
            match outcome {
                Outcome::Sent => {
                    finished.push(entry.seq);
                    next += 1;
                }
                Outcome::Dead { attempts, error } => {
                    self.dead_letter(lease, entry, attempts, &error).await?;
                    finished.push(entry.seq);
                    next += 1;
                }
                Outcome::Held {
                    attempts,
                    first_failed_at,
                    wait,
                    error,
                } => {
                    let head = ParkedEvent {
                        sink: self.config.id.clone(),
                        seq: entry.seq,
                        user_key: line.key.clone(),
                        attempts,
                        first_failed_at: Some(first_failed_at),
                        next_attempt_at: self.clock.after(wait),
                        error,
                    };
                    self.park(lease, head).await?;
                    finished.push(entry.seq);
                    let now = self.clock.now();
                    for later in &entries[next + 1..] {
                        self.park(lease, waiting(&self.config.id, later, &line.key, now))
                            .await?;
                        finished.push(later.seq);
                    }
                    tracing::info!(sink = %self.config.id, user = %line.key, event_id = %entry.event_id, "a transient failure holds this user's line; later events of the user wait behind it");
                    break;
                }
                Outcome::Stopped => break,
            }
        }
        Ok(finished)
    }

    /// Retries the parked lines that are due, up to `concurrency` at once. Returns whether
    /// any parked event was finished.
    async fn retry_parked(
        &self,
        lease: &Lease,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let now = self.clock.now();
        let everything_due = self.recovered.swap(false, Ordering::SeqCst);
        let due: Vec<(String, VecDeque<ParkedEvent>)> = {
            let mut parked = lock(&self.parked);
            let keys: Vec<String> = parked
                .iter()
                .filter(|(_, line)| {
                    line.front()
                        .is_some_and(|head| everything_due || head.next_attempt_at <= now)
                })
                .map(|(key, _)| key.clone())
                .collect();
            keys.into_iter()
                .filter_map(|key| parked.remove(&key).map(|line| (key, line)))
                .collect()
        };
        if due.is_empty() {
            return Ok(false);
        }
        let results: Vec<_> = stream::iter(due)
            .map(move |(key, line)| self.retry_parked_line(lease, key, line, shutdown))
            .buffer_unordered(self.config.delivery.concurrency.max(1))
            .collect()
            .await;
        let mut moved = false;
        let mut failure = None;
        {
            let mut parked = lock(&self.parked);
            for (key, line, result) in results {
                if !line.is_empty() {
                    parked.insert(key, line);
                }
                match result {
                    Ok(progress) => moved |= progress,
                    Err(error) => failure = Some(error),
                }
            }
        }
        self.metrics.parked_events().set(self.parked_count());
        match failure {
            Some(error) => Err(error),
            None => Ok(moved),
        }
    }

    /// Sends a parked line's events in order until one is held again.
    async fn retry_parked_line(
        &self,
        lease: &Lease,
        key: String,
        mut line: VecDeque<ParkedEvent>,
        shutdown: &watch::Receiver<bool>,
    ) -> (String, VecDeque<ParkedEvent>, anyhow::Result<bool>) {
        let result = async {
            let mut moved = false;
            while let Some(head) = line.front().cloned() {
                let entry = self.store.journal_entry(head.seq).await?;
                let span = tracing::info_span!(
                    "retry",
                    sink = %self.config.id,
                    event_id = %entry.event_id,
                    seq = entry.seq,
                );
                let outcome = self
                    .deliver_one(&entry, head.attempts, head.first_failed_at, shutdown)
                    .instrument(span)
                    .await;
                match outcome {
                    Outcome::Sent => {
                        self.store.unpark(lease, head.seq).await?;
                        line.pop_front();
                        moved = true;
                    }
                    Outcome::Dead { attempts, error } => {
                        self.dead_letter(lease, &entry, attempts, &error).await?;
                        line.pop_front();
                        moved = true;
                    }
                    Outcome::Held {
                        attempts,
                        first_failed_at,
                        wait,
                        error,
                    } => {
                        let again = ParkedEvent {
                            attempts,
                            first_failed_at: Some(first_failed_at),
                            next_attempt_at: self.clock.after(wait),
                            error,
                            ..head
                        };
                        self.store.park(lease, &again).await?;
                        line[0] = again;
                        break;
                    }
                    Outcome::Stopped => break,
                }
            }
            Ok(moved)
        }
        .await;
        (key, line, result)
    }

    /// Sends one event until it is sent, rejected, held (several lines in flight) or out of
    /// horizon. `attempts` and `first_failed_at` carry a parked event's history.
    async fn deliver_one(
        &self,
        entry: &JournalEntry,
        attempts: u32,
        first_failed_at: Option<Timestamp>,
        shutdown: &watch::Receiver<bool>,
    ) -> Outcome {
        match self.render(entry) {
            Ok(outbound) => {
                self.deliver_rendered(entry, &outbound, attempts, first_failed_at, None, shutdown)
                    .await
            }
            Err(error) => Outcome::Dead { attempts, error },
        }
    }

    /// [`Self::deliver_one`] for an event already rendered. `failed` is the error of an
    /// attempt already made (the event failed in a batch): it counts as the first attempt
    /// here, and the event goes on from it exactly as if a single send had failed.
    async fn deliver_rendered(
        &self,
        entry: &JournalEntry,
        outbound: &OutboundEvent,
        mut attempts: u32,
        mut first_failed_at: Option<Timestamp>,
        mut failed: Option<SinkError>,
        shutdown: &watch::Receiver<bool>,
    ) -> Outcome {
        let sink_id = &self.config.id;
        loop {
            let result = match failed.take() {
                Some(error) => Err(error),
                None => match self.send_paced(outbound, shutdown).await {
                    Some(result) => result,
                    None => return Outcome::Stopped,
                },
            };
            attempts = attempts.saturating_add(1);
            let (message, retry_after) = match result {
                Ok(()) => return Outcome::Sent,
                Err(SinkError::Permanent { message }) => {
                    return Outcome::Dead {
                        attempts,
                        error: scrubbed(&message),
                    }
                }
                // Sink errors quote what endpoints and databases answered; scrubbed before
                // any log line, status or dead letter holds them.
                Err(SinkError::Transient {
                    message,
                    retry_after,
                }) => (scrubbed(&message), retry_after),
            };
            let now = self.clock.now();
            let first = *first_failed_at.get_or_insert(now);
            let failing_for = Duration::from_millis(
                u64::try_from(now.unix_millis() - first.unix_millis()).unwrap_or(0),
            );
            if failing_for >= self.config.delivery.retry_horizon {
                return Outcome::Dead {
                    attempts,
                    error: format!(
                        "{message} (still failing after the sink's retry horizon of {} h)",
                        self.config.delivery.retry_horizon.as_secs() / 3600
                    ),
                };
            }
            if self
                .delivery
                .max_attempts
                .is_some_and(|max| attempts >= max)
            {
                return Outcome::Dead {
                    attempts,
                    error: format!(
                        "{message} (still failing after {attempts} attempts, delivery.max_attempts)"
                    ),
                };
            }
            let wait = retry_after
                .map(|hint| hint.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| self.backoff().full_jitter(attempts));
            {
                let mut status = self.status.lock();
                status.last_error = Some(message.clone());
                status.last_error_at = Some(now);
            }
            tracing::info!(sink = %sink_id, event_id = %entry.event_id, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %message, "send failed; retrying");
            if !self.holds_in_place() {
                return Outcome::Held {
                    attempts,
                    first_failed_at: first,
                    wait,
                    error: message,
                };
            }
            self.status.lock().next_attempt_at = Some(self.clock.after(wait));
            if self.wait_holding_lease(wait, shutdown).await {
                return Outcome::Stopped;
            }
        }
    }

    /// Sends once, when the circuit breaker and the rate limit allow it. `None` when
    /// shutdown came first (or had come, and a wait was needed).
    async fn send_paced(
        &self,
        outbound: &OutboundEvent,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<Result<(), SinkError>> {
        self.send_batch_paced(std::slice::from_ref(outbound), shutdown)
            .await
            .map(BatchOutcome::into_result)
    }

    /// How many events go to the sink in one call: one per rate-limit permit when a limit
    /// paces the sink, so the limit still counts events; otherwise a run capped at
    /// [`MAX_SEND_BATCH`] (the round's `batch_size` bounds it too).
    fn send_batch_limit(&self) -> usize {
        if self.limiter.is_some() {
            1
        } else {
            MAX_SEND_BATCH
        }
    }

    /// Sends `events` in one call to the sink once the circuit breaker and the rate limit
    /// allow it (one admission for the batch, as for a single send; a rate-limited sink is
    /// only given batches of one). `None` when shutdown came first (or had come, and a wait
    /// was needed).
    async fn send_batch_paced(
        &self,
        events: &[OutboundEvent],
        shutdown: &watch::Receiver<bool>,
    ) -> Option<BatchOutcome> {
        let sink_id = &self.config.id;
        let trial = loop {
            let mut changed = self.breaker_changed.subscribe();
            let now = tokio::time::Instant::now();
            let (admitted, reopens) = {
                let mut breaker = lock(&self.breaker);
                (
                    breaker.admit(now.into_std(), TRIAL_CLAIM),
                    breaker.reopens_at(),
                )
            };
            if let Some(trial) = admitted {
                break trial;
            }
            let until = reopens
                .map(tokio::time::Instant::from_std)
                .filter(|until| *until > now)
                .unwrap_or(now + IDLE_POLL);
            {
                let mut status = self.status.lock();
                status.state = "backing_off";
                status.next_attempt_at = Some(self.clock.after(until - now));
            }
            // Look again at least every third of the lease's life, renewing it.
            let until = until.min(now + self.delivery.lease_ttl() / 3);
            let wake = async {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = changed.changed() => {}
                }
            };
            if stopped(shutdown, wake).await {
                return None;
            }
            self.keep_lease().await;
        };
        if let Some(limiter) = &self.limiter {
            while let Some(wait) = limiter.wait_time() {
                if stopped(shutdown, tokio::time::sleep(wait)).await {
                    return None;
                }
            }
        }
        let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let inflight = self.inflight.fetch_add(count, Ordering::SeqCst) + count;
        self.metrics.inflight().set(inflight);
        let started = tokio::time::Instant::now();
        // One event goes through `send` itself: the same call as before batches existed,
        // and what the contract says a batch of one is.
        let outcome = match events {
            [event] => match self.sink.send(event).await {
                Ok(()) => BatchOutcome::all(1),
                Err(error) => BatchOutcome::failed(0, error),
            },
            _ => self.sink.send_batch(events).await,
        };
        let inflight = self.inflight.fetch_sub(count, Ordering::SeqCst) - count;
        self.metrics.inflight().set(inflight);
        // Once per call: a batch's events share its one request.
        self.metrics
            .delivery_duration()
            .observe(started.elapsed().as_secs_f64());
        let delivered = outcome.delivered.min(events.len());
        self.metrics
            .sent()
            .inc_by(u64::try_from(delivered).unwrap_or(u64::MAX));
        // The breaker records the batch as one request: how its last attempted event went.
        let health = match &outcome.failure {
            None => Health::Healthy,
            Some(SinkError::Permanent { .. }) => {
                self.metrics.failed(FailureKind::Permanent).inc();
                // The endpoint answered: it is up, the event is what it refused.
                Health::Healthy
            }
            Some(SinkError::Transient { retry_after, .. }) => {
                self.metrics.failed(FailureKind::Transient).inc();
                match retry_after {
                    Some(wait) => Health::RetryAfter((*wait).min(MAX_RETRY_AFTER)),
                    None => Health::Failing,
                }
            }
        };
        let mut breaker = lock(&self.breaker);
        let was_open = breaker.reopens_at().is_some();
        breaker.record(health, trial, tokio::time::Instant::now().into_std());
        let open = breaker.reopens_at().is_some();
        drop(breaker);
        self.breaker_changed
            .send_modify(|version| *version = version.wrapping_add(1));
        if was_open && !open {
            tracing::info!(sink = %sink_id, "the sink answers again: circuit breaker closed");
            self.recovered.store(true, Ordering::SeqCst);
        } else if !was_open && open {
            tracing::warn!(sink = %sink_id, "the sink keeps failing: circuit breaker open");
        }
        let mut status = self.status.lock();
        status.state = if open { "backing_off" } else { "running" };
        if !open && self.holds_in_place() {
            status.next_attempt_at = None;
        }
        Some(outcome)
    }

    /// Sleeps `wait` (a held event's backoff), renewing the sink's lease on the way so a long
    /// wait does not let it lapse. True when shutdown came first.
    async fn wait_holding_lease(&self, wait: Duration, shutdown: &watch::Receiver<bool>) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let step = until.min(tokio::time::Instant::now() + self.delivery.lease_ttl() / 3);
            if stopped(shutdown, tokio::time::sleep_until(step)).await {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            self.keep_lease().await;
        }
    }

    /// Renews the lease when past half its life (a batch can wait on a failing sink for
    /// longer than the lease lasts). A lease lost meanwhile fences this worker's next write.
    async fn keep_lease(&self) {
        if let Err(error) = self.lease().await {
            tracing::warn!(sink = %self.config.id, error = %error, "cannot renew the lease while waiting");
        }
    }

    /// Records a dead letter (the position moves with the batch).
    async fn dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
    ) -> anyhow::Result<()> {
        let sink_id = &self.config.id;
        self.store
            .record_dead_letter(lease, entry, attempts, error)
            .await?;
        self.metrics.dead_letters().inc();
        tracing::warn!(sink = %sink_id, event_id = %entry.event_id, attempts, error = %error, "event moved to dead letters");
        Ok(())
    }

    /// Parks `parked` in the store and in this worker's lines.
    async fn park(&self, lease: &Lease, parked: ParkedEvent) -> anyhow::Result<()> {
        self.store.park(lease, &parked).await?;
        let mut lines = lock(&self.parked);
        let line = lines.entry(parked.user_key.clone()).or_default();
        match line.iter().position(|other| other.seq >= parked.seq) {
            Some(index) if line[index].seq == parked.seq => line[index] = parked,
            Some(index) => line.insert(index, parked),
            None => line.push_back(parked),
        }
        Ok(())
    }

    fn is_parked(&self, key: &str) -> bool {
        lock(&self.parked).contains_key(key)
    }

    fn parked_count(&self) -> i64 {
        let count: usize = lock(&self.parked).values().map(VecDeque::len).sum();
        i64::try_from(count).unwrap_or(i64::MAX)
    }

    /// How long until the earliest parked line is due (a long time when none is).
    fn next_parked_due(&self) -> Duration {
        let now = self.clock.now().unix_millis();
        lock(&self.parked)
            .values()
            .filter_map(VecDeque::front)
            .map(|head| head.next_attempt_at.unix_millis() - now)
            .min()
            .map_or(Duration::from_secs(3600), |millis| {
                Duration::from_millis(u64::try_from(millis).unwrap_or(0))
            })
    }

    /// Reads the parked lines from the store when this lease's token has not seen them.
    async fn load_parked(&self, lease: &Lease) -> anyhow::Result<()> {
        if *lock(&self.parked_token) == Some(lease.token) {
            return Ok(());
        }
        let mut lines: BTreeMap<String, VecDeque<ParkedEvent>> = BTreeMap::new();
        for parked in self.store.parked(&self.config.id).await? {
            lines
                .entry(parked.user_key.clone())
                .or_default()
                .push_back(parked);
        }
        *lock(&self.parked) = lines;
        *lock(&self.parked_token) = Some(lease.token);
        Ok(())
    }

    /// Publishes how far behind the sink is: events and the age of the oldest unfinished.
    async fn report_lag(&self, cursor: i64, next: Option<&JournalEntry>) {
        let latest = *self.store.subscribe().borrow();
        let parked = self.parked_count();
        let lag = latest.saturating_sub(cursor).max(0) + parked;
        let first_parked = lock(&self.parked)
            .values()
            .filter_map(VecDeque::front)
            .map(|head| head.seq)
            .min();
        let mut oldest = next.map(|entry| entry.received_at_ms);
        if let Some(seq) = first_parked {
            if let Ok(entry) = self.store.journal_entry(seq).await {
                oldest =
                    Some(oldest.map_or(entry.received_at_ms, |at| at.min(entry.received_at_ms)));
            }
        }
        let age = oldest.map_or(0, |at| {
            ((Timestamp::now().unix_millis() - at) / 1000).max(0)
        });
        let next_attempt = lock(&self.parked)
            .values()
            .filter_map(VecDeque::front)
            .map(|head| head.next_attempt_at)
            .min();
        self.metrics.lag_events().set(lag);
        self.metrics.oldest_undelivered_seconds().set(age);
        self.metrics.parked_events().set(parked);
        let breaker_open = lock(&self.breaker).reopens_at().is_some();
        let mut status = self.status.lock();
        status.lag_events = lag;
        status.oldest_undelivered_seconds = age;
        status.parked_events = parked;
        status.inflight = self.inflight.load(Ordering::SeqCst);
        if !breaker_open {
            status.state = "running";
            if !self.holds_in_place() {
                status.next_attempt_at = next_attempt;
            }
        }
    }

    /// Flushes the sink and moves the position from `from` to `done`. Returns false (and
    /// moves nothing) when the position is no longer at `from`: someone rewound it.
    async fn flush_and_advance(&self, lease: &Lease, from: i64, done: i64) -> anyhow::Result<bool> {
        if done <= from {
            return Ok(true);
        }
        self.sink
            .flush()
            .await
            .map_err(|error| anyhow::anyhow!("flush failed: {error}"))?;
        if self.store.advance(lease, from, done).await? == Advance::PositionChanged {
            tracing::info!(sink = %self.config.id, "position moved by an operator; starting over from it");
            return Ok(false);
        }
        Ok(true)
    }

    fn render(&self, entry: &JournalEntry) -> Result<OutboundEvent, String> {
        let unreadable = |error: &dyn std::fmt::Display| {
            format!("journal entry {} is unreadable: {error}", entry.seq)
        };
        match self.config.format {
            // The journal already holds the native rendering: reuse its bytes, and take the
            // envelope fields from the entry's columns instead of parsing the event again
            // (the profile showed that parse as a tenth of the daemon's work).
            Format::Native => Ok(OutboundEvent {
                event_id: entry.event_id.clone(),
                event_type: EventType::from_name(&entry.event_type)
                    .ok_or_else(|| unreadable(&format!("event type {:?}", entry.event_type)))?,
                source: entry.source.clone(),
                received_at: Timestamp::from_unix_millis(entry.received_at_ms)
                    .map_err(|error| unreadable(&error))?,
                content_type: "application/json",
                body: entry.event.clone().into(),
            }),
            format => {
                let event = entry.decode().map_err(|error| unreadable(&error))?;
                OutboundEvent::render(&event, format).map_err(|error| error.to_string())
            }
        }
    }

    /// Sends the dead letters an operator asked to replay (one attempt each; a failure puts
    /// the letter back with its new error).
    async fn replay_dead_letters(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<()> {
        let sink_id = &self.config.id;
        for (letter, entry) in self.store.pending_replays(sink_id, 64).await? {
            if *shutdown.borrow() {
                break;
            }
            let outcome = match self.render(&entry) {
                Ok(outbound) => match self.sink.send(&outbound).await {
                    Ok(()) => self
                        .sink
                        .flush()
                        .await
                        .map_err(|error| scrubbed(&error.to_string())),
                    Err(error) => Err(scrubbed(&error.to_string())),
                },
                Err(error) => Err(error),
            };
            match &outcome {
                Ok(()) => {
                    self.metrics.sent().inc();
                    tracing::info!(sink = %sink_id, event_id = %entry.event_id, "dead letter replayed");
                }
                Err(error) => {
                    tracing::warn!(sink = %sink_id, event_id = %entry.event_id, error = %error, "dead letter replay failed")
                }
            }
            self.store.finish_replay(letter.id, outcome.err()).await?;
        }
        Ok(())
    }
}

/// The span of one event's send (and its retries).
fn send_span(sink: &str, entry: &JournalEntry) -> tracing::Span {
    tracing::info_span!("send", sink = %sink, event_id = %entry.event_id, seq = entry.seq)
}

/// A parked record for an event that waits behind its user's held line.
fn waiting(sink: &str, entry: &JournalEntry, key: &str, now: Timestamp) -> ParkedEvent {
    ParkedEvent {
        sink: sink.to_owned(),
        seq: entry.seq,
        user_key: key.to_owned(),
        attempts: 0,
        first_failed_at: None,
        next_attempt_at: now,
        error: String::new(),
    }
}

/// The line an event waits in: its source and user id. An event whose user cannot be read
/// gets a line of its own (rendering it fails and makes it a dead letter).
fn user_key(entry: &JournalEntry) -> String {
    #[derive(serde::Deserialize)]
    struct Partition {
        user: PartitionUser,
    }
    #[derive(serde::Deserialize)]
    struct PartitionUser {
        id: String,
    }
    match serde_json::from_slice::<Partition>(&entry.event) {
        Ok(partition) => format!("{}/{}", entry.source, partition.user.id),
        Err(_) => format!("{}/#{}", entry.source, entry.seq),
    }
}

/// Waits for `wait` unless shutdown is (or was already) requested: true when stopped.
async fn stopped(shutdown: &watch::Receiver<bool>, wait: impl Future<Output = ()>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    let mut shutdown = shutdown.clone();
    tokio::select! {
        _ = wait => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}

/// The lock of worker state that holds plain values: a panic elsewhere leaves it usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The longest sink error text logged or kept with a dead letter.
const MAX_SINK_ERROR_CHARS: usize = 300;

/// A sink's error text fit for logs and the store: one line, bounded, no email addresses,
/// phone numbers or tokens.
fn scrubbed(text: &str) -> String {
    rollcall_core::scrub::snippet(text, MAX_SINK_ERROR_CHARS)
}

/// Waits until the next delivery round is due: `idle` has passed (a parked user may be due,
/// a replay or a resume requested), shutdown was asked, or the journal grew. After a
/// commit it waits `linger` more, so that one round (one journal read, one sink flush, one
/// position commit) carries every commit that lands meanwhile: at thousands of commits a
/// second, a round per commit costs more than the events it delivers.
async fn wait_for_round(
    committed: &mut watch::Receiver<i64>,
    shutdown: &mut watch::Receiver<bool>,
    linger: Duration,
    idle: Duration,
) {
    tokio::select! {
        _ = shutdown.changed() => {}
        _ = committed.changed() => {
            if !linger.is_zero() {
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(linger) => {}
                }
            }
        }
        _ = tokio::time::sleep(idle) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Id;
    use rollcall_core::Format;

    fn sink_config(id: &str, concurrency: usize) -> SinkConfig {
        let mut delivery = crate::config::SinkDelivery::for_kind("test");
        delivery.concurrency = concurrency;
        SinkConfig {
            id: id.into(),
            kind: "test".into(),
            sources: None,
            types: None,
            format: Format::Native,
            delivery,
            options: serde_json::Value::Null,
        }
    }

    /// A worker for `config` on `store`, with the default delivery schedule.
    fn new_worker(config: SinkConfig, sink: Box<dyn Sink>, store: &Store) -> Worker {
        new_worker_with(
            config,
            sink,
            store,
            Arc::default(),
            DeliveryConfig::default(),
        )
    }

    fn new_worker_with(
        config: SinkConfig,
        sink: Box<dyn Sink>,
        store: &Store,
        metrics: Arc<Metrics>,
        delivery: DeliveryConfig,
    ) -> Worker {
        Worker::new(
            config,
            sink,
            store.clone(),
            metrics,
            delivery,
            "test-worker".into(),
        )
    }

    /// A worker running on its own task until [`Running::stop`].
    struct Running {
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn run(worker: Worker) -> Running {
        let (stop, shutdown) = watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(worker.run(shutdown)),
        }
    }

    impl Running {
        /// Asks the worker to stop and waits until it has (flushed and recorded its position).
        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.task.await.unwrap();
        }
    }

    /// A sink that can hold one chosen event until released, recording what it was sent.
    #[derive(Debug, Default)]
    struct Gate {
        sent: std::sync::Mutex<Vec<String>>,
        hold: std::sync::Mutex<Option<String>>,
        release: tokio::sync::Notify,
        holding: tokio::sync::Notify,
    }

    #[derive(Debug)]
    struct GateSink(Arc<Gate>);

    #[rollcall_core::async_trait]
    impl Sink for GateSink {
        async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
            let held = self.0.hold.lock().unwrap().clone();
            if held.as_deref() == Some(event.event_id.as_str()) {
                *self.0.hold.lock().unwrap() = None;
                self.0.holding.notify_one();
                self.0.release.notified().await;
            }
            self.0.sent.lock().unwrap().push(event.event_id.clone());
            Ok(())
        }
    }

    async fn put(store: &Store, n: i64) {
        use rollcall_core::{EventType, Timestamp, User, UserEvent, VendorEvent};
        let at = Timestamp::from_unix_seconds(1_800_000_000 + n).unwrap();
        let id = format!("e{n:02}");
        let event = UserEvent {
            id: id.clone(),
            event_type: EventType::Created,
            source: "s".into(),
            connector: "t".into(),
            vendor_event: VendorEvent::default(),
            received_at: at,
            actor: None,
            user: User::with_id(n.to_string()),
            previous: None,
            changes: None,
            partial: false,
        };
        store
            .ingest(rollcall_store::IngestBatch {
                source: "s".into(),
                dedup_key: id,
                received_at: at,
                events: vec![event],
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_lease_is_renewed_only_past_half_its_life() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        let worker = new_worker(
            sink_config("crm", 16),
            Box::new(GateSink(Arc::new(Gate::default()))),
            &store,
        );
        let first = worker.lease().await.unwrap().unwrap();
        let commits = store.commit_stats().commits;
        // Fresh: reused, with the position read again, and no commit for it.
        store.set_position("crm", 2).await.unwrap();
        let commits = commits + 1;
        let again = worker.lease().await.unwrap().unwrap();
        assert_eq!((again.token, again.position), (first.token, 2));
        assert_eq!(store.commit_stats().commits, commits);
        // Less than half its time left: renewed in a commit of its own, same holder and token.
        let almost_expired = Lease {
            expires_at: Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 1_000)
                .unwrap(),
            ..first.clone()
        };
        worker.forget_lease_unless(Some(almost_expired.clone()));
        let renewed = worker.lease().await.unwrap().unwrap();
        assert_eq!(renewed.token, first.token);
        assert!(renewed.expires_at > almost_expired.expires_at);
        assert_eq!(store.commit_stats().commits, commits + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rewind_during_a_round_is_not_overwritten_by_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=3 {
            put(&store, n).await;
        }
        let gate = Arc::new(Gate::default());
        let worker = new_worker(
            sink_config("crm", 16),
            Box::new(GateSink(Arc::clone(&gate))),
            &store,
        );
        let running = run(worker);
        until_position(&store, "crm", 3).await;
        *gate.hold.lock().unwrap() = Some("e04".into());
        for n in 4..=6 {
            put(&store, n).await;
        }
        gate.holding.notified().await;
        // The operator replays everything while the worker is in the middle of e04.
        let since = rollcall_core::Timestamp::from_unix_seconds(1_800_000_000).unwrap();
        assert_eq!(store.rewind("crm", since).await.unwrap(), 0);
        gate.release.notify_one();
        until_position(&store, "crm", 6).await;
        running.stop().await;
        let sent = gate.sent.lock().unwrap().clone();
        assert_eq!(
            sent.iter().filter(|id| *id == "e01").count(),
            2,
            "the rewind must send e01..e03 again: {sent:?}"
        );
    }

    // ---- Delivery through outages: a real HTTP sink against a receiver the test controls,
    // on tokio's paused clock (it jumps ahead whenever every task waits).

    /// What the receiver answers.
    const UP: u8 = 0;
    const DOWN: u8 = 1;

    /// A local HTTP receiver: records each event it accepts (user id, event id) in arrival
    /// order, counts requests, and answers 503 while down and 400 to the ids it rejects.
    #[derive(Debug, Default)]
    struct Receiver {
        mode: std::sync::atomic::AtomicU8,
        requests: std::sync::atomic::AtomicUsize,
        accepted: std::sync::Mutex<Vec<(String, String)>>,
        rejects: std::sync::Mutex<Vec<String>>,
    }

    impl Receiver {
        fn set(&self, mode: u8) {
            self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
        }

        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn accepted_ids(&self) -> std::collections::BTreeSet<String> {
            let accepted = self.accepted.lock().unwrap();
            accepted.iter().map(|(_, id)| id.clone()).collect()
        }

        /// Every user's events arrived in journal order (a repeat may follow its own first
        /// arrival, never a later event of the user).
        fn assert_per_user_order(&self) {
            let mut last: HashMap<String, String> = HashMap::new();
            for (user, id) in self.accepted.lock().unwrap().iter() {
                if let Some(previous) = last.get(user) {
                    assert!(id >= previous, "user {user}: {id} arrived after {previous}");
                }
                last.insert(user.clone(), id.clone());
            }
        }
    }

    async fn receive(
        axum::extract::State(receiver): axum::extract::State<Arc<Receiver>>,
        body: axum::body::Bytes,
    ) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        receiver
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let id = event["id"].as_str().unwrap().to_owned();
        let user = event["user"]["id"].as_str().unwrap().to_owned();
        if receiver.mode.load(std::sync::atomic::Ordering::SeqCst) == DOWN {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if receiver.rejects.lock().unwrap().contains(&id) {
            return StatusCode::BAD_REQUEST;
        }
        receiver.accepted.lock().unwrap().push((user, id));
        StatusCode::OK
    }

    /// Serves `receiver` on `listener` until the test ends.
    fn serve(listener: tokio::net::TcpListener, receiver: Arc<Receiver>) {
        let app = axum::Router::new()
            .route("/", axum::routing::post(receive))
            .with_state(receiver);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    /// A receiver served on a local port (up), and that port.
    async fn listening_receiver() -> (Arc<Receiver>, u16) {
        let receiver = Arc::new(Receiver::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        serve(listener, Arc::clone(&receiver));
        (receiver, port)
    }

    fn http_sink(port: u16) -> Box<dyn Sink> {
        let registration = rollcall_core::sink_registration("http").unwrap();
        let options = rollcall_core::SinkOptions::new(
            "crm",
            serde_json::json!({"url": format!("http://127.0.0.1:{port}/")}),
        );
        (registration.build)(&options).unwrap()
    }

    /// Journals event `e{n:04}` for user `u{user}`.
    async fn put_for(store: &Store, n: i64, user: i64) {
        use rollcall_core::{EventType, User, UserEvent, VendorEvent};
        let at = Timestamp::from_unix_seconds(1_800_000_000 + n).unwrap();
        let id = format!("e{n:04}");
        let event = UserEvent {
            id: id.clone(),
            event_type: EventType::Updated,
            source: "s".into(),
            connector: "t".into(),
            vendor_event: VendorEvent::default(),
            received_at: at,
            actor: None,
            user: User::with_id(format!("u{user:03}")),
            previous: None,
            changes: None,
            partial: false,
        };
        store
            .ingest(rollcall_store::IngestBatch {
                source: "s".into(),
                dedup_key: id,
                received_at: at,
                events: vec![event],
            })
            .await
            .unwrap();
    }

    fn all_ids(count: i64) -> std::collections::BTreeSet<String> {
        (1..=count).map(|n| format!("e{n:04}")).collect()
    }

    /// Waits until the receiver has every id. The first new id must come within `limit` on
    /// the paused clock: that is the promise under test (a cool-down bounds how long delivery
    /// stays stopped). The rest get a minute of real time: from then on delivery waits on
    /// the store's thread and the endpoint, real I/O during which the paused clock runs ahead
    /// by itself, so on a loaded machine virtual time says nothing about it.
    async fn until_received(receiver: &Receiver, count: i64, limit: Duration) {
        let started = tokio::time::Instant::now();
        let before = receiver.accepted_ids().len();
        while receiver.accepted_ids().len() == before && receiver.accepted_ids() != all_ids(count) {
            assert!(
                started.elapsed() < limit,
                "nothing more arrived within {limit:?}: {before} of {count}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let flowing = std::time::Instant::now();
        while receiver.accepted_ids() != all_ids(count) {
            assert!(
                flowing.elapsed() < Duration::from_secs(60),
                "not everything arrived within a minute once delivery resumed: {} of {count}",
                receiver.accepted_ids().len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_longer_than_the_old_schedule_loses_nothing_and_keeps_each_users_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=60 {
            put_for(&store, n, n % 10).await;
        }
        // Nothing listens on the port yet: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let receiver = Arc::new(Receiver::default());
        let metrics = Arc::new(Metrics::default());
        let worker = new_worker_with(
            sink_config("crm", 4),
            http_sink(port),
            &store,
            Arc::clone(&metrics),
            DeliveryConfig::default(),
        );
        let status = worker.status();
        let running = run(worker);
        // The paused clock runs ahead whenever the worker waits on the store's thread:
        // wait for the first refused attempt, then keep the endpoint down for 70 s more.
        while status.view().last_error.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(70)).await;
        // Then it answers 503 for another minute: the outage outlasts the old 64 s schedule.
        receiver.set(DOWN);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        serve(listener, Arc::clone(&receiver));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(receiver.accepted_ids().is_empty());
        assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
        receiver.set(UP);
        // The breaker's cool-down is at most `max_backoff_ms` (300 s); then it all flows.
        until_received(&receiver, 60, Duration::from_secs(400)).await;
        while store.position("crm").await.unwrap() < 60
            || !store.parked("crm").await.unwrap().is_empty()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        running.stop().await;
        receiver.assert_per_user_order();
        assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
        assert_eq!(metrics.sink_inflight(&Id::new("crm")).get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_event_is_a_dead_letter_at_once_and_the_rest_flows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=20 {
            put_for(&store, n, n % 4).await;
        }
        let (receiver, port) = listening_receiver().await;
        receiver.rejects.lock().unwrap().push("e0005".into());
        let worker = new_worker(sink_config("crm", 4), http_sink(port), &store);
        let running = run(worker);
        until_position(&store, "crm", 20).await;
        running.stop().await;
        let letters = store.dead_letters(None, None, 10).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(
            (letters[0].event_id.as_str(), letters[0].attempts),
            ("e0005", 1)
        );
        let mut expected = all_ids(20);
        expected.remove("e0005");
        assert_eq!(receiver.accepted_ids(), expected);
        assert_eq!(
            receiver.requests(),
            20,
            "no retries: nothing failed transiently"
        );
        receiver.assert_per_user_order();
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_backs_off_a_failing_endpoint_and_a_recovery_frees_every_held_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=20 {
            put_for(&store, n, n).await;
        }
        let (receiver, port) = listening_receiver().await;
        receiver.set(DOWN);
        let worker = new_worker(sink_config("crm", 4), http_sink(port), &store);
        let running = run(worker);
        // The paused clock runs ahead whenever the worker waits on the store's thread, so
        // the test waits for progress, then lets ten minutes pass.
        while receiver.requests() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        // Without the breaker each of the 20 users would be retried on its own schedule
        // (about a dozen attempts each in ten minutes); with it, a handful of failures
        // open it and one trial goes out per cool-down (0.5 s doubling to 300 s).
        let during_outage = receiver.requests();
        assert!(
            (5..=30).contains(&during_outage),
            "{during_outage} requests in ten minutes of outage"
        );
        receiver.set(UP);
        let before = receiver.requests();
        until_received(&receiver, 20, Duration::from_secs(400)).await;
        // One trial closes the breaker and every held user is sent at once: one request
        // per event (and the trial), no retries.
        assert!(
            receiver.requests() - before <= 21,
            "{} requests after the recovery",
            receiver.requests() - before
        );
        running.stop().await;
        assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_past_the_horizon_is_a_dead_letter_and_the_user_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=3 {
            put_for(&store, n, 1).await;
        }
        let (receiver, port) = listening_receiver().await;
        receiver.set(DOWN);
        let mut config = sink_config("crm", 4);
        config.delivery.retry_horizon = Duration::from_secs(600);
        let worker = new_worker(config, http_sink(port), &store);
        let running = run(worker);
        // The first failure parks the user's line: e0001 held, e0002 and e0003 behind it.
        while store.parked("crm").await.unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let parked = store.parked("crm").await.unwrap();
        assert_eq!(parked.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2, 3]);
        // The position moves past them.
        until_position(&store, "crm", 3).await;
        // Down for 9 minutes: inside the horizon, nothing is given up.
        tokio::time::sleep(Duration::from_secs(9 * 60)).await;
        assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
        // Past the horizon: the held event (e0001) is a dead letter; the user's next events
        // count their own horizon from their own first failure, and wait.
        tokio::time::sleep(Duration::from_secs(2 * 60)).await;
        while store.dead_letters(None, None, 10).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let letters = store.dead_letters(None, None, 10).await.unwrap();
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].event_id, "e0001");
        assert!(
            letters[0].error.contains("retry horizon"),
            "{}",
            letters[0].error
        );
        receiver.set(UP);
        let rest: std::collections::BTreeSet<String> = ["e0002".into(), "e0003".into()].into();
        while receiver.accepted_ids() != rest {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        receiver.assert_per_user_order();
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn max_attempts_makes_a_dead_letter_before_the_horizon_when_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        put_for(&store, 1, 1).await;
        let (receiver, port) = listening_receiver().await;
        receiver.set(DOWN);
        let delivery = DeliveryConfig {
            max_attempts: Some(3),
            ..DeliveryConfig::default()
        };
        let running = run(new_worker_with(
            sink_config("crm", 4),
            http_sink(port),
            &store,
            Arc::default(),
            delivery,
        ));
        // Three attempts take seconds (0.5 s doubling, full jitter); the horizon is three
        // days. The bound only keeps a regression from spinning through them.
        let started = tokio::time::Instant::now();
        while store.dead_letters(None, None, 10).await.unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "no dead letter after {} attempts",
                receiver.requests()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        running.stop().await;
        let letters = store.dead_letters(None, None, 10).await.unwrap();
        assert_eq!(
            (letters[0].event_id.as_str(), letters[0].attempts),
            ("e0001", 3)
        );
        assert!(
            letters[0].error.contains("max_attempts"),
            "{}",
            letters[0].error
        );
        assert_eq!(
            receiver.requests(),
            3,
            "no attempt after the last allowed one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_commit_the_next_round_waits_the_linger_and_shutdown_cuts_it_short() {
        let (commit, mut committed) = watch::channel(0_i64);
        let (stop, mut shutdown) = watch::channel(false);
        let linger = Duration::from_millis(10);
        let idle = Duration::from_secs(60);
        // A commit: the round starts `linger` later, not at once and not at `idle`.
        let started = tokio::time::Instant::now();
        commit.send(1).unwrap();
        wait_for_round(&mut committed, &mut shutdown, linger, idle).await;
        assert_eq!(started.elapsed(), linger);
        // Without a linger, at the commit itself.
        let started = tokio::time::Instant::now();
        commit.send(2).unwrap();
        wait_for_round(&mut committed, &mut shutdown, Duration::ZERO, idle).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Nothing committed: at `idle`.
        let started = tokio::time::Instant::now();
        wait_for_round(&mut committed, &mut shutdown, linger, idle).await;
        assert_eq!(started.elapsed(), idle);
        // A shutdown during the linger ends the wait at once.
        commit.send(3).unwrap();
        let started = tokio::time::Instant::now();
        let waiting = wait_for_round(&mut committed, &mut shutdown, Duration::from_secs(5), idle);
        let stopping = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            stop.send(true).unwrap();
        };
        tokio::join!(waiting, stopping);
        assert_eq!(started.elapsed(), Duration::from_millis(1));
    }

    /// A sink that records when (on tokio's clock) each event came.
    #[derive(Debug, Default)]
    struct Clocked(std::sync::Mutex<Vec<(String, tokio::time::Instant)>>);

    impl Clocked {
        /// The ids of the events sent so far, in the order they came.
        fn ids(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|(id, _)| id.clone())
                .collect()
        }
    }

    #[derive(Debug)]
    struct ClockedSink(Arc<Clocked>);

    /// Waits (on tokio's clock) until `sink`'s position reaches `seq`.
    async fn until_position(store: &Store, sink: &str, seq: i64) {
        while store.position(sink).await.unwrap() < seq {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A store in `dir` holding events 1-5 (of users 1-5), their commits announced.
    async fn store_with_five_events(dir: &std::path::Path) -> Store {
        let store = Store::open(dir.join("db")).unwrap();
        for n in 1..=5 {
            put_for(&store, n, n).await;
        }
        // Subscribers learn of a commit just after it is answered.
        let mut committed = store.subscribe();
        committed.wait_for(|seq| *seq == 5).await.unwrap();
        store
    }

    #[rollcall_core::async_trait]
    impl Sink for ClockedSink {
        async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
            self.0
                 .0
                .lock()
                .unwrap()
                .push((event.event_id.clone(), tokio::time::Instant::now()));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_paces_requests_across_all_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=30 {
            put_for(&store, n, n).await;
        }
        let clocked = Arc::new(Clocked::default());
        let mut config = sink_config("crm", 16);
        config.delivery.rate_limit_per_second = Some(10.0);
        let worker = new_worker(config, Box::new(ClockedSink(Arc::clone(&clocked))), &store);
        let running = run(worker);
        until_position(&store, "crm", 30).await;
        running.stop().await;
        let sent = clocked.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 30);
        let mut times: Vec<_> = sent.iter().map(|(_, at)| *at).collect();
        times.sort();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(99),
                "two requests {:?} apart",
                pair[1] - pair[0]
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sink_started_now_skips_the_retained_journal_and_a_paused_one_waits() {
        let clocked = Arc::new(Clocked::default());
        let mut config = sink_config("fresh", 4);
        config.delivery.start = StartAt::Now;
        let dir = tempfile::tempdir().unwrap();
        let fresh_store = store_with_five_events(dir.path()).await;
        let worker = new_worker(
            config,
            Box::new(ClockedSink(Arc::clone(&clocked))),
            &fresh_store,
        );
        let running = run(worker);
        until_position(&fresh_store, "fresh", 5).await;
        put_for(&fresh_store, 6, 6).await;
        until_position(&fresh_store, "fresh", 6).await;
        assert_eq!(clocked.ids(), ["e0006"], "only what came after the start");
        // Paused: nothing goes out, however long; resumed: it flows.
        fresh_store.set_paused("fresh", true).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        put_for(&fresh_store, 7, 7).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clocked.0.lock().unwrap().len(), 1);
        assert_eq!(fresh_store.position("fresh").await.unwrap(), 6);
        fresh_store.set_paused("fresh", false).await.unwrap();
        until_position(&fresh_store, "fresh", 7).await;
        assert_eq!(clocked.0.lock().unwrap().len(), 2);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sink_paused_before_its_first_run_still_starts_now_when_resumed() {
        let clocked = Arc::new(Clocked::default());
        let mut config = sink_config("fresh", 4);
        config.delivery.start = StartAt::Now;
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_five_events(dir.path()).await;
        // Paused (and so kept in the store) before any worker of it ever ran.
        store.set_paused("fresh", true).await.unwrap();
        let running = run(new_worker(
            config,
            Box::new(ClockedSink(Arc::clone(&clocked))),
            &store,
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(clocked.0.lock().unwrap().is_empty(), "paused: nothing sent");
        store.set_paused("fresh", false).await.unwrap();
        put_for(&store, 6, 6).await;
        until_position(&store, "fresh", 6).await;
        running.stop().await;
        assert_eq!(clocked.ids(), ["e0006"], "only what came after the start");
    }

    /// A sink that takes batches, recording each call's events and what it delivered; the
    /// events named in `fail_once` fail (transiently) the first time they are attempted.
    #[derive(Debug, Default)]
    struct Batches {
        calls: std::sync::Mutex<Vec<Vec<String>>>,
        delivered: std::sync::Mutex<Vec<String>>,
        fail_once: std::sync::Mutex<HashSet<String>>,
    }

    impl Batches {
        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }

        fn delivered(&self) -> Vec<String> {
            self.delivered.lock().unwrap().clone()
        }
    }

    #[derive(Debug)]
    struct BatchSink(Arc<Batches>);

    #[rollcall_core::async_trait]
    impl Sink for BatchSink {
        async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
            self.send_batch(std::slice::from_ref(event))
                .await
                .into_result()
        }

        async fn send_batch(&self, events: &[OutboundEvent]) -> BatchOutcome {
            let ids: Vec<String> = events.iter().map(|event| event.event_id.clone()).collect();
            self.0.calls.lock().unwrap().push(ids);
            for (index, event) in events.iter().enumerate() {
                if self.0.fail_once.lock().unwrap().remove(&event.event_id) {
                    return BatchOutcome::failed(index, SinkError::transient("down for a moment"));
                }
                self.0
                    .delivered
                    .lock()
                    .unwrap()
                    .push(event.event_id.clone());
            }
            BatchOutcome::all(events.len())
        }
    }

    fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
        range.map(|n| format!("e{n:04}")).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batching_sink_gets_every_event_once_in_journal_order_and_a_failure_is_retried_in_place(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=20 {
            put_for(&store, n, n % 3).await;
        }
        let batches = Arc::new(Batches::default());
        batches.fail_once.lock().unwrap().insert("e0005".into());
        let worker = new_worker(
            sink_config("file", 1),
            Box::new(BatchSink(Arc::clone(&batches))),
            &store,
        );
        let running = run(worker);
        until_position(&store, "file", 20).await;
        running.stop().await;

        assert_eq!(
            batches.delivered(),
            ids(1..=20),
            "each event once, in order"
        );
        // The round in one call; the failed event alone, retried in place as a single
        // send would be; then the rest of the round in one call.
        assert_eq!(
            batches.calls(),
            [ids(1..=20), ids(5..=5), ids(6..=20)],
            "the calls the sink got"
        );
        assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
        assert!(store.parked("file").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_in_the_middle_of_a_batch_parks_the_users_line_like_a_failed_send() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db")).unwrap();
        for n in 1..=8 {
            put_for(&store, n, 1).await;
        }
        let batches = Arc::new(Batches::default());
        batches.fail_once.lock().unwrap().insert("e0004".into());
        let worker = new_worker(
            sink_config("crm", 4),
            Box::new(BatchSink(Arc::clone(&batches))),
            &store,
        );
        let running = run(worker);
        until_position(&store, "crm", 8).await;
        while batches.delivered().len() < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while !store.parked("crm").await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running.stop().await;

        assert_eq!(batches.delivered(), ids(1..=8), "each event once, in order");
        // The user's line in one call; e0004 failed in it and was parked with e0005-e0008
        // behind it; the parked line is retried one event at a time, e0004 first.
        let mut expected = vec![ids(1..=8)];
        expected.extend((4..=8).map(|n| ids(n..=n)));
        assert_eq!(batches.calls(), expected, "the calls the sink got");
        assert!(store.dead_letters(None, None, 10).await.unwrap().is_empty());
    }
}
