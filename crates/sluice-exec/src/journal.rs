//! The journal hook: the executor awaits it before sending each command and after each command
//! ends, so a durable store (the audit trail) has committed the intent before the host acts, and
//! the result before the host's next step. Unlike events (fire-and-forget), the executor waits
//! for the journal.
//!
//! Besides forward steps it records what an auditor needs to redo the run's reasoning: each
//! wave's start and the decision after it with the budget arithmetic, every health probe, and
//! every undo command (its intent before it is sent, like a forward step's). Those notes are the
//! same values the matching events carry (the events are built from them where they coincide),
//! so the journal and the event stream cannot tell two stories.
//!
//! What a journal failure does: an intent that is not recorded means the command is not sent (a
//! forward step fails with the reason; an undo leaves its host ROLLBACK_FAILED). Any other note
//! that is not recorded is reported as a `journal_failed` decision and the run carries on, since
//! the next intent guards the next command anyway.
//!
//! No journal ([`JournalHandle::none`], the default) costs nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sluice_plan::{FailureBudget, PlanArtifact};

use crate::event::{Emitter, EventKind};
use crate::report::{HostOutcome, WaveStatus};
use crate::run::RunContext;
use crate::shutdown::StopReason;
use crate::wave::WaveRun;

/// A step about to be sent to a host. `command` is redacted (secrets are `***`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepIntentNote {
    pub host: String,
    pub step: String,
    pub command: String,
    /// 1 for the first try, 2 for the first retry...
    pub attempt: u32,
}

/// How one attempt of a step ended. `detail` is the event's detail (`exit 0`, `timed out`,
/// the transport error), already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResultNote {
    pub host: String,
    pub step: String,
    pub attempt: u32,
    pub ok: bool,
    /// The exit code, when the command ran to one.
    pub exit_code: Option<i32>,
    pub detail: String,
    pub duration_ms: u64,
    /// Captured stdout and stderr (head and tail up to the caps), secrets already `***`.
    pub stdout: CapturedNote,
    pub stderr: CapturedNote,
    /// SHA256 fingerprint of the host key of the connection the command ran on (`None` for a
    /// local host).
    pub host_key_fingerprint: Option<String>,
}

/// One captured stream of a step, redacted. `bytes` counts the whole stream as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedNote {
    pub head: String,
    pub tail: String,
    pub bytes: u64,
    /// sha256 (hex) of the whole stream as received.
    pub sha256: String,
    pub truncated: bool,
}

/// A wave about to start its hosts, and its failure budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveStartedNote {
    /// 0-based position in the plan's waves.
    pub index: usize,
    pub wave: String,
    pub hosts: Vec<String>,
    pub concurrency: usize,
    /// Failed hosts the wave tolerates (the budget in hosts).
    pub max_failed: usize,
    /// The budget as the plan wrote it: `2`, `10%`.
    pub budget: String,
}

impl WaveStartedNote {
    /// The event that announces the same start.
    pub(crate) fn event(&self) -> EventKind {
        EventKind::WaveStarted {
            wave: self.wave.clone(),
            index: self.index,
            hosts: self.hosts.clone(),
            concurrency: self.concurrency,
            max_failed: self.max_failed,
        }
    }
}

/// What the executor decided after a wave, with the arithmetic behind it.
///
/// `ok + failed + interrupted + not_started == hosts`; the wave failed its budget when
/// `failed > max_failed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveDecidedNote {
    /// 0-based position in the plan's waves; `None` for the `run_once` pseudo-wave.
    pub index: Option<usize>,
    pub wave: String,
    pub hosts: usize,
    pub ok: usize,
    /// Hosts counted against the budget: failed, unhealthy, unreachable or unknown.
    pub failed: usize,
    /// Of `failed`, the hosts that could not be reached.
    pub unreachable: usize,
    /// Hosts stopped by Ctrl-C or the window closing (not counted against the budget).
    pub interrupted: usize,
    pub not_started: usize,
    pub max_failed: usize,
    /// The budget as the plan wrote it: `2`, `10%`.
    pub budget: String,
    /// The decision event's name: `continue`, `rollback`, `halt`, `stop` (a stopping run under
    /// `action: continue`) or `abandon` (second Ctrl-C).
    pub decision: String,
    /// Why the wave ended as it did, then what the decision does.
    pub reason: String,
}

impl WaveDecidedNote {
    /// The arithmetic of `run` (wave `index` of the plan, `None` for run_once) and the decision.
    pub(crate) fn new(
        ctx: &RunContext,
        index: Option<usize>,
        run: &WaveRun,
        decision: &str,
        action: &str,
    ) -> Self {
        let count = |f: fn(HostOutcome) -> bool| run.hosts.iter().filter(|h| f(h.outcome)).count();
        let failed = count(HostOutcome::is_failure);
        let max_failed = index
            .and_then(|i| ctx.artifact.waves.get(i))
            .map_or(0, |w| w.max_failed);
        let stop = ctx.shutdown.state();
        let cause = match run.status {
            _ if stop.hard => "a second Ctrl-C abandoned the wave".to_string(),
            WaveStatus::Interrupted => match stop.soft {
                Some(StopReason::WindowClosed) => "the maintenance window closed".to_string(),
                _ => "Ctrl-C stopped the wave".to_string(),
            },
            _ if index.is_none() => "a run_once step did not succeed".to_string(),
            _ if failed > max_failed => {
                format!("{failed} failed hosts exceed max_failed {max_failed}")
            }
            _ => format!("{failed} failed hosts within max_failed {max_failed}"),
        };
        WaveDecidedNote {
            index,
            wave: run.name.clone(),
            hosts: run.hosts.len(),
            ok: count(|o| o == HostOutcome::Ok),
            failed,
            unreachable: count(|o| o == HostOutcome::Unreachable),
            interrupted: count(|o| o == HostOutcome::Interrupted),
            not_started: count(|o| o == HostOutcome::NotStarted),
            max_failed,
            budget: index.map_or_else(|| "0".to_string(), |_| budget_text(&ctx.artifact)),
            decision: decision.to_string(),
            reason: format!("{cause}: {action}"),
        }
    }
}

