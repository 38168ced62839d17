//! The plan artifact: everything the executor needs, compiled, rendered and hashed.
//!
//! This is the contract between `sluice plan` and `sluice apply`. A change board reviews what
//! `sluice plan` prints from an artifact; `sluice apply --plan` runs that same artifact. The
//! artifact holds no secret values (only where each secret comes from) and no value that is
//! known only at run time (see [`crate::command`]).
//!
//! Durations are whole milliseconds so the canonical JSON, and so the hash, is exact.
//! Maps are `BTreeMap`s so the canonical JSON does not depend on insertion order.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::RenderedCommand;

/// Version of the artifact's JSON layout. Bump it on any change an older executor would misread.
pub const ARTIFACT_FORMAT: u32 = 1;

/// A compiled change plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanArtifact {
    pub format: u32,
    /// sha256 (hex) of the canonical JSON of this artifact with `plan_hash` set to "" and
    /// `planned_for` left out.
    pub plan_hash: String,
    pub name: String,
    pub description: Option<String>,
    pub ticket: Option<String>,
    /// The inventory this artifact was compiled against, for the review. A label, not part of
    /// what runs: the hash leaves it out (the hosts, addresses and commands it produced are all
    /// hashed), so compiling with `./inventory/prod.yaml` or `inventory/prod.yaml` gives the same
    /// plan hash, an approval carries over, and hashes stay what they were before the field
    /// existed. Left out of the JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_for: Option<PlannedFor>,
    pub window: Option<Window>,
    /// Where each secret comes from. Never its value.
    pub secrets: Vec<SecretSource>,
    /// The name of the secret (one of [`PlanArtifact::secrets`]) whose value answers sudo's
    /// password prompt for `become` steps; never the value. Left out of the JSON when unset, so
    /// plans without it keep their bytes and hash. An executor that predates the field drops it
    /// on load and then refuses the artifact (its hash no longer matches), so the format is
    /// unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_password: Option<String>,
    /// The `--limit` patterns the targets were narrowed with (an `@file` given as its lines),
    /// joined by commas. Left out of the JSON when no limit was given, so such plans keep their
    /// bytes and hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The change policy of the inventory it was compiled against (approvals, signed gates,
    /// break-glass), with the text of its allowed_signers file. Left out when the inventory has
    /// none, so plans without a policy keep their bytes and hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::Policy>,
    /// The plan's `notify:` webhooks (URL, events, the name of the signing secret). Left out
    /// when the plan has none, so such plans keep their bytes and hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify::NotifyTarget>,
    /// `promotion:` of the plan. Left out when unset, so plans without it keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// sha256 (hex) of the plan file's bytes: which change this is, whatever inventory it was
    /// compiled against (promotion evidence matches runs by it). Set with `promotion` only, and
    /// left out otherwise, so other plans keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_hash: Option<String>,
    /// The inventory's environment, hashed (unlike [`PlannedFor`], a label) when the plan has
    /// `promotion`: whether evidence is needed, and what a run counts as evidence for, cannot be
    /// edited in a saved artifact. Left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The plan's `backup:` entries (settings; each host's commands are in
    /// [`HostPlan::backup`]): run on every host before its first change step. Left out when
    /// the plan has none, so such plans keep their bytes and hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<crate::backup::BackupSpec>,
    /// `host_lease: true` (the plan's, else the inventory's `defaults`): each host is leased on
    /// the host itself while it is in flight (docs/operations.md, "Host-side leases"). Left out
    /// when false, so plans without it keep their hash.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_lease: bool,
    /// Step definitions in a valid execution order (a topological order of `after`).
    pub steps: Vec<StepSpec>,
    /// Steps with `run_once: true`, rendered for the host they run on, in execution order.
    /// They run before any host of the first wave starts its own steps.
    pub run_once: Vec<RunOnceStep>,
    /// Every targeted host in inventory order, with its connection snapshot and rendered steps.
    pub hosts: Vec<HostPlan>,
    pub waves: Vec<WavePlan>,
    pub failure: FailurePolicy,
    pub health: HealthPolicy,
    /// The plan's stages in a valid order (a topological order of their `after`), each with
    /// its targets and policies; its steps, waves and health checks are the ones tagged with
    /// its name. Left out of the JSON for a plan without stages (one implicit stage: every
    /// step, wave and check above), so such plans keep their bytes and hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StagePlan>,
    /// The most stages that run at once (stages with no order between them); only with stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_concurrency: Option<usize>,
    /// Finds a host by name without scanning [`PlanArtifact::hosts`]. Not serialized, so the
    /// JSON and the hash do not change; built on the first lookup.
    #[serde(skip)]
    pub host_index: HostIndex,
}

