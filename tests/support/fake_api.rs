//! A vendor's API faked on a local port, for sync and enrichment tests: every request is
//! answered by one function from state the test shares (and edits between runs).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rollcall::daemon::Source;
use rollcall_core::SourceOptions;
use serde_json::Value;

use super::repo;

/// How a fake answers: its state, its own base URL (for `Link` headers) and the request.
pub type Answer<S> = fn(&mut S, &str, &Request<Body>) -> Response;

pub struct FakeApi<S> {
    /// `http://127.0.0.1:<port>`, without a trailing `/`.
    pub base_url: String,
    pub state: Arc<Mutex<S>>,
}

impl<S: Send + 'static> FakeApi<S> {
    /// Serves `answer` over `state` until the test ends.
    pub async fn serve(state: S, answer: Answer<S>) -> Self {
        let state = Arc::new(Mutex::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let app = {
            let state = Arc::clone(&state);
            let base_url = base_url.clone();
            axum::Router::new().fallback(move |request: Request<Body>| {
                let response = answer(&mut state.lock().unwrap(), &base_url, &request);
                async move { response }
            })
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, state }
    }

    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap()
    }
}

/// A JSON fixture by its path in the repository.
pub fn read_json(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo().join(path)).unwrap()).unwrap()
}

/// The request's query as decoded (key, value) pairs, in order.
pub fn query_pairs(request: &Request<Body>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// The value of `key` in the request's query.
pub fn query_value(request: &Request<Body>, key: &str) -> Option<String> {
    query_pairs(request)
        .into_iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value)
}

/// `429` with `Retry-After: seconds`.
pub fn rate_limited(seconds: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", seconds.to_string())],
        "",
    )
        .into_response()
}

/// A source of `connector` named `id`, built from `options` as the daemon builds it.
pub fn api_source(connector: &str, id: &str, options: Value) -> Source {
    let registration = rollcall_core::registration(connector).unwrap();
    Source {
        id: id.to_owned(),
        connector_name: registration.name,
        connector: (registration.build)(&SourceOptions::new(id, options)).unwrap(),
        sync_interval: None,
        sync_lock: Default::default(),
        metrics: rollcall::metrics::Metrics::default().source(id),
    }
}
