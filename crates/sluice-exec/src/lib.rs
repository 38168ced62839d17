//! The sluice executor: runs a compiled plan artifact over a transport, wave by wave, with
//! health checks, failure budgets and automatic rollback.
//!
//! Code map (read in this order):
//! - [`run`]: [`Executor`], the run from start to end: window, `run_once`, waves, gates, policy.
//! - [`wave`]: one wave's scheduler: concurrency slots and the failure [`budget`].
//! - [`host`]: one host: connect, steps (skip_if, retries, timeout, register; `registered`:
//!   the value a step registers and the output it keeps), then [`health`]
//!   ([`http_probe`]: the HTTP(S) GET of an `http:` check);
//!   [`preconnect`]: the next wave's SSH connections, opened while the current wave runs.
//! - [`rollback`]: undo of what ran, newest first.
//! - [`dispatch`]: where a host runs: here, or handed to a worker (`--workers`);
//!   [`assigned`]: a worker's side, one host of a run with the same code.
//! - `confirm`: confirm-or-revert: a timer armed on the host before a step with `confirm:`,
//!   disarmed over a new connection after it, or the host reverts the step by itself.
//! - [`check`]: `sluice apply --check`: only `skip_if` guards and `check: true` steps run.
//! - `stages`: plans with stages: the stage scheduler above the wave loop, values passed
//!   between stages, the rollback of earlier stages (`rollback_scope: run`).
//! - [`resume`]: [`ResumeState`], what a resumed run replays instead of running again;
//!   [`prior`]: reading it from the audit records of the interrupted run.
//! - [`event`]: the event stream ([`Emitter`], the [`EventSink`] interface) of sluice-model's
//!   facts; [`journal`]: the awaited, durable record of the same facts; [`report`]: outcomes.
//! - [`shutdown`]: soft and hard stops (Ctrl-C, window close); [`window`]: window math;
//!   [`approval`]: the approval gate interface; [`secrets`]: reading and scrubbing secrets;
//!   [`transports`]: which transport reaches which host.
//!
//! Architecture invariant: the executor never prints and never knows about terminals. It sends
//! events; the CLI decides how they are shown.

pub mod approval;
pub mod assigned;
mod backup;
pub mod budget;
pub mod check;
mod confirm;
pub mod dispatch;
pub mod error;
pub mod event;
pub mod health;
mod host;
pub mod host_lease;
pub mod http_probe;
pub mod journal;
mod preconnect;
pub mod prior;
mod reboot;
mod registered;
pub mod report;
pub mod resume;
mod rollback;
pub mod run;
pub mod secrets;
pub mod shutdown;
mod stages;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transports;
mod wave;
pub mod window;

pub use approval::Approver;
pub use check::{CheckReport, HostCheck};
pub use error::ExecError;
pub use event::{Emitter, EventSink};
pub use host::OUTPUT_LINES;
pub use journal::{Journal, JournalError, JournalFuture, JournalHandle};
pub use report::*;
pub use resume::{DoneStep, HealthVerdict, PriorStep, ResumeState, WaveVerdict};
pub use run::{Executor, RUN_ONCE_WAVE, RunOptions, run_once_wave};
pub use secrets::Secrets;
pub use shutdown::{Shutdown, Stop, StopReason};
pub use sluice_model::{Event, Fact};
pub use transports::Transports;

/// Checks an artifact before it runs: format, sealed hash, and the hash the operator expects.
pub fn verify_artifact(
    artifact: &sluice_plan::PlanArtifact,
    expect_hash: Option<&str>,
) -> Result<(), ExecError> {
    if artifact.format != sluice_plan::ARTIFACT_FORMAT {
        return Err(ExecError::Format {
            found: artifact.format,
            supported: sluice_plan::ARTIFACT_FORMAT,
        });
    }
    if !artifact.hash_is_valid() {
        return Err(ExecError::HashMismatch {
            stored: artifact.plan_hash.clone(),
        });
    }
    if let Some(expected) = expect_hash
        && expected != artifact.plan_hash
    {
        return Err(ExecError::UnexpectedHash {
            expected: expected.to_string(),
            actual: artifact.plan_hash.clone(),
        });
    }
    // The planner checks this; an artifact built by other means must not run `become` steps
    // with a password that cannot be found.
    if let Some(name) = &artifact.become_password
        && !artifact.secrets.iter().any(|s| &s.name == name)
    {
        return Err(ExecError::UndeclaredBecomePassword { name: name.clone() });
    }
    for once in &artifact.run_once {
        if once.host_plan(artifact).is_none() {
            return Err(ExecError::UnknownHost {
                wave: run::RUN_ONCE_WAVE.to_string(),
                host: once.host.clone(),
            });
        }
    }
    for wave in &artifact.waves {
        for host in &wave.hosts {
            if artifact.host(host).is_none() {
                return Err(ExecError::UnknownHost {
                    wave: wave.name.clone(),
                    host: host.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A run id: UTC time to the second plus the process id, unique enough per controller and
/// sortable.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    format!("{now}-{}", std::process::id())
}
