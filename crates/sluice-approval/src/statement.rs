//! The statement an approver signs: a few `key: value` lines, in a fixed order, ending with a
//! newline. It is what `sluice approve-plan --statement` prints and what `ssh-keygen -Y sign`
//! signs, so it is plain text a person can read before signing:
//!
//! ```text
//! sluice-approval: 1
//! plan-hash: 9c1f…
//! scope: gate
//! run: 20261130-010203-ab12
//! wave: rest
//! signed-at: 2026-11-30T01:02:03Z
//! expires: 2026-12-07T01:02:03Z
//! comment: CAB-1234
//! ```
//!
//! `scope` is `plan` (the plan as reviewed), `gate` (the gate before `wave` of `run`), or
//! `run-start` (the operator of a run of the plan identifies themselves: `apply --key`). `run`
//! and `wave` appear only for a gate; `comment` only when there is one. Parsing is strict: any
//! other text is not a statement, so a signature cannot be stretched over something else.

use jiff::Timestamp;

/// The version line's value.
pub const VERSION: &str = "1";

/// What is approved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementScope {
    /// The plan, by its exact hash.
    Plan,
    /// The gate before `wave` of `run`.
    Gate { run: String, wave: String },
    /// The operator of a run identifies themselves (`apply --key`): not an approval of the plan.
    RunStart,
}

/// One statement to sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub plan_hash: String,
    pub scope: StatementScope,
    pub signed_at: Timestamp,
    pub expires: Timestamp,
    pub comment: Option<String>,
}

/// Why a text is not a statement (or a statement cannot be written).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error("line {line}: expected `{expected}: ...`, found {found:?}")]
    Line {
        line: usize,
        expected: &'static str,
        found: String,
    },
    #[error("statement version {0} is not known (this sluice reads version {VERSION})")]
    Version(String),
    #[error("scope `{0}` is not known (plan, gate or run-start)")]
    Scope(String),
    #[error("`{field}`: {value:?} is not a time (RFC 3339, UTC)")]
    Time { field: &'static str, value: String },
    #[error("text after the statement's last line: {0:?}")]
    Trailing(String),
    #[error("the statement does not end with a newline")]
    NoFinalNewline,
    #[error("`{field}` may not be empty, contain a line break, or start or end with a space")]
    Value { field: &'static str },
    #[error("`expires` ({expires}) is not after `signed-at` ({signed_at})")]
    Order {
        signed_at: Timestamp,
        expires: Timestamp,
    },
}

impl Statement {
    /// The canonical text: what is signed, byte for byte.
    pub fn to_text(&self) -> Result<String, StatementError> {
        let mut out = format!("sluice-approval: {VERSION}\n");
        push(&mut out, "plan-hash", &self.plan_hash)?;
        match &self.scope {
            StatementScope::Plan => push(&mut out, "scope", "plan")?,
            StatementScope::RunStart => push(&mut out, "scope", "run-start")?,
            StatementScope::Gate { run, wave } => {
                push(&mut out, "scope", "gate")?;
                push(&mut out, "run", run)?;
                push(&mut out, "wave", wave)?;
            }
        }
        push(&mut out, "signed-at", &self.signed_at.to_string())?;
        push(&mut out, "expires", &self.expires.to_string())?;
        if let Some(comment) = &self.comment {
            push(&mut out, "comment", comment)?;
        }
        if self.expires <= self.signed_at {
            return Err(StatementError::Order {
                signed_at: self.signed_at,
                expires: self.expires,
            });
        }
        Ok(out)
    }

    /// Reads a statement back; only the canonical text of a statement is accepted.
    pub fn parse(text: &str) -> Result<Statement, StatementError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(StatementError::NoFinalNewline)?;
        let mut lines = Lines {
            lines: body.split('\n').collect(),
            next: 0,
        };
        let version = lines.take("sluice-approval")?;
        if version != VERSION {
            return Err(StatementError::Version(version));
        }
        let plan_hash = lines.take("plan-hash")?;
        let scope = match lines.take("scope")?.as_str() {
            "plan" => StatementScope::Plan,
            "run-start" => StatementScope::RunStart,
            "gate" => StatementScope::Gate {
                run: lines.take("run")?,
                wave: lines.take("wave")?,
            },
            other => return Err(StatementError::Scope(other.to_string())),
        };
        let time = |field: &'static str, value: String| {
            value
                .parse::<Timestamp>()
                .map_err(|_| StatementError::Time { field, value })
        };
        let signed_at = time("signed-at", lines.take("signed-at")?)?;
        let expires = time("expires", lines.take("expires")?)?;
        let comment = if lines.peek().is_some_and(|l| l.starts_with("comment: ")) {
            Some(lines.take("comment")?)
        } else {
            None
        };
        if let Some(rest) = lines.peek() {
            return Err(StatementError::Trailing(rest.to_string()));
        }
        let statement = Statement {
            plan_hash,
            scope,
            signed_at,
            expires,
            comment,
        };
        // The canonical form must give back exactly the text that was signed.
        match statement.to_text() {
            Ok(canonical) if canonical == text => Ok(statement),
            Ok(_) => Err(StatementError::Trailing(
                "the text is not in the canonical form".into(),
            )),
            Err(e) => Err(e),
        }
    }
}

/// The lines of a statement, read in order.
struct Lines<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Lines<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.next).copied()
    }

    /// The value of the next line, which must be `key: value`.
    fn take(&mut self, key: &'static str) -> Result<String, StatementError> {
        let line = self.peek().unwrap_or("");
        self.next += 1;
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| StatementError::Line {
                line: self.next,
                expected: key,
                found: line.to_string(),
            })
    }
}

fn push(out: &mut String, field: &'static str, value: &str) -> Result<(), StatementError> {
    if value.is_empty() || value.contains(['\n', '\r']) || value.trim() != value {
        return Err(StatementError::Value { field });
    }
    out.push_str(field);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Statement {
        Statement {
            plan_hash: "ab".repeat(32),
            scope: StatementScope::Gate {
                run: "20261130-010203-ab12".into(),
                wave: "rest".into(),
            },
            signed_at: "2026-11-30T01:02:03Z".parse().unwrap(),
            expires: "2026-12-07T01:02:03Z".parse().unwrap(),
            comment: Some("CAB-1234: looks good".into()),
        }
    }

    #[test]
    fn a_statement_reads_back_exactly() {
        for statement in [
            gate(),
            Statement {
                scope: StatementScope::Plan,
                comment: None,
                ..gate()
            },
        ] {
            let text = statement.to_text().unwrap();
            assert_eq!(Statement::parse(&text).unwrap(), statement, "{text}");
        }
    }

    #[test]
    fn anything_but_the_canonical_text_is_refused() {
        let text = gate().to_text().unwrap();
        for bad in [
            text.replace("scope: gate", "scope: all"),
            text.replace('\n', "\r\n"),
            format!("{text}extra: 1\n"),
            text.trim_end().to_string(),
            text.replace("sluice-approval: 1", "sluice-approval: 2"),
            text.replace("signed-at: 2026-11-30T01:02:03Z", "signed-at: yesterday"),
            text.replace("plan-hash: ", "plan-hash:  "),
        ] {
            assert!(Statement::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_comment_with_a_line_break_cannot_be_signed() {
        let statement = Statement {
            comment: Some("a\nscope: plan".into()),
            ..gate()
        };
        assert_eq!(
            statement.to_text(),
            Err(StatementError::Value { field: "comment" })
        );
    }
}
