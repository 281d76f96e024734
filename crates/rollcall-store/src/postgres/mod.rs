//! The shared backend: PostgreSQL, for any number of replicas behind a load balancer.
//!
//! Every replica opens the same schema through a small connection pool
//! ([deadpool-postgres](https://docs.rs/deadpool-postgres): tokio-only, recycles broken
//! connections). What makes it safe to share:
//!
//! * **Dedup across replicas**: the dedup check and the insert of the key run in the
//!   appending transaction under the journal's counter lock, backed by the primary key on
//!   `dedup (source, key)`: the same delivery at two replicas at once is accepted once.
//! * **The directory**: the appending transaction reads and locks the users it changes
//!   after taking the counter lock, so `previous`/`changes` follow the state the commit
//!   really follows and no update is lost.
//! * **No delivery gap**: sequence numbers are taken from the counter row, locked until the
//!   transaction commits, so they become visible in commit order ([`append`]).
//! * **Leases**: a sink's position and lease are one row, changed only under `FOR UPDATE`;
//!   every position change checks the fencing token in the same transaction.
//!
//! Connections are plain TCP (no TLS client is linked): `sslmode=require` is refused at
//! open rather than silently downgraded.
//!
//! Ingest on one replica goes through one writer task (group commit, [`append`]); every
//! other write is a short transaction of its own. [`JournalStore::subscribe`] follows
//! commits of other replicas by polling the counter every [`COMMITTED_POLL`].

mod append;
pub(crate) mod schema;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rollcall_core::Timestamp;
use tokio::sync::watch;
use tokio_postgres::{NoTls, Row};

use crate::contract::{
    Backend, DeliveryStore, DirectoryStore, IngestStore, JournalStore, OperatorStore,
    RetentionStore, SyncStore,
};
use crate::{
    Advance, CommitStats, DeadLetter, DeadLetterState, DirectoryEntry, IngestBatch, IngestOutcome,
    JournalEntry, Lease, ParkedEvent, PrunePolicy, PruneReport, QuarantineState,
    QuarantinedDelivery, RejectedDelivery, Result, StoreCounts, StoreError, UserQuery,
};
use crate::{SyncBatch, SyncCommit, SyncState};

/// How often a replica reads the journal's counter to notice commits of other replicas:
/// the bound on how late [`JournalStore::subscribe`] reports them.
pub const COMMITTED_POLL: Duration = Duration::from_millis(100);

/// How long opening a connection may take before the store counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a caller waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How long a statement waits for a row lock (the journal's counter, a sink's cursor)
/// before it fails and the caller answers 503: a replica never hangs behind another.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long PostgreSQL lets a session sit idle inside a transaction before it ends the
/// session: a replica that vanished mid-transaction (partitioned, frozen) releases the
/// journal's counter lock after this, not after TCP keepalive's hours.
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach the PostgreSQL store.
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key/value string (may carry a password: never logged).
    pub url: String,
    /// The schema holding rollcall's tables (created if missing).
    pub schema: String,
    /// Connections this replica keeps at most.
    pub pool_size: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// A database error as the contract's neutral error. A closed pool means the store was
/// closed.
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::unavailable(error)
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable {
            message: other.to_string(),
            source: None,
        },
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
}

/// What the writer task, the poller and the handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pool: Pool,
    pub(crate) counters: Counters,
    pub(crate) committed: watch::Sender<i64>,
    closed: AtomicBool,
}

impl Shared {
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.pool.get().await.map_err(pool_error)
    }
}

/// The PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgBackend {
    shared: Arc<Shared>,
    writer: append::Writer,
    /// Where the store is, for messages: host, port, database and schema, never the
    /// password.
    location: Arc<str>,
}

