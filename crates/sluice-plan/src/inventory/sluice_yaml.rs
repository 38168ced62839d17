//! sluice's own inventory YAML: `defaults`, `hosts` (each with its connection keys and `vars`)
//! and `groups` (`hosts`, `children`, `vars`).
//!
//! Resolution rules (docs/plan-format.md):
//! - a host's connection is the `defaults` overridden key by key by the host's own keys (`env`
//!   maps merge, the host's entries winning);
//! - a host's variables are, lowest precedence first: the plan's `vars`, the vars of every group
//!   containing it (directly or through `children`) ordered parents before children and then by
//!   declaration order, the host's `vars`, and `--var k=v` from the command line.
//! - `all` and `ungrouped` are implicit (every host; hosts in no group) and cannot be declared.

use std::sync::Arc;

use super::build::{Builder, Layer};
use super::{ALL, ConnectionDecl, GroupOrder, Inventory, InventoryFormat, UNGROUPED};
use crate::artifact::{HostKeyChecking, TransportKind, TransportMode};
use crate::diagnostic::{Diagnostics, Loc, SourceFile};
use crate::node::Node;
use crate::plan::read_vars;
use crate::schema::{Fields, Reader};

const INVENTORY_KEYS: &[&str] = &[
    "defaults",
    "hosts",
    "groups",
    "policy",
    "metrics_file",
    "environment",
];
const CONNECTION_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "proxy_jump",
    "transport",
    "transport_mode",
    "workdir",
    "env",
];
/// `defaults` takes every connection key, and `host_lease`, which is not a host's.
const DEFAULTS_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "proxy_jump",
    "transport",
    "transport_mode",
    "workdir",
    "env",
    "host_lease",
];
const GROUP_KEYS: &[&str] = &["hosts", "children", "vars"];

/// A group as written: members by name, checked once every group is known.
struct GroupEntry {
    name: String,
    loc: Loc,
    hosts: Vec<(String, Loc)>,
    children: Vec<(String, Loc)>,
    vars: super::Vars,
}

pub fn read_inventory(
    file: &Arc<SourceFile>,
    root: &Node,
    diags: &mut Diagnostics,
) -> Option<Inventory> {
    let mut r = Reader { file, diags };
    let f = r.fields(root, INVENTORY_KEYS, "the inventory")?;
    let mut b = Builder::new(file, InventoryFormat::Sluice, GroupOrder::Declaration);
    b.environment = f.get("environment").and_then(|n| {
        let name = r.as_str(n, "environment")?;
        if name.trim().is_empty() {
            r.error_help(
                n.loc,
                "`environment` is empty",
                "name it, e.g. `staging` or `prod`",
            );
            return None;
        }
        Some(name)
    });
    b.policy = f
        .get("policy")
        .and_then(|n| crate::policy::read_policy(&mut r, n, file));
    b.metrics_file = f
        .get("metrics_file")
        .and_then(|n| r.as_str(n, "metrics_file"))
        .map(|path| {
            // Relative to the inventory, like `allowed_signers`: the same file wherever
            // sluice is started from.
            std::path::Path::new(&file.path)
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(path)
                .display()
                .to_string()
        });
    b.defaults = f
        .get("defaults")
        .and_then(|n| r.fields(n, DEFAULTS_KEYS, "defaults"))
        .map(|d| {
            b.host_lease = d
                .get("host_lease")
                .and_then(|n| r.as_bool(n, "defaults: host_lease"));
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
    for (name, node, loc) in f
        .get("hosts")
        .map(|n| r.entries(n, "hosts"))
        .unwrap_or_default()
    {
        let context = format!("host `{name}`");
        let mut allowed = CONNECTION_KEYS.to_vec();
        allowed.push("vars");
        let (connection, vars) = match &node.value {
            crate::node::Value::Null => (ConnectionDecl::default(), super::Vars::new()),
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
        let h = b.host(&name, loc);
        b.hosts[h].connection = connection;
        for (k, v) in vars {
            b.set_host_var(h, k, v, Layer::Inventory, None);
        }
    }
    let mut groups = Vec::new();
    for (name, node, loc) in f
        .get("groups")
        .map(|n| r.entries(n, "groups"))
        .unwrap_or_default()
    {
        let context = format!("group `{name}`");
        let Some(g) = r.fields(node, GROUP_KEYS, &context) else {
            continue;
        };
        if name == ALL || name == UNGROUPED {
            r.error_help(
                loc,
                format!("`{name}` is an implicit group and cannot be declared"),
                "`all` holds every host and `ungrouped` the hosts in no group; put shared values in `defaults` or the plan's `vars`",
            );
            continue;
        }
        if b.host_named(&name).is_some() {
            r.error(
                loc,
                format!("`{name}` is both a host and a group; targets could not tell them apart"),
            );
        }
        groups.push(GroupEntry {
            hosts: g
                .get("hosts")
                .map(|n| r.as_str_list(n, &context))
                .unwrap_or_default(),
            children: g
                .get("children")
                .map(|n| r.as_str_list(n, &context))
                .unwrap_or_default(),
            vars: g
                .get("vars")
                .map(|v| read_vars(&mut r, v, &context))
                .unwrap_or_default(),
            name,
            loc,
        });
    }
    for entry in &groups {
        b.group(&entry.name, entry.loc);
    }
    for entry in groups {
        let g = b.group(&entry.name, entry.loc);
        for (h, loc) in &entry.hosts {
            match b.host_named(h) {
                Some(hi) => b.add_host_to(g, hi),
                None => r.error(
                    *loc,
                    format!(
                        "group `{}` lists host `{h}`, which is not in `hosts`",
                        entry.name
                    ),
                ),
            }
        }
        for (c, loc) in &entry.children {
            match b.group_named(c).filter(|_| c != ALL && c != UNGROUPED) {
                Some(ci) => b.add_child(g, ci),
                None => r.error(
                    *loc,
                    format!(
                        "group `{}` lists child group `{c}`, which is not in `groups`",
                        entry.name
                    ),
                ),
            }
        }
        for (k, v) in entry.vars {
            b.set_group_var(g, k, v, Layer::Inventory, None);
        }
    }
    Some(b.finish(r.diags))
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
    let transport_mode =
        f.get("transport_mode")
            .and_then(|n| match r.as_str(n, context).as_deref() {
                Some("runner") => Some(TransportMode::Runner),
                Some("exec") => Some(TransportMode::Exec),
                Some(other) => {
                    r.error_help(
                        n.loc,
                        format!("{context}: transport_mode `{other}` is not known"),
                        "use runner (one remote sh per host, the default) or exec (a channel and a login shell per command, for hosts whose login shell is not POSIX)",
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
        become_all: None,
        transport_mode,
    }
}
