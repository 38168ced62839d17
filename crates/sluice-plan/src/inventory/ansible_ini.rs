//! Ansible's INI inventory, read as ansible-core's `ini` plugin reads it.
//!
//! - Lines before the first section are hosts of `ungrouped`. `[name]` lists hosts,
//!   `[name:children]` child groups, `[name:vars]` `key=value` variables; a blank line or one
//!   starting with `#` or `;` is skipped.
//! - A host line is a host pattern (ranges and `:port`, see [`super::host_range`]) followed by
//!   `key=value` words, split like a shell line ([`super::shell_words`]); values are Python
//!   literals or text ([`super::python_literal`]). In `:vars` sections the value is everything
//!   after the first `=`, spaces around it trimmed.
//! - A child group or a `:vars` section may name a group declared further down; one never
//!   declared is an error. `ansible_group_priority` sets the group's priority, not a variable.

use std::sync::Arc;

use super::ansible_vars::set_group_var;
use super::build::{Builder, Layer};
use super::python_literal::ini_value;
use super::{GroupOrder, InventoryFormat, Origin, UNGROUPED, host_range, shell_words};
use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Hosts,
    Children,
    Vars,
}

/// `[name]`, `[name:kind]`, with optional trailing spaces and `# comment`.
pub fn is_section_header(line: &str) -> bool {
    section(line).is_some()
}

/// The group name and the kind of a section header (Ansible's regular expression
/// `^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$`).
fn section(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (inside, after) = (&rest[..close], rest[close + 1..].trim_start());
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, kind) = match inside.split_once(':') {
        Some((name, kind)) => (name, Some(kind)),
        None => (inside, None),
    };
    let name_ok = !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == ']');
    let kind_ok =
        kind.is_none_or(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'));
    (name_ok && kind_ok).then_some((name, kind))
}

/// One line of the file: its number, where it starts and its text without surrounding space.
struct Line<'a> {
    number: u32,
    /// Byte offset of `text` in the file.
    offset: usize,
    text: &'a str,
}

struct IniReader<'a> {
    file: &'a Arc<SourceFile>,
    diags: &'a mut Diagnostics,
    b: Builder,
    /// Groups named in a `:children` or `:vars` section and not declared yet, with where.
    pending: Vec<(String, Section, Loc, String)>,
}

pub fn read(file: &Arc<SourceFile>, diags: &mut Diagnostics) -> Builder {
    let mut r = IniReader {
        file,
        diags,
        b: Builder::new(
            file,
            InventoryFormat::AnsibleIni,
            GroupOrder::PriorityThenName,
        ),
        pending: Vec::new(),
    };
    let mut group = r.b.group(UNGROUPED, Loc::default());
    let mut kind = Section::Hosts;
    let mut offset = 0;
    for (i, raw) in file.text.split('\n').enumerate() {
        let start = offset;
        offset += raw.len() + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        let line = Line {
            number: u32::try_from(i + 1).unwrap_or(u32::MAX),
            offset: start + (raw.len() - raw.trim_start().len()),
            text: trimmed,
        };
        if let Some((name, tag)) = section(line.text) {
            match r.header(&line, name, tag) {
                Some((g, k)) => (group, kind) = (g, k),
                // An unknown section: its lines are skipped rather than misread.
                None => kind = Section::Vars,
            }
            continue;
        }
        if line.text.starts_with('[') && line.text.ends_with(']') {
            r.error(
                &line,
                0,
                line.text.len(),
                format!("invalid section header `{}`", line.text),
                "a section is `[group]`, `[group:children]` or `[group:vars]`, without spaces",
            );
            continue;
        }
        match kind {
            Section::Hosts => r.host_line(&line, group),
            Section::Children => r.child_line(&line, group),
            Section::Vars => r.var_line(&line, group),
        }
    }
    for (name, section, loc, parent) in std::mem::take(&mut r.pending) {
        let (message, help) = match section {
            Section::Vars => (
                format!("section [{name}:vars] is for group `{name}`, which is never declared"),
                format!("declare it with a `[{name}]` or `[{name}:children]` section"),
            ),
            _ => (
                format!(
                    "section [{parent}:children] names group `{name}`, which is never declared"
                ),
                format!("declare it with a `[{name}]` or `[{name}:children]` section"),
            ),
        };
        r.diags
            .push(Diagnostic::error(message).at(file, loc).with_help(help));
    }
    r.b
}

