//! Ansible's YAML inventory, read as ansible-core's `yaml` plugin reads it.
//!
//! Every top-level key is a group (`all` among them); a group is empty or a mapping of `hosts`
//! (host patterns, each with its variables), `children` (groups, recursively) and `vars`,
//! processed in the order written. A section may be a single name instead of a mapping. Values
//! are read as PyYAML reads them ([`yaml11_json`]): unquoted `yes`, `no`, `on` and `off` are
//! booleans.

use std::sync::Arc;

use serde_json::Value as Json;

use super::ansible_vars::set_group_var;
use super::build::{Builder, Layer};
use super::{GroupOrder, InventoryFormat, Origin, host_range};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::node::{Node, Value};

struct YamlReader<'a> {
    file: &'a Arc<SourceFile>,
    diags: &'a mut Diagnostics,
    b: Builder,
}

pub fn read(file: &Arc<SourceFile>, root: &Node, diags: &mut Diagnostics) -> Builder {
    let mut r = YamlReader {
        file,
        diags,
        b: Builder::new(
            file,
            InventoryFormat::AnsibleYaml,
            GroupOrder::PriorityThenName,
        ),
    };
    match &root.value {
        Value::Map(entries) => {
            for (key, _) in entries {
                if key.scalar_text().as_deref() == Some("plugin") {
                    r.error(key, "this is the configuration of an Ansible inventory plugin, not an inventory", "sluice does not run inventory plugins; export the inventory with `ansible-inventory --list` into an executable script, or write it as YAML");
                    return r.b;
                }
            }
            for (key, value) in entries {
                r.group(key, value, 0);
            }
        }
        Value::Null => r.error(root, "the inventory is empty", ""),
        _ => r.error(
            root,
            format!(
                "an Ansible YAML inventory is a mapping of groups, found {}",
                root.kind()
            ),
            "",
        ),
    }
    r.b
}