impl PgBackend {
    /// Connects, applies the migrations the schema has not seen, and starts this replica's
    /// writer and commit poller. Fails when the schema is newer than this rollcall knows.
    pub async fn open(options: &PgOptions) -> Result<Self> {
        let mut config: tokio_postgres::Config =
            options.url.parse().map_err(|error| StoreError::Open {
                location: "the [store] url".to_owned(),
                message: format!("not a PostgreSQL connection string: {error}"),
            })?;
        let location = describe(&config, &options.schema);
        if !crate::is_valid_postgres_schema(&options.schema) {
            return Err(StoreError::Open {
                location,
                message: format!(
                    "schema {:?}: use lower-case letters, digits and _ (not starting with a \
                     digit or pg_), at most 63",
                    options.schema
                ),
            });
        }
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::Open {
                location,
                message: "sslmode=require: this rollcall connects to PostgreSQL without TLS \
                          (run it on a private network or behind a local TLS proxy)"
                    .to_owned(),
            });
        }
        config
            .options(format!(
                "-c search_path={} -c lock_timeout={}ms -c idle_in_transaction_session_timeout={}ms",
                options.schema,
                LOCK_TIMEOUT.as_millis(),
                IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
            ))
            .application_name("rollcall")
            .connect_timeout(CONNECT_TIMEOUT)
            // A connection whose peer vanished without closing it (a partition) is found
            // dead within about 25 s, not after the kernel's default two hours.
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        let open_error = |error: tokio_postgres::Error| StoreError::Open {
            location: location.clone(),
            message: error.to_string(),
        };
        {
            let (mut client, connection) = config.connect(NoTls).await.map_err(open_error)?;
            let driver = tokio::spawn(connection);
            schema::migrate(&mut client, &options.schema, &location).await?;
            drop(client);
            let _ = driver.await;
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|error| StoreError::Open {
                location: location.clone(),
                message: error.to_string(),
            })?;
        let last_seq: i64 = {
            let client = pool.get().await.map_err(|error| StoreError::Open {
                location: location.clone(),
                message: error.to_string(),
            })?;
            client
                .query_one("SELECT value FROM meta WHERE name = 'last_seq'", &[])
                .await
                .map_err(open_error)?
                .get(0)
        };
        let (committed, _) = watch::channel(last_seq);
        let shared = Arc::new(Shared {
            pool,
            counters: Counters::default(),
            committed,
            closed: AtomicBool::new(false),
        });
        tokio::spawn(poll_committed(Arc::downgrade(&shared)));
        Ok(Self {
            writer: append::Writer::start(Arc::clone(&shared)),
            shared,
            location: location.into(),
        })
    }

    /// Where the store is (no password), for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.shared.client().await
    }

    /// Counts a transaction of `writes` writes that committed.
    fn committed(&self, writes: u64) {
        self.shared.counters.committed(writes);
    }
}

/// host:port/database (schema), for messages: never the user or the password.
fn describe(config: &tokio_postgres::Config, schema: &str) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{host}:{port}/{database} (schema {schema})")
}

/// Raises the committed sequence to what other replicas committed, every
/// [`COMMITTED_POLL`], until the store is closed or dropped. Errors are left to the callers
/// of the store (and to readiness): this only wakes workers.
async fn poll_committed(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(COMMITTED_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = shared.pool.get().await else {
            continue;
        };
        if let Ok(row) = client
            .query_one("SELECT value FROM meta WHERE name = 'last_seq'", &[])
            .await
        {
            append::raise(&shared.committed, row.get(0));
        }
    }
}

fn timestamp(millis: i64) -> Result<Timestamp> {
    Timestamp::from_unix_millis(millis)
        .map_err(|error| StoreError::Corrupt(format!("stored timestamp {millis}: {error}")))
}

fn state<T>(text: &str) -> Result<T>
where
    T: std::str::FromStr<Err = StoreError>,
{
    text.parse()
        .map_err(|error: StoreError| StoreError::Corrupt(error.to_string()))
}

const JOURNAL_COLUMNS: &str = "seq, event_id, source, event_type, received_at, event";

fn journal_row(row: &Row, at: usize) -> JournalEntry {
    JournalEntry {
        seq: row.get(at),
        event_id: row.get(at + 1),
        source: row.get(at + 2),
        event_type: row.get(at + 3),
        received_at_ms: row.get(at + 4),
        event: row.get(at + 5),
    }
}

const QUARANTINE_COLUMNS: &str =
    "id, source, connector, received_at, code, message, path, method, headers, query, body, state";

fn quarantine_row(row: &Row) -> Result<QuarantinedDelivery> {
    let headers: String = row.get(8);
    let body: Vec<u8> = row.get(10);
    let state_name: String = row.get(11);
    Ok(QuarantinedDelivery {
        id: row.get(0),
        body_bytes: body.len(),
        delivery: RejectedDelivery {
            source: row.get(1),
            connector: row.get(2),
            received_at: timestamp(row.get(3))?,
            code: row.get(4),
            message: row.get(5),
            path: row.get(6),
            method: row.get(7),
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            query: row.get(9),
            body,
        },
        state: state(&state_name)?,
    })
}

