//! The shared PostgreSQL store in end-to-end tests: a throwaway cluster (sluice-testpg) and
//! `sluice` commands pointed at it, each as a controller of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sluice_plan::PlanArtifact;
use sluice_testpg::PgCluster;

/// A throwaway cluster; a missing PostgreSQL installation fails the test with how to install it.
pub fn cluster() -> PgCluster {
    PgCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

/// `sluice` with a state directory of its own ("a controller") and the given store (`""`: the
/// redb store of the state directory). Passwords come only from what the test adds: the
/// caller's `PGPASSWORD` and `PGPASSFILE` are removed.
pub fn sluice_on(state: &Path, store: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_STATE_DIR", state)
        .env("SLUICE_STORE", store)
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .stdin(Stdio::null());
    cmd
}

/// Writes `plan` as `DIR/NAME.json`, for `sluice apply --plan`.
pub fn write_plan(dir: &Path, name: &str, plan: &PlanArtifact) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
    path
}
