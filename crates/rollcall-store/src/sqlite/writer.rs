//! The single writer and its group commit.
//!
//! One thread owns the write connection. It takes every write waiting in its queue, applies
//! them in one transaction, commits once, and only then answers each caller, so concurrent
//! requests share one fsync and none hears "done" before its own data is on disk.
//!
//! There is no savepoint per write: a write checks its preconditions (dedup, a quarantined
//! delivery still open, a position still where its holder saw it) before it changes
//! anything, and answers a failed precondition without having written. A database error in
//! the middle of a write (I/O, a full disk) aborts the whole transaction: every write in it
//! is answered with the error and nothing of it stays, in the database or in the writer's
//! memory (the directory cache and the sequence counter are put back).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use super::directory::DirectoryCache;
use super::{db_error, schema};
use crate::codec::{Codec, Encoder};
use crate::{CommitStats, Result, StoreError};

/// How many queued writes one transaction takes at most.
const MAX_BATCH: usize = 1024;

/// What a write works with inside the group transaction.
pub(crate) struct WriteContext<'a> {
    pub(crate) tx: &'a Connection,
    pub(crate) directory: &'a mut DirectoryCache,
    /// Packs documents for storage (with the current compression dictionary).
    pub(crate) encoder: &'a mut Encoder,
    /// Unpacks stored documents (knows every dictionary).
    pub(crate) codec: &'a Codec,
    /// The last sequence number assigned; a write that appends to the journal takes the
    /// next ones.
    pub(crate) last_seq: &'a mut i64,
}

/// Why a write did not succeed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// A precondition failed before anything was written: this write is answered with the
    /// error, the others in its transaction commit.
    Refused(StoreError),
    /// The database failed mid-write: the whole transaction is rolled back.
    Failed(StoreError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Failed(db_error(error))
    }
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

