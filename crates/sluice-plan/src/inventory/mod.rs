//! The inventory: hosts, how to reach them, groups with children, and the variables they set —
//! one model, whatever the source.
//!
//! Sources (docs/plan-format.md, "Inventory sources"), one module each, all producing this model
//! through [`build::Builder`]:
//! - [`sluice_yaml`]: sluice's own YAML (`defaults`, `hosts`, `groups`);
//! - [`ansible_ini`] and [`ansible_yaml`]: Ansible's INI and YAML inventories (host ranges in
//!   [`host_range`], INI values in [`python_literal`] and [`shell_words`]), with `group_vars/`
//!   and `host_vars/` beside them ([`vars_dirs`]) and Ansible's connection variables read by
//!   [`ansible_vars`];
//! - [`script`]: executables speaking Ansible's dynamic inventory protocol;
//! - [`ssh_config`]: the `Host` aliases of an OpenSSH client config.
//!
//! [`source`] tells the format of an `-i` argument by its content. [`pattern`] is Ansible's host
//! pattern language (`--limit`); [`listing`] prints the model as `ansible-inventory` does.
//!
//! Every inventory has the implicit groups `all` (every host) and `ungrouped` (hosts in no other
//! group). A host's variables are, lowest precedence first: the plan's `vars`; each group's vars
//! from the inventory, groups ordered by depth below `all`, then by priority and then by name
//! (Ansible) or declaration order (sluice YAML); each group's `group_vars/` files in the same
//! order; the host's own vars; its `host_vars/` files; and `--var` from the command line. This is
//! Ansible's order for inventory variables.

pub mod ansible_ini;
pub mod ansible_settings;
pub mod ansible_vars;
pub mod ansible_yaml;
pub mod build;
pub mod host_range;
pub mod listing;
pub mod pattern;
pub mod python_literal;
pub mod script;
pub mod shell_words;
pub mod sluice_yaml;
pub mod source;
pub mod ssh_config;
pub mod vars_dirs;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::artifact::{Connection, HostBecome, HostKeyChecking, TransportKind, TransportMode};
use crate::diagnostic::{Diagnostics, Loc, SourceFile};

pub use source::{InventoryFormat, InventoryInput, LoadOptions, load};

/// The implicit group of every host.
pub const ALL: &str = "all";
/// The implicit group of the hosts that are in no other group.
pub const UNGROUPED: &str = "ungrouped";

/// Variables by name. JSON values: what templates render and the artifact records.
pub type Vars = BTreeMap<String, serde_json::Value>;

/// Where a value was written: the file and, when known, the position in it.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: Arc<SourceFile>,
    pub loc: Loc,
}

/// Connection settings as written; unset keys fall back to `defaults`, then to built-ins.
#[derive(Debug, Default, Clone)]
pub struct ConnectionDecl {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Option<Vec<String>>,
    pub known_hosts: Option<Vec<String>>,
    pub host_key_checking: Option<HostKeyChecking>,
    pub proxy_jump: Option<Vec<String>>,
    pub transport: Option<TransportKind>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Every command through sudo (Ansible's `ansible_become`).
    pub become_all: Option<HostBecome>,
    pub transport_mode: Option<TransportMode>,
}

#[derive(Debug)]
pub struct HostDecl {
    pub name: String,
    pub loc: Loc,
    pub connection: ConnectionDecl,
    /// Variables set on the host in the inventory itself.
    pub vars: Vars,
    /// Variables from `host_vars/` files; they win over `vars`.
    pub file_vars: Vars,
    /// Where each of `vars` and `file_vars` was set (kept for the sources whose values can be
    /// reported on, e.g. Ansible's connection variables).
    pub origins: BTreeMap<String, Origin>,
}

#[derive(Debug)]
pub struct GroupDecl {
    pub name: String,
    pub loc: Loc,
    /// Hosts listed in the group itself, in the order they were added.
    pub hosts: Vec<usize>,
    /// Child groups, in the order they were added.
    pub children: Vec<usize>,
    /// Variables set on the group in the inventory itself.
    pub vars: Vars,
    /// Variables from `group_vars/` files; every group's `vars` apply before any `file_vars`.
    pub file_vars: Vars,
    pub origins: BTreeMap<String, Origin>,
    /// Ansible's `ansible_group_priority`: among groups of one depth, higher applies later.
    pub priority: i64,
    /// Longest chain of parents from `all` (0) down to this group.
    pub depth: usize,
}

/// How groups of the same depth are ordered for variable precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupOrder {
    /// sluice YAML: the order the groups are declared in.
    Declaration,
    /// Ansible: by `ansible_group_priority`, then by name.
    PriorityThenName,
}

#[derive(Debug)]
pub struct Inventory {
    /// The file (or script output, or ssh config) the inventory was read from.
    pub file: Arc<SourceFile>,
    pub format: InventoryFormat,
    /// The environment's change policy (`policy:` of a sluice YAML inventory), sealed into every
    /// plan compiled against it. Ansible's formats have none.
    pub policy: Option<crate::policy::Policy>,
    /// Where `sluice apply` writes its Prometheus metrics on this controller (`metrics_file:` of
    /// a sluice YAML inventory, `sluice_metrics_file` of an Ansible inventory's group `all`),
    /// resolved against the inventory's directory.
    pub metrics_file: Option<String>,
    /// The environment it describes (`environment:` of a sluice YAML inventory): what promotion
    /// evidence is about.
    pub environment: Option<String>,
    /// `host_lease:` under `defaults`: lease every host on the host itself unless the plan says
    /// otherwise (docs/operations.md, "Host-side leases").
    pub host_lease: Option<bool>,
    pub defaults: ConnectionDecl,
    pub hosts: Vec<HostDecl>,
    pub groups: Vec<GroupDecl>,
    pub(crate) host_index: HashMap<String, usize>,
    pub(crate) group_index: HashMap<String, usize>,
    /// For each host, the groups containing it (`all` first), in variable precedence order.
    pub(crate) host_groups: Vec<Vec<usize>>,
    /// For each group, its hosts (through children too), in inventory order.
    pub(crate) group_hosts: Vec<Vec<usize>>,
}