const DEAD_LETTER_COLUMNS: &str = "id, sink, seq, event_id, failed_at, attempts, error, state";

fn dead_letter_row(row: &Row) -> Result<DeadLetter> {
    let attempts: i32 = row.get(5);
    let state_name: String = row.get(7);
    Ok(DeadLetter {
        id: row.get(0),
        sink: row.get(1),
        seq: row.get(2),
        event_id: row.get(3),
        failed_at: timestamp(row.get(4))?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        error: row.get(6),
        state: state(&state_name)?,
    })
}

const USER_COLUMNS: &str = "source, version, deleted, partial, updated_at, \"user\"";

fn directory_row(row: &Row) -> Result<DirectoryEntry> {
    let user: Vec<u8> = row.get(5);
    Ok(DirectoryEntry {
        source: row.get(0),
        version: row.get(1),
        deleted: row.get(2),
        partial: row.get(3),
        updated_at: timestamp(row.get(4))?,
        user: serde_json::from_slice(&user)?,
    })
}

/// The sink's cursor row, locked until the transaction ends: (seq, holder, token).
async fn locked_cursor(
    tx: &tokio_postgres::Transaction<'_>,
    sink: &str,
) -> Result<Option<(i64, Option<String>, i64, i64)>> {
    Ok(tx
        .query_opt(
            "SELECT seq, holder, token, expires_at FROM cursors WHERE sink = $1 FOR UPDATE",
            &[&sink],
        )
        .await
        .map_err(pg_error)?
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3))))
}

/// The position under `lease`, locked; `LeaseLost` when the lease is no longer current.
async fn check_lease(tx: &tokio_postgres::Transaction<'_>, lease: &Lease) -> Result<i64> {
    match locked_cursor(tx, &lease.sink).await? {
        Some((seq, Some(holder), token, _)) if token == lease.token && holder == lease.holder => {
            Ok(seq)
        }
        _ => Err(StoreError::LeaseLost {
            sink: lease.sink.clone(),
        }),
    }
}

async fn upsert_position(tx: &tokio_postgres::Transaction<'_>, sink: &str, seq: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO cursors (sink, seq) VALUES ($1, $2) \
         ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, positioned = true",
        &[&sink, &seq],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

#[async_trait]
impl IngestStore for PgBackend {
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestOutcome> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.writer.ingest(batch).await
    }

    async fn dedup_seen(&self, source: &str, dedup_key: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT 1 FROM dedup WHERE source = $1 AND key = $2",
                &[&source, &dedup_key],
            )
            .await
            .map_err(pg_error)?
            .is_some())
    }

    async fn quarantine(&self, entry: RejectedDelivery) -> Result<i64> {
        let headers = serde_json::to_string(&entry.headers)?;
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO quarantine (source, connector, received_at, code, message, path, \
                 method, headers, query, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 RETURNING id",
                &[
                    &entry.source,
                    &entry.connector,
                    &entry.received_at.unix_millis(),
                    &entry.code,
                    &entry.message,
                    &entry.path,
                    &entry.method,
                    &headers,
                    &entry.query,
                    &entry.body,
                ],
            )
            .await
            .map_err(pg_error)?;
        self.committed(1);
        Ok(row.get(0))
    }

    async fn resolve_quarantine(&self, id: i64, batch: IngestBatch) -> Result<IngestOutcome> {
        let now = Timestamp::now().unix_millis();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let open = tx
            .query_opt(
                "SELECT 1 FROM quarantine WHERE id = $1 AND state = 'open' FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        if open.is_none() {
            return Err(StoreError::NotFound {
                what: "open quarantined delivery",
                id: id.to_string(),
            });
        }
        let last_seq = append::lock_counter(&tx).await?;
        let (mut outcomes, last_seq) = append::append(&tx, last_seq, vec![batch]).await?;
        tx.execute(
            "UPDATE quarantine SET state = 'replayed', resolved_at = $2 WHERE id = $1",
            &[&id, &now],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        append::raise(&self.shared.committed, last_seq);
        outcomes.pop().ok_or(StoreError::Closed)
    }
}

