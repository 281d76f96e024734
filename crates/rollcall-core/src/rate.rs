//! Rate limits on a vendor's API, one per source, shared by that source's enrichment and
//! user listing, and each sink's delivery rate: a thin layer over `governor` (GCRA) that fixes
//! rollcall's two quota shapes, a vendor API's ([`quota_per_second`]) and a sink's
//! ([`quota_paced`]).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// A source's rate limit. Thread-safe without a lock; cheap to check.
#[derive(Debug)]
pub struct RateLimit<C: Clock = MonotonicClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

/// `rate` requests per second with a burst of one second's worth (at least one request): a
/// vendor API's limit. `None` when the rate is not a positive, finite number.
pub fn quota_per_second(rate: f64) -> Option<Quota> {
    let burst = NonZeroU32::new(rate.floor().clamp(1.0, f64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    quota_paced(rate).map(|quota| quota.allow_burst(burst))
}

/// `rate` requests per second, evenly spaced (no burst): a sink's delivery limit. `None`
/// when the rate is not a positive, finite number.
pub fn quota_paced(rate: f64) -> Option<Quota> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    Quota::with_period(Duration::from_secs_f64(1.0 / rate))
}

impl RateLimit {
    /// [`quota_per_second`] on the monotonic clock; `None` for a rate that is not a
    /// positive, finite number.
    pub fn per_second(rate: f64) -> Option<Self> {
        quota_per_second(rate).map(|quota| Self::with_clock(quota, MonotonicClock))
    }
}

impl<C: Clock + Clone> RateLimit<C> {
    /// A limit of `quota` on `clock` (a test's, or tokio's so a paused clock paces it).
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Takes a request's place if there is one now.
    pub fn try_take(&self) -> bool {
        self.limiter.check().is_ok()
    }

    /// Takes a request's place (`None`), or says how long until one is free.
    pub fn wait_time(&self) -> Option<Duration> {
        match self.limiter.check() {
            Ok(()) => None,
            Err(not_until) => Some(
                not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn the_limit_allows_one_seconds_worth_at_once_and_refills() {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(quota_per_second(2.0).unwrap(), clock.clone());
        assert!(limit.try_take());
        assert!(limit.try_take());
        assert!(!limit.try_take());
        clock.advance(Duration::from_millis(500));
        assert!(limit.try_take());
        assert!(!limit.try_take());
        // A slow rate still allows one request, then one per period.
        let slow = RateLimit::with_clock(quota_per_second(0.5).unwrap(), clock.clone());
        assert!(slow.try_take());
        clock.advance(Duration::from_secs(1));
        assert!(!slow.try_take());
        clock.advance(Duration::from_secs(1));
        assert!(slow.try_take());
    }

    #[test]
    fn the_wait_is_the_time_until_the_next_request() {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(quota_per_second(4.0).unwrap(), clock.clone());
        for _ in 0..4 {
            assert_eq!(limit.wait_time(), None);
        }
        let wait = limit.wait_time().unwrap();
        assert!(
            wait > Duration::from_millis(240) && wait <= Duration::from_millis(250),
            "{wait:?}"
        );
        clock.advance(wait);
        assert_eq!(limit.wait_time(), None);
    }

    #[test]
    fn a_paced_limit_has_no_burst() {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(quota_paced(10.0).unwrap(), clock.clone());
        assert!(limit.try_take());
        assert_eq!(limit.wait_time(), Some(Duration::from_millis(100)));
        clock.advance(Duration::from_millis(100));
        assert!(limit.try_take());
    }

    #[test]
    fn rates_that_are_not_positive_numbers_have_no_quota() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(quota_per_second(rate).is_none(), "{rate}");
            assert!(quota_paced(rate).is_none(), "{rate}");
        }
    }
}
