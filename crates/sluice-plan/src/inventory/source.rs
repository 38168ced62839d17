//! What `-i` names, and how its format is told: forced with `--inventory-format`, or by content.
//!
//! Detection, in order (docs/plan-format.md, "Inventory sources"):
//! 1. `ssh_config` or `ssh_config:PATH` is the ssh_config source (default `~/.ssh/config`);
//! 2. an executable file that starts with `#!` (or is an ELF binary) is an inventory script;
//! 3. a file whose first line that is not blank or a comment is an INI section header
//!    (`[web]`, `[web:vars]`) is Ansible INI;
//! 4. YAML that is a mapping: sluice YAML when every top-level key is one of `defaults`, `hosts`,
//!    `groups` (and `policy`); Ansible YAML when a top-level key is `all` or every top-level value is empty or a
//!    mapping of `hosts`, `children` and `vars`; sluice YAML otherwise (its diagnostics then say
//!    which key is unknown);
//! 5. text that YAML reads as a plain string (host lines without a section) is Ansible INI, and
//!    so is text YAML cannot read that has a section header on some line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Inventory, ansible_ini, ansible_yaml, script, sluice_yaml, ssh_config, vars_dirs};
use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::node::{Node, Value};

/// The formats `-i` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InventoryFormat {
    Sluice,
    AnsibleIni,
    AnsibleYaml,
    Script,
    SshConfig,
}

impl InventoryFormat {
    pub const ALL: [InventoryFormat; 5] = [
        InventoryFormat::Sluice,
        InventoryFormat::AnsibleIni,
        InventoryFormat::AnsibleYaml,
        InventoryFormat::Script,
        InventoryFormat::SshConfig,
    ];

    /// The name `--inventory-format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            InventoryFormat::Sluice => "sluice",
            InventoryFormat::AnsibleIni => "ansible-ini",
            InventoryFormat::AnsibleYaml => "ansible-yaml",
            InventoryFormat::Script => "script",
            InventoryFormat::SshConfig => "ssh-config",
        }
    }

    pub fn from_name(name: &str) -> Option<InventoryFormat> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Ansible's formats read `group_vars/` and `host_vars/` beside the inventory.
    fn reads_vars_dirs(self) -> bool {
        matches!(
            self,
            InventoryFormat::AnsibleIni | InventoryFormat::AnsibleYaml | InventoryFormat::Script
        )
    }
}

impl std::fmt::Display for InventoryFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `-i` argument and the format it was forced to, if any.
#[derive(Clone, Debug)]
pub struct InventoryInput {
    pub spec: String,
    pub format: Option<InventoryFormat>,
}

impl InventoryInput {
    pub fn new(spec: impl Into<String>) -> InventoryInput {
        InventoryInput {
            spec: spec.into(),
            format: None,
        }
    }
}

/// How sources that run something are bounded.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// An inventory script that has not answered by then is killed and reported.
    pub script_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            script_timeout: Duration::from_secs(60),
        }
    }
}

/// Reads the inventory `input` names; every problem goes to `diags`.
pub fn load(
    input: &InventoryInput,
    options: &LoadOptions,
    diags: &mut Diagnostics,
) -> Option<Inventory> {
    let spec = input.spec.as_str();
    let ssh_path = ssh_config::spec_path(spec);
    let format = match input.format {
        Some(f) => f,
        None if ssh_path.is_some() => InventoryFormat::SshConfig,
        None if script::looks_executable(Path::new(spec)) => InventoryFormat::Script,
        None => {
            let bytes = read_file(spec, diags)?;
            return from_bytes(spec, bytes, None, diags);
        }
    };
    let inventory = match format {
        InventoryFormat::SshConfig => {
            let path = ssh_path
                .flatten()
                .map_or_else(ssh_config::default_path, Into::into);
            ssh_config::read(&path, diags).map(Built::Builder)
        }
        InventoryFormat::Script => {
            script::read(Path::new(spec), options, diags).map(Built::Builder)
        }
        _ => {
            let bytes = read_file(spec, diags)?;
            return from_bytes(spec, bytes, Some(format), diags);
        }
    };
    inventory.map(|b| finish(b, Path::new(spec), format, diags))
}

/// Reads in-memory text as if from `path` (tests, `compile_sources`); `group_vars/` and
/// `host_vars/` are looked for beside `path` only when it exists on disk.
pub fn from_bytes(
    path: &str,
    bytes: Vec<u8>,
    format: Option<InventoryFormat>,
    diags: &mut Diagnostics,
) -> Option<Inventory> {
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // The YAML reader words this error with the line of the bad byte.
            return crate::source::parse_bytes(path, e.into_bytes(), diags).and(None);
        }
    };
    let format = match format {
        Some(f) => f,
        None => match detect(path, &text) {
            Detected::Format(f) => f,
            Detected::Yaml(file, node, f, found) => {
                // What reading the YAML found (NUL bytes, for one) is reported either way.
                diags.items.extend(found.items);
                let b = read_yaml(&file, &node, f, diags)?;
                return Some(finish(b, Path::new(path), f, diags));
            }
        },
    };
    let b = match format {
        InventoryFormat::AnsibleIni => {
            let file = Arc::new(SourceFile {
                path: path.to_string(),
                text,
            });
            Some(Built::Builder(ansible_ini::read(&file, diags)))
        }
        InventoryFormat::Sluice | InventoryFormat::AnsibleYaml => {
            let (file, node) = crate::source::parse_bytes(path, text.into_bytes(), diags)?;
            read_yaml(&file, &node, format, diags)
        }
        InventoryFormat::Script | InventoryFormat::SshConfig => {
            diags.push(Diagnostic::error(format!(
                "{path}: the {format} format is read from a program or a config path, not from text"
            )));
            None
        }
    }?;
    Some(finish(b, Path::new(path), format, diags))
}

