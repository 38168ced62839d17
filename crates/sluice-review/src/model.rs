//! The review's data: everything every format shows, built once from a plan artifact
//! ([`crate::build`]). `sluice plan --format json` prints it as is; docs/review-json.md describes
//! each field. Host lists are complete here (every name); only the human formats shorten runs of
//! consecutive hosts to `first … last`.

use serde::Serialize;
use sluice_plan::warning::PlanWarning;

/// Version of this JSON layout; bumped on any change a reader would misread.
pub const REVIEW_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Review {
    pub review_format: u32,
    pub summary: Summary,
    pub warnings: Vec<WarningView>,
    /// The plan's `backup:` gate: run on every host before its first change step, a phase of
    /// its own before the waves' steps. Absent when the plan has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupView>,
    pub waves: Vec<WaveView>,
    /// Every step: `run_once` steps first (they run before the first wave), then the steps every
    /// host runs, in execution order.
    pub steps: Vec<StepView>,
    pub health: HealthView,
    pub failure: FailureView,
    /// Every targeted host in plan order (inventory order; waves are consecutive slices of it).
    pub hosts: Vec<HostView>,
    pub differences: Differences,
    pub approvals: ApprovalsView,
    /// A plan with stages: the stage graph and each stage's own waves, steps, checks and
    /// failure policy, in execution order. Absent for a plan without stages (one stage: the
    /// whole review above).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageView>,
    /// The most stages that run at once; only with stages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_concurrency: Option<usize>,
}

/// One stage of a plan with stages, as the review shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StageView {
    /// 1-based position in execution order.
    pub number: usize,
    pub name: String,
    /// The stages it waits for (every host of each finishes before this one starts).
    pub after: Vec<String>,
    /// The groups and hosts the plan names as its targets.
    pub targets: Vec<String>,
    /// The hosts they resolve to.
    pub hosts: Vec<String>,
    pub waves: Vec<WaveView>,
    /// `run_once` steps first, then the steps every host of the stage runs.
    pub steps: Vec<StepView>,
    pub health: HealthView,
    pub failure: FailureView,
    /// What a failure of this stage does to the other stages, in plain words.
    pub on_failure: String,
    /// The stage alone, as a plan of its own (see `Summary::estimate`).
    pub estimate_ms: u64,
    /// When it is expected to end, from the start of the run: its estimate after the latest end
    /// of the stages it waits for.
    pub ends_ms: u64,
}

