//! Rendered commands: text fixed at plan time plus holes for values known only at run time.
//!
//! At plan time every `vars.` and `host.` reference is rendered into plain text (shell-quoted
//! unless the plan opts out). Two kinds of value cannot be rendered then: secrets (the planner
//! never reads them, so they can never leak into a plan artifact) and values registered by an
//! earlier step on the same host (they do not exist yet). Those stay as [`Segment`] holes that
//! the executor fills with [`RenderedCommand::resolve`].
//!
//! A secret value never becomes part of the command text, because the text is a process's
//! command line on the host (`sh -c …`, which `ps` shows to every user). Its hole becomes a
//! reference to a shell variable (`"${__sluice_s1}"`), and the value travels beside the text
//! ([`ResolvedCommand::secrets`]) for the transport to hand to the shell out of band (on its
//! stdin, see `sluice_ssh::secret_stdin`). A registered value that holds a secret (it was
//! registered from output that contained one) is a secret too ([`RuntimeValues::register`]);
//! other registered values are written into the text, quoted, as plan-time values are.

use std::collections::{BTreeMap, BTreeSet};
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
#[derive(Clone, Default)]
pub struct RuntimeValues {
    pub secrets: BTreeMap<String, String>,
    pub registered: BTreeMap<String, String>,
    /// Names of registered values that hold a secret: they are passed and shown like secrets.
    pub secret_registered: BTreeSet<String>,
}

impl fmt::Debug for RuntimeValues {
    // Debug output ends up in logs: names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeValues")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("registered", &self.registered.keys().collect::<Vec<_>>())
            .field("secret_registered", &self.secret_registered)
            .finish()
    }
}

impl RuntimeValues {
    /// Registers `value` as `name`; `secret` when it holds a secret (the executor decides:
    /// it knows the secret values). Registering again (a retry) replaces both.
    pub fn register(&mut self, name: &str, value: String, secret: bool) {
        self.registered.insert(name.to_string(), value);
        if secret {
            self.secret_registered.insert(name.to_string());
        } else {
            self.secret_registered.remove(name);
        }
    }
}

/// A secret value and the shell variable the command text refers to it by.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBinding {
    /// `__sluice_s1`, `__sluice_s2`…: a valid shell name, unique within the command.
    pub variable: String,
    pub value: String,
}

impl fmt::Debug for SecretBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBinding({} = ***)", self.variable)
    }
}

/// A command ready to run: the text the host executes, the text that may be shown or stored,
/// and the secret values the text refers to.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedCommand {
    /// What the host executes. Secrets appear only as variable references (`"${__sluice_s1}"`),
    /// never as values: the text is a command line on the host.
    pub text: String,
    /// The same command with every secret (and secret registered value) replaced by `***`:
    /// safe for logs and the audit trail.
    pub redacted: String,
    /// The values of the variables `text` refers to, in order of first use: the transport hands
    /// them to the shell out of band, never on a command line.
    pub secrets: Vec<SecretBinding>,
}

impl fmt::Debug for ResolvedCommand {
    // Debug output ends up in logs; it must never carry a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedCommand")
            .field("redacted", &self.redacted)
            .field("secrets", &self.secrets)
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

/// Prefix of the shell variables that hold secret values in a resolved command.
pub const SECRET_VARIABLE_PREFIX: &str = "__sluice_s";

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

    /// Fills the holes. A secret, and a registered value that holds one, becomes a reference to
    /// a shell variable whose value is in [`ResolvedCommand::secrets`] (quoted as one word, or
    /// expanded unquoted for `{{raw …}}`: split into words, never parsed as shell code); other
    /// registered values are written in, quoted as plan-time values are. The redacted text
    /// shows secrets as `***` and other registered values as they are.
    pub fn resolve(&self, values: &RuntimeValues) -> Result<ResolvedCommand, ResolveError> {
        let mut text = String::new();
        let mut redacted = String::new();
        let mut bindings = Bindings::default();
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
                    let variable = bindings.variable(HoleKind::Secret, name, value);
                    push_reference(&mut text, variable, *quote);
                    redacted.push_str(MASK);
                }
                Segment::Registered { name, step, quote } => {
                    let value = values.registered.get(name).ok_or_else(|| {
                        ResolveError::MissingRegistered {
                            name: name.clone(),
                            step: step.clone(),
                        }
                    })?;
                    if values.secret_registered.contains(name) {
                        let variable = bindings.variable(HoleKind::Registered, name, value);
                        push_reference(&mut text, variable, *quote);
                        redacted.push_str(MASK);
                    } else {
                        let v = quoted(value, *quote);
                        text.push_str(&v);
                        redacted.push_str(&v);
                    }
                }
            }
        }
        Ok(ResolvedCommand {
            text,
            redacted,
            secrets: bindings.list,
        })
    }
}