#[async_trait]
impl JournalStore for PgBackend {
    async fn journal_after(&self, after_seq: i64, limit: u32) -> Result<Vec<JournalEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {JOURNAL_COLUMNS} FROM journal WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&after_seq, &i64::from(limit)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|row| journal_row(row, 0)).collect())
    }

    async fn journal_entry(&self, seq: i64) -> Result<JournalEntry> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {JOURNAL_COLUMNS} FROM journal WHERE seq = $1"),
                &[&seq],
            )
            .await
            .map_err(pg_error)?
            .map(|row| journal_row(&row, 0))
            .ok_or_else(|| StoreError::NotFound {
                what: "journal entry",
                id: seq.to_string(),
            })
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.shared.committed.subscribe()
    }

    async fn counts(&self) -> Result<StoreCounts> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT COUNT(*) FROM journal), \
                 (SELECT value FROM meta WHERE name = 'last_seq'), \
                 (SELECT COUNT(*) FROM quarantine WHERE state = 'open'), \
                 (SELECT COUNT(*) FROM dead_letters WHERE state <> 'replayed')",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(StoreCounts {
            journal_events: row.get(0),
            last_seq: row.get(1),
            quarantined_open: row.get(2),
            dead_letters: row.get(3),
        })
    }
}

#[async_trait]
impl DeliveryStore for PgBackend {
    async fn acquire_lease(
        &self,
        sink: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<Lease>> {
        let now_ms = now.unix_millis();
        let expires_ms = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let expires_at = Timestamp::from_unix_millis(expires_ms)
            .map_err(|error| StoreError::Invalid(format!("lease expiry: {error}")))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO cursors (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING",
            &[&sink],
        )
        .await
        .map_err(pg_error)?;
        let Some((seq, current, token, expires)) = locked_cursor(&tx, sink).await? else {
            return Err(StoreError::Corrupt(format!(
                "the cursor of sink {sink} vanished"
            )));
        };
        let token = match current.as_deref() {
            // Another holder's lease still runs.
            Some(other) if other != holder && expires > now_ms => return Ok(None),
            // Renewal: same holder, lease still running.
            Some(_) if expires > now_ms => token,
            // A new grant (free, expired, or taken over): a new fencing token.
            _ => token + 1,
        };
        tx.execute(
            "UPDATE cursors SET holder = $2, token = $3, expires_at = $4 WHERE sink = $1",
            &[&sink, &holder, &token, &expires_ms],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(Some(Lease {
            sink: sink.to_owned(),
            holder: holder.to_owned(),
            token,
            position: seq,
            expires_at,
        }))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE cursors SET holder = NULL, expires_at = 0 \
                 WHERE sink = $1 AND token = $2 AND holder = $3",
                &[&lease.sink, &lease.token, &lease.holder],
            )
            .await
            .map_err(pg_error)?;
        self.committed(1);
        Ok(())
    }

    async fn position(&self, sink: &str) -> Result<i64> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT seq FROM cursors WHERE sink = $1", &[&sink])
            .await
            .map_err(pg_error)?
            .map_or(0, |row| row.get(0)))
    }

    async fn advance(&self, lease: &Lease, from: i64, to: i64) -> Result<Advance> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        if check_lease(&tx, lease).await? != from {
            return Ok(Advance::PositionChanged);
        }
        upsert_position(&tx, &lease.sink, to).await?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(Advance::Moved)
    }

    async fn dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
        from: i64,
    ) -> Result<Option<i64>> {
        let now = Timestamp::now().unix_millis();
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        if check_lease(&tx, lease).await? != from {
            return Ok(None);
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO dead_letters (sink, seq, event_id, failed_at, attempts, error) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &lease.sink,
                    &entry.seq,
                    &entry.event_id,
                    &now,
                    &attempts,
                    &error,
                ],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        upsert_position(&tx, &lease.sink, entry.seq).await?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(Some(id))
    }

    async fn park(&self, lease: &Lease, parked: &ParkedEvent) -> Result<()> {
        let attempts = i32::try_from(parked.attempts).unwrap_or(i32::MAX);
        let first_failed_at = parked.first_failed_at.map(|at| at.unix_millis());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        check_lease(&tx, lease).await?;
        tx.execute(
            "INSERT INTO parked (sink, seq, user_key, attempts, first_failed_at, next_attempt_at, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (sink, seq) DO UPDATE SET user_key = excluded.user_key, \
             attempts = excluded.attempts, first_failed_at = excluded.first_failed_at, \
             next_attempt_at = excluded.next_attempt_at, error = excluded.error",
            &[
                &lease.sink,
                &parked.seq,
                &parked.user_key,
                &attempts,
                &first_failed_at,
                &parked.next_attempt_at.unix_millis(),
                &parked.error,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(())
    }

    async fn parked(&self, sink: &str) -> Result<Vec<ParkedEvent>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sink, seq, user_key, attempts, first_failed_at, next_attempt_at, error \
                 FROM parked WHERE sink = $1 ORDER BY seq",
                &[&sink],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let attempts: i32 = row.get(3);
                let first_failed_at: Option<i64> = row.get(4);
                Ok(ParkedEvent {
                    sink: row.get(0),
                    seq: row.get(1),
                    user_key: row.get(2),
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    first_failed_at: first_failed_at.map(timestamp).transpose()?,
                    next_attempt_at: timestamp(row.get(5))?,
                    error: row.get(6),
                })
            })
            .collect()
    }

    async fn unpark(&self, lease: &Lease, seq: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        check_lease(&tx, lease).await?;
        tx.execute(
            "DELETE FROM parked WHERE sink = $1 AND seq = $2",
            &[&lease.sink, &seq],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(())
    }

    async fn record_dead_letter(
        &self,
        lease: &Lease,
        entry: &JournalEntry,
        attempts: u32,
        error: &str,
    ) -> Result<i64> {
        let now = Timestamp::now().unix_millis();
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        check_lease(&tx, lease).await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO dead_letters (sink, seq, event_id, failed_at, attempts, error) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &lease.sink,
                    &entry.seq,
                    &entry.event_id,
                    &now,
                    &attempts,
                    &error,
                ],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        tx.execute(
            "DELETE FROM parked WHERE sink = $1 AND seq = $2",
            &[&lease.sink, &entry.seq],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(id)
    }

    async fn start_at(&self, sink: &str, seq: i64) -> Result<i64> {
        let client = self.client().await?;
        // Two statements, not one: the read must see a row another replica inserted while
        // this insert waited for it.
        client
            .execute(
                "INSERT INTO cursors (sink, seq) VALUES ($1, $2) \
                 ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, positioned = true \
                 WHERE cursors.positioned = false",
                &[&sink, &seq],
            )
            .await
            .map_err(pg_error)?;
        let row = client
            .query_one("SELECT seq FROM cursors WHERE sink = $1", &[&sink])
            .await
            .map_err(pg_error)?;
        self.committed(1);
        Ok(row.get(0))
    }

    async fn paused(&self, sink: &str) -> Result<bool> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT paused FROM cursors WHERE sink = $1", &[&sink])
            .await
            .map_err(pg_error)?
            .is_some_and(|row| row.get(0)))
    }

    async fn pending_replays(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<(DeadLetter, JournalEntry)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.id, d.sink, d.seq, d.event_id, d.failed_at, d.attempts, d.error, d.state, \
                 j.seq, j.event_id, j.source, j.event_type, j.received_at, j.event \
                 FROM dead_letters d JOIN journal j ON j.seq = d.seq \
                 WHERE d.sink = $1 AND d.state = 'replay' ORDER BY d.id LIMIT $2",
                &[&sink, &i64::from(limit)],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| Ok((dead_letter_row(row)?, journal_row(row, 8))))
            .collect()
    }

    async fn finish_replay(&self, id: i64, error: Option<String>) -> Result<()> {
        let now = Timestamp::now().unix_millis();
        let client = self.client().await?;
        match error {
            None => client
                .execute(
                    "UPDATE dead_letters SET state = 'replayed', resolved_at = $2 WHERE id = $1",
                    &[&id, &now],
                )
                .await,
            Some(error) => {
                client
                    .execute(
                        "UPDATE dead_letters SET state = 'dead', attempts = attempts + 1, \
                         error = $2, failed_at = $3 WHERE id = $1",
                        &[&id, &error, &now],
                    )
                    .await
            }
        }
        .map_err(pg_error)?;
        self.committed(1);
        Ok(())
    }
}

