//! sluice's own settings of the controller in an Ansible inventory (INI, YAML or a script):
//! variables of group `all` that Ansible ignores, as `sluice_workdir` is for a host.
//!
//! `sluice_metrics_file` is the sluice YAML inventory's `metrics_file:` (where `sluice apply`
//! writes its Prometheus metrics), read from group `all` only (its own `vars`, then
//! `group_vars/all`, which wins): it belongs to the controller, not to a host, so set on a host
//! or on another group it would mean a different file per host; there it is a located warning
//! and is ignored. A relative path is relative to the inventory's directory, like
//! `metrics_file:`.

use std::path::Path;

use serde_json::Value;

use super::{Inventory, Origin};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::warning::PlanWarning;

/// The variable, and what sets it in a sluice YAML inventory.
pub const METRICS_FILE: &str = "sluice_metrics_file";

/// Sets `inv.metrics_file` from group `all`'s `sluice_metrics_file`; `path` is the inventory's.
pub fn read(inv: &mut Inventory, path: &Path, diags: &mut Diagnostics) {
    ignored_elsewhere(inv, diags);
    let Some(all) = inv.group_named("all") else {
        return;
    };
    let group = &inv.groups[all];
    let Some(value) = group
        .file_vars
        .get(METRICS_FILE)
        .or_else(|| group.vars.get(METRICS_FILE))
    else {
        return;
    };
    let origin = group.origins.get(METRICS_FILE);
    match value {
        Value::String(text) if text.contains("{{") => diags.push(located(
            Diagnostic::error(format!(
                "{METRICS_FILE} (group `all`) is a Jinja2 template, which sluice does not evaluate"
            ))
            .with_help("write the path itself"),
            origin,
        )),
        Value::String(text) if !text.trim().is_empty() => {
            let dir = path.parent().unwrap_or(Path::new("."));
            inv.metrics_file = Some(dir.join(text).display().to_string());
        }
        _ => diags.push(located(
            Diagnostic::error(format!(
                "{METRICS_FILE} (group `all`) must be a file path, not {value}"
            ))
            .with_help("e.g. `sluice_metrics_file=/var/lib/node_exporter/textfile/sluice.prom`"),
            origin,
        )),
    }
}

/// A warning for each host and group other than `all` that sets the variable.
fn ignored_elsewhere(inv: &Inventory, diags: &mut Diagnostics) {
    let owners = inv
        .hosts
        .iter()
        .map(|h| {
            (
                format!("host `{}`", h.name),
                &h.origins,
                h.vars.contains_key(METRICS_FILE) || h.file_vars.contains_key(METRICS_FILE),
            )
        })
        .chain(inv.groups.iter().filter(|g| g.name != "all").map(|g| {
            (
                format!("group `{}`", g.name),
                &g.origins,
                g.vars.contains_key(METRICS_FILE) || g.file_vars.contains_key(METRICS_FILE),
            )
        }));
    for (owner, origins, sets) in owners {
        if !sets {
            continue;
        }
        let message = format!(
            "{METRICS_FILE} is set on {owner} and ignored: it is a setting of the controller, read from group `all` only"
        );
        diags.push(located(
            Diagnostic::warning(PlanWarning::Inventory { message })
                .with_help("set it once under `all` (`[all:vars]`, or group_vars/all)"),
            origins.get(METRICS_FILE),
        ));
    }
}

fn located(d: Diagnostic, origin: Option<&Origin>) -> Diagnostic {
    match origin {
        Some(o) => d.at(&o.file, o.loc),
        None => d,
    }
}
