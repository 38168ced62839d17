//! Warnings that need the plan and inventory as written, found while compiling.

use std::collections::BTreeSet;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::inventory::Inventory;
use crate::model::Plan;
use crate::schema::nearest;
use crate::template::{RefKind, Template};
use crate::warning::PlanWarning;

/// A secret no command, check or `become_password` refers to.
pub fn unused_secrets<'t>(
    plan: &Plan,
    templates: impl Iterator<Item = &'t Template>,
    diags: &mut Diagnostics,
) {
    let used: BTreeSet<&str> = templates
        .flat_map(|t| t.references())
        .filter(|r| r.kind == RefKind::Secret)
        .map(|r| r.path[0].as_str())
        // The become password is used by sudo, not by a command.
        .chain(plan.become_password.as_ref().map(|(n, _)| n.as_str()))
        // A webhook's signing key is used by the controller, not by a command.
        .chain(plan.notify.iter().filter_map(|t| t.secret.as_deref()))
        // So is a webhook's URL held in a secret.
        .chain(plan.notify.iter().filter_map(|t| match &t.endpoint {
            crate::notify::Endpoint::Secret(name) => Some(name.as_str()),
            crate::notify::Endpoint::Url(_) => None,
        }))
        .collect();
    for (s, loc) in &plan.secrets {
        if !used.contains(s.name.as_str()) {
            let warning = PlanWarning::UnusedSecret {
                secret: s.name.clone(),
            };
            diags.push(Diagnostic::warning(warning).at(&plan.file, *loc));
        }
    }
}

/// A `--var` whose name nothing uses: most likely a typo of one that is (`verison` for
/// `version`), which would otherwise be silently ignored while the plan runs the old value.
pub fn unknown_cli_vars<'t>(
    plan: &Plan,
    inventory: &Inventory,
    cli_vars: &[(String, String)],
    templates: impl Iterator<Item = &'t Template>,
    diags: &mut Diagnostics,
) {
    if cli_vars.is_empty() {
        return;
    }
    let mut known: BTreeSet<&str> = plan.vars.keys().map(String::as_str).collect();
    known.extend(
        inventory
            .groups
            .iter()
            .flat_map(|g| g.vars.keys())
            .chain(inventory.hosts.iter().flat_map(|h| h.vars.keys()))
            .map(String::as_str),
    );
    known.extend(
        templates
            .flat_map(|t| t.references())
            .filter(|r| r.kind == RefKind::Vars)
            .filter_map(|r| r.path.first())
            .map(String::as_str),
    );
    let candidates: Vec<&str> = known.iter().copied().collect();
    for (name, _) in cli_vars {
        if known.contains(name.as_str()) {
            continue;
        }
        let warning = PlanWarning::UnknownVar {
            name: name.clone(),
            did_you_mean: nearest(name, &candidates).map(str::to_string),
        };
        diags.push(Diagnostic::warning(warning));
    }
}