/// What a secret is shown as.
const MASK: &str = "***";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HoleKind {
    Secret,
    Registered,
}

/// The variables of one resolved command: one per distinct secret hole, numbered in order of
/// first use.
#[derive(Default)]
struct Bindings {
    by_hole: BTreeMap<(HoleKind, String), usize>,
    list: Vec<SecretBinding>,
}

impl Bindings {
    fn variable(&mut self, kind: HoleKind, name: &str, value: &str) -> &str {
        let next = self.list.len();
        let index = *self.by_hole.entry((kind, name.to_string())).or_insert(next);
        if index == next {
            self.list.push(SecretBinding {
                variable: format!("{SECRET_VARIABLE_PREFIX}{}", next + 1),
                value: value.to_string(),
            });
        }
        &self.list[index].variable
    }
}

/// `"${VAR}"` (one word, whatever the value holds) or, for `{{raw …}}`, `${VAR}`. The braces
/// keep text that follows the hole (`{{raw secrets.x}}abc`) out of the variable's name.
fn push_reference(text: &mut String, variable: &str, quote: bool) {
    if quote {
        text.push_str(&format!("\"${{{variable}}}\""));
    } else {
        text.push_str(&format!("${{{variable}}}"));
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
        assert_eq!(
            resolved.text,
            r#"lbctl --token "${__sluice_s1}" downgrade 1.2"#
        );
        assert_eq!(resolved.redacted, "lbctl --token *** downgrade 1.2");
        assert_eq!(
            resolved.secrets,
            [SecretBinding {
                variable: "__sluice_s1".into(),
                value: "s3 cret".into()
            }]
        );
        assert!(!format!("{resolved:?}").contains("s3 cret"));
        assert!(!format!("{values:?}").contains("s3 cret"));
    }

    /// A registered value that holds a secret is passed and shown like one: never in the text,
    /// never in the redacted text (it used to be shown in clear by later steps and undos).
    #[test]
    fn a_secret_registered_value_is_a_variable_and_masked() {
        let cmd = RenderedCommand {
            segments: vec![
                Segment::Text("use ".into()),
                Segment::Registered {
                    name: "session".into(),
                    step: "login".into(),
                    quote: true,
                },
                Segment::Text(" ".into()),
                Segment::Secret {
                    name: "tok".into(),
                    quote: false,
                },
                Segment::Text("x again ".into()),
                Segment::Registered {
                    name: "session".into(),
                    step: "login".into(),
                    quote: true,
                },
            ],
        };
        let mut values = RuntimeValues::default();
        values.secrets.insert("tok".into(), "t0k".into());
        values.register("session", "sess-t0k".into(), true);
        let resolved = cmd.resolve(&values).unwrap();
        assert_eq!(
            resolved.text,
            r#"use "${__sluice_s1}" ${__sluice_s2}x again "${__sluice_s1}""#
        );
        assert_eq!(resolved.redacted, "use *** ***x again ***");
        let values_sent: Vec<_> = resolved
            .secrets
            .iter()
            .map(|b| (b.variable.as_str(), b.value.as_str()))
            .collect();
        assert_eq!(
            values_sent,
            [("__sluice_s1", "sess-t0k"), ("__sluice_s2", "t0k")]
        );
        // Registered again without a secret (a retry printed something else): inline again.
        values.register("session", "plain".into(), false);
        let resolved = cmd.resolve(&values).unwrap();
        assert_eq!(resolved.redacted, "use plain ***x again plain");
    }
}
