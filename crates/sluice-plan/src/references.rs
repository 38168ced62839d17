//! Parsing a plan's templates once, and checking what each reference names and where it stands.
//!
//! A command template is lexed as shell ([`crate::shell`]) and a health URL as a URL
//! ([`crate::url`]), so every reference knows how its value is to be written. A reference that
//! cannot be parsed, or that stands where no value is safe, is reported at the reference itself
//! (file, line and column of its `{{`), with a suggestion.

use std::sync::Arc;

use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};
use crate::model::{self, Plan, ProbeDecl};
use crate::shell;
use crate::template::{self, Insert, RefKind, Template};
use crate::url;

/// Which template is being read, for messages: `step `install` (run)`.
pub struct Site<'a> {
    pub file: &'a Arc<SourceFile>,
    /// `step `install`` or `health check `app``.
    pub what: &'a str,
    /// The key: `run`, `undo`, `skip_if`, `http`, `tcp`.
    pub field: &'a str,
}

impl Site<'_> {
    fn error_at(&self, t: &model::Template, ordinal: usize, message: String) -> Diagnostic {
        let loc = self.file.locate_reference(t.loc, ordinal);
        Diagnostic::error(format!("{} ({}): {message}", self.what, self.field)).at(self.file, loc)
    }

    fn parse(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        match template::parse(&t.text) {
            Ok(tpl) => Some(tpl),
            Err(e) => {
                diags.push(self.error_at(t, e.ordinal, e.to_string()));
                None
            }
        }
    }

    /// A shell command: `run`, `undo`, `skip_if` or a health `run`.
    pub fn command(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        let mut tpl = self.parse(t, diags)?;
        let contexts = shell::contexts(&tpl);
        for (r, context) in tpl.references_mut().zip(contexts) {
            match context {
                Ok(shell::ShellContext::Word) => r.insert = Insert::ShellWord,
                Ok(shell::ShellContext::DoubleQuoted) => r.insert = Insert::ShellDoubleQuoted,
                Err(refusal) => {
                    let name = r.to_string();
                    diags.push(
                        self.error_at(t, r.ordinal, format!("`{{{{{name}}}}}` {refusal}"))
                            .with_help(refusal.help(&name)),
                    );
                }
            }
        }
        Some(tpl)
    }

    /// A health check's `http:` URL.
    pub fn url(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        let mut tpl = self.parse(t, diags)?;
        let refused = url::place(&mut tpl);
        if refused.is_empty() {
            return Some(tpl);
        }
        // The URL cannot be rendered safely: report why, and not what rendering it would show.
        for (index, problem) in refused {
            if let Some(r) = tpl.references().nth(index) {
                diags.push(
                    self.error_at(t, r.ordinal, format!("`{{{{{r}}}}}` {problem}"))
                        .with_help(url::SchemeReference::help(r)),
                );
            }
        }
        None
    }

    /// A health check's `tcp:` address.
    pub fn address(&self, t: &model::Template, diags: &mut Diagnostics) -> Option<Template> {
        let mut tpl = self.parse(t, diags)?;
        url::place_tcp(&mut tpl);
        Some(tpl)
    }
}

