//! `apply`'s check of host-side leases before a run starts (`host_lease: true`): a host that
//! another run (of any controller, any store) holds on the host itself refuses the run, exit 2,
//! naming the holder, with nothing recorded. The library side is `sluice_exec::host_lease`.

use std::sync::Arc;

use sluice_exec::Transports;
use sluice_exec::host_lease::{HostLeaseIdentity, held_hosts};
use sluice_plan::{PlanArtifact, TransportKind};
use sluice_ssh::LocalTransport;

use crate::console::Console;
use crate::error::CliError;

/// Refuses the run when a targeted host's lease is held by another run and may not be taken
/// (live, or expired without `--break-expired-host-leases`).
pub fn refuse_held_hosts(
    artifact: &PlanArtifact,
    me: &HostLeaseIdentity,
    exec_per_step: bool,
    console: &Console,
) -> Result<(), CliError> {
    if !artifact.host_lease {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let held = runtime.block_on(async {
        let bars = indicatif::MultiProgress::new();
        let transports = Transports::new()
            .with(TransportKind::Local, Arc::new(LocalTransport))
            .with(
                TransportKind::Ssh,
                Arc::new(crate::ssh::transport(console, &bars, exec_per_step)),
            );
        held_hosts(artifact, &transports, me).await
    });
    let Some(first) = held.first() else {
        return Ok(());
    };
    let hosts: Vec<String> = held
        .iter()
        .map(|h| format!("{} ({})", h.host, h.holder.describe()))
        .collect();
    let hint = if held.iter().all(|h| h.holder.expired()) {
        "; those leases have expired: if their run is dead, take the hosts over with `--break-expired-host-leases --reason TEXT` (recorded)"
    } else {
        ""
    };
    Err(CliError::invalid_input(format!(
        "{} host(s) are leased on the host by another run, e.g. {} by run {}: {}; nothing was started{hint}",
        held.len(),
        first.host,
        first.holder.run,
        hosts.join(", ")
    )))
}
