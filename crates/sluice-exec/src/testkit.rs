//! Test support: build plan artifacts by hand and run them on a scripted transport.
//!
//! [`PlanBuilder`] writes the artifact the planner would compile, so executor tests (and the
//! binary's tests, through `--plan`) do not depend on YAML. [`ScriptedTransport`] answers
//! commands from a closure after a simulated delay on the tokio clock, so tests of windows,
//! pauses, retries and timeouts run under paused time in microseconds, and it records every
//! command each host received, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_plan::*;
use sluice_ssh::{
    Become, BoxFuture, CapturedOutput, Connection, ExecOutcome, ExecRequest, ExitStatus,
    HostTarget, Transport, TransportError,
};

/// One step as a test declares it; `{host}` in a command becomes the host's name.
#[derive(Clone, Debug)]
pub struct StepDef {
    pub spec: StepSpec,
    pub run: RenderedCommand,
    pub undo: Option<RenderedCommand>,
    pub skip_if: Option<RenderedCommand>,
}

impl StepDef {
    pub fn new(id: &str, run: &str) -> Self {
        StepDef {
            spec: crate::host::bare_spec(id),
            run: RenderedCommand::text(run),
            undo: None,
            skip_if: None,
        }
    }

    pub fn undo(mut self, cmd: &str) -> Self {
        self.undo = Some(RenderedCommand::text(cmd));
        self
    }

    pub fn undo_cmd(mut self, cmd: RenderedCommand) -> Self {
        self.undo = Some(cmd);
        self
    }

    pub fn run_cmd(mut self, cmd: RenderedCommand) -> Self {
        self.run = cmd;
        self
    }

    pub fn skip_if(mut self, cmd: &str) -> Self {
        self.skip_if = Some(RenderedCommand::text(cmd));
        self
    }

    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.spec.timeout_ms = Some(ms);
        self
    }

    pub fn retries(mut self, retries: u32, delay_ms: u64) -> Self {
        self.spec.retries = retries;
        self.spec.retry_delay_ms = delay_ms;
        self
    }

    pub fn register(mut self, name: &str) -> Self {
        self.spec.register = Some(name.into());
        self
    }

    pub fn after(mut self, ids: &[&str]) -> Self {
        self.spec.after = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `become: true`, and `become_user` when given.
    pub fn become_user(mut self, user: Option<&str>) -> Self {
        self.spec.become_root = true;
        self.spec.become_user = user.map(str::to_string);
        self
    }
}

/// Builds a sealed [`PlanArtifact`].
pub struct PlanBuilder {
    artifact: PlanArtifact,
    steps: Vec<StepDef>,
    overrides: BTreeMap<(String, String), RenderedCommand>,
    health: Vec<(String, String)>,
    probes: Vec<HealthCheck>,
    health_overrides: BTreeMap<(String, String), String>,
}

impl PlanBuilder {
    pub fn new(name: &str) -> Self {
        PlanBuilder {
            artifact: PlanArtifact {
                format: ARTIFACT_FORMAT,
                plan_hash: String::new(),
                name: name.into(),
                description: None,
                ticket: None,
                planned_for: None,
                window: None,
                secrets: Vec::new(),
                become_password: None,
                limit: None,
                policy: None,
                notify: Vec::new(),
                promotion: None,
                change_hash: None,
                environment: None,
                backup: Vec::new(),
                host_lease: false,
                steps: Vec::new(),
                run_once: Vec::new(),
                hosts: Vec::new(),
                waves: Vec::new(),
                failure: FailurePolicy {
                    max_failed: FailureBudget::Count(0),
                    action: FailureAction::Rollback,
                    rollback_scope: RollbackScope::Wave,
                },
                health: HealthPolicy {
                    retries: 0,
                    interval_ms: 0,
                    timeout_ms: 5_000,
                },
                stages: Vec::new(),
                stage_concurrency: None,
                host_index: Default::default(),
            },
            steps: Vec::new(),
            overrides: BTreeMap::new(),
            health: Vec::new(),
            probes: Vec::new(),
            health_overrides: BTreeMap::new(),
        }
    }

