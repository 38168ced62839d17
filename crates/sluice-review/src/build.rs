//! Building the [`Review`] from a plan artifact: the one place the artifact is read, so every
//! format shows the same facts.

use std::collections::{BTreeSet, HashMap};

use sluice_plan::estimate::{Estimate, STEP_WITHOUT_TIMEOUT_MS};
use sluice_plan::notify::Endpoint;
use sluice_plan::warning::{PlanWarning, artifact};
use sluice_plan::{HealthProbe, HostPlan, HostStep, PlanArtifact, RenderedCommand, SecretFrom};

use crate::forms::{HostKey, forms};
use crate::model::*;
use crate::policy;
use crate::when::{self, Clock};

/// What a review is made from besides the artifact.
pub struct ReviewInput<'a> {
    pub plan: &'a PlanArtifact,
    /// Warnings found while compiling the YAML; the artifact's own checks are added to them.
    pub compile_warnings: Vec<PlanWarning>,
    pub clock: Clock,
    pub approvals: ApprovalsView,
    /// What the store (or an export) holds for the plan's `promotion:` rule, in a sentence;
    /// `None` when nobody looked (the sentence then says so).
    pub promotion_evidence: Option<String>,
}

pub fn build(input: ReviewInput) -> Review {
    let plan = input.plan;
    let stages = crate::stages::stage_views(plan);
    let Sections {
        mut waves,
        mut steps,
        mut health,
        failure,
    } = sections(plan);
    if !stages.is_empty() {
        // The whole plan's lists are its stages' in execution order, each as its stage shows it.
        waves = stages.iter().flat_map(|s| s.waves.clone()).collect();
        for (i, w) in waves.iter_mut().enumerate() {
            w.number = i + 1;
        }
        steps = stages.iter().flat_map(|s| s.steps.clone()).collect();
        health.checks = stages
            .iter()
            .flat_map(|s| s.health.checks.clone())
            .collect();
    }
    let promotion = plan.promotion.as_ref().map(|p| PromotionView {
        after: p.after.clone(),
        within_ms: p.within_ms,
        change_hash: plan.change_hash.clone().unwrap_or_default(),
        evidence: input
            .promotion_evidence
            .clone()
            .unwrap_or_else(|| "not checked".to_string()),
    });
    let mut warnings = input.compile_warnings;
    warnings.extend(artifact::check(plan, input.clock.now));
    let estimate = Estimate::of(plan);
    Review {
        review_format: REVIEW_FORMAT,
        summary: Summary {
            promotion,
            ..summary(plan, &input.clock, &estimate)
        },
        warnings: warnings
            .into_iter()
            .map(|w| WarningView {
                message: w.to_string(),
                help: w.help(),
                warning: w,
            })
            .collect(),
        backups: backup_views(plan),
        waves,
        differences: differences(plan, &steps, &health),
        steps,
        health,
        failure,
        hosts: host_views(plan),
        approvals: input.approvals,
        stages,
        stage_concurrency: plan.stage_concurrency,
    }
}

/// The sections a plan (or one stage of it) shows of itself.
pub struct Sections {
    pub waves: Vec<WaveView>,
    pub steps: Vec<StepView>,
    pub health: HealthView,
    pub failure: FailureView,
}

/// The waves, steps, checks and failure policy of `plan`.
pub fn sections(plan: &PlanArtifact) -> Sections {
    let keys: Vec<HostKey> = plan
        .hosts
        .iter()
        .map(|h| HostKey {
            name: &h.name,
            address: &h.connection.address,
        })
        .collect();
    let estimate = Estimate::of(plan);
    let waves = plan
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| WaveView {
            number: i + 1,
            name: w.name.clone(),
            hosts: w.hosts.clone(),
            concurrency: w.concurrency,
            max_failed: w.max_failed,
            approval: w.approval,
            // The executor pauses only before a next wave: a pause after the last is none.
            pause_ms: w.pause_ms.filter(|_| i + 1 < plan.waves.len()),
            pause_holds_stages: false,
            stage: w.stage.clone(),
            estimate_ms: estimate.per_wave_ms.get(i).copied().unwrap_or(0),
            on_failure: policy::wave_sentence(plan, i),
        })
        .collect();
    Sections {
        waves,
        steps: step_views(plan, &keys),
        health: health_view(plan, &keys),
        failure: FailureView {
            budget: policy::budget_text(plan.failure.max_failed),
            action: plan.failure.action,
            rollback_scope: plan.failure.rollback_scope,
            failed_host: policy::FAILED_HOST.to_string(),
            run_once: policy::run_once_sentence(plan),
        },
    }
}

