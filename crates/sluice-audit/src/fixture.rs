//! Sample runs for tests of this crate and of the CLI (feature `fixture`): a store seeded through
//! the same API the executor uses.

use crate::error::AuditError;
use crate::lease::LeaseHolder;
use sluice_model::{
    Capture, Fact, HostFinished, HostOutcome, RunFinished, RunStarted, RunStatus, StepIntent,
    StepResult, StepStatus, WaveDecided, WaveDecision, WaveStarted, WaveStatus,
};

use crate::audit_log::AuditLog;
use crate::record::Entry;

/// A capture of `text`, whole.
pub fn capture(text: &str) -> Capture {
    Capture::whole(text)
}

/// The `step_result` of `step` on `host`: exit 0 and `out` on stdout, or exit 1.
pub fn step_result(host: &str, step: &str, ok: bool, out: &str) -> Fact {
    let code = if ok { 0 } else { 1 };
    Fact::StepResult(StepResult {
        host: host.to_string(),
        step: step.to_string(),
        attempt: 1,
        status: if ok {
            StepStatus::Ok
        } else {
            StepStatus::Failed
        },
        exit_code: Some(code),
        detail: format!("exit {code}"),
        duration_ms: 12,
        stdout: capture(out),
        stderr: capture(if ok { "" } else { "boom\n" }),
        host_key_fingerprint: Some("SHA256:fixture".into()),
    })
}

pub fn step_intent(host: &str, step: &str) -> Fact {
    Fact::StepIntent(StepIntent {
        host: host.to_string(),
        step: step.to_string(),
        command: format!("run {step}"),
        attempt: 1,
        boot_id: None,
    })
}

/// `host` finished ok in wave `all`.
pub fn host_finished(host: &str) -> Fact {
    Fact::HostFinished(HostFinished {
        wave: "all".into(),
        host: host.into(),
        outcome: HostOutcome::Ok,
        duration_ms: 3,
        error: None,
        stage: None,
    })
}

pub fn run_started(plan_name: &str, hosts: &[&str]) -> RunStarted {
    RunStarted {
        run_kind: sluice_model::RunKind::Apply,
        operator: "alice".into(),
        controller: crate::lease::controller_name(),
        sluice_version: "0.1.0".into(),
        plan_name: plan_name.to_string(),
        ticket: Some("CHG-1".into()),
        plan_hash: format!("{:0>64}", plan_name.len()),
        command_line: vec!["sluice".into(), "apply".into()],
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        waves: vec!["all".into()],
        environment: None,
        change_hash: None,
    }
}

/// A finished one-wave run of step `patch` on `hosts`; hosts in `failing` fail it.
pub fn seed_run(
    log: &AuditLog,
    plan_name: &str,
    hosts: &[&str],
    failing: &[&str],
) -> Result<String, AuditError> {
    let run = log.start_run(run_started(plan_name, hosts), &LeaseHolder::this_process())?;
    let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    log.append(
        &run,
        Fact::WaveStarted(WaveStarted {
            wave: "all".into(),
            index: 0,
            hosts: names.clone(),
            concurrency: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
            budget: "1".into(),
            max_failed: 1,
            stage: None,
        }),
    )?;
    let intents = hosts
        .iter()
        .map(|h| Entry::new(&run, step_intent(h, "patch")))
        .collect();
    log.append_batch(intents)?;
    let results = hosts
        .iter()
        .map(|h| {
            let ok = !failing.contains(h);
            Entry::new(&run, step_result(h, "patch", ok, &format!("patched {h}\n")))
        })
        .collect();
    log.append_batch(results)?;
    let finished = hosts
        .iter()
        .map(|h| {
            let failed = failing.contains(h);
            Entry::new(
                &run,
                Fact::HostFinished(HostFinished {
                    wave: "all".into(),
                    host: h.to_string(),
                    outcome: if failed {
                        HostOutcome::Failed
                    } else {
                        HostOutcome::Ok
                    },
                    duration_ms: 20,
                    error: failed.then(|| "patch: exit 1".to_string()),
                    stage: None,
                }),
            )
        })
        .collect();
    log.append_batch(finished)?;
    let failed = u32::try_from(failing.len()).unwrap_or(u32::MAX);
    let total = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
    log.append(
        &run,
        Fact::WaveDecided(WaveDecided {
            wave: "all".into(),
            index: Some(0),
            status: if failed > 1 {
                WaveStatus::Failed
            } else {
                WaveStatus::Ok
            },
            hosts: total,
            ok: total - failed,
            failed,
            unreachable: 0,
            interrupted: 0,
            not_started: 0,
            budget: "1".into(),
            max_failed: 1,
            decision: if failed > 1 {
                WaveDecision::Halt
            } else {
                WaveDecision::Continue
            },
            reason: format!("{failed} failed, budget 1"),
            duration_ms: 40,
            stage: None,
        }),
    )?;
    log.finish_run(
        &run,
        RunFinished {
            status: if failed > 1 {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            },
            duration_ms: 50,
        },
    )?;
    Ok(run)
}
