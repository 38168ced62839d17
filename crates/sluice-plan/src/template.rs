//! The template language of commands, URLs and addresses: `{{ reference }}`, nothing else.
//!
//! A reference is one of
//! - `vars.NAME` (dots reach into maps: `vars.db.port`): the host's merged variables;
//! - `host.name`, `host.address`, `host.port`, `host.user`, `host.transport`;
//! - `secrets.NAME`: a run-time hole, never read by the planner;
//! - `NAME`: a value registered by an ancestor step on the same host, a run-time hole;
//! - `stages.STAGE.NAME`: a value a `run_once` step of an earlier stage registered, a run-time
//!   hole (filled from the registered value `stages.STAGE.NAME`).
//!
//! Every inserted value is shell-quoted unless the reference is written `{{raw vars.x}}`.
//! `\{{` writes a literal `{{` (for `docker inspect -f '\{{.State}}'`).
//!
//! A logic-less language of our own rather than handlebars: run-time values must stay holes
//! ([`crate::command::Segment`]) with their quoting rule, which a text renderer cannot express,
//! and strictness (every name must exist) is then the only mode.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::artifact::Connection;
use crate::command::{RenderedCommand, Segment, double_quote_into, shell_quote_into};
use crate::url::{TargetProblem, percent_encode_into};

/// A template parsed once, rendered per host.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Literal(String),
    Ref(Reference),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub kind: RefKind,
    /// Path after the namespace (`["db", "port"]` for `vars.db.port`); the name for registered.
    pub path: Vec<String>,
    pub raw: bool,
    /// How the value is written into the text around it. [`parse`] assumes a bare shell word;
    /// the compiler sets it from where the reference stands ([`crate::shell`], [`crate::url`]).
    pub insert: Insert,
    /// Which `{{` of the template text this is (0-based, escaped ones counted too): the same
    /// `{{` is found again in the YAML source to point a diagnostic at the reference itself.
    pub ordinal: usize,
}

/// Where a value lands, and so how it must be written there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Insert {
    /// A shell word outside any quotes: quoted as one word ([`crate::command::shell_quote`]).
    #[default]
    ShellWord,
    /// Inside `"…"`: `\`, `"`, `$` and `` ` `` are escaped. A run-time hole closes the double
    /// quotes, is inserted as a quoted word, and opens them again (`"a "'v'" b"`), so the hole
    /// keeps the one quoting rule the artifact knows.
    ShellDoubleQuoted,
    /// The host or port of a URL: inserted as it is, but only if it has no URL syntax in it.
    UrlAuthority,
    /// A URL's path, query or fragment: percent-encoded.
    UrlComponent,
    /// A `tcp:` address: inserted as it is; the rendered address is checked whole.
    Verbatim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Vars,
    Host,
    Secret,
    Registered,
    /// `stages.STAGE.NAME`: `path` is `[STAGE, NAME]`.
    Stage,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = match self.kind {
            RefKind::Vars => "vars.",
            RefKind::Host => "host.",
            RefKind::Secret => "secrets.",
            RefKind::Registered => "",
            RefKind::Stage => "stages.",
        };
        write!(f, "{ns}{}", self.path.join("."))
    }
}

pub const HOST_FIELDS: &[&str] = &["name", "address", "port", "user", "transport"];

/// A template that cannot be parsed, and which `{{` of its text is at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct TemplateError {
    /// Which `{{` of the text (0-based, escaped ones counted), as in [`Reference::ordinal`].
    pub ordinal: usize,
    pub problem: ReferenceError,
}

