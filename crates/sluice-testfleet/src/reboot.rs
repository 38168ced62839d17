//! Simulated reboots: a host's "reboot" kills its sshd and every session under it, writes a
//! new boot id to the host's boot id file and starts sshd again (same port, same host key).
//!
//! sluice reads a host's boot id from the kernel (`/proc/sys/kernel/random/boot_id`), unless
//! the inventory's host variable `sluice_boot_id_file` names another file: the test hook
//! [`Fleet::write_inventory_for_reboots`] sets it to [`Fleet::boot_id_file`]. A plan's reboot
//! command on the fleet is [`Fleet::REBOOT_COMMAND`], which only asks for the reboot (a file
//! in the host's root); the test drives it with [`Fleet::reboot_requested`] and
//! [`Fleet::reboot`], so the fleet keeps owning every sshd it started (a detached restart on
//! the host would leave an sshd the fleet cannot kill on drop).

use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Fleet, FleetError, io_err, yaml_str};

/// The file [`Fleet::REBOOT_COMMAND`] creates under a host's root.
const REQUEST_FILE: &str = "reboot-requested";

impl Fleet {
    /// A reboot command for plans on the fleet: asks for a reboot the test then performs.
    pub const REBOOT_COMMAND: &'static str = "touch \"$FLEET_ROOT/reboot-requested\"";

    /// Host `i`'s boot id file (written by [`Fleet::write_inventory_for_reboots`]).
    pub fn boot_id_file(&self, i: usize) -> PathBuf {
        self.host_dir(i).join("boot_id")
    }

    /// Host `i`'s current boot id.
    pub fn boot_id(&self, i: usize) -> String {
        fs::read_to_string(self.boot_id_file(i))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Writes a first boot id for every host that has none, and the inventory of
    /// [`Fleet::write_inventory`] with each host's `sluice_boot_id_file` pointing at it.
    pub fn write_inventory_for_reboots(&self) -> Result<PathBuf, FleetError> {
        for i in 1..=self.len() {
            let file = self.boot_id_file(i);
            if !file.exists() {
                fs::write(&file, new_boot_id(i)).map_err(io_err(&file))?;
            }
        }
        self.write_inventory_with(|i| {
            let file = self.boot_id_file(i).display().to_string();
            Some(format!("sluice_boot_id_file: {}", yaml_str(&file)))
        })
    }

    /// Whether host `i` ran [`Fleet::REBOOT_COMMAND`] since the last call (the request is
    /// taken: a second call says no until the host asks again).
    pub fn reboot_requested(&self, i: usize) -> bool {
        fs::remove_file(self.root(i).join(REQUEST_FILE)).is_ok()
    }

    /// Reboots host `i`: its sshd and every session die, it gets a new boot id, and sshd
    /// starts again with the same key on the same port.
    pub fn reboot(&mut self, i: usize) -> Result<(), FleetError> {
        self.go_down(i)?;
        self.host_mut(i).start()
    }

    /// The first half of a reboot: sshd and its sessions killed, a new boot id written, and
    /// nothing started (a host that never comes back).
    pub fn go_down(&mut self, i: usize) -> Result<(), FleetError> {
        self.host_mut(i).kill_tree();
        let file = self.boot_id_file(i);
        fs::write(&file, new_boot_id(i)).map_err(io_err(&file))
    }
}

/// A fresh id in the kernel's format (a UUID), unique per host and call.
fn new_boot_id(host: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = nanos ^ ((host as u128) << 100) ^ u128::from(std::process::id());
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}\n",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
