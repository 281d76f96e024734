//! Errors with stable codes.
//!
//! Every error a user or a vendor can see carries an [`ErrorCode`]: a snake_case string that
//! scripts match on, an HTTP status, and whether retrying the same request could succeed. The
//! table lives in one place, [`ErrorCode::http_status`] and [`ErrorCode::is_retryable`].

use std::fmt;

/// A stable, machine-readable error code. The `as_str` value never changes once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The signature (or the header, query key or timestamp it needs) is absent.
    SignatureMissing,
    /// A signature is present but does not match the body with the configured secret or key.
    SignatureInvalid,
    /// The signed timestamp is outside the accepted window (replay protection).
    TimestampOutOfTolerance,
    /// The body is not what the vendor documents (not JSON, wrong shape, missing id...).
    PayloadInvalid,
    /// The body is well formed but describes an event this connector does not handle.
    EventUnsupported,
    /// No source with that id is configured.
    SourceUnknown,
    /// No connector with that name is compiled into this binary.
    ConnectorUnknown,
    /// The request body exceeds the configured limit.
    BodyTooLarge,
    /// The client did not send the whole body within the body deadline.
    BodyTimeout,
    /// The source accepts only POST (and the vendor's own handshake requests).
    MethodNotAllowed,
    /// The admin API needs a bearer token and the request has none or another one.
    Unauthorized,
    /// The admin request names something that does not exist.
    NotFound,
    /// The durable store could not commit; the vendor should retry.
    StoreUnavailable,
    /// The source lacks a secret or key it needs to verify deliveries.
    SourceMisconfigured,
    /// The vendor's API could not complete a partial user.
    EnrichFailed,
    /// A configuration file or option is invalid.
    ConfigInvalid,
    /// The host holds as many unverified bodies (bytes in flight) or requests for the source
    /// as it allows; the vendor should retry shortly.
    IngestBusy,
    /// The request targets a path neither listener serves.
    RouteNotFound,
    /// The request URI exceeds what the listener reads.
    UriTooLong,
    /// The request head (its headers) exceeds what the listener reads.
    HeadersTooLarge,
    /// The admin API accepts only `application/json` bodies.
    UnsupportedMediaType,
    /// The admin listener has no token and the request's `Host` is not one it answers to
    /// (DNS rebinding).
    HostNotAllowed,
    /// The source's connector cannot list users (no vendor API, or no API credentials).
    SyncUnsupported,
    /// Listing the vendor's users failed (or a sync of the source is already running).
    SyncFailed,
    /// The admin request's token is valid but its scope does not allow the request (a
    /// `read` token asking to replay, say).
    ScopeInsufficient,
}

impl ErrorCode {
    /// The stable snake_case code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignatureMissing => "signature_missing",
            Self::SignatureInvalid => "signature_invalid",
            Self::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Self::PayloadInvalid => "payload_invalid",
            Self::EventUnsupported => "event_unsupported",
            Self::SourceUnknown => "source_unknown",
            Self::ConnectorUnknown => "connector_unknown",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::StoreUnavailable => "store_unavailable",
            Self::SourceMisconfigured => "source_misconfigured",
            Self::EnrichFailed => "enrich_failed",
            Self::ConfigInvalid => "config_invalid",
            Self::IngestBusy => "ingest_busy",
            Self::RouteNotFound => "route_not_found",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::HostNotAllowed => "host_not_allowed",
            Self::SyncUnsupported => "sync_unsupported",
            Self::SyncFailed => "sync_failed",
            Self::ScopeInsufficient => "scope_insufficient",
        }
    }

    /// The HTTP status an ingest endpoint answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::SignatureMissing | Self::SignatureInvalid | Self::TimestampOutOfTolerance => 401,
            Self::PayloadInvalid | Self::EventUnsupported | Self::ConfigInvalid => 400,
            Self::SourceUnknown | Self::ConnectorUnknown => 404,
            Self::BodyTooLarge => 413,
            Self::BodyTimeout => 408,
            Self::MethodNotAllowed => 405,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::StoreUnavailable => 503,
            Self::EnrichFailed => 502,
            Self::SourceMisconfigured => 500,
            Self::IngestBusy => 503,
            Self::RouteNotFound => 404,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            Self::UnsupportedMediaType => 415,
            Self::HostNotAllowed => 403,
            Self::SyncUnsupported => 400,
            Self::SyncFailed => 502,
            Self::ScopeInsufficient => 403,
        }
    }

    /// Whether sending the same request again could succeed without anyone changing anything.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::StoreUnavailable | Self::EnrichFailed | Self::BodyTimeout | Self::IngestBusy
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a delivery failed authentication. The message never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header, query parameter or timestamp the scheme needs is absent.
    #[error("missing {what}")]
    Missing { what: String },
    /// A signature is present but wrong (or cannot be decoded).
    #[error("signature does not match: {reason}")]
    Invalid { reason: String },
    /// The signed timestamp is too far from the receive time.
    #[error("timestamp is {skew_seconds}s away from now, tolerance is {tolerance_seconds}s")]
    TimestampOutOfTolerance {
        skew_seconds: i64,
        tolerance_seconds: i64,
    },
    /// The source has no secret or key to check against (an offline connector).
    #[error("source has no {what} configured")]
    NotConfigured { what: String },
}

