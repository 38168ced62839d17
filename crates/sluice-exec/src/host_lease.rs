//! Host-side leases (`host_lease: true`): a lock on the host itself, so that a controller with
//! another audit store sees a host this run is changing (docs/operations.md, "Host-side
//! leases").
//!
//! The lease is a directory on the host (`/var/lib/sluice/host-lease`, or the host variable
//! `sluice_host_lease_dir`), taken with `mkdir`, which is atomic: of two controllers, one
//! creates it. Inside, `holder` names the run, controller and operator and the expiry (Unix
//! seconds). The lease is taken when the host starts (a run re-takes its own: a resume), its
//! expiry pushed back every third of its duration by a task beside the host's commands while
//! the host is in flight, and it is released (removed, if it still names this run) at the
//! host's end; a later rollback of the host takes it again for its undos. An expired lease of another run is
//! broken only when the operator asks (`--break-expired-host-leases --reason`), and the break
//! is recorded. Every command runs as the login user, without `become`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sluice_model::{Fact, HostLeaseChange};
use sluice_plan::host_hooks::{LEASE_TTL_VAR, lease_ttl};
use sluice_plan::{HostPlan, PlanArtifact, shell_quote};
use sluice_ssh::{Connection, ExecRequest, ExitStatus, HostTarget, Transport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::host::HostRun;
use crate::report::{FailureDetail, HostOutcome};
use crate::run::RunContext;
use crate::transports::{Transports, host_target};

/// Where the lease lives on a host unless its `sluice_host_lease_dir` variable says otherwise.
pub const DEFAULT_LEASE_DIR: &str = "/var/lib/sluice/host-lease";
/// The host variable naming another lease directory: a test hook (the sshd test fleet's hosts
/// share this machine), sealed in the artifact with the host's variables.
pub use sluice_plan::host_hooks::LEASE_DIR_VAR;
/// How long a lease lasts from when it is taken or refreshed, unless the host's
/// `sluice_host_lease_ttl` variable (a test hook) says otherwise.
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
    match acquire(ctx, &me, &conn, plan).await {
        Ok(hold) => run.lease = Some(hold),
        Err(detail) => {
            run.outcome = HostOutcome::Failed;
            run.failure = Some(FailureDetail {
                what: "host lease".into(),
                detail,
                output: Vec::new(),
            });
        }
    }
}

/// Before the undos of a host whose lease was released at its end: takes it again (the same
/// run id, so a lease this run still holds is re-taken). `Err` is why the undos must not run:
/// another controller holds the host now.
pub(crate) async fn take_for_undo(
    run: &mut HostRun,
    ctx: &RunContext,
    plan: &HostPlan,
) -> Result<(), FailureDetail> {
    let (Some(me), Some(conn)) = (ctx.host_lease.clone(), run.conn.clone()) else {
        return Ok(());
    };
    if run.lease.is_some() {
        return Ok(());
    }
    match acquire(ctx, &me, &conn, plan).await {
        Ok(hold) => {
            run.lease = Some(hold);
            Ok(())
        }
        Err(detail) => Err(FailureDetail {
            what: "undo".into(),
            detail: format!("host lease: {detail}; nothing was undone"),
            output: Vec::new(),
        }),
    }
}