    /// Local-transport hosts, each working in `state/<name>`.
    pub fn local_hosts(mut self, names: &[&str], state: &Path) -> Self {
        for name in names {
            self.artifact.hosts.push(HostPlan {
                name: name.to_string(),
                connection: sluice_plan::Connection {
                    transport: TransportKind::Local,
                    address: "localhost".into(),
                    port: 22,
                    user: None,
                    identity_files: Vec::new(),
                    known_hosts: Vec::new(),
                    host_key_checking: HostKeyChecking::Strict,
                    proxy_jump: Vec::new(),
                    workdir: Some(state.join(name).display().to_string()),
                    env: BTreeMap::new(),
                    become_all: None,
                    transport_mode: None,
                },
                vars: BTreeMap::new(),
                steps: Vec::new(),
                health: Vec::new(),
                backup: Vec::new(),
            });
        }
        self
    }

    pub fn step(mut self, step: StepDef) -> Self {
        self.steps.push(step);
        self
    }

    /// A `run_once` step on `host`.
    pub fn run_once(mut self, host: &str, step: StepDef) -> Self {
        let mut spec = step.spec.clone();
        spec.run_once = true;
        self.artifact.steps.push(spec);
        self.artifact.run_once.push(RunOnceStep {
            host: host.into(),
            step: HostStep {
                id: step.spec.id.clone(),
                run: step.run,
                undo: step.undo,
                skip_if: step.skip_if,
            },
            connection: None,
        });
        self
    }

    /// `host` runs `run` instead of the step's command.
    pub fn override_run(mut self, host: &str, step: &str, run: &str) -> Self {
        self.overrides
            .insert((host.into(), step.into()), RenderedCommand::text(run));
        self
    }

    /// A `run:` health check on every host.
    pub fn health_run(mut self, name: &str, cmd: &str) -> Self {
        self.health.push((name.into(), cmd.into()));
        self
    }

    /// A health check from the controller (HTTP or TCP) on every host.
    pub fn health_probe(mut self, name: &str, probe: HealthProbe) -> Self {
        self.probes.push(HealthCheck {
            name: name.into(),
            probe,
            stage: None,
        });
        self
    }

    /// `host` runs `cmd` for health check `name`.
    pub fn override_health(mut self, host: &str, name: &str, cmd: &str) -> Self {
        self.health_overrides
            .insert((host.into(), name.into()), cmd.into());
        self
    }

    pub fn health_policy(mut self, retries: u32, interval_ms: u64, timeout_ms: u64) -> Self {
        self.artifact.health = HealthPolicy {
            retries,
            interval_ms,
            timeout_ms,
        };
        self
    }

    pub fn wave(
        mut self,
        name: &str,
        hosts: &[&str],
        concurrency: usize,
        max_failed: usize,
    ) -> Self {
        self.artifact.waves.push(WavePlan {
            name: name.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            concurrency,
            max_failed,
            budget: None,
            pause_ms: None,
            approval: false,
            stage: None,
        });
        self
    }

    /// Pause after the last added wave.
    pub fn pause_ms(mut self, ms: u64) -> Self {
        if let Some(w) = self.artifact.waves.last_mut() {
            w.pause_ms = Some(ms);
        }
        self
    }

    /// Approval gate before the last added wave.
    pub fn approval(mut self) -> Self {
        if let Some(w) = self.artifact.waves.last_mut() {
            w.approval = true;
        }
        self
    }

    pub fn failure(mut self, action: FailureAction, scope: RollbackScope) -> Self {
        self.artifact.failure.action = action;
        self.artifact.failure.rollback_scope = scope;
        self
    }

    pub fn window(mut self, window: Window) -> Self {
        self.artifact.window = Some(window);
        self
    }

    /// Names the secret whose value answers sudo's password prompt.
    pub fn become_password(mut self, secret: &str) -> Self {
        self.artifact.become_password = Some(secret.into());
        self
    }

    pub fn secret_env(mut self, name: &str, var: &str) -> Self {
        self.artifact.secrets.push(SecretSource {
            name: name.into(),
            from: SecretFrom::Env(var.into()),
        });
        self
    }

