//! Compilation: a checked [`Plan`] and [`Inventory`] become a sealed [`PlanArtifact`].
//!
//! 1. Read both files (all problems of both are reported).
//! 2. Resolve `after` (default: the previous step of the same kind), reject cycles, order steps.
//! 3. Parse every template once and check what it refers to: declared secrets, and registered
//!    names that an ancestor step registers.
//! 4. Resolve targets to hosts in inventory order and split them into waves.
//! 5. Render every template for every host; an undefined variable is reported once per
//!    (step, variable) with the hosts it affects.
//! 6. Assemble and seal the artifact.
//!
//! A plan with `stages` goes through steps 2 to 5 once per stage ([`crate::stages`]).

use crate::artifact::*;
use crate::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::error::PlanError;
use crate::graph;
use crate::inventory::{Inventory, InventoryInput, LoadOptions, pattern};
use crate::model::{Plan, StepDecl, WaveDecl};
use crate::plan::read_plan;
use crate::references::{Site, check_reference, parse_checks};
use crate::schema::{Amount, nearest};
use crate::source;
use crate::template::Template;
use crate::warning::{self, PlanWarning};
use crate::{render, waves};

/// A compiled plan and the warnings found on the way.
#[derive(Debug)]
pub struct Compiled {
    pub artifact: PlanArtifact,
    pub warnings: Vec<Diagnostic>,
}

/// What is compiled besides the plan and the inventory.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// `--var k=v`: override every other variable.
    pub vars: Vec<(String, String)>,
    /// `--limit PATTERN`: keep only the targeted hosts it matches (see
    /// [`crate::inventory::pattern`]); `@FILE` is read from the current directory.
    pub limit: Option<String>,
    pub load: LoadOptions,
}

/// Compiles the plan and inventory files. `cli_vars` (`--var k=v`) override every other var.
pub fn compile_files(
    plan_path: &str,
    inventory: &InventoryInput,
    options: &CompileOptions,
) -> Result<Compiled, PlanError> {
    let mut diags = Diagnostics::default();
    let plan = source::load(plan_path, &mut diags);
    let inventory = crate::inventory::load(inventory, &options.load, &mut diags);
    finish(plan, inventory, options, diags)
}

/// Compiles in-memory files (named as given) — the same as [`compile_files`] without the disk.
/// The inventory's format is told from its content.
pub fn compile_sources(
    plan: (&str, &str),
    inventory: (&str, &str),
    cli_vars: &[(String, String)],
) -> Result<Compiled, PlanError> {
    let options = CompileOptions {
        vars: cli_vars.to_vec(),
        ..CompileOptions::default()
    };
    compile_sources_with(plan, inventory, &options)
}

/// [`compile_sources`] with every option (`--limit` among them).
pub fn compile_sources_with(
    plan: (&str, &str),
    inventory: (&str, &str),
    options: &CompileOptions,
) -> Result<Compiled, PlanError> {
    let mut diags = Diagnostics::default();
    let plan = source::parse_bytes(plan.0, plan.1.as_bytes().to_vec(), &mut diags);
    let inventory = crate::inventory::source::from_bytes(
        inventory.0,
        inventory.1.as_bytes().to_vec(),
        None,
        &mut diags,
    );
    finish(plan, inventory, options, diags)
}

type Loaded = Option<(
    std::sync::Arc<crate::diagnostic::SourceFile>,
    crate::node::Node,
)>;

