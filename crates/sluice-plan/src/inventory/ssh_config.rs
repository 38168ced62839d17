//! The hosts of an OpenSSH client config: `-i ssh_config` (`~/.ssh/config`) or
//! `-i ssh_config:PATH`.
//!
//! Every `Host` alias without a wildcard (`*`, `?`) or negation (`!`) is a host, in the order
//! first written, all in the group `ssh_config`. `Include` is followed (globs in the last path
//! component, relative paths from the top file's directory, `~/` the home directory, 16 levels
//! at most, missing files skipped, as OpenSSH does).
//!
//! So that a plan artifact says where each host is, `HostName` (with `%h`), `User`, `Port`,
//! `IdentityFile` and `ProxyJump` of the `Host` blocks that match an alias are resolved here,
//! the first value winning as in OpenSSH. `Match` blocks are not evaluated by the planner; the
//! SSH layer still fills what is left from `~/.ssh/config` when it connects, `Match` included.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::build::Builder;
use super::{ConnectionDecl, GroupOrder, InventoryFormat};
use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};

/// The group every ssh_config host is in.
pub const GROUP: &str = "ssh_config";

const MAX_INCLUDE_DEPTH: usize = 16;

/// `ssh_config` → `Some(None)`; `ssh_config:PATH` → `Some(Some(PATH))`; anything else `None`.
pub fn spec_path(spec: &str) -> Option<Option<&str>> {
    match spec.strip_prefix("ssh_config") {
        Some("") => Some(None),
        Some(rest) => rest.strip_prefix(':').filter(|p| !p.is_empty()).map(Some),
        None => None,
    }
}

pub fn default_path() -> PathBuf {
    home().join(".ssh").join("config")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// One `Host` block: its patterns and its settings in order.
struct Block {
    patterns: Vec<String>,
    settings: Vec<(String, String)>,
}

struct Parsed {
    /// Aliases with where they were written.
    aliases: Vec<(String, Loc)>,
    blocks: Vec<Block>,
}

pub fn read(path: &Path, diags: &mut Diagnostics) -> Option<Builder> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::error(format!(
                "cannot read the ssh config {}: {e}",
                path.display()
            )));
            return None;
        }
    };
    let file = Arc::new(SourceFile {
        path: path.display().to_string(),
        text,
    });
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut parsed = Parsed {
        aliases: Vec::new(),
        blocks: Vec::new(),
    };
    parse(&file, &base, 0, &mut parsed, diags);
    let mut b = Builder::new(&file, InventoryFormat::SshConfig, GroupOrder::Declaration);
    let g = b.group(GROUP, Loc::default());
    for (alias, loc) in &parsed.aliases {
        if b.host_named(alias).is_some() {
            continue;
        }
        let h = b.host(alias, *loc);
        b.add_host_to(g, h);
        b.hosts[h].connection = resolve(alias, &parsed.blocks, diags, &file);
    }
    if b.hosts.is_empty() {
        diags.push(
            Diagnostic::warning(crate::warning::PlanWarning::Inventory {
                message: format!(
                    "{} names no host (no `Host` line without wildcards)",
                    path.display()
                ),
            })
            .in_file(&file),
        );
    }
    Some(b)
}

