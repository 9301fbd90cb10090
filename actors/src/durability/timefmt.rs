//! Times for people: the log stamps events in microseconds since the Unix
//! epoch (UTC); the tools print and accept RFC 3339 UTC times
//! (`2026-11-20T10:15:00Z`, `2026-11-20T10:15:00.250Z`) or plain microseconds.

const US_PER_SEC: u64 = 1_000_000;
const SECS_PER_DAY: u64 = 86_400;

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_us(ts: u64) -> String {
    let secs = ts / US_PER_SEC;
    let micros = ts % US_PER_SEC;
    let (days, rem) = (secs / SECS_PER_DAY, secs % SECS_PER_DAY);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Microseconds since the Unix epoch from either a whole number of
/// microseconds or an RFC 3339 time in UTC (`Z` or `+00:00`), fractions of a
/// second up to microseconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    }
    let bad = || {
        format!("{s:?} is not a time: use RFC 3339 in UTC (2026-11-20T10:15:00Z) or microseconds since 1970")
    };
    let rest = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .or_else(|| s.strip_suffix("+00:00"))
        .ok_or_else(bad)?;
    let (date, time) = rest.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let num = |part: &str, len: usize| -> Result<u64, String> {
        if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<u64>().map_err(|_| bad())
    };
    let mut d = date.split('-');
    let (y, mo, da) = (
        num(d.next().ok_or_else(bad)?, 4)?,
        num(d.next().ok_or_else(bad)?, 2)?,
        num(d.next().ok_or_else(bad)?, 2)?,
    );
    if d.next().is_some()
        || !(1..=12).contains(&mo)
        || !(1..=days_in_month(y, mo)).contains(&da)
        || y < 1970
    {
        return Err(bad());
    }
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let (h, mi, se) = (
        num(t.next().ok_or_else(bad)?, 2)?,
        num(t.next().ok_or_else(bad)?, 2)?,
        num(t.next().ok_or_else(bad)?, 2)?,
    );
    if t.next().is_some() || h > 23 || mi > 59 || se > 59 {
        return Err(bad());
    }
    let micros = match frac {
        None => 0,
        Some(f) if (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u64>().map_err(|_| bad())? * 10u64.pow(6 - f.len() as u32)
        }
        Some(_) => return Err(bad()),
    };
    let days = days_from_civil(y as i64, mo as u32, da as u32);
    let secs = days as u64 * SECS_PER_DAY + h * 3600 + mi * 60 + se;
    Ok(secs * US_PER_SEC + micros)
}

// `is_multiple_of` is newer than the workspace's minimum Rust version.
#[allow(clippy::manual_is_multiple_of)]
fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_us(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29T12:34:56.789Z
        assert_eq!(
            parse_time("2000-02-29T12:34:56.789Z").unwrap(),
            951_827_696_789_000
        );
        assert_eq!(
            format_us(951_827_696_789_000),
            "2000-02-29T12:34:56.789000Z"
        );
        assert_eq!(
            parse_time("2026-11-20T10:15:00Z").unwrap(),
            1_795_169_700_000_000
        );
        assert_eq!(
            parse_time("2026-11-20T10:15:00+00:00").unwrap(),
            1_795_169_700_000_000
        );
        assert_eq!(
            parse_time("1795169700000000").unwrap(),
            1_795_169_700_000_000
        );
    }

    #[test]
    fn round_trips_over_many_days() {
        let mut ts = 0u64;
        while ts < 4_000_000_000 * US_PER_SEC {
            assert_eq!(parse_time(&format_us(ts)).unwrap(), ts, "{}", format_us(ts));
            ts += 86_399_999_937;
        }
    }

    #[test]
    fn refuses_what_is_not_a_utc_time() {
        for s in [
            "",
            "yesterday",
            "2026-11-20",
            "2026-11-20T10:15:00",
            "2026-11-20T10:15:00+01:00",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T10:15:00.1234567Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_time(s).is_err(), "{s:?} accepted");
        }
    }
}