fn finish(
    plan: Loaded,
    inventory: Option<Inventory>,
    options: &CompileOptions,
    mut diags: Diagnostics,
) -> Result<Compiled, PlanError> {
    let cli_vars = &options.vars;
    for (key, value) in cli_vars {
        if key.contains('\0') || value.contains('\0') {
            diags.push(Diagnostic::error(format!(
                "--var {}: contains a NUL byte, which no command can carry",
                key.escape_debug()
            )));
        }
    }
    let limit = options.limit.as_deref().and_then(|l| {
        pattern::parse(l, std::path::Path::new("."))
            .map_err(|e| diags.push(Diagnostic::error(e.to_string())))
            .ok()
    });
    let plan = plan.and_then(|(f, n)| read_plan(&f, &n, &mut diags));
    let artifact = match (plan, inventory) {
        // Go on after schema errors: the later phases find problems of their own, and the user
        // should see all of them in one run.
        (Some(p), Some(i)) if options.limit.is_none() || limit.is_some() => {
            compile(&p, &i, cli_vars, limit.as_deref(), &mut diags)
        }
        _ => None,
    };
    match artifact {
        Some(mut artifact) if !diags.has_errors() => {
            artifact.seal()?;
            Ok(Compiled {
                artifact,
                warnings: diags.items,
            })
        }
        _ => Err(PlanError::Invalid(diags.items)),
    }
}

/// What the step analysis produced.
pub(crate) struct Steps<'p> {
    pub decls: &'p [StepDecl],
    pub order: Vec<usize>,
    pub after: Vec<Vec<usize>>,
    pub run: Vec<Option<Template>>,
    pub undo: Vec<Option<Template>>,
    pub skip_if: Vec<Option<Template>>,
}

/// One plan compiled without its plan-wide checks: the whole of a plan without stages, or one
/// stage of a plan with stages ([`crate::stages`]).
pub(crate) struct Unit {
    /// Step specs in execution order, `after` resolved.
    pub specs: Vec<StepSpec>,
    pub run_once: Vec<RunOnceStep>,
    /// Inventory positions of the targeted hosts, in plan order, and their rendered plans.
    pub positions: Vec<usize>,
    pub hosts: Vec<HostPlan>,
    pub waves: Vec<WavePlan>,
    /// Every parsed command and check, for the plan-wide warnings.
    pub templates: Vec<Template>,
}

fn compile(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    limit: Option<&[String]>,
    diags: &mut Diagnostics,
) -> Option<PlanArtifact> {
    // Backups are the plan's, whatever its stages: parsed once, rendered for every host.
    let backups = crate::backup::parse(plan, diags);
    let mut artifact = if !plan.stages.is_empty() {
        crate::stages::compile(plan, inv, cli_vars, limit, &backups, diags)?
    } else {
        let unit = compile_unit(plan, inv, cli_vars, limit, diags)?;
        plan_wide_checks(plan, inv, cli_vars, &[&unit], &backups, diags);
        if diags.has_errors() {
            return None;
        }
        let mut artifact = assemble(plan, inv, limit);
        artifact.steps = unit.specs;
        artifact.run_once = unit.run_once;
        artifact.hosts = unit.hosts;
        artifact.waves = unit.waves;
        artifact
    };
    crate::backup::compile(plan, inv, cli_vars, &backups, &mut artifact, diags);
    Some(artifact)
}

/// Steps, targets, waves and rendering of one plan (or stage).
pub(crate) fn compile_unit(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    limit: Option<&[String]>,
    diags: &mut Diagnostics,
) -> Option<Unit> {
    let steps = analyse_steps(plan, diags)?;
    let checks = parse_checks(plan, diags);
    let targeted = inv.resolve_targets(&plan.targets, &plan.file, diags);
    if targeted.is_empty() && !diags.has_errors() {
        diags.push(
            Diagnostic::error("`targets` select no host of the inventory").at(
                &plan.file,
                plan.targets.first().map(|t| t.1).unwrap_or_default(),
            ),
        );
    }
    let positions = match limit {
        Some(patterns) => pattern::limit_targets(inv, targeted, patterns, diags),
        None => targeted,
    };
    let waves = split_waves(plan, inv, &positions, diags);
    let first_host = waves
        .first()
        .and_then(|w| w.hosts.first())
        .cloned()
        .unwrap_or_default();
    let delegated = delegated_hosts(&steps, inv, &positions, &plan.file, diags);
    let rendered = render::render_hosts(
        plan,
        inv,
        cli_vars,
        &steps,
        &checks,
        render::Targets {
            hosts: &positions,
            first_host: &first_host,
            delegated: &delegated,
        },
        diags,
    );
    let mut specs: Vec<StepSpec> = Vec::with_capacity(steps.order.len());
    for &i in &steps.order {
        let mut spec = steps.decls[i].spec.clone();
        spec.after = steps.after[i]
            .iter()
            .map(|&d| steps.decls[d].spec.id.clone())
            .collect();
        specs.push(spec);
    }
    let templates = steps
        .run
        .into_iter()
        .chain(steps.undo)
        .chain(steps.skip_if)
        .chain(checks)
        .flatten()
        .collect();
    Some(Unit {
        specs,
        run_once: rendered.run_once,
        positions,
        hosts: rendered.hosts,
        waves,
        templates,
    })
}

