//! Reading a plan's `steps:`: each step's keys, checked, into a [`StepDecl`].

use super::{DEFAULT_RETRY_DELAY_MS, MAX_STEPS, nonzero_duration, template};
use crate::artifact::StepSpec;
use crate::model::StepDecl;
use crate::node::Node;
use crate::schema::Reader;

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