fn summary(plan: &PlanArtifact, clock: &Clock, estimate: &Estimate) -> Summary {
    Summary {
        name: plan.name.clone(),
        description: plan.description.clone(),
        ticket: plan.ticket.clone(),
        plan_hash: plan.plan_hash.clone(),
        inventory: plan.planned_for.as_ref().map(|p| p.inventory.clone()),
        environment: plan
            .planned_for
            .as_ref()
            .and_then(|p| p.environment.clone()),
        limit: plan.limit.clone(),
        promotion: None,
        window: plan.window.as_ref().map(|w| when::window_view(w, clock)),
        judged_at: clock.now,
        host_count: plan.hosts.len(),
        wave_count: plan.waves.len(),
        step_count: plan.steps.len(),
        secrets: plan
            .secrets
            .iter()
            .map(|s| SecretView {
                name: s.name.clone(),
                from: match &s.from {
                    SecretFrom::Env(v) => format!("env {v}"),
                    SecretFrom::File(f) => format!("file {f}"),
                },
            })
            .collect(),
        notify: plan
            .notify
            .iter()
            .map(|t| NotifyView {
                endpoint: t.endpoint.shown(),
                url_secret: match &t.endpoint {
                    Endpoint::Secret(name) => Some(name.clone()),
                    Endpoint::Url(_) => None,
                },
                events: t.events.clone(),
                signed_with: t.secret.clone(),
            })
            .collect(),
        become_password: plan.become_password.clone(),
        host_lease: plan.host_lease,
        estimate: EstimateView {
            per_host_ms: estimate.per_host_ms,
            total_ms: estimate.total_ms,
            longest_path: estimate.longest_path.clone(),
            step_without_timeout_ms: STEP_WITHOUT_TIMEOUT_MS,
        },
    }
}

/// The forms of one field of a host step, across all hosts.
fn command_view(
    plan: &PlanArtifact,
    keys: &[HostKey],
    id: &str,
    field: fn(&HostStep) -> Option<&RenderedCommand>,
) -> Option<CommandView> {
    let texts: Vec<Option<String>> = plan
        .hosts
        .iter()
        .map(|h| {
            h.steps
                .iter()
                .find(|s| s.id == id)
                .and_then(field)
                .map(ToString::to_string)
        })
        .collect();
    let forms = forms(keys, &texts);
    (!forms.is_empty()).then_some(CommandView { forms })
}

/// The plan's backups, each command's forms across every host.
fn backup_views(plan: &PlanArtifact) -> Vec<BackupView> {
    let keys: Vec<HostKey> = plan
        .hosts
        .iter()
        .map(|h| HostKey {
            name: &h.name,
            address: &h.connection.address,
        })
        .collect();
    let view = |id: &str, field: fn(&sluice_plan::backup::HostBackup) -> &RenderedCommand| {
        let texts: Vec<Option<String>> = plan
            .hosts
            .iter()
            .map(|h| {
                h.backup
                    .iter()
                    .find(|b| b.id == id)
                    .map(|b| field(b).to_string())
            })
            .collect();
        CommandView {
            forms: forms(&keys, &texts),
        }
    };
    plan.backup
        .iter()
        .map(|spec| BackupView {
            id: spec.id.clone(),
            become_user: (spec.become_root || spec.become_user.is_some())
                .then(|| spec.become_user.clone().unwrap_or_else(|| "root".into())),
            timeout_ms: spec.timeout_ms,
            run: view(&spec.id, |b| &b.run),
            verify: view(&spec.id, |b| &b.verify),
        })
        .collect()
}

fn step_views(plan: &PlanArtifact, keys: &[HostKey]) -> Vec<StepView> {
    let mut out = Vec::with_capacity(plan.steps.len());
    for once in &plan.run_once {
        let Some(spec) = plan.step(&once.step.id) else {
            continue;
        };
        let host = plan.host(&once.host);
        let one = [HostKey {
            name: &once.host,
            address: host.map_or(once.host.as_str(), |h| h.connection.address.as_str()),
        }];
        let view = |c: &RenderedCommand| CommandView {
            forms: forms(&one, &[Some(c.to_string())]),
        };
        out.push(StepView {
            run_once_on: Some(once.host.clone()),
            run: view(&once.step.run),
            undo: once.step.undo.as_ref().map(view),
            skip_if: once.step.skip_if.as_ref().map(view),
            ..spec_view(spec)
        });
    }
    for spec in plan.steps.iter().filter(|s| !s.run_once) {
        let id = &spec.id;
        out.push(StepView {
            run: command_view(plan, keys, id, |s| Some(&s.run))
                .unwrap_or(CommandView { forms: Vec::new() }),
            undo: command_view(plan, keys, id, |s| s.undo.as_ref()),
            skip_if: command_view(plan, keys, id, |s| s.skip_if.as_ref()),
            ..spec_view(spec)
        });
    }
    out
}

