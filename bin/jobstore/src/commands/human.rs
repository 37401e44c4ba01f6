//! Times as an operator reads them in a terminal: how long ago ("3 min ago", "in 20 s") and
//! the exact time in UTC to the millisecond (the database's own zone; `--json` keeps the
//! integer milliseconds).

/// How long ago `at` was at `now` (both ms since the Unix epoch), rounded to its largest unit:
/// `just now` under 5 s, then seconds, minutes, hours, days; `in …` for a time to come.
pub(crate) fn ago(now: i64, at: i64) -> String {
    let diff = now.saturating_sub(at);
    let seconds = (diff.unsigned_abs() + 500) / 1000;
    if seconds < 5 {
        return "just now".into();
    }
    let span = match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", (seconds + 30) / 60),
        3600..86_400 => format!("{} h", (seconds + 1800) / 3600),
        _ => format!("{} d", (seconds + 43_200) / 86_400),
    };
    if diff >= 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// `at` (ms since the Unix epoch) as `2026-12-07 00:26:28.506 UTC`; the number itself when
/// it is out of the calendar's range.
pub(crate) fn utc(at: i64) -> String {
    let nanos = i128::from(at) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => at.to_string(),
    }
}

/// `at` for a person: the exact UTC time and how long ago it was.
pub(crate) fn when(now: i64, at: i64) -> String {
    format!("{} ({})", utc(at), ago(now, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_round_to_their_largest_unit() {
        let now = 1_000_000_000_000;
        for (at, text) in [
            (now, "just now"),
            (now - 4_000, "just now"),
            (now - 42_000, "42 s ago"),
            (now - 3 * 60_000 - 10_000, "3 min ago"),
            (now - 5 * 3_600_000, "5 h ago"),
            (now - 2 * 86_400_000, "2 d ago"),
            (now + 20_000, "in 20 s"),
            (i64::MIN, "106751991167 d ago"),
        ] {
            assert_eq!(ago(now, at), text, "{at}");
        }
    }

    #[test]
    fn exact_times_are_utc_to_the_millisecond() {
        assert_eq!(utc(1_767_225_600_506), "2026-01-01 00:00:00.506 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(i64::MAX), i64::MAX.to_string());
    }
}
