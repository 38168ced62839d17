//! A stage of a compiled plan as a plan of its own: what the executor runs for the stage and
//! what the review shows of it. A plan without stages is one stage, the plan itself.

use std::collections::HashSet;

use crate::artifact::{HostIndex, HostPlan, PlanArtifact, StagePlan};

impl PlanArtifact {
    /// The plan of `stage` alone: its steps, `run_once` steps, hosts (with only this stage's
    /// steps and checks), waves and policies, under the plan's name, window, secrets and hash.
    /// It has no stages itself. Not sealed: its `plan_hash` is the whole plan's.
    pub fn stage_view(&self, stage: &StagePlan) -> PlanArtifact {
        let of = |tag: &Option<String>| tag.as_deref() == Some(stage.name.as_str());
        let steps: Vec<_> = self
            .steps
            .iter()
            .filter(|s| of(&s.stage))
            .cloned()
            .collect();
        let ids: HashSet<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        let hosts = stage
            .hosts
            .iter()
            .filter_map(|name| self.host(name))
            .map(|h| HostPlan {
                name: h.name.clone(),
                connection: h.connection.clone(),
                vars: h.vars.clone(),
                steps: h
                    .steps
                    .iter()
                    .filter(|s| ids.contains(s.id.as_str()))
                    .cloned()
                    .collect(),
                health: h.health.iter().filter(|c| of(&c.stage)).cloned().collect(),
                backup: h.backup.clone(),
            })
            .collect();
        PlanArtifact {
            format: self.format,
            plan_hash: self.plan_hash.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            ticket: self.ticket.clone(),
            planned_for: self.planned_for.clone(),
            window: self.window.clone(),
            secrets: self.secrets.clone(),
            become_password: self.become_password.clone(),
            limit: self.limit.clone(),
            policy: self.policy.clone(),
            notify: self.notify.clone(),
            promotion: self.promotion.clone(),
            change_hash: self.change_hash.clone(),
            environment: self.environment.clone(),
            backup: self.backup.clone(),
            host_lease: self.host_lease,
            run_once: self
                .run_once
                .iter()
                .filter(|o| ids.contains(o.step.id.as_str()))
                .cloned()
                .collect(),
            steps,
            hosts,
            waves: self
                .waves
                .iter()
                .filter(|w| of(&w.stage))
                .cloned()
                .collect(),
            failure: stage.failure.clone(),
            health: stage.health.clone(),
            stages: Vec::new(),
            stage_concurrency: None,
            host_index: HostIndex::default(),
        }
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StagePlan> {
        self.stages.iter().find(|s| s.name == name)
    }
}
