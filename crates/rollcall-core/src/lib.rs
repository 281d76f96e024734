//! The contract every rollcall connector and host is written against.
//!
//! * [`model`]: the unified [`User`] and the [`UserEvent`] envelope sinks receive.
//! * [`connector`]: the [`Connector`] trait, the [`Delivery`] it works on, and the link-time
//!   registry ([`ConnectorRegistration`], collected with `inventory`).
//! * [`verify`]: signature primitives (HMAC-SHA256, Ed25519, RSA PKCS#1 v1.5, Standard
//!   Webhooks), constant-time comparison and timestamp tolerance.
//! * [`directory`]: how an event changes what rollcall knows about a user.
//! * [`time`]: vendor timestamps in, RFC 3339 UTC out.
//! * [`sink`]: the [`Sink`] trait and its registry.
//! * [`backoff`]: capped exponential backoff with full jitter and a circuit breaker, shared
//!   by delivery, sinks and connectors' outbound calls.
//! * [`retry`]: a vendor's retry contract (what it retries, for how long, how fast it needs
//!   an answer).
//! * [`retry_after`]: the one `Retry-After` reader (delay seconds or an HTTP date), capped.
//! * [`rate`]: the rate limit (on `governor`) that bounds a source's calls to its vendor's API.
//! * [`sync`]: a vendor's user listing, for backfill and reconciliation.
//! * [`error`]: error types with stable codes, an HTTP status and a retry decision.
//!
//! The crate does no I/O and starts no runtime.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod connector;
pub mod credentials;
pub mod de;
pub mod directory;
pub mod error;
pub mod json;
pub mod model;
pub mod rate;
pub mod retry;
pub mod retry_after;
pub mod scrub;
pub mod secret;
pub mod sink;
pub mod sync;
pub mod time;
pub mod timezone;
pub mod verify;

pub use crate::backoff::{Backoff, BreakerState, CircuitBreaker, Health};
pub use crate::connector::{
    options_schema, registration, registrations, Connector, ConnectorRegistration, Delivery,
    HandshakeResponse, Headers, SignError, SourceOptions,
};
pub use crate::error::{ConfigError, EnrichError, ErrorCode, NormalizeError, VerifyError};
pub use crate::model::{
    diff_users, Actor, Email, EventType, FieldChange, Group, Organization, Phone, RemoteData, Role,
    Url, User, UserEvent, UserStatus, VendorEvent, Workspace,
};
pub use crate::retry::{RetriedAnswers, RetryContract};
pub use crate::secret::{Secret, Secrets};
pub use crate::sink::{
    sink_registration, sink_registrations, BatchOutcome, Format, OutboundEvent, Sink, SinkError,
    SinkOptions, SinkRegistration,
};
pub use crate::sync::{ListCursor, ListError, UserPage};
pub use crate::time::Timestamp;

// Connector crates register with `inventory::submit!`; re-exporting it keeps their
// dependency list to `rollcall-core` alone.
pub use async_trait::async_trait;
pub use inventory;
