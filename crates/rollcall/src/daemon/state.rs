//! What the listeners and workers share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::{Connector, Secret};
use rollcall_store::Store;
use tokio::sync::Semaphore;

use crate::config::SinkConfig;
use crate::daemon::worker::SinkStatus;
use crate::metrics::Metrics;

/// A configured source: its id and the connector built from its options.
#[derive(Debug)]
pub struct Source {
    pub id: String,
    pub connector_name: &'static str,
    pub connector: Box<dyn Connector>,
    /// How often the daemon reconciles the source with its vendor's user listing
    /// (`sync_interval`); `None`: only on request.
    pub sync_interval: Option<Duration>,
    /// Held while a sync of the source runs: one at a time.
    pub sync_lock: tokio::sync::Mutex<()>,
}

/// State shared by the ingest and admin routers.
#[derive(Debug)]
pub struct AppState {
    pub sources: HashMap<String, Arc<Source>>,
    pub sinks: Vec<SinkConfig>,
    /// What each sink's delivery worker reports, by sink id.
    pub sink_status: HashMap<String, Arc<SinkStatus>>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// How long a client may take to send the body (408 `body_timeout` after that).
    pub body_timeout: Duration,
    pub admin_token: Option<Secret>,
    /// What unanswered ingest requests may hold.
    pub ingest_limits: IngestLimits,
    /// Host names the admin listener answers to when it has no token (lower case, no port).
    pub admin_hosts: Vec<String>,
}

/// Bounds on what ingest requests may hold before they are answered: body bytes across all
/// sources, and requests per source.
#[derive(Debug)]
pub struct IngestLimits {
    /// One permit per body byte.
    pub body_bytes: Arc<Semaphore>,
    /// The share of the budget only bodies of at most [`SMALL_BODY_BYTES`] may use, when
    /// the rest is taken: a flood of large uploads cannot starve vendors' deliveries, which
    /// are a few KiB.
    pub small_body_bytes: Arc<Semaphore>,
    /// Per source id; a source without an entry is not limited.
    pub per_source: HashMap<String, Arc<Semaphore>>,
    /// How long a request waits for room before it is answered `ingest_busy`.
    pub wait: Duration,
}

impl IngestLimits {
    pub fn new<'a>(
        body_bytes: usize,
        requests_per_source: usize,
        sources: impl IntoIterator<Item = &'a String>,
    ) -> Self {
        let body_bytes = body_bytes.min(Semaphore::MAX_PERMITS);
        let small = body_bytes / SMALL_BODY_SHARE;
        Self {
            body_bytes: Arc::new(Semaphore::new(body_bytes - small)),
            small_body_bytes: Arc::new(Semaphore::new(small)),
            per_source: sources
                .into_iter()
                .map(|id| {
                    (
                        id.clone(),
                        Arc::new(Semaphore::new(requests_per_source.max(1))),
                    )
                })
                .collect(),
            wait: Duration::from_secs(1),
        }
    }
}

/// Bodies up to this size may use the budget's reserved share.
pub const SMALL_BODY_BYTES: u32 = 64 * 1024;
/// The reserved share is this fraction (1/n) of the budget.
pub const SMALL_BODY_SHARE: usize = 8;

/// The host names a token-less admin listener bound to `listen` answers to.
pub fn admin_hosts(listen: std::net::SocketAddr, configured: &[String]) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "[::1]".to_owned(),
    ];
    hosts.push(match listen.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    });
    hosts.extend(
        configured
            .iter()
            .map(|host| host.trim().to_ascii_lowercase()),
    );
    hosts
}
