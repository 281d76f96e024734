//! The one error shape every HTTP answer uses: `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rollcall_core::ErrorCode;
use serde_json::json;

/// An error answer. The message is written for the caller and never holds internals
/// (database errors, secrets, stack traces); those go to the log.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Where in the payload it failed, for `payload_invalid`.
    pub path: Option<String>,
    /// Extra fields for the error object (a quarantine id).
    pub extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            path: None,
            extra: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(path) = self.path {
            error["path"] = json!(path);
        }
        if let Some((key, value)) = self.extra {
            error[key] = value;
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<rollcall_store::StoreError> for ApiError {
    fn from(error: rollcall_store::StoreError) -> Self {
        match error {
            rollcall_store::StoreError::NotFound { what, id } => {
                Self::new(ErrorCode::NotFound, format!("no {what} {id}"))
            }
            other => {
                tracing::error!(error = %other, "store operation failed");
                Self::new(
                    ErrorCode::StoreUnavailable,
                    "the store could not complete the operation; retry later",
                )
            }
        }
    }
}

/// The longest request target (path and query) the listeners read; beyond it, 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) and headers a request may have; beyond, 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADERS: usize = 100;

/// Gives every error answer of a listener the `{"error": {"code", "message"}}` shape: the
/// router's own answers (404 for an unknown path, 405, the JSON extractor's 400/415/422) come
/// as plain text from axum and are rewritten here; request targets and heads over the
/// listener's limits are answered 414 and 431 here, before any handler runs. (hyper's own
/// answer to a head larger than its read buffer, `http_server`'s `MAX_BUFFER_BYTES`, has no
/// body: the connection is closed before any of this runs.)
pub async fn uniform_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request target exceeds {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADERS {
        return ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!("the request has more than {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes of them"),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json") || value.contains("+json"));
    // SCIM answers its errors in its own JSON (`application/scim+json`); left as they are.
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let code = match status.as_u16() {
        404 => ErrorCode::RouteNotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::BodyTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        400 | 422 => ErrorCode::ConfigInvalid,
        _ => return response,
    };
    // axum's rejection texts say what was wrong with the request (never secrets); short.
    let text =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(response.into_body(), 4096))
            .await
            .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_owned())
            .unwrap_or_default();
    let message = if text.is_empty() {
        match code {
            ErrorCode::RouteNotFound => "nothing is served at this path".to_owned(),
            ErrorCode::MethodNotAllowed => "this method is not accepted here".to_owned(),
            _ => status.canonical_reason().unwrap_or("error").to_owned(),
        }
    } else {
        text
    };
    let mut answer = ApiError::new(code, message).into_response();
    *answer.status_mut() = status;
    answer
}
