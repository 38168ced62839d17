//! Host-side leases (`host_lease: true`): a lock on the host itself, so that a controller with
//! another audit store sees a host this run is changing (docs/operations.md, "Host-side
//! leases").
//!
//! The lease is a directory on the host (`/var/lib/sluice/host-lease`, or the host variable
//! `sluice_host_lease_dir`), taken with `mkdir`, which is atomic: of two controllers, one
//! creates it. Inside, `holder` names the run, controller and operator and the expiry (Unix
//! seconds). The lease is taken when the host starts (a run re-takes its own: a resume), its
//! expiry pushed back before a step once a third of its time has gone, and it is released
//! (removed, if it still names this run) at the host's end. An expired lease of another run is
//! broken only when the operator asks (`--break-expired-host-leases --reason`), and the break
//! is recorded. Every command runs as the login user, without `become`.

use std::time::Duration;

use sluice_model::{Fact, HostLeaseChange};
use sluice_plan::{HostPlan, PlanArtifact, shell_quote};
use sluice_ssh::{Connection, ExecRequest, ExitStatus};

use crate::host::HostRun;
use crate::report::{FailureDetail, HostOutcome};
use crate::run::RunContext;
use crate::transports::{Transports, host_target};

/// Where the lease lives on a host unless its `sluice_host_lease_dir` variable says otherwise.
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/sluice/host-lease";
/// The host variable naming another lease directory: a test hook (the sshd test fleet's hosts
/// share this machine), sealed in the artifact with the host's variables.
pub const LEASE_DIR_VAR: &str = "sluice_host_lease_dir";
/// How long a lease lasts from when it is taken or refreshed.
pub const LEASE_TTL: Duration = Duration::from_secs(15 * 60);
/// Each lease command's own bound.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Who takes the leases: this run, on this controller, for this operator; and the reason to
/// break expired leases of other runs, when the operator gave one.
#[derive(Clone, Debug, Default)]
pub struct HostLeaseIdentity {
    pub run: String,
    pub controller: String,
    pub operator: String,
    /// `--break-expired-host-leases --reason TEXT`.
    pub break_expired: Option<String>,
}

/// What a lease directory's `holder` file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    pub run: String,
    pub controller: String,
    pub operator: String,
    /// Unix seconds.
    pub expires: i64,
}

impl LeaseHolder {
    fn parse(text: &str) -> Option<LeaseHolder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(LeaseHolder {
            run: field("run")?,
            controller: field("controller").unwrap_or_default(),
            operator: field("operator").unwrap_or_default(),
            expires: field("expires")?.trim().parse().ok()?,
        })
    }

    pub fn expired(&self) -> bool {
        self.expires <= jiff::Timestamp::now().as_second()
    }

    pub fn expires_at(&self) -> String {
        jiff::Timestamp::from_second(self.expires)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| self.expires.to_string())
    }

    /// `run R (controller C, operator O) until T`: how a refusal names the holder.
    pub fn describe(&self) -> String {
        let until = if self.expired() { "expired" } else { "until" };
        format!(
            "run {} (controller {}, operator {}) {until} {}",
            self.run,
            self.controller,
            self.operator,
            self.expires_at()
        )
    }
}

/// A host another run holds, found before the run started.
#[derive(Clone, Debug)]
pub struct HeldHost {
    pub host: String,
    pub holder: LeaseHolder,
}

/// The lease directory of `host`.
pub fn lease_dir(host: &HostPlan) -> String {
    host.vars
        .get(LEASE_DIR_VAR)
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_LEASE_DIR)
        .to_string()
}

/// Before a run starts: every host of `artifact` whose lease another run holds and that this
/// run may not take (live, or expired without `break_expired`). Hosts that cannot be reached
/// are left to the run (they fail there as unreachable).
pub async fn held_hosts(
    artifact: &PlanArtifact,
    transports: &Transports,
    me: &HostLeaseIdentity,
) -> Vec<HeldHost> {
    let mut checks = tokio::task::JoinSet::new();
    for host in artifact.hosts.iter().cloned() {
        let Some(transport) = transports.get(host.connection.transport) else {
            continue;
        };
        checks.spawn(async move {
            let conn = transport.connect(&host_target(&host)).await.ok()?;
            let read = format!(
                "cat {}/holder 2>/dev/null; true",
                shell_quote(&lease_dir(&host))
            );
            let text = run_text(&conn, read).await.ok()?;
            Some((host.name.clone(), LeaseHolder::parse(&text)?))
        });
    }
    let mut held = Vec::new();
    while let Some(found) = checks.join_next().await {
        if let Ok(Some((host, holder))) = found
            && holder.run != me.run
            && (!holder.expired() || me.break_expired.is_none())
        {
            held.push(HeldHost { host, holder });
        }
    }
    held.sort_by_key(|h| artifact.hosts.iter().position(|p| p.name == h.host));
    held
}

