//! A step's `confirm:` block: confirm-or-revert, a dead man's switch on the host itself.
//!
//! `confirm: { within: 2m }` makes the executor arm a timer on the host before the step runs
//! that runs the step's `undo` by itself when it fires; after the step, sluice must reach the
//! host over a new connection and disarm the timer before `within` has passed since it was
//! armed, or the host reverts (docs/plan-format.md, "Confirm-or-revert").

use serde::{Deserialize, Serialize};

use crate::schema::{Fields, Reader};

/// How long sluice waits after the deadline for a host that reverted to answer again when the
/// plan says nothing: 5 minutes.
pub const DEFAULT_REVERT_TIMEOUT_MS: u64 = 5 * 60 * 1000;
/// The shortest window: the timer on the host counts whole seconds.
pub const MIN_WITHIN_MS: u64 = 1_000;
/// The inventory host variable naming the directory on the host where armed confirms keep
/// their files (the undo, the timer's state and its result). Unset: `$HOME/.sluice/confirm`
/// of the user the step runs as. Sealed in the artifact with the host's variables.
pub const CONFIRM_DIR_VAR: &str = "sluice_confirm_dir";

const CONFIRM_KEYS: &[&str] = &["within", "revert_timeout"];
/// Step keys that make no sense on a step with `confirm`, and why.
const REFUSED_WITH_CONFIRM: &[(&str, &str)] = &[
    (
        "reboot",
        "the timer on the host (a transient systemd unit or a sleeping process) does not survive a reboot, so it could never revert one; a reboot step waits for the host with its own `timeout`",
    ),
    (
        "retries",
        "the timer is armed once, before the step: a retry could run after the host has already reverted the first attempt",
    ),
    (
        "run_once",
        "confirm-or-revert is per host, and a `run_once` step's failure is the run's, not one host's: make it a step of every host",
    ),
    (
        "check",
        "a `check: true` step is read-only and never needs reverting, and `apply --check` must not arm anything",
    ),
];

/// What the executor needs to know of a step with `confirm:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmSpec {
    /// How long after the timer is armed (just before the step runs) it fires, unless sluice
    /// has disarmed it over a new connection by then.
    pub within_ms: u64,
    /// How long after the deadline sluice waits for a host that did not confirm to answer
    /// again, to read the result of its revert.
    pub revert_timeout_ms: u64,
}

/// Reads `confirm:` of a step, when present, and refuses what it excludes: a step with a
/// confirm must have an `undo` (`has_undo`), and no key of [`REFUSED_WITH_CONFIRM`]; its
/// `timeout` (`timeout_ms`, as read), when it has one, must end before the window does.
pub(crate) fn read_confirm(
    r: &mut Reader,
    f: &Fields<'_>,
    context: &str,
    has_undo: bool,
    timeout_ms: Option<u64>,
) -> Option<ConfirmSpec> {
    let node = f.get("confirm")?;
    let mut refused = false;
    for (key, why) in REFUSED_WITH_CONFIRM {
        if let Some(other) = f.get(key) {
            r.error_help(
                other.loc,
                format!("{context}: `{key}` cannot be used with `confirm`"),
                *why,
            );
            refused = true;
        }
    }
    if !has_undo {
        r.error_help(
            node.loc,
            format!("{context}: `confirm` needs an `undo`"),
            "the timer on the host runs the step's `undo` when sluice cannot confirm in time: write `undo: COMMAND` that puts back what the step changes",
        );
        refused = true;
    }
    let ctx = format!("{context}: confirm");
    let fields = r.fields(node, CONFIRM_KEYS, &ctx)?;
    let within_ms = match fields.get("within") {
        Some(n) => match r.as_duration(n, &format!("{ctx}: within"))? {
            ms if ms < MIN_WITHIN_MS => {
                r.error_help(
                    n.loc,
                    format!("{ctx}: within: shorter than a second"),
                    "the timer on the host counts whole seconds: write e.g. `within: 2m`",
                );
                return None;
            }
            ms => ms,
        },
        None => {
            r.error_help(
                fields.loc,
                format!("{ctx} needs `within`"),
                "say how long sluice has to reach the host again after the step, e.g. `confirm: { within: 2m }`",
            );
            return None;
        }
    };
    let revert_timeout_ms = fields
        .get("revert_timeout")
        .and_then(|n| crate::plan::nonzero_duration(r, n, &format!("{ctx}: revert_timeout")))
        .unwrap_or(DEFAULT_REVERT_TIMEOUT_MS);
    if let (Some(timeout), Some(ms)) = (f.get("timeout"), timeout_ms)
        && ms >= within_ms
    {
        r.error_help(
            timeout.loc,
            format!("{context}: `timeout` is not shorter than `confirm: within`"),
            "the window counts from before the step: a step still running when it ends is reverted under it; make `within` longer than the step's `timeout`",
        );
        refused = true;
    }
    (!refused).then_some(ConfirmSpec {
        within_ms,
        revert_timeout_ms,
    })
}
