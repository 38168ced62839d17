//! Reading a change plan file into [`Plan`]: every key of docs/plan-format.md, checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::artifact::{
    FailureAction, FailureBudget, FailurePolicy, RollbackScope, SecretFrom, SecretSource, StepSpec,
    Weekday, Window,
};
use crate::diagnostic::{Diagnostics, Loc, SourceFile};
use crate::model::{Plan, StepDecl, Template, WaveDecl};
use crate::node::Node;
use crate::schema::{Amount, Fields, Reader};

const PLAN_KEYS: &[&str] = &[
    "name",
    "description",
    "ticket",
    "targets",
    "vars",
    "secrets",
    "become_password",
    "notify",
    "window",
    "waves",
    "concurrency",
    "failure",
    "health",
    "steps",
    "promotion",
    "stages",
    "stage_concurrency",
    "backup",
    "host_lease",
];
const STEP_KEYS: &[&str] = &[
    "id",
    "run",
    "reboot",
    "confirm",
    "undo",
    "skip_if",
    "after",
    "register",
    "register_limit",
    "become",
    "become_user",
    "timeout",
    "retries",
    "retry_delay",
    "run_once",
    "delegate",
    "idempotent",
    "check",
];
const WAVE_KEYS: &[&str] = &[
    "name",
    "size",
    "pause",
    "approval",
    "concurrency",
    "max_failed",
];
const FAILURE_KEYS: &[&str] = &["max_failed", "action", "rollback_scope"];
const WINDOW_KEYS: &[&str] = &["start", "end", "days", "from", "to", "timezone"];

/// Defaults documented in docs/plan-format.md.
pub const DEFAULT_RETRY_DELAY_MS: u64 = 1_000;
pub use crate::health::{
    DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_RETRIES, DEFAULT_HEALTH_TIMEOUT_MS,
};
/// More steps than this is a mistake, and would make the per-step ancestor sets large.
pub const MAX_STEPS: usize = 1_000;

/// Reads a plan from its parsed tree. Problems go to `diags`; the result is partial then.
pub fn read_plan(file: &Arc<SourceFile>, root: &Node, diags: &mut Diagnostics) -> Option<Plan> {
    let mut r = Reader { file, diags };
    let f = r.fields(root, PLAN_KEYS, "the change plan")?;
    let name = match f.get("name") {
        Some(n) => r.as_str(n, "name").unwrap_or_default(),
        None => {
            r.error(f.loc, "the change plan has no `name`");
            String::new()
        }
    };
    let text = |r: &mut Reader, key: &str| f.get(key).and_then(|n| r.as_str(n, key));
    let description = text(&mut r, "description");
    let ticket = text(&mut r, "ticket");
    // With `stages`, every stage names its own targets and may have its own steps.
    let staged = f.get("stages").is_some();
    let targets = match f.get("targets") {
        Some(n) if staged => {
            r.error_help(
                n.loc,
                "`targets` at the top level is not used when the plan has `stages`",
                "give each stage its own `targets`",
            );
            Vec::new()
        }
        Some(n) => r.as_str_list(n, "targets"),
        None if staged => Vec::new(),
        None => {
            r.error(f.loc, "the change plan has no `targets`");
            Vec::new()
        }
    };
    let vars = f
        .get("vars")
        .map(|n| read_vars(&mut r, n, "vars"))
        .unwrap_or_default();
    let secrets = f
        .get("secrets")
        .map(|n| read_secrets(&mut r, n))
        .unwrap_or_default();
    // Only the name is read here; `compile` checks that it names a declared secret.
    let become_password = f
        .get("become_password")
        .and_then(|n| Some((r.as_str(n, "become_password")?, n.loc)));
    let declared: Vec<&str> = secrets.iter().map(|(s, _)| s.name.as_str()).collect();
    let notify = f
        .get("notify")
        .map(|n| crate::notify::read_notify(&mut r, n, &declared))
        .unwrap_or_default();
    let window = f.get("window").and_then(|n| read_window(&mut r, n));
    let waves = f
        .get("waves")
        .map(|n| read_waves(&mut r, n))
        .unwrap_or_default();
    let concurrency = f
        .get("concurrency")
        .and_then(|n| positive(&mut r, n, "concurrency"));
    let failure = read_failure(&mut r, f.get("failure"), &default_failure(staged));
    let (health, checks) = crate::health::read_health(
        &mut r,
        f.get("health"),
        &crate::health::default_health(),
        &[],
    );
    let promotion = f.get("promotion").and_then(|n| read_promotion(&mut r, n));
    let steps = match f.get("steps") {
        Some(n) => read_steps(&mut r, n),
        None if staged => Vec::new(),
        None => {
            r.error(f.loc, "the change plan has no `steps`");
            Vec::new()
        }
    };
    let stages = f
        .get("stages")
        .map(|n| crate::stages::read::read_stages(&mut r, n, &failure, (&health, &checks)))
        .unwrap_or_default();
    let stage_concurrency = f
        .get("stage_concurrency")
        .and_then(|n| positive(&mut r, n, "stage_concurrency"));
    let backups = f
        .get("backup")
        .map(|n| crate::backup::read_backups(&mut r, n))
        .unwrap_or_default();
    let host_lease = f.get("host_lease").and_then(|n| r.as_bool(n, "host_lease"));
    Some(Plan {
        file: Arc::clone(file),
        name,
        description,
        ticket,
        targets,
        vars,
        secrets,
        become_password,
        notify,
        window,
        waves,
        concurrency,
        failure,
        health,
        checks,
        steps,
        promotion,
        backups,
        host_lease,
        stages,
        stage_concurrency,
        stage: None,
    })
}

