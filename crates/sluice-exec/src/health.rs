//! Health checks after a host's steps: a command on the host, an HTTP(S) GET
//! ([`crate::http_probe`]) or a TCP connect from the controller.
//!
//! Checks run in rounds: each round runs every check once; the host is healthy as soon as one
//! round passes completely. Between rounds the executor waits `interval`; after `retries` extra
//! rounds the host is unhealthy. A check that passed in an earlier round and fails in a later one
//! is flapping, and fails the host at once: a service that comes up and falls over is not done.

use std::sync::Arc;
use std::time::Duration;

use sluice_plan::{HealthProbe, HostPlan};
use sluice_ssh::Connection;
use tokio::net::TcpStream;
use tokio::time::Instant;

use sluice_model::{Fact, HealthResult, ProbeKind};

use crate::host::{HostRun, Ran, first_lines, millis};
use crate::report::FailureDetail;
use crate::run::RunContext;
use crate::shutdown::StopListener;

/// Runs `plan.health` until a round passes, or returns what failed.
pub(crate) async fn check_host(
    ctx: &RunContext,
    run: &HostRun,
    conn: &Arc<dyn Connection>,
    plan: &HostPlan,
    stop: &mut StopListener,
) -> Result<(), FailureDetail> {
    if plan.health.is_empty() {
        return Ok(());
    }
    let policy = &ctx.artifact.health;
    let timeout = Duration::from_millis(policy.timeout_ms.max(1));
    let mut passed_before = vec![false; plan.health.len()];
    let mut last_failure = None;
    for round in 1..=policy.retries + 1 {
        let mut all_passed = true;
        for (i, check) in plan.health.iter().enumerate() {
            let started = Instant::now();
            let (passed, detail, output) = probe(ctx, run, conn, &check.probe, timeout, stop).await;
            let result = HealthResult {
                host: plan.name.clone(),
                check: check.name.clone(),
                probe: probe_kind(&check.probe),
                round,
                ok: passed,
                detail: detail.clone(),
                duration_ms: millis(started.elapsed()),
            };
            ctx.note(Fact::HealthResult(result)).await;
            if passed {
                passed_before[i] = true;
                continue;
            }
            all_passed = false;
            let failure = FailureDetail {
                what: format!("health:{}", check.name),
                detail,
                output,
            };
            if passed_before[i] {
                let mut failure = failure;
                failure.detail = format!("passed, then failed (flapping): {}", failure.detail);
                return Err(failure);
            }
            last_failure = Some(failure);
        }
        if all_passed {
            return Ok(());
        }
        if round <= policy.retries {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(policy.interval_ms)) => {}
                _ = stop.hard() => break,
            }
        }
    }
    Err(last_failure.unwrap_or(FailureDetail {
        what: "health".into(),
        detail: "health checks did not pass".into(),
        output: Vec::new(),
    }))
}

/// The probe's kind.
fn probe_kind(probe: &HealthProbe) -> ProbeKind {
    match probe {
        HealthProbe::Run(_) => ProbeKind::Run,
        HealthProbe::Http { .. } => ProbeKind::Http,
        HealthProbe::Tcp { .. } => ProbeKind::Tcp,
    }
}

/// One probe: (passed, detail, output lines).
async fn probe(
    ctx: &RunContext,
    run: &HostRun,
    conn: &Arc<dyn Connection>,
    probe: &HealthProbe,
    timeout: Duration,
    stop: &mut StopListener,
) -> (bool, String, Vec<String>) {
    match probe {
        HealthProbe::Run(command) => {
            // The command sees the host's registered values and the run's secrets.
            match run.exec(conn, command, Some(timeout), &None, stop).await {
                Ran::Done(out) => (
                    out.status.success(),
                    out.status.to_string(),
                    if out.status.success() {
                        Vec::new()
                    } else {
                        first_lines(ctx, &out)
                    },
                ),
                other => {
                    let result = run.result_of(ctx, "health", 0, &other, Duration::ZERO, None);
                    (false, result.detail, Vec::new())
                }
            }
        }
        HealthProbe::Http {
            url,
            expect_status,
            options,
        } => {
            let probe = crate::http_probe::probe_http(url, *expect_status, options, timeout);
            match tokio::time::timeout(timeout, probe).await {
                Ok(Ok(verdict)) => (verdict.passed, verdict.detail, Vec::new()),
                Ok(Err(e)) => (false, format!("GET {url}: {e}"), Vec::new()),
                Err(_) => (false, format!("GET {url}: timed out"), Vec::new()),
            }
        }
        HealthProbe::Tcp { address } => {
            match tokio::time::timeout(timeout, TcpStream::connect(address.as_str())).await {
                Ok(Ok(_)) => (true, format!("connected to {address}"), Vec::new()),
                Ok(Err(e)) => (false, format!("connect {address}: {e}"), Vec::new()),
                Err(_) => (false, format!("connect {address}: timed out"), Vec::new()),
            }
        }
    }
}
