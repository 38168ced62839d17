//! Maintenance windows: is a moment inside the window, when does it close, when does it open.
//!
//! Pure functions of a timestamp, for the planner (validation) and the executor (which starts a
//! wave only inside the window and stops starting hosts when it closes).
//!
//! A recurring window opens on each listed weekday at `from`, local time in `timezone`, and
//! closes at `to` the same day; when `to` is not after `from` it closes at `to` the next day
//! (`days: [sat], from: "22:00", to: "02:00"` is Saturday 22:00 to Sunday 02:00). Local times
//! that do not exist or happen twice on a DST change resolve as jiff's "compatible" rule does
//! (the later instant for a gap, the earlier one for a fold).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::artifact::{Weekday, Window};

/// Why a window cannot be used. The messages name the value at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("end {end} is not after start {start}")]
    EndNotAfterStart { start: Timestamp, end: Timestamp },
    #[error("`days` is empty: the window would never open")]
    NoDays,
    #[error("`{text}` is not a time of day; write HH:MM, e.g. \"22:00\"")]
    NotATime { text: String },
    #[error("`{zone}` is not a known IANA time zone ({reason})")]
    UnknownZone { zone: String, reason: String },
}

/// One opening of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    /// Checks what the YAML types cannot: times, zone, order. The message names the problem.
    pub fn validate(&self) -> Result<(), WindowError> {
        match self {
            Window::Absolute { start, end } => {
                if end <= start {
                    return Err(WindowError::EndNotAfterStart {
                        start: *start,
                        end: *end,
                    });
                }
            }
            Window::Recurring {
                days,
                from,
                to,
                timezone,
            } => {
                if days.is_empty() {
                    return Err(WindowError::NoDays);
                }
                parse_time(from)?;
                parse_time(to)?;
                TimeZone::get(timezone).map_err(|e| WindowError::UnknownZone {
                    zone: timezone.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    /// True when `now` is inside the window.
    pub fn contains(&self, now: Timestamp) -> bool {
        self.current(now).is_some()
    }

    /// The opening `now` is in, if any (its end is when the window closes).
    pub fn current(&self, now: Timestamp) -> Option<Interval> {
        self.intervals_around(now)
            .into_iter()
            .find(|i| i.start <= now && now < i.end)
    }

    /// When the window next opens strictly after `now`; `None` for a past absolute window.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        self.intervals_around(now)
            .into_iter()
            .map(|i| i.start)
            .filter(|s| *s > now)
            .min()
    }

    /// The opening `now` is in, or else the next one; `None` once an absolute window ended.
    pub fn current_or_next(&self, now: Timestamp) -> Option<Interval> {
        self.current(now).or_else(|| {
            self.intervals_around(now)
                .into_iter()
                .filter(|i| i.start > now)
                .min_by_key(|i| i.start)
        })
    }

    /// How long one opening lasts, by the clock: a recurring window's `from` to `to` (crossing
    /// midnight when `to` is not after `from`), ignoring the hour a DST change adds or removes.
    pub fn length_ms(&self) -> Option<u64> {
        match self {
            Window::Absolute { start, end } => {
                let ms = end.as_millisecond().checked_sub(start.as_millisecond())?;
                u64::try_from(ms).ok()
            }
            Window::Recurring { from, to, .. } => {
                let minutes = |t: Time| i64::from(t.hour()) * 60 + i64::from(t.minute());
                let (from, to) = (parse_time(from).ok()?, parse_time(to).ok()?);
                let mut length = minutes(to) - minutes(from);
                if length <= 0 {
                    length += 24 * 60;
                }
                u64::try_from(length * 60_000).ok()
            }
        }
    }

    /// Openings from the day before `now` to eight days after: enough to hold the current and
    /// the next opening of any weekly window.
    fn intervals_around(&self, now: Timestamp) -> Vec<Interval> {
        match self {
            Window::Absolute { start, end } => vec![Interval {
                start: *start,
                end: *end,
            }],
            Window::Recurring {
                days,
                from,
                to,
                timezone,
            } => {
                let (Ok(from), Ok(to), Ok(tz)) =
                    (parse_time(from), parse_time(to), TimeZone::get(timezone))
                else {
                    // validate() rejected this at plan time; an edited artifact never opens.
                    return Vec::new();
                };
                let today = now.to_zoned(tz.clone()).date();
                (-1..=8)
                    .filter_map(|offset: i64| today.checked_add(offset.days()).ok())
                    .filter(|d| days.contains(&weekday_of(*d)))
                    .filter_map(|d| interval_on(d, from, to, &tz))
                    .collect()
            }
        }
    }
}

fn interval_on(day: Date, from: Time, to: Time, tz: &TimeZone) -> Option<Interval> {
    let start = day.to_datetime(from).to_zoned(tz.clone()).ok()?.timestamp();
    let end_day = if to > from {
        day
    } else {
        day.checked_add(1.day()).ok()?
    };
    let end = end_day
        .to_datetime(to)
        .to_zoned(tz.clone())
        .ok()?
        .timestamp();
    Some(Interval { start, end })
}

fn weekday_of(d: Date) -> Weekday {
    match d.weekday() {
        jiff::civil::Weekday::Monday => Weekday::Mon,
        jiff::civil::Weekday::Tuesday => Weekday::Tue,
        jiff::civil::Weekday::Wednesday => Weekday::Wed,
        jiff::civil::Weekday::Thursday => Weekday::Thu,
        jiff::civil::Weekday::Friday => Weekday::Fri,
        jiff::civil::Weekday::Saturday => Weekday::Sat,
        jiff::civil::Weekday::Sunday => Weekday::Sun,
    }
}

/// `HH:MM` (24-hour).
fn parse_time(s: &str) -> Result<Time, WindowError> {
    let bad = || WindowError::NotATime {
        text: s.to_string(),
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn weekend_night() -> Window {
        Window::Recurring {
            days: vec![Weekday::Sat],
            from: "22:00".into(),
            to: "02:00".into(),
            timezone: "Europe/London".into(),
        }
    }

    #[test]
    fn recurring_window_crosses_midnight() {
        let w = weekend_night();
        // 2026-11-28 is a Saturday; London is UTC+0 in November.
        assert!(!w.contains(ts("2026-11-28T21:59:00Z")));
        assert!(w.contains(ts("2026-11-28T22:00:00Z")));
        assert!(w.contains(ts("2026-11-29T01:59:59Z")));
        assert!(!w.contains(ts("2026-11-29T02:00:00Z")));
        assert_eq!(
            w.current(ts("2026-11-29T01:00:00Z")).map(|i| i.end),
            Some(ts("2026-11-29T02:00:00Z"))
        );
        assert_eq!(
            w.next_open(ts("2026-11-29T03:00:00Z")),
            Some(ts("2026-12-05T22:00:00Z"))
        );
    }

    #[test]
    fn recurring_window_follows_the_zone_offset() {
        // In July London is UTC+1: 22:00 local is 21:00Z. 2026-07-04 is a Saturday.
        let w = weekend_night();
        assert!(w.contains(ts("2026-07-04T21:00:00Z")));
        assert!(!w.contains(ts("2026-07-04T20:59:00Z")));
    }

    #[test]
    fn absolute_window() {
        let w = Window::Absolute {
            start: ts("2026-11-28T22:00:00Z"),
            end: ts("2026-11-29T02:00:00Z"),
        };
        assert!(w.contains(ts("2026-11-28T23:00:00Z")));
        assert!(!w.contains(ts("2026-11-29T02:00:00Z")));
        assert_eq!(
            w.next_open(ts("2026-11-28T00:00:00Z")),
            Some(ts("2026-11-28T22:00:00Z"))
        );
        assert_eq!(w.next_open(ts("2026-11-30T00:00:00Z")), None);
    }

    #[test]
    fn length_of_a_window() {
        assert_eq!(weekend_night().length_ms(), Some(4 * 3_600_000));
        let w = Window::Absolute {
            start: ts("2026-11-28T22:00:00Z"),
            end: ts("2026-11-29T02:30:00Z"),
        };
        assert_eq!(w.length_ms(), Some(4 * 3_600_000 + 1_800_000));
        assert_eq!(
            weekend_night()
                .current_or_next(ts("2026-11-29T03:00:00Z"))
                .map(|i| i.start),
            Some(ts("2026-12-05T22:00:00Z"))
        );
        assert_eq!(w.current_or_next(ts("2026-11-30T00:00:00Z")), None);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut w = weekend_night();
        if let Window::Recurring { timezone, .. } = &mut w {
            *timezone = "Mars/Olympus".into();
        }
        assert!(
            w.validate()
                .unwrap_err()
                .to_string()
                .contains("Mars/Olympus")
        );
        let w = Window::Recurring {
            days: vec![Weekday::Sat],
            from: "25:00".into(),
            to: "02:00".into(),
            timezone: "UTC".into(),
        };
        assert_eq!(
            w.validate(),
            Err(WindowError::NotATime {
                text: "25:00".into()
            })
        );
    }
}
