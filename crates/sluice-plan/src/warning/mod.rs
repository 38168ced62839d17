//! Warnings: what a plan may do on purpose but a change board should see. Typed, each with a
//! stable code, so `--deny-warnings`, the review formats and tests name them without matching text.
//!
//! A warning never stops a plan (`sluice validate` still exits 0); `--deny-warnings` makes every
//! warning an error. Two kinds of check produce them:
//! - [`source`]: checks that need the YAML (an unused secret, a `--var` naming no variable, a wave
//!   that gets no host), found while compiling and reported with their location;
//! - [`artifact`]: checks of the compiled artifact alone (the window, undo, the canary's budget,
//!   health checks), so a saved artifact reviewed with `sluice plan --from` shows them too.
//!
//! The codes are listed in docs/operations.md ("Reviewing a change"); a code, once published,
//! keeps its meaning.

pub mod artifact;
pub mod source;

use serde::Serialize;

/// One warning, with the facts its message is made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PlanWarning {
    /// The absolute window ended before the moment the plan was judged at.
    WindowEnded { end: jiff::Timestamp },
    /// The window is shorter than the waves' estimated duration.
    WindowTooShort { window_ms: u64, estimate_ms: u64 },
    /// A step changes something (it registers nothing) and has no `undo`: a rollback leaves it.
    NoUndo { step: String },
    /// The first wave tolerates as many failures as it has hosts: it cannot stop the rollout.
    CanaryToleratesAll {
        wave: String,
        hosts: usize,
        max_failed: usize,
    },
    /// No health check: a host counts as healthy when its steps succeed.
    NoHealthChecks,
    /// `--var NAME=…` sets a variable no template, plan, group or host uses.
    UnknownVar {
        name: String,
        did_you_mean: Option<String>,
    },
    /// A secret is declared but no command uses it.
    UnusedSecret { secret: String },
    /// `become_password` is set but no step uses `become`, so it is never sent.
    BecomePasswordUnused { secret: String },
    /// A declared wave gets no host (the earlier waves take them all) and is left out.
    EmptyWave { wave: String, targeted: usize },
    /// An inventory setting sluice reads but does not use, or an inventory source that gives no
    /// host; `message` says which and why.
    Inventory { message: String },
    /// A `--limit` pattern matches no host of the inventory.
    LimitMatchesNothing { pattern: String, inventory: String },
    /// An https health check accepts any certificate (`insecure: true`).
    InsecureTls { check: String, hosts: usize },
    /// Hosts set a test hook variable (crate::host_hooks): sluice's boot id check or host-side
    /// lease is pointed somewhere else than its default. `hosts` in plan order, all of them.
    TestHook {
        variable: String,
        hosts: Vec<String>,
    },
}

impl PlanWarning {
    /// The stable code: the JSON `code`, shown with the message in every format.
    pub fn code(&self) -> &'static str {
        match self {
            PlanWarning::WindowEnded { .. } => "window_ended",
            PlanWarning::WindowTooShort { .. } => "window_too_short",
            PlanWarning::NoUndo { .. } => "no_undo",
            PlanWarning::CanaryToleratesAll { .. } => "canary_tolerates_all",
            PlanWarning::NoHealthChecks => "no_health_checks",
            PlanWarning::UnknownVar { .. } => "unknown_var",
            PlanWarning::UnusedSecret { .. } => "unused_secret",
            PlanWarning::BecomePasswordUnused { .. } => "become_password_unused",
            PlanWarning::EmptyWave { .. } => "empty_wave",
            PlanWarning::Inventory { .. } => "inventory",
            PlanWarning::LimitMatchesNothing { .. } => "limit_matches_nothing",
            PlanWarning::InsecureTls { .. } => "insecure_tls",
            PlanWarning::TestHook { .. } => "test_hook",
        }
    }

    /// Every code, in declaration order (for the documentation check).
    pub const CODES: &'static [&'static str] = &[
        "window_ended",
        "window_too_short",
        "no_undo",
        "canary_tolerates_all",
        "no_health_checks",
        "unknown_var",
        "unused_secret",
        "become_password_unused",
        "empty_wave",
        "inventory",
        "limit_matches_nothing",
        "insecure_tls",
        "test_hook",
    ];

    /// What to do about it, when there is something to say.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            PlanWarning::WindowEnded { .. } => {
                "set a window in the future, or remove it to run whenever applied".into()
            }
            PlanWarning::WindowTooShort { .. } => {
                "widen the window, raise `concurrency`, or shorten step timeouts".into()
            }
            PlanWarning::NoUndo { .. } => {
                "add `undo:` so a failed wave can be rolled back, or `register:` if the step only reads".into()
            }
            PlanWarning::CanaryToleratesAll { .. } => {
                "lower the first wave's `max_failed` (a canary tolerates none unless it says so), or make the wave larger than its budget".into()
            }
            PlanWarning::NoHealthChecks => {
                "add `health.checks` (run, http or tcp) that show the service works".into()
            }
            PlanWarning::UnknownVar {
                did_you_mean: Some(name),
                ..
            } => format!("did you mean `{name}`?"),
            PlanWarning::UnknownVar { .. } => {
                "the plan's templates, vars, groups and hosts use no such name".into()
            }
            PlanWarning::InsecureTls { .. } => {
                "give the check `ca_file:` with the authority that signed the service's certificate".into()
            }
            PlanWarning::TestHook { variable, .. } => format!(
                "`{variable}` is a test hook for sluice's test fleet: do not set it (in the inventory \
                 or the plan's `vars`) for real hosts"
            ),
            PlanWarning::UnusedSecret { .. }
            | PlanWarning::BecomePasswordUnused { .. }
            | PlanWarning::EmptyWave { .. }
            | PlanWarning::Inventory { .. }
            | PlanWarning::LimitMatchesNothing { .. } => return None,
        })
    }
}

