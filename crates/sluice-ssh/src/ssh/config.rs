//! `~/.ssh/config`: the subset sluice honours, with inventory values taking precedence.
//!
//! Honoured keys: `HostName`, `User`, `Port`, `IdentityFile`, `ProxyJump`,
//! `UserKnownHostsFile` and `StrictHostKeyChecking`; others are ignored. As in OpenSSH, the file
//! is read top to bottom and the first value obtained for a key wins (except `IdentityFile`,
//! which accumulates).
//!
//! Blocks:
//! - `Host` patterns take `*`, `?` and `!`; a block matches when a pattern matches the inventory
//!   name or the address.
//! - `Match` evaluates `all`, `host` (the host name after any `HostName` obtained so far, else the
//!   address), `originalhost` (the inventory name), `user` (the login user: the inventory's, else
//!   a `User` obtained so far, else the local user, as OpenSSH defaults it), `localuser`, and
//!   `final` (sluice reads the file once, as OpenSSH's final pass). Criteria take comma-separated
//!   pattern lists and may be negated with `!`. `canonical` never matches (sluice does not
//!   canonicalize names); `exec` and any other criterion never match and are logged as a warning:
//!   sluice does not run commands from a config file.
//! - `Include` reads files (globs allowed) in place; relative paths are relative to the directory
//!   of the top config file (`~/.ssh` for the default), `~/` is the home directory. Inside a
//!   `Host` or `Match` block an included file applies only when the block does. Missing files
//!   are skipped, as by OpenSSH; nesting stops at 16 levels.
//!
//! An inventory value wins whenever it differs from the inventory default (port 22, no user, no
//! identity files, no jump hosts, no known_hosts files). `StrictHostKeyChecking` can only relax
//! `strict` to `accept-new`: `no` is treated as `accept-new`, because turning host key checking
//! off must be an explicit, audited choice in the inventory, not a side effect of a dotfile.

use std::path::{Path, PathBuf};

use super::auth::expand_home;
use super::known_hosts::{glob, wildcard};
use crate::transport::{HostKeyPolicy, HostTarget};

/// OpenSSH's limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// When a line applies: every condition of its enclosing blocks (an `Include` inside a block
/// adds the block's condition to the included lines).
#[derive(Debug, Clone)]
enum Condition {
    Host(Vec<String>),
    Match(Vec<Criterion>),
}

#[derive(Debug, Clone)]
struct Criterion {
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    All,
    Final,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// `canonical`, `exec` and criteria sluice does not know: never true.
    Never,
}

#[derive(Debug, Clone)]
struct Entry {
    conditions: Vec<Condition>,
    key: String,
    value: String,
}

/// The parsed file, includes expanded, in file order.
#[derive(Debug, Default, Clone)]
pub struct SshConfig {
    entries: Vec<Entry>,
}

/// What `Match` compares against while the file is read.
struct State<'a> {
    original: &'a str,
    address: &'a str,
    hostname: String,
    user: String,
    local_user: String,
}

impl SshConfig {
    /// Reads `path` and the files it includes; a missing file is an empty config.
    pub fn load(path: &Path) -> SshConfig {
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut entries = Vec::new();
        read_file(path, &base, &[], 0, &mut entries);
        SshConfig { entries }
    }

    /// Parses one file's text (an `Include` in it is resolved against the current directory).
    pub fn parse(text: &str) -> SshConfig {
        let mut entries = Vec::new();
        parse_into(text, Path::new("."), &[], 0, &mut entries);
        SshConfig { entries }
    }

    /// `target` with the gaps the inventory left filled from this config.
    pub fn apply(&self, target: &HostTarget) -> HostTarget {
        let local_user = std::env::var("USER").unwrap_or_default();
        let mut state = State {
            original: &target.name,
            address: &target.address,
            hostname: target.address.clone(),
            user: target.user.clone().unwrap_or_else(|| local_user.clone()),
            local_user,
        };
        let mut found: Vec<(&str, &str)> = Vec::new();
        for entry in &self.entries {
            if !entry.conditions.iter().all(|c| state.holds(c)) {
                continue;
            }
            let key = entry.key.as_str();
            if key != "identityfile" && found.iter().any(|(k, _)| *k == key) {
                continue;
            }
            found.push((key, &entry.value));
            // Later `Match host` / `Match user` lines see what was obtained so far.
            match key {
                "hostname" if target.address == target.name => {
                    state.hostname = entry.value.replace("%h", &target.name);
                }
                "user" if target.user.is_none() => state.user = entry.value.clone(),
                _ => {}
            }
        }
        fill(target, &found)
    }
}

