//! Shared by the SSH integration tests: a fleet and targets pointing at it.
#![allow(dead_code)]

use std::time::Duration;

use sluice_ssh::{HostKeyPolicy, HostTarget, SshOptions, SshTransport};
use sluice_testfleet::Fleet;

pub fn fleet(n: usize) -> Fleet {
    match Fleet::start(n) {
        Ok(f) => f,
        Err(e) => panic!("cannot start the test fleet: {e}"),
    }
}

/// Host `i` of `fleet`, as the fleet's inventory describes it (strict host keys).
pub fn target(fleet: &Fleet, i: usize) -> HostTarget {
    let mut t = HostTarget::new(format!("host{i}"), fleet.address());
    t.port = fleet.port(i);
    t.user = Some(fleet.user().to_string());
    t.identity_files = vec![fleet.identity_file()];
    t.known_hosts = vec![fleet.known_hosts()];
    t.host_key_policy = HostKeyPolicy::Strict;
    t
}

/// A transport that ignores the developer's own agent and keys, so tests see only the fleet's.
pub fn transport() -> SshTransport {
    SshTransport::new(options())
}

/// The suite's options: `SLUICE_TEST_TRANSPORT_MODE=exec` (set by scripts/test.sh for its
/// second run of the SSH suites) sends every command on a channel of its own instead of
/// through the host's runner.
pub fn options() -> SshOptions {
    SshOptions {
        exec_per_step: sluice_testfleet::exec_mode_requested(),
        use_agent: false,
        default_identity_files: Vec::new(),
        default_known_hosts: Vec::new(),
        ssh_config: None,
        connect_timeout: Duration::from_secs(3),
        ..SshOptions::default()
    }
}

/// The sudo test users (created on first use when running as root) and a fleet that accepts
/// their logins; fails with how to fix a missing prerequisite.
pub fn sudo_users(fleet: &Fleet) -> sluice_testfleet::sudo::SudoUsers {
    let users = match sluice_testfleet::sudo::ensure() {
        Ok(u) => u,
        Err(e) => panic!("cannot prepare the become test users: {e}"),
    };
    if let Err(e) = fleet.open_to_other_users() {
        panic!("cannot open the fleet to the become test users: {e}");
    }
    users
}

/// Host `i` of `fleet`, logging in as `user` with the fleet's key.
pub fn target_as(fleet: &Fleet, i: usize, user: &str) -> HostTarget {
    let mut t = target(fleet, i);
    t.user = Some(user.to_string());
    t
}