impl IniReader<'_> {
    fn loc(&self, line: &Line, at: usize, len: usize) -> Loc {
        let offset = line.offset + at;
        let line_start = self.file.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        Loc {
            line: line.number,
            column: u32::try_from(self.file.text[line_start..offset].chars().count() + 1)
                .unwrap_or(u32::MAX),
            offset,
            len: len.max(1),
        }
    }

    fn error(&mut self, line: &Line, at: usize, len: usize, message: String, help: &str) {
        let loc = self.loc(line, at, len);
        let mut d = Diagnostic::error(message).at(self.file, loc);
        if !help.is_empty() {
            d = d.with_help(help);
        }
        self.diags.push(d);
    }

    fn origin(&self, line: &Line, at: usize, len: usize) -> Option<Origin> {
        Some(Origin {
            file: Arc::clone(self.file),
            loc: self.loc(line, at, len),
        })
    }

    fn header(&mut self, line: &Line, name: &str, tag: Option<&str>) -> Option<(usize, Section)> {
        let kind = match tag {
            None | Some("hosts") => Section::Hosts,
            Some("children") => Section::Children,
            Some("vars") => Section::Vars,
            Some(other) => {
                self.error(
                    line,
                    0,
                    line.text.len(),
                    format!("section [{name}:{other}] has an unknown type `{other}`"),
                    "use [group], [group:children] or [group:vars]",
                );
                return None;
            }
        };
        let loc = self.loc(line, 1, name.len());
        let known = self.b.group_named(name).is_some();
        let g = self.b.group(name, loc);
        if kind == Section::Vars {
            if !known {
                self.pending
                    .push((name.to_string(), Section::Vars, loc, String::new()));
            }
        } else {
            self.pending.retain(|(n, _, _, _)| n != name);
        }
        Some((g, kind))
    }

    fn host_line(&mut self, line: &Line, group: usize) {
        let words = match shell_words::split(line.text) {
            Ok(words) => words,
            Err(e) => {
                self.error(
                    line,
                    0,
                    line.text.len(),
                    format!("cannot read host line `{}`: {e}", line.text),
                    "",
                );
                return;
            }
        };
        let Some(first) = words.first() else {
            return;
        };
        let pattern_loc = (first.offset, first.text.len());
        if first.text.trim() == "---" {
            self.error(
                line,
                first.offset,
                3,
                "`---` is not a host name; is this a YAML file?".into(),
                "force the format with --inventory-format ansible-yaml",
            );
            return;
        }
        let expanded = match host_range::expand(&first.text) {
            Ok(e) if first.text.ends_with(':') && e.port.is_none() => {
                self.error(
                    line,
                    first.offset,
                    first.text.len(),
                    format!("host pattern `{}` ends in `:` without a port", first.text),
                    "write `host:PORT`, or drop the `:`",
                );
                return;
            }
            Ok(e) => e,
            Err(e) => {
                self.error(
                    line,
                    first.offset,
                    first.text.len(),
                    format!("host pattern `{}`: {e}", first.text),
                    "",
                );
                return;
            }
        };
        let mut vars = Vec::new();
        for w in &words[1..] {
            match w.text.split_once('=') {
                Some((k, v)) => vars.push((
                    k.to_string(),
                    ini_value(v),
                    self.origin(line, w.offset, w.text.len()),
                )),
                None => self.error(
                    line,
                    w.offset,
                    w.text.len(),
                    format!("expected key=value after the host, found `{}`", w.text),
                    "host variables are written `name=value`",
                ),
            }
        }
        for name in expanded.names {
            let is_new = self.b.host_named(&name).is_none();
            let h = self
                .b
                .host(&name, self.loc(line, pattern_loc.0, pattern_loc.1));
            self.b.add_host_to(group, h);
            // Ansible takes the `:port` only from the line that first lists the host.
            if let (Some(port), true) = (expanded.port, is_new) {
                let origin = self.origin(line, pattern_loc.0, pattern_loc.1);
                self.b.set_host_var(
                    h,
                    "ansible_port".into(),
                    port.into(),
                    Layer::Inventory,
                    origin,
                );
            }
            for (k, v, origin) in &vars {
                self.b
                    .set_host_var(h, k.clone(), v.clone(), Layer::Inventory, origin.clone());
            }
        }
    }

    fn child_line(&mut self, line: &Line, parent: usize) {
        let (name, rest) = line
            .text
            .split_once(char::is_whitespace)
            .unwrap_or((line.text, ""));
        let rest = rest.trim_start();
        if name.contains([':', ']']) || !(rest.is_empty() || rest.starts_with('#')) {
            self.error(
                line,
                0,
                line.text.len(),
                format!("expected a group name, found `{}`", line.text),
                "list one child group per line",
            );
            return;
        }
        let loc = self.loc(line, 0, name.len());
        if self.b.group_named(name).is_none() {
            let parent_name = self.b.groups[parent].name.clone();
            self.pending
                .push((name.to_string(), Section::Children, loc, parent_name));
        }
        let child = self.b.group(name, loc);
        if child == parent {
            self.error(
                line,
                0,
                name.len(),
                format!("group `{name}` cannot be its own child"),
                "",
            );
            return;
        }
        self.b.add_child(parent, child);
    }

    fn var_line(&mut self, line: &Line, group: usize) {
        let Some((key, value)) = line.text.split_once('=') else {
            self.error(
                line,
                0,
                line.text.len(),
                format!("expected key=value, found `{}`", line.text),
                "a `:vars` section sets one variable per line: `name = value`",
            );
            return;
        };
        let origin = self.origin(line, 0, line.text.len());
        let (key, value) = (key.trim(), ini_value(value.trim()));
        if let Err(e) = set_group_var(&mut self.b, group, key, value, origin) {
            self.diags.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_headers() {
        assert_eq!(section("[web]"), Some(("web", None)));
        assert_eq!(section("[web:vars]  # note"), Some(("web", Some("vars"))));
        assert_eq!(section("[web servers]"), None);
        assert_eq!(section("[web] trailing"), None);
        assert_eq!(section("[1, 2]"), None);
    }
}