impl VerifyError {
    pub fn missing(what: impl Into<String>) -> Self {
        Self::Missing { what: what.into() }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid {
            reason: reason.into(),
        }
    }

    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Missing { .. } => ErrorCode::SignatureMissing,
            Self::Invalid { .. } => ErrorCode::SignatureInvalid,
            Self::TimestampOutOfTolerance { .. } => ErrorCode::TimestampOutOfTolerance,
            Self::NotConfigured { .. } => ErrorCode::SourceMisconfigured,
        }
    }
}

/// Why a verified delivery could not be turned into unified events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// The body does not have the shape the vendor documents. `path` says where (a dotted
    /// path such as `data.user.id`, `.` for the document itself).
    #[error("invalid payload at {path}: {message}")]
    PayloadInvalid { path: String, message: String },
    /// The body is well formed but names an event the connector does not handle.
    #[error("event type {event_type:?} is not supported")]
    EventUnsupported { event_type: String },
}

impl NormalizeError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::PayloadInvalid {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn unsupported(event_type: impl Into<String>) -> Self {
        Self::EventUnsupported {
            event_type: event_type.into(),
        }
    }

    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::PayloadInvalid { .. } => ErrorCode::PayloadInvalid,
            Self::EventUnsupported { .. } => ErrorCode::EventUnsupported,
        }
    }

    /// The same error with `prefix` put before its path, for errors found while parsing a
    /// part of the payload (`detail` + `id` = `detail.id`).
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Self::PayloadInvalid { path, message } => {
                let path = match path.as_str() {
                    "" | "." => prefix.to_owned(),
                    _ if path.starts_with('[') => format!("{prefix}{path}"),
                    _ => format!("{prefix}.{path}"),
                };
                Self::PayloadInvalid { path, message }
            }
            other => other,
        }
    }

    /// Where in the payload the error was found, when known.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::PayloadInvalid { path, .. } => Some(path),
            Self::EventUnsupported { .. } => None,
        }
    }
}

/// Why enrichment from a vendor API failed. Enrichment failures never block an event: the
/// host emits the event as partial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enrichment failed: {message}")]
pub struct EnrichError {
    pub message: String,
    /// Whether a later attempt could succeed (timeouts, 429, 5xx).
    pub retryable: bool,
}

impl EnrichError {
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::EnrichFailed
    }
}

/// A source's options are unusable. `key` names the option (dotted for nested keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    pub const fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_strings() {
        for code in [
            ErrorCode::SignatureMissing,
            ErrorCode::SignatureInvalid,
            ErrorCode::TimestampOutOfTolerance,
            ErrorCode::PayloadInvalid,
            ErrorCode::EventUnsupported,
            ErrorCode::SourceUnknown,
            ErrorCode::ConnectorUnknown,
            ErrorCode::BodyTooLarge,
            ErrorCode::BodyTimeout,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::StoreUnavailable,
            ErrorCode::SourceMisconfigured,
            ErrorCode::EnrichFailed,
            ErrorCode::ConfigInvalid,
            ErrorCode::IngestBusy,
            ErrorCode::RouteNotFound,
            ErrorCode::UriTooLong,
            ErrorCode::HeadersTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::HostNotAllowed,
            ErrorCode::SyncUnsupported,
            ErrorCode::SyncFailed,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        assert!(ErrorCode::StoreUnavailable.is_retryable());
        assert!(!ErrorCode::SignatureInvalid.is_retryable());
        assert!(!ErrorCode::PayloadInvalid.is_retryable());
    }

    #[test]
    fn within_prefixes_the_path() {
        let error = NormalizeError::invalid("id", "bad").within("data.user");
        assert_eq!(error.path(), Some("data.user.id"));
        let error = NormalizeError::invalid(".", "bad").within("detail");
        assert_eq!(error.path(), Some("detail"));
        let error = NormalizeError::invalid("[2].id", "bad").within("items");
        assert_eq!(error.path(), Some("items[2].id"));
    }

    #[test]
    fn verify_errors_map_to_distinct_codes() {
        assert_eq!(
            VerifyError::missing("x").code(),
            ErrorCode::SignatureMissing
        );
        assert_eq!(
            VerifyError::invalid("x").code(),
            ErrorCode::SignatureInvalid
        );
        assert_eq!(
            VerifyError::TimestampOutOfTolerance {
                skew_seconds: 400,
                tolerance_seconds: 300
            }
            .code(),
            ErrorCode::TimestampOutOfTolerance
        );
    }
}