/// `promotion: { after: ENVIRONMENT, within: DURATION }`.
fn read_promotion(r: &mut Reader, node: &Node) -> Option<crate::artifact::Promotion> {
    let f = r.fields(node, &["after", "within"], "promotion")?;
    let after = match f.get("after") {
        Some(n) => {
            let after = r.as_str(n, "promotion: after")?;
            if after.trim().is_empty() {
                r.error_help(
                    n.loc,
                    "promotion: after: the environment is empty",
                    "name the environment the change must succeed in first, e.g. `after: staging`",
                );
            }
            after
        }
        None => {
            r.error_help(
                f.loc,
                "promotion needs `after`",
                "name the environment the change must succeed in first, e.g. `after: staging`",
            );
            return None;
        }
    };
    let within_ms = match f.get("within") {
        // Not `nonzero_duration`: that one speaks of timeouts and of a default, and `within`
        // is an age limit without a default.
        Some(n) => match r.as_duration(n, "promotion: within")? {
            0 => {
                r.error_help(
                    n.loc,
                    "promotion: within: zero would accept no run at all",
                    "say how recent the run must be, e.g. `within: 7d`",
                );
                return None;
            }
            ms => ms,
        },
        None => {
            r.error_help(
                f.loc,
                "promotion needs `within`",
                "say how recent the run must be, e.g. `within: 7d`",
            );
            return None;
        }
    };
    (!after.trim().is_empty()).then_some(crate::artifact::Promotion { after, within_ms })
}

/// A mapping of variable names to any YAML value, as JSON.
pub fn read_vars(
    r: &mut Reader,
    node: &Node,
    context: &str,
) -> BTreeMap<String, serde_json::Value> {
    r.entries(node, context)
        .into_iter()
        .map(|(k, v, _)| (k, v.to_json()))
        .collect()
}

pub(crate) fn positive(r: &mut Reader, node: &Node, context: &str) -> Option<usize> {
    match r.as_count(node, context)? {
        0 => {
            r.error(node.loc, format!("{context} must be at least 1"));
            None
        }
        n => usize::try_from(n).ok(),
    }
}

pub(crate) fn template(r: &mut Reader, f: &Fields, key: &str, context: &str) -> Option<Template> {
    let node = f.get(key)?;
    let text = r.as_str(node, &format!("{context}: {key}"))?;
    if text.trim().is_empty() {
        // `sh -c ""` exits 0: an empty `run` would report success having done nothing, and an
        // empty `skip_if` would skip its step every time.
        let help = match key {
            "run" => "write the command to run".to_string(),
            "http" => "write a URL, e.g. `http://{{host.address}}:8080/healthz`".to_string(),
            "tcp" => "write HOST:PORT, e.g. `{{host.address}}:443`".to_string(),
            _ => format!("write a command, or remove `{key}`"),
        };
        r.error_help(node.loc, format!("{context}: `{key}` is empty"), help);
    }
    Some(Template {
        text,
        loc: node.loc,
    })
}

