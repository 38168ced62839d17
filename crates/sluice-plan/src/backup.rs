//! The plan's `backup:` gate: commands that back a host up, and prove the backup usable, before
//! the host's first change step (docs/plan-format.md, "Backups").
//!
//! `backup: [ { id, run, verify, become, become_user, timeout } ]` is read here into
//! [`BackupDecl`]s; [`compile`] parses each template once (shell-quoted like a step's), checks
//! what it refers to (variables, `host.`, declared secrets; no registered value exists yet when
//! a backup runs) and renders it for every targeted host into [`HostPlan::backup`], with the
//! plan-wide settings in [`PlanArtifact::backup`]. Both are left out of the artifact when the
//! plan has no backups, so such plans keep their hash.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::{HostPlan, PlanArtifact};
use crate::command::RenderedCommand;
use crate::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::model::{Plan, Template};
use crate::node::Node;
use crate::references::Site;
use crate::schema::Reader;
use crate::template::{self, RefKind, Scope};

const BACKUP_KEYS: &[&str] = &["id", "run", "verify", "become", "become_user", "timeout"];

/// A backup's settings, the same on every host (its commands are in [`HostBackup`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    pub id: String,
    #[serde(rename = "become")]
    pub become_root: bool,
    pub become_user: Option<String>,
    /// Bounds `run` and `verify` each.
    pub timeout_ms: Option<u64>,
}

/// A backup's commands rendered for one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBackup {
    pub id: String,
    pub run: RenderedCommand,
    pub verify: RenderedCommand,
}

/// One entry of `backup:`, read.
#[derive(Clone, Debug)]
pub struct BackupDecl {
    pub spec: BackupSpec,
    pub run: Template,
    pub verify: Template,
}

/// Reads `backup:`: a list of entries, each with a unique `id`, `run` and `verify`.
pub(crate) fn read_backups(r: &mut Reader, node: &Node) -> Vec<BackupDecl> {
    let mut out: Vec<BackupDecl> = Vec::new();
    for (i, item) in r.as_seq(node, "backup").iter().enumerate() {
        // Named by its id in messages when it has one, even before its keys are checked.
        let fallback = match &item.value {
            crate::node::Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some("id"))
                .and_then(|(_, v)| v.scalar_text())
                .map_or_else(
                    || format!("backup {}", i + 1),
                    |id| format!("backup `{id}`"),
                ),
            _ => format!("backup {}", i + 1),
        };
        let Some(f) = r.fields(item, BACKUP_KEYS, &fallback) else {
            continue;
        };
        let Some((id, id_loc)) = f
            .get("id")
            .and_then(|n| Some((r.as_str(n, &fallback)?, n.loc)))
        else {
            r.error_help(
                item.loc,
                format!("{fallback} has no `id`"),
                "name it, e.g. `id: etc-tarball`",
            );
            continue;
        };
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            r.error_help(
                id_loc,
                format!("backup id `{id}` is not a valid name"),
                "use letters, digits, `-` and `_`",
            );
        }
        if out.iter().any(|b| b.spec.id == id) {
            r.error(id_loc, format!("two backups have the id `{id}`"));
            continue;
        }
        let context = format!("backup `{id}`");
        let run = crate::plan::template(r, &f, "run", &context);
        let verify = crate::plan::template(r, &f, "verify", &context);
        if run.is_none() && f.get("run").is_none() {
            r.error_help(
                item.loc,
                format!("{context} has no `run`"),
                "write the command that makes the backup, e.g. `run: tar -czf /var/backups/etc.tgz /etc`",
            );
        }
        if verify.is_none() && f.get("verify").is_none() {
            r.error_help(
                item.loc,
                format!("{context} has no `verify`"),
                "a backup nobody checked is not a gate: write a command that proves it usable, e.g. `verify: tar -tzf /var/backups/etc.tgz`",
            );
        }
        let become_user = f.get("become_user").and_then(|n| r.as_str(n, &context));
        let become_root = f
            .get("become")
            .and_then(|n| r.as_bool(n, &format!("{context}: become")))
            .unwrap_or(false)
            || become_user.is_some();
        let timeout_ms = f
            .get("timeout")
            .and_then(|n| crate::plan::nonzero_duration(r, n, &format!("{context}: timeout")));
        if let (Some(run), Some(verify)) = (run, verify) {
            out.push(BackupDecl {
                spec: BackupSpec {
                    id,
                    become_root,
                    become_user,
                    timeout_ms,
                },
                run,
                verify,
            });
        }
    }
    out
}

