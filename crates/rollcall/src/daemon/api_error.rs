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
