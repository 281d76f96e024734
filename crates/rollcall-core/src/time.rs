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
            .ok()
            .and_then(Self::checked)
            .ok_or_else(|| TimestampError {
                value: value.to_owned(),
                expected: "RFC 3339 (years 0000 to 9999 in UTC)",
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
            .ok()
            .and_then(Self::checked)
            .ok_or_else(error)
    }

    /// Whole seconds since the Unix epoch.
    pub fn from_unix_seconds(seconds: i64) -> Result<Self, TimestampError> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .and_then(Self::checked)
            .ok_or_else(|| TimestampError {
                value: seconds.to_string(),
                expected: "epoch seconds",
            })
    }

    /// Milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Result<Self, TimestampError> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .ok()
            .and_then(Self::checked)
            .ok_or_else(|| TimestampError {
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

    /// The instant in UTC, if RFC 3339 can write it: years 0000 to 9999 in UTC. Anything
    /// else is refused here rather than emitted as text no reader (rollcall's own included)
    /// parses back; converting to UTC is checked, so `9999-12-31T23:59:59-01:00` is an
    /// error, not a panic.
    fn checked(value: OffsetDateTime) -> Option<Self> {
        let utc = value.checked_to_offset(UtcOffset::UTC)?;
        (0..=9999).contains(&utc.year()).then_some(Self(utc))
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

impl TryFrom<OffsetDateTime> for Timestamp {
    type Error = TimestampError;

    fn try_from(value: OffsetDateTime) -> Result<Self, Self::Error> {
        Self::checked(value).ok_or_else(|| TimestampError {
            value: value.to_string(),
            expected: "a time in years 0000 to 9999 (UTC)",
        })
    }
}

impl Timestamp {
    /// The RFC 3339 text in UTC (`2023-05-18T11:06:00.307151Z`: fractional digits only as
    /// many as needed) written into `buffer`, without the formatting machinery: every event
    /// the store encodes carries several timestamps. `None` for a year outside 0..=9999,
    /// which [`fmt::Display`] writes the slow way.
    fn rfc3339<'b>(&self, buffer: &'b mut [u8; 30]) -> Option<&'b str> {
        fn two(out: &mut [u8], value: u8) {
            out[0] = b'0' + value / 10;
            out[1] = b'0' + value % 10;
        }
        let t = self.0;
        let year = u16::try_from(t.year()).ok().filter(|year| *year <= 9999)?;
        let (month, day) = (u8::from(t.month()), t.day());
        let (hour, minute, second) = (t.hour(), t.minute(), t.second());
        two(&mut buffer[0..2], (year / 100) as u8);
        two(&mut buffer[2..4], (year % 100) as u8);
        buffer[4] = b'-';
        two(&mut buffer[5..7], month);
        buffer[7] = b'-';
        two(&mut buffer[8..10], day);
        buffer[10] = b'T';
        two(&mut buffer[11..13], hour);
        buffer[13] = b':';
        two(&mut buffer[14..16], minute);
        buffer[16] = b':';
        two(&mut buffer[17..19], second);
        let mut end = 19;
        let mut nanos = t.nanosecond();
        if nanos != 0 {
            buffer[end] = b'.';
            let mut digits = 9;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                digits -= 1;
            }
            for index in (0..digits).rev() {
                buffer[end + 1 + index] = b'0' + (nanos % 10) as u8;
                nanos /= 10;
            }
            end += 1 + digits;
        }
        buffer[end] = b'Z';
        std::str::from_utf8(&buffer[..=end]).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.rfc3339(&mut [0; 30]) {
            return f.write_str(text);
        }
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
        match self.rfc3339(&mut [0; 30]) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_str(self),
        }
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
    use proptest::prelude::{Just, Strategy};

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

    #[test]
    fn times_rfc_3339_cannot_write_are_refused_not_emitted() {
        // Year -1199, which would print as text no reader parses back.
        assert!(Timestamp::from_epoch_seconds(-100_000_000_000.0).is_err());
        assert!(Timestamp::from_unix_seconds(-100_000_000_000).is_err());
        assert!(Timestamp::from_unix_millis(i64::MIN).is_err());
        // Year 0000 with a positive offset is year -1 in UTC.
        assert!(Timestamp::parse_rfc3339("0000-01-01T00:00:00+01:00").is_err());
        // Year 10000 in UTC: refused, and without a panic.
        assert!(Timestamp::parse_rfc3339("9999-12-31T23:59:59-01:00").is_err());
        assert!(Timestamp::parse_rfc3339("0000-01-01T00:00:00Z").is_ok());
        assert!(Timestamp::parse_rfc3339("9999-12-31T23:59:59Z").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn every_accepted_time_round_trips_through_its_text(
            seconds in proptest::num::f64::ANY,
            offset_minutes in -1439i32..1440,
        ) {
            if let Ok(t) = Timestamp::from_epoch_seconds(seconds) {
                proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
            }
            // The same instant written with an offset either parses back to itself or is
            // refused (never a panic, never unreadable output).
            if let Ok(t) = Timestamp::from_unix_seconds(seconds as i64) {
                let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
                if let Some(local) = t.into_inner().checked_to_offset(offset) {
                    if let Ok(text) = local.format(&Rfc3339) {
                        if let Ok(back) = Timestamp::parse_rfc3339(&text) {
                            proptest::prop_assert_eq!(back, t);
                        }
                    }
                }
            }
        }

        /// The hand-written text is what `{:04}-{:02}-...` with trimmed nanoseconds writes,
        /// in Display and in serde alike.
        #[test]
        fn the_fast_text_is_the_formatted_text(
            seconds in -62_135_596_800i64..253_402_300_799,
            nanos in proptest::prop_oneof![Just(0u32), 0u32..1_000_000_000, (0u32..1000).prop_map(|n| n * 1_000_000)],
        ) {
            let t = Timestamp(
                OffsetDateTime::from_unix_timestamp(seconds).unwrap().replace_nanosecond(nanos).unwrap(),
            );
            let inner = t.into_inner();
            let mut expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                inner.year(), u8::from(inner.month()), inner.day(), inner.hour(), inner.minute(), inner.second()
            );
            if nanos != 0 {
                expected.push('.');
                expected.push_str(format!("{nanos:09}").trim_end_matches('0'));
            }
            expected.push('Z');
            proptest::prop_assert_eq!(&t.to_string(), &expected);
            proptest::prop_assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{expected}\""));
        }

        #[test]
        fn any_epoch_second_formats_as_utc_and_parses_back(seconds in -62_135_596_800i64..253_402_300_799) {
            let t = Timestamp::from_unix_seconds(seconds).unwrap();
            let text = t.to_string();
            proptest::prop_assert!(text.ends_with('Z'));
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&text).unwrap(), t);
        }
    }
}
