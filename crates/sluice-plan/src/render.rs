//! Rendering every step and health check for every targeted host, with the problems (an
//! undefined variable, a bad URL) reported once per (step, field, problem) with the hosts it
//! affects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::artifact::*;
use crate::command::RenderedCommand;
use crate::compile::Steps;
use crate::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::inventory::Inventory;
use crate::model::{Plan, ProbeDecl};
use crate::schema::nearest;
use crate::template::{RefKind, RenderProblem, Scope, Template};
use crate::url::{self, TargetProblem};

/// Every targeted host rendered: its plan, and the `run_once` steps on the first host.
pub(crate) struct Rendered {
    pub hosts: Vec<HostPlan>,
    pub run_once: Vec<RunOnceStep>,
}

/// The hosts to render for: inventory positions in plan order, the host `run_once` steps run
/// on, and the hosts `delegate:` names outside `hosts` (only their `run_once` steps render).
pub(crate) struct Targets<'a> {
    pub hosts: &'a [usize],
    pub first_host: &'a str,
    pub delegated: &'a [usize],
}

pub(crate) type Problems = BTreeMap<(String, &'static str, RenderProblem), (Loc, Vec<String>)>;

/// Renders `steps` and `checks` for `hosts` (inventory positions, in plan order);
/// `run_once` steps are rendered for `first_host` only.
pub(crate) fn render_hosts(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    steps: &Steps,
    checks: &[Option<Template>],
    targets: Targets,
    diags: &mut Diagnostics,
) -> Rendered {
    let Targets {
        hosts,
        first_host,
        delegated,
    } = targets;
    // The host each step runs on when it is run_once: its `delegate`, else the first host.
    let once_host = |i: usize| -> Option<&str> {
        let decl = &steps.decls[i];
        decl.spec.run_once.then(|| {
            decl.delegate
                .as_ref()
                .map_or(first_host, |(host, _)| host.as_str())
        })
    };
    let mut problems: Problems = BTreeMap::new();
    let mut note =
        |what: String, field: &'static str, loc: Loc, problem: RenderProblem, host: &str| {
            let entry = problems
                .entry((what, field, problem))
                .or_insert((loc, Vec::new()));
            entry.1.push(host.to_string());
        };
    // An unregistered name was reported by check_reference; render a placeholder, not a repeat.
    // A stage's value (`stages.NAME.VAR`) is registered by a run_once step of that stage.
    let registered_by = |name: &str| {
        if let Some(exported) = name.strip_prefix("stages.") {
            // check_reference has reported a stage value that is not there.
            let step = exported.split_once('.').and_then(|(stage, var)| {
                let scope = plan.stage.as_ref()?;
                let step = scope.stages.get(stage)?.registers.get(var)?;
                Some(format!("{stage}/{step}"))
            });
            return Some(step.unwrap_or_else(|| "?".to_string()));
        }
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
                RefKind::Secret | RefKind::Registered | RefKind::Stage => true,
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
    type Result = std::result::Result<RenderedCommand, RenderProblem>;
    let mut rendered_once: Vec<[Option<Result>; 3]> =
        (0..steps.decls.len()).map(|_| [None, None, None]).collect();
    let mut group_vars: HashMap<&[usize], BTreeMap<String, serde_json::Value>> = HashMap::new();
    let mut host_plans = Vec::with_capacity(hosts.len());
    // (position in execution order, step): run_once steps on several hosts are put back in
    // execution order at the end.
    let mut run_once: Vec<(usize, RunOnceStep)> = Vec::new();
    let all = hosts.iter().map(|&h| (h, true));
    for (h, targeted) in all.chain(delegated.iter().map(|&h| (h, false))) {
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
        for (order, &i) in steps.order.iter().enumerate() {
            let decl = &steps.decls[i];
            let is_once = decl.spec.run_once;
            if (is_once && once_host(i) != Some(name.as_str())) || (!is_once && !targeted) {
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
                let delegated = decl.delegate.is_some();
                run_once.push((
                    order,
                    RunOnceStep {
                        host: name.clone(),
                        step,
                        connection: delegated.then(|| connection.clone()),
                    },
                ));
            } else {
                host_steps.push(step);
            }
        }
        if !targeted {
            continue;
        }
        let (health, unrendered) = render_health(plan, checks, &scope);
        for u in unrendered {
            note(u.what, u.field, u.loc, u.problem, name);
        }
        host_plans.push(HostPlan {
            name: name.clone(),
            connection,
            vars,
            steps: host_steps,
            health,
            backup: Vec::new(),
        });
    }
    report(plan, inv, cli_vars, problems, diags);
    run_once.sort_by_key(|(order, _)| *order);
    Rendered {
        hosts: host_plans,
        run_once: run_once.into_iter().map(|(_, step)| step).collect(),
    }
}

/// One diagnostic per (what, field, problem), naming the hosts it affects.
pub(crate) fn report(
    plan: &Plan,
    inv: &Inventory,
    cli_vars: &[(String, String)],
    problems: Problems,
    diags: &mut Diagnostics,
) {
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
                stage: None,
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

/// Every `vars.NAME` defined anywhere, for "did you mean" suggestions.
fn known_vars(plan: &Plan, inv: &Inventory, cli_vars: &[(String, String)]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = plan.vars.keys().cloned().collect();
    names.extend(inv.var_names().map(str::to_string));
    names.extend(cli_vars.iter().map(|(k, _)| k.clone()));
    names.into_iter().map(|n| format!("vars.{n}")).collect()
}
