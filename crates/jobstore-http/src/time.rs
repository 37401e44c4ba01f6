//! RFC 3339 times, rendered and parsed once for every API: the store keeps milliseconds since
//! the Unix epoch (UTC). Also the running time of a job or a step as the APIs show it
//! ([`elapsed`]).

/// `2021-06-10T13:25:40.000Z` for milliseconds since the Unix epoch (UTC).
pub(crate) fn rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Milliseconds from `start` to `end`, or to `now` while not ended; 0 before the start: how
/// long a job or a step ran (so far).
pub(crate) fn elapsed(start: Option<i64>, end: Option<i64>, now: i64) -> i64 {
    start.map_or(0, |start| end.unwrap_or(now).saturating_sub(start).max(0))
}

/// How much of RFC 3339 a parse insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A full `date-time`: `T`, seconds and a zone (`Z` or `±hh:mm`); a leap second (`:60`)
    /// is read as `:59`.
    Strict,
    /// Also a bare date (`2024-05-01`), minutes without seconds, a space for `T`, and no zone
    /// (read as UTC).
    Lenient,
}

/// Milliseconds since the Unix epoch of an RFC 3339 time; `None` when `text` is not one in
/// `form` (fields out of range included). Fractions past milliseconds are cut.
pub(crate) fn parse(text: &str, form: Form) -> Option<i64> {
    let strict = form == Form::Strict;
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((_, _)) if strict && text.as_bytes().get(10) == Some(&b' ') => return None,
        Some((date, time)) => (date, Some(time)),
        None if strict => return None,
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return None;
    };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day) = (digits(year)?, digits(month)?, digits(day)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let Some(time) = time else {
        return days.checked_mul(86_400_000);
    };
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone.get(1..)?.split_once(':')?;
        if hours.len() != 2 || minutes.len() != 2 {
            return None;
        }
        let (hours, minutes) = (digits(hours)?, digits(minutes)?);
        if hours > 23 || minutes > 59 {
            return None;
        }
        (clock, sign * (hours * 60 + minutes))
    } else if strict {
        return None;
    } else {
        (time, 0)
    };
    let (clock, fraction) = match clock.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (clock, None),
    };
    let mut parts = clock.split(':');
    let (Some(hour), Some(minute), second, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if hour.len() != 2
        || minute.len() != 2
        || second.is_some_and(|s| s.len() != 2)
        || (strict && second.is_none())
        || (fraction.is_some() && second.is_none())
    {
        return None;
    }
    let (hour, minute) = (digits(hour)?, digits(minute)?);
    let second = second.map_or(Some(0), digits)?;
    let leap = strict && second == 60;
    if hour > 23 || minute > 59 || (second > 59 && !leap) {
        return None;
    }
    let millis = match fraction {
        None => 0,
        Some(fraction) if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) => {
            digits(&format!("{:0<3}", fraction.get(..3.min(fraction.len()))?))?
        }
        Some(_) => return None,
    };
    let seconds = hour * 3600 + minute * 60 + second.min(59);
    days.checked_mul(86_400_000)?
        .checked_add(seconds * 1000 + millis)?
        .checked_sub(offset_minutes * 60_000)
}

fn digits(part: &str) -> Option<i64> {
    if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2021-06-10T13:25:40.000+0000` for milliseconds since the Unix epoch (UTC): the zone as a
/// numeric offset without a colon, the form Salesforce's Java services render.
pub(crate) fn millis_offset(ms: i64) -> String {
    let mut text = rfc3339_millis(ms);
    text.pop();
    text.push_str("+0000");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_runs_to_the_end_or_to_now() {
        assert_eq!(elapsed(None, None, 50), 0);
        assert_eq!(elapsed(Some(10), None, 50), 40);
        assert_eq!(elapsed(Some(10), Some(30), 50), 20);
        assert_eq!(elapsed(Some(60), None, 50), 0);
    }

    #[test]
    fn known_instants_render_exactly() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_623_331_540_000),
            "2021-06-10T13:25:40.000Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn rendered_times_parse_back_in_both_forms() {
        for ms in [
            0,
            1_623_331_540_000,
            951_782_400_123,
            4_102_444_799_999,
            -86_400_001,
        ] {
            let text = rfc3339_millis(ms);
            assert_eq!(parse(&text, Form::Strict), Some(ms), "{text}");
            assert_eq!(parse(&text, Form::Lenient), Some(ms), "{text}");
        }
    }

    #[test]
    fn zones_fractions_and_leap_seconds() {
        let base = Some(1_623_331_540_000);
        assert_eq!(parse("2021-06-10T15:25:40+02:00", Form::Strict), base);
        assert_eq!(parse("2021-06-10t13:25:40z", Form::Strict), base);
        assert_eq!(
            parse("2021-06-10T13:25:40.123456789Z", Form::Strict),
            Some(1_623_331_540_123)
        );
        assert_eq!(
            parse("2021-06-10T13:25:40.5Z", Form::Strict),
            Some(1_623_331_540_500)
        );
        assert_eq!(
            parse("2016-12-31T23:59:60Z", Form::Strict),
            parse("2016-12-31T23:59:59Z", Form::Strict)
        );
        assert_eq!(parse("2021-06-10", Form::Lenient), Some(1_623_283_200_000));
        assert_eq!(
            parse("2021-06-10 13:25", Form::Lenient),
            Some(1_623_331_500_000)
        );
    }

    #[test]
    fn malformed_times_are_refused() {
        for text in [
            "2021-06-10",
            "2021-06-10T13:25Z",
            "2021-06-10T13:25:40",
            "2021-06-10 13:25:40Z",
            "2021-02-29T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-06-10T24:00:00Z",
            "2021-06-10T13:25:40.Z",
            "2021-06-10T13:25:40+2:00",
            "21-06-10T13:25:40Z",
            "2021-06-10T13:25:40ZZ",
            "",
        ] {
            assert_eq!(parse(text, Form::Strict), None, "{text}");
        }
        for text in ["2021-06-10T13:25:60", "2021-6-10", "2021-06-10T13", "x"] {
            assert_eq!(parse(text, Form::Lenient), None, "{text}");
        }
    }

    #[test]
    fn offset_form_renders_utc_as_plus_zero() {
        assert_eq!(millis_offset(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            millis_offset(1_593_650_068_353),
            "2020-07-02T00:34:28.353+0000"
        );
        assert_eq!(millis_offset(-1), "1969-12-31T23:59:59.999+0000");
    }
}
