//! Reading a change plan file into [`Plan`]: every key of docs/plan-format.md, checked. The
//! plan's top level, variables and secrets here; `steps.rs` the steps, `waves.rs` the waves and
//! the failure policy, `window.rs` the maintenance window.

mod steps;
mod waves;
mod window;

pub(crate) use steps::read_steps;
pub(crate) use waves::{default_failure, read_failure, read_waves};
use window::read_window;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::artifact::{SecretFrom, SecretSource};
use crate::diagnostic::{Diagnostics, Loc, SourceFile};
use crate::model::{Plan, Template};
use crate::node::Node;
use crate::schema::{Fields, Reader};

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
