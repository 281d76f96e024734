//! Delivery workers: one per sink, in journal order, at least once.
//!
//! A worker reads the journal after its sink's cursor, sends each event the sink's filter
//! accepts, and retries transient failures with exponential backoff and full jitter (or the
//! sink's `Retry-After`). A permanent failure, or a transient one that outlasts the
//! schedule, makes the event a dead letter and the worker moves on. After each batch it
//! flushes the sink and then advances the sink's position, so an event is only forgotten
//! once the sink has it: a crash re-sends at most one batch.
//!
//! Every round runs under the sink's lease (taken or renewed at the start of the round, for
//! [`LEASE_TTL`]): only its holder moves the position, and a worker whose lease was taken
//! over is fenced off by the store and starts over, so at-least-once holds across a
//! hand-over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rollcall_core::{EventType, Format, OutboundEvent, Sink, SinkError, Timestamp};
use rollcall_store::{Advance, JournalEntry, Lease, Store};
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{DeliveryConfig, SinkConfig};
use crate::metrics::Metrics;

/// How often an idle worker looks for requested replays.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// How long a sink's lease lasts unless renewed (every round renews it).
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// One sink's delivery loop.
#[derive(Debug)]
pub struct Worker {
    pub config: SinkConfig,
    pub sink: Box<dyn Sink>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub delivery: DeliveryConfig,
    /// Who this worker is to the store's leases: unique per process.
    pub holder: String,
    /// The lease this worker last took or renewed.
    pub held: std::sync::Mutex<Option<Lease>>,
}

/// Why a send loop gave up on an event.
enum Failure {
    /// The event is a dead letter: attempts made and the last error.
    Dead { attempts: u32, error: String },
    /// Shutdown was requested mid-retry; the event stays pending.
    Stopped,
}

