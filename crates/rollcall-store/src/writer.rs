//! The single writer and its group commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{schema, Result, StoreError, WriteError};

/// How many queued jobs one transaction takes at most.
const MAX_BATCH: usize = 1024;

/// A queued write: applied inside the group transaction, answered after the commit.
trait PendingWrite: Send {
    /// Runs the job; returns whether it succeeded (a failed job's savepoint is rolled back).
    fn apply(&mut self, connection: &Connection) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, committed: Result<()>);
}

struct TypedWrite<T, F> {
    job: Option<F>,
    outcome: Option<std::result::Result<T, WriteError>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> PendingWrite for TypedWrite<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> std::result::Result<T, WriteError> + Send,
{
    fn apply(&mut self, connection: &Connection) -> bool {
        let Some(job) = self.job.take() else {
            return false;
        };
        let outcome = job(connection);
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let result = match (committed, self.outcome) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Ok(()), Some(Err(error))) => Err(error.into()),
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

/// Counters that show group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    pub commits: u64,
    pub jobs: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
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
    pub(crate) fn start(connection: Connection, committed: watch::Sender<i64>) -> Result<Self> {
        let (queue, receiver) = mpsc::channel(MAX_BATCH * 4);
        let counters = Arc::new(Counters::default());
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("rollcall-store-writer".into())
            .spawn(move || {
                run(connection, receiver, &committed, &thread_counters);
                let _ = stopped_tx.send(());
            })
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot start the writer: {error}"))
            })?;
        Ok(Self {
            queue,
            counters,
            stopped: Arc::new(tokio::sync::Mutex::new(Some(stopped_rx))),
        })
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
        }
    }

    /// Runs `job` in the next group transaction and returns its result once committed.
    pub(crate) async fn write<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> std::result::Result<T, WriteError> + Send + 'static,
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

    /// Holds the writer until the returned sender is dropped or sent to, so a test can queue
    /// several jobs and watch them commit together.
    /// How many jobs are queued and not yet taken by the writer.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    #[cfg(test)]
    pub(crate) async fn pause(&self) -> std::sync::mpsc::Sender<()> {
        let (resume, paused) = std::sync::mpsc::channel();
        let _ = self.queue.send(Message::Pause(paused)).await;
        resume
    }
}

fn run(
    mut connection: Connection,
    mut receiver: mpsc::Receiver<Message>,
    committed: &watch::Sender<i64>,
    counters: &Counters,
) {
    let mut stopping = false;
    while !stopping {
        let Some(first) = receiver.blocking_recv() else {
            break;
        };
        let mut batch: Vec<Box<dyn PendingWrite>> = Vec::new();
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
        commit_batch(&mut connection, batch, counters);
        if let Ok(seq) = schema::last_seq(&connection) {
            committed.send_if_modified(|current| {
                let changed = *current != seq;
                *current = seq;
                changed
            });
        }
    }
    receiver.close();
    // Answer anything that raced in after Stop.
    while let Ok(message) = receiver.try_recv() {
        if let Message::Write(pending) = message {
            pending.finish(Err(StoreError::Closed));
        }
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

fn commit_batch(
    connection: &mut Connection,
    mut batch: Vec<Box<dyn PendingWrite>>,
    counters: &Counters,
) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %error, "store: cannot begin a transaction");
        let reason = error.to_string();
        for pending in batch {
            pending.finish(Err(StoreError::Unavailable(reason.clone())));
        }
        return;
    }
    for pending in &mut batch {
        if let Err(error) = connection.execute_batch("SAVEPOINT job") {
            tracing::error!(error = %error, "store: cannot open a savepoint");
            continue;
        }
        let end = if pending.apply(connection) {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(error) = connection.execute_batch(end) {
            tracing::error!(error = %error, "store: cannot close a savepoint");
        }
    }
    match connection.execute_batch("COMMIT") {
        Ok(()) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .jobs
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for pending in batch {
                pending.finish(Ok(()));
            }
        }
        Err(error) => {
            tracing::error!(error = %error, "store: commit failed");
            let _ = connection.execute_batch("ROLLBACK");
            let reason = error.to_string();
            for pending in batch {
                pending.finish(Err(StoreError::Unavailable(reason.clone())));
            }
        }
    }
}
