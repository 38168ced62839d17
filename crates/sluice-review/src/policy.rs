//! The failure policy in plain words: for each wave, what happens when it fails, as the
//! executor does it (crates/sluice-exec/src/run.rs, `after_failure`).

use sluice_plan::{FailureAction, FailureBudget, PlanArtifact, RollbackScope};

/// What counts as a failed host, as the executor counts it.
pub const FAILED_HOST: &str = "A host fails when one of its steps fails (after its retries) or \
times out, when its health checks do not pass, or when it cannot be reached.";

/// The sentence for wave `index` of `plan`.
pub fn wave_sentence(plan: &PlanArtifact, index: usize) -> String {
    let Some(wave) = plan.waves.get(index) else {
        return String::new();
    };
    let n = wave.hosts.len();
    let m = wave.max_failed;
    let name = &wave.name;
    let next = plan.waves.get(index + 1).map(|w| w.name.as_str());
    if m >= n {
        return match next {
            Some(next) => format!(
                "Wave {name} tolerates failures on all of its {n} host(s): whatever happens \
                 there, the run goes on to wave {next}; a run with failed hosts ends \
                 `tolerated` (exit 6), not `succeeded`."
            ),
            None => format!(
                "Wave {name} tolerates failures on all of its {n} host(s): whatever happens \
                 there, the run ends without rolling back; with failed hosts it ends \
                 `tolerated` (exit 6), not `succeeded`."
            ),
        };
    }
    let tolerated = match m {
        0 => String::new(),
        1 => " A single failed host is tolerated: the run goes on and ends `tolerated` (exit 6), \
              not `succeeded`."
            .to_string(),
        _ => format!(
            " Up to {m} failed hosts are tolerated: the run goes on and ends `tolerated` \
             (exit 6), not `succeeded`."
        ),
    };
    let condition = match (m, n) {
        (0, 1) => format!("If the one host of wave {name} fails"),
        (0, _) => format!("if any of the {n} hosts of wave {name} fails"),
        _ => format!("if more than {m} of the {n} hosts of wave {name} fail"),
    };
    let condition = capitalise(&condition);
    // With fewer slots than hosts, hosts still waiting when the budget is exceeded never start.
    let all_started = wave.concurrency >= n;
    let those = match (all_started, n) {
        (true, 1) => "that host is rolled back".to_string(),
        (true, _) => format!("those {n} are rolled back"),
        (false, _) => {
            "no further host of it starts, those that started are rolled back".to_string()
        }
    };
    let stop_starting = if all_started {
        ""
    } else {
        "no further host of it starts, "
    };
    let consequence = match plan.failure.action {
        FailureAction::Rollback => {
            let earlier = earlier_waves(plan, index);
            match plan.failure.rollback_scope {
                RollbackScope::Stage | RollbackScope::Run if !earlier.is_empty() => {
                    format!("{those}, then {earlier}, and nothing else starts")
                }
                _ => format!("{those} and nothing else starts"),
            }
        }
        FailureAction::Halt => format!(
            "{stop_starting}nothing is rolled back and nothing else starts: the run stops for \
             a person to look"
        ),
        FailureAction::Continue => match next {
            Some(next) => format!(
                "the wave is recorded as failed, nothing is rolled back and the run goes on \
                 with wave {next}"
            ),
            None => "the wave is recorded as failed, nothing is rolled back and the run ends \
                     as failed"
                .to_string(),
        },
    };
    format!("{condition}, {consequence}.{tolerated}")
}

/// `wave canary`, `waves canary and early`, plus the run_once steps when the plan has any (a
/// run-scoped rollback undoes them last).
fn earlier_waves(plan: &PlanArtifact, index: usize) -> String {
    let mut names: Vec<String> = plan.waves[..index]
        .iter()
        .rev()
        .map(|w| w.name.clone())
        .collect();
    let waves = match names.len() {
        0 => String::new(),
        1 => format!("wave {}", names[0]),
        _ => {
            let last = names.pop().unwrap_or_default();
            format!("waves {} and {last} (newest first)", names.join(", "))
        }
    };
    match (waves.is_empty(), plan.run_once.is_empty()) {
        (_, true) => waves,
        (true, false) => "the run-once steps".to_string(),
        (false, false) => format!("{waves}, then the run-once steps"),
    }
}

/// What a failed `run_once` step leads to, when the plan has any.
pub fn run_once_sentence(plan: &PlanArtifact) -> Option<String> {
    if plan.run_once.is_empty() {
        return None;
    }
    let consequence = match plan.failure.action {
        FailureAction::Rollback => "the run-once steps that ran are rolled back",
        FailureAction::Halt | FailureAction::Continue => "nothing is rolled back",
    };
    Some(format!(
        "If a run-once step fails, {consequence} and no wave starts."
    ))
}

/// The plan's budget as written.
pub fn budget_text(budget: FailureBudget) -> String {
    match budget {
        FailureBudget::Count(n) => format!("{n} failed host(s) per wave"),
        FailureBudget::Percent(p) => format!("{p}% of each wave's hosts, rounded down"),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
