//! Plans with stages: groups of targets that run in order, each with its own steps and waves.
//!
//! A plan without `stages` is one implicit stage: the artifact's top-level steps, waves and
//! checks. A plan with `stages` is compiled here:
//!
//! 1. The stages' `after` (default: the previous stage) are resolved; an unknown name and a
//!    cycle (`a -> b -> a`) are located errors. The stages are ordered topologically, keeping
//!    declaration order wherever `after` allows.
//! 2. Each stage is compiled as a plan of its own ([`crate::compile::compile_unit`]): its
//!    targets, its steps (or the plan's), waves, concurrency, health and failure (or the
//!    plan's), with a [`StageScope`] that resolves `{{stages.NAME.VAR}}`.
//! 3. Its steps, waves and health checks are renamed `STAGE/NAME` and tagged with the stage, so
//!    that every name is unique in the artifact (the executor, the audit trail, resume and
//!    approvals find a step or a wave by name), and the stages are merged into one artifact: the
//!    hosts of every stage once, in inventory order, with the steps of each stage they are in.
//!
//! [`view`] turns a stage of an artifact back into a plan of its own, which is what the
//! executor runs and the review shows per stage.

pub mod dot;
pub(crate) mod read;
pub mod view;

use std::collections::BTreeMap;

use crate::artifact::{HostPlan, HostStep, PlanArtifact, StagePlan};
use crate::command::Segment;
use crate::compile::{Unit, assemble, compile_unit, plan_wide_checks};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::graph;
use crate::inventory::Inventory;
use crate::model::{Plan, StageExports, StageScope, StepDecl};
use crate::schema::nearest;

/// The stage graph: what each stage waits for, an execution order, and every stage's
/// ancestors.
pub(crate) struct StageGraph {
    pub after: Vec<Vec<usize>>,
    pub order: Vec<usize>,
    pub ancestors: Vec<Vec<bool>>,
}

/// Compiles a plan with stages.
pub(crate) fn compile(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    limit: Option<&[String]>,
    backups: &crate::backup::Parsed,
    diags: &mut Diagnostics,
) -> Option<PlanArtifact> {
    let graph = stage_graph(plan, diags);
    let exports = exports(plan);
    let mut units: Vec<(usize, Unit)> = Vec::new();
    for &i in &graph.order {
        let stage = &plan.stages[i];
        if stage.steps.is_none() && plan.steps.is_empty() {
            diags.push(
                Diagnostic::error(format!("stage `{}` has no `steps`", stage.name))
                    .at(&plan.file, stage.loc)
                    .with_help("give the stage its own `steps`, or declare top-level `steps` for every stage that has none"),
            );
            continue;
        }
        let scope = StageScope {
            name: stage.name.clone(),
            stages: plan
                .stages
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let registers = exports[j].clone();
                    let before = graph.ancestors[i][j];
                    (s.name.clone(), StageExports { before, registers })
                })
                .collect(),
        };
        // Several stages may share the plan's top-level steps: a problem in them is one problem.
        let mut found = Diagnostics::default();
        let unit = compile_unit(
            &stage_plan(plan, i, scope),
            inv,
            cli_vars,
            limit,
            &mut found,
        );
        for d in found.items {
            let repeated = diags
                .items
                .iter()
                .any(|e| e.message == d.message && e.loc == d.loc && e.severity == d.severity);
            if !repeated {
                diags.push(d);
            }
        }
        if let Some(mut unit) = unit {
            qualify(&mut unit, &stage.name);
            units.push((i, unit));
        }
    }
    let all: Vec<&Unit> = units.iter().map(|(_, u)| u).collect();
    plan_wide_checks(plan, inv, cli_vars, &all, backups, diags);
    if diags.has_errors() {
        return None;
    }
    let mut artifact = assemble(plan, inv, limit);
    let mut hosts: BTreeMap<usize, HostPlan> = BTreeMap::new();
    for (i, unit) in units {
        let stage = &plan.stages[i];
        artifact.stages.push(StagePlan {
            name: stage.name.clone(),
            after: graph.after[i]
                .iter()
                .map(|&j| plan.stages[j].name.clone())
                .collect(),
            targets: stage.targets.iter().map(|(t, _)| t.clone()).collect(),
            hosts: unit.hosts.iter().map(|h| h.name.clone()).collect(),
            failure: stage.failure.clone(),
            health: stage
                .health
                .as_ref()
                .map_or(plan.health.clone(), |h| h.0.clone()),
        });
        artifact.steps.extend(unit.specs);
        artifact.run_once.extend(unit.run_once);
        artifact.waves.extend(unit.waves);
        for (position, host) in unit.positions.into_iter().zip(unit.hosts) {
            match hosts.get_mut(&position) {
                Some(merged) => {
                    merged.steps.extend(host.steps);
                    merged.health.extend(host.health);
                }
                None => {
                    hosts.insert(position, host);
                }
            }
        }
    }
    artifact.hosts = hosts.into_values().collect();
    artifact.stage_concurrency = Some(plan.stage_concurrency.unwrap_or(plan.stages.len()));
    Some(artifact)
}