fn spec_view(spec: &sluice_plan::StepSpec) -> StepView {
    StepView {
        id: spec.id.clone(),
        run_once_on: None,
        after: spec.after.clone(),
        become_user: (spec.become_root || spec.become_user.is_some())
            .then(|| spec.become_user.clone().unwrap_or_else(|| "root".into())),
        timeout_ms: spec.timeout_ms,
        retries: spec.retries,
        retry_delay_ms: spec.retry_delay_ms,
        register: spec.register.clone(),
        idempotent: spec.idempotent,
        check: spec.check,
        reboot_timeout_ms: spec.reboot.as_ref().map(|r| r.timeout_ms),
        confirm: spec.confirm.as_ref().map(|c| crate::model::ConfirmView {
            within_ms: c.within_ms,
            revert_timeout_ms: c.revert_timeout_ms,
        }),
        run: CommandView { forms: Vec::new() },
        undo: None,
        skip_if: None,
    }
}

fn health_view(plan: &PlanArtifact, keys: &[HostKey]) -> HealthView {
    let first = plan
        .hosts
        .first()
        .map(|h| h.health.as_slice())
        .unwrap_or(&[]);
    let checks = first
        .iter()
        .map(|check| {
            let texts: Vec<Option<String>> = plan
                .hosts
                .iter()
                .map(|h| {
                    h.health
                        .iter()
                        .find(|c| c.name == check.name)
                        .map(|c| probe_target(&c.probe))
                })
                .collect();
            let (kind, expect_status, http) = match &check.probe {
                HealthProbe::Run(_) => (CheckKind::Run, None, None),
                HealthProbe::Http {
                    url,
                    expect_status,
                    options,
                } => (
                    CheckKind::Http,
                    *expect_status,
                    Some(http_view(url, options)),
                ),
                HealthProbe::Tcp { .. } => (CheckKind::Tcp, None, None),
            };
            CheckView {
                name: check.name.clone(),
                kind,
                target: CommandView {
                    forms: forms(keys, &texts),
                },
                expect_status,
                http,
            }
        })
        .collect();
    HealthView {
        retries: plan.health.retries,
        interval_ms: plan.health.interval_ms,
        timeout_ms: plan.health.timeout_ms,
        checks,
    }
}

/// The options are the check's, not the host's: every host's rendering has the same.
fn http_view(url: &str, options: &sluice_plan::HttpOptions) -> HttpCheckView {
    let trust = url.starts_with("https://").then_some(if options.insecure {
        Trust::Insecure
    } else if options.ca_file.is_some() {
        Trust::CaFile
    } else {
        Trust::SystemRoots
    });
    HttpCheckView {
        trust,
        ca_file: options.ca_file.as_ref().map(|ca| ca.path.clone()),
        follow_redirects: options.follow_redirects,
        body_contains: options.body_contains.clone(),
    }
}

fn probe_target(p: &HealthProbe) -> String {
    match p {
        HealthProbe::Run(c) => c.to_string(),
        HealthProbe::Http { url, .. } => url.clone(),
        HealthProbe::Tcp { address } => address.clone(),
    }
}

fn host_views(plan: &PlanArtifact) -> Vec<HostView> {
    // In a plan with stages a host may be in a wave of each of several stages.
    let mut wave_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for w in &plan.waves {
        for h in &w.hosts {
            wave_of.entry(h.as_str()).or_default().push(w.name.as_str());
        }
    }
    plan.hosts
        .iter()
        .map(|h| HostView {
            name: h.name.clone(),
            wave: wave_of
                .get(h.name.as_str())
                .map(|w| w.join(", "))
                .unwrap_or_default(),
            transport: h.connection.transport,
            address: h.connection.address.clone(),
            port: h.connection.port,
            user: h.connection.user.clone(),
            via: h.connection.proxy_jump.clone(),
        })
        .collect()
}

