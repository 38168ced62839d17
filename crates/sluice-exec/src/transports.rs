//! Which [`Transport`] reaches which host, and the [`HostTarget`] built from a host's plan.
//!
//! The executor depends only on the transport interface. The caller (the CLI) decides which
//! implementations exist and registers one per [`TransportKind`]; a host whose kind has none
//! fails as unreachable, it does not stop the run.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_plan::{Connection, HostKeyChecking, HostPlan, TransportKind, TransportMode};
use sluice_ssh::{HostKeyPolicy, HostTarget, Transport};

/// The transports available to a run, by kind.
#[derive(Clone, Default)]
pub struct Transports {
    by_kind: HashMap<TransportKind, Arc<dyn Transport>>,
}

impl Transports {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, kind: TransportKind, transport: Arc<dyn Transport>) -> Self {
        self.by_kind.insert(kind, transport);
        self
    }

    pub fn get(&self, kind: TransportKind) -> Option<Arc<dyn Transport>> {
        self.by_kind.get(&kind).cloned()
    }
}

/// The connection details of `host` as the transport wants them.
pub fn host_target(host: &HostPlan) -> HostTarget {
    connection_target(&host.name, &host.connection)
}

/// The target of host `name` reached through connection `c` (also `sluice exec`'s, which has
/// no plan).
pub fn connection_target(name: &str, c: &Connection) -> HostTarget {
    HostTarget {
        name: name.to_string(),
        address: c.address.clone(),
        port: c.port,
        user: c.user.clone(),
        identity_files: c.identity_files.iter().map(Into::into).collect(),
        known_hosts: c.known_hosts.iter().map(Into::into).collect(),
        host_key_policy: match c.host_key_checking {
            HostKeyChecking::Strict => HostKeyPolicy::Strict,
            HostKeyChecking::AcceptNew => HostKeyPolicy::AcceptNew,
            HostKeyChecking::InsecureIgnoreHostKeys => HostKeyPolicy::InsecureIgnoreHostKeys,
        },
        proxy_jump: c.proxy_jump.clone(),
        workdir: c.workdir.as_ref().map(Into::into),
        env: c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        transport_mode: match c.transport_mode {
            None | Some(TransportMode::Runner) => sluice_ssh::TransportMode::Runner,
            Some(TransportMode::Exec) => sluice_ssh::TransportMode::Exec,
        },
    }
}