/// The positions of [`PlanArtifact::hosts`] sorted by host name, built on first use: the
/// executor looks up every host of every wave, which a scan makes quadratic in the fleet size.
/// Positions rather than names, so the index costs one word per host and copies no name.
///
/// Two artifacts compare equal whatever their indexes hold, and a clone starts without one.
#[derive(Default)]
pub struct HostIndex(OnceLock<Vec<usize>>);

impl Clone for HostIndex {
    fn clone(&self) -> Self {
        HostIndex::default()
    }
}

impl PartialEq for HostIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for HostIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostIndex")
    }
}

/// `promotion:`: the change must first have succeeded on an inventory of environment `after`,
/// finished at most `within_ms` before `apply` (docs/plan-format.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub after: String,
    pub within_ms: u64,
}

/// The inventory a plan was compiled against: what a change board checks it is approving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFor {
    /// The inventory file as given on the command line.
    pub inventory: String,
    /// The environment the inventory names (its `environment:`), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The inventory's `metrics_file:`: where `sluice apply` writes its Prometheus metrics on
    /// this controller. A setting of the controller, not of the change: outside the hash like
    /// the rest of `planned_for`, and left out when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_file: Option<String>,
}

/// Where a secret's value is read from at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSource {
    pub name: String,
    pub from: SecretFrom,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretFrom {
    Env(String),
    File(String),
}

/// A maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// One interval, RFC 3339 timestamps.
    Absolute {
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    },
    /// Every listed weekday from `from` to `to` local time in `timezone` (IANA name). When `to`
    /// is not after `from` the window crosses midnight and ends the next day.
    Recurring {
        days: Vec<Weekday>,
        from: String,
        to: String,
        timezone: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// One stage of a plan with stages: a group of targets that runs its own steps in its own
/// waves, after the stages it waits for. Its steps, waves and health checks are named
/// `STAGE/NAME` and tagged with the stage ([`StepSpec::stage`], [`WavePlan::stage`],
/// [`HealthCheck::stage`]); [`PlanArtifact::stage_view`] gathers them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    pub name: String,
    /// The stages this one waits for (every host of each has finished before it starts).
    pub after: Vec<String>,
    /// The groups and hosts the plan names as the stage's targets.
    pub targets: Vec<String>,
    /// The hosts they resolve to, in inventory order.
    pub hosts: Vec<String>,
    pub failure: FailurePolicy,
    pub health: HealthPolicy,
}

/// A step as declared, with its dependencies resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Unique in the plan: in a plan with stages, `STAGE/ID`.
    pub id: String,
    /// Steps this one waits for, on the same host.
    pub after: Vec<String>,
    pub run_once: bool,
    #[serde(rename = "become")]
    pub become_root: bool,
    pub become_user: Option<String>,
    pub timeout_ms: Option<u64>,
    /// Extra attempts after the first failure.
    pub retries: u32,
    pub retry_delay_ms: u64,
    /// Name under which the trimmed stdout is kept for later templates on the same host.
    pub register: Option<String>,
    /// Largest stdout (bytes) the registered value may come from, when the plan sets one
    /// ([`StepSpec::register_limit`] gives the default otherwise). Written only when set, so
    /// the hash of a plan without it is what it was before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register_limit: Option<u64>,
    /// Safe to run again after a crash left its outcome unknown.
    pub idempotent: bool,
    /// Read-only by contract: `sluice apply --check` runs it (and registers its value) while
    /// it runs nothing else but `skip_if` guards. Written only when true, so the hash of a
    /// plan without it is what it was before the key existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
    /// The stage it belongs to; absent in a plan without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// A `reboot:` step: its `run` reboots the host, and the executor waits for a new boot id.
    /// Absent for any other step, so the hash of a plan without reboots is what it was before
    /// the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<crate::reboot::RebootSpec>,
    /// A step with `confirm:`: a timer armed on the host before it runs reverts it unless
    /// sluice disarms it over a new connection in time. Absent for any other step, so the
    /// hash of a plan without it is what it was before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<crate::confirm::ConfirmSpec>,
}

impl StepSpec {
    /// The largest stdout a registered value may come from: the plan's `register_limit`, else
    /// [`crate::register::DEFAULT_REGISTER_LIMIT`].
    pub fn register_limit(&self) -> u64 {
        self.register_limit
            .unwrap_or(crate::register::DEFAULT_REGISTER_LIMIT)
    }
}

/// A step's commands rendered for one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStep {
    pub id: String,
    pub run: RenderedCommand,
    pub undo: Option<RenderedCommand>,
    /// Runs first; exit 0 means the step is skipped.
    pub skip_if: Option<RenderedCommand>,
}

/// A `run_once` step: runs once per run, on `host`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOnceStep {
    pub host: String,
    pub step: HostStep,
    /// How to reach `host`, only for a step with `delegate:` (the delegated host need not be a
    /// target of its stage, so it may have no [`HostPlan`]). Absent otherwise, so the hash of
    /// a plan without `delegate` is what it was before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
}