impl Inventory {
    pub fn host_named(&self, name: &str) -> Option<usize> {
        self.host_index.get(name).copied()
    }

    pub fn group_named(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    /// Hosts of group `g` and of its descendants, in inventory order, each once.
    pub fn hosts_of(&self, g: usize) -> &[usize] {
        &self.group_hosts[g]
    }

    /// Hosts named by `targets` (groups and/or hosts), in inventory order, each once.
    pub fn resolve_targets(
        &self,
        targets: &[(String, Loc)],
        plan_file: &Arc<SourceFile>,
        diags: &mut Diagnostics,
    ) -> Vec<usize> {
        let mut selected = vec![false; self.hosts.len()];
        for (t, loc) in targets {
            if let Some(&h) = self.host_index.get(t) {
                selected[h] = true;
            } else if let Some(&g) = self.group_index.get(t) {
                for &h in &self.group_hosts[g] {
                    selected[h] = true;
                }
            } else {
                let names: Vec<&str> = self
                    .group_index
                    .keys()
                    .chain(self.host_index.keys())
                    .map(String::as_str)
                    .collect();
                let mut d = crate::diagnostic::Diagnostic::error(format!(
                    "target `{t}` is neither a group nor a host of the inventory {}",
                    self.file.path
                ))
                .at(plan_file, *loc);
                if let Some(s) = crate::schema::nearest(t, &names) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                diags.push(d);
            }
        }
        selected
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| i)
            .collect()
    }

    /// The groups containing `host` (`all` included), in variable precedence order.
    pub fn groups_of(&self, host: usize) -> &[usize] {
        &self.host_groups[host]
    }

    /// The host's variables from its groups and itself, applied over `base` (the plan's vars).
    pub fn host_vars(&self, host: usize, base: &Vars) -> Vars {
        let mut vars = base.clone();
        for layer in self.layers(host) {
            vars.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        vars
    }

    /// The host's variables from the inventory alone, each with where it was set when known.
    pub fn host_vars_with_origins(
        &self,
        host: usize,
    ) -> BTreeMap<String, (&serde_json::Value, Option<&Origin>)> {
        let mut vars = BTreeMap::new();
        let groups = &self.host_groups[host];
        let h = &self.hosts[host];
        let owners = groups
            .iter()
            .map(|&g| (&self.groups[g].vars, &self.groups[g].origins))
            .chain(
                groups
                    .iter()
                    .map(|&g| (&self.groups[g].file_vars, &self.groups[g].origins)),
            )
            .chain([(&h.vars, &h.origins), (&h.file_vars, &h.origins)]);
        for (layer, origins) in owners {
            for (k, v) in layer {
                vars.insert(k.clone(), (v, origins.get(k)));
            }
        }
        vars
    }

    /// The variable layers of a host, lowest precedence first (see the module doc).
    fn layers(&self, host: usize) -> impl Iterator<Item = &Vars> {
        let groups = &self.host_groups[host];
        let h = &self.hosts[host];
        groups
            .iter()
            .map(|&g| &self.groups[g].vars)
            .chain(groups.iter().map(|&g| &self.groups[g].file_vars))
            .chain([&h.vars, &h.file_vars])
    }

    /// True when the host sets no variable of its own (its vars are its groups').
    pub fn host_sets_no_vars(&self, host: usize) -> bool {
        let h = &self.hosts[host];
        h.vars.is_empty() && h.file_vars.is_empty()
    }

    /// Every variable name some group or host sets.
    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.vars.keys().chain(g.file_vars.keys()))
            .chain(
                self.hosts
                    .iter()
                    .flat_map(|h| h.vars.keys().chain(h.file_vars.keys())),
            )
            .map(String::as_str)
    }

    /// The host's connection: its own keys over `defaults` over built-in defaults.
    pub fn connection(&self, host: usize) -> Connection {
        let h = &self.hosts[host];
        let (c, d) = (&h.connection, &self.defaults);
        let mut env = d.env.clone();
        env.extend(c.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Connection {
            transport: c.transport.or(d.transport).unwrap_or(TransportKind::Ssh),
            address: c.address.clone().unwrap_or_else(|| h.name.clone()),
            port: c.port.or(d.port).unwrap_or(22),
            user: c.user.clone().or_else(|| d.user.clone()),
            identity_files: c
                .identity_files
                .clone()
                .or_else(|| d.identity_files.clone())
                .unwrap_or_default(),
            known_hosts: c
                .known_hosts
                .clone()
                .or_else(|| d.known_hosts.clone())
                .unwrap_or_default(),
            host_key_checking: c
                .host_key_checking
                .or(d.host_key_checking)
                .unwrap_or(HostKeyChecking::Strict),
            proxy_jump: c
                .proxy_jump
                .clone()
                .or_else(|| d.proxy_jump.clone())
                .unwrap_or_default(),
            workdir: c.workdir.clone().or_else(|| d.workdir.clone()),
            env,
            become_all: c.become_all.clone().or_else(|| d.become_all.clone()),
            transport_mode: c.transport_mode.or(d.transport_mode),
        }
    }
}
