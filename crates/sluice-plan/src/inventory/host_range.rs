//! Ansible host patterns in inventories: `web[01:20].example.com`, `db-[a:f]`, steps
//! (`[1:10:2]`), several ranges in one name, and a `:port` suffix (`[::1]:2222` for IPv6).
//!
//! This follows ansible-core's `parse_address` and `expand_hostname_range`: a numeric range
//! whose start has a leading zero is zero-padded to the start's width (start and end must then
//! be as wide), a letter range runs through `a…z` then `A…Z`, and a range whose end is before its
//! start gives no host. A name that is not a valid host name or address keeps its `:…` as part of
//! the name, as Ansible does.

/// Most names one pattern may expand to: beyond that it is surely a typo (`[0:999999999]`).
pub const MAX_EXPANSION: usize = 1_000_000;

/// The names a pattern expands to and the port it gives them.
#[derive(Debug, PartialEq, Eq)]
pub struct Expanded {
    pub names: Vec<String>,
    pub port: Option<u64>,
}

/// Why a pattern cannot be expanded (Ansible's wording where it has one).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("host range must be begin:end or begin:end:step, found `[{0}]`")]
    Shape(String),
    #[error("host range must specify an end value, found `[{0}]`")]
    NoEnd(String),
    #[error("host range must specify equal-length begin and end formats, found `[{0}]`")]
    Widths(String),
    #[error("host range must have begin <= end, found `[{0}]`")]
    Backwards(String),
    #[error("host range bounds must be numbers or single letters, found `[{0}]`")]
    Bounds(String),
    #[error("host range step must be a whole number above 0, found `[{0}]`")]
    Step(String),
    #[error("`{0}` has a `[` without its `]`")]
    Unclosed(String),
    #[error("the pattern expands to more than {MAX_EXPANSION} hosts")]
    TooMany,
}

/// Splits off a `:port` and expands the ranges of `pattern`.
pub fn expand(pattern: &str) -> Result<Expanded, RangeError> {
    let (host, port) = match split_port(pattern) {
        Some((host, port)) if is_host_identifier(host) => (host, Some(port)),
        _ => (pattern, None),
    };
    let mut names = Vec::new();
    if host.contains('[') {
        expand_into(host, &mut names)?;
    } else {
        names.push(host.to_string());
    }
    Ok(Expanded { names, port })
}

/// True when `text` is one host name or address, with ranges and an optional `:port` (Ansible's
/// `parse_address`); a host pattern list is split on colons only when it is not.
pub fn is_address(text: &str) -> bool {
    match split_port(text) {
        Some((host, _)) => is_host_identifier(host),
        None => is_host_identifier(text),
    }
}

