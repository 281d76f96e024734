//! What the listeners and workers share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use rollcall_core::{Connector, Secret};
use rollcall_store::Store;
use tokio::sync::Semaphore;

use crate::config::{Scope, SinkConfig};
use crate::daemon::worker::SinkStatus;
use crate::metrics::{Metrics, SourceMetrics};

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
    /// Its ingest metrics, resolved once from the daemon's [`Metrics`].
    pub metrics: SourceMetrics,
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
    pub admin_tokens: AdminTokens,
    /// What unanswered ingest requests may hold.
    pub ingest_limits: IngestLimits,
    /// Host names the admin listener answers to when it has no token (lower case, no port).
    pub admin_hosts: Vec<String>,
}

/// The admin API's bearer tokens and the scope of each; none on a loopback listener
/// without a token.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens(Vec<(Secret, Scope)>);

impl AdminTokens {
    pub fn new(tokens: Vec<(Secret, Scope)>) -> Self {
        Self(tokens)
    }

    /// One token with every right, or none.
    pub fn operate(token: Option<Secret>) -> Self {
        Self(token.into_iter().map(|t| (t, Scope::Operate)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope of the request's `Authorization: Bearer` token; `None` when it sends none
    /// or an unknown one. Every configured token is compared, each in constant time on
    /// digests (neither content nor length leaks), so timing does not tell which matched.
    pub fn scope_of(&self, headers: &HeaderMap) -> Option<Scope> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        let given = rollcall_core::verify::hmac_sha256(TOKEN_KEY, &[given.as_bytes()]);
        let mut scope = None;
        for (token, token_scope) in &self.0 {
            let expected =
                rollcall_core::verify::hmac_sha256(TOKEN_KEY, &[token.expose().as_bytes()]);
            if rollcall_core::verify::constant_time_eq(&given, &expected) {
                scope = scope.max(Some(*token_scope));
            }
        }
        scope
    }
}

/// The HMAC key tokens are digested with before comparison (any fixed key does).
const TOKEN_KEY: &[u8] = b"rollcall-admin-token";

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
