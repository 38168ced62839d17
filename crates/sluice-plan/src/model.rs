//! The change plan as declared, after schema checks and before compilation.
//!
//! Values a later phase may need to point at keep their [`Loc`], so an undefined variable or an
//! unknown `after` is reported at the line that wrote it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::artifact::{FailurePolicy, HealthPolicy, SecretSource, StepSpec, Window};
use crate::diagnostic::{Loc, SourceFile};
use crate::schema::Amount;

/// A change plan file, read and checked.
#[derive(Debug)]
pub struct Plan {
    pub file: Arc<SourceFile>,
    pub name: String,
    pub description: Option<String>,
    pub ticket: Option<String>,
    pub targets: Vec<(String, Loc)>,
    pub vars: BTreeMap<String, serde_json::Value>,
    pub secrets: Vec<(SecretSource, Loc)>,
    /// `become_password:`, the name of a declared secret, and where it is written.
    pub become_password: Option<(String, Loc)>,
    /// `notify:` webhooks, checked (URLs, event names, secret names).
    pub notify: Vec<crate::notify::NotifyTarget>,
    pub window: Option<Window>,
    pub waves: Vec<WaveDecl>,
    pub concurrency: Option<usize>,
    pub failure: FailurePolicy,
    pub health: HealthPolicy,
    pub checks: Vec<CheckDecl>,
    pub steps: Vec<StepDecl>,
    /// `backup:`, run on every host before its first change step.
    pub backups: Vec<crate::backup::BackupDecl>,
    /// `host_lease: true|false`; `None` when the plan leaves it to the inventory's `defaults`.
    pub host_lease: Option<bool>,
    /// `promotion:`, the run the change needs elsewhere first.
    pub promotion: Option<crate::artifact::Promotion>,
    /// `stages:` in declaration order; empty for a plan without stages (one implicit stage).
    pub stages: Vec<StageDecl>,
    /// `stage_concurrency:`, the most stages that run at once.
    pub stage_concurrency: Option<usize>,
    /// Set on the plan [`crate::stages`] compiles for one stage: the stage's name and what the
    /// other stages export to it. `None` for the plan as read.
    pub stage: Option<StageScope>,
}

/// One entry of `stages:`, as declared. What it leaves out is the plan's top-level value; the
/// readers have already merged `failure` and `health` key by key.
#[derive(Debug)]
pub struct StageDecl {
    pub name: String,
    pub targets: Vec<(String, Loc)>,
    /// `None` when the key is absent (the default, "the previous stage", applies).
    pub after: Option<Vec<(String, Loc)>>,
    pub steps: Option<Vec<StepDecl>>,
    pub waves: Option<Vec<WaveDecl>>,
    pub concurrency: Option<usize>,
    pub failure: FailurePolicy,
    /// The stage's health policy and checks, when it has a `health` block.
    pub health: Option<(HealthPolicy, Vec<CheckDecl>)>,
    pub loc: Loc,
}

/// What the plan compiled for one stage knows of the others: `{{stages.NAME.VAR}}` is
/// checked and resolved against it.
#[derive(Clone, Debug, Default)]
pub struct StageScope {
    pub name: String,
    /// Every stage by name: whether it runs before this one (through `after`), and the values
    /// its `run_once` steps register (variable name → step id).
    pub stages: BTreeMap<String, StageExports>,
}

#[derive(Clone, Debug, Default)]
pub struct StageExports {
    pub before: bool,
    pub registers: BTreeMap<String, String>,
}

/// A template string and where it is written.
#[derive(Clone, Debug)]
pub struct Template {
    pub text: String,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct WaveDecl {
    pub name: String,
    pub size: Amount,
    pub pause_ms: Option<u64>,
    pub approval: bool,
    /// Overrides the plan's `concurrency` for this wave.
    pub concurrency: Option<usize>,
    /// Overrides the plan's failure budget for this wave (`max_failed` of the wave).
    pub max_failed: Option<crate::artifact::FailureBudget>,
    pub loc: Loc,
}

#[derive(Clone, Debug)]
pub struct CheckDecl {
    pub name: String,
    pub probe: ProbeDecl,
}

#[derive(Clone, Debug)]
pub enum ProbeDecl {
    Run(Template),
    Http {
        url: Template,
        expect_status: Option<u16>,
        options: crate::artifact::HttpOptions,
    },
    Tcp(Template),
}

#[derive(Clone, Debug)]
pub struct StepDecl {
    /// `after` is empty here; [`StepDecl::after`] holds what was written.
    pub spec: StepSpec,
    /// `None` when the key is absent (the default, "the previous step", applies).
    pub after: Option<Vec<(String, Loc)>>,
    pub run: Template,
    pub undo: Option<Template>,
    pub skip_if: Option<Template>,
    /// `delegate: HOST` of a `run_once` step: the inventory host it runs on instead of the
    /// first targeted host.
    pub delegate: Option<(String, Loc)>,
    pub loc: Loc,
}
