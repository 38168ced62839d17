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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::artifact::*;
use crate::command::RenderedCommand;
use crate::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::error::PlanError;
use crate::graph;
use crate::inventory::{Inventory, InventoryInput, LoadOptions, pattern};
use crate::model::{Plan, ProbeDecl, StepDecl, WaveDecl};
use crate::plan::read_plan;
use crate::references::{Site, check_reference, parse_checks};
use crate::schema::{Amount, nearest};
use crate::source;
use crate::template::{RefKind, RenderProblem, Scope, Template};
use crate::url::{self, TargetProblem};
use crate::warning::{self, PlanWarning};
use crate::waves;

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
struct Steps<'p> {
    decls: &'p [StepDecl],
    order: Vec<usize>,
    after: Vec<Vec<usize>>,
    run: Vec<Option<Template>>,
    undo: Vec<Option<Template>>,
    skip_if: Vec<Option<Template>>,
}

fn compile(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    limit: Option<&[String]>,
    diags: &mut Diagnostics,
) -> Option<PlanArtifact> {
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
    let hosts = match limit {
        Some(patterns) => pattern::limit_targets(inv, targeted, patterns, diags),
        None => targeted,
    };
    let waves = split_waves(plan, inv, &hosts, diags);
    let mut problems: BTreeMap<(String, &'static str, RenderProblem), (Loc, Vec<String>)> =
        BTreeMap::new();
    let mut note =
        |what: String, field: &'static str, loc: Loc, problem: RenderProblem, host: &str| {
            let entry = problems
                .entry((what, field, problem))
                .or_insert((loc, Vec::new()));
            entry.1.push(host.to_string());
        };
    // An unregistered name was reported by check_reference; render a placeholder, not a repeat.
    let registered_by = |name: &str| {
        let step = plan
            .steps
            .iter()
            .find(|s| s.spec.register.as_deref() == Some(name));
        Some(step.map_or_else(|| "?".to_string(), |s| s.spec.id.clone()))
    };
    // A template without `host.` references and without a `vars.` name that some group or host
    // sets renders the same for every host (the plan's vars and --var are the same for all):
    // render it once, for the first host that needs it, and copy the result.
    let inventory_vars: HashSet<&str> = inv.var_names().collect();
    let shared = |t: &Option<Template>| {
        t.as_ref().is_some_and(|t| {
            t.references().all(|r| match r.kind {
                RefKind::Host => false,
                RefKind::Vars => !inventory_vars.contains(r.path[0].as_str()),
                RefKind::Secret | RefKind::Registered => true,
            })
        })
    };
    let is_shared: Vec<[bool; 3]> = (0..steps.decls.len())
        .map(|i| {
            [
                shared(&steps.run[i]),
                shared(&steps.undo[i]),
                shared(&steps.skip_if[i]),
            ]
        })
        .collect();
    type Rendered = Result<RenderedCommand, RenderProblem>;
    let mut rendered_once: Vec<[Option<Rendered>; 3]> =
        (0..steps.decls.len()).map(|_| [None, None, None]).collect();
    let mut group_vars: HashMap<&[usize], BTreeMap<String, serde_json::Value>> = HashMap::new();
    let mut host_plans = Vec::with_capacity(hosts.len());
    let mut run_once = Vec::new();
    let first_host = waves
        .first()
        .and_then(|w| w.hosts.first())
        .cloned()
        .unwrap_or_default();
    for &h in &hosts {
        let name = &inv.hosts[h].name;
        let connection = inv.connection(h);
        let merge = || {
            let mut vars = inv.host_vars(h, &plan.vars);
            vars.extend(
                cli_vars
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))),
            );
            vars
        };
        // Hosts without vars of their own in the same groups have the same vars: merge once.
        let vars = if inv.host_sets_no_vars(h) {
            group_vars
                .entry(inv.groups_of(h))
                .or_insert_with(merge)
                .clone()
        } else {
            merge()
        };
        let scope = Scope {
            host: name,
            connection: &connection,
            vars: &vars,
        };
        let mut host_steps = Vec::with_capacity(steps.order.len());
        for &i in &steps.order {
            let decl = &steps.decls[i];
            let is_once = decl.spec.run_once;
            if is_once && *name != first_host {
                continue;
            }
            let id = &decl.spec.id;
            let mut render = |t: &Option<Template>, k: usize, field: &'static str, loc: Loc| {
                let t = t.as_ref()?;
                let result = if is_shared[i][k] {
                    rendered_once[i][k]
                        .get_or_insert_with(|| t.render(&scope, &registered_by))
                        .clone()
                } else {
                    t.render(&scope, &registered_by)
                };
                match result {
                    Ok(c) => Some(c),
                    Err(p) => {
                        note(format!("step `{id}`"), field, loc, p, name);
                        None
                    }
                }
            };
            let run = render(&steps.run[i], 0, "run", decl.run.loc).unwrap_or_default();
            let undo = render(
                &steps.undo[i],
                1,
                "undo",
                decl.undo.as_ref().map(|t| t.loc).unwrap_or_default(),
            );
            let skip_if = render(
                &steps.skip_if[i],
                2,
                "skip_if",
                decl.skip_if.as_ref().map(|t| t.loc).unwrap_or_default(),
            );
            let step = HostStep {
                id: id.clone(),
                run,
                undo,
                skip_if,
            };
            if is_once {
                run_once.push(RunOnceStep {
                    host: name.clone(),
                    step,
                });
            } else {
                host_steps.push(step);
            }
        }
        let (health, unrendered) = render_health(plan, &checks, &scope);
        for u in unrendered {
            note(u.what, u.field, u.loc, u.problem, name);
        }
        host_plans.push(HostPlan {
            name: name.clone(),
            connection,
            vars,
            steps: host_steps,
            health,
        });
    }
    for ((what, field, problem), (loc, hosts)) in problems {
        let on = match hosts.len() {
            1 => format!("host {}", hosts[0]),
            2 | 3 => format!("hosts {}", hosts.join(", ")),
            n => format!("hosts {} and {} more", hosts[..3].join(", "), n - 3),
        };
        let (message, help) = match problem {
            RenderProblem::Undefined(var) => {
                let known = known_vars(plan, inv, cli_vars);
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                let help = match nearest(&var, &names) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => "define it in the plan's vars, a group's or host's vars, or with --var"
                        .to_string(),
                };
                (
                    format!("undefined variable `{var}` in {what} ({field}) on {on}"),
                    help,
                )
            }
            RenderProblem::NotScalar(var) => (
                format!(
                    "`{var}` is a list or a map and cannot be inserted in {what} ({field}) on {on}"
                ),
                "insert one of its scalar members, e.g. `vars.NAME.KEY`".to_string(),
            ),
            RenderProblem::Target(problem) => (
                format!("{what} ({field}) on {on}: {problem}"),
                problem.help().unwrap_or_default().to_string(),
            ),
        };
        let mut d = Diagnostic::error(message).at(&plan.file, loc);
        if !help.is_empty() {
            d = d.with_help(help);
        }
        diags.push(d);
    }
    let templates = || {
        steps
            .run
            .iter()
            .chain(&steps.undo)
            .chain(&steps.skip_if)
            .chain(&checks)
            .flatten()
    };
    warning::source::unused_secrets(plan, templates(), diags);
    warning::source::unknown_cli_vars(plan, inv, cli_vars, templates(), diags);
    let a_host_becomes = host_plans.iter().any(|h| h.connection.become_all.is_some());
    check_become_password(plan, a_host_becomes, diags);
    if diags.has_errors() {
        return None;
    }
    let mut specs: Vec<StepSpec> = Vec::with_capacity(steps.order.len());
    for &i in &steps.order {
        let mut spec = steps.decls[i].spec.clone();
        spec.after = steps.after[i]
            .iter()
            .map(|&d| steps.decls[d].spec.id.clone())
            .collect();
        specs.push(spec);
    }
    Some(PlanArtifact {
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
        steps: specs,
        run_once,
        hosts: host_plans,
        waves,
        failure: plan.failure.clone(),
        health: plan.health.clone(),
        host_index: HostIndex::default(),
    })
}