/// A duration that must be longer than zero (a timeout of nothing can never be met).
pub(crate) fn nonzero_duration(r: &mut Reader, node: &Node, context: &str) -> Option<u64> {
    match r.as_duration(node, context)? {
        0 => {
            r.error_help(
                node.loc,
                format!("{context}: a timeout of zero can never be met"),
                "write a duration such as `30s`, or remove the key for the default",
            );
            None
        }
        ms => Some(ms),
    }
}

fn read_secrets(r: &mut Reader, node: &Node) -> Vec<(SecretSource, Loc)> {
    let mut out = Vec::new();
    for (name, value, loc) in r.entries(node, "secrets") {
        let context = format!("secret `{name}`");
        let Some(f) = r.fields(value, &["env", "file"], &context) else {
            continue;
        };
        // An empty source is an error, but the secret stays declared so that the commands
        // using it are not reported a second time.
        let source = |r: &mut Reader, key: &str, node: &Node| {
            let text = r.as_str(node, &context)?;
            if text.trim().is_empty() {
                r.error_help(
                    node.loc,
                    format!("{context}: `{key}` is empty"),
                    "name the environment variable (`{ env: LB_TOKEN }`) or the file (`{ file: /etc/sluice/token }`) that holds the value",
                );
            }
            Some(text)
        };
        let from = match (f.get("env"), f.get("file")) {
            (Some(e), None) => source(r, "env", e).map(SecretFrom::Env),
            (None, Some(p)) => source(r, "file", p).map(SecretFrom::File),
            _ => {
                r.error_help(
                    value.loc,
                    format!("{context} needs exactly one source"),
                    "write `{ env: VARIABLE }` or `{ file: path }`",
                );
                None
            }
        };
        if let Some(from) = from {
            out.push((SecretSource { name, from }, loc));
        }
    }
    out
}