/// Every command slot (step field or check) with more than one form, hosts grouped by the forms
/// they get, and the variables and connection settings that differ.
fn differences(plan: &PlanArtifact, steps: &[StepView], health: &HealthView) -> Differences {
    let mut slots: Vec<(String, &CommandView)> = Vec::new();
    for step in steps.iter().filter(|s| s.run_once_on.is_none()) {
        slots.push((format!("step {} (run)", step.id), &step.run));
        if let Some(u) = &step.undo {
            slots.push((format!("step {} (undo)", step.id), u));
        }
        if let Some(s) = &step.skip_if {
            slots.push((format!("step {} (skip_if)", step.id), s));
        }
    }
    for check in &health.checks {
        slots.push((format!("check {}", check.name), &check.target));
    }
    let varying: Vec<&(String, &CommandView)> =
        slots.iter().filter(|(_, c)| c.forms.len() > 1).collect();
    // For each varying slot, the form each host gets: one map per slot, so grouping stays
    // linear in the number of hosts.
    let form_of: Vec<HashMap<&str, usize>> = varying
        .iter()
        .map(|(_, view)| {
            view.forms
                .iter()
                .enumerate()
                .flat_map(|(i, f)| f.hosts.iter().map(move |h| (h.as_str(), i)))
                .collect()
        })
        .collect();
    let signature = |h: &HostPlan| -> Vec<Option<usize>> {
        form_of
            .iter()
            .map(|forms| forms.get(h.name.as_str()).copied())
            .collect()
    };
    Differences {
        command_groups: group_by(plan, signature),
        commands: varying
            .iter()
            .map(|(what, v)| CommandDifference {
                what: what.clone(),
                forms: v.forms.len(),
            })
            .collect(),
        vars: vars_differences(plan),
        connection: connection_differences(plan),
    }
}

/// Hosts grouped by `key`, groups in the order of their first host.
fn group_by<K: Eq + std::hash::Hash>(
    plan: &PlanArtifact,
    key: impl Fn(&HostPlan) -> K,
) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for h in &plan.hosts {
        let k = key(h);
        match index.get(&k) {
            Some(&g) => groups[g].push(h.name.clone()),
            None => {
                index.insert(k, groups.len());
                groups.push(vec![h.name.clone()]);
            }
        }
    }
    groups
}

fn value_difference(
    plan: &PlanArtifact,
    name: &str,
    value: impl Fn(&HostPlan) -> String,
) -> Option<ValueDifference> {
    let mut values: Vec<ValueGroup> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for h in &plan.hosts {
        let v = value(h);
        match index.get(&v) {
            Some(&g) => values[g].hosts.push(h.name.clone()),
            None => {
                index.insert(v.clone(), values.len());
                values.push(ValueGroup {
                    value: v,
                    hosts: vec![h.name.clone()],
                });
            }
        }
    }
    (values.len() > 1).then(|| ValueDifference {
        name: name.to_string(),
        values,
    })
}

fn vars_differences(plan: &PlanArtifact) -> Vec<ValueDifference> {
    let names: BTreeSet<&String> = plan.hosts.iter().flat_map(|h| h.vars.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            value_difference(plan, name, |h| {
                h.vars
                    .get(name)
                    .map_or_else(|| "(unset)".to_string(), ToString::to_string)
            })
        })
        .collect()
}

/// How one connection setting of a host reads.
type SettingOf = dyn Fn(&HostPlan) -> String;

fn optional(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(unset)".into())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

fn connection_differences(plan: &PlanArtifact) -> Vec<ValueDifference> {
    let fields: [(&str, &SettingOf); 8] = [
        ("transport", &|h| spelling(&h.connection.transport)),
        ("port", &|h| h.connection.port.to_string()),
        ("user", &|h| optional(&h.connection.user)),
        ("via", &|h| list(&h.connection.proxy_jump)),
        ("host_key_checking", &|h| {
            spelling(&h.connection.host_key_checking)
        }),
        ("identity_files", &|h| list(&h.connection.identity_files)),
        ("workdir", &|h| optional(&h.connection.workdir)),
        ("env", &|h| {
            let pairs: Vec<String> = h
                .connection
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            list(&pairs)
        }),
    ];
    fields
        .iter()
        .filter_map(|(name, value)| value_difference(plan, name, value))
        .collect()
}

/// A value as the inventory spells it (its serde name: `accept-new`, `local`).
fn spelling<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
