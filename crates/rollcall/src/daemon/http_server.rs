//! The HTTP plumbing both listeners share: connection limits, timeouts and a bounded
//! shutdown, written once.
//!
//! `axum::serve` reads request heads with no deadline, keeps idle connections forever and
//! accepts until the process runs out of file descriptors. Here:
//!
//! * a connection must deliver a complete request head within `header_read_timeout`,
//!   counted from the moment it is open or done with its previous request. This closes
//!   slowloris senders and idle keep-alive connections alike (hyper starts the timer whenever
//!   it waits for a request head);
//! * at most `max_connections` are open at once: beyond that the accept loop stops taking
//!   connections, which then wait in the kernel's backlog (never a failure of the process);
//! * an accept error (out of descriptors, say) is logged and retried after a pause instead
//!   of ending the listener;
//! * shutdown stops accepting, tells every connection to close after its request in flight
//!   (idle ones close at once), and aborts whatever is still open after `shutdown_grace`.
//!
//! The body deadline is the ingest handler's (it answers 408 `body_timeout`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

/// hyper's read buffer per connection.
const MAX_BUFFER_BYTES: usize = 64 * 1024;

/// The pause after a failed `accept` (typically `EMFILE`) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` turns true, then closes every
/// connection within `limits.shutdown_grace`. `name` labels logs ("ingest", "admin").
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = router.layer(axum::middleware::from_fn(super::api_error::uniform_errors));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A connection holds at most this much of a request head (and of a body between
        // reads): an unauthenticated client cannot make hyper grow its buffer to its
        // default ~400 KiB. Heads over it are refused by hyper (431, no body); the JSON
        // 414/431 limits of `api_error::uniform_errors` are below it.
        .max_buf_size(MAX_BUFFER_BYTES)
        .max_headers(super::api_error::MAX_HEADERS + 20)
        .keep_alive(true);
    loop {
        // Reap finished connections so the set does not grow with the listener's age.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = name, error = %error, "accept failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|request: Request<hyper::body::Incoming>| request.map(Body::new));
        let service = TowerToHyperService::new(service);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            // A connection's end (closed by the peer, a timeout, a protocol error) is
            // routine; debug only.
            if let Err(error) = connection.await {
                tracing::debug!(listener = name, error = %error, "connection ended");
            }
            drop(slot);
        });
    }
    // Stop accepting before waiting on the open connections.
    drop(listener);
    let open = connections.len();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(
                listener = name,
                open,
                grace_ms = limits.shutdown_grace.as_millis() as u64,
                "connections still open after the shutdown grace; closing them"
            );
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Resolves once `shutdown` is true (or its sender is gone); holds no borrow of the value
/// across an await, so the serving future stays `Send`.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Raises the soft limit on open files to the hard limit, so the configured connection
/// limits are what bounds connections, not the file-descriptor table. Returns the soft limit
/// now in force, if it could be read.
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(error = %error, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}