/// The backups' templates, parsed and checked: `(run, verify)` per backup, `None` where a
/// template could not be parsed (reported).
pub(crate) struct Parsed {
    templates: Vec<[Option<template::Template>; 2]>,
}

impl Parsed {
    /// Every parsed template, for the plan-wide checks (unused secrets, unknown `--var`s).
    pub fn templates(&self) -> impl Iterator<Item = &template::Template> {
        self.templates.iter().flatten().flatten()
    }
}

/// Parses every backup's `run` and `verify` as shell commands and checks their references.
pub(crate) fn parse(plan: &Plan, diags: &mut Diagnostics) -> Parsed {
    let templates = plan
        .backups
        .iter()
        .map(|b| {
            let what = format!("backup `{}`", b.spec.id);
            let mut one = |t: &Template, field: &str| {
                let site = Site {
                    file: &plan.file,
                    what: &what,
                    field,
                };
                let tpl = site.command(t, diags)?;
                for r in tpl.references() {
                    let declared_secret = r.kind == RefKind::Secret
                        && plan.secrets.iter().any(|(s, _)| s.name == r.path[0]);
                    if !(matches!(r.kind, RefKind::Vars | RefKind::Host) || declared_secret) {
                        let loc = plan.file.locate_reference(t.loc, r.ordinal);
                        diags.push(
                            Diagnostic::error(format!(
                                "{what} ({field}) uses `{r}`; backups may use vars., host. and declared secrets"
                            ))
                            .at(&plan.file, loc)
                            .with_help("a backup runs before the host's steps, so no step has registered a value yet"),
                        );
                    }
                }
                Some(tpl)
            };
            [one(&b.run, "run"), one(&b.verify, "verify")]
        })
        .collect();
    Parsed { templates }
}

/// Renders every backup for every host of `artifact` and fills in its backup fields.
pub(crate) fn compile(
    plan: &Plan,
    inv: &crate::inventory::Inventory,
    cli_vars: &[(String, String)],
    parsed: &Parsed,
    artifact: &mut PlanArtifact,
    diags: &mut Diagnostics,
) {
    if plan.backups.is_empty() {
        return;
    }
    artifact.backup = plan.backups.iter().map(|b| b.spec.clone()).collect();
    // Reported once per (backup, field, problem), naming the hosts.
    let mut problems: crate::render::Problems = BTreeMap::new();
    for host in &mut artifact.hosts {
        host.backup = render_host(plan, parsed, host, &mut problems);
    }
    crate::render::report(plan, inv, cli_vars, problems, diags);
}

fn render_host(
    plan: &Plan,
    parsed: &Parsed,
    host: &HostPlan,
    problems: &mut crate::render::Problems,
) -> Vec<HostBackup> {
    let scope = Scope {
        host: &host.name,
        connection: &host.connection,
        vars: &host.vars,
    };
    let no_registered = |_: &str| Some("?".to_string());
    let mut out = Vec::with_capacity(plan.backups.len());
    for (decl, [run, verify]) in plan.backups.iter().zip(&parsed.templates) {
        let mut render = |t: &Option<template::Template>, field: &'static str, loc: Loc| match t
            .as_ref()?
            .render(&scope, &no_registered)
        {
            Ok(c) => Some(c),
            Err(problem) => {
                let what = format!("backup `{}`", decl.spec.id);
                problems
                    .entry((what, field, problem))
                    .or_insert((loc, Vec::new()))
                    .1
                    .push(host.name.clone());
                None
            }
        };
        let run = render(run, "run", decl.run.loc);
        let verify = render(verify, "verify", decl.verify.loc);
        if let (Some(run), Some(verify)) = (run, verify) {
            out.push(HostBackup {
                id: decl.spec.id.clone(),
                run,
                verify,
            });
        }
    }
    out
}
