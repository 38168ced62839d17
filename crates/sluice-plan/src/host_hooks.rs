//! Host variables that point sluice's host-side safety mechanisms somewhere else: test hooks.
//!
//! The sshd test fleet's hosts share one machine, so a test tells sluice where a host's boot
//! id file and lease directory are, and how long a lease lasts, through host variables. They
//! are sealed in the artifact with the host's variables; a plan whose inventory sets one gets
//! the `test_hook` warning (crate::warning), so a change board sees that sluice is pointed at
//! something other than the kernel's boot id or the default lease directory.

use std::time::Duration;

pub use crate::reboot::BOOT_ID_FILE_VAR;

/// The host variable naming another lease directory than `/var/lib/sluice/host-lease`.
pub const LEASE_DIR_VAR: &str = "sluice_host_lease_dir";
/// The host variable setting how long a host-side lease lasts (whole seconds) instead of 15
/// minutes: lets a test outlive a lease with a short step.
pub const LEASE_TTL_VAR: &str = "sluice_host_lease_ttl";

/// A hook variable and what it redirects, as the review's `test_hook` warning says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostHook {
    pub var: &'static str,
    /// What sluice uses instead of its default, in a few words.
    pub redirects: &'static str,
}

/// Every hook variable, in the order the review lists them: each redirects a host-side safety
/// mechanism, and each is flagged in the review.
pub const HOOKS: &[HostHook] = &[
    HostHook {
        var: BOOT_ID_FILE_VAR,
        redirects: "reboot steps read the boot id from this file instead of the kernel's \
                    /proc/sys/kernel/random/boot_id",
    },
    HostHook {
        var: LEASE_DIR_VAR,
        redirects: "the host-side lease is taken in this directory instead of \
                    /var/lib/sluice/host-lease",
    },
    HostHook {
        var: LEASE_TTL_VAR,
        redirects: "a host-side lease lasts this many seconds instead of 15 minutes",
    },
];

/// The names of every hook variable.
pub fn hook_vars() -> impl Iterator<Item = &'static str> {
    HOOKS.iter().map(|h| h.var)
}

/// The lease duration `value` (of [`LEASE_TTL_VAR`]) asks for: a positive whole number of
/// seconds, as a number or a string of digits (an Ansible INI inventory gives strings).
pub fn lease_ttl(value: &serde_json::Value) -> Option<Duration> {
    let secs = match value {
        serde_json::Value::Number(n) => n.as_u64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ttl_is_a_positive_whole_number_of_seconds() {
        assert_eq!(
            lease_ttl(&serde_json::json!(6)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            lease_ttl(&serde_json::json!(" 90 ")),
            Some(Duration::from_secs(90))
        );
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-3),
            serde_json::json!(1.5),
            serde_json::json!("5m"),
            serde_json::json!(true),
        ] {
            assert_eq!(lease_ttl(&bad), None, "{bad}");
        }
    }
}
