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
    /// `promotion:`, the run the change needs elsewhere first.
    pub promotion: Option<crate::artifact::Promotion>,
}

/// A template string and where it is written.
#[derive(Clone, Debug)]
pub struct Template {
    pub text: String,
    pub loc: Loc,
}

#[derive(Debug)]
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

#[derive(Debug)]
pub struct CheckDecl {
    pub name: String,
    pub probe: ProbeDecl,
}

#[derive(Debug)]
pub enum ProbeDecl {
    Run(Template),
    Http {
        url: Template,
        expect_status: Option<u16>,
        options: crate::artifact::HttpOptions,
    },
    Tcp(Template),
}

#[derive(Debug)]
pub struct StepDecl {
    /// `after` is empty here; [`StepDecl::after`] holds what was written.
    pub spec: StepSpec,
    /// `None` when the key is absent (the default, "the previous step", applies).
    pub after: Option<Vec<(String, Loc)>>,
    pub run: Template,
    pub undo: Option<Template>,
    pub skip_if: Option<Template>,
    pub loc: Loc,
}
