//! Rate limits on a vendor's API, per source: a token bucket that enrichment and user
//! listing share. Pure: the caller passes the time, so it is tested without a clock.

use std::time::{Duration, Instant};

/// A token bucket refilled continuously at `rate` tokens per second, holding at most one
/// second's worth (and at least one token).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, now: Instant) -> Self {
        let capacity = rate.max(1.0);
        Self {
            rate,
            capacity,
            tokens: capacity,
            refilled: now,
        }
    }

    /// Takes a token if one is there (`None`), else says how long until one is.
    pub fn wait_time(&mut self, now: Instant) -> Option<Duration> {
        if self.try_take(now) {
            return None;
        }
        let missing = (1.0 - self.tokens).max(0.0);
        Some(Duration::from_secs_f64(missing / self.rate).max(Duration::from_millis(1)))
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_one_seconds_worth_and_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, start);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.try_take(start + Duration::from_millis(500)));
        assert!(!bucket.try_take(start + Duration::from_millis(500)));
        // A slow rate still allows one request.
        let mut slow = TokenBucket::new(0.5, start);
        assert!(slow.try_take(start));
        assert!(!slow.try_take(start + Duration::from_secs(1)));
        assert!(slow.try_take(start + Duration::from_secs(2)));
    }

    #[test]
    fn the_wait_is_the_time_until_the_next_token() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(4.0, start);
        for _ in 0..4 {
            assert_eq!(bucket.wait_time(start), None);
        }
        let wait = bucket.wait_time(start).unwrap();
        assert!(
            wait > Duration::from_millis(240) && wait <= Duration::from_millis(250),
            "{wait:?}"
        );
        assert_eq!(bucket.wait_time(start + wait), None);
    }
}