/// The hosts `delegate:` names that are not among `targeted` (inventory positions, each once);
/// a name the inventory does not have is a located error with the nearest host name.
fn delegated_hosts(
    steps: &Steps,
    inv: &Inventory,
    targeted: &[usize],
    file: &std::sync::Arc<crate::diagnostic::SourceFile>,
    diags: &mut Diagnostics,
) -> Vec<usize> {
    let mut out = Vec::new();
    for decl in steps.decls {
        let Some((host, loc)) = &decl.delegate else {
            continue;
        };
        match inv.host_named(host) {
            Some(h) if !targeted.contains(&h) && !out.contains(&h) => out.push(h),
            Some(_) => {}
            None => {
                let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
                let mut d = Diagnostic::error(format!(
                    "step `{}` delegates to `{host}`, which is not a host of the inventory {}",
                    decl.spec.id, inv.file.path
                ))
                .at(file, *loc);
                if let Some(s) = nearest(host, &names) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                diags.push(d);
            }
        }
    }
    out
}

/// The checks that look at the whole plan at once: unused secrets, `--var`s nothing uses, the
/// become password.
pub(crate) fn plan_wide_checks(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    units: &[&Unit],
    backups: &crate::backup::Parsed,
    diags: &mut Diagnostics,
) {
    let templates = || {
        units
            .iter()
            .flat_map(|u| u.templates.iter())
            .chain(backups.templates())
    };
    warning::source::unused_secrets(plan, templates(), diags);
    warning::source::unknown_cli_vars(plan, inv, cli_vars, templates(), diags);
    let becomes = units.iter().any(|u| {
        u.hosts.iter().any(|h| h.connection.become_all.is_some())
            || u.specs.iter().any(|s| s.become_root)
    });
    check_become_password(plan, becomes, diags);
}

/// The artifact's plan-wide fields; steps, hosts and waves are the caller's to fill in.
pub(crate) fn assemble(plan: &Plan, inv: &Inventory, limit: Option<&[String]>) -> PlanArtifact {
    PlanArtifact {
        format: ARTIFACT_FORMAT,
        plan_hash: String::new(),
        name: plan.name.clone(),
        description: plan.description.clone(),
        ticket: plan.ticket.clone(),
        planned_for: Some(PlannedFor {
            inventory: inv.file.path.clone(),
            environment: inv.environment.clone(),
            metrics_file: inv.metrics_file.clone(),
        }),
        window: plan.window.clone(),
        secrets: plan.secrets.iter().map(|(s, _)| s.clone()).collect(),
        become_password: plan.become_password.as_ref().map(|(n, _)| n.clone()),
        limit: limit.map(|patterns| patterns.join(",")),
        policy: inv.policy.clone(),
        notify: plan.notify.clone(),
        promotion: plan.promotion.clone(),
        change_hash: plan
            .promotion
            .as_ref()
            .map(|_| crate::artifact::change_hash(&plan.file.text)),
        environment: plan.promotion.as_ref().and(inv.environment.clone()),
        backup: Vec::new(),
        host_lease: plan.host_lease.or(inv.host_lease).unwrap_or(false),
        steps: Vec::new(),
        run_once: Vec::new(),
        hosts: Vec::new(),
        waves: Vec::new(),
        failure: plan.failure.clone(),
        health: plan.health.clone(),
        stages: Vec::new(),
        stage_concurrency: None,
        host_index: HostIndex::default(),
    }
}

