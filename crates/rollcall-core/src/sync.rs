//! Listing a vendor's users, for the initial sync (backfill) and periodic reconciliation.
//!
//! A connector whose vendor has an API that lists users implements
//! [`Connector::list_users`](crate::Connector::list_users): one page per call, starting at a
//! [`ListCursor`] the previous page returned (`None` for the first page). Each page's users
//! are mapped with the same code as the connector's webhooks, so a user synced and the same
//! user sent by webhook are identical. The host decides what to do with them (compare with
//! the directory, commit the differences); the connector only lists.
//!
//! A cursor is opaque to the host: it is stored as it is, so an interrupted listing resumes
//! from the page it had reached. It must therefore be enough on its own to fetch that page
//! and must carry no secret (it is stored and shown on the admin API).

use std::time::Duration;

use crate::error::ErrorCode;
use crate::model::User;

/// Where a listing continues: the vendor's own cursor, next-page URL or page number, as the
/// connector chose to encode it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ListCursor(pub String);

impl ListCursor {
    pub fn new(cursor: impl Into<String>) -> Self {
        Self(cursor.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPage {
    /// The page's users, mapped as the connector maps its webhooks' users (complete users:
    /// never `partial`).
    pub users: Vec<User>,
    /// The next page's cursor; `None` on the last page.
    pub next: Option<ListCursor>,
    /// Unified fields (as in [`crate::model::USER_FIELDS`]) the vendor's listing never
    /// states, though its webhooks may (Okta lists no group memberships): the host keeps
    /// what the directory knows for them instead of reading their absence as a removal.
    pub unlisted: &'static [&'static str],
}

/// Why a page could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The connector cannot list users (the vendor has no such API, or the source has no
    /// API credentials).
    #[error("this source cannot list users: {0}")]
    Unsupported(String),
    /// The vendor answered 429 (or its equivalent) and said when to come back. The host
    /// waits that long and asks for the same page again.
    #[error("the vendor is rate limiting; retry after {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// Any other failure. `retryable` says whether asking for the same page again could
    /// succeed (a timeout, a 5xx) or not (401, a body the connector cannot read). The
    /// message carries neither credentials nor users' data.
    #[error("{message}")]
    Failed { message: String, retryable: bool },
}

impl ListError {
    pub fn failed(retryable: bool, message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            retryable,
        }
    }

    /// Whether asking for the same page again could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unsupported(_) => false,
            Self::RateLimited { .. } => true,
            Self::Failed { retryable, .. } => *retryable,
        }
    }

    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Unsupported(_) => ErrorCode::SyncUnsupported,
            Self::RateLimited { .. } | Self::Failed { .. } => ErrorCode::SyncFailed,
        }
    }
}

/// The target of the `rel="next"` link among `Link` header values (RFC 8288), as written.
pub fn next_link<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for value in values {
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next() else { continue };
            let is_next = parts.any(|part| {
                let part: String = part.chars().filter(|c| !c.is_whitespace()).collect();
                part.eq_ignore_ascii_case("rel=\"next\"") || part.eq_ignore_ascii_case("rel=next")
            });
            if is_next {
                let target = target.trim();
                let target = target.strip_prefix('<').unwrap_or(target);
                let target = target.strip_suffix('>').unwrap_or(target);
                return Some(target.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_link_values() {
        let values = [
            "<https://acme.okta.com/api/v1/users?limit=200>; rel=\"self\"",
            "<https://acme.okta.com/api/v1/users?after=00u1&limit=200>; rel=\"next\"",
        ];
        assert_eq!(
            next_link(values).as_deref(),
            Some("https://acme.okta.com/api/v1/users?after=00u1&limit=200")
        );
        let combined = "<https://x/a?page=1>; rel=\"prev\", <https://x/a?page=3>; rel=next";
        assert_eq!(next_link([combined]).as_deref(), Some("https://x/a?page=3"));
        assert_eq!(next_link(["<https://x/a>; rel=\"self\""]), None);
    }

    #[test]
    fn only_transient_listing_failures_are_retryable() {
        assert!(ListError::RateLimited {
            retry_after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(ListError::failed(true, "503").is_retryable());
        assert!(!ListError::failed(false, "401").is_retryable());
        assert!(!ListError::Unsupported("no API".into()).is_retryable());
    }
}
