use std::net::SocketAddr;

use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::routing::get;
use axum::Router;

use super::*;

fn settings(base_url: &str) -> ApiSettings<'_> {
    ApiSettings {
        vendor: "Acme",
        base_url_option: "api_base_url",
        base_url,
        rate_per_second: 100.0,
        timeout_ms: 5_000,
        refused: ("the token", "it needs users.read"),
        default_retry_after: Duration::from_secs(60),
        reset_header: Some("x-rate-limit-reset"),
    }
}

/// A fake vendor API: `/ok` answers a user list, `/slow-429` a 429 with `Retry-After: 7`,
/// `/date-429` one with an HTTP date, `/reset-429` one with only a reset time in the past,
/// `/bare-429` one with nothing, `/refused` 401, `/broken` 503, `/gone` 404, `/big` 2 KiB.
async fn vendor() -> String {
    let app = Router::new()
        .route(
            "/ok",
            get(|headers: AxumHeaders| async move {
                let agent = headers
                    .get("user-agent")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                ([("x-agent", agent)], "{\"users\":[]}")
            }),
        )
        .route(
            "/slow-429",
            get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], "") }),
        )
        .route(
            "/date-429",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")],
                    "",
                )
            }),
        )
        .route(
            "/reset-429",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("x-rate-limit-reset", "1000")],
                    "",
                )
            }),
        )
        .route("/bare-429", get(|| async { StatusCode::TOO_MANY_REQUESTS }))
        .route("/refused", get(|| async { StatusCode::UNAUTHORIZED }))
        .route("/broken", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/gone", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [("location", "/ok")]) }),
        )
        .route("/big", get(|| async { "x".repeat(2048) }));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/")
}

async fn call(api: &VendorApi, path: &str) -> Result<Answer, ApiError> {
    api.wait_for_rate_limit().await;
    api.send(api.get(path), "user listing", 1024).await
}

#[test]
fn base_urls_must_be_plain_http_or_https() {
    for (url, says) in [
        ("ftp://acme.example", "scheme"),
        ("not a url", "not a URL"),
        ("https://user:pass@acme.example", "credentials"),
        ("https://acme.example/?token=1", "query"),
        ("https://acme.example/#top", "fragment"),
    ] {
        let error = VendorApi::new(&settings(url)).unwrap_err();
        assert_eq!(error.key, "api_base_url", "{url}");
        assert!(error.message.contains(says), "{url}: {}", error.message);
    }
    let api = VendorApi::new(&settings(" https://acme.example/api/ ")).unwrap();
    assert_eq!(api.base_url(), "https://acme.example/api");
    assert_eq!(api.base_path(), "/api");
}

#[test]
fn the_rate_and_the_timeout_must_be_positive() {
    for rate in [0.0, -1.0, f64::NAN] {
        let error = VendorApi::new(&ApiSettings {
            rate_per_second: rate,
            ..settings("https://acme.example")
        })
        .unwrap_err();
        assert_eq!(error.key, "api_rate_per_second");
    }
    let error = VendorApi::new(&ApiSettings {
        timeout_ms: 0,
        ..settings("https://acme.example")
    })
    .unwrap_err();
    assert_eq!(error.key, "api_timeout_ms");
}

#[tokio::test]
async fn a_success_is_read_with_rollcalls_user_agent() {
    let api = VendorApi::new(&settings(&vendor().await)).unwrap();
    let answer = call(&api, "/ok").await.unwrap();
    assert_eq!(answer.body, b"{\"users\":[]}");
    let agent = answer.headers["x-agent"].to_str().unwrap();
    assert!(agent.starts_with("rollcall/"), "{agent}");
}

#[tokio::test]
async fn a_429_carries_the_wait_the_vendor_asked_for() {
    let api = VendorApi::new(&settings(&vendor().await)).unwrap();
    let wait = |error: ApiError| match error.kind {
        ApiErrorKind::RateLimited { retry_after } => retry_after,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        wait(call(&api, "/slow-429").await.unwrap_err()),
        Some(Duration::from_secs(7))
    );
    // An HTTP date in the past: come back now.
    assert_eq!(
        wait(call(&api, "/date-429").await.unwrap_err()),
        Some(Duration::ZERO)
    );
    // Only the reset header, and it is past: a second.
    assert_eq!(
        wait(call(&api, "/reset-429").await.unwrap_err()),
        Some(Duration::from_secs(1))
    );
    let bare = call(&api, "/bare-429").await.unwrap_err();
    assert!(bare.is_retryable());
    assert_eq!(wait(bare.clone()), None);
    // A listing waits the connector's default when the vendor did not say.
    assert_eq!(
        api.list_error(bare),
        ListError::RateLimited {
            retry_after: Duration::from_secs(60)
        }
    );
}

#[tokio::test]
async fn statuses_are_classified_and_named_without_the_url() {
    let api = VendorApi::new(&settings(&vendor().await)).unwrap();
    let refused = call(&api, "/refused").await.unwrap_err();
    assert_eq!(refused.kind, ApiErrorKind::Refused { status: 401 });
    assert_eq!(
        refused.message,
        "the Acme API refused the token (401): it needs users.read"
    );
    assert!(!refused.is_retryable());
    let broken = call(&api, "/broken").await.unwrap_err();
    assert_eq!(broken.kind, ApiErrorKind::Status { status: 503 });
    assert!(broken.is_retryable());
    assert_eq!(
        api.list_error(broken),
        ListError::failed(true, "the Acme API answered 503 to the user listing")
    );
    let gone = call(&api, "/gone").await.unwrap_err();
    assert_eq!(gone.kind, ApiErrorKind::Status { status: 404 });
    assert!(!gone.is_retryable());
    // Redirects are not followed: the request never leaves the configured host.
    let redirect = call(&api, "/redirect").await.unwrap_err();
    assert_eq!(redirect.kind, ApiErrorKind::Status { status: 302 });
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused() {
    let api = VendorApi::new(&settings(&vendor().await)).unwrap();
    let error = call(&api, "/big").await.unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::TooLarge);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_vendor_that_cannot_be_reached_is_a_retryable_transport_failure() {
    // A port nothing listens on: bound, then closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let api = VendorApi::new(&settings(&format!("http://{address}"))).unwrap();
    let error = call(&api, "/ok").await.unwrap_err();
    assert_eq!(error.kind, ApiErrorKind::Transport);
    assert_eq!(error.message, "cannot connect to the Acme API");
    assert!(api.list_error(error).is_retryable());
}
