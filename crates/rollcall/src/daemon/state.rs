//! What the listeners and workers share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rollcall_core::{Connector, Secret};
use rollcall_store::Store;

use crate::config::SinkConfig;
use crate::metrics::Metrics;

/// A configured source: its id and the connector built from its options.
#[derive(Debug)]
pub struct Source {
    pub id: String,
    pub connector_name: &'static str,
    pub connector: Box<dyn Connector>,
}

/// State shared by the ingest and admin routers.
#[derive(Debug)]
pub struct AppState {
    pub sources: HashMap<String, Arc<Source>>,
    pub sinks: Vec<SinkConfig>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// How long a client may take to send the body (408 `body_timeout` after that).
    pub body_timeout: Duration,
    pub admin_token: Option<Secret>,
}