#[async_trait]
impl DirectoryStore for PgBackend {
    async fn user(&self, source: &str, user_id: &str) -> Result<DirectoryEntry> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE source = $1 AND user_id = $2"),
                &[&source, &user_id],
            )
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::NotFound {
                what: "user",
                id: format!("{source}/{user_id}"),
            })?;
        directory_row(&row)
    }

    async fn users(&self, query: UserQuery) -> Result<(Vec<DirectoryEntry>, u64)> {
        let user_name = query
            .user_name
            .as_ref()
            .map(|name| name.to_ascii_lowercase());
        let filter = "($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR status = $2) \
             AND ($3::text IS NULL OR lower(username) = $3 OR (username IS NULL AND email = $3)) \
             AND ($4 OR NOT deleted)";
        let client = self.client().await?;
        let total: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM users WHERE {filter}"),
                &[
                    &query.source,
                    &query.status,
                    &user_name,
                    &query.include_deleted,
                ],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE {filter} \
                     ORDER BY source, user_id LIMIT $5 OFFSET $6"
                ),
                &[
                    &query.source,
                    &query.status,
                    &user_name,
                    &query.include_deleted,
                    &i64::from(query.limit),
                    &i64::from(query.offset),
                ],
            )
            .await
            .map_err(pg_error)?;
        let entries = rows.iter().map(directory_row).collect::<Result<Vec<_>>>()?;
        Ok((entries, u64::try_from(total).unwrap_or(0)))
    }
}

