//! `group_vars/` and `host_vars/` beside an Ansible inventory, found as ansible-core's
//! `host_group_vars` plugin finds them.
//!
//! For a group or host `NAME`, the first of `NAME` (a file, or a directory), `NAME.yml`,
//! `NAME.yaml` and `NAME.json` that exists is read. A directory is read recursively in name
//! order: files ending in `.yml`, `.yaml`, `.json` or without an extension, skipping hidden
//! files and backups (`~`); later files override earlier ones. Each file is a YAML mapping of
//! variables (an empty file sets nothing). Names starting with `/` are skipped, as in Ansible.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Origin;
use super::ansible_yaml::yaml11_json;
use super::build::{Builder, Layer};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::node::Value;

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// Reads the variable directories of `dir` into the inventory being built.
pub fn read(dir: &Path, b: &mut Builder, diags: &mut Diagnostics) {
    let groups = Directory::open(&dir.join("group_vars"), diags);
    let hosts = Directory::open(&dir.join("host_vars"), diags);
    if let Some(groups) = groups {
        for g in 0..b.groups.len() {
            for file in groups.files_for(&b.groups[g].name) {
                for (key, value, origin) in read_vars_file(&file, diags) {
                    b.set_group_var(g, key, value, Layer::File, Some(origin));
                }
            }
        }
    }
    if let Some(hosts) = hosts {
        for h in 0..b.hosts.len() {
            for file in hosts.files_for(&b.hosts[h].name) {
                for (key, value, origin) in read_vars_file(&file, diags) {
                    b.set_host_var(h, key, value, Layer::File, Some(origin));
                }
            }
        }
    }
}

/// A `group_vars/` or `host_vars/` directory and the names in it, listed once: an inventory
/// of thousands of hosts then costs one listing, not a few lookups per host.
struct Directory {
    path: PathBuf,
    entries: HashSet<String>,
}

impl Directory {
    fn open(path: &Path, diags: &mut Diagnostics) -> Option<Directory> {
        if !path.exists() {
            return None;
        }
        if !path.is_dir() {
            diags.push(Diagnostic::warning(
                crate::warning::PlanWarning::Inventory {
                    message: format!("{} is not a directory; it is skipped", path.display()),
                },
            ));
            return None;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) => {
                diags.push(Diagnostic::error(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
                return None;
            }
        };
        Some(Directory {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The files holding `name`'s variables, in the order they apply.
    fn files_for(&self, name: &str) -> Vec<PathBuf> {
        if name.starts_with('/') {
            return Vec::new();
        }
        let candidates = std::iter::once(name.to_string())
            .chain(EXTENSIONS.iter().map(|e| format!("{name}.{e}")));
        for candidate in candidates {
            if !self.entries.contains(&candidate) {
                continue;
            }
            let path = self.path.join(&candidate);
            if path.is_dir() {
                let mut found = Vec::new();
                list_dir(&path, &mut found, 0);
                return found;
            }
            return vec![path];
        }
        Vec::new()
    }
}

/// Vars files under `dir`, recursively, in name order.
fn list_dir(dir: &Path, found: &mut Vec<PathBuf>, depth: usize) {
    // A symlink loop would recurse forever; no real layout nests this deep.
    if depth > 16 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !n.ends_with('~'))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let ext = Path::new(&name).extension().and_then(|e| e.to_str());
        if path.is_dir() && ext.is_none() {
            list_dir(&path, found, depth + 1);
        } else if path.is_file() && ext.is_none_or(|e| EXTENSIONS.contains(&e)) {
            found.push(path);
        }
    }
}

/// The variables of one file, in the order written, each with where its value is.
fn read_vars_file(
    path: &Path,
    diags: &mut Diagnostics,
) -> Vec<(String, serde_json::Value, Origin)> {
    let Some((file, node)) = crate::source::load(&path.to_string_lossy(), diags) else {
        return Vec::new();
    };
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| {
                let origin = Origin {
                    file: Arc::clone(&file),
                    loc: v.loc,
                };
                match k.scalar_text() {
                    Some(key) => Some((key, yaml11_json(&file, v), origin)),
                    None => {
                        diags.push(
                            Diagnostic::error("a variable name must be text").at(&file, k.loc),
                        );
                        None
                    }
                }
            })
            .collect(),
        Value::Null => Vec::new(),
        _ => {
            diags.push(
                Diagnostic::error(format!(
                    "a variables file is a mapping of names to values, found {}",
                    node.kind()
                ))
                .at(&file, node.loc),
            );
            Vec::new()
        }
    }
}