/// Takes the lease of `plan`'s host on `conn` (or re-takes this run's own, or breaks an
/// expired one when the operator asked) and starts keeping it alive; `Err` says why not.
async fn acquire(
    ctx: &RunContext,
    me: &Arc<HostLeaseIdentity>,
    conn: &Arc<dyn Connection>,
    plan: &HostPlan,
) -> Result<LeaseHold, String> {
    let site = LeaseSite::of(plan)?;
    let q = shell_quote(&site.dir);
    let dir = &site.dir;
    let take = format!(
        "mkdir -p \"$(dirname {q})\" && if mkdir {q} 2>/dev/null; then {} && echo taken; else echo held; cat {q}/holder 2>/dev/null; true; fi",
        write_holder(&q, me, site.ttl)
    );
    let answer = run_text(conn, take)
        .await
        .map_err(|why| format!("cannot take {dir}: {why}"))?;
    if !answer.starts_with("taken") {
        let holder = LeaseHolder::parse(&answer).ok_or_else(|| {
            format!("{dir} exists but names no holder: remove it if no controller uses it")
        })?;
        let ours = holder.run == me.run;
        let breakable = holder.expired() && me.break_expired.is_some();
        if !ours && !breakable {
            return Err(format!("held by {}", holder.describe()));
        }
        // Re-taken (our own, from before a resume or before a rollback) or broken: rewritten
        // only if it still names the holder just read, so two controllers breaking it at once
        // cannot both win.
        let rewrite = format!(
            "grep -qx {} {q}/holder && {} && echo taken",
            shell_quote(&format!("run={}", holder.run)),
            write_holder(&q, me, site.ttl)
        );
        match run_text(conn, rewrite).await {
            Ok(text) if text.starts_with("taken") => {}
            Ok(_) => return Err(format!("{dir} changed hands while it was taken")),
            Err(why) => return Err(format!("cannot take {dir}: {why}")),
        }
        if !ours {
            let broken = HostLeaseChange {
                host: plan.name.clone(),
                path: dir.clone(),
                holder_run: holder.run.clone(),
                holder_controller: holder.controller.clone(),
                holder_operator: holder.operator.clone(),
                expires_at: holder.expires_at(),
                reason: me.break_expired.clone(),
            };
            ctx.note(Fact::HostLeaseBroken(broken)).await;
        }
    }
    note(ctx, &plan.name, &site, me, None, Fact::HostLeaseTaken).await;
    Ok(keep_alive(ctx, me, conn, plan, site))
}

/// Gives the lease back (at the host's end, or after its undos), if it still names this run.
pub(crate) async fn release(run: &mut HostRun, ctx: &RunContext, plan: &HostPlan) {
    let Some(hold) = run.lease.take() else {
        return;
    };
    // The keeper ends first, so no refresh writes into the directory being removed.
    hold.end().await;
    let (Some(me), Some(conn)) = (ctx.host_lease.clone(), run.conn.clone()) else {
        return;
    };
    let Ok(site) = LeaseSite::of(plan) else {
        return;
    };
    let q = shell_quote(&site.dir);
    let own = shell_quote(&format!("run={}", me.run));
    if run_text(&conn, format!("grep -qx {own} {q}/holder && rm -rf {q}"))
        .await
        .is_ok()
    {
        let now = jiff::Timestamp::now().to_string();
        note(
            ctx,
            &run.host,
            &site,
            &me,
            Some(now),
            Fact::HostLeaseReleased,
        )
        .await;
    }
}

/// Where a host's lease lives and how long it lasts.
struct LeaseSite {
    dir: String,
    ttl: Duration,
}

impl LeaseSite {
    fn of(plan: &HostPlan) -> Result<LeaseSite, String> {
        let ttl = match plan.vars.get(LEASE_TTL_VAR) {
            None => LEASE_TTL,
            Some(value) => lease_ttl(value).ok_or_else(|| {
                format!("{LEASE_TTL_VAR} is {value}: expected a positive whole number of seconds")
            })?,
        };
        Ok(LeaseSite {
            dir: lease_dir(plan),
            ttl,
        })
    }
}

/// A lease this host run holds, and the task that keeps it alive (see [`keep_alive`]).
pub(crate) struct LeaseHold {
    /// Dropped (or sent) to end the keeper; it ends at its next wait, never mid-command.
    stop: oneshot::Sender<()>,
    keeper: JoinHandle<()>,
}

impl LeaseHold {
    /// Ends the keeper and waits for its refresh in flight, if any.
    async fn end(self) {
        let _ = self.stop.send(());
        let _ = self.keeper.await;
    }
}

