//! A step's `register`: the name its trimmed stdout is kept under, and `register_limit`, the
//! largest stdout the value may come from.
//!
//! A registered value is exact or the step fails: the executor keeps a registering step's stdout
//! up to its limit, and a step that prints more fails, naming the limit, instead of passing on a
//! value with its middle cut out. The limit defaults to [`DEFAULT_REGISTER_LIMIT`] (what every
//! step's output is kept up to) and may be raised per step up to [`MAX_REGISTER_LIMIT`], which
//! bounds the memory a run spends on one step's output.

use crate::model::StepDecl;
use crate::node::{Node, Value};
use crate::schema::{Fields, Reader};

/// The limit of a registering step that sets none: 64 KiB.
pub const DEFAULT_REGISTER_LIMIT: u64 = 64 * 1024;
/// The largest `register_limit`: 16 MiB.
pub const MAX_REGISTER_LIMIT: u64 = 16 * 1024 * 1024;

/// A step's `register` and `register_limit`, checked.
pub(crate) struct Register {
    pub name: Option<String>,
    pub limit: Option<u64>,
}

/// Reads `register` and `register_limit` of a step; `earlier` are the steps read before it.
pub(crate) fn read_register(
    r: &mut Reader,
    f: &Fields<'_>,
    context: &str,
    earlier: &[StepDecl],
) -> Register {
    let name = f.get("register").and_then(|n| r.as_str(n, context));
    if let (Some(name), Some(n)) = (&name, f.get("register")) {
        if ["vars", "host", "secrets", "raw"].contains(&name.as_str())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.is_empty()
        {
            r.error_help(
                n.loc,
                format!("{context}: `{name}` cannot be a registered name"),
                "use letters, digits and `_`, and not vars, host, secrets or raw",
            );
        } else if let Some(other) = earlier
            .iter()
            .find(|s| s.spec.register.as_deref() == Some(name))
        {
            r.error(
                n.loc,
                format!(
                    "{context}: `{name}` is already registered by step `{}`",
                    other.spec.id
                ),
            );
        }
    }
    let limit = f.get("register_limit").and_then(|n| {
        let limit = read_limit(r, n, context)?;
        if name.is_none() {
            r.error_help(
                n.loc,
                format!("{context}: `register_limit` without `register`"),
                "it limits the value the step registers: add `register: NAME`, or remove it",
            );
        }
        Some(limit)
    });
    Register { name, limit }
}

fn read_limit(r: &mut Reader, node: &Node, context: &str) -> Option<u64> {
    let help = format!(
        "a number of bytes with a unit, B, KiB or MiB (`64KiB`, `1MiB`), from 1 B to {}",
        show_size(MAX_REGISTER_LIMIT)
    );
    let parsed = match &node.value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Str(s) => parse_size(s),
        _ => None,
    };
    match parsed {
        Some(bytes) if (1..=MAX_REGISTER_LIMIT).contains(&bytes) => Some(bytes),
        _ => {
            let found = node
                .scalar_text()
                .unwrap_or_else(|| node.kind().to_string());
            r.error_help(
                node.loc,
                format!("{context}: register_limit `{found}` is not a size from 1 B to 16 MiB"),
                help,
            );
            None
        }
    }
}

/// `65536`, `512B`, `64KiB`, `1 MiB`: bytes. Units are binary (1 KiB = 1024 B).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let number: u64 = text.get(..digits)?.parse().ok()?;
    let unit = match text.get(digits..)?.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// The largest whole unit: `64 KiB`, `1 MiB`, `1000 B`.
pub fn show_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * 1024 && b % (1024 * 1024) == 0 => format!("{} MiB", b / (1024 * 1024)),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_show() {
        assert_eq!(parse_size("65536"), Some(65_536));
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("1 MiB"), Some(1_048_576));
        assert_eq!(parse_size("512B"), Some(512));
        for bad in ["", "1MB", "1.5MiB", "MiB", "-1KiB", "1 GiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(show_size(65_536), "64 KiB");
        assert_eq!(show_size(16 * 1024 * 1024), "16 MiB");
        assert_eq!(show_size(1000), "1000 B");
    }
}