#[async_trait]
impl OperatorStore for PgBackend {
    async fn quarantined(
        &self,
        state: Option<QuarantineState>,
        limit: u32,
    ) -> Result<Vec<QuarantinedDelivery>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {QUARANTINE_COLUMNS} FROM quarantine \
                     WHERE ($1::text IS NULL OR state = $1) ORDER BY id DESC LIMIT $2"
                ),
                &[&state.map(QuarantineState::as_str), &i64::from(limit)],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(quarantine_row).collect()
    }

    async fn quarantined_by_id(&self, id: i64) -> Result<QuarantinedDelivery> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?
            .ok_or_else(|| StoreError::NotFound {
                what: "quarantined delivery",
                id: id.to_string(),
            })?;
        quarantine_row(&row)
    }

    async fn dead_letters(
        &self,
        sink: Option<String>,
        state: Option<DeadLetterState>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
                     WHERE ($1::text IS NULL OR sink = $1) AND ($2::text IS NULL OR state = $2) \
                     ORDER BY id DESC LIMIT $3"
                ),
                &[
                    &sink,
                    &state.map(DeadLetterState::as_str),
                    &i64::from(limit),
                ],
            )
            .await
            .map_err(pg_error)?;
        rows.iter().map(dead_letter_row).collect()
    }

    async fn request_replay(&self, sink: Option<String>, ids: Vec<i64>) -> Result<usize> {
        let client = self.client().await?;
        let count = if ids.is_empty() {
            client
                .execute(
                    "UPDATE dead_letters SET state = 'replay' \
                     WHERE state = 'dead' AND ($1::text IS NULL OR sink = $1)",
                    &[&sink],
                )
                .await
        } else {
            client
                .execute(
                    "UPDATE dead_letters SET state = 'replay' \
                     WHERE state = 'dead' AND id = ANY($2) AND ($1::text IS NULL OR sink = $1)",
                    &[&sink, &ids],
                )
                .await
        }
        .map_err(pg_error)?;
        self.committed(1);
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    async fn rewind(&self, sink: &str, since: Timestamp) -> Result<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let current = locked_cursor(&tx, sink).await?.map_or(0, |row| row.0);
        // The first event received at or after `since`, by sequence: events replayed from
        // quarantine keep their original receive time but get a new sequence number.
        let first: Option<i64> = tx
            .query_one(
                "SELECT MIN(seq) FROM journal WHERE received_at >= $1",
                &[&since.unix_millis()],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        let target = first.map_or(current, |first| (first - 1).min(current));
        upsert_position(&tx, sink, target).await?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(target)
    }

    async fn set_paused(&self, sink: &str, paused: bool) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO cursors (sink, seq, paused, positioned) VALUES ($1, 0, $2, false) \
                 ON CONFLICT (sink) DO UPDATE SET paused = excluded.paused",
                &[&sink, &paused],
            )
            .await
            .map_err(pg_error)?;
        self.committed(1);
        Ok(())
    }

    async fn set_position(&self, sink: &str, seq: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        upsert_position(&tx, sink, seq).await?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(())
    }
}

/// Journal rows to delete: old enough, finished by every sink (`seq <= $2`), and neither the
/// event of an open dead letter nor a parked one.
const JOURNAL_BATCH: &str = "DELETE FROM journal WHERE seq IN (\
     SELECT j.seq FROM journal AS j WHERE j.received_at < $1 AND j.seq <= $2 \
     AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.seq = j.seq AND d.state <> 'replayed') \
     AND NOT EXISTS (SELECT 1 FROM parked AS p WHERE p.seq = j.seq) \
     ORDER BY j.received_at LIMIT $3)";
