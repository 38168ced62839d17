//! Reading a plan's maintenance `window:`: absolute (`start`, `end`) or recurring (`days`,
//! `from`, `to`, `timezone`).

use crate::artifact::{Weekday, Window};
use crate::node::Node;
use crate::schema::Reader;

const WINDOW_KEYS: &[&str] = &["start", "end", "days", "from", "to", "timezone"];

pub(super) fn read_window(r: &mut Reader, node: &Node) -> Option<Window> {
    let f = r.fields(node, WINDOW_KEYS, "window")?;
    let window = if f.get("start").is_some() || f.get("end").is_some() {
        let mut stamp = |key: &str| {
            let n = f.get(key).or_else(|| {
                r.error(f.loc, format!("window: `{key}` is missing"));
                None
            })?;
            let s = r.as_str(n, &format!("window: {key}"))?;
            match s.parse::<jiff::Timestamp>() {
                Ok(t) => Some(t),
                Err(e) => {
                    r.error_help(
                        n.loc,
                        format!("window: {key}: `{s}` is not a timestamp: {e}"),
                        "write RFC 3339 with an offset, e.g. 2026-11-28T22:00:00Z",
                    );
                    None
                }
            }
        };
        let start = stamp("start");
        let end = stamp("end");
        Window::Absolute {
            start: start?,
            end: end?,
        }
    } else {
        let days = match f.get("days") {
            Some(n) => r
                .as_str_list(n, "window: days")
                .into_iter()
                .filter_map(|(d, loc)| match weekday(&d) {
                    Some(w) => Some(w),
                    None => {
                        r.error_help(
                            loc,
                            format!("window: `{d}` is not a weekday"),
                            "use mon, tue, wed, thu, fri, sat, sun",
                        );
                        None
                    }
                })
                .collect(),
            None => {
                r.error_help(f.loc, "window has neither `start`/`end` nor `days`", "write an absolute window (start, end) or a recurring one (days, from, to, timezone)");
                return None;
            }
        };
        let mut field = |key: &str| match f.get(key) {
            Some(n) => r.as_str(n, &format!("window: {key}")),
            None => {
                r.error(f.loc, format!("window: `{key}` is missing"));
                None
            }
        };
        let (from, to, timezone) = (field("from"), field("to"), field("timezone"));
        Window::Recurring {
            days,
            from: from?,
            to: to?,
            timezone: timezone?,
        }
    };
    if let Err(message) = window.validate() {
        r.error(f.loc, format!("window: {message}"));
        return None;
    }
    Some(window)
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}
