//! The stages of a plan with stages in the review: each stage's place in the stage graph
//! (what it waits for, its targets), its own waves, steps, checks and failure policy (built
//! from the artifact's stage view exactly as a plan without stages is), and what its failure
//! does to the other stages.

use sluice_plan::estimate::Estimate;
use sluice_plan::{FailureAction, PlanArtifact, RollbackScope, StagePlan};

use crate::build::{Sections, sections};
use crate::model::StageView;

/// Every stage of `plan` in execution order; empty for a plan without stages.
pub fn stage_views(plan: &PlanArtifact) -> Vec<StageView> {
    let estimate = Estimate::of(plan);
    plan.stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let view = plan.stage_view(stage);
            let Sections {
                mut waves,
                steps,
                health,
                failure,
            } = sections(&view);
            // The pause of a stage's last wave holds the stages that wait for it (the executor's
            // pause between stages); with none waiting it does nothing, as after a plan's last.
            let pause = view.waves.last().and_then(|w| w.pause_ms);
            if let (Some(last), Some(ms)) = (waves.last_mut(), pause)
                && !dependants(plan, stage).is_empty()
            {
                last.pause_ms = Some(ms);
                last.pause_holds_stages = true;
            }
            StageView {
                number: i + 1,
                name: stage.name.clone(),
                after: stage.after.clone(),
                targets: stage.targets.clone(),
                hosts: stage.hosts.clone(),
                waves,
                steps,
                health,
                failure,
                on_failure: stage_sentence(plan, i),
                estimate_ms: estimate.per_stage.get(i).map_or(0, |e| e.ms),
                ends_ms: estimate.per_stage.get(i).map_or(0, |e| e.ends_ms),
            }
        })
        .collect()
}

/// What a failure of stage `index` does beyond its own waves: the stages that wait for it do
/// not start, and with `rollback_scope: run` the stages that finished before are undone.
pub fn stage_sentence(plan: &PlanArtifact, index: usize) -> String {
    let Some(stage) = plan.stages.get(index) else {
        return String::new();
    };
    let waiting = dependants(plan, stage);
    let stops = if waiting.is_empty() {
        "no stage waits for it".to_string()
    } else {
        let list: Vec<&str> = waiting.iter().map(|s| s.name.as_str()).collect();
        match list.as_slice() {
            [one] => format!("stage {one}, which waits for it, does not start"),
            _ => format!(
                "stages {}, which wait for it, do not start",
                list.join(", ")
            ),
        }
    };
    let earlier: Vec<&str> = plan.stages[..index]
        .iter()
        .rev()
        .map(|s| s.name.as_str())
        .collect();
    let undo = match (stage.failure.action, stage.failure.rollback_scope) {
        (FailureAction::Rollback, RollbackScope::Run) if !earlier.is_empty() => format!(
            "; after its own hosts are rolled back, the stages that finished are rolled back \
             newest first ({})",
            earlier.join(", ")
        ),
        (FailureAction::Rollback, _) => "; the earlier stages are not rolled back".to_string(),
        _ => String::new(),
    };
    format!(
        "If stage {} fails, {stops}{undo}; stages that do not wait for it finish what they started.",
        stage.name
    )
}

/// Every stage that waits for `stage`, directly or through others, in execution order.
fn dependants<'a>(plan: &'a PlanArtifact, stage: &StagePlan) -> Vec<&'a StagePlan> {
    let mut found: Vec<&str> = vec![stage.name.as_str()];
    let mut out = Vec::new();
    // Stages are in execution order, so one pass sees every stage after those it waits for.
    for s in &plan.stages {
        if s.after.iter().any(|a| found.contains(&a.as_str())) {
            found.push(&s.name);
            out.push(s);
        }
    }
    out
}