fn read_window(r: &mut Reader, node: &Node) -> Option<Window> {
    let f = r.fields(node, WINDOW_KEYS, "window")?;
    let window = if f.get("start").is_some() || f.get("end").is_some() {
        let mut stamp = |key: &str| {
            let n = f.get(key).or_else(|| {
                r.error(f.loc, format!("window: `{key}` is missing"));
                None
            })?;
            let s = r.as_str(n, &format!("window: {key}"))?;
            match s.parse::<jiff::Timestamp>() {
                Ok(t) => Some(t),
                Err(e) => {
                    r.error_help(
                        n.loc,
                        format!("window: {key}: `{s}` is not a timestamp: {e}"),
                        "write RFC 3339 with an offset, e.g. 2026-11-28T22:00:00Z",
                    );
                    None
                }
            }
        };
        let start = stamp("start");
        let end = stamp("end");
        Window::Absolute {
            start: start?,
            end: end?,
        }
    } else {
        let days = match f.get("days") {
            Some(n) => r
                .as_str_list(n, "window: days")
                .into_iter()
                .filter_map(|(d, loc)| match weekday(&d) {
                    Some(w) => Some(w),
                    None => {
                        r.error_help(
                            loc,
                            format!("window: `{d}` is not a weekday"),
                            "use mon, tue, wed, thu, fri, sat, sun",
                        );
                        None
                    }
                })
                .collect(),
            None => {
                r.error_help(f.loc, "window has neither `start`/`end` nor `days`", "write an absolute window (start, end) or a recurring one (days, from, to, timezone)");
                return None;
            }
        };
        let mut field = |key: &str| match f.get(key) {
            Some(n) => r.as_str(n, &format!("window: {key}")),
            None => {
                r.error(f.loc, format!("window: `{key}` is missing"));
                None
            }
        };
        let (from, to, timezone) = (field("from"), field("to"), field("timezone"));
        Window::Recurring {
            days,
            from: from?,
            to: to?,
            timezone: timezone?,
        }
    };
    if let Err(message) = window.validate() {
        r.error(f.loc, format!("window: {message}"));
        return None;
    }
    Some(window)
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

pub(crate) fn read_waves(r: &mut Reader, node: &Node) -> Vec<WaveDecl> {
    let mut waves = Vec::new();
    for (i, item) in r.as_seq(node, "waves").iter().enumerate() {
        let context = format!("wave {}", i + 1);
        let Some(f) = r.fields(item, WAVE_KEYS, &context) else {
            continue;
        };
        let name = f
            .get("name")
            .and_then(|n| r.as_str(n, &context))
            .unwrap_or_else(|| format!("wave-{}", i + 1));
        let size = match f.get("size") {
            Some(n) => r.as_amount(n, &format!("wave `{name}`: size")),
            None => {
                r.error(item.loc, format!("wave `{name}` has no `size`"));
                None
            }
        };
        let pause_ms = f.get("pause").and_then(|n| r.as_duration(n, "pause"));
        let approval = f
            .get("approval")
            .and_then(|n| r.as_bool(n, "approval"))
            .unwrap_or(false);
        let concurrency = f
            .get("concurrency")
            .and_then(|n| positive(r, n, "concurrency"));
        let max_failed = f
            .get("max_failed")
            .and_then(|n| r.as_amount(n, &format!("wave `{name}`: max_failed")))
            .map(budget_of);
        if waves.iter().any(|w: &WaveDecl| w.name == name) {
            r.error(item.loc, format!("two waves are named `{name}`"));
        }
        if let Some(size) = size {
            waves.push(WaveDecl {
                name,
                size,
                pause_ms,
                approval,
                concurrency,
                max_failed,
                loc: item.loc,
            });
        }
    }
    waves
}

/// A `max_failed` amount as a budget: a count of hosts, or a percentage of the wave's.
fn budget_of(amount: Amount) -> FailureBudget {
    match amount {
        Amount::Count(c) => FailureBudget::Count(usize::try_from(c).unwrap_or(usize::MAX)),
        Amount::Percent(p) => FailureBudget::Percent(p),
    }
}

/// The failure policy of a plan that writes none: `rollback_scope: stage` when it has stages.
pub(crate) fn default_failure(staged: bool) -> FailurePolicy {
    FailurePolicy {
        max_failed: FailureBudget::Count(0),
        action: FailureAction::Rollback,
        rollback_scope: if staged {
            RollbackScope::Stage
        } else {
            RollbackScope::Wave
        },
    }
}

/// Reads a `failure` block; each key it leaves out keeps its value in `base`.
pub(crate) fn read_failure(
    r: &mut Reader,
    node: Option<&Node>,
    base: &FailurePolicy,
) -> FailurePolicy {
    let mut policy = base.clone();
    let Some(f) = node.and_then(|n| r.fields(n, FAILURE_KEYS, "failure")) else {
        return policy;
    };
    if let Some(budget) = f
        .get("max_failed")
        .and_then(|n| r.as_amount(n, "failure: max_failed"))
    {
        policy.max_failed = budget_of(budget);
    }
    if let Some(n) = f.get("action") {
        match r.as_str(n, "failure: action").as_deref() {
            Some("rollback") => policy.action = FailureAction::Rollback,
            Some("halt") => policy.action = FailureAction::Halt,
            Some("continue") => policy.action = FailureAction::Continue,
            Some(other) => r.error_help(
                n.loc,
                format!("failure: action `{other}` is not known"),
                "use rollback, halt or continue",
            ),
            None => {}
        }
    }
    if let Some(n) = f.get("rollback_scope") {
        match r.as_str(n, "failure: rollback_scope").as_deref() {
            Some("wave") => policy.rollback_scope = RollbackScope::Wave,
            Some("stage") => policy.rollback_scope = RollbackScope::Stage,
            Some("run") => policy.rollback_scope = RollbackScope::Run,
            Some(other) => r.error_help(
                n.loc,
                format!("failure: rollback_scope `{other}` is not known"),
                "use wave, stage or run",
            ),
            None => {}
        }
    }
    policy
}

pub(crate) fn read_steps(r: &mut Reader, node: &Node) -> Vec<StepDecl> {
    let items = r.as_seq(node, "steps");
    if items.len() > MAX_STEPS {
        r.error(
            node.loc,
            format!(
                "{} steps is more than the limit of {MAX_STEPS}",
                items.len()
            ),
        );
        return Vec::new();
    }
    if items.is_empty() {
        r.error(node.loc, "the change plan has no steps");
    }
    let mut steps: Vec<StepDecl> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        // Name the step by its id in messages when it has one, even before its keys are checked.
        let fallback = match &item.value {
            crate::node::Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some("id"))
                .and_then(|(_, v)| v.scalar_text())
                .map_or_else(|| format!("step {}", i + 1), |id| format!("step `{id}`")),
            _ => format!("step {}", i + 1),
        };
        let Some(f) = r.fields(item, STEP_KEYS, &fallback) else {
            continue;
        };
        let id = match f.get("id").and_then(|n| r.as_str(n, &fallback)) {
            Some(id) => id,
            None => {
                r.error(item.loc, format!("{fallback} has no `id`"));
                continue;
            }
        };
        let id_loc = f.get("id").map(|n| n.loc).unwrap_or(item.loc);
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            r.error_help(
                id_loc,
                format!("step id `{id}` is not a valid name"),
                "use letters, digits, `-` and `_`",
            );
        }
        if steps.iter().any(|s| s.spec.id == id) {
            r.error(id_loc, format!("two steps have the id `{id}`"));
            continue;
        }
        let context = format!("step `{id}`");
        let reboot = crate::reboot::read_reboot(r, &f, &context);
        let run = match &reboot {
            Some(reboot) => reboot.command.clone(),
            None if f.get("reboot").is_some() => continue,
            None => match template(r, &f, "run", &context) {
                Some(run) => run,
                None => {
                    r.error_help(
                        item.loc,
                        format!("{context} has no `run`"),
                        "write `run: COMMAND`, or `reboot: { timeout: 15m }` for a reboot",
                    );
                    continue;
                }
            },
        };
        let flag = |r: &mut Reader, key: &str| {
            f.get(key)
                .and_then(|n| r.as_bool(n, &format!("{context}: {key}")))
                .unwrap_or(false)
        };
        let register = crate::register::read_register(r, &f, &context, &steps);
        let become_user = f.get("become_user").and_then(|n| r.as_str(n, &context));
        let mut spec = StepSpec {
            id: id.clone(),
            after: Vec::new(),
            run_once: flag(r, "run_once"),
            // `become_user` implies privilege escalation, as in Ansible.
            become_root: flag(r, "become") || become_user.is_some(),
            become_user,
            timeout_ms: f
                .get("timeout")
                .and_then(|n| nonzero_duration(r, n, &format!("{context}: timeout"))),
            retries: f
                .get("retries")
                .and_then(|n| r.as_count(n, &format!("{context}: retries")))
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .unwrap_or(0),
            retry_delay_ms: f
                .get("retry_delay")
                .and_then(|n| r.as_duration(n, &format!("{context}: retry_delay")))
                .unwrap_or(DEFAULT_RETRY_DELAY_MS),
            register: register.name,
            register_limit: register.limit,
            idempotent: flag(r, "idempotent"),
            check: flag(r, "check"),
            stage: None,
            reboot: reboot.map(|r| r.spec),
            confirm: None,
        };
        let after = f
            .get("after")
            .map(|n| r.as_str_list(n, &format!("{context}: after")));
        let undo = template(r, &f, "undo", &context);
        spec.confirm =
            crate::confirm::read_confirm(r, &f, &context, undo.is_some(), spec.timeout_ms);
        let skip_if = template(r, &f, "skip_if", &context);
        let delegate = f.get("delegate").and_then(|n| {
            let host = r.as_str(n, &format!("{context}: delegate"))?;
            Some((host, n.loc))
        });
        if let (Some((_, loc)), false) = (&delegate, spec.run_once) {
            r.error_help(
                *loc,
                format!("step `{id}` has `delegate` but is not run_once"),
                "`delegate` names the host a `run_once` step runs on: add `run_once: true` or remove `delegate`",
            );
        }
        steps.push(StepDecl {
            spec,
            after,
            run,
            undo,
            skip_if,
            delegate,
            loc: item.loc,
        });
    }
    steps
}