/// The plan's failure budget as written: `2`, `10%`.
pub(crate) fn budget_text(artifact: &PlanArtifact) -> String {
    match artifact.failure.max_failed {
        FailureBudget::Count(n) => n.to_string(),
        FailureBudget::Percent(p) => format!("{p}%"),
    }
}

/// One health probe of one host in one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthNote {
    pub host: String,
    pub check: String,
    /// `run`, `http` or `tcp`.
    pub probe: String,
    /// 1 for the first round, 2 for the first retry...
    pub round: u32,
    pub ok: bool,
    /// `exit 0`, `HTTP 503 (expected 200)`, ..., redacted.
    pub detail: String,
    pub duration_ms: u64,
}

impl HealthNote {
    /// The event that reports the same probe.
    pub(crate) fn event(&self) -> EventKind {
        EventKind::HealthChecked {
            host: self.host.clone(),
            check: self.check.clone(),
            passed: self.ok,
            round: self.round,
            detail: self.detail.clone(),
        }
    }
}

/// A boxed future, so journals can be used behind `dyn`. An `Err` is a journal that could not
/// record: the executor does not send a command whose intent was not recorded.
pub type JournalFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Records what a run does, durably; the executor awaits every call. Only step intents and
/// results are required; the other notes default to recording nothing.
pub trait Journal: Send + Sync {
    fn intent<'a>(&'a self, note: &'a StepIntentNote) -> JournalFuture<'a>;
    fn result<'a>(&'a self, note: &'a StepResultNote) -> JournalFuture<'a>;

    fn wave_started<'a>(&'a self, _note: &'a WaveStartedNote) -> JournalFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn wave_decided<'a>(&'a self, _note: &'a WaveDecidedNote) -> JournalFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn health<'a>(&'a self, _note: &'a HealthNote) -> JournalFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// An undo command about to be sent (`attempt` is 1: undos are tried once).
    fn rollback_intent<'a>(&'a self, _note: &'a StepIntentNote) -> JournalFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn rollback_result<'a>(&'a self, _note: &'a StepResultNote) -> JournalFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// An optional journal, cheap to clone; `Default` is none.
#[derive(Clone, Default)]
pub struct JournalHandle(Option<Arc<dyn Journal>>);

impl JournalHandle {
    pub fn none() -> Self {
        JournalHandle(None)
    }

    pub fn new(journal: Arc<dyn Journal>) -> Self {
        JournalHandle(Some(journal))
    }

    pub(crate) async fn intent(&self, note: StepIntentNote) -> Result<(), String> {
        match &self.0 {
            Some(j) => j.intent(&note).await,
            None => Ok(()),
        }
    }

    pub(crate) async fn result(&self, note: StepResultNote) -> Result<(), String> {
        match &self.0 {
            Some(j) => j.result(&note).await,
            None => Ok(()),
        }
    }

    pub(crate) async fn rollback_intent(&self, note: StepIntentNote) -> Result<(), String> {
        match &self.0 {
            Some(j) => j.rollback_intent(&note).await,
            None => Ok(()),
        }
    }

    /// Records a note nothing waits on; a failure becomes a `journal_failed` decision.
    pub(crate) async fn note(&self, events: &Emitter, note: Note<'_>) {
        let Some(j) = &self.0 else { return };
        let (recorded, wave) = match note {
            Note::WaveStarted(n) => (j.wave_started(n).await, Some(n.wave.as_str())),
            Note::WaveDecided(n) => (j.wave_decided(n).await, Some(n.wave.as_str())),
            Note::Health(n) => (j.health(n).await, None),
            Note::RollbackResult(n) => (j.rollback_result(n).await, None),
        };
        if let Err(why) = recorded {
            let subject = match note {
                Note::WaveStarted(n) => format!("the start of wave {}", n.wave),
                Note::WaveDecided(n) => format!("the decision after wave {}", n.wave),
                Note::Health(n) => format!("health check {} on {}", n.check, n.host),
                Note::RollbackResult(n) => format!("the result of undo {} on {}", n.step, n.host),
            };
            events.decision(
                "journal_failed",
                wave,
                format!("{subject} was not recorded: {why}"),
            );
        }
    }
}

/// A note whose failure to record stops nothing (see the module documentation).
#[derive(Clone, Copy)]
pub(crate) enum Note<'a> {
    WaveStarted(&'a WaveStartedNote),
    WaveDecided(&'a WaveDecidedNote),
    Health(&'a HealthNote),
    RollbackResult(&'a StepResultNote),
}

impl fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "JournalHandle(Some)"
        } else {
            "JournalHandle(None)"
        })
    }
}
