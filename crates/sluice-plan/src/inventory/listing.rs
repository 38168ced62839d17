//! The inventory as `ansible-inventory` shows it, so tools that read one read the other:
//! `--list` ([`list`]), `--graph` ([`graph`]) and `--host` ([`host`]).
//!
//! `list` is ansible-inventory's JSON: `_meta.hostvars` (every host with variables, merged as a
//! plan would get them from the inventory), and one entry per group that has hosts or children:
//! `hosts` (the hosts listed in the group itself, not in its children) and `children`; `all`
//! has only `children`, and a group with neither is left out.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{ALL, Inventory, Vars};

pub fn list(inv: &Inventory) -> Value {
    let mut out = Map::new();
    let mut seen = HashSet::new();
    if let Some(all) = inv.group_named(ALL) {
        format_group(inv, all, &mut seen, &mut out);
    }
    let mut hostvars = Map::new();
    for h in 0..inv.hosts.len() {
        let vars = inv.host_vars(h, &Vars::new());
        if !vars.is_empty() {
            hostvars.insert(
                inv.hosts[h].name.clone(),
                Value::Object(vars.into_iter().collect()),
            );
        }
    }
    out.insert("_meta".into(), json!({ "hostvars": hostvars }));
    Value::Object(out)
}

fn format_group(
    inv: &Inventory,
    g: usize,
    seen: &mut HashSet<usize>,
    out: &mut Map<String, Value>,
) {
    let group = &inv.groups[g];
    let mut entry = Map::new();
    if group.name != ALL && !group.hosts.is_empty() {
        let hosts = group
            .hosts
            .iter()
            .map(|&h| Value::String(inv.hosts[h].name.clone()));
        entry.insert("hosts".into(), Value::Array(hosts.collect()));
    }
    if !group.children.is_empty() {
        let children = group
            .children
            .iter()
            .map(|&c| Value::String(inv.groups[c].name.clone()));
        entry.insert("children".into(), Value::Array(children.collect()));
    }
    for &c in &group.children {
        if seen.insert(c) {
            format_group(inv, c, seen, out);
        }
    }
    if !entry.is_empty() {
        out.insert(group.name.clone(), Value::Object(entry));
    }
}

/// The tree under group `start`, as `ansible-inventory --graph START` draws it; `None` when
/// there is no such group.
pub fn graph(inv: &Inventory, start: &str) -> Option<String> {
    let g = inv.group_named(start)?;
    let mut lines = Vec::new();
    graph_group(inv, g, 0, &mut lines);
    Some(lines.join("\n") + "\n")
}

fn graph_group(inv: &Inventory, g: usize, depth: usize, lines: &mut Vec<String>) {
    let group = &inv.groups[g];
    lines.push(indent(&format!("@{}:", group.name), depth));
    for &c in &group.children {
        graph_group(inv, c, depth + 1, lines);
    }
    if group.name != ALL {
        for &h in &group.hosts {
            lines.push(indent(&inv.hosts[h].name, depth + 1));
        }
    }
}

fn indent(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{name}", "  |".repeat(depth))
    }
}

/// One host's merged variables, as `ansible-inventory --host NAME` prints them.
pub fn host(inv: &Inventory, name: &str) -> Option<Value> {
    let h = inv.host_named(name)?;
    Some(Value::Object(
        inv.host_vars(h, &Vars::new()).into_iter().collect(),
    ))
}

/// JSON as ansible-inventory writes it: keys sorted, four spaces of indentation.
pub fn to_ansible_json(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing a Value into memory cannot fail.
    let _ = serde::Serialize::serialize(value, &mut ser);
    String::from_utf8_lossy(&out).into_owned()
}