/// Resolves `after` between stages and orders them. With an error the stages keep declaration
/// order and every stage counts as an ancestor of every other, so no visibility problem is
/// invented on top of it.
pub(crate) fn stage_graph(plan: &Plan, diags: &mut Diagnostics) -> StageGraph {
    let stages = &plan.stages;
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    let mut unknown = false;
    for (i, s) in stages.iter().enumerate() {
        let Some(list) = &s.after else {
            if i > 0 {
                after[i].push(i - 1);
            }
            continue;
        };
        for (name, loc) in list {
            match names.iter().position(|n| n == name) {
                Some(j) if !after[i].contains(&j) => after[i].push(j),
                Some(_) => {}
                None => {
                    unknown = true;
                    let mut d = Diagnostic::error(format!(
                        "stage `{}` waits for `{name}`, which is not a stage",
                        s.name
                    ))
                    .at(&plan.file, *loc);
                    d = d.with_help(match nearest(name, &names) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => format!("stages: {}", names.join(", ")),
                    });
                    diags.push(d);
                }
            }
        }
    }
    if let Some(order) = graph::stable_order(&after).filter(|_| !unknown) {
        let ancestors = graph::ancestors(&after, &order);
        return StageGraph {
            after,
            order,
            ancestors,
        };
    }
    // Edges from a stage to the stages waiting for it: a cycle then reads in execution order.
    let mut dependents = vec![Vec::new(); stages.len()];
    for (i, deps) in after.iter().enumerate() {
        for &d in deps {
            dependents[d].push(i);
        }
    }
    if let Some(cycle) = graph::find_cycle(&dependents) {
        let path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        diags.push(
            Diagnostic::error(format!(
                "stages wait for each other in a cycle: {}",
                path.join(" -> ")
            ))
            .at(&plan.file, stages[cycle[0]].loc)
            .with_help("remove one of these `after` entries (a stage without `after` waits for the one before it)"),
        );
    }
    StageGraph {
        after,
        order: (0..stages.len()).collect(),
        ancestors: vec![vec![true; stages.len()]; stages.len()],
    }
}

/// The values each stage passes on: what its `run_once` steps register (name → step id).
fn exports(plan: &Plan) -> Vec<BTreeMap<String, String>> {
    plan.stages
        .iter()
        .map(|s| {
            let steps: &[StepDecl] = s.steps.as_deref().unwrap_or(&plan.steps);
            steps
                .iter()
                .filter(|d| d.spec.run_once)
                .filter_map(|d| Some((d.spec.register.clone()?, d.spec.id.clone())))
                .collect()
        })
        .collect()
}

/// Stage `i` as a plan of its own: what it does not declare is the plan's.
fn stage_plan(plan: &Plan, i: usize, scope: StageScope) -> Plan {
    let stage = &plan.stages[i];
    let (health, checks) = match &stage.health {
        Some((policy, checks)) => (policy.clone(), checks.clone()),
        None => (plan.health.clone(), plan.checks.clone()),
    };
    Plan {
        file: plan.file.clone(),
        name: plan.name.clone(),
        description: plan.description.clone(),
        ticket: plan.ticket.clone(),
        targets: stage.targets.clone(),
        vars: plan.vars.clone(),
        secrets: plan.secrets.clone(),
        become_password: plan.become_password.clone(),
        window: plan.window.clone(),
        waves: stage.waves.clone().unwrap_or_else(|| plan.waves.clone()),
        concurrency: stage.concurrency.or(plan.concurrency),
        failure: stage.failure.clone(),
        health,
        checks,
        steps: stage.steps.clone().unwrap_or_else(|| plan.steps.clone()),
        notify: plan.notify.clone(),
        promotion: plan.promotion.clone(),
        backups: Vec::new(),
        host_lease: plan.host_lease,
        stages: Vec::new(),
        stage_concurrency: None,
        stage: Some(scope),
    }
}

/// Names every step, wave and check of a stage's unit `STAGE/NAME` and tags it with the stage.
fn qualify(unit: &mut Unit, stage: &str) {
    let named = |name: &str| format!("{stage}/{name}");
    for spec in &mut unit.specs {
        spec.id = named(&spec.id);
        spec.after = spec.after.iter().map(|a| named(a)).collect();
        spec.stage = Some(stage.to_string());
    }
    for once in &mut unit.run_once {
        qualify_step(&mut once.step, stage);
    }
    for host in &mut unit.hosts {
        for step in &mut host.steps {
            qualify_step(step, stage);
        }
        for check in &mut host.health {
            check.name = named(&check.name);
            check.stage = Some(stage.to_string());
        }
    }
    for wave in &mut unit.waves {
        wave.name = named(&wave.name);
        wave.stage = Some(stage.to_string());
    }
}

/// A step's id, and the step named by each value it uses that its own stage registers.
fn qualify_step(step: &mut HostStep, stage: &str) {
    step.id = format!("{stage}/{}", step.id);
    let commands = std::iter::once(&mut step.run)
        .chain(step.undo.as_mut())
        .chain(step.skip_if.as_mut());
    for command in commands {
        for segment in &mut command.segments {
            if let Segment::Registered { name, step, .. } = segment
                && !name.starts_with("stages.")
            {
                *step = format!("{stage}/{step}");
            }
        }
    }
}
