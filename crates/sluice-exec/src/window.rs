//! Maintenance windows: is a timestamp inside one, when does it close, when does it open next.
//!
//! All window math is in [`window_state`] so the executor's decisions (refuse to start, do not
//! start a wave that will not fit, stop when it closes) depend on one tested function. Absolute
//! windows are one interval; recurring ones are evaluated in their IANA time zone, day by day
//! around `now`, so daylight-saving changes follow the zone's rules.

use jiff::civil::{Date, Time, Weekday as CivilWeekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use sluice_plan::{Weekday, Window};

use crate::error::ExecError;

/// Where `now` falls relative to a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    Open {
        closes_at: Timestamp,
    },
    /// `next_open` is `None` when the window never opens again (an absolute window that ended).
    Closed {
        next_open: Option<Timestamp>,
    },
}

/// Evaluates `window` at `now`.
pub fn window_state(window: &Window, now: Timestamp) -> Result<WindowState, ExecError> {
    match window {
        Window::Absolute { start, end } => Ok(if now < *start {
            WindowState::Closed {
                next_open: Some(*start),
            }
        } else if now < *end {
            WindowState::Open { closes_at: *end }
        } else {
            WindowState::Closed { next_open: None }
        }),
        Window::Recurring {
            days,
            from,
            to,
            timezone,
        } => recurring(days, from, to, timezone, now),
    }
}

fn recurring(
    days: &[Weekday],
    from: &str,
    to: &str,
    timezone: &str,
    now: Timestamp,
) -> Result<WindowState, ExecError> {
    let tz = TimeZone::get(timezone)
        .map_err(|e| ExecError::Window(format!("unknown time zone {timezone}: {e}")))?;
    let from: Time = from
        .parse()
        .map_err(|e| ExecError::Window(format!("bad start time {from:?}: {e}")))?;
    let to: Time = to
        .parse()
        .map_err(|e| ExecError::Window(format!("bad end time {to:?}: {e}")))?;
    let today = now.to_zoned(tz.clone()).date();
    let mut next_open: Option<Timestamp> = None;
    // Yesterday's window may still be open (it crosses midnight); a week and a day ahead covers
    // every weekday's next opening.
    for offset in -1i64..=8 {
        let date = shift(today, offset)?;
        if !days.iter().any(|d| civil(*d) == date.weekday()) {
            continue;
        }
        let end_date = if to > from { date } else { shift(date, 1)? };
        let start = at(date, from, &tz)?;
        let end = at(end_date, to, &tz)?;
        if start <= now && now < end {
            return Ok(WindowState::Open { closes_at: end });
        }
        if start > now && next_open.is_none_or(|n| start < n) {
            next_open = Some(start);
        }
    }
    Ok(WindowState::Closed { next_open })
}

fn shift(date: Date, days: i64) -> Result<Date, ExecError> {
    date.checked_add(Span::new().days(days))
        .map_err(|e| ExecError::Window(e.to_string()))
}

fn at(date: Date, time: Time, tz: &TimeZone) -> Result<Timestamp, ExecError> {
    date.to_datetime(time)
        .to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| ExecError::Window(e.to_string()))
}

fn civil(day: Weekday) -> CivilWeekday {
    match day {
        Weekday::Mon => CivilWeekday::Monday,
        Weekday::Tue => CivilWeekday::Tuesday,
        Weekday::Wed => CivilWeekday::Wednesday,
        Weekday::Thu => CivilWeekday::Thursday,
        Weekday::Fri => CivilWeekday::Friday,
        Weekday::Sat => CivilWeekday::Saturday,
        Weekday::Sun => CivilWeekday::Sunday,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn weekend_nights() -> Window {
        Window::Recurring {
            days: vec![Weekday::Sat, Weekday::Sun],
            from: "22:00".into(),
            to: "02:00".into(),
            timezone: "UTC".into(),
        }
    }

    #[test]
    fn absolute_window_before_during_after() {
        let w = Window::Absolute {
            start: ts("2026-11-28T22:00:00Z"),
            end: ts("2026-11-29T02:00:00Z"),
        };
        assert_eq!(
            window_state(&w, ts("2026-11-28T21:00:00Z")).unwrap(),
            WindowState::Closed {
                next_open: Some(ts("2026-11-28T22:00:00Z"))
            }
        );
        assert_eq!(
            window_state(&w, ts("2026-11-28T23:00:00Z")).unwrap(),
            WindowState::Open {
                closes_at: ts("2026-11-29T02:00:00Z")
            }
        );
        assert_eq!(
            window_state(&w, ts("2026-11-29T02:00:00Z")).unwrap(),
            WindowState::Closed { next_open: None }
        );
    }

    #[test]
    fn recurring_window_crossing_midnight_is_open_the_next_morning() {
        // 2026-11-29 is a Sunday; Saturday's window runs until 02:00 on Sunday.
        assert_eq!(
            window_state(&weekend_nights(), ts("2026-11-29T01:30:00Z")).unwrap(),
            WindowState::Open {
                closes_at: ts("2026-11-29T02:00:00Z")
            }
        );
    }

    #[test]
    fn recurring_window_on_a_weekday_names_saturday_night() {
        // 2026-11-23 is a Monday.
        assert_eq!(
            window_state(&weekend_nights(), ts("2026-11-23T10:00:00Z")).unwrap(),
            WindowState::Closed {
                next_open: Some(ts("2026-11-28T22:00:00Z"))
            }
        );
    }

    #[test]
    fn unknown_time_zone_is_an_error() {
        let w = Window::Recurring {
            days: vec![Weekday::Mon],
            from: "01:00".into(),
            to: "02:00".into(),
            timezone: "Mars/Olympus".into(),
        };
        assert!(window_state(&w, ts("2026-11-23T10:00:00Z")).is_err());
    }
}