/// What is wrong with one `{{ … }}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("`{{{{` is not closed by `}}}}` (write `\\{{{{` for a literal `{{{{`)")]
    Unclosed,
    #[error("empty reference `{{{{}}}}`")]
    Empty,
    #[error(
        "`{{{{{expr}}}}}` is not a reference; write vars.NAME, host.FIELD, secrets.NAME or a registered NAME"
    )]
    NotAReference { expr: String },
    #[error(
        "`{namespace}.` is not a namespace; use vars., host. or secrets. (registered names are bare)"
    )]
    UnknownNamespace { namespace: String },
    #[error("`{namespace}` needs a name after the dot, e.g. `{namespace}.NAME`")]
    MissingName { namespace: String },
    #[error(
        "`host.{field}` is not a host field; use one of host.name, host.address, host.port, host.user, host.transport"
    )]
    UnknownHostField { field: String },
    #[error("`secrets.{path}`: a secret is one value, not a map")]
    SecretPath { path: String },
    #[error("`stages.{path}` is not a stage value; write stages.STAGE.NAME")]
    StagePath { path: String },
}

/// Parses `text`. The error says what is wrong with which reference.
pub fn parse(text: &str) -> Result<Template, TemplateError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    let mut ordinal = 0;
    while let Some(pos) = rest.find("{{") {
        let this = ordinal;
        ordinal += 1;
        if rest[..pos].ends_with('\\') {
            literal.push_str(&rest[..pos - 1]);
            literal.push_str("{{");
            rest = &rest[pos + 2..];
            continue;
        }
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find("}}") else {
            return Err(TemplateError {
                ordinal: this,
                problem: ReferenceError::Unclosed,
            });
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        let reference =
            parse_reference(after[..end].trim(), this).map_err(|problem| TemplateError {
                ordinal: this,
                problem,
            })?;
        parts.push(Part::Ref(reference));
        rest = &after[end + 2..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Template { parts })
}

fn parse_reference(expr: &str, ordinal: usize) -> Result<Reference, ReferenceError> {
    let (raw, expr) = match expr.strip_prefix("raw ") {
        Some(e) => (true, e.trim()),
        None => (false, expr),
    };
    if expr.is_empty() {
        return Err(ReferenceError::Empty);
    }
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let mut segments = expr.split('.');
    let head = segments.next().unwrap_or_default();
    let path: Vec<String> = segments.map(str::to_string).collect();
    if !valid(head) || path.iter().any(|p| !valid(p)) {
        return Err(ReferenceError::NotAReference {
            expr: expr.to_string(),
        });
    }
    let reference = |kind, path| Reference {
        kind,
        path,
        raw,
        insert: Insert::default(),
        ordinal,
    };
    let kind = match head {
        "vars" => RefKind::Vars,
        "host" => RefKind::Host,
        "secrets" => RefKind::Secret,
        "stages" => RefKind::Stage,
        _ if path.is_empty() => {
            return Ok(reference(RefKind::Registered, vec![head.to_string()]));
        }
        other => {
            return Err(ReferenceError::UnknownNamespace {
                namespace: other.to_string(),
            });
        }
    };
    if path.is_empty() {
        return Err(ReferenceError::MissingName {
            namespace: head.to_string(),
        });
    }
    if kind == RefKind::Host && (path.len() != 1 || !HOST_FIELDS.contains(&path[0].as_str())) {
        return Err(ReferenceError::UnknownHostField {
            field: path.join("."),
        });
    }
    if kind == RefKind::Secret && path.len() != 1 {
        return Err(ReferenceError::SecretPath {
            path: path.join("."),
        });
    }
    if kind == RefKind::Stage && path.len() != 2 {
        return Err(ReferenceError::StagePath {
            path: path.join("."),
        });
    }
    Ok(reference(kind, path))
}

/// What a host's templates can see at plan time.
pub struct Scope<'a> {
    pub host: &'a str,
    pub connection: &'a Connection,
    pub vars: &'a BTreeMap<String, serde_json::Value>,
}

/// Why a reference could not be rendered for a host.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RenderProblem {
    Undefined(String),
    NotScalar(String),
    /// The rendered URL or address, or a value inserted into it, is not acceptable.
    Target(TargetProblem),
}