impl RunOnceStep {
    /// The host this step runs on, as a plan to connect with: the targeted host's own plan, or
    /// for a delegated host outside the targets, a plan with its connection and no steps.
    pub fn host_plan(&self, artifact: &PlanArtifact) -> Option<HostPlan> {
        if let Some(connection) = &self.connection {
            return Some(HostPlan {
                name: self.host.clone(),
                connection: connection.clone(),
                vars: BTreeMap::new(),
                steps: Vec::new(),
                health: Vec::new(),
                backup: Vec::new(),
            });
        }
        artifact.host(&self.host).cloned()
    }
}

/// One targeted host: how to reach it, the variables it was rendered with, and its steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    pub name: String,
    pub connection: Connection,
    /// The merged variables (plan < groups < host < command line) used to render this host.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// This host's non-`run_once` steps, in the order of [`PlanArtifact::steps`].
    pub steps: Vec<HostStep>,
    pub health: Vec<HealthCheck>,
    /// The plan's backups rendered for this host, in plan order; left out when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<crate::backup::HostBackup>,
}

/// How to reach a host (a snapshot of the resolved inventory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub transport: TransportKind,
    /// Address or DNS name; defaults to the host's name.
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_files: Vec<String>,
    pub known_hosts: Vec<String>,
    pub host_key_checking: HostKeyChecking,
    /// Jump hosts, outermost first, as `[user@]host[:port]`.
    pub proxy_jump: Vec<String>,
    /// `local` transport: the directory commands start in.
    pub workdir: Option<String>,
    /// Environment set for every command on this host.
    pub env: BTreeMap<String, String>,
    /// Every command on this host runs through sudo (Ansible's `ansible_become`), whatever its
    /// step says. Left out of the JSON when unset, so plans without it keep their hash.
    #[serde(rename = "become", default, skip_serializing_if = "Option::is_none")]
    pub become_all: Option<HostBecome>,
    /// How an SSH host runs its commands (`transport_mode:`); unset means a runner. Left out of
    /// the JSON when unset, so plans without it keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_mode: Option<TransportMode>,
}

/// How an SSH host runs its commands, named as in the inventory (`transport_mode:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportMode {
    /// One long-lived POSIX `sh` per host runs every command (the default).
    Runner,
    /// A channel and a login shell per command: for hosts whose login shell is not POSIX.
    Exec,
}

/// sudo for every command of one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBecome {
    /// The user to become (`ansible_become_user`); root when unset. A step's own `become_user`
    /// wins.
    pub user: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Ssh,
    Local,
}

/// Host key policy, named as in the inventory (`host_key_checking:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    /// Unknown or changed key: refuse. The default.
    Strict,
    /// Unknown key: record it in known_hosts and go on. Changed key: refuse.
    AcceptNew,
    /// Accept any key. Loudly named on purpose; recorded in the audit trail.
    InsecureIgnoreHostKeys,
}

/// A batch of hosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WavePlan {
    pub name: String,
    pub hosts: Vec<String>,
    /// Hosts at once within this wave.
    pub concurrency: usize,
    /// Failures this wave tolerates; one more fails the wave. Computed from [`WavePlan::budget`],
    /// else from the plan's budget.
    pub max_failed: usize,
    /// The wave's own budget when it is not the plan's: its `max_failed`, or 0 for a canary (the
    /// first of several waves) that does not set one, so a failed canary stops the run unless
    /// the plan says otherwise. Left out of the JSON when the wave follows the plan (so existing
    /// plans keep their hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<FailureBudget>,
    /// Soak time after this wave succeeds, before the next starts.
    pub pause_ms: Option<u64>,
    /// The run waits for an approval before this wave starts.
    pub approval: bool,
    /// The stage it belongs to (its name is then `STAGE/WAVE`); absent without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// What the plan said about failures (the per-wave numbers are in [`WavePlan::max_failed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailurePolicy {
    pub max_failed: FailureBudget,
    pub action: FailureAction,
    pub rollback_scope: RollbackScope,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureBudget {
    Count(usize),
    /// Percent of the wave's hosts, rounded down.
    Percent(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    Rollback,
    Halt,
    Continue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackScope {
    /// The failed wave's hosts.
    Wave,
    /// Every host the failed stage started (for a plan without stages, the same as `run`).
    Stage,
    /// The failed stage, then every earlier stage, newest first.
    Run,
}

/// Retry and timing rules shared by every health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPolicy {
    /// Extra attempts after the first failure.
    pub retries: u32,
    pub interval_ms: u64,
    pub timeout_ms: u64,
}

/// One health check rendered for one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Unique per host: in a plan with stages, `STAGE/NAME`.
    pub name: String,
    pub probe: HealthProbe,
    /// The stage whose hosts it checks; absent without stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthProbe {
    /// A command on the host; exit 0 is healthy.
    Run(RenderedCommand),
    /// HTTP(S) GET from the controller.
    Http {
        url: String,
        /// The status that counts as healthy; `None` (not written in the plan) is any 2xx.
        /// Artifacts from before the default changed always hold a number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        /// TLS, redirects and body match; left out when all are their defaults, so plans that
        /// use none of them keep their hash.
        #[serde(default, skip_serializing_if = "HttpOptions::is_default")]
        options: HttpOptions,
    },
    /// TCP connect from the controller to `host:port`.
    Tcp { address: String },
}