const DEDUP_BATCH: &str = "DELETE FROM dedup WHERE (source, key) IN (\
     SELECT source, key FROM dedup WHERE received_at < $1 ORDER BY received_at LIMIT $2)";
const QUARANTINE_BATCH: &str = "DELETE FROM quarantine WHERE id IN (\
     SELECT id FROM quarantine WHERE state = 'replayed' AND resolved_at < $1 \
     ORDER BY resolved_at LIMIT $2)";
const DEAD_LETTER_BATCH: &str = "DELETE FROM dead_letters WHERE id IN (\
     SELECT id FROM dead_letters WHERE state = 'replayed' AND resolved_at < $1 \
     ORDER BY resolved_at LIMIT $2)";
const OPEN_QUARANTINE_EXPIRED: &str = "DELETE FROM quarantine WHERE id IN (\
     SELECT id FROM quarantine WHERE state = 'open' AND received_at < $1 ORDER BY id LIMIT $2)";

/// What one prune batch deletes.
#[derive(Clone)]
enum PruneBatch {
    Journal {
        cutoff: i64,
        sinks: Arc<[String]>,
    },
    ByAge {
        statement: &'static str,
        cutoff: i64,
    },
    OpenQuarantineOver {
        cap: u64,
    },
}

impl PgBackend {
    /// One batch, one transaction; returns the rows deleted.
    async fn prune_batch(&self, batch: &PruneBatch, limit: i64) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let deleted = match batch {
            PruneBatch::Journal { cutoff, sinks } => {
                // The positions are locked for the batch: no rewind can move one back
                // between reading the bound and deleting.
                let rows = tx
                    .query(
                        "SELECT sink, seq FROM cursors WHERE sink = ANY($1) FOR SHARE",
                        &[&sinks.as_ref()],
                    )
                    .await
                    .map_err(pg_error)?;
                let bound = sinks
                    .iter()
                    .map(|sink| {
                        rows.iter()
                            .find(|row| row.get::<_, &str>(0) == sink)
                            .map_or(0, |row| row.get::<_, i64>(1))
                    })
                    .min();
                match bound {
                    Some(bound) if bound > 0 => tx
                        .execute(JOURNAL_BATCH, &[cutoff, &bound, &limit])
                        .await
                        .map_err(pg_error)?,
                    _ => 0,
                }
            }
            PruneBatch::ByAge { statement, cutoff } => tx
                .execute(*statement, &[cutoff, &limit])
                .await
                .map_err(pg_error)?,
            PruneBatch::OpenQuarantineOver { cap } => {
                let total: i64 = tx
                    .query_one(
                        "SELECT COALESCE(SUM(octet_length(body)), 0)::bigint FROM quarantine \
                         WHERE state = 'open'",
                        &[],
                    )
                    .await
                    .map_err(pg_error)?
                    .get(0);
                let mut excess = u64::try_from(total).unwrap_or(0).saturating_sub(*cap);
                let mut doomed: Vec<i64> = Vec::new();
                if excess > 0 {
                    for row in tx
                        .query(
                            "SELECT id, octet_length(body)::bigint FROM quarantine \
                             WHERE state = 'open' ORDER BY id LIMIT $1 FOR UPDATE",
                            &[&limit],
                        )
                        .await
                        .map_err(pg_error)?
                    {
                        if excess == 0 {
                            break;
                        }
                        doomed.push(row.get(0));
                        excess =
                            excess.saturating_sub(u64::try_from(row.get::<_, i64>(1)).unwrap_or(0));
                    }
                }
                tx.execute("DELETE FROM quarantine WHERE id = ANY($1)", &[&doomed])
                    .await
                    .map_err(pg_error)?
            }
        };
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        Ok(deleted)
    }

    /// Runs `batch` until one deletes less than `limit` rows (done) or `max_batches` ran.
    async fn prune_in_batches(
        &self,
        batch: PruneBatch,
        limit: u32,
        max_batches: u32,
        report: &mut PruneReport,
    ) -> Result<u64> {
        let mut total = 0;
        for _ in 0..max_batches {
            let deleted = self.prune_batch(&batch, i64::from(limit)).await?;
            report.batches += 1;
            total += deleted;
            if deleted < u64::from(limit) {
                return Ok(total);
            }
        }
        report.complete = false;
        Ok(total)
    }
}