impl Template {
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    pub fn references_mut(&mut self) -> impl Iterator<Item = &mut Reference> {
        self.parts.iter_mut().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// Renders for one host. `registered_by` names the step that registers a bare name (the
    /// compiler has already checked that it is an ancestor).
    ///
    /// Runs once per (host, template): 3,000,000 times for 100,000 hosts × 10 steps, so text is
    /// built in one pre-sized buffer and values are quoted straight into it.
    pub fn render(
        &self,
        scope: &Scope,
        registered_by: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RenderedCommand, RenderProblem> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut text = String::with_capacity(self.size_hint());
        // Whether `text` is the open last segment. Tracked apart from `text.is_empty()`: an
        // empty raw value still makes a (possibly empty) text segment, as it always has.
        let mut open = false;
        let close = |segments: &mut Vec<Segment>, text: &mut String, open: &mut bool| {
            if std::mem::take(open) {
                segments.push(Segment::Text(std::mem::take(text)));
            }
        };
        for part in &self.parts {
            let r = match part {
                Part::Literal(t) => {
                    text.push_str(t);
                    open = true;
                    continue;
                }
                Part::Ref(r) => r,
            };
            let hole = match r.kind {
                RefKind::Vars | RefKind::Host => {
                    let value = lookup(r, scope)?;
                    match (r.raw, r.insert) {
                        (true, _) => text.push_str(&value),
                        (false, Insert::ShellDoubleQuoted) => double_quote_into(&mut text, &value),
                        (false, _) => shell_quote_into(&mut text, &value),
                    }
                    open = true;
                    continue;
                }
                RefKind::Secret => Segment::Secret {
                    name: r.path[0].clone(),
                    quote: !r.raw,
                },
                RefKind::Registered | RefKind::Stage => {
                    // A stage's value is registered under its whole name, `stages.STAGE.NAME`.
                    let name = match r.kind {
                        RefKind::Stage => r.to_string(),
                        _ => r.path[0].clone(),
                    };
                    let step = registered_by(&name)
                        .ok_or_else(|| RenderProblem::Undefined(name.clone()))?;
                    Segment::Registered {
                        name,
                        step,
                        quote: !r.raw,
                    }
                }
            };
            // Inside double quotes a quoted hole steps out of them and back in.
            let step_out = !r.raw && r.insert == Insert::ShellDoubleQuoted;
            if step_out {
                text.push('"');
                open = true;
            }
            close(&mut segments, &mut text, &mut open);
            segments.push(hole);
            if step_out {
                text.push('"');
                open = true;
            }
        }
        close(&mut segments, &mut text, &mut open);
        Ok(RenderedCommand { segments })
    }

    /// Bytes of literal text plus a little per reference: usually the whole rendered length.
    fn size_hint(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(t) => t.len(),
                Part::Ref(_) => 16,
            })
            .sum()
    }

    /// Renders text that is not a shell command (an URL, an address): each value is written as
    /// its [`Insert`] says, and only plan-time references are allowed (the compiler checks that
    /// first). The caller checks the whole result ([`crate::url`]).
    pub fn render_plain(&self, scope: &Scope) -> Result<String, RenderProblem> {
        let mut out = String::with_capacity(self.size_hint());
        for part in &self.parts {
            match part {
                Part::Literal(t) => out.push_str(t),
                Part::Ref(r) => {
                    let value = lookup(r, scope)?;
                    match (r.raw, r.insert) {
                        (false, Insert::UrlComponent) => percent_encode_into(&mut out, &value),
                        (false, Insert::UrlAuthority) => {
                            crate::url::check_authority_value(r, &value)
                                .map_err(RenderProblem::Target)?;
                            out.push_str(&value);
                        }
                        _ => out.push_str(&value),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A reference's plan-time value, borrowed from the scope where it can be.
fn lookup<'s>(r: &Reference, scope: &Scope<'s>) -> Result<Cow<'s, str>, RenderProblem> {
    if r.kind == RefKind::Host {
        let c = scope.connection;
        return match r.path[0].as_str() {
            "name" => Ok(Cow::Borrowed(scope.host)),
            "address" => Ok(Cow::Borrowed(c.address.as_str())),
            "port" => Ok(Cow::Owned(c.port.to_string())),
            "user" => c
                .user
                .as_deref()
                .map(Cow::Borrowed)
                .ok_or_else(|| RenderProblem::Undefined(r.to_string())),
            "transport" => Ok(Cow::Borrowed(match c.transport {
                crate::artifact::TransportKind::Ssh => "ssh",
                crate::artifact::TransportKind::Local => "local",
            })),
            _ => Err(RenderProblem::Undefined(r.to_string())),
        };
    }
    let vars: &'s BTreeMap<String, serde_json::Value> = scope.vars;
    let mut value = vars.get(&r.path[0]);
    for key in &r.path[1..] {
        value = value.and_then(|v| v.get(key));
    }
    match value {
        None => Err(RenderProblem::Undefined(r.to_string())),
        Some(serde_json::Value::String(s)) => Ok(Cow::Borrowed(s.as_str())),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(Cow::Owned(v.to_string()))
        }
        Some(serde_json::Value::Null) => Ok(Cow::Borrowed("")),
        Some(_) => Err(RenderProblem::NotScalar(r.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{HostKeyChecking, TransportKind};

    fn connection() -> Connection {
        Connection {
            transport: TransportKind::Ssh,
            address: "10.0.0.11".into(),
            port: 22,
            user: None,
            identity_files: vec![],
            known_hosts: vec![],
            host_key_checking: HostKeyChecking::Strict,
            proxy_jump: vec![],
            workdir: None,
            env: BTreeMap::new(),
            become_all: None,
            transport_mode: None,
        }
    }

    fn render(text: &str, vars: &[(&str, serde_json::Value)]) -> Result<String, RenderProblem> {
        let vars: BTreeMap<String, serde_json::Value> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let c = connection();
        let scope = Scope {
            host: "web-1",
            connection: &c,
            vars: &vars,
        };
        parse(text)
            .unwrap()
            .render(&scope, &|n| (n == "old").then(|| "current".to_string()))
            .map(|c| c.to_string())
    }

    #[test]
    fn values_are_quoted_unless_raw() {
        let evil = serde_json::json!("a; rm -rf /");
        assert_eq!(
            render("echo {{vars.x}}", &[("x", evil.clone())]).unwrap(),
            "echo 'a; rm -rf /'"
        );
        assert_eq!(
            render("echo {{ raw vars.x }}", &[("x", evil)]).unwrap(),
            "echo a; rm -rf /"
        );
        assert_eq!(
            render("ping {{host.address}} {{host.name}}", &[]).unwrap(),
            "ping 10.0.0.11 web-1"
        );
        assert_eq!(
            render(
                "x={{vars.db.port}}",
                &[("db", serde_json::json!({"port": 5432}))]
            )
            .unwrap(),
            "x=5432"
        );
    }

    #[test]
    fn run_time_values_stay_holes() {
        assert_eq!(
            render("t {{secrets.tok}} v {{old}}", &[]).unwrap(),
            "t *** v <old from step current>"
        );
        assert_eq!(
            render("{{other}}", &[]),
            Err(RenderProblem::Undefined("other".into()))
        );
    }

    #[test]
    fn strict_and_escapes() {
        assert_eq!(
            render("{{vars.nope}}", &[]),
            Err(RenderProblem::Undefined("vars.nope".into()))
        );
        assert_eq!(
            render(r"docker inspect -f '\{{.State}}'", &[]).unwrap(),
            "docker inspect -f '{{.State}}'"
        );
        let problem = |text: &str| parse(text).unwrap_err();
        assert_eq!(
            problem("echo {{vars.x"),
            TemplateError {
                ordinal: 0,
                problem: ReferenceError::Unclosed
            }
        );
        assert_eq!(
            problem(r"\{{ {{vars.ok}} {{host.colour}}"),
            TemplateError {
                ordinal: 2,
                problem: ReferenceError::UnknownHostField {
                    field: "colour".into()
                }
            }
        );
        assert_eq!(
            problem("{{env.HOME}}").problem,
            ReferenceError::UnknownNamespace {
                namespace: "env".into()
            }
        );
        assert!(
            problem("{{vars.a b}}")
                .to_string()
                .contains("not a reference")
        );
    }
}
