//! Reading `stages:` into [`StageDecl`]s: every key of a stage checked, its `failure` and
//! `health` merged key by key over the plan's top-level values.

use crate::artifact::{FailurePolicy, HealthPolicy};
use crate::health::read_health;
use crate::model::{CheckDecl, StageDecl};
use crate::node::Node;
use crate::plan::{positive, read_failure, read_steps, read_waves};
use crate::schema::Reader;

const STAGE_KEYS: &[&str] = &[
    "name",
    "targets",
    "after",
    "steps",
    "waves",
    "concurrency",
    "health",
    "failure",
];

/// Reads the `stages` list. `failure` and `health` are the plan's top-level values, which a
/// stage's own blocks override key by key.
pub(crate) fn read_stages(
    r: &mut Reader,
    node: &Node,
    failure: &FailurePolicy,
    health: (&HealthPolicy, &[CheckDecl]),
) -> Vec<StageDecl> {
    let items = r.as_seq(node, "stages");
    if items.is_empty() {
        r.error_help(
            node.loc,
            "`stages` is empty",
            "declare at least one stage, or remove `stages` and use top-level `targets` and `steps`",
        );
    }
    let mut stages: Vec<StageDecl> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let fallback = format!("stage {}", i + 1);
        let Some(f) = r.fields(item, STAGE_KEYS, &fallback) else {
            continue;
        };
        let Some(name) = f.get("name").and_then(|n| r.as_str(n, &fallback)) else {
            r.error(item.loc, format!("{fallback} has no `name`"));
            continue;
        };
        let name_loc = f.get("name").map_or(item.loc, |n| n.loc);
        if !valid_name(&name) {
            // `/` joins a stage's name to its steps' and waves' names in the artifact.
            r.error_help(
                name_loc,
                format!("stage name `{name}` is not a valid name"),
                "use letters, digits, `-` and `_`",
            );
        }
        if stages.iter().any(|s| s.name == name) {
            r.error(name_loc, format!("two stages are named `{name}`"));
            continue;
        }
        let context = format!("stage `{name}`");
        let targets = match f.get("targets") {
            Some(n) => r.as_str_list(n, &format!("{context}: targets")),
            None => {
                r.error_help(
                    item.loc,
                    format!("{context} has no `targets`"),
                    "name the groups or hosts this stage changes",
                );
                Vec::new()
            }
        };
        let after = f
            .get("after")
            .map(|n| r.as_str_list(n, &format!("{context}: after")));
        let steps = f.get("steps").map(|n| read_steps(r, n));
        let waves = f.get("waves").map(|n| read_waves(r, n));
        let concurrency = f
            .get("concurrency")
            .and_then(|n| positive(r, n, &format!("{context}: concurrency")));
        let failure = read_failure(r, f.get("failure"), failure);
        let health = f
            .get("health")
            .map(|n| read_health(r, Some(n), health.0, health.1));
        stages.push(StageDecl {
            name,
            targets,
            after,
            steps,
            waves,
            concurrency,
            failure,
            health,
            loc: item.loc,
        });
    }
    stages
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