impl Review {
    /// The review of one stage: this review with the stage's waves, steps, checks and failure
    /// policy in place of the whole plan's, for the renderers' per-plan sections.
    pub fn for_stage(&self, stage: &StageView) -> Review {
        Review {
            waves: stage.waves.clone(),
            steps: stage.steps.clone(),
            health: stage.health.clone(),
            failure: stage.failure.clone(),
            stages: Vec::new(),
            stage_concurrency: None,
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub description: Option<String>,
    pub ticket: Option<String>,
    pub plan_hash: String,
    /// The inventory file the plan was compiled against (`None`: an artifact older than the
    /// field).
    pub inventory: Option<String>,
    /// The environment the inventory names, if it names one.
    pub environment: Option<String>,
    /// The `--limit` the plan was compiled with, if any: only the targeted hosts it matches.
    pub limit: Option<String>,
    /// The plan's `promotion:` rule and the evidence found; absent when the plan has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionView>,
    pub window: Option<WindowView>,
    /// The moment the window and its warnings were judged at (now, or `--as-of`).
    pub judged_at: jiff::Timestamp,
    pub host_count: usize,
    pub wave_count: usize,
    pub step_count: usize,
    pub secrets: Vec<SecretView>,
    /// The plan's `notify:` webhooks, in plan order (empty without any).
    pub notify: Vec<NotifyView>,
    /// The secret whose value answers sudo's password prompt, if any (its name, never a value).
    pub become_password: Option<String>,
    /// `host_lease: true`: each host is leased on the host itself while it is in flight.
    /// Absent when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_lease: bool,
    pub estimate: EstimateView,
}

/// `promotion: { after, within }` and what was found for it.
#[derive(Clone, Debug, Serialize)]
pub struct PromotionView {
    pub after: String,
    pub within_ms: u64,
    /// sha256 of the plan file: the change evidence must be of.
    pub change_hash: String,
    /// The evidence found, or why none counts, in a sentence.
    pub evidence: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SecretView {
    pub name: String,
    /// Where the value is read at run time: `env NAME` or `file PATH`.
    pub from: String,
}

/// One webhook of `notify:`, as much of it as may be shown.
#[derive(Clone, Debug, Serialize)]
pub struct NotifyView {
    /// `scheme://host:port/path` of its URL (never the query string or a user name, which may
    /// carry tokens), or `<secret NAME>` when a secret holds the URL.
    pub endpoint: String,
    /// The secret whose value is the URL (`url_secret`), if one is.
    pub url_secret: Option<String>,
    pub events: Vec<sluice_model::NotifyEvent>,
    /// The secret whose value signs each payload (HMAC-SHA256), if the target signs.
    pub signed_with: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WindowView {
    /// The window as the plan declares it.
    pub declared: String,
    #[serde(rename = "state")]
    pub state: WindowState,
    /// The opening the judged moment is in, or the next one; `None` once the window ended.
    pub opening: Option<Opening>,
    /// How long one opening lasts, by the clock.
    pub length_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    Open,
    Upcoming,
    Ended,
}

/// One opening of the window: its instants, and the same in the local time zone of the machine
/// that rendered the review.
#[derive(Clone, Debug, Serialize)]
pub struct Opening {
    /// RFC 3339, UTC.
    pub start: jiff::Timestamp,
    pub end: jiff::Timestamp,
    /// `2026-11-28 23:00 CET`.
    pub start_local: String,
    pub end_local: String,
    /// The local zone's name (IANA when known).
    pub local_zone: String,
}

/// The duration estimate (sluice_plan::estimate): every step up to its timeout.
#[derive(Clone, Debug, Serialize)]
pub struct EstimateView {
    pub per_host_ms: u64,
    pub total_ms: u64,
    /// In a plan with stages, the stages on the longest path through the stage graph, whose
    /// estimates add up to `total_ms` (absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub longest_path: Vec<String>,
    /// Assumed for a step without a timeout.
    pub step_without_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WarningView {
    /// The stable code (`no_undo`, `window_ended`, …) and the facts of the warning.
    #[serde(flatten)]
    pub warning: PlanWarning,
    pub message: String,
    pub help: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WaveView {
    /// 1-based position.
    pub number: usize,
    pub name: String,
    pub hosts: Vec<String>,
    pub concurrency: usize,
    /// Failures the wave tolerates; one more fails it.
    pub max_failed: usize,
    /// The run waits for an approval before this wave starts.
    pub approval: bool,
    /// Soak time after this wave, before the next one starts (`None` for the last wave, which
    /// has no next one, whatever the plan declares — except the last wave of a stage that other
    /// stages wait for, whose pause holds them: then `pause_holds_stages`).
    pub pause_ms: Option<u64>,
    /// The pause is after a stage's last wave and holds the stages that wait for it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pause_holds_stages: bool,
    /// The stage the wave belongs to; absent in a plan without stages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub estimate_ms: u64,
    /// What happens when the wave fails, in plain words.
    pub on_failure: String,
}

/// A step's confirm-or-revert window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfirmView {
    /// The timer on the host fires this long after it was armed, just before the step.
    pub within_ms: u64,
    /// How long after the window sluice waits for a host that reverted to answer again.
    pub revert_timeout_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepView {
    pub id: String,
    /// `None` for a step every host runs; the host for a `run_once` step.
    pub run_once_on: Option<String>,
    pub after: Vec<String>,
    /// The user the step runs as through sudo (`root` for `become: true`).
    pub become_user: Option<String>,
    pub timeout_ms: Option<u64>,
    pub retries: u32,
    pub retry_delay_ms: u64,
    pub register: Option<String>,
    pub idempotent: bool,
    /// Read-only by contract (`check: true`): `sluice apply --check` runs it.
    pub check: bool,
    /// A `reboot:` step: how long it waits for the host to come back with a new boot id. Its
    /// `run` is the reboot command. `None` for any other step.
    pub reboot_timeout_ms: Option<u64>,
    /// A step with `confirm:`: the window in which sluice must reach the host again after
    /// it, else the host runs the step's undo by itself. `None` for any other step.
    pub confirm: Option<ConfirmView>,
    pub run: CommandView,
    pub undo: Option<CommandView>,
    pub skip_if: Option<CommandView>,
}

/// One entry of the plan's `backup:` gate.
#[derive(Clone, Debug, Serialize)]
pub struct BackupView {
    pub id: String,
    /// The user it runs as through sudo (`root` for `become: true`).
    pub become_user: Option<String>,
    /// Bounds `run` and `verify` each.
    pub timeout_ms: Option<u64>,
    pub run: CommandView,
    pub verify: CommandView,
}

/// A command as every host gets it: one form when all hosts agree, else one per group of hosts.
#[derive(Clone, Debug, Serialize)]
pub struct CommandView {
    pub forms: Vec<Form>,
}

/// One way a command reads, and the hosts it reads so for. A form may contain host holes: the
/// host's own name or address, checked against each listed host's rendered command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Form {
    pub pieces: Vec<Piece>,
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Piece {
    /// Text exactly as the hosts run it. Secrets show as `***`, values registered by an
    /// earlier step as `<NAME from step ID>`.
    Text(String),
    /// Each host's own name.
    HostName,
    /// Each host's own address.
    HostAddress,
}

impl Form {
    /// True when the form is the same text for every host it lists.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HealthView {
    /// Extra rounds after the first failing one.
    pub retries: u32,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub checks: Vec<CheckView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckView {
    pub name: String,
    pub kind: CheckKind,
    /// The command (run), URL (http) or `host:port` (tcp).
    pub target: CommandView,
    /// For http: the status that counts as healthy (`None`: any 2xx).
    pub expect_status: Option<u16>,
    /// For http: how the answer is judged beyond its status; `None` for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheckView>,
}

/// An http check's trust, redirects and body match.
#[derive(Clone, Debug, Serialize)]
pub struct HttpCheckView {
    /// How an https certificate is checked; `None` for an http:// URL.
    pub trust: Option<Trust>,
    /// The `ca_file` as the plan names it (with `trust: ca_file`).
    pub ca_file: Option<String>,
    pub follow_redirects: bool,
    pub body_contains: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Against the controller's system trust store.
    SystemRoots,
    /// Against the check's own certificate authority.
    CaFile,
    /// Not at all (`insecure: true`).
    Insecure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Run,
    Http,
    Tcp,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailureView {
    /// The plan's budget as written: `0` failed hosts per wave, or `10%` of each wave.
    pub budget: String,
    pub action: sluice_plan::FailureAction,
    pub rollback_scope: sluice_plan::RollbackScope,
    /// What counts as a failed host.
    pub failed_host: String,
    /// What happens when a `run_once` step fails, if the plan has any.
    pub run_once: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostView {
    pub name: String,
    pub wave: String,
    pub transport: sluice_plan::TransportKind,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    /// Jump hosts, outermost first.
    pub via: Vec<String>,
}

/// What is not the same on every host.
#[derive(Clone, Debug, Serialize)]
pub struct Differences {
    /// Hosts grouped by the commands they run: hosts of one group run the same forms of every
    /// step and check. One group means every host runs the same commands (apart from its own
    /// name and address).
    pub command_groups: Vec<Vec<String>>,
    /// The steps and checks whose commands have more than one form.
    pub commands: Vec<CommandDifference>,
    /// Variables whose value is not the same on every host.
    pub vars: Vec<ValueDifference>,
    /// Connection settings (port, user, jump hosts, transport) not the same on every host.
    pub connection: Vec<ValueDifference>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CommandDifference {
    /// `step drain (run)`, `check app (http)`.
    pub what: String,
    pub forms: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValueDifference {
    pub name: String,
    pub values: Vec<ValueGroup>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValueGroup {
    /// The value as JSON text, or `(unset)`.
    pub value: String,
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApprovalsView {
    /// Whether an audit store was read, and which.
    pub source: ApprovalSource,
    /// Approvals of exactly this plan hash, oldest first.
    pub recorded: Vec<ApprovalView>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApprovalSource {
    Store { path: String },
    NotChecked { reason: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct ApprovalView {
    /// Record number in the audit store.
    pub seq: u64,
    /// When it was recorded, UTC.
    pub at: String,
    pub by: String,
    pub comment: Option<String>,
    pub refused: bool,
}
