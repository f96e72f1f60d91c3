//! Timestamps as Litestream writes and reads them (RFC 3339, UTC).

use std::time::{Duration, SystemTime};

/// `time` in RFC 3339, UTC, to the nanosecond: the form Litestream's
/// `-timestamp` takes, the `--json` reports print and [`parse_timestamp`]
/// reads. A time before 1970 is given as the epoch.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tenanted::replication::{format_timestamp, parse_timestamp};
///
/// let t = SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_250);
/// assert_eq!(format_timestamp(t), "2000-02-29T00:00:00.250000000Z");
/// assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
/// ```
pub fn format_timestamp(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_nanos()
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]` followed by `Z` or an offset
/// `+HH:MM`/`-HH:MM` (RFC 3339), as [`RebuildOptions::at`](super::RebuildOptions::at)
/// takes it; `None` for anything else or a time before 1970.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let t = tenanted::replication::parse_timestamp("1970-01-01T01:00:00.5+01:00");
/// assert_eq!(t, Some(SystemTime::UNIX_EPOCH + Duration::from_millis(500)));
/// assert_eq!(tenanted::replication::parse_timestamp("yesterday"), None);
/// ```
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let (local, offset) = split_offset(text)?;
    let (date, time) = local.split_once(['T', 't'])?;
    let number = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut date_parts = date.splitn(3, '-');
    let mut field = || date_parts.next().and_then(number);
    let (year, month, day) = (field()?, field()?, field()?);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.splitn(3, ':');
    let mut field = || clock_parts.next().and_then(number);
    let (hour, minute, second) = (field()?, field()?, field()?);
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61
        && fraction.len() <= 9
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let nanos = format!("{fraction:0<9}").parse::<u32>().ok()?;
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = local.checked_add_signed(-offset)?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(utc, nanos))
}

/// The local time and its offset from UTC in seconds.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(local) = text.strip_suffix(['Z', 'z']) {
        return Some((local, 0));
    }
    let (local, zone) = text.split_at(text.len().checked_sub(6)?);
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = zone.get(1..)?.split_once(':')?;
    let hours: i64 = hours.parse().ok()?;
    let minutes: i64 = minutes.parse().ok()?;
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_formats() {
        let at = |s: u64, n: u32| SystemTime::UNIX_EPOCH + Duration::new(s, n);
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(at(0, 0)));
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00Z"),
            Some(at(951_782_400, 0))
        );
        let t = at(1_796_448_123, 250_000_000);
        assert_eq!(parse_timestamp("2026-12-05T05:22:03.25Z"), Some(t));
        assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        assert_eq!(parse_timestamp("2026-12-05T00:22:03.25-05:00"), Some(t));
        for bad in [
            "2026-12-05",
            "2026-12-05T05:22:03",
            "2026-13-01T00:00:00Z",
            "x",
            "+1-1-1T1:1:1Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    /// The times Litestream's control socket writes (Go's RFC 3339: nine
    /// fraction digits or fewer, `Z` or an offset) read as the rebuild's
    /// `--at` does: one parser for both.
    #[test]
    fn go_times_parse() {
        let epoch = SystemTime::UNIX_EPOCH;
        let at = |s| parse_timestamp(s).unwrap().duration_since(epoch).unwrap();
        assert_eq!(
            at("2026-12-05T05:10:11.123456789Z"),
            Duration::new(1_796_447_411, 123_456_789)
        );
        assert_eq!(
            at("2026-12-05T06:10:11.5+01:00"),
            at("2026-12-05T05:10:11.5Z")
        );
        assert_eq!(
            at("2000-03-01T00:00:00-00:30"),
            Duration::from_secs(951_870_600)
        );
        // Go's zero time, which Litestream writes for a database never synced.
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn timestamps_in_format_timestamp() {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(format_timestamp(at(0)), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_timestamp(at(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
        let t = at(1_796_448_123) + Duration::from_millis(250);
        assert_eq!(format_timestamp(t), "2026-12-05T05:22:03.250000000Z");
    }
}
