//! Helpers shared by the end-to-end tests of `sluice apply` (`mod support;` in each test file).
// Each test file uses some of them.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `sluice` with an audit store of its own, so concurrent tests never share host leases.
///
/// The stores live under cargo's per-target scratch folder, not /tmp, so test runs leave nothing
/// behind outside `target/`.
pub fn sluice() -> Command {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sluice-test-store-{}-{n}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", dir);
    cmd
}

/// A finished command's exit status, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON Lines events of a `--json` run; every stdout line must be one.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is a JSON event"))
        .collect()
}

/// The event of `kind` for step `step` (the first, in stream order).
pub fn event<'a>(events: &'a [serde_json::Value], kind: &str, step: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["kind"] == kind && e["step"] == step)
        .unwrap_or_else(|| panic!("no {kind} for {step} in {events:#?}"))
}

/// The first `host_finished` event.
pub fn host_finished(events: &[serde_json::Value]) -> &serde_json::Value {
    events
        .iter()
        .find(|e| e["kind"] == "host_finished")
        .expect("a host_finished event")
}

pub mod pg;
pub mod stage_hosts;
pub mod workers;
