//! Hooks for confirm-or-revert tests: a step that locks sluice out by stopping its host's sshd
//! listener, an undo that starts it again by itself, and the processes a confirm leaves.
//!
//! [`Fleet::write_inventory_for_confirm`] gives every host the variables these commands use:
//! `sluice_confirm_dir` (where sluice keeps a confirm's files on the host: the host's own
//! `confirm/` directory, so hosts of the fleet, which share this machine, do not share it),
//! `fleet_sshd_pid_file`, `fleet_sshd_config`, `fleet_sshd_log` and `fleet_root`. They are
//! host variables, sealed in the plan artifact like any other.
//!
//! An sshd the undo started is not the fleet's child: the fleet finds it by the host's pid
//! file and kills it on drop and restart (`HostProcess::kill`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Fleet, FleetError, SSHD, yaml_str};

impl Fleet {
    /// A step command that stops the host's sshd listener (SIGTERM): open sessions go on,
    /// new connections are refused. Uses [`Fleet::write_inventory_for_confirm`]'s variables.
    pub const STOP_SSHD_COMMAND: &'static str = "kill $(cat {{vars.fleet_sshd_pid_file}})";

    /// An undo that starts the host's sshd again, detached (sshd daemonizes), on its port and
    /// with its key and config.
    pub fn start_sshd_command() -> String {
        format!("{SSHD} -f {{{{vars.fleet_sshd_config}}}} -E {{{{vars.fleet_sshd_log}}}}")
    }

    /// Host `i`'s confirm directory (its `sluice_confirm_dir`).
    pub fn confirm_dir(&self, i: usize) -> PathBuf {
        self.host_dir(i).join("confirm")
    }

    /// The inventory of [`Fleet::write_inventory`] with the variables of this module.
    pub fn write_inventory_for_confirm(&self) -> Result<PathBuf, FleetError> {
        self.write_inventory_with(|i| {
            let dir = self.host_dir(i);
            let var = |name: &str, path: &Path| {
                format!("{name}: {}", yaml_str(&path.display().to_string()))
            };
            Some(
                [
                    var("sluice_confirm_dir", &self.confirm_dir(i)),
                    var("fleet_sshd_pid_file", &dir.join("sshd.pid")),
                    var("fleet_sshd_config", &dir.join("sshd_config")),
                    var("fleet_sshd_log", &dir.join("sshd-restarted.log")),
                    var("fleet_root", &self.root(i)),
                ]
                .join(", "),
            )
        })
    }

    /// The pid in host `i`'s sshd pid file, if any.
    pub fn sshd_pid(&self, i: usize) -> Option<u32> {
        fs::read_to_string(self.host_dir(i).join("sshd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every live process whose command line mentions `needle` (read from `/proc`), but this
    /// test process: e.g. a confirm's sleeping timer, found by its directory.
    pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
        let me = std::process::id();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me)
            .filter_map(|pid| {
                let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                line.contains(needle)
                    .then(|| (pid, line.trim().to_string()))
            })
            .collect()
    }
}