fn analyse_steps<'p>(plan: &'p Plan, diags: &mut Diagnostics) -> Option<Steps<'p>> {
    let decls = &plan.steps[..];
    let file = &plan.file;
    let ids: Vec<&str> = decls.iter().map(|s| s.spec.id.as_str()).collect();
    let mut after = vec![Vec::new(); decls.len()];
    for (i, s) in decls.iter().enumerate() {
        let once = s.spec.run_once;
        match &s.after {
            None => {
                if let Some(prev) = (0..i).rev().find(|&j| decls[j].spec.run_once == once) {
                    after[i].push(prev);
                }
            }
            Some(names) => {
                for (name, loc) in names {
                    let Some(j) = ids.iter().position(|id| id == name) else {
                        let mut d = Diagnostic::error(format!(
                            "step `{}` waits for `{name}`, which is not a step",
                            s.spec.id
                        ))
                        .at(file, *loc);
                        if let Some(n) = nearest(name, &ids) {
                            d = d.with_help(format!("did you mean `{n}`?"));
                        }
                        diags.push(d);
                        continue;
                    };
                    match (once, decls[j].spec.run_once) {
                        (true, false) => diags.push(Diagnostic::error(format!("run_once step `{}` waits for `{name}`, which is not run_once", s.spec.id)).at(file, *loc).with_help("run_once steps run before every host step, so they may only wait for other run_once steps")),
                        (false, true) => diags.push(Diagnostic::error(format!("step `{}` waits for run_once step `{name}`", s.spec.id)).at(file, *loc).with_help("run_once steps always finish before any host step starts; remove it from `after`")),
                        _ if !after[i].contains(&j) => after[i].push(j),
                        _ => {}
                    }
                }
            }
        }
    }
    // Edges from a step to the steps waiting for it: a cycle then reads in execution order.
    let mut dependents = vec![Vec::new(); decls.len()];
    for (i, deps) in after.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    let (order, ancestors) = if let Some(order) = graph::stable_order(&after) {
        let ancestors = graph::ancestors(&after, &order);
        (order, ancestors)
    } else {
        if let Some(cycle) = graph::find_cycle(&dependents) {
            let names: Vec<&str> = cycle.iter().map(|&i| ids[i]).collect();
            diags.push(
                Diagnostic::error(format!(
                    "steps wait for each other in a cycle: {}",
                    names.join(" -> ")
                ))
                .at(file, decls[cycle[0]].loc)
                .with_help("remove one of these `after` entries"),
            );
        }
        // Carry on in declaration order to find the other problems; with the order unknown,
        // every step counts as an ancestor so no visibility error is invented.
        (
            (0..decls.len()).collect(),
            vec![vec![true; decls.len()]; decls.len()],
        )
    };
    let mut parsed =
        |t: Option<&crate::model::Template>, i: usize, field: &str| -> Option<Template> {
            let t = t?;
            let what = format!("step `{}`", decls[i].spec.id);
            let site = Site {
                file,
                what: &what,
                field,
            };
            let tpl = site.command(t, diags)?;
            for r in tpl.references() {
                check_reference(plan, r, i, field, &ancestors, t.loc, diags);
            }
            Some(tpl)
        };
    let run = (0..decls.len())
        .map(|i| parsed(Some(&decls[i].run), i, "run"))
        .collect();
    let undo = (0..decls.len())
        .map(|i| parsed(decls[i].undo.as_ref(), i, "undo"))
        .collect();
    let skip_if = (0..decls.len())
        .map(|i| parsed(decls[i].skip_if.as_ref(), i, "skip_if"))
        .collect();
    Some(Steps {
        decls,
        order,
        after,
        run,
        undo,
        skip_if,
    })
}