/// Takes the host's lease when it starts. On refusal the host fails (nothing was sent to it).
pub(crate) async fn take(run: &mut HostRun, ctx: &RunContext, plan: &HostPlan) {
    let (Some(me), Some(conn)) = (ctx.host_lease.clone(), run.conn.clone()) else {
        return;
    };
    let dir = lease_dir(plan);
    let q = shell_quote(&dir);
    let take = format!(
        "mkdir -p \"$(dirname {q})\" && if mkdir {q} 2>/dev/null; then {} && echo taken; else echo held; cat {q}/holder 2>/dev/null; true; fi",
        write_holder(&q, &me)
    );
    let answer = match run_text(&conn, take).await {
        Ok(text) => text,
        Err(why) => return refuse(run, format!("cannot take {dir}: {why}")),
    };
    if answer.starts_with("taken") {
        note(ctx, &run.host, &dir, &me, None, Fact::HostLeaseTaken).await;
        run.lease_taken = Some(tokio::time::Instant::now());
        return;
    }
    let Some(holder) = LeaseHolder::parse(&answer) else {
        return refuse(
            run,
            format!("{dir} exists but names no holder: remove it if no controller uses it"),
        );
    };
    let ours = holder.run == me.run;
    let breakable = holder.expired() && me.break_expired.is_some();
    if !ours && !breakable {
        return refuse(run, format!("held by {}", holder.describe()));
    }
    // Re-taken (our own, from before a resume) or broken: rewritten only if it still names
    // the holder just read, so two controllers breaking it at once cannot both win.
    let rewrite = format!(
        "grep -qx {} {q}/holder && {} && echo taken",
        shell_quote(&format!("run={}", holder.run)),
        write_holder(&q, &me)
    );
    match run_text(&conn, rewrite).await {
        Ok(text) if text.starts_with("taken") => {}
        Ok(_) => return refuse(run, format!("{dir} changed hands while it was taken")),
        Err(why) => return refuse(run, format!("cannot take {dir}: {why}")),
    }
    if !ours {
        let broken = HostLeaseChange {
            host: run.host.clone(),
            path: dir.clone(),
            holder_run: holder.run.clone(),
            holder_controller: holder.controller.clone(),
            holder_operator: holder.operator.clone(),
            expires_at: holder.expires_at(),
            reason: me.break_expired.clone(),
        };
        ctx.note(Fact::HostLeaseBroken(broken)).await;
    }
    note(ctx, &run.host, &dir, &me, None, Fact::HostLeaseTaken).await;
    run.lease_taken = Some(tokio::time::Instant::now());
}

/// Pushes the expiry back before a step once a third of the lease's time has gone.
pub(crate) async fn refresh(run: &mut HostRun, ctx: &RunContext, plan: &HostPlan) {
    let (Some(me), Some(conn), Some(at)) =
        (ctx.host_lease.clone(), run.conn.clone(), run.lease_taken)
    else {
        return;
    };
    if at.elapsed() < LEASE_TTL / 3 {
        return;
    }
    let q = shell_quote(&lease_dir(plan));
    let own = shell_quote(&format!("run={}", me.run));
    // A failed refresh is not a failed host: the lease lasts its TTL from the last refresh.
    if run_text(
        &conn,
        format!("grep -qx {own} {q}/holder && {}", write_holder(&q, &me)),
    )
    .await
    .is_ok()
    {
        run.lease_taken = Some(tokio::time::Instant::now());
    }
}

/// Gives the lease back at the host's end, if it still names this run.
pub(crate) async fn release(run: &mut HostRun, ctx: &RunContext, plan: &HostPlan) {
    let (Some(me), Some(conn)) = (ctx.host_lease.clone(), run.conn.clone()) else {
        return;
    };
    if run.lease_taken.take().is_none() {
        return;
    }
    let dir = lease_dir(plan);
    let q = shell_quote(&dir);
    let own = shell_quote(&format!("run={}", me.run));
    if run_text(&conn, format!("grep -qx {own} {q}/holder && rm -rf {q}"))
        .await
        .is_ok()
    {
        let now = jiff::Timestamp::now().to_string();
        note(
            ctx,
            &run.host,
            &dir,
            &me,
            Some(now),
            Fact::HostLeaseReleased,
        )
        .await;
    }
}

/// The shell that writes `holder` (new expiry) in place, atomically (`mv`).
fn write_holder(q: &str, me: &HostLeaseIdentity) -> String {
    let expires = jiff::Timestamp::now().as_second() + LEASE_TTL.as_secs() as i64;
    let lines = [
        format!("run={}", me.run),
        format!("controller={}", me.controller),
        format!("operator={}", me.operator),
        format!("expires={expires}"),
    ];
    let quoted: Vec<String> = lines.iter().map(|l| shell_quote(l)).collect();
    format!(
        "printf '%s\\n' {} > {q}/holder.new && mv -f {q}/holder.new {q}/holder",
        quoted.join(" ")
    )
}

fn refuse(run: &mut HostRun, detail: String) {
    run.outcome = HostOutcome::Failed;
    run.failure = Some(FailureDetail {
        what: "host lease".into(),
        detail,
        output: Vec::new(),
    });
}

async fn note(
    ctx: &RunContext,
    host: &str,
    dir: &str,
    me: &HostLeaseIdentity,
    at: Option<String>,
    fact: fn(HostLeaseChange) -> Fact,
) {
    let expires = jiff::Timestamp::now().as_second() + LEASE_TTL.as_secs() as i64;
    let holder = LeaseHolder {
        run: me.run.clone(),
        controller: me.controller.clone(),
        operator: me.operator.clone(),
        expires,
    };
    let change = HostLeaseChange {
        host: host.to_string(),
        path: dir.to_string(),
        holder_run: holder.run.clone(),
        holder_controller: holder.controller.clone(),
        holder_operator: holder.operator.clone(),
        expires_at: at.unwrap_or_else(|| holder.expires_at()),
        reason: None,
    };
    ctx.note(fact(change)).await;
}

/// Runs a lease command and returns its stdout; a non-zero exit is an error with its stderr.
async fn run_text(conn: &std::sync::Arc<dyn Connection>, text: String) -> Result<String, String> {
    let mut request = ExecRequest::new(text);
    request.timeout = Some(COMMAND_TIMEOUT);
    let out = conn.exec(request).await.map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout.kept_bytes()).into_owned();
    match out.status {
        ExitStatus::Code(0) => Ok(stdout),
        status => Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&out.stderr.kept_bytes()).trim()
        )),
    }
}
