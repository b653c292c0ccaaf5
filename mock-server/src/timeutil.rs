//! Small time helpers: `X-Sdk-Date` parsing, epoch milliseconds, calendar arithmetic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Parse `YYYYMMDDTHHMMSSZ` (UTC).
pub fn parse_sdk_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let (h, m, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let t = Time::from_hms(u8::try_from(h).ok()?, u8::try_from(m).ok()?, u8::try_from(sec).ok()?).ok()?;
    let odt = PrimitiveDateTime::new(date, t).assume_utc();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(odt.unix_timestamp()).ok()?))
}

/// Format a time as `YYYYMMDDTHHMMSSZ`.
pub fn format_sdk_date(t: SystemTime) -> String {
    let odt = OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        odt.year(),
        u8::from(odt.month()),
        odt.day(),
        odt.hour(),
        odt.minute(),
        odt.second()
    )
}

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub fn to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Epoch ms → `OffsetDateTime` (truncated to whole seconds, as X.509 times are).
pub fn ms_to_datetime(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()
}

pub fn datetime_to_ms(dt: OffsetDateTime) -> i64 {
    dt.unix_timestamp().saturating_mul(1000)
}

/// Add whole calendar months, clamping the day to the target month's length
/// (e.g. 31 Jan + 1 month = 28/29 Feb).
pub fn add_months(dt: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let total = i64::from(dt.year()) * 12 + i64::from(u8::from(dt.month())) - 1 + months;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let last = month.length(year);
    let day = dt.day().min(last);
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(dt.replace_date(date))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_date_roundtrip() {
        let t = parse_sdk_date("20060102T150405Z").unwrap();
        assert_eq!(to_ms(t), 1_136_214_245_000);
        assert_eq!(format_sdk_date(t), "20060102T150405Z");
        for bad in [
            "",
            "20060102T150405",
            "2006-01-02T15:04:05Z",
            "20061302T150405Z",
            "2006010xT150405Z",
            "20060102T250405Z",
        ] {
            assert!(parse_sdk_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn month_arithmetic_clamps() {
        let jan31 = ms_to_datetime(to_ms(parse_sdk_date("20240131T120000Z").unwrap())).unwrap();
        let feb = add_months(jan31, 1).unwrap();
        assert_eq!((feb.year(), u8::from(feb.month()), feb.day()), (2024, 2, 29));
        let leap = ms_to_datetime(to_ms(parse_sdk_date("20240229T000000Z").unwrap())).unwrap();
        let next = add_months(leap, 12).unwrap();
        assert_eq!((next.year(), u8::from(next.month()), next.day()), (2025, 2, 28));
    }
}