/// The message, one line: what is wrong and what follows from it.
impl std::fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::schema::format_duration_ms as duration;
        match self {
            PlanWarning::WindowEnded { end } => write!(
                f,
                "the maintenance window ended at {end}: `sluice apply` will refuse to start"
            ),
            PlanWarning::WindowTooShort {
                window_ms,
                estimate_ms,
            } => write!(
                f,
                "the window lasts {} but the waves may take up to {} (estimate: every step up to \
                 its timeout, {} for a step without one, pauses included, approval waits not)",
                duration(*window_ms),
                duration(*estimate_ms),
                duration(crate::estimate::STEP_WITHOUT_TIMEOUT_MS)
            ),
            PlanWarning::NoUndo { step } => write!(
                f,
                "step `{step}` has no undo: a rollback leaves its change in place"
            ),
            PlanWarning::CanaryToleratesAll {
                wave,
                hosts,
                max_failed,
            } => write!(
                f,
                "the first wave `{wave}` tolerates {max_failed} failure(s) with {hosts} host(s): \
                 even if every host of it fails, the rollout goes on"
            ),
            PlanWarning::NoHealthChecks => write!(
                f,
                "no health checks: a host counts as healthy as soon as its steps succeed"
            ),
            PlanWarning::UnknownVar { name, .. } => write!(
                f,
                "--var {name}: no template, plan, group or host uses a variable `{name}`"
            ),
            PlanWarning::UnusedSecret { secret } => {
                write!(f, "secret `{secret}` is declared but no command uses it")
            }
            PlanWarning::BecomePasswordUnused { secret } => write!(
                f,
                "become_password is set but no step uses `become`, so secret `{secret}` is never sent"
            ),
            PlanWarning::Inventory { message } => f.write_str(message),
            PlanWarning::LimitMatchesNothing { pattern, inventory } => write!(
                f,
                "--limit pattern `{pattern}` matches no host of the inventory {inventory}"
            ),
            PlanWarning::InsecureTls { check, hosts } => write!(
                f,
                "health check `{check}` accepts any TLS certificate (`insecure: true`) on {hosts} \
                 host(s): anyone in the path can answer it"
            ),
            PlanWarning::TestHook { variable, hosts } => {
                let what = crate::host_hooks::HOOKS
                    .iter()
                    .find(|h| h.var == variable)
                    .map_or("a host-side safety mechanism is redirected", |h| {
                        h.redirects
                    });
                write!(
                    f,
                    "host variable `{variable}` is set on {} host(s) ({}): {what}",
                    hosts.len(),
                    shown_hosts(hosts)
                )
            }
            PlanWarning::EmptyWave { wave, targeted } => write!(
                f,
                "wave `{wave}` gets no host: the earlier waves take all {targeted} targeted hosts; \
                 it is left out of the plan"
            ),
        }
    }
}

/// At most [`HOSTS_NAMED`] host names, then how many more (the JSON lists them all).
fn shown_hosts(hosts: &[String]) -> String {
    match hosts.len().checked_sub(HOSTS_NAMED) {
        None | Some(0) => hosts.join(", "),
        Some(more) => format!("{}, and {more} more", hosts[..HOSTS_NAMED].join(", ")),
    }
}

/// How many hosts a warning's message names before it counts the rest.
const HOSTS_NAMED: usize = 5;
