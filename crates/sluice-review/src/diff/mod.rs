//! `sluice plan diff OLD.json NEW.json`: what changed between two saved plan artifacts, so a
//! change board reviews only the delta of a resubmitted change.
//!
//! Compared: the summary (name, ticket, inventory, window, secrets…), hosts (added, removed,
//! moved between waves, connection and variable changes), waves (budgets, concurrency, gates),
//! steps (settings, and a unified diff of each command's rendered forms), health checks, and
//! the failure policy. Commands are compared as the review shows them (forms per group of
//! hosts, [`crate::forms`]), so a change on every host is one line, not one per host.
//!
//! [`PlanDiff`] is also the JSON of `--format json`; [`render`] writes text and Markdown.

mod compare;
pub mod render;

use serde::Serialize;
use sluice_plan::PlanArtifact;

use crate::approvals;
use crate::build::{ReviewInput, build};
use crate::when::Clock;

/// Everything that differs between two artifacts; empty lists when nothing did.
#[derive(Clone, Debug, Serialize)]
pub struct PlanDiff {
    pub old: Side,
    pub new: Side,
    /// Same plan hash: the artifacts are the same plan.
    pub identical: bool,
    pub summary: Vec<FieldChange>,
    pub hosts: HostChanges,
    pub waves: Vec<WaveChange>,
    pub steps: Vec<StepChange>,
    pub health: HealthChanges,
    pub failure: Vec<FieldChange>,
    /// The hashes differ but none of the fields above did (e.g. the artifact's format).
    pub other: bool,
    /// The new artifact's hosts in plan order, to write runs of hosts `first … last`.
    #[serde(skip)]
    pub host_order: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub name: String,
    pub plan_hash: String,
}

/// One value that changed: `field` went from `old` to `new` (`None`: absent on that side).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct HostChanges {
    /// New hosts, with the wave they are in.
    pub added: Vec<HostInWave>,
    /// Hosts no longer targeted, with the wave they were in.
    pub removed: Vec<HostInWave>,
    pub moved: Vec<HostMove>,
    /// Connection settings and variables of hosts in both; hosts with the same change share
    /// one entry.
    pub changed: Vec<HostFieldChange>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostInWave {
    pub host: String,
    pub wave: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostMove {
    pub host: String,
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostFieldChange {
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub change: FieldChange,
}

#[derive(Clone, Debug, Serialize)]
pub struct WaveChange {
    pub wave: String,
    pub change: Change,
    pub fields: Vec<FieldChange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepChange {
    pub step: String,
    pub change: Change,
    /// Settings: after, become, timeout, retries, register, idempotent, run_once.
    pub fields: Vec<FieldChange>,
    pub commands: Vec<CommandChange>,
}

/// A command whose forms changed, with the unified diff of its lines (one line per form,
/// prefixed by its hosts when the hosts do not all read it the same way).
#[derive(Clone, Debug, Serialize)]
pub struct CommandChange {
    /// `run`, `undo`, `skip_if`, or a health check's name.
    pub what: String,
    pub unified_diff: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct HealthChanges {
    /// retries, interval, timeout.
    pub rules: Vec<FieldChange>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<CommandChange>,
}

impl PlanDiff {
    /// Compares two verified artifacts.
    pub fn between(old: &PlanArtifact, new: &PlanArtifact) -> PlanDiff {
        // The reviews give the forms of every command; the clock only affects the window's
        // state, which the diff does not compare.
        let review = |plan: &PlanArtifact| {
            build(ReviewInput {
                plan,
                compile_warnings: Vec::new(),
                clock: Clock::system(),
                approvals: approvals::not_checked("not needed for a diff"),
                promotion_evidence: None,
            })
        };
        let (old_review, new_review) = (review(old), review(new));
        let mut diff = PlanDiff {
            old: Side {
                name: old.name.clone(),
                plan_hash: old.plan_hash.clone(),
            },
            new: Side {
                name: new.name.clone(),
                plan_hash: new.plan_hash.clone(),
            },
            identical: old.plan_hash == new.plan_hash,
            summary: compare::summary(&old_review, &new_review),
            hosts: compare::hosts(old, new),
            waves: compare::waves(&old_review, &new_review),
            steps: compare::steps(&old_review, &new_review),
            health: compare::health(&old_review, &new_review),
            failure: compare::failure(&old_review, &new_review),
            other: false,
            host_order: new.hosts.iter().map(|h| h.name.clone()).collect(),
        };
        diff.other = !diff.identical && !diff.has_listed_changes();
        diff
    }

    fn has_listed_changes(&self) -> bool {
        let h = &self.hosts;
        let health = &self.health;
        !(self.summary.is_empty()
            && h.added.is_empty()
            && h.removed.is_empty()
            && h.moved.is_empty()
            && h.changed.is_empty()
            && self.waves.is_empty()
            && self.steps.is_empty()
            && health.rules.is_empty()
            && health.added.is_empty()
            && health.removed.is_empty()
            && health.changed.is_empty()
            && self.failure.is_empty())
    }
}
