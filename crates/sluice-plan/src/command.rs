//! Rendered commands: text fixed at plan time plus holes for values known only at run time.
//!
//! At plan time every `vars.` and `host.` reference is rendered into plain text (shell-quoted
//! unless the plan opts out). Two kinds of value cannot be rendered then: secrets (the planner
//! never reads them, so they can never leak into a plan artifact) and values registered by an
//! earlier step on the same host (they do not exist yet). Those stay as [`Segment`] holes that
//! the executor fills with [`RenderedCommand::resolve`], applying the same quoting rule.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A command as compiled: literal text and run-time holes, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RenderedCommand {
    pub segments: Vec<Segment>,
}

/// One piece of a [`RenderedCommand`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Text rendered at plan time (already quoted where the rule says so).
    Text(String),
    /// `{{secrets.NAME}}`: the value is read at run time and never shown, logged or stored.
    Secret { name: String, quote: bool },
    /// A value registered by step `step` on the same host (`register: NAME`).
    Registered {
        name: String,
        step: String,
        quote: bool,
    },
}

/// Values known only at run time, for one host.
#[derive(Clone, Debug, Default)]
pub struct RuntimeValues {
    pub secrets: BTreeMap<String, String>,
    pub registered: BTreeMap<String, String>,
}

/// A command ready to run: the real text, and the text that may be shown or stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedCommand {
    /// What the host executes. Contains secret values: never log or store it.
    pub text: String,
    /// The same command with every secret replaced by `***`: safe for logs and the audit trail.
    pub redacted: String,
}

impl fmt::Debug for ResolvedCommand {
    // Debug output ends up in logs; it must never carry a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedCommand")
            .field("redacted", &self.redacted)
            .finish()
    }
}

/// A run-time hole that has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("secret `{name}` has no value at run time")]
    MissingSecret { name: String },
    #[error("`{name}` was not registered: step `{step}` did not run on this host")]
    MissingRegistered { name: String, step: String },
}

impl RenderedCommand {
    /// A command that is entirely plain text.
    pub fn text(s: impl Into<String>) -> Self {
        RenderedCommand {
            segments: vec![Segment::Text(s.into())],
        }
    }

    /// Names of the registered values this command needs.
    pub fn registered_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Registered { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Fills the holes. The redacted text shows secrets as `***` and registered values as they are.
    pub fn resolve(&self, values: &RuntimeValues) -> Result<ResolvedCommand, ResolveError> {
        let mut text = String::new();
        let mut redacted = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => {
                    text.push_str(t);
                    redacted.push_str(t);
                }
                Segment::Secret { name, quote } => {
                    let value = values
                        .secrets
                        .get(name)
                        .ok_or_else(|| ResolveError::MissingSecret { name: name.clone() })?;
                    text.push_str(&quoted(value, *quote));
                    redacted.push_str("***");
                }
                Segment::Registered { name, step, quote } => {
                    let value = values.registered.get(name).ok_or_else(|| {
                        ResolveError::MissingRegistered {
                            name: name.clone(),
                            step: step.clone(),
                        }
                    })?;
                    let v = quoted(value, *quote);
                    text.push_str(&v);
                    redacted.push_str(&v);
                }
            }
        }
        Ok(ResolvedCommand { text, redacted })
    }
}

/// How a reviewer sees the command: secrets as `***`, registered values as placeholders.
impl fmt::Display for RenderedCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => f.write_str(t)?,
                Segment::Secret { .. } => f.write_str("***")?,
                Segment::Registered { name, step, .. } => write!(f, "<{name} from step {step}>")?,
            }
        }
        Ok(())
    }
}

fn quoted(value: &str, quote: bool) -> String {
    if quote {
        shell_quote(value)
    } else {
        value.to_string()
    }
}

/// Quotes `value` as one POSIX shell word.
///
/// Words made only of characters that no shell treats specially are left alone so plans stay
/// readable (`3.0.15`, `web-1`); anything else is wrapped in single quotes, with embedded single
/// quotes written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    shell_quote_into(&mut out, value);
    out
}

/// [`shell_quote`] appending to `out` (the planner renders millions of values).
pub fn shell_quote_into(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        out.push_str(value);
    } else {
        out.push('\'');
        let mut pieces = value.split('\'');
        if let Some(first) = pieces.next() {
            out.push_str(first);
        }
        for piece in pieces {
            out.push_str(r"'\''");
            out.push_str(piece);
        }
        out.push('\'');
    }
}

/// Writes `value` for the inside of a double-quoted shell string: `\\`, `"`, `$` and `` ` `` are
/// the only characters special there, and each is escaped with a backslash. Everything else,
/// line breaks included, is literal inside double quotes.
pub fn double_quote_into(out: &mut String, value: &str) {
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_hostile_values_one_word() {
        assert_eq!(shell_quote("3.0.15"), "3.0.15");
        assert_eq!(shell_quote("a; rm -rf /"), "'a; rm -rf /'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn resolve_fills_holes_and_redacts_secrets() {
        let cmd = RenderedCommand {
            segments: vec![
                Segment::Text("lbctl --token ".into()),
                Segment::Secret {
                    name: "tok".into(),
                    quote: true,
                },
                Segment::Text(" downgrade ".into()),
                Segment::Registered {
                    name: "old".into(),
                    step: "current".into(),
                    quote: true,
                },
            ],
        };
        assert_eq!(
            cmd.to_string(),
            "lbctl --token *** downgrade <old from step current>"
        );
        let mut values = RuntimeValues::default();
        assert_eq!(
            cmd.resolve(&values),
            Err(ResolveError::MissingSecret { name: "tok".into() })
        );
        values.secrets.insert("tok".into(), "s3 cret".into());
        values.registered.insert("old".into(), "1.2".into());
        let resolved = cmd.resolve(&values).unwrap();
        assert_eq!(resolved.text, "lbctl --token 's3 cret' downgrade 1.2");
        assert_eq!(resolved.redacted, "lbctl --token *** downgrade 1.2");
        assert!(!format!("{resolved:?}").contains("s3 cret"));
    }
}
