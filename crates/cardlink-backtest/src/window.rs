//! The `--from`/`--until` window on `occurred_at`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A bound that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {input:?}: expected RFC 3339 with an offset (2026-05-01T00:00:00-04:00) or a date (2026-05-01, taken as UTC midnight)"
)]
pub struct WindowError {
    /// What was given.
    pub input: String,
}

/// Events with `from ≤ occurred_at < until` take part; either bound may be
/// open. Compared as instants, whatever offset each event carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// First instant included.
    pub from: Option<DateTime<Utc>>,
    /// First instant excluded.
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// Reads a bound: RFC 3339 with an offset, or a bare date taken as
    /// midnight UTC (the report's days are UTC days too).
    pub fn parse_bound(s: &str) -> Result<DateTime<Utc>, WindowError> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(t.with_timezone(&Utc));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| WindowError { input: s.to_string() })
    }

    /// True when an event at `t` takes part.
    #[inline]
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f <= t) && self.until.is_none_or(|u| t < u)
    }

    /// A bound as the report writes it.
    pub fn format(t: Option<DateTime<Utc>>) -> Option<String> {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(from: Option<&str>, until: Option<&str>, at: &str, expected: bool) {
        let w = Window {
            from: from.map(|s| Window::parse_bound(s).unwrap()),
            until: until.map(|s| Window::parse_bound(s).unwrap()),
        };
        let t = DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc);
        assert_eq!(w.contains(t), expected, "{from:?}..{until:?} at {at}");
    }

    #[test]
    fn window_is_half_open_and_compares_instants() {
        check(None, None, "1999-01-01T00:00:00Z", true);
        check(Some("2026-05-01"), None, "2026-05-01T00:00:00Z", true);
        check(Some("2026-05-01"), None, "2026-04-30T23:59:59Z", false);
        // 20:00 in New York on April 30 is midnight UTC on May 1.
        check(Some("2026-05-01"), None, "2026-04-30T20:00:00-04:00", true);
        check(Some("2026-05-01"), None, "2026-04-30T19:59:59-04:00", false);
        check(None, Some("2026-05-08T00:00:00+09:00"), "2026-05-07T14:59:59Z", true);
        check(None, Some("2026-05-08T00:00:00+09:00"), "2026-05-07T15:00:00Z", false);
        check(Some("2026-05-01"), Some("2026-05-02"), "2026-05-01T12:00:00+02:00", true);
    }

    #[test]
    fn bad_bounds_are_refused() {
        for bad in ["", "2026-13-01", "2026-05-01T00:00:00", "yesterday", "2026-05-01 00:00"] {
            assert!(Window::parse_bound(bad).is_err(), "{bad}");
        }
        assert_eq!(Window::format(Some(Window::parse_bound("2026-05-01").unwrap())).unwrap(), "2026-05-01T00:00:00Z");
    }
}