/// `[host]:port` or `host:port` (ranges may hold colons), as Ansible's two port patterns.
fn split_port(address: &str) -> Option<(&str, u64)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = address.strip_prefix('[')
        && let Some((inner, port)) = rest.rsplit_once("]:")
        && digits(port)
    {
        return Some((inner, port.parse().ok()?));
    }
    let (host, port) = address.rsplit_once(':')?;
    // Everything before the port: whole bracketed expressions and no other colon.
    if !digits(port) || without_ranges(host, "").contains([':', '[', ']']) {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// `host` with every complete bracketed expression replaced by `with`.
fn without_ranges(host: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = host;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(with);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A host name (dot-separated labels of letters, digits, `_` and `-`, not ending in `_` or `-`,
/// ranges standing for characters), an IPv4 address or an IPv6 address.
fn is_host_identifier(host: &str) -> bool {
    let plain = without_ranges(host, "0");
    if plain.contains(':') {
        return plain
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    }
    !plain.is_empty()
        && plain.split('.').all(|label| {
            label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                && !label.starts_with('-')
                && !label.is_empty()
                && !label.ends_with(['-', '_'])
        })
}

fn expand_into(line: &str, out: &mut Vec<String>) -> Result<(), RangeError> {
    let Some(open) = line.find('[') else {
        out.push(line.to_string());
        return Ok(());
    };
    let Some(close_rel) = line[open..].find(']') else {
        return Err(RangeError::Unclosed(line.to_string()));
    };
    let close = open + close_rel;
    let (head, range, tail) = (&line[..open], &line[open + 1..close], &line[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(RangeError::Shape(range.to_string()));
    }
    let begin = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(RangeError::NoEnd(range.to_string()));
    }
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => return Err(RangeError::Step(range.to_string())),
        },
    };
    let width = if begin.starts_with('0') && begin.len() > 1 {
        if begin.len() != end.len() {
            return Err(RangeError::Widths(range.to_string()));
        }
        begin.len()
    } else {
        0
    };
    const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let letter = |s: &str| (s.len() == 1).then(|| LETTERS.find(s)).flatten();
    let values: Vec<String> = match (letter(begin), letter(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err(RangeError::Backwards(range.to_string()));
            }
            LETTERS[b..=e]
                .chars()
                .step_by(step)
                .map(String::from)
                .collect()
        }
        _ => {
            let (Ok(b), Ok(e)) = (begin.parse::<u64>(), end.parse::<u64>()) else {
                return Err(RangeError::Bounds(range.to_string()));
            };
            let count = if e < b { 0 } else { (e - b) / step as u64 + 1 };
            if count as usize > MAX_EXPANSION || out.len() + count as usize > MAX_EXPANSION {
                return Err(RangeError::TooMany);
            }
            (0..count)
                .map(|i| format!("{:0width$}", b + i * step as u64))
                .collect()
        }
    };
    for v in values {
        let name = format!("{head}{v}{tail}");
        if name.contains('[') {
            expand_into(&name, out)?;
        } else {
            out.push(name);
        }
        if out.len() > MAX_EXPANSION {
            return Err(RangeError::TooMany);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &str) -> Vec<String> {
        expand(p).unwrap_or_else(|e| panic!("{p}: {e}")).names
    }

    #[test]
    fn numeric_letter_and_stepped_ranges() {
        assert_eq!(
            names("web[01:03].example.com"),
            [
                "web01.example.com",
                "web02.example.com",
                "web03.example.com"
            ]
        );
        assert_eq!(names("db-[a:c]"), ["db-a", "db-b", "db-c"]);
        assert_eq!(names("n[1:10:4]"), ["n1", "n5", "n9"]);
        assert_eq!(names("x[y:B]").len(), 4);
        assert_eq!(names("r[1:2]c[a:b]"), ["r1ca", "r1cb", "r2ca", "r2cb"]);
        assert_eq!(names("n[:2]"), ["n0", "n1", "n2"]);
        assert!(names("n[3:1]").is_empty());
    }

    #[test]
    fn ports_split_off_when_the_host_is_valid() {
        assert_eq!(
            expand("web[1:2]:2222").unwrap(),
            Expanded {
                names: vec!["web1".into(), "web2".into()],
                port: Some(2222)
            }
        );
        assert_eq!(expand("[::1]:22").unwrap().port, Some(22));
        assert_eq!(
            expand("10.0.0.1:22").unwrap(),
            Expanded {
                names: vec!["10.0.0.1".into()],
                port: Some(22)
            }
        );
        assert_eq!(
            expand("fe80::1").unwrap(),
            Expanded {
                names: vec!["fe80::1".into()],
                port: None
            }
        );
        assert_eq!(expand("bad_:22").unwrap().port, None);
    }

    #[test]
    fn bad_ranges_are_named() {
        assert_eq!(
            expand("w[1:2:3:4]"),
            Err(RangeError::Shape("1:2:3:4".into()))
        );
        assert_eq!(
            expand("w[01:100]"),
            Err(RangeError::Widths("01:100".into()))
        );
        assert_eq!(expand("w[1:]"), Err(RangeError::NoEnd("1:".into())));
        assert_eq!(expand("w[c:a]"), Err(RangeError::Backwards("c:a".into())));
        assert_eq!(expand("w[1:x]"), Err(RangeError::Bounds("1:x".into())));
        assert_eq!(expand("w[1:3:0]"), Err(RangeError::Step("1:3:0".into())));
        assert_eq!(expand("w[0:99999999]"), Err(RangeError::TooMany));
    }
}
