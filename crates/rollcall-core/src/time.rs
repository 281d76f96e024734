//! Vendor timestamps in, RFC 3339 UTC out.
//!
//! Vendors send RFC 3339 with local offsets (`2023-05-18T16:36:00+05:30`), `Z` times, and
//! epoch seconds with a fraction (`1684407960.307151`), as numbers or strings. rollcall
//! always emits RFC 3339 in UTC ending in `Z`, with the fraction trimmed of trailing zeros
//! (none when the time is a whole second).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant, always held in UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A timestamp that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a timestamp ({expected}): {value:?}")]
pub struct TimestampError {
    pub value: String,
    pub expected: &'static str,
}

impl Timestamp {
    /// The current time, to the millisecond (what the journal stores and event ids carry).
    /// Hosts call this once per delivery; connectors never do.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        let millis = now.unix_timestamp_nanos() / 1_000_000;
        Self(OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).unwrap_or(now))
    }

    /// RFC 3339 with any offset (`Z`, `+05:30`, `-07:00`), with or without a fraction.
    pub fn parse_rfc3339(value: &str) -> Result<Self, TimestampError> {
        OffsetDateTime::parse(value.trim(), &Rfc3339)
            .map(Self::from_offset)
            .map_err(|_| TimestampError {
                value: value.to_owned(),
                expected: "RFC 3339",
            })
    }

    /// Seconds since the Unix epoch, with an optional fraction (microsecond precision is kept).
    pub fn from_epoch_seconds(seconds: f64) -> Result<Self, TimestampError> {
        let error = || TimestampError {
            value: seconds.to_string(),
            expected: "epoch seconds",
        };
        if !seconds.is_finite() {
            return Err(error());
        }
        // Round to whole microseconds: an f64 cannot hold nanoseconds at today's epoch, and
        // rounding keeps `1684407960.307151` from printing as `.307150999`.
        let micros = (seconds * 1_000_000.0).round();
        if micros.abs() > 253_402_300_799_000_000.0 {
            return Err(error());
        }
        let nanos = (micros as i128) * 1_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(Self)
            .map_err(|_| error())
    }

    /// Whole seconds since the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimestampError> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(Self)
            .map_err(|_| TimestampError {
                value: seconds.to_string(),
                expected: "epoch seconds",
            })
    }

    /// Milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Result<Self, TimestampError> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .map(Self)
            .map_err(|_| TimestampError {
                value: millis.to_string(),
                expected: "epoch milliseconds",
            })
    }

    /// Reads what vendors put in a JSON timestamp field: an RFC 3339 string, or epoch seconds
    /// as a number or a numeric string.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TimestampError> {
        match value {
            serde_json::Value::Number(number) => number
                .as_f64()
                .ok_or_else(|| TimestampError {
                    value: number.to_string(),
                    expected: "epoch seconds",
                })
                .and_then(Self::from_epoch_seconds),
            serde_json::Value::String(text) => match text.trim().parse::<f64>() {
                Ok(seconds) => Self::from_epoch_seconds(seconds),
                Err(_) => Self::parse_rfc3339(text),
            },
            other => Err(TimestampError {
                value: other.to_string(),
                expected: "RFC 3339 string or epoch seconds",
            }),
        }
    }

    fn from_offset(value: OffsetDateTime) -> Self {
        Self(value.to_offset(UtcOffset::UTC))
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn unix_millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Seconds from `self` to `other` (positive when `other` is later).
    pub fn seconds_until(self, other: Timestamp) -> i64 {
        (other.0 - self.0).whole_seconds()
    }

    pub fn into_inner(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(value: OffsetDateTime) -> Self {
        Self::from_offset(value)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_offsets_are_converted_to_utc() {
        let t = Timestamp::parse_rfc3339("2023-05-18T16:36:00+05:30").unwrap();
        assert_eq!(t.to_string(), "2023-05-18T11:06:00Z");
        let t = Timestamp::parse_rfc3339("2017-06-06T10:53:43+02:00").unwrap();
        assert_eq!(t.to_string(), "2017-06-06T08:53:43Z");
    }

    #[test]
    fn epoch_seconds_keep_microseconds() {
        let t = Timestamp::from_epoch_seconds(1_684_407_960.307_151).unwrap();
        assert_eq!(t.to_string(), "2023-05-18T11:06:00.307151Z");
        let t = Timestamp::from_json(&serde_json::json!("1684407960")).unwrap();
        assert_eq!(t.to_string(), "2023-05-18T11:06:00Z");
    }

    #[test]
    fn fractions_are_trimmed() {
        let t = Timestamp::parse_rfc3339("2026-11-22T05:00:00.120Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-22T05:00:00.12Z");
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::from_epoch_seconds(f64::NAN).is_err());
        assert!(Timestamp::from_epoch_seconds(1e300).is_err());
        assert!(Timestamp::from_json(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn round_trips_through_serde() {
        let t = Timestamp::parse_rfc3339("2099-07-04T05:33:18Z").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2099-07-04T05:33:18Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    proptest::proptest! {
        #[test]
        fn any_epoch_second_formats_as_utc_and_parses_back(seconds in -62_135_596_800i64..253_402_300_799) {
            let t = Timestamp::from_unix_seconds(seconds).unwrap();
            let text = t.to_string();
            proptest::prop_assert!(text.ends_with('Z'));
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&text).unwrap(), t);
        }
    }
}