fn read_yaml(
    file: &Arc<SourceFile>,
    node: &Node,
    format: InventoryFormat,
    diags: &mut Diagnostics,
) -> Option<Built> {
    match format {
        InventoryFormat::AnsibleYaml => Some(Built::Builder(ansible_yaml::read(file, node, diags))),
        _ => sluice_yaml::read_inventory(file, node, diags).map(Built::Done),
    }
}

/// A source's result: sluice YAML is finished by its reader; Ansible's sources still take
/// `group_vars/`, `host_vars/` and their connection variables.
pub enum Built {
    Done(Inventory),
    Builder(super::build::Builder),
}

fn finish(
    built: Built,
    path: &Path,
    format: InventoryFormat,
    diags: &mut Diagnostics,
) -> Inventory {
    match built {
        Built::Done(inventory) => inventory,
        Built::Builder(mut b) => {
            if format.reads_vars_dirs() {
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let dir = if dir.as_os_str().is_empty() {
                    ".".into()
                } else {
                    dir
                };
                if path.exists() {
                    vars_dirs::read(&dir, &mut b, diags);
                }
            }
            let mut inventory = b.finish(diags);
            refuse_nul(&inventory, diags);
            if format != InventoryFormat::SshConfig {
                super::ansible_vars::resolve_connections(&mut inventory, diags);
                super::ansible_settings::read(&mut inventory, path, diags);
            }
            inventory
        }
    }
}

/// A NUL byte in a name or a value of an INI inventory, a script's output or an ssh config (YAML
/// refuses them while parsing): no command, environment or SSH request can carry one, so it is an
/// error here rather than a failed host in the middle of a run.
fn refuse_nul(inv: &Inventory, diags: &mut Diagnostics) {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    let mut report = |what: String, origin: Option<&super::Origin>| {
        let mut d = Diagnostic::error(format!(
            "{what} holds a NUL byte; no command, value or name can hold one"
        ))
        .with_help("remove it");
        d = match origin {
            Some(o) => d.at(&o.file, o.loc),
            None => d.in_file(&inv.file),
        };
        diags.push(d);
    };
    for g in &inv.groups {
        if g.name.contains('\0') {
            report(format!("group name {:?}", g.name), None);
        }
        for (k, v) in g.vars.iter().chain(&g.file_vars) {
            if k.contains('\0') || has_nul(v) {
                report(
                    format!("variable {k:?} of group `{}`", g.name),
                    g.origins.get(k),
                );
            }
        }
    }
    for h in &inv.hosts {
        if h.name.contains('\0') {
            report(format!("host name {:?}", h.name), None);
        }
        for (k, v) in h.vars.iter().chain(&h.file_vars) {
            if k.contains('\0') || has_nul(v) {
                report(
                    format!("variable {k:?} of host `{}`", h.name),
                    h.origins.get(k),
                );
            }
        }
    }
}

fn read_file(path: &str, diags: &mut Diagnostics) -> Option<Vec<u8>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            diags.push(Diagnostic::error(format!("cannot read {path}: {e}")));
            return None;
        }
    };
    if meta.is_dir() {
        diags.push(
            Diagnostic::error(format!("{path} is a directory"))
                .with_help("give one inventory file (a directory of inventories is not read)"),
        );
        return None;
    }
    crate::source::read_bounded(path)
        .map_err(|d| diags.push(d))
        .ok()
}

enum Detected {
    Format(InventoryFormat),
    /// YAML already parsed while telling the format, with what parsing reported.
    Yaml(Arc<SourceFile>, Node, InventoryFormat, Diagnostics),
}

fn detect(path: &str, text: &str) -> Detected {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
    if first.is_some_and(ansible_ini::is_section_header) {
        return Detected::Format(InventoryFormat::AnsibleIni);
    }
    let mut scratch = Diagnostics::default();
    match crate::source::parse_bytes(path, text.as_bytes().to_vec(), &mut scratch) {
        Some((file, node)) => match &node.value {
            Value::Map(entries) => {
                let format = yaml_format(entries);
                Detected::Yaml(file, node, format, scratch)
            }
            Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                Detected::Format(InventoryFormat::AnsibleIni)
            }
            _ => Detected::Format(InventoryFormat::Sluice),
        },
        None if text
            .lines()
            .any(|l| ansible_ini::is_section_header(l.trim())) =>
        {
            Detected::Format(InventoryFormat::AnsibleIni)
        }
        None => Detected::Format(InventoryFormat::Sluice),
    }
}

fn yaml_format(entries: &[(Node, Node)]) -> InventoryFormat {
    let key = |k: &Node| k.scalar_text().unwrap_or_default();
    const SLUICE: &[&str] = &["defaults", "hosts", "groups", "policy"];
    const GROUP: &[&str] = &["hosts", "children", "vars"];
    if entries
        .iter()
        .all(|(k, _)| SLUICE.contains(&key(k).as_str()))
    {
        return InventoryFormat::Sluice;
    }
    let is_group = |v: &Node| match &v.value {
        Value::Null => true,
        Value::Map(inner) => inner.iter().all(|(k, _)| GROUP.contains(&key(k).as_str())),
        _ => false,
    };
    if entries.iter().any(|(k, _)| key(k) == super::ALL) || entries.iter().all(|(_, v)| is_group(v))
    {
        InventoryFormat::AnsibleYaml
    } else {
        InventoryFormat::Sluice
    }
}