#[async_trait]
impl RetentionStore for PgBackend {
    async fn prune(&self, policy: PrunePolicy) -> Result<PruneReport> {
        let limit = policy.batch.max(1);
        let max_batches = policy.max_batches.max(1);
        let mut report = PruneReport {
            complete: true,
            ..PruneReport::default()
        };
        if let Some(older_than) = policy.journal_older_than {
            let cutoff = older_than.unix_millis();
            let sinks: Arc<[String]> = policy.sinks.into();
            report.journal_events = self
                .prune_in_batches(
                    PruneBatch::Journal { cutoff, sinks },
                    limit,
                    max_batches,
                    &mut report,
                )
                .await?;
            report.quarantined = self
                .prune_in_batches(
                    PruneBatch::ByAge {
                        statement: QUARANTINE_BATCH,
                        cutoff,
                    },
                    limit,
                    max_batches,
                    &mut report,
                )
                .await?;
            report.dead_letters = self
                .prune_in_batches(
                    PruneBatch::ByAge {
                        statement: DEAD_LETTER_BATCH,
                        cutoff,
                    },
                    limit,
                    max_batches,
                    &mut report,
                )
                .await?;
        }
        if let Some(older_than) = policy.open_quarantine_older_than {
            report.quarantine_expired += self
                .prune_in_batches(
                    PruneBatch::ByAge {
                        statement: OPEN_QUARANTINE_EXPIRED,
                        cutoff: older_than.unix_millis(),
                    },
                    limit,
                    max_batches,
                    &mut report,
                )
                .await?;
        }
        if let Some(cap) = policy.open_quarantine_max_bytes {
            report.quarantine_expired += self
                .prune_in_batches(
                    PruneBatch::OpenQuarantineOver { cap },
                    limit,
                    max_batches,
                    &mut report,
                )
                .await?;
        }
        if let Some(older_than) = policy.dedup_older_than {
            report.dedup_keys = self
                .prune_in_batches(
                    PruneBatch::ByAge {
                        statement: DEDUP_BATCH,
                        cutoff: older_than.unix_millis(),
                    },
                    limit,
                    max_batches,
                    &mut report,
                )
                .await?;
        }
        Ok(report)
    }
}

#[async_trait]
impl SyncStore for PgBackend {
    async fn commit_sync(&self, batch: SyncBatch) -> Result<SyncCommit> {
        if batch.state.source != batch.source {
            return Err(StoreError::Invalid(format!(
                "the sync state of {:?} cannot be saved with a batch of {:?}",
                batch.state.source, batch.source
            )));
        }
        let state = serde_json::to_string(&batch.state)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // Under the journal's counter lock, like every append: sync pages and webhooks
        // commit in sequence order, and the version check sees every earlier commit.
        let last_seq = append::lock_counter(&tx).await?;
        let (commit, last_seq) = append::append_sync(
            &tx,
            last_seq,
            &batch.source,
            batch.received_at.unix_millis(),
            batch.changes,
        )
        .await?;
        tx.execute(
            "INSERT INTO sync_state (source, state) VALUES ($1, $2) \
             ON CONFLICT (source) DO UPDATE SET state = excluded.state",
            &[&batch.source, &state],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        self.committed(1);
        append::raise(&self.shared.committed, last_seq);
        Ok(commit)
    }

    async fn sync_state(&self, source: &str) -> Result<Option<SyncState>> {
        let client = self.client().await?;
        client
            .query_opt("SELECT state FROM sync_state WHERE source = $1", &[&source])
            .await
            .map_err(pg_error)?
            .map(|row| serde_json::from_str(row.get::<_, &str>(0)).map_err(StoreError::from))
            .transpose()
    }

    async fn sync_states(&self) -> Result<Vec<SyncState>> {
        let client = self.client().await?;
        client
            .query("SELECT state FROM sync_state ORDER BY source", &[])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| serde_json::from_str(row.get::<_, &str>(0)).map_err(StoreError::from))
            .collect()
    }
}

#[async_trait]
impl Backend for PgBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .query_one("SELECT value FROM meta WHERE name = 'last_seq'", &[])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.shared.counters.commits.load(Ordering::Relaxed),
            writes: self.shared.counters.writes.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        self.writer.stop().await;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.pool.close();
    }
}

#[cfg(test)]
mod tests;