/// Reads one file's lines into `out`, following its `Include`s.
fn parse(
    file: &Arc<SourceFile>,
    base: &Path,
    depth: usize,
    out: &mut Parsed,
    diags: &mut Diagnostics,
) {
    let mut offset = 0;
    for (i, raw) in file.text.split('\n').enumerate() {
        let start = offset;
        offset += raw.len() + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_keyword(line);
        let value_at = start + raw.find(value).unwrap_or(0);
        match key.to_ascii_lowercase().as_str() {
            "host" => {
                let patterns: Vec<String> = value
                    .split_whitespace()
                    .map(|p| p.trim_matches('"').to_string())
                    .collect();
                for p in &patterns {
                    if !p.contains(['*', '?', '!']) {
                        let at = value_at + value.find(p.as_str()).unwrap_or(0);
                        out.aliases.push((p.clone(), loc_at(file, i, at, p.len())));
                    }
                }
                out.blocks.push(Block {
                    patterns,
                    settings: Vec::new(),
                });
            }
            // Settings under `Match` are for the SSH layer; an empty block keeps them apart.
            "match" => out.blocks.push(Block {
                patterns: Vec::new(),
                settings: Vec::new(),
            }),
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    diags.push(
                        Diagnostic::warning(crate::warning::PlanWarning::Inventory {
                            message: "`Include` nested more than 16 levels deep is skipped".into(),
                        })
                        .at(file, loc_at(file, i, value_at, value.len())),
                    );
                    continue;
                }
                for pattern in value.split_whitespace() {
                    for included in expand_include(pattern, base) {
                        let Ok(text) = std::fs::read_to_string(&included) else {
                            continue;
                        };
                        let inner = Arc::new(SourceFile {
                            path: included.display().to_string(),
                            text,
                        });
                        parse(&inner, base, depth + 1, out, diags);
                    }
                }
            }
            _ => {
                if let Some(block) = out.blocks.last_mut() {
                    block
                        .settings
                        .push((key.to_ascii_lowercase(), value.to_string()));
                } else {
                    // Lines before any `Host` apply to every host.
                    out.blocks.push(Block {
                        patterns: vec!["*".into()],
                        settings: vec![(key.to_ascii_lowercase(), value.to_string())],
                    });
                }
            }
        }
    }
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (key, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    (key, rest)
}

fn loc_at(file: &SourceFile, line_index: usize, offset: usize, len: usize) -> Loc {
    let line_start = file.text[..offset.min(file.text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    Loc {
        line: u32::try_from(line_index + 1).unwrap_or(u32::MAX),
        column: u32::try_from(
            file.text[line_start..offset.min(file.text.len())]
                .chars()
                .count()
                + 1,
        )
        .unwrap_or(u32::MAX),
        offset,
        len: len.max(1),
    }
}

/// The files an `Include` names: `~/` is home, relative paths start at `base`, and a glob in
/// the last component matches file names (sorted, as glob(3) returns them).
fn expand_include(pattern: &str, base: &Path) -> Vec<PathBuf> {
    let pattern = pattern.trim_matches('"');
    let path = match pattern.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None if Path::new(pattern).is_absolute() => PathBuf::from(pattern),
        None => base.join(pattern),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![path];
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && wildcard(&name, n))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// OpenSSH's pattern match: `*` any run of characters, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A block applies when a pattern matches and no negated pattern does.
fn block_matches(block: &Block, alias: &str) -> bool {
    let mut matched = false;
    for p in &block.patterns {
        match p.strip_prefix('!') {
            Some(negated) if wildcard(negated, alias) => return false,
            Some(_) => {}
            None => matched |= wildcard(p, alias),
        }
    }
    matched
}

/// The settings of `alias`, the first value of each key winning (`IdentityFile` accumulates).
fn resolve(
    alias: &str,
    blocks: &[Block],
    diags: &mut Diagnostics,
    file: &Arc<SourceFile>,
) -> ConnectionDecl {
    let mut c = ConnectionDecl::default();
    for block in blocks.iter().filter(|b| block_matches(b, alias)) {
        for (key, value) in &block.settings {
            let value = value.trim_matches('"');
            match key.as_str() {
                "hostname" if c.address.is_none() => c.address = Some(value.replace("%h", alias)),
                "user" if c.user.is_none() => c.user = Some(value.to_string()),
                "port" if c.port.is_none() => match value.parse::<u16>() {
                    Ok(p) if p > 0 => c.port = Some(p),
                    _ => diags.push(
                        Diagnostic::error(format!(
                            "host `{alias}`: Port {value} is not between 1 and 65535"
                        ))
                        .in_file(file),
                    ),
                },
                "identityfile" => c
                    .identity_files
                    .get_or_insert_with(Vec::new)
                    .push(value.to_string()),
                "proxyjump" if c.proxy_jump.is_none() && !value.eq_ignore_ascii_case("none") => {
                    c.proxy_jump = Some(value.split(',').map(str::to_string).collect());
                }
                _ => {}
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(spec_path("ssh_config"), Some(None));
        assert_eq!(spec_path("ssh_config:/tmp/c"), Some(Some("/tmp/c")));
        assert_eq!(spec_path("ssh_configs"), None);
        assert_eq!(spec_path("hosts.ini"), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("web-*", "web-1"));
        assert!(wildcard("w?b", "web"));
        assert!(!wildcard("web-*", "db-1"));
        assert!(wildcard("*", ""));
    }
}
