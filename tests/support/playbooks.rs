//! The example playbooks, the inventory each is reviewed against, and the fixed clock, zone and
//! (absent) audit store that make reviews the same on every machine and every day. Shared by
//! tests/plan.rs (text and Markdown snapshots) and tests/review_html.rs (Chromium).

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

/// Every playbook in playbooks/ with its inventory.
pub const PLAYBOOKS: &[(&str, &str)] = &[
    ("openssl-patch", "inventory/prod.yaml"),
    ("kernel-update", "inventory/prod.yaml"),
    ("nginx-config", "inventory/prod.yaml"),
    ("demo-rolling-patch", "inventory/demo.yaml"),
    ("demo-canary-fails", "inventory/demo.yaml"),
    ("three-tier-patch", "inventory/demo.yaml"),
    ("notify-example", "inventory/demo.yaml"),
    ("backup-and-lease", "inventory/demo.yaml"),
    (
        "bench-rolling-patch",
        "tests/fixtures/bench-fleet.inventory.yaml",
    ),
];

/// The moment reviews are judged at, so a window's state does not change with the date.
pub const AS_OF: &str = "2026-11-01T00:00:00Z";

/// The local time zone of the reviews (`TZ`).
pub const TZ: &str = "Europe/Berlin";

/// A state directory that is never created: approvals read "not checked" everywhere.
pub const NO_STORE: &str = "tests/fixtures/no-audit-store";

/// `sluice` run from the repository root with the fixed zone, store and no colour.
pub fn sluice() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c.env("NO_COLOR", "1")
        .env("TZ", TZ)
        .env("SLUICE_STATE_DIR", NO_STORE);
    c
}

/// The arguments that review `plan` against `inventory` in `format`, judged at [`AS_OF`].
pub fn review_args(plan: &str, inventory: &str, format: &str) -> Vec<String> {
    [
        "plan",
        &format!("playbooks/{plan}.yaml"),
        "-i",
        inventory,
        "--as-of",
        AS_OF,
        "--format",
        format,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