/// Starts the task that pushes the lease's expiry back every third of its duration while the
/// host is in flight, however long one step takes (a step runs for as long as its timeout;
/// a reboot for as long as the host is down).
///
/// It runs beside the host's commands: on the host's own connection while that connection
/// lives (a second command on a connection whose runner is busy gets a channel of its own,
/// and `transport_mode: exec` opens one per command anyway), and on a connection of its own
/// once that one is gone or failing (a reboot lets the host's connection go). It holds the
/// host's connection only weakly, so closing it (`HostRun::release_connection`) closes it.
/// A failed refresh is not a failed host: the lease lasts until its expiry, and the next
/// refresh tries again.
fn keep_alive(
    ctx: &RunContext,
    me: &Arc<HostLeaseIdentity>,
    conn: &Arc<dyn Connection>,
    plan: &HostPlan,
    site: LeaseSite,
) -> LeaseHold {
    let (stop, mut stopped) = oneshot::channel();
    let keeper = Keeper {
        host: Arc::downgrade(conn),
        own: None,
        transport: ctx.transports.get(plan.connection.transport),
        target: host_target(plan),
        me: me.clone(),
        site,
    };
    let keeper = tokio::spawn(async move {
        let mut keeper = keeper;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(keeper.site.ttl / 3) => {}
                _ = &mut stopped => return,
            }
            keeper.refresh().await;
        }
    });
    LeaseHold { stop, keeper }
}

/// What the keeper task needs to refresh one host's lease.
struct Keeper {
    host: Weak<dyn Connection>,
    own: Option<Arc<dyn Connection>>,
    transport: Option<Arc<dyn Transport>>,
    target: HostTarget,
    me: Arc<HostLeaseIdentity>,
    site: LeaseSite,
}

impl Keeper {
    async fn refresh(&mut self) {
        let q = shell_quote(&self.site.dir);
        let own = shell_quote(&format!("run={}", self.me.run));
        let command = || {
            format!(
                "grep -qx {own} {q}/holder && {}",
                write_holder(&q, &self.me, self.site.ttl)
            )
        };
        if let Some(conn) = self.host.upgrade()
            && run_text(&conn, command()).await.is_ok()
        {
            return;
        }
        if self.own.is_none()
            && let Some(transport) = &self.transport
        {
            self.own = transport.connect(&self.target).await.ok();
        }
        let Some(conn) = self.own.clone() else {
            tracing::warn!(host = %self.target.name, "cannot refresh the host-side lease: no connection");
            return;
        };
        if let Err(why) = run_text(&conn, command()).await {
            tracing::warn!(host = %self.target.name, "cannot refresh the host-side lease: {why}");
            // A connection that failed is not tried again: the next refresh opens a new one.
            self.own = None;
        }
    }
}

/// The shell that writes `holder` (new expiry) in place, atomically (`mv`).
fn write_holder(q: &str, me: &HostLeaseIdentity, ttl: Duration) -> String {
    let expires = jiff::Timestamp::now().as_second() + secs(ttl);
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

async fn note(
    ctx: &RunContext,
    host: &str,
    site: &LeaseSite,
    me: &HostLeaseIdentity,
    at: Option<String>,
    fact: fn(HostLeaseChange) -> Fact,
) {
    let expires = jiff::Timestamp::now().as_second() + secs(site.ttl);
    let holder = LeaseHolder {
        run: me.run.clone(),
        controller: me.controller.clone(),
        operator: me.operator.clone(),
        expires,
    };
    let change = HostLeaseChange {
        host: host.to_string(),
        path: site.dir.clone(),
        holder_run: holder.run.clone(),
        holder_controller: holder.controller.clone(),
        holder_operator: holder.operator.clone(),
        expires_at: at.unwrap_or_else(|| holder.expires_at()),
        reason: None,
    };
    ctx.note(fact(change)).await;
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
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
