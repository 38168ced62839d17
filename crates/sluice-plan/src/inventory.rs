//! The inventory: hosts, how to reach them, groups with children, and the variables they set.
//!
//! Resolution rules (docs/plan-format.md):
//! - a host's connection is the `defaults` overridden key by key by the host's own keys (`env`
//!   maps merge, the host's entries winning);
//! - a host's variables are, lowest precedence first: the plan's `vars`, the vars of every group
//!   containing it (directly or through `children`) ordered parents before children and then by
//!   declaration order, the host's `vars`, and `--var k=v` from the command line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::artifact::{Connection, HostKeyChecking, TransportKind};
use crate::diagnostic::{Diagnostics, Loc, SourceFile};
use crate::node::Node;
use crate::plan::read_vars;
use crate::schema::{Fields, Reader};

const INVENTORY_KEYS: &[&str] = &["defaults", "hosts", "groups", "policy"];
const CONNECTION_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "proxy_jump",
    "transport",
    "workdir",
    "env",
];
const GROUP_KEYS: &[&str] = &["hosts", "children", "vars"];

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
}

#[derive(Debug)]
pub struct HostDecl {
    pub name: String,
    pub loc: Loc,
    pub connection: ConnectionDecl,
    pub vars: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug)]
pub struct GroupDecl {
    pub name: String,
    pub loc: Loc,
    pub hosts: Vec<(String, Loc)>,
    pub children: Vec<(String, Loc)>,
    pub vars: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug)]
pub struct Inventory {
    pub file: Arc<SourceFile>,
    /// The environment's change policy (`policy:`), sealed into every plan compiled against it.
    pub policy: Option<crate::policy::Policy>,
    pub defaults: ConnectionDecl,
    pub hosts: Vec<HostDecl>,
    pub groups: Vec<GroupDecl>,
    host_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
    /// For each host, the groups containing it, in variable precedence order.
    host_groups: Vec<Vec<usize>>,
    /// For each group, its hosts (through children too), in inventory order.
    group_hosts: Vec<Vec<usize>>,
}

pub fn read_inventory(
    file: &Arc<SourceFile>,
    root: &Node,
    diags: &mut Diagnostics,
) -> Option<Inventory> {
    let mut r = Reader { file, diags };
    let f = r.fields(root, INVENTORY_KEYS, "the inventory")?;
    let policy = f
        .get("policy")
        .and_then(|n| crate::policy::read_policy(&mut r, n, file));
    let defaults = f
        .get("defaults")
        .and_then(|n| r.fields(n, CONNECTION_KEYS, "defaults"))
        .map(|d| {
            if let Some(address) = d.get("address") {
                // One address for every host sends every host's commands to one machine.
                r.error_help(
                    address.loc,
                    "`address` under `defaults` would give every host the same address",
                    "set `address` on each host; a host without one is reached at its name",
                );
            }
            read_connection(&mut r, &d, "defaults")
        })
        .unwrap_or_default();
    let mut hosts = Vec::new();
    let mut host_index = HashMap::new();
    for (name, node, loc) in f
        .get("hosts")
        .map(|n| r.entries(n, "hosts"))
        .unwrap_or_default()
    {
        let context = format!("host `{name}`");
        let mut allowed = CONNECTION_KEYS.to_vec();
        allowed.push("vars");
        let (connection, vars) = match &node.value {
            crate::node::Value::Null => (ConnectionDecl::default(), BTreeMap::new()),
            _ => match r.fields(node, &allowed, &context) {
                Some(h) => (
                    read_connection(&mut r, &h, &context),
                    h.get("vars")
                        .map(|v| read_vars(&mut r, v, &context))
                        .unwrap_or_default(),
                ),
                None => continue,
            },
        };
        host_index.insert(name.clone(), hosts.len());
        hosts.push(HostDecl {
            name,
            loc,
            connection,
            vars,
        });
    }
    let mut groups = Vec::new();
    let mut group_index = HashMap::new();
    for (name, node, loc) in f
        .get("groups")
        .map(|n| r.entries(n, "groups"))
        .unwrap_or_default()
    {
        let context = format!("group `{name}`");
        let Some(g) = r.fields(node, GROUP_KEYS, &context) else {
            continue;
        };
        if host_index.contains_key(&name) {
            r.error(
                loc,
                format!("`{name}` is both a host and a group; targets could not tell them apart"),
            );
        }
        let hosts_of = g
            .get("hosts")
            .map(|n| r.as_str_list(n, &context))
            .unwrap_or_default();
        let children = g
            .get("children")
            .map(|n| r.as_str_list(n, &context))
            .unwrap_or_default();
        let vars = g
            .get("vars")
            .map(|v| read_vars(&mut r, v, &context))
            .unwrap_or_default();
        group_index.insert(name.clone(), groups.len());
        groups.push(GroupDecl {
            name,
            loc,
            hosts: hosts_of,
            children,
            vars,
        });
    }
    let mut inv = Inventory {
        file: Arc::clone(file),
        policy,
        defaults,
        hosts,
        groups,
        host_index,
        group_index,
        host_groups: Vec::new(),
        group_hosts: Vec::new(),
    };
    inv.resolve_groups(&mut r);
    Some(inv)
}

