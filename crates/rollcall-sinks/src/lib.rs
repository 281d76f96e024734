//! rollcall's sinks: where unified events go.
//!
//! One module per sink, each behind the cargo feature of the same name, each registering
//! itself with `rollcall_core::inventory::submit!`. The host links this crate
//! (`use rollcall_sinks as _;`) and finds the sinks through
//! [`rollcall_core::sink_registrations`]; nothing here is called by name.
//!
//! * [`stdout`]: one JSON line per event on standard output.
//! * [`file`]: JSON lines appended to a file, made durable by `flush`.
//! * [`http`]: a POST per event, signed with Standard Webhooks headers.
//! * [`postgres`]: an events table and a current-users table, idempotent by event id.
//! * [`nats`]: a NATS JetStream publish per event, deduplicated by `Nats-Msg-Id`.
//! * [`redis`]: an `XADD` per event to a Redis stream.
//!
//! The generic per-sink keys (`sources`, `types`, `format`, the retry schedule) are the
//! host's: a sink sees only its own options and the rendered [`rollcall_core::OutboundEvent`].
#![forbid(unsafe_code)]

#[cfg(any(feature = "nats", feature = "redis"))]
mod broker;
#[cfg(feature = "file")]
pub mod file;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "stdout")]
pub mod stdout;

/// The events' JSON lines, one after another, in one buffer.
#[cfg(any(feature = "stdout", feature = "file"))]
fn json_lines(events: &[rollcall_core::OutboundEvent]) -> Vec<u8> {
    let size = events.iter().map(|event| event.body.len() + 1).sum();
    let mut lines = Vec::with_capacity(size);
    for event in events {
        lines.extend_from_slice(&event.body);
        lines.push(b'\n');
    }
    lines
}

/// Runs blocking I/O off the async workers. Every failure is transient: the destination,
/// not the event, is at fault, so a retry after the operator fixes it can succeed.
#[cfg(any(feature = "stdout", feature = "file"))]
async fn run_blocking<F>(what: &'static str, work: F) -> Result<(), rollcall_core::SinkError>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(rollcall_core::SinkError::transient(message)),
        Err(error) => Err(rollcall_core::SinkError::transient(format!(
            "the {what} task did not finish: {error}"
        ))),
    }
}
