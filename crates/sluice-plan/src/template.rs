//! The template language of commands, URLs and addresses: `{{ reference }}`, nothing else.
//!
//! A reference is one of
//! - `vars.NAME` (dots reach into maps: `vars.db.port`): the host's merged variables;
//! - `host.name`, `host.address`, `host.port`, `host.user`, `host.transport`;
//! - `secrets.NAME`: a run-time hole, never read by the planner;
//! - `NAME`: a value registered by an ancestor step on the same host, a run-time hole.
//!
//! Every inserted value is shell-quoted unless the reference is written `{{raw vars.x}}`.
//! `\{{` writes a literal `{{` (for `docker inspect -f '\{{.State}}'`).
//!
//! A logic-less language of our own rather than handlebars: run-time values must stay holes
//! ([`crate::command::Segment`]) with their quoting rule, which a text renderer cannot express,
//! and strictness (every name must exist) is then the only mode.

use std::collections::BTreeMap;

use crate::artifact::Connection;
use crate::command::{RenderedCommand, Segment, shell_quote};

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Vars,
    Host,
    Secret,
    Registered,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = match self.kind {
            RefKind::Vars => "vars.",
            RefKind::Host => "host.",
            RefKind::Secret => "secrets.",
            RefKind::Registered => "",
        };
        write!(f, "{ns}{}", self.path.join("."))
    }
}

pub const HOST_FIELDS: &[&str] = &["name", "address", "port", "user", "transport"];

/// Parses `text`. The error says what is wrong with which reference.
pub fn parse(text: &str) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find("{{") {
        if rest[..pos].ends_with('\\') {
            literal.push_str(&rest[..pos - 1]);
            literal.push_str("{{");
            rest = &rest[pos + 2..];
            continue;
        }
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find("}}") else {
            return Err("`{{` is not closed by `}}` (write `\\{{` for a literal `{{`)".into());
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Ref(parse_reference(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Template { parts })
}

fn parse_reference(expr: &str) -> Result<Reference, String> {
    let (raw, expr) = match expr.strip_prefix("raw ") {
        Some(e) => (true, e.trim()),
        None => (false, expr),
    };
    if expr.is_empty() {
        return Err("empty reference `{{}}`".into());
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
        return Err(format!(
            "`{{{{{expr}}}}}` is not a reference; write vars.NAME, host.FIELD, secrets.NAME or a registered NAME"
        ));
    }
    let kind = match head {
        "vars" => RefKind::Vars,
        "host" => RefKind::Host,
        "secrets" => RefKind::Secret,
        _ if path.is_empty() => {
            return Ok(Reference {
                kind: RefKind::Registered,
                path: vec![head.to_string()],
                raw,
            });
        }
        other => {
            return Err(format!(
                "`{other}.` is not a namespace; use vars., host. or secrets. (registered names are bare)"
            ));
        }
    };
    if path.is_empty() {
        return Err(format!(
            "`{head}` needs a name after the dot, e.g. `{head}.NAME`"
        ));
    }
    if kind == RefKind::Host && (path.len() != 1 || !HOST_FIELDS.contains(&path[0].as_str())) {
        return Err(format!(
            "`host.{}` is not a host field; use one of host.{}",
            path.join("."),
            HOST_FIELDS.join(", host.")
        ));
    }
    if kind == RefKind::Secret && path.len() != 1 {
        return Err(format!(
            "`secrets.{}`: a secret is one value, not a map",
            path.join(".")
        ));
    }
    Ok(Reference { kind, path, raw })
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
}

impl Template {
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// Renders for one host. `registered_by` names the step that registers a bare name (the
    /// compiler has already checked that it is an ancestor).
    pub fn render(
        &self,
        scope: &Scope,
        registered_by: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RenderedCommand, RenderProblem> {
        let mut segments: Vec<Segment> = Vec::new();
        let push_text = |segments: &mut Vec<Segment>, t: &str| match segments.last_mut() {
            Some(Segment::Text(prev)) => prev.push_str(t),
            _ => segments.push(Segment::Text(t.to_string())),
        };
        for part in &self.parts {
            match part {
                Part::Literal(t) => push_text(&mut segments, t),
                Part::Ref(r) => match r.kind {
                    RefKind::Vars | RefKind::Host => {
                        let value = lookup(r, scope)?;
                        let text = if r.raw { value } else { shell_quote(&value) };
                        push_text(&mut segments, &text);
                    }
                    RefKind::Secret => segments.push(Segment::Secret {
                        name: r.path[0].clone(),
                        quote: !r.raw,
                    }),
                    RefKind::Registered => {
                        let name = r.path[0].clone();
                        let step = registered_by(&name)
                            .ok_or_else(|| RenderProblem::Undefined(name.clone()))?;
                        segments.push(Segment::Registered {
                            name,
                            step,
                            quote: !r.raw,
                        });
                    }
                },
            }
        }
        Ok(RenderedCommand { segments })
    }

    /// Renders text that is not a shell command (an URL, an address): nothing is quoted, and
    /// only plan-time references are allowed (the compiler checks that first).
    pub fn render_plain(&self, scope: &Scope) -> Result<String, RenderProblem> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(t) => out.push_str(t),
                Part::Ref(r) => out.push_str(&lookup(r, scope)?),
            }
        }
        Ok(out)
    }
}

fn lookup(r: &Reference, scope: &Scope) -> Result<String, RenderProblem> {
    if r.kind == RefKind::Host {
        let c = scope.connection;
        return match r.path[0].as_str() {
            "name" => Ok(scope.host.to_string()),
            "address" => Ok(c.address.clone()),
            "port" => Ok(c.port.to_string()),
            "user" => c
                .user
                .clone()
                .ok_or_else(|| RenderProblem::Undefined(r.to_string())),
            "transport" => Ok(match c.transport {
                crate::artifact::TransportKind::Ssh => "ssh".into(),
                crate::artifact::TransportKind::Local => "local".into(),
            }),
            _ => Err(RenderProblem::Undefined(r.to_string())),
        };
    }
    let mut value = scope.vars.get(&r.path[0]);
    for key in &r.path[1..] {
        value = value.and_then(|v| v.get(key));
    }
    match value {
        None => Err(RenderProblem::Undefined(r.to_string())),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(v.to_string()),
        Some(serde_json::Value::Null) => Ok(String::new()),
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
        assert!(parse("echo {{vars.x").unwrap_err().contains("not closed"));
        assert!(
            parse("{{host.colour}}")
                .unwrap_err()
                .contains("not a host field")
        );
        assert!(
            parse("{{env.HOME}}")
                .unwrap_err()
                .contains("not a namespace")
        );
        assert!(
            parse("{{vars.a b}}")
                .unwrap_err()
                .contains("not a reference")
        );
    }
}