/// The options of an `http:` health check beyond its URL and status (docs/plan-format.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpOptions {
    /// The response body must contain this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Follow redirects (at most 10); by default a redirect is the response that counts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub follow_redirects: bool,
    /// Accept any certificate (`insecure: true`): a coded warning in every review.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Trust this certificate authority instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<CaFile>,
}

impl HttpOptions {
    pub fn is_default(&self) -> bool {
        *self == HttpOptions::default()
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A `ca_file:` as the plan names it, with its PEM text read when the plan was compiled: the
/// hash then covers which authority is trusted, and a run does not depend on the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaFile {
    pub path: String,
    pub pem: String,
}

/// The change hash of a plan file's text (see [`PlanArtifact::change_hash`]).
pub fn change_hash(plan_text: &str) -> String {
    hex::encode(Sha256::digest(plan_text.as_bytes()))
}

/// Feeds serialized bytes straight into sha256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Failed to hash an artifact (it cannot be serialized: a bug, not bad input).
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize the plan artifact: {0}")]
pub struct ArtifactHashError(#[from] serde_json::Error);

impl PlanArtifact {
    /// sha256 of the canonical JSON with `plan_hash` blanked and `planned_for` left out.
    pub fn compute_hash(&self) -> Result<String, ArtifactHashError> {
        if self.plan_hash.is_empty() && self.planned_for.is_none() {
            return self.hash_as_is();
        }
        let mut unhashed = self.clone();
        unhashed.plan_hash = String::new();
        unhashed.planned_for = None;
        unhashed.hash_as_is()
    }

    /// Streams the canonical JSON into the hasher: a 100,000-host artifact is hundreds of MiB
    /// of JSON, which never needs to exist as one buffer.
    fn hash_as_is(&self) -> Result<String, ArtifactHashError> {
        // serde_json writes a few bytes at a time; batching them makes hashing several times
        // cheaper.
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, HashWriter(Sha256::new()));
        serde_json::to_writer(&mut buffered, self)?;
        let hasher = buffered
            .into_inner()
            .map_err(|e| serde_json::Error::io(e.into_error()))?;
        Ok(hex::encode(hasher.0.finalize()))
    }

    /// Sets `plan_hash` from the content.
    pub fn seal(&mut self) -> Result<(), ArtifactHashError> {
        // Blank the fields in place rather than hashing a clone: the artifact can be large.
        self.plan_hash = String::new();
        let planned_for = self.planned_for.take();
        let hash = self.hash_as_is();
        self.planned_for = planned_for;
        self.plan_hash = hash?;
        Ok(())
    }

    /// True when the stored hash matches the content (the artifact was not edited).
    pub fn hash_is_valid(&self) -> bool {
        self.compute_hash().is_ok_and(|h| h == self.plan_hash)
    }

    /// The host named `name`: a binary search in the host index.
    /// Every host the run connects to, each once: the targeted hosts in plan order, then the
    /// hosts `delegate:` names that no stage targets. A run leases all of them.
    pub fn leased_hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        for once in &self.run_once {
            if self.host(&once.host).is_none() && !names.contains(&once.host) {
                names.push(once.host.clone());
            }
        }
        names
    }

    pub fn host(&self, name: &str) -> Option<&HostPlan> {
        let hosts = &self.hosts;
        let sorted = self.host_index.0.get_or_init(|| {
            let mut positions: Vec<usize> = (0..hosts.len()).collect();
            positions.sort_unstable_by(|&a, &b| hosts[a].name.cmp(&hosts[b].name));
            positions
        });
        // `hosts` is public: code that builds an artifact step by step may change it after a
        // lookup. A stale index then misses (every hit is checked), and a miss is confirmed by
        // a scan, so the answer is always right.
        let found = sorted
            .binary_search_by(|&p| {
                hosts
                    .get(p)
                    .map_or(std::cmp::Ordering::Greater, |h| h.name.as_str().cmp(name))
            })
            .ok()
            .and_then(|i| hosts.get(sorted[i]))
            .filter(|h| h.name == name);
        found.or_else(|| hosts.iter().find(|h| h.name == name))
    }

    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.id == id)
    }
}