/// A document the writer cannot encode or decode fails the transaction, as
/// [`StoreError`]'s own conversion classifies it (`Corrupt`).
impl From<serde_json::Error> for WriteError {
    fn from(error: serde_json::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// A queued write: applied inside the group transaction, answered after the commit.
trait PendingWrite: Send {
    /// Runs the write. `Err` only for [`WriteError::Failed`], which aborts the transaction.
    fn apply(&mut self, context: &mut WriteContext<'_>) -> std::result::Result<(), StoreError>;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct TypedWrite<T, F> {
    job: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> PendingWrite for TypedWrite<T, F>
where
    T: Send,
    F: FnOnce(&mut WriteContext<'_>) -> std::result::Result<T, WriteError> + Send,
{
    fn apply(&mut self, context: &mut WriteContext<'_>) -> std::result::Result<(), StoreError> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        match job(context) {
            Ok(value) => self.outcome = Some(Ok(value)),
            Err(WriteError::Refused(error)) => self.outcome = Some(Err(error)),
            Err(WriteError::Failed(error)) => return Err(error),
        }
        Ok(())
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let result = match (committed, self.outcome) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Closed),
        };
        let _ = self.reply.send(result);
    }
}

enum Message {
    Write(Box<dyn PendingWrite>),
    /// Commit what is queued before this message, then stop.
    Stop,
    #[cfg(test)]
    Pause(std::sync::mpsc::Receiver<()>),
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    /// Writes in the queue, counted once their message is in it (a channel's free capacity
    /// drops before the message is visible, which made tests that wait for a full queue
    /// race the writer). Signed: the writer may take a message before its sender counts it.
    #[cfg(test)]
    queued: std::sync::atomic::AtomicI64,
}

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Message>,
    counters: Arc<Counters>,
    stopped: Arc<tokio::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Writer {
    pub(crate) fn start(
        connection: Connection,
        directory: DirectoryCache,
        encoder: Encoder,
        codec: Arc<Codec>,
        committed: watch::Sender<i64>,
    ) -> Result<Self> {
        let last_seq = schema::last_seq(&connection).map_err(db_error)?;
        let (queue, receiver) = mpsc::channel(MAX_BATCH * 4);
        let counters = Arc::new(Counters::default());
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("rollcall-store-writer".into())
            .spawn(move || {
                let mut state = WriterState {
                    connection,
                    directory,
                    encoder,
                    codec,
                    last_seq,
                    training: None,
                };
                state.run(receiver, &committed, &thread_counters);
                let _ = stopped_tx.send(());
            })
            .map_err(StoreError::unavailable)?;
        Ok(Self {
            queue,
            counters,
            stopped: Arc::new(tokio::sync::Mutex::new(Some(stopped_rx))),
        })
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    /// Runs `job` in the next group transaction and returns its result once committed.
    pub(crate) async fn write<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteContext<'_>) -> std::result::Result<T, WriteError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let pending = TypedWrite {
            job: Some(job),
            outcome: None,
            reply,
        };
        self.queue
            .send(Message::Write(Box::new(pending)))
            .await
            .map_err(|_| StoreError::Closed)?;
        #[cfg(test)]
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits everything queued so far, then stops the writer. Later writes fail with
    /// [`StoreError::Closed`].
    pub(crate) async fn close(&self) {
        let Some(stopped) = self.stopped.lock().await.take() else {
            return;
        };
        if self.queue.send(Message::Stop).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// How many writes are queued and not yet taken by the writer.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        usize::try_from(self.counters.queued.load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// Holds the writer until the returned sender is dropped or sent to, so a test can queue
    /// several writes and watch them commit together.
    #[cfg(test)]
    pub(crate) async fn pause(&self) -> std::sync::mpsc::Sender<()> {
        let (resume, paused) = std::sync::mpsc::channel();
        let _ = self.queue.send(Message::Pause(paused)).await;
        resume
    }
}

struct WriterState {
    connection: Connection,
    directory: DirectoryCache,
    encoder: Encoder,
    codec: Arc<Codec>,
    last_seq: i64,
    /// A dictionary being trained on another thread, when one is.
    training: Option<std::sync::mpsc::Receiver<Option<Vec<u8>>>>,
}

impl WriterState {
    fn run(
        &mut self,
        mut receiver: mpsc::Receiver<Message>,
        committed: &watch::Sender<i64>,
        counters: &Counters,
    ) {
        let mut stopping = false;
        let mut batch: Vec<Box<dyn PendingWrite>> = Vec::with_capacity(MAX_BATCH);
        while !stopping {
            let Some(first) = receiver.blocking_recv() else {
                break;
            };
            stopping = take(&mut batch, first);
            while !stopping && batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(message) => stopping = take(&mut batch, message),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            #[cfg(test)]
            counters
                .queued
                .fetch_sub(batch.len() as i64, Ordering::SeqCst);
            let writes = batch.len() as u64;
            let outcome = self.commit(&mut batch);
            if outcome.is_ok() {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.writes.fetch_add(writes, Ordering::Relaxed);
            }
            for pending in batch.drain(..) {
                pending.finish(match &outcome {
                    Ok(()) => Ok(()),
                    Err(message) => Err(StoreError::Unavailable {
                        message: message.clone(),
                        source: None,
                    }),
                });
            }
            let last_seq = self.last_seq;
            committed.send_if_modified(|current| {
                let changed = *current != last_seq;
                *current = last_seq;
                changed
            });
            self.train_dictionary_if_due();
        }
        receiver.close();
        // Answer anything that raced in after Stop.
        while let Ok(message) = receiver.try_recv() {
            if let Message::Write(pending) = message {
                pending.finish(Err(StoreError::Closed));
            }
        }
    }

    /// Starts training a compression dictionary when one is due, on a thread of its own:
    /// training takes a few hundred milliseconds of CPU, which the writer would otherwise
    /// hold every waiting request for. A dictionary that is ready is kept between
    /// transactions, the next time the writer comes here.
    fn train_dictionary_if_due(&mut self) {
        if let Some(training) = &self.training {
            match training.try_recv() {
                Ok(Some(dictionary)) => {
                    self.training = None;
                    self.keep_dictionary(dictionary);
                }
                Ok(None) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.training = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
            }
        }
        let Some(samples) = self.encoder.samples_if_due() else {
            return;
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new()
            .name("rollcall-store-dictionary".to_owned())
            .spawn(move || {
                // The writer may have stopped meanwhile; the dictionary is then not needed.
                let _ = sender.send(crate::codec::train(&samples));
            });
        match started {
            Ok(_) => self.training = Some(receiver),
            Err(error) => {
                tracing::warn!(error = %error, "store: cannot start training a compression dictionary; packing without a new one");
            }
        }
    }

    /// Stores a trained dictionary in a commit of its own, and only then packs with it: no
    /// row can name a dictionary that is not durable.
    fn keep_dictionary(&mut self, dictionary: Vec<u8>) {
        let Some(id) = zstd::zstd_safe::get_dict_id(&dictionary).map(|id| id.get()) else {
            return;
        };
        let stored = self.connection.execute(
            "INSERT OR IGNORE INTO dictionaries (id, created_at, dict) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                id,
                rollcall_core::Timestamp::now().unix_millis(),
                dictionary
            ],
        );
        match stored {
            Ok(1) => {
                self.codec.add_dictionary(dictionary.clone().into());
                self.encoder.use_dictionary(&dictionary);
                tracing::info!(
                    dictionary = id,
                    "store: packing with a new compression dictionary"
                );
            }
            // An id already taken (a 32-bit collision): keep the current dictionary.
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "store: cannot keep a compression dictionary; packing without it");
            }
        }
    }

    /// Applies `batch` in one transaction and commits it. On failure everything is rolled
    /// back (database, directory cache, sequence counter) and the reason returned.
    fn commit(&mut self, batch: &mut [Box<dyn PendingWrite>]) -> std::result::Result<(), String> {
        let seq_before = self.last_seq;
        let result = self.apply_and_commit(batch, seq_before);
        if let Err(reason) = &result {
            tracing::error!(error = %reason, writes = batch.len(), "store: transaction failed; rolled back");
            if !self.connection.is_autocommit() {
                let _ = self.connection.execute_batch("ROLLBACK");
            }
            self.directory.rollback();
            self.last_seq = seq_before;
        } else {
            self.directory.commit();
        }
        result
    }

    fn apply_and_commit(
        &mut self,
        batch: &mut [Box<dyn PendingWrite>],
        seq_before: i64,
    ) -> std::result::Result<(), String> {
        let connection = &self.connection;
        connection
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut begin| begin.execute([]))
            .map_err(|error| format!("cannot begin a transaction: {error}"))?;
        let mut context = WriteContext {
            tx: connection,
            directory: &mut self.directory,
            encoder: &mut self.encoder,
            codec: &self.codec,
            last_seq: &mut self.last_seq,
        };
        for pending in batch.iter_mut() {
            pending
                .apply(&mut context)
                .map_err(|error| error.to_string())?;
        }
        if self.last_seq != seq_before {
            connection
                .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'last_seq'")
                .and_then(|mut update| update.execute([self.last_seq]))
                .map_err(|error| format!("cannot record the sequence: {error}"))?;
        }
        connection
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]))
            .map_err(|error| format!("commit failed: {error}"))?;
        Ok(())
    }
}

/// Adds a message to the batch; returns true when it asks the writer to stop.
fn take(batch: &mut Vec<Box<dyn PendingWrite>>, message: Message) -> bool {
    match message {
        Message::Write(pending) => {
            batch.push(pending);
            false
        }
        Message::Stop => true,
        #[cfg(test)]
        Message::Pause(paused) => {
            let _ = paused.recv();
            false
        }
    }
}