fn read_connection(r: &mut Reader, f: &Fields, context: &str) -> ConnectionDecl {
    let text = |r: &mut Reader, key: &str| {
        f.get(key)
            .and_then(|n| r.as_str(n, &format!("{context}: {key}")))
    };
    let list = |r: &mut Reader, key: &str| {
        f.get(key).map(|n| {
            r.as_str_list(n, &format!("{context}: {key}"))
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        })
    };
    let port = f
        .get("port")
        .and_then(|n| match r.as_count(n, &format!("{context}: port")) {
            Some(p) if (1..=65535).contains(&p) => u16::try_from(p).ok(),
            Some(p) => {
                r.error(
                    n.loc,
                    format!("{context}: port {p} is not between 1 and 65535"),
                );
                None
            }
            None => None,
        });
    let host_key_checking =
        f.get("host_key_checking")
            .and_then(|n| match r.as_str(n, context).as_deref() {
                Some("strict") => Some(HostKeyChecking::Strict),
                Some("accept-new") => Some(HostKeyChecking::AcceptNew),
                Some("insecure-ignore-host-keys") => Some(HostKeyChecking::InsecureIgnoreHostKeys),
                Some(other) => {
                    r.error_help(
                        n.loc,
                        format!("{context}: host_key_checking `{other}` is not known"),
                        "use strict, accept-new or insecure-ignore-host-keys",
                    );
                    None
                }
                None => None,
            });
    let transport = f
        .get("transport")
        .and_then(|n| match r.as_str(n, context).as_deref() {
            Some("ssh") => Some(TransportKind::Ssh),
            Some("local") => Some(TransportKind::Local),
            Some(other) => {
                r.error_help(
                    n.loc,
                    format!("{context}: transport `{other}` is not known"),
                    "use ssh or local",
                );
                None
            }
            None => None,
        });
    let env = f
        .get("env")
        .map(|n| {
            r.entries(n, &format!("{context}: env"))
                .into_iter()
                .filter_map(|(k, v, _)| {
                    r.as_str(v, &format!("{context}: env: {k}")).map(|v| (k, v))
                })
                .collect()
        })
        .unwrap_or_default();
    ConnectionDecl {
        address: text(r, "address"),
        port,
        user: text(r, "user"),
        identity_files: list(r, "identity_file"),
        known_hosts: list(r, "known_hosts"),
        host_key_checking,
        proxy_jump: list(r, "proxy_jump"),
        transport,
        workdir: text(r, "workdir"),
        env,
    }
}

impl Inventory {
    /// Checks group members and children, rejects cycles, and computes membership both ways.
    fn resolve_groups(&mut self, r: &mut Reader) {
        let n = self.groups.len();
        for g in &self.groups {
            for (h, loc) in &g.hosts {
                if !self.host_index.contains_key(h) {
                    r.error(
                        *loc,
                        format!(
                            "group `{}` lists host `{h}`, which is not in `hosts`",
                            g.name
                        ),
                    );
                }
            }
            for (c, loc) in &g.children {
                if !self.group_index.contains_key(c) {
                    r.error(
                        *loc,
                        format!(
                            "group `{}` lists child group `{c}`, which is not in `groups`",
                            g.name
                        ),
                    );
                }
            }
        }
        let children: Vec<Vec<usize>> = self
            .groups
            .iter()
            .map(|g| {
                g.children
                    .iter()
                    .filter_map(|(c, _)| self.group_index.get(c).copied())
                    .collect()
            })
            .collect();
        if let Some(cycle) = crate::graph::find_cycle(&children) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&g| self.groups[g].name.as_str())
                .collect();
            r.error(
                self.groups[cycle[0]].loc,
                format!("group children form a cycle: {}", names.join(" -> ")),
            );
            self.host_groups = vec![Vec::new(); self.hosts.len()];
            self.group_hosts = vec![Vec::new(); n];
            return;
        }
        // Depth = longest chain of parents above a group; parents' vars apply before children's.
        // The graph is acyclic, so n rounds of relaxation reach the fixed point.
        let mut depth = vec![0usize; n];
        for _ in 0..n {
            let mut changed = false;
            for (gi, cs) in children.iter().enumerate() {
                for &ci in cs {
                    if depth[ci] < depth[gi] + 1 {
                        depth[ci] = depth[gi] + 1;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&g| (depth[g], g));
        self.group_hosts = (0..n).map(|g| self.members(g)).collect();
        self.host_groups = vec![Vec::new(); self.hosts.len()];
        for g in order {
            for &h in &self.group_hosts[g] {
                self.host_groups[h].push(g);
            }
        }
    }

    /// Hosts of group `g` and its descendants, in inventory order, each once.
    fn members(&self, g: usize) -> Vec<usize> {
        let mut seen_group = vec![false; self.groups.len()];
        let mut hosts = vec![false; self.hosts.len()];
        let mut stack = vec![g];
        while let Some(gi) = stack.pop() {
            if std::mem::replace(&mut seen_group[gi], true) {
                continue;
            }
            for (h, _) in &self.groups[gi].hosts {
                if let Some(&hi) = self.host_index.get(h) {
                    hosts[hi] = true;
                }
            }
            stack.extend(
                self.groups[gi]
                    .children
                    .iter()
                    .filter_map(|(c, _)| self.group_index.get(c).copied()),
            );
        }
        hosts
            .iter()
            .enumerate()
            .filter(|(_, in_group)| **in_group)
            .map(|(i, _)| i)
            .collect()
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

    /// The groups containing `host`, in variable precedence order.
    pub fn groups_of(&self, host: usize) -> &[usize] {
        &self.host_groups[host]
    }

    /// The host's variables from its groups and itself, applied over `base` (the plan's vars).
    pub fn host_vars(
        &self,
        host: usize,
        base: &BTreeMap<String, serde_json::Value>,
    ) -> BTreeMap<String, serde_json::Value> {
        let mut vars = base.clone();
        for &g in &self.host_groups[host] {
            vars.extend(
                self.groups[g]
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        vars.extend(
            self.hosts[host]
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        vars
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
        }
    }
}