impl YamlReader<'_> {
    fn error(&mut self, node: &Node, message: impl Into<String>, help: &str) {
        let mut d = Diagnostic::error(message).at(self.file, node.loc);
        if !help.is_empty() {
            d = d.with_help(help);
        }
        self.diags.push(d);
    }

    fn warning(&mut self, node: &Node, message: impl Into<String>) {
        self.diags.push(
            Diagnostic::warning(crate::warning::PlanWarning::Inventory {
                message: message.into(),
            })
            .at(self.file, node.loc),
        );
    }

    fn origin(&self, node: &Node) -> Option<Origin> {
        Some(Origin {
            file: Arc::clone(self.file),
            loc: node.loc,
        })
    }

    /// Reads group `key` and returns its index (`None` when it is not a group).
    fn group(&mut self, key: &Node, data: &Node, depth: usize) -> Option<usize> {
        let Some(name) = key.scalar_text().filter(|n| !n.is_empty()) else {
            self.error(key, "a group name must be text", "");
            return None;
        };
        let entries = match &data.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            _ => {
                self.warning(data, format!("`{name}` is skipped: a group is a mapping of hosts, children and vars, found {}", data.kind()));
                return None;
            }
        };
        // Ansible's own limit on recursion is Python's; stop well before the stack does.
        if depth > 64 {
            self.error(
                key,
                format!("group `{name}` is nested more than 64 levels deep"),
                "",
            );
            return None;
        }
        let g = self.b.group(&name, key.loc);
        for (section_key, section) in entries {
            let section_name = section_key.scalar_text().unwrap_or_default();
            let items: Vec<(Node, Node)> = match &section.value {
                Value::Map(items) => items.clone(),
                Value::Null => continue,
                // `hosts: web1` stands for `hosts: { web1: }`.
                Value::Str(_) if matches!(section_name.as_str(), "hosts" | "children" | "vars") => {
                    vec![(
                        section.clone(),
                        Node {
                            value: Value::Null,
                            loc: section.loc,
                        },
                    )]
                }
                _ if matches!(section_name.as_str(), "hosts" | "children" | "vars") => {
                    self.error(
                        section,
                        format!(
                            "`{section_name}` of group `{name}` must be a mapping, found {}",
                            section.kind()
                        ),
                        "",
                    );
                    continue;
                }
                _ => {
                    self.warning(section_key, format!("unexpected key `{section_name}` in group `{name}` is skipped; a group has hosts, children and vars"));
                    continue;
                }
            };
            match section_name.as_str() {
                "vars" => self.vars(g, &items),
                "children" => {
                    for (child_key, child) in &items {
                        if let Some(c) = self.group(child_key, child, depth + 1) {
                            if c == g {
                                self.error(child_key, format!("group `{name}` cannot be its own child"), "");
                            } else {
                                self.b.add_child(g, c);
                            }
                        }
                    }
                }
                "hosts" => self.hosts(g, &items),
                _ => self.warning(section_key, format!("unexpected key `{section_name}` in group `{name}` is skipped; a group has hosts, children and vars")),
            }
        }
        Some(g)
    }

    fn vars(&mut self, g: usize, items: &[(Node, Node)]) {
        for (k, v) in items {
            let Some(key) = k.scalar_text() else {
                self.error(k, "a variable name must be text", "");
                continue;
            };
            let origin = self.origin(v);
            if let Err(d) = set_group_var(&mut self.b, g, &key, yaml11_json(self.file, v), origin) {
                self.diags.push(d);
            }
        }
    }

    fn hosts(&mut self, g: usize, items: &[(Node, Node)]) {
        for (pattern, vars) in items {
            let Value::Str(text) = &pattern.value else {
                self.error(
                    pattern,
                    format!(
                        "host pattern {} must be text",
                        pattern.scalar_text().unwrap_or_default()
                    ),
                    "enclose numbers in quotation marks",
                );
                continue;
            };
            let expanded = match host_range::expand(text) {
                Ok(e) => e,
                Err(e) => {
                    self.error(pattern, format!("host pattern `{text}`: {e}"), "");
                    continue;
                }
            };
            let var_entries: &[(Node, Node)] = match &vars.value {
                Value::Map(entries) => entries,
                Value::Null => &[],
                _ => {
                    self.error(
                        vars,
                        format!(
                            "the variables of host `{text}` must be a mapping, found {}",
                            vars.kind()
                        ),
                        "",
                    );
                    continue;
                }
            };
            for name in expanded.names {
                let is_new = self.b.host_named(&name).is_none();
                let h = self.b.host(&name, pattern.loc);
                self.b.add_host_to(g, h);
                if let (Some(port), true) = (expanded.port, is_new) {
                    let origin = self.origin(pattern);
                    self.b.set_host_var(
                        h,
                        "ansible_port".into(),
                        port.into(),
                        Layer::Inventory,
                        origin,
                    );
                }
                for (k, v) in var_entries {
                    let Some(key) = k.scalar_text() else {
                        self.error(k, "a variable name must be text", "");
                        continue;
                    };
                    let origin = self.origin(v);
                    self.b.set_host_var(
                        h,
                        key,
                        yaml11_json(self.file, v),
                        Layer::Inventory,
                        origin,
                    );
                }
            }
        }
    }
}

/// A YAML value as PyYAML (Ansible's loader) reads it: unquoted `yes`, `no`, `on`, `off` (any
/// of their three spellings) are booleans, as in YAML 1.1.
pub fn yaml11_json(file: &SourceFile, node: &Node) -> Json {
    match &node.value {
        Value::Str(s) if is_plain(file, node) => match s.as_str() {
            "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Json::Bool(true),
            "no" | "No" | "NO" | "off" | "Off" | "OFF" => Json::Bool(false),
            _ => Json::String(s.clone()),
        },
        Value::Seq(items) => Json::Array(items.iter().map(|i| yaml11_json(file, i)).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), yaml11_json(file, v)))
                .collect(),
        ),
        _ => node.to_json(),
    }
}

/// True when the scalar at `node` is written without quotes (the source shows no quote there).
fn is_plain(file: &SourceFile, node: &Node) -> bool {
    !matches!(
        file.text.as_bytes().get(node.loc.offset),
        Some(b'"' | b'\'')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans_only_when_unquoted() {
        let mut diags = Diagnostics::default();
        let text = "a: yes\nb: 'yes'\nc: Off\nd: true\ne: \"on\"\nf: [no, x]\n";
        let (file, node) =
            crate::source::parse_bytes("t.yaml", text.as_bytes().to_vec(), &mut diags).unwrap();
        assert_eq!(
            yaml11_json(&file, &node),
            serde_json::json!({"a": true, "b": "yes", "c": false, "d": true, "e": "on", "f": [false, "x"]})
        );
    }
}
