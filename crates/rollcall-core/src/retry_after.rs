//! `Retry-After` (RFC 9110 §10.2.3): how long a peer asks to be left alone, as delay seconds
//! or an HTTP date. One reader for every peer rollcall calls: vendors' APIs and sinks'
//! endpoints.

use std::time::{Duration, SystemTime};

use crate::backoff::MAX_RETRY_AFTER;

/// Reads a `Retry-After` value as delay seconds or an HTTP date (relative to `now`), capped
/// at [`MAX_RETRY_AFTER`]; a date in the past means now. `None` when the value is neither
/// form (negative, fractional, empty, a malformed date): the caller then uses its own pause.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // All digits, so parsing fails only on overflow: that is "very long".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        // 2015-10-21T07:28:00Z, a whole second, as HTTP dates are.
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn delay_seconds_are_read_around_white_space() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(" 7 ", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
    }

    #[test]
    fn an_http_date_is_the_time_until_it() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now()),
            Some(Duration::from_secs(90))
        );
        let at = httpdate::fmt_http_date(now() + Duration::from_secs(45));
        assert_eq!(parse_retry_after(&at, now()), Some(Duration::from_secs(45)));
    }

    #[test]
    fn an_http_date_in_the_past_means_now() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:26:30 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn far_values_are_capped_at_an_hour() {
        assert_eq!(parse_retry_after("86400", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after(&"9".repeat(40), now()),
            Some(MAX_RETRY_AFTER)
        );
        let at = httpdate::fmt_http_date(now() + Duration::from_secs(86_400));
        assert_eq!(parse_retry_after(&at, now()), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn negative_fractional_and_garbage_values_are_not_read() {
        for value in [
            "",
            "   ",
            "-5",
            "-0",
            "+5",
            "1.5",
            "5s",
            "soon",
            "0x10",
            "Tue, 99 Foo 2024 00:00:00 GMT",
            "2015-10-21T07:29:30Z",
        ] {
            assert_eq!(parse_retry_after(value, now()), None, "{value:?}");
        }
    }
}
