//! The maintenance window for people: as declared, whether it is open, and its current or next
//! opening in UTC and in the local time zone of the machine rendering the review.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use sluice_plan::{Weekday, Window};

use crate::model::{Opening, WindowState, WindowView};

/// The clock and the zone a review is rendered with: tests and `--as-of` fix both.
#[derive(Clone, Debug)]
pub struct Clock {
    pub now: Timestamp,
    pub local: TimeZone,
}

impl Clock {
    /// Now, in the system's time zone (`TZ`, else /etc/localtime, else UTC).
    pub fn system() -> Self {
        Clock {
            now: Timestamp::now(),
            local: TimeZone::system(),
        }
    }

    /// The local zone's name: its IANA name when known, else its abbreviation now.
    pub fn zone_name(&self) -> String {
        self.local.iana_name().map_or_else(
            || {
                self.local
                    .to_offset_info(self.now)
                    .abbreviation()
                    .to_string()
            },
            str::to_string,
        )
    }
}

/// `2026-11-28 22:00 UTC`.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-11-28 23:00 CET` in the clock's local zone.
pub fn local(t: Timestamp, clock: &Clock) -> String {
    t.to_zoned(clock.local.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

pub fn window_view(window: &Window, clock: &Clock) -> WindowView {
    let now = clock.now;
    let opening = window.current_or_next(now);
    let state = match opening {
        Some(i) if i.start <= now => WindowState::Open,
        Some(_) => WindowState::Upcoming,
        None => WindowState::Ended,
    };
    WindowView {
        declared: declared(window),
        state,
        opening: opening.map(|i| Opening {
            start: i.start,
            end: i.end,
            start_local: local(i.start, clock),
            end_local: local(i.end, clock),
            local_zone: clock.zone_name(),
        }),
        length_ms: window.length_ms(),
    }
}

/// The window as the plan writes it.
pub fn declared(window: &Window) -> String {
    match window {
        Window::Absolute { start, end } => format!("{start} to {end}"),
        Window::Recurring {
            days,
            from,
            to,
            timezone,
        } => {
            let days: Vec<&str> = days.iter().map(|d| day_name(*d)).collect();
            format!("every {} {from}–{to} {timezone}", days.join(", "))
        }
    }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// A state for people: `open now`, `opens later`, `ended`.
pub fn state_text(state: WindowState) -> &'static str {
    match state {
        WindowState::Open => "open now",
        WindowState::Upcoming => "not open yet",
        WindowState::Ended => "ended",
    }
}