impl Worker {
    /// Runs until `shutdown` turns true; then delivers what the journal holds (one attempt
    /// per event), flushes and records its cursor.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let sink_id = self.config.id.clone();
        let mut committed = self.store.subscribe();
        tracing::info!(sink = %sink_id, kind = %self.config.kind, "delivery worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(error) = self.replay_dead_letters(&shutdown).await {
                tracing::error!(sink = %sink_id, error = %error, "dead-letter replay failed");
            }
            match self.deliver_batch(&shutdown).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    // The lease may be what failed (taken over): ask the store next round.
                    self.forget_lease_unless(None);
                    tracing::error!(sink = %sink_id, error = %error, "delivery round failed");
                }
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = committed.changed() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
        // The listeners have stopped, so the journal no longer grows: deliver what it holds,
        // one attempt per event (a failure ends the drain without a backoff wait), so a clean
        // stop leaves nothing behind that a healthy sink could take. The daemon bounds this
        // (WORKER_DRAIN); whatever is left stays in the journal for the next start.
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
        let reusable = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .filter(|lease| {
                let left = lease.expires_at.unix_millis() - now.unix_millis();
                u128::try_from(left).unwrap_or(0) > LEASE_TTL.as_millis() / 2
            });
        if let Some(mut lease) = reusable {
            lease.position = self.store.position(&self.config.id).await?;
            return Ok(Some(lease));
        }
        let lease = self
            .store
            .acquire_lease(&self.config.id, &self.holder, LEASE_TTL, now)
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

    /// Delivers one batch after the sink's position. Returns whether there was anything to
    /// do.
    async fn deliver_batch(&self, shutdown: &watch::Receiver<bool>) -> anyhow::Result<bool> {
        let sink_id = &self.config.id;
        let Some(lease) = self.lease().await? else {
            tracing::debug!(sink = %sink_id, "another holder delivers this sink");
            return Ok(false);
        };
        let cursor = lease.position;
        let entries = self
            .store
            .journal_after(cursor, self.delivery.batch_size)
            .await?;
        let latest = *self.store.subscribe().borrow();
        self.metrics.set_gauge(
            "rollcall_sink_lag_events",
            &[("sink", sink_id)],
            latest.saturating_sub(cursor),
        );
        if entries.is_empty() {
            return Ok(false);
        }
        // `recorded` is where the store's cursor is as far as this round knows; every move
        // is conditional on it, so an operator's rewind in the middle of a round wins.
        let mut recorded = cursor;
        let mut done = cursor;
        for entry in &entries {
            if !self.config.accepts(&entry.source, &entry.event_type) {
                done = entry.seq;
                continue;
            }
            let span = tracing::info_span!(
                "send",
                sink = %self.config.id,
                event_id = %entry.event_id,
                seq = entry.seq,
            );
            match self
                .send_with_retries(entry, shutdown)
                .instrument(span)
                .await
            {
                Ok(()) => done = entry.seq,
                Err(Failure::Stopped) => break,
                Err(Failure::Dead { attempts, error }) => {
                    // Everything before this event is sent; make it durable, then record the
                    // dead letter and move the cursor past it in one commit.
                    if !self.flush_and_advance(&lease, &mut recorded, done).await? {
                        return Ok(true);
                    }
                    let Some(_) = self
                        .store
                        .dead_letter(&lease, entry, attempts, &error, recorded)
                        .await?
                    else {
                        tracing::info!(sink = %sink_id, "cursor moved by an operator; starting over from it");
                        return Ok(true);
                    };
                    recorded = entry.seq;
                    self.metrics
                        .increment("rollcall_dead_letters_total", &[("sink", sink_id)]);
                    tracing::warn!(sink = %sink_id, event_id = %entry.event_id, attempts, error = %error, "event moved to dead letters");
                    done = entry.seq;
                }
            }
        }
        self.flush_and_advance(&lease, &mut recorded, done).await?;
        Ok(done > cursor)
    }

    /// Flushes the sink and moves the cursor from `recorded` to `done`. Returns false (and
    /// moves nothing) when the cursor is no longer at `recorded`: someone rewound it.
    async fn flush_and_advance(
        &self,
        lease: &Lease,
        recorded: &mut i64,
        done: i64,
    ) -> anyhow::Result<bool> {
        if done <= *recorded {
            return Ok(true);
        }
        self.sink
            .flush()
            .await
            .map_err(|error| anyhow::anyhow!("flush failed: {error}"))?;
        if self.store.advance(lease, *recorded, done).await? == Advance::PositionChanged {
            tracing::info!(sink = %self.config.id, "cursor moved by an operator; starting over from it");
            return Ok(false);
        }
        *recorded = done;
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

    async fn send_with_retries(
        &self,
        entry: &JournalEntry,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), Failure> {
        let sink_id = &self.config.id;
        let outbound = self
            .render(entry)
            .map_err(|error| Failure::Dead { attempts: 0, error })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = self.sink.send(&outbound).await;
            self.metrics.observe(
                "rollcall_delivery_duration_seconds",
                &[("sink", sink_id)],
                started.elapsed(),
            );
            let error = match result {
                Ok(()) => {
                    self.metrics
                        .increment("rollcall_sink_sent_total", &[("sink", sink_id)]);
                    return Ok(());
                }
                Err(error) => error,
            };
            // Sink errors quote what endpoints and databases answered; scrubbed before any
            // log line or dead letter holds them.
            let message = scrubbed(&error.to_string());
            let kind = if error.is_permanent() {
                "permanent"
            } else {
                "transient"
            };
            self.metrics.increment(
                "rollcall_sink_failed_total",
                &[("sink", sink_id), ("kind", kind)],
            );
            let retry_after = match &error {
                SinkError::Permanent { message } => {
                    return Err(Failure::Dead {
                        attempts: attempt,
                        error: scrubbed(message),
                    })
                }
                SinkError::Transient { retry_after, .. } => *retry_after,
            };
            if attempt >= self.delivery.max_attempts {
                return Err(Failure::Dead {
                    attempts: attempt,
                    error: message,
                });
            }
            let wait = retry_after
                .map(|hint| hint.min(self.delivery.max_backoff()))
                .unwrap_or_else(|| full_jitter(&self.delivery, attempt));
            tracing::info!(sink = %sink_id, event_id = %entry.event_id, attempt, wait_ms = wait.as_millis() as u64, error = %message, "send failed; retrying");
            let mut shutdown = shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Err(Failure::Stopped),
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
                    self.metrics
                        .increment("rollcall_sink_sent_total", &[("sink", sink_id)]);
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

/// Exponential backoff with full jitter: a uniform wait in `[0, min(max, initial * 2^(n-1))]`.
pub fn full_jitter(delivery: &DeliveryConfig, attempt: u32) -> Duration {
    let ceiling = backoff_ceiling(delivery, attempt);
    let millis = ceiling.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::random_range(0..=millis))
}

/// The upper bound of the `attempt`-th wait.
pub fn backoff_ceiling(delivery: &DeliveryConfig, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    delivery
        .initial_backoff()
        .saturating_mul(1u32 << exponent.min(31))
        .min(delivery.max_backoff())
}

/// The longest sink error text logged or kept with a dead letter.
const MAX_SINK_ERROR_CHARS: usize = 300;

/// A sink's error text fit for logs and the store: one line, bounded, no email addresses,
/// phone numbers or tokens.
fn scrubbed(text: &str) -> String {
    rollcall_core::scrub::snippet(text, MAX_SINK_ERROR_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::Format;

    #[test]
    fn backoff_ceilings_double_and_stop_at_the_maximum() {
        let delivery = DeliveryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..DeliveryConfig::default()
        };
        let ceilings: Vec<_> = (1..=6)
            .map(|n| backoff_ceiling(&delivery, n).as_millis())
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff_ceiling(&delivery, 200).as_millis(), 1000);
    }

    #[test]
    fn jittered_waits_stay_within_the_ceiling() {
        let delivery = DeliveryConfig {
            initial_backoff_ms: 50,
            max_backoff_ms: 400,
            ..DeliveryConfig::default()
        };
        for attempt in 1..10 {
            for _ in 0..50 {
                assert!(full_jitter(&delivery, attempt) <= backoff_ceiling(&delivery, attempt));
            }
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
        let worker = Worker {
            config: SinkConfig {
                id: "crm".into(),
                kind: "test".into(),
                sources: None,
                types: None,
                format: Format::Native,
                options: serde_json::Value::Null,
            },
            sink: Box::new(GateSink(Arc::new(Gate::default()))),
            store: store.clone(),
            metrics: Arc::new(Metrics::default()),
            delivery: DeliveryConfig::default(),
            holder: "test-worker".into(),
            held: Default::default(),
        };
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
        let worker = Worker {
            config: SinkConfig {
                id: "crm".into(),
                kind: "test".into(),
                sources: None,
                types: None,
                format: Format::Native,
                options: serde_json::Value::Null,
            },
            sink: Box::new(GateSink(Arc::clone(&gate))),
            store: store.clone(),
            metrics: Arc::new(Metrics::default()),
            delivery: DeliveryConfig::default(),
            holder: "test-worker".into(),
            held: Default::default(),
        };
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(worker.run(shutdown));
        while store.position("crm").await.unwrap() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *gate.hold.lock().unwrap() = Some("e04".into());
        for n in 4..=6 {
            put(&store, n).await;
        }
        gate.holding.notified().await;
        // The operator replays everything while the worker is in the middle of e04.
        let since = rollcall_core::Timestamp::from_unix_seconds(1_800_000_000).unwrap();
        assert_eq!(store.rewind("crm", since).await.unwrap(), 0);
        gate.release.notify_one();
        while store.position("crm").await.unwrap() < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        let sent = gate.sent.lock().unwrap().clone();
        assert_eq!(
            sent.iter().filter(|id| *id == "e01").count(),
            2,
            "the rewind must send e01..e03 again: {sent:?}"
        );
    }
}