    pub fn build(mut self) -> PlanArtifact {
        for def in &self.steps {
            self.artifact.steps.push(def.spec.clone());
        }
        for host in &mut self.artifact.hosts {
            let fill = |c: &RenderedCommand| for_host(c, &host.name);
            host.steps = self
                .steps
                .iter()
                .map(|d| HostStep {
                    id: d.spec.id.clone(),
                    run: self
                        .overrides
                        .get(&(host.name.clone(), d.spec.id.clone()))
                        .map(fill)
                        .unwrap_or_else(|| fill(&d.run)),
                    undo: d.undo.as_ref().map(fill),
                    skip_if: d.skip_if.as_ref().map(fill),
                })
                .collect();
            host.health = self
                .health
                .iter()
                .map(|(name, cmd)| {
                    let cmd = self
                        .health_overrides
                        .get(&(host.name.clone(), name.clone()))
                        .unwrap_or(cmd);
                    HealthCheck {
                        name: name.clone(),
                        probe: HealthProbe::Run(RenderedCommand::text(
                            cmd.replace("{host}", &host.name),
                        )),
                        stage: None,
                    }
                })
                .chain(self.probes.iter().cloned())
                .collect();
        }
        // A hand-built artifact that cannot be serialized is a bug in this builder.
        let _ = self.artifact.seal();
        self.artifact
    }
}

fn for_host(cmd: &RenderedCommand, host: &str) -> RenderedCommand {
    RenderedCommand {
        segments: cmd
            .segments
            .iter()
            .map(|s| match s {
                Segment::Text(t) => Segment::Text(t.replace("{host}", host)),
                other => other.clone(),
            })
            .collect(),
    }
}

/// A scripted reply: exit code, stdout, and how long the command "runs".
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub exit: i32,
    pub stdout: String,
    pub takes: Duration,
}

impl Reply {
    pub fn ok() -> Self {
        Reply::default()
    }

    pub fn exit(code: i32) -> Self {
        Reply {
            exit: code,
            ..Reply::default()
        }
    }

    pub fn takes(mut self, d: Duration) -> Self {
        self.takes = d;
        self
    }

    pub fn stdout(mut self, s: &str) -> Self {
        self.stdout = s.into();
        self
    }
}

type Script = dyn Fn(&str, &str) -> Reply + Send + Sync;

/// A transport whose commands are answered by a closure `(host, command) -> Reply`.
#[derive(Clone)]
pub struct ScriptedTransport {
    script: Arc<Script>,
    unreachable: BTreeSet<String>,
    log: Arc<Mutex<Vec<Sent>>>,
    connects: Arc<Mutex<Vec<(String, tokio::time::Instant)>>>,
    /// Stands for a transport whose connections are worth opening ahead (SSH).
    opened_ahead: bool,
    /// Connections open now, and the most open at once.
    open: Arc<OpenCount>,
}