/// Checks what a step's reference names: a declared secret, or a value registered by a step
/// that runs before this one on the same host.
pub fn check_reference(
    plan: &Plan,
    r: &template::Reference,
    i: usize,
    field: &str,
    ancestors: &[Vec<bool>],
    loc: Loc,
    diags: &mut Diagnostics,
) {
    let loc = plan.file.locate_reference(loc, r.ordinal);
    let s = &plan.steps[i];
    let id = &s.spec.id;
    let name = &r.path[0];
    match r.kind {
        RefKind::Secret if !plan.secrets.iter().any(|(d, _)| &d.name == name) => {
            diags.push(Diagnostic::error(format!("step `{id}` ({field}) uses `secrets.{name}`, which is not declared under `secrets`")).at(&plan.file, loc));
        }
        RefKind::Registered => {
            let Some(j) = plan
                .steps
                .iter()
                .position(|d| d.spec.register.as_deref() == Some(name))
            else {
                diags.push(Diagnostic::error(format!("step `{id}` ({field}) uses `{name}`, which no step registers")).at(&plan.file, loc).with_help(format!("write `vars.{name}` for a variable, or add `register: {name}` to an earlier step")));
                return;
            };
            // A step's undo runs after the step itself, so it may use what the step registers.
            let visible = ancestors[i][j] || (j == i && field == "undo");
            if !visible {
                let other = &plan.steps[j].spec.id;
                diags.push(Diagnostic::error(format!("step `{id}` ({field}) uses `{name}`, registered by step `{other}`, which does not run before it")).at(&plan.file, loc).with_help(format!("add `{other}` to the `after` of `{id}`")));
            } else if plan.steps[j].spec.run_once != s.spec.run_once {
                diags.push(Diagnostic::error(format!("step `{id}` ({field}) uses `{name}`, registered by run_once step `{}` on another host", plan.steps[j].spec.id)).at(&plan.file, loc));
            }
        }
        RefKind::Stage => {
            if let Some((message, help)) = stage_value_problem(plan, r) {
                let d = Diagnostic::error(format!("step `{id}` ({field}) uses `{r}`: {message}"));
                diags.push(d.at(&plan.file, loc).with_help(help));
            }
        }
        _ => {}
    }
}

/// Why `{{stages.STAGE.NAME}}` cannot be used where it stands, if it cannot: the plan has no
/// stages, there is no such stage, it does not run before this one, or no `run_once` step of
/// it registers the name.
fn stage_value_problem(plan: &Plan, r: &template::Reference) -> Option<(String, String)> {
    let (stage, var) = (&r.path[0], &r.path[1]);
    let Some(scope) = &plan.stage else {
        return Some((
            "the plan has no stages".into(),
            "stage values pass from one stage to a later one; use a registered name on the same host".into(),
        ));
    };
    let Some(exports) = scope.stages.get(stage) else {
        let names: Vec<&str> = scope.stages.keys().map(String::as_str).collect();
        let help = match crate::schema::nearest(stage, &names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("stages: {}", names.join(", ")),
        };
        return Some((format!("there is no stage `{stage}`"), help));
    };
    if *stage == scope.name {
        return Some((
            format!("it is a value of stage `{stage}` itself"),
            "a stage's run_once values reach only the stages after it".into(),
        ));
    }
    if !exports.before {
        return Some((
            format!("stage `{stage}` does not run before stage `{}`", scope.name),
            format!("add `{stage}` to the `after` of stage `{}`", scope.name),
        ));
    }
    if !exports.registers.contains_key(var) {
        let help = if exports.registers.is_empty() {
            format!("add `run_once: true` and `register: {var}` to a step of stage `{stage}`")
        } else {
            let names: Vec<&str> = exports.registers.keys().map(String::as_str).collect();
            format!("stage `{stage}` passes on: {}", names.join(", "))
        };
        return Some((
            format!("no run_once step of stage `{stage}` registers `{var}`"),
            help,
        ));
    }
    None
}

/// Parses every health check's probe and checks that it uses only what health checks may.
pub fn parse_checks(plan: &Plan, diags: &mut Diagnostics) -> Vec<Option<Template>> {
    plan.checks
        .iter()
        .map(|c| {
            let what = format!("health check `{}`", c.name);
            let site = |field| Site {
                file: &plan.file,
                what: &what,
                field,
            };
            let (t, tpl, shell) = match &c.probe {
                ProbeDecl::Run(t) => (t, site("run").command(t, diags)?, true),
                ProbeDecl::Http { url, .. } => (url, site("http").url(url, diags)?, false),
                ProbeDecl::Tcp(t) => (t, site("tcp").address(t, diags)?, false),
            };
            for r in tpl.references() {
                let allowed = matches!(r.kind, RefKind::Vars | RefKind::Host) || (shell && r.kind == RefKind::Secret && plan.secrets.iter().any(|(s, _)| s.name == r.path[0]));
                if !allowed {
                    diags.push(Diagnostic::error(format!("{what} uses `{r}`; health checks may use vars., host. and (in `run`) declared secrets")).at(&plan.file, plan.file.locate_reference(t.loc, r.ordinal)));
                }
            }
            Some(tpl)
        })
        .collect()
}
