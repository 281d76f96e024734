//! How rollcall waits on a failing peer: capped exponential backoff with full jitter, and a
//! circuit breaker. One implementation, shared by the delivery workers, the sinks and the
//! connectors' outbound calls (Zendesk enrichment).
//!
//! Both are plain state machines over an instant the caller passes in, so they hold no clock:
//! the host passes tokio's clock (paused in tests), the connectors `std::time::Instant`.

use std::time::{Duration, Instant};

/// The longest `Retry-After` a peer's answer is honoured for; longer values are cut to this,
/// so a peer cannot park a sink or a connector for days with one header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Capped exponential backoff: the `n`-th wait is at most `min(max, initial * 2^(n-1))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The upper bound of the `attempt`-th wait (attempts count from 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// Full jitter: a uniform wait in `[0, ceiling(attempt)]`, so peers that failed together
    /// do not come back together.
    pub fn full_jitter(&self, attempt: u32) -> Duration {
        let millis = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

/// What one call said about the peer's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered properly (whatever the answer meant for the request itself).
    Healthy,
    /// It failed: transport error, timeout, 5xx. Counts towards opening the breaker.
    Failing,
    /// It asked for a pause (429 or 503 with `Retry-After`): open for that long.
    RetryAfter(Duration),
}

/// Whether a call may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Calls wait (or are skipped) until the cool-down ends.
    Open,
    /// The cool-down is over: one trial call may go, and its outcome decides.
    HalfOpen,
}

/// A circuit breaker: after `threshold` consecutive failures it opens for a cool-down that
/// grows with each failed trial (`cooldown.ceiling(n)` for the `n`-th consecutive opening),
/// then lets one trial call through (half-open): success closes it, failure opens it again.
/// A `Retry-After` opens it for that long.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Backoff,
    consecutive_failures: u32,
    /// Consecutive openings without a successful trial in between.
    openings: u32,
    /// Set while open (until then), and after, until a trial call decides.
    open_until: Option<Instant>,
    /// While a half-open trial is in flight: when its claim ends (a cancelled trial never
    /// reports back).
    trial_until: Option<Instant>,
}

impl CircuitBreaker {
    /// `threshold` is at least 1.
    pub fn new(threshold: u32, cooldown: Backoff) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            consecutive_failures: 0,
            openings: 0,
            open_until: None,
            trial_until: None,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => match self.trial_until {
                Some(claim) if now < claim => BreakerState::Open,
                _ => BreakerState::HalfOpen,
            },
        }
    }

    /// When an open breaker lets its next call through (`None` when closed).
    pub fn reopens_at(&self) -> Option<Instant> {
        let until = self.open_until?;
        Some(match self.trial_until {
            Some(claim) if claim > until => claim,
            _ => until,
        })
    }

    /// Marks the half-open trial as sent; other calls wait until it reports or `until`.
    pub fn start_trial(&mut self, until: Instant) {
        self.trial_until = Some(until);
    }

    /// Admits a call at `now`: `None` while open, else whether it is the half-open trial
    /// (then claimed until `now + claim`).
    pub fn admit(&mut self, now: Instant, claim: Duration) -> Option<bool> {
        match self.state(now) {
            BreakerState::Closed => Some(false),
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                self.start_trial(now + claim);
                Some(true)
            }
        }
    }

    /// Records a call's outcome; `trial` says whether it was the half-open trial.
    pub fn record(&mut self, health: Health, trial: bool, now: Instant) {
        if trial {
            self.trial_until = None;
        }
        match health {
            Health::Healthy => {
                self.consecutive_failures = 0;
                // Only the trial closes an open breaker: a call admitted before it opened
                // knows less than whatever opened it.
                if trial || self.open_until.is_none() {
                    self.open_until = None;
                    self.openings = 0;
                }
            }
            Health::Failing => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if trial || self.consecutive_failures >= self.threshold {
                    self.openings = self.openings.saturating_add(1);
                    self.open_for(now + self.cooldown.ceiling(self.openings));
                }
            }
            Health::RetryAfter(wait) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.open_for(now + wait);
            }
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Opens until `until`, or later if already open for longer.
    fn open_for(&mut self, until: Instant) {
        self.open_until = Some(match self.open_until {
            Some(current) if current > until => current,
            _ => until,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_and_stop_at_the_maximum() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let ceilings: Vec<_> = (1..=6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.ceiling(200).as_millis(), 1000);
    }

    #[test]
    fn jittered_waits_stay_within_the_ceiling() {
        let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
        for attempt in 1..10 {
            for _ in 0..50 {
                assert!(backoff.full_jitter(attempt) <= backoff.ceiling(attempt));
            }
        }
    }

    fn fixed(cooldown: Duration) -> Backoff {
        Backoff::new(cooldown, cooldown)
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_lets_one_trial_through() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(5, fixed(Duration::from_secs(30)));
        for _ in 0..4 {
            breaker.record(Health::Failing, false, start);
            assert_eq!(breaker.state(start), BreakerState::Closed);
        }
        breaker.record(Health::Failing, false, start);
        assert_eq!(breaker.state(start), BreakerState::Open);
        assert_eq!(breaker.admit(start, Duration::from_secs(4)), None);
        let later = start + Duration::from_secs(30);
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        // The trial goes; others wait while it is out, then it fails: open again.
        assert_eq!(breaker.admit(later, Duration::from_secs(4)), Some(true));
        assert_eq!(breaker.state(later), BreakerState::Open);
        breaker.record(Health::Failing, true, later);
        assert_eq!(
            breaker.state(later + Duration::from_secs(29)),
            BreakerState::Open
        );
        let again = later + Duration::from_secs(30);
        assert_eq!(breaker.state(again), BreakerState::HalfOpen);
        breaker.record(Health::Healthy, true, again);
        assert_eq!(breaker.state(again), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
    }

    #[test]
    fn each_failed_trial_lengthens_the_cooldown_up_to_its_maximum() {
        let start = Instant::now();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let mut breaker = CircuitBreaker::new(1, backoff);
        let mut now = start;
        let mut pauses = Vec::new();
        for _ in 0..4 {
            breaker.record(Health::Failing, true, now);
            let reopens = breaker.reopens_at().unwrap();
            pauses.push((reopens - now).as_secs());
            now = reopens;
        }
        assert_eq!(pauses, [1, 2, 4, 4]);
    }

    #[test]
    fn a_cancelled_trial_releases_its_claim() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(5, fixed(Duration::from_secs(1)));
        breaker.record(Health::RetryAfter(Duration::ZERO), false, start);
        assert_eq!(breaker.state(start), BreakerState::HalfOpen);
        breaker.start_trial(start + Duration::from_secs(2));
        assert_eq!(breaker.state(start), BreakerState::Open);
        assert_eq!(
            breaker.state(start + Duration::from_secs(2)),
            BreakerState::HalfOpen
        );
    }

    #[test]
    fn a_late_failure_does_not_shorten_a_retry_after_pause() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(5, fixed(Duration::from_secs(1)));
        breaker.record(Health::RetryAfter(Duration::from_secs(60)), false, start);
        for _ in 0..5 {
            breaker.record(Health::Failing, false, start);
        }
        breaker.record(Health::Healthy, false, start);
        assert_eq!(
            breaker.state(start + Duration::from_secs(59)),
            BreakerState::Open
        );
    }
}