/// How many connections are open, and the peak, kept by the connections themselves.
#[derive(Default)]
struct OpenCount {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// Held by an open [`ScriptedConnection`]: counts it in [`OpenCount`] until it is dropped.
struct OpenGuard(Arc<OpenCount>);

impl OpenGuard {
    fn new(count: &Arc<OpenCount>) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let now = count.now.fetch_add(1, SeqCst) + 1;
        count.peak.fetch_max(now, SeqCst);
        OpenGuard(count.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One command a [`ScriptedTransport`] received.
#[derive(Clone, Debug)]
pub struct Sent {
    pub host: String,
    pub command: String,
    /// The request's `become_user`, password included, so tests can see what reached the
    /// transport (its `Debug` masks the password).
    pub become_user: Option<Become>,
    /// The secret values sent beside the command, as `(variable, value)`.
    pub secrets: Vec<(String, String)>,
}

/// `command` as the host's shell sees it once the secret variables are set: each reference
/// replaced by the value (quoted as one word for `"${VAR}"`), so a script can answer as a host
/// that echoes what it got would.
fn expanded(request: &ExecRequest) -> String {
    let mut text = request.command.clone();
    for secret in &request.secrets {
        let quoted = format!("\"${{{}}}\"", secret.name);
        text = text.replace(&quoted, &sluice_plan::shell_quote(&secret.value));
        text = text.replace(&format!("${{{}}}", secret.name), &secret.value);
    }
    text
}

impl ScriptedTransport {
    pub fn new(script: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> Self {
        ScriptedTransport {
            script: Arc::new(script),
            unreachable: BTreeSet::new(),
            log: Arc::new(Mutex::new(Vec::new())),
            connects: Arc::new(Mutex::new(Vec::new())),
            opened_ahead: false,
            open: Arc::default(),
        }
    }

    /// The most connections that were open at once so far.
    pub fn peak_open_connections(&self) -> usize {
        self.open.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// This transport (sharing the script and the logs) stands for one whose connections are
    /// worth opening ahead, like SSH.
    pub fn opened_ahead(mut self) -> Self {
        self.opened_ahead = true;
        self
    }

    pub fn unreachable(mut self, host: &str) -> Self {
        self.unreachable.insert(host.into());
        self
    }

    /// Every command run so far, as `(host, command)`, in the order they started.
    pub fn log(&self) -> Vec<(String, String)> {
        self.sent()
            .into_iter()
            .map(|s| (s.host, s.command))
            .collect()
    }

    /// Every request run so far, with its `become`, in the order they started.
    pub fn sent(&self) -> Vec<Sent> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Every connection opened so far, as `(host, when)`, in order.
    pub fn connects(&self) -> Vec<(String, tokio::time::Instant)> {
        self.connects.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The commands `host` received, in order.
    pub fn commands(&self, host: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|(h, _)| h == host)
            .map(|(_, c)| c)
            .collect()
    }
}

impl Transport for ScriptedTransport {
    fn connect<'a>(
        &'a self,
        target: &'a HostTarget,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, TransportError>> {
        Box::pin(async move {
            if let Ok(mut connects) = self.connects.lock() {
                connects.push((target.name.clone(), tokio::time::Instant::now()));
            }
            if self.unreachable.contains(&target.name) {
                return Err(TransportError::Unreachable {
                    host: target.name.clone(),
                    address: target.address.clone(),
                    reason: "connection refused (scripted)".into(),
                });
            }
            Ok(Arc::new(ScriptedConnection {
                host: target.name.clone(),
                transport: self.clone(),
                _open: OpenGuard::new(&self.open),
            }) as Arc<dyn Connection>)
        })
    }

    fn worth_opening_ahead(&self) -> bool {
        self.opened_ahead
    }
}

struct ScriptedConnection {
    host: String,
    transport: ScriptedTransport,
    _open: OpenGuard,
}

impl Connection for ScriptedConnection {
    fn exec(&self, request: ExecRequest) -> BoxFuture<'_, Result<ExecOutcome, TransportError>> {
        Box::pin(async move {
            if let Ok(mut log) = self.transport.log.lock() {
                log.push(Sent {
                    host: self.host.clone(),
                    command: request.command.clone(),
                    become_user: request.become_user.clone(),
                    secrets: request
                        .secrets
                        .iter()
                        .map(|s| (s.name.clone(), s.value.clone()))
                        .collect(),
                });
            }
            let reply = (self.transport.script)(&self.host, &expanded(&request));
            let (status, took) = match request.timeout {
                Some(limit) if reply.takes > limit => (ExitStatus::TimedOut, limit),
                _ => (ExitStatus::Code(reply.exit), reply.takes),
            };
            tokio::time::sleep(took).await;
            let stdout = CapturedOutput {
                head: reply.stdout.clone().into_bytes(),
                tail: Vec::new(),
                total_bytes: reply.stdout.len() as u64,
                sha256: String::new(),
            };
            Ok(ExecOutcome {
                status,
                stdout,
                stderr: CapturedOutput::default(),
                duration: took,
            })
        })
    }

    fn upload<'a>(
        &'a self,
        _path: &'a str,
        _contents: &'a [u8],
        _mode: u32,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }

    /// A fingerprint per host, as an SSH connection would report, so tests can follow it.
    fn host_key_fingerprint(&self) -> Option<String> {
        Some(format!("SHA256:scripted-{}", self.host))
    }
}