/// The inventory target with the values found filled into its gaps.
fn fill(target: &HostTarget, found: &[(&str, &str)]) -> HostTarget {
    let mut t = target.clone();
    let first = |key: &str| {
        found
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    if target.address == target.name
        && let Some(h) = first("hostname")
    {
        t.address = h.replace("%h", &target.name);
    }
    if target.user.is_none() {
        t.user = first("user");
    }
    if target.port == 22
        && let Some(p) = first("port").and_then(|p| p.parse().ok())
    {
        t.port = p;
    }
    if target.identity_files.is_empty() {
        t.identity_files = found
            .iter()
            .filter(|(k, _)| *k == "identityfile")
            .map(|(_, p)| expand_home(Path::new(p)))
            .collect();
    }
    if target.proxy_jump.is_empty()
        && let Some(j) = first("proxyjump").filter(|j| !j.eq_ignore_ascii_case("none"))
    {
        t.proxy_jump = j.split(',').map(|s| s.trim().to_string()).collect();
    }
    if target.known_hosts.is_empty()
        && let Some(files) = first("userknownhostsfile")
    {
        t.known_hosts = files
            .split_whitespace()
            .map(|p| expand_home(Path::new(p)))
            .collect::<Vec<PathBuf>>();
    }
    if target.host_key_policy == HostKeyPolicy::Strict
        && let Some(v) = first("stricthostkeychecking")
    {
        let v = v.to_ascii_lowercase();
        if matches!(v.as_str(), "accept-new" | "no" | "off") {
            if v != "accept-new" {
                tracing::warn!(host = %target.name, "ssh config says StrictHostKeyChecking {v}; sluice uses accept-new (disable checking in the inventory if you mean it)");
            }
            t.host_key_policy = HostKeyPolicy::AcceptNew;
        }
    }
    t
}

fn read_file(path: &Path, base: &Path, outer: &[Condition], depth: usize, out: &mut Vec<Entry>) {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_into(&text, base, outer, depth, out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "cannot read ssh config: {e}"),
    }
}

fn parse_into(text: &str, base: &Path, outer: &[Condition], depth: usize, out: &mut Vec<Entry>) {
    let mut block: Option<Condition> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(|c: char| c == '=' || c.is_whitespace()) else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().trim_start_matches('=').trim();
        let conditions = || {
            outer
                .iter()
                .cloned()
                .chain(block.clone())
                .collect::<Vec<_>>()
        };
        match key.as_str() {
            "host" => block = Some(Condition::Host(words(value))),
            "match" => block = Some(Condition::Match(criteria(value))),
            "include" if depth >= MAX_INCLUDE_DEPTH => {
                tracing::warn!(
                    "ssh config: Include nested more than {MAX_INCLUDE_DEPTH} deep; ignored"
                );
            }
            "include" => {
                let within = conditions();
                for pattern in words(value) {
                    for file in expand_include(&pattern, base) {
                        read_file(&file, base, &within, depth + 1, out);
                    }
                }
            }
            _ => out.push(Entry {
                conditions: conditions(),
                key,
                value: value.trim_matches('"').to_string(),
            }),
        }
    }
}

/// Whitespace-separated words, each without surrounding quotes.
fn words(value: &str) -> Vec<String> {
    value
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

fn criteria(value: &str) -> Vec<Criterion> {
    let mut words = words(value).into_iter();
    let mut out = Vec::new();
    while let Some(word) = words.next() {
        let (negated, name) = match word.strip_prefix('!') {
            Some(n) => (true, n.to_ascii_lowercase()),
            None => (false, word.to_ascii_lowercase()),
        };
        let mut arg = || words.next().unwrap_or_default();
        let test = match name.as_str() {
            "all" => Test::All,
            "final" => Test::Final,
            "canonical" => Test::Never,
            "host" => Test::Host(arg()),
            "originalhost" => Test::OriginalHost(arg()),
            "user" => Test::User(arg()),
            "localuser" => Test::LocalUser(arg()),
            other => {
                let what = arg();
                // A block the operator meant to apply is silently skipped otherwise.
                tracing::warn!(
                    "ssh config: `Match {other} {what}` is not evaluated by sluice; the block does not apply"
                );
                Test::Never
            }
        };
        out.push(Criterion { negated, test });
    }
    out
}

impl State<'_> {
    fn holds(&self, condition: &Condition) -> bool {
        match condition {
            Condition::Host(patterns) => {
                host_block_matches(patterns, &[self.original, self.address])
            }
            Condition::Match(criteria) => criteria.iter().all(|c| {
                let result = match &c.test {
                    Test::All | Test::Final => true,
                    Test::Never => false,
                    Test::Host(list) => pattern_list(list, &self.hostname),
                    Test::OriginalHost(list) => pattern_list(list, self.original),
                    Test::User(list) => pattern_list(list, &self.user),
                    Test::LocalUser(list) => pattern_list(list, &self.local_user),
                };
                result != c.negated
            }),
        }
    }
}

/// `Host` line: any positive pattern matches one of the names, and no negated one does.
fn host_block_matches(patterns: &[String], names: &[&str]) -> bool {
    let mut hit = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if names.iter().any(|n| wildcard(neg, n)) {
                return false;
            }
        } else if names.iter().any(|n| wildcard(p, n)) {
            hit = true;
        }
    }
    hit
}

/// A `Match` criterion's comma-separated list, as OpenSSH's `match_pattern_list`.
fn pattern_list(list: &str, name: &str) -> bool {
    let patterns: Vec<String> = list.split(',').map(str::to_string).collect();
    host_block_matches(&patterns, &[name])
}

/// The files an `Include` names, sorted within each glob like glob(3).
fn expand_include(pattern: &str, base: &Path) -> Vec<PathBuf> {
    let path = expand_home(Path::new(pattern));
    let path = if path.is_absolute() {
        path
    } else {
        base.join(path)
    };
    // Components are walked from the root: make `./x` and `x` absolute first.
    let path = std::path::absolute(&path).unwrap_or(path);
    let mut found = vec![PathBuf::from("/")];
    for part in path.components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        if !part.contains(['*', '?']) {
            found.iter_mut().for_each(|p| p.push(&*part));
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(listing) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = listing
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // As glob(3): a leading dot is matched only by a pattern that has one.
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| glob(&part, n, false))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
