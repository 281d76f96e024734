//! How a vendor retries a delivery rollcall did not accept, and how long it waits for an
//! answer.
//!
//! rollcall's promise that "the store being down is a retry, not a loss" holds only if the
//! answer to a transient failure is one the vendor actually retries, and only if the retry is
//! still accepted when it comes. Vendors differ: HighLevel retries `429` alone, six times
//! about ten minutes apart, and treats a `503` as final; Okta waits three seconds for an
//! answer. A connector states its vendor's behaviour with [`Connector::retry_contract`]; the
//! host reads it to pick the transient status, to bound enrichment, and the connector itself
//! to size its replay window.
//!
//! [`Connector::retry_contract`]: crate::Connector::retry_contract

use std::time::Duration;

/// Which failure answers a vendor sends again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetriedAnswers {
    /// The usual webhook contract: `5xx`, `429` and timeouts are retried, other `4xx` are
    /// final. What rollcall assumes when a connector says nothing.
    #[default]
    ServerErrors,
    /// Only these statuses are retried; every other answer, `5xx` included, is final.
    Only(&'static [u16]),
}

impl RetriedAnswers {
    /// Whether the vendor sends a delivery again after this answer.
    pub fn retries(&self, status: u16) -> bool {
        match self {
            Self::ServerErrors => status == 429 || (500..600).contains(&status),
            Self::Only(statuses) => statuses.contains(&status),
        }
    }
}

/// A vendor's retry contract. Built from [`RetryContract::default`] with the `with_*`
/// methods, so a field added later breaks no connector:
///
/// ```
/// use std::time::Duration;
/// use rollcall_core::retry::{RetriedAnswers, RetryContract};
///
/// let highlevel = RetryContract::default()
///     .with_retried(RetriedAnswers::Only(&[429]))
///     .with_retry_interval(Duration::from_secs(600))
///     .with_horizon(Duration::from_secs(70 * 60));
/// assert_eq!(highlevel.transient_status(), 429);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryContract {
    retried: RetriedAnswers,
    retry_interval: Option<Duration>,
    horizon: Option<Duration>,
    answer_deadline: Option<Duration>,
}

/// The status the host answers a transient failure with when the vendor retries `5xx`.
pub const SERVICE_UNAVAILABLE: u16 = 503;

impl RetryContract {
    /// The answers the vendor retries.
    pub fn with_retried(mut self, retried: RetriedAnswers) -> Self {
        self.retried = retried;
        self
    }

    /// About how long the vendor waits between attempts: the `Retry-After` the host sends
    /// with a transient failure.
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = Some(interval);
        self
    }

    /// How long after the first attempt the vendor may still send the same delivery.
    pub fn with_horizon(mut self, horizon: Duration) -> Self {
        self.horizon = Some(horizon);
        self
    }

    /// How long the vendor waits for an answer before it counts the attempt as failed.
    pub fn with_answer_deadline(mut self, deadline: Duration) -> Self {
        self.answer_deadline = Some(deadline);
        self
    }

    pub fn retried(&self) -> &RetriedAnswers {
        &self.retried
    }

    pub fn retry_interval(&self) -> Option<Duration> {
        self.retry_interval
    }

    pub fn horizon(&self) -> Option<Duration> {
        self.horizon
    }

    pub fn answer_deadline(&self) -> Option<Duration> {
        self.answer_deadline
    }

    /// The status that makes the vendor send a delivery again: `503` when it retries that,
    /// else the first status it retries (`429` for HighLevel).
    pub fn transient_status(&self) -> u16 {
        match &self.retried {
            RetriedAnswers::Only(statuses) if !statuses.contains(&SERVICE_UNAVAILABLE) => {
                statuses.first().copied().unwrap_or(SERVICE_UNAVAILABLE)
            }
            _ => SERVICE_UNAVAILABLE,
        }
    }

    /// How long the host may take to answer a delivery: its own request timeout, shortened
    /// to nine tenths of the vendor's deadline so the answer travels back before the vendor
    /// gives up (and counts a delivery that was in fact committed as failed).
    pub fn answer_budget(&self, host_timeout: Duration) -> Duration {
        match self.answer_deadline {
            Some(deadline) => host_timeout.min(deadline.mul_f64(0.9)),
            None => host_timeout,
        }
    }

    /// How long enrichment may take, for all of a delivery's events together: half of
    /// [`RetryContract::answer_budget`], so the commit keeps the other half.
    pub fn enrich_budget(&self, host_timeout: Duration) -> Duration {
        self.answer_budget(host_timeout) / 2
    }

    /// How old a signed timestamp may be and still be accepted: the retry horizon plus the
    /// usual clock tolerance, so a vendor's last retry of a delivery is not refused as a
    /// replay. Without a horizon, the tolerance alone.
    pub fn replay_window(&self, tolerance: Duration) -> Duration {
        self.horizon.unwrap_or_default() + tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_retries_server_errors_and_answers_503() {
        let contract = RetryContract::default();
        assert_eq!(contract.transient_status(), 503);
        assert!(contract.retried().retries(503));
        assert!(contract.retried().retries(429));
        assert!(!contract.retried().retries(400));
        assert_eq!(contract.horizon(), None);
        assert_eq!(contract.retry_interval(), None);
    }

    #[test]
    fn a_vendor_that_retries_only_429_is_answered_429() {
        let contract = RetryContract::default().with_retried(RetriedAnswers::Only(&[429]));
        assert_eq!(contract.transient_status(), 429);
        assert!(!contract.retried().retries(503));
    }

    #[test]
    fn a_vendor_that_lists_503_among_others_is_answered_503() {
        let contract = RetryContract::default().with_retried(RetriedAnswers::Only(&[409, 503]));
        assert_eq!(contract.transient_status(), 503);
    }

    #[test]
    fn the_answer_budget_keeps_a_tenth_of_the_deadline_for_the_way_back() {
        let host = Duration::from_secs(15);
        let okta = RetryContract::default().with_answer_deadline(Duration::from_secs(3));
        assert_eq!(okta.answer_budget(host), Duration::from_millis(2700));
        assert_eq!(okta.enrich_budget(host), Duration::from_millis(1350));
        let slow = RetryContract::default().with_answer_deadline(Duration::from_secs(60));
        assert_eq!(slow.answer_budget(host), host);
        assert_eq!(RetryContract::default().answer_budget(host), host);
    }

    #[test]
    fn the_replay_window_covers_the_retry_horizon() {
        let tolerance = Duration::from_secs(300);
        let contract = RetryContract::default().with_horizon(Duration::from_secs(70 * 60));
        assert_eq!(
            contract.replay_window(tolerance),
            Duration::from_secs(75 * 60)
        );
        assert_eq!(RetryContract::default().replay_window(tolerance), tolerance);
    }
}