/// A template that could not be rendered for a host: what it belongs to, its key, where.
struct Unrendered {
    what: String,
    field: &'static str,
    loc: Loc,
    problem: RenderProblem,
}

/// Renders the health checks for one host, and checks each URL and address it gets.
fn render_health(
    plan: &Plan,
    checks: &[Option<Template>],
    scope: &Scope,
) -> (Vec<HealthCheck>, Vec<Unrendered>) {
    let mut health = Vec::with_capacity(checks.len());
    let mut unrendered = Vec::new();
    for (check, t) in plan.checks.iter().zip(checks) {
        let Some(t) = t else { continue };
        let target = |checked: fn(&str) -> Result<(), TargetProblem>| {
            let text = t.render_plain(scope)?;
            checked(&text).map_err(RenderProblem::Target)?;
            Ok(text)
        };
        let probe = match &check.probe {
            ProbeDecl::Run(d) => t
                .render(scope, &|_| Some("?".to_string()))
                .map(HealthProbe::Run)
                .map_err(|p| (p, "run", d.loc)),
            ProbeDecl::Http {
                url,
                expect_status,
                options,
            } => target(url::check_url)
                .map(|url| HealthProbe::Http {
                    url,
                    expect_status: *expect_status,
                    options: options.clone(),
                })
                .map_err(|p| (p, "http", url.loc)),
            ProbeDecl::Tcp(d) => target(url::check_tcp)
                .map(|address| HealthProbe::Tcp { address })
                .map_err(|p| (p, "tcp", d.loc)),
        };
        match probe {
            Ok(probe) => health.push(HealthCheck {
                name: check.name.clone(),
                probe,
            }),
            Err((problem, field, loc)) => unrendered.push(Unrendered {
                what: format!("health check `{}`", check.name),
                field,
                loc,
                problem,
            }),
        }
    }
    (health, unrendered)
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

fn split_waves(
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
fn check_become_password(plan: &Plan, a_host_becomes: bool, diags: &mut Diagnostics) {
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
    } else if !a_host_becomes && !plan.steps.iter().any(|s| s.spec.become_root) {
        let warning = PlanWarning::BecomePasswordUnused {
            secret: name.clone(),
        };
        diags.push(Diagnostic::warning(warning).at(&plan.file, *loc));
    }
}

/// Every `vars.NAME` defined anywhere, for "did you mean" suggestions.
fn known_vars(plan: &Plan, inv: &Inventory, cli_vars: &[(String, String)]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = plan.vars.keys().cloned().collect();
    names.extend(inv.var_names().map(str::to_string));
    names.extend(cli_vars.iter().map(|(k, _)| k.clone()));
    names.into_iter().map(|n| format!("vars.{n}")).collect()
}
