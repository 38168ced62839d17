//! Reading the located YAML tree against a schema, reporting every problem instead of stopping.
//!
//! [`Fields`] wraps one mapping: it checks the keys against the allowed set (suggesting the
//! nearest one for a typo) and hands out values; the `as_*` readers convert a node to a Rust type
//! or push a located "expected …" diagnostic and return `None`, so the caller carries on.

use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};
use crate::node::{Node, Value};

/// The file being read and the diagnostics found so far.
pub struct Reader<'a> {
    pub file: &'a Arc<SourceFile>,
    pub diags: &'a mut Diagnostics,
}

impl Reader<'_> {
    pub fn error(&mut self, loc: Loc, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(message).at(self.file, loc));
    }

    pub fn error_help(&mut self, loc: Loc, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::error(message)
                .at(self.file, loc)
                .with_help(help),
        );
    }

    pub fn warning(&mut self, loc: Loc, warning: crate::warning::PlanWarning) {
        self.diags
            .push(Diagnostic::warning(warning).at(self.file, loc));
    }

    fn expected(&mut self, node: &Node, what: &str, context: &str) {
        self.error(
            node.loc,
            format!("{context}: expected {what}, found {}", node.kind()),
        );
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed`.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        context: &str,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, "a mapping", context);
            return None;
        };
        for (key, _) in entries {
            let name = key.scalar_text().unwrap_or_default();
            if !allowed.contains(&name.as_str()) {
                let message = format!("unknown key `{name}` in {context}");
                match nearest(&name, allowed) {
                    Some(s) => self.error_help(key.loc, message, format!("did you mean `{s}`?")),
                    None => self.error_help(
                        key.loc,
                        message,
                        format!("valid keys: {}", allowed.join(", ")),
                    ),
                }
            }
        }
        Some(Fields {
            entries,
            loc: node.loc,
        })
    }

    /// Checks that `node` is a mapping and returns its entries with string keys.
    pub fn entries<'n>(&mut self, node: &'n Node, context: &str) -> Vec<(String, &'n Node, Loc)> {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| match k.scalar_text() {
                    Some(name) => Some((name, v, k.loc)),
                    None => {
                        self.expected(k, "a name", context);
                        None
                    }
                })
                .collect(),
            Value::Null => Vec::new(),
            _ => {
                self.expected(node, "a mapping", context);
                Vec::new()
            }
        }
    }

    pub fn as_str(&mut self, node: &Node, context: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            // Numbers where text is expected (`ticket: 1042`) are harmless; accept their text.
            Value::Int(_) | Value::Float(_) => node.scalar_text(),
            _ => {
                self.expected(node, "a string", context);
                None
            }
        }
    }

    pub fn as_bool(&mut self, node: &Node, context: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.expected(node, "true or false", context);
                None
            }
        }
    }

    pub fn as_count(&mut self, node: &Node, context: &str) -> Option<u64> {
        match node.value {
            Value::Int(i) if i >= 0 => Some(i.unsigned_abs()),
            Value::Int(i) => {
                self.error(
                    node.loc,
                    format!("{context}: expected a whole number (0 or more), found {i}"),
                );
                None
            }
            _ => {
                self.expected(node, "a whole number (0 or more)", context);
                None
            }
        }
    }

    /// A string or a list of strings (`identity_file: a` or `identity_file: [a, b]`).
    pub fn as_str_list(&mut self, node: &Node, context: &str) -> Vec<(String, Loc)> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|n| self.as_str(n, context).map(|s| (s, n.loc)))
                .collect(),
            Value::Null => Vec::new(),
            _ => self
                .as_str(node, context)
                .map(|s| vec![(s, node.loc)])
                .unwrap_or_default(),
        }
    }

    pub fn as_seq<'n>(&mut self, node: &'n Node, context: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            Value::Null => &[],
            _ => {
                self.expected(node, "a list", context);
                &[]
            }
        }
    }

    /// A duration such as `500ms`, `2s`, `5m`, `1h`, or `1h30m`, in milliseconds.
    pub fn as_duration(&mut self, node: &Node, context: &str) -> Option<u64> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            _ => {
                self.expected(node, "a duration such as `30s` or `5m`", context);
                return None;
            }
        };
        match parse_duration_ms(&text) {
            Some(ms) => Some(ms),
            None => {
                self.error_help(
                    node.loc,
                    format!("{context}: `{text}` is not a duration"),
                    "write a number and a unit: ms, s, m, h (e.g. `30s`, `5m`, `1h30m`)",
                );
                None
            }
        }
    }
}

/// A mapping's entries, looked up by key.
pub struct Fields<'n> {
    entries: &'n [(Node, Node)],
    pub loc: Loc,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v)
            .filter(|v| v.value != Value::Null)
    }
}

/// The allowed key closest to a misspelt one, if any is close enough to be a plausible typo.
pub fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Parses `500ms`, `2s`, `5m`, `1h`, `1h30m` (a sequence of number+unit) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The inverse of [`parse_duration_ms`] for people: `300000` → `5m`, `90000` → `1m30s`,
/// `250` → `250ms`, `0` → `0s`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let parts = [
        (ms / 86_400_000, "d"),
        (ms / 3_600_000 % 24, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    for (value, unit) in parts {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// A count (`3`) or a percentage (`25%`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    Count(u64),
    Percent(u32),
}

impl Reader<'_> {
    pub fn as_amount(&mut self, node: &Node, context: &str) -> Option<Amount> {
        let bad = |r: &mut Self| {
            r.error_help(
                node.loc,
                format!(
                    "{context}: expected a count or a percentage, found {}",
                    node.scalar_text()
                        .map_or_else(|| node.kind().to_string(), |t| format!("`{t}`"))
                ),
                "write a whole number (`3`) or a percentage from 0% to 100% (`25%`)",
            );
            None
        };
        match &node.value {
            Value::Int(i) if *i >= 0 => Some(Amount::Count(i.unsigned_abs())),
            Value::Str(s) => match s.trim().strip_suffix('%').map(|p| p.trim().parse::<u32>()) {
                Some(Ok(p)) if p <= 100 => Some(Amount::Percent(p)),
                _ => bad(self),
            },
            _ => bad(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("2s"), Some(2_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("5"), None);
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_duration_ms("5 minutes"), None);
        assert_eq!(parse_duration_ms("99999999999999999999s"), None);
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(
            nearest("rety", &["retries", "run", "undo"]),
            Some("retries")
        );
        assert_eq!(nearest("skipif", &["skip_if", "run"]), Some("skip_if"));
        assert_eq!(nearest("zzz", &["retries", "run"]), None);
    }
}