pub(crate) fn split_waves(
    plan: &Plan,
    inv: &Inventory,
    hosts: &[usize],
    diags: &mut Diagnostics,
) -> Vec<WavePlan> {
    let default_wave = [WaveDecl {
        name: "all".into(),
        size: Amount::Percent(100),
        pause_ms: None,
        approval: false,
        concurrency: None,
        max_failed: None,
        loc: Loc::default(),
    }];
    let declared: &[WaveDecl] = if plan.waves.is_empty() {
        &default_wave
    } else {
        &plan.waves
    };
    let sizes: Vec<Amount> = declared.iter().map(|w| w.size).collect();
    let counts = waves::split(hosts.len(), &sizes);
    let mut out = Vec::new();
    let mut next = 0;
    let several = declared.len() > 1;
    for (i, (w, count)) in declared.iter().zip(counts).enumerate() {
        if count == 0 {
            if !hosts.is_empty() {
                let warning = PlanWarning::EmptyWave {
                    wave: w.name.clone(),
                    targeted: hosts.len(),
                };
                diags.push(Diagnostic::warning(warning).at(&plan.file, w.loc));
            }
            continue;
        }
        let members: Vec<String> = hosts[next..next + count]
            .iter()
            .map(|&h| inv.hosts[h].name.clone())
            .collect();
        next += count;
        let budget = wave_budget(w, i == 0 && several, plan.failure.max_failed, count);
        out.push(WavePlan {
            name: w.name.clone(),
            concurrency: w
                .concurrency
                .or(plan.concurrency)
                .unwrap_or(count)
                .min(count),
            max_failed: waves::max_failed(budget.unwrap_or(plan.failure.max_failed), count),
            budget,
            pause_ms: w.pause_ms,
            approval: w.approval,
            hosts: members,
            stage: None,
        });
    }
    out
}

/// The budget of wave `w` of `count` hosts when it is not the plan's `plan_budget`: the wave's own
/// `max_failed`, else for the canary 0 (unless the plan's budget gives 0 already).
fn wave_budget(
    w: &WaveDecl,
    canary: bool,
    plan_budget: FailureBudget,
    count: usize,
) -> Option<FailureBudget> {
    match w.max_failed {
        Some(own) => Some(own),
        None if canary && waves::max_failed(plan_budget, count) > 0 => {
            Some(FailureBudget::Count(0))
        }
        None => None,
    }
}

/// `become_password` must name a declared secret: the planner never sees the value, so the name
/// is all it can check. A password no step can use is worth a warning (it is never sent).
fn check_become_password(plan: &Plan, something_becomes: bool, diags: &mut Diagnostics) {
    let Some((name, loc)) = &plan.become_password else {
        return;
    };
    if !plan.secrets.iter().any(|(s, _)| &s.name == name) {
        let declared: Vec<&str> = plan.secrets.iter().map(|(s, _)| s.name.as_str()).collect();
        let help = if declared.is_empty() {
            format!(
                "no secret is declared; add it under `secrets`, e.g. `{name}: {{ env: SUDO_PASSWORD }}`"
            )
        } else {
            format!("declared secrets: {}", declared.join(", "))
        };
        diags.push(
            Diagnostic::error(format!(
                "become_password names `{name}`, which is not declared under `secrets`"
            ))
            .at(&plan.file, *loc)
            .with_help(help),
        );
    } else if !something_becomes {
        let warning = PlanWarning::BecomePasswordUnused {
            secret: name.clone(),
        };
        diags.push(Diagnostic::warning(warning).at(&plan.file, *loc));
    }
}
