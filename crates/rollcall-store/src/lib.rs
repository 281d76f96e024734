//! rollcall's durable state, behind a contract by role: the journal of accepted events with
//! its dedup index, delivery positions held under leases, the user directory, operator
//! actions (quarantine, dead letters, replay) and retention.
//!
//! The contract is a set of traits ([`IngestStore`], [`JournalStore`], [`DeliveryStore`],
//! [`DirectoryStore`], [`OperatorStore`], [`RetentionStore`], [`SyncStore`]) that a backend implements
//! together as a [`Backend`]. Callers hold a [`Store`], a cheap handle over any backend, and
//! bring the roles they use into scope (`use rollcall_store::prelude::*`). Nothing in the
//! contract names a backend type: states are enums, errors are [`StoreError`].
//!
//! Backends: [`sqlite`] (embedded, one process, the default) and `postgres` (feature
//! `postgres`: shared by any number of replicas). Every backend passes the one conformance
//! suite in `conformance` (feature `conformance`).
//!
//! # What every backend promises
//!
//! * A commit that returned is durable: no caller hears "done" before its data would
//!   survive a crash.
//! * A batch's events, its dedup key and the directory update are one atomic commit; a
//!   repeated dedup key commits nothing and returns the first delivery's event ids.
//! * Journal sequence numbers only grow and are never reused, even after pruning.
//! * A delivery position moves only under the current lease (fencing token) and only from
//!   where its holder saw it, so an operator's rewind or a lost lease always wins.
#![forbid(unsafe_code)]

mod codec;
/// The conformance suite, for backends' tests (and the host's, for its builders); compiled
/// only for tests and with the `conformance` feature, never into the daemon.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod contract;
mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

pub use crate::contract::{
    Backend, DeliveryStore, DirectoryStore, IngestStore, JournalStore, OperatorStore,
    RetentionStore, SyncStore,
};
pub use crate::model::*;

/// The roles, for `use rollcall_store::prelude::*`.
pub mod prelude {
    pub use crate::contract::{
        Backend, DeliveryStore, DirectoryStore, IngestStore, JournalStore, OperatorStore,
        RetentionStore, SyncStore,
    };
}

/// A store operation failed. Every variant but [`StoreError::NotFound`],
/// [`StoreError::Invalid`] and [`StoreError::LeaseLost`] means "not committed, try again
/// later": the ingest path answers 503 and the vendor retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not complete the operation (I/O, a full disk, a lost connection).
    #[error("the store could not complete the operation: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Stored data could not be read back (a corrupt row, an undecodable event).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The store is shut down.
    #[error("the store is shut down")]
    Closed,
    /// The store could not be opened.
    #[error("cannot open the store at {location}: {message}")]
    Open { location: String, message: String },
    /// The operation names something that does not exist (or no longer is in that state).
    #[error("no such {what}: {id}")]
    NotFound { what: &'static str, id: String },
    /// An argument the store cannot accept (an unknown state name, say).
    #[error("{0}")]
    Invalid(String),
    /// The delivery lease was taken over by another holder (or expired and was re-granted):
    /// the caller must stop delivering for that sink.
    #[error("the delivery lease of sink {sink} is no longer held by this worker")]
    LeaseLost { sink: String },
}

impl StoreError {
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// The stable error code callers answer with.
    pub const fn code(&self) -> rollcall_core::ErrorCode {
        match self {
            Self::NotFound { .. } => rollcall_core::ErrorCode::NotFound,
            Self::Invalid(_) => rollcall_core::ErrorCode::ConfigInvalid,
            _ => rollcall_core::ErrorCode::StoreUnavailable,
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

/// Whether `schema` is a PostgreSQL schema name rollcall accepts: lower-case letters,
/// digits and `_`, not starting with a digit or `pg_`, at most 63 bytes (PostgreSQL's
/// limit). The name goes into statements (quoted) and into each connection's `search_path`,
/// so nothing else is allowed. Checked by configuration and again at open.
pub fn is_valid_postgres_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
        && !schema.starts_with("pg_")
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle to a store: any [`Backend`] behind an `Arc`. Cheap to clone. Its methods are
/// the roles' (`use rollcall_store::prelude::*`).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// The embedded SQLite store at `path` (created with its directory if needed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::from_backend(Arc::new(sqlite::SqliteBackend::open(
            path.as_ref(),
        )?)))
    }

    /// The PostgreSQL store described by `options` (migrated at open; refused when its
    /// schema is newer than this rollcall knows).
    #[cfg(feature = "postgres")]
    pub async fn open_postgres(options: &postgres::PgOptions) -> Result<Self> {
        Ok(Self::from_backend(Arc::new(
            postgres::PgBackend::open(options).await?,
        )))
    }

    pub fn from_backend(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        self.backend.as_ref()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_schema_names_are_plain_identifiers() {
        for good in ["rollcall", "tenant_7", "_x"] {
            assert!(super::is_valid_postgres_schema(good), "{good}");
        }
        for bad in [
            "",
            "Rollcall",
            "7up",
            "a-b",
            "a\"b",
            "pg_catalog",
            &"x".repeat(64),
        ] {
            assert!(!super::is_valid_postgres_schema(bad), "{bad}");
        }
    }
}
