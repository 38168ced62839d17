//! A step's `reboot:` block: the step reboots its host and waits for it to come back.
//!
//! `reboot: { timeout: 15m, command: "systemctl reboot" }` replaces `run`: the command is
//! rendered like any `run` (into the host step's `run`), and the step's spec carries a
//! [`RebootSpec`] telling the executor to record the boot id first, expect the command's
//! connection to drop, and wait up to `timeout` for a new boot id (docs/plan-format.md).

use serde::{Deserialize, Serialize};

use crate::model::Template;
use crate::node::Node;
use crate::schema::{Fields, Reader};

/// How long a reboot may take when the plan says nothing: 15 minutes.
pub const DEFAULT_REBOOT_TIMEOUT_MS: u64 = 15 * 60 * 1000;
/// The command that reboots a host when the plan names none.
pub const DEFAULT_REBOOT_COMMAND: &str = "systemctl reboot";
/// The kernel's boot id, new at every boot: how the executor tells that a host rebooted.
pub const KERNEL_BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";
/// The inventory host variable naming another boot id file: a test hook (the sshd test fleet
/// simulates a reboot by restarting sshd and writing a new id there). Documented in
/// docs/plan-format.md; it is sealed in the artifact with the host's variables, so a review
/// of a plan whose inventory sets it shows it.
pub const BOOT_ID_FILE_VAR: &str = "sluice_boot_id_file";

const REBOOT_KEYS: &[&str] = &["timeout", "command"];
/// Step keys that make no sense on a reboot step, and why.
const REFUSED_WITH_REBOOT: &[(&str, &str)] = &[
    (
        "run",
        "a reboot step runs `reboot: { command: ... }`: remove `run`, or make it a step of its own",
    ),
    (
        "timeout",
        "the reboot's own `timeout` bounds the whole reboot: move it into `reboot: { timeout: ... }`",
    ),
    (
        "retries",
        "a reboot is not retried: sluice waits for the host up to the reboot's `timeout`",
    ),
    (
        "register",
        "a reboot's output is not kept: register a value in a step of its own",
    ),
    (
        "run_once",
        "a reboot step reboots every host it runs on: it cannot be `run_once`",
    ),
    (
        "check",
        "a reboot is never read-only: `apply --check` must not run it",
    ),
];

/// What the executor needs to know of a reboot step beyond its rendered command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootSpec {
    /// How long after the reboot command the host may take to answer with a new boot id.
    pub timeout_ms: u64,
}

/// A step's `reboot:` block, read: the spec and the command, as the step's `run` template.
pub(crate) struct RebootDecl {
    pub spec: RebootSpec,
    pub command: Template,
}

/// Reads `reboot:` of a step, when present, and refuses the keys it excludes.
pub(crate) fn read_reboot(r: &mut Reader, f: &Fields<'_>, context: &str) -> Option<RebootDecl> {
    let node = f.get("reboot")?;
    for (key, why) in REFUSED_WITH_REBOOT {
        if let Some(other) = f.get(key) {
            r.error_help(
                other.loc,
                format!("{context}: `{key}` cannot be used with `reboot`"),
                *why,
            );
        }
    }
    let context = format!("{context}: reboot");
    let fields = r.fields(node, REBOOT_KEYS, &context)?;
    let timeout_ms = fields
        .get("timeout")
        .and_then(|n| crate::plan::nonzero_duration(r, n, &format!("{context}: timeout")))
        .unwrap_or(DEFAULT_REBOOT_TIMEOUT_MS);
    let command = match fields.get("command") {
        Some(n) => command(r, n, &context)?,
        None => Template {
            text: DEFAULT_REBOOT_COMMAND.to_string(),
            loc: node.loc,
        },
    };
    Some(RebootDecl {
        spec: RebootSpec { timeout_ms },
        command,
    })
}

fn command(r: &mut Reader, node: &Node, context: &str) -> Option<Template> {
    let text = r.as_str(node, &format!("{context}: command"))?;
    if text.trim().is_empty() {
        r.error_help(
            node.loc,
            format!("{context}: `command` is empty"),
            format!("write the command that reboots the host, or remove `command` for `{DEFAULT_REBOOT_COMMAND}`"),
        );
    }
    Some(Template {
        text,
        loc: node.loc,
    })
}
