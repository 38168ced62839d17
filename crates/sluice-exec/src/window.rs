//! Maintenance windows as the executor sees them: open until when, or closed until when.
//!
//! The calendar math (absolute intervals, weekly windows in an IANA time zone, crossing midnight,
//! DST) is the planner's ([`sluice_plan::window`]); the executor's decisions (refuse to start, do
//! not start a wave that will not fit, stop when it closes) all go through [`window_state`].

use jiff::Timestamp;
use sluice_plan::Window;

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

/// Evaluates `window` at `now`. A window the planner would reject (bad time, unknown zone) is an
/// error rather than "closed", so the operator sees why.
pub fn window_state(window: &Window, now: Timestamp) -> Result<WindowState, ExecError> {
    window
        .validate()
        .map_err(|e| ExecError::Window(e.to_string()))?;
    Ok(match window.current(now) {
        Some(open) => WindowState::Open {
            closes_at: open.end,
        },
        None => WindowState::Closed {
            next_open: window.next_open(now),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plan::Weekday;

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
