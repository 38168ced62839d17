//! `~/.ssh/config`: the subset sluice honours, with inventory values taking precedence.
//!
//! Honoured keys: `HostName`, `User`, `Port`, `IdentityFile`, `ProxyJump`,
//! `UserKnownHostsFile` and `StrictHostKeyChecking`. As in OpenSSH, the first value obtained for
//! a key wins (except `IdentityFile`, which accumulates), `Host` patterns take `*`, `?` and `!`,
//! and `Match` blocks are skipped (sluice does not evaluate them). A `Host` block matches when a
//! pattern matches the inventory name or the address.
//!
//! An inventory value wins whenever it differs from the inventory default (port 22, no user, no
//! identity files, no jump hosts, no known_hosts files). `StrictHostKeyChecking` can only relax
//! `strict` to `accept-new`: `no` is treated as `accept-new`, because turning host key checking
//! off must be an explicit, audited choice in the inventory, not a side effect of a dotfile.

use std::path::{Path, PathBuf};

use super::auth::expand_home;
use super::known_hosts::wildcard;
use crate::transport::{HostKeyPolicy, HostTarget};

/// The parsed file: `(patterns, key, value)` in file order.
#[derive(Debug, Default, Clone)]
pub struct SshConfig {
    entries: Vec<(Vec<String>, String, String)>,
}

impl SshConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> SshConfig {
        std::fs::read_to_string(path)
            .map(|t| SshConfig::parse(&t))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> SshConfig {
        let mut patterns = vec!["*".to_string()];
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(|c: char| c == '=' || c.is_whitespace()) {
                Some((k, v)) => (k.trim(), v.trim().trim_start_matches('=').trim()),
                None => continue,
            };
            let key = key.to_ascii_lowercase();
            let value = value.trim_matches('"').to_string();
            match key.as_str() {
                "host" => patterns = value.split_whitespace().map(str::to_string).collect(),
                // A Match block's conditions are not evaluated: nothing in it applies.
                "match" => patterns = Vec::new(),
                _ => entries.push((patterns.clone(), key, value)),
            }
        }
        SshConfig { entries }
    }

    /// Values for a host, first obtained first.
    fn values<'a>(&'a self, names: &'a [&'a str], key: &'a str) -> impl Iterator<Item = &'a str> {
        self.entries
            .iter()
            .filter(move |(patterns, k, _)| k == key && block_matches(patterns, names))
            .map(|(_, _, v)| v.as_str())
    }

    /// `target` with the gaps the inventory left filled from this config.
    pub fn apply(&self, target: &HostTarget) -> HostTarget {
        let mut t = target.clone();
        let names = [target.name.as_str(), target.address.as_str()];
        let first = |key: &str| self.values(&names, key).next().map(str::to_string);
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
            t.identity_files = self
                .values(&names, "identityfile")
                .map(|p| expand_home(Path::new(p)))
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
}

fn block_matches(patterns: &[String], names: &[&str]) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
Host web-* !web-9
    HostName %h.example.net
    User deploy
    Port 2222
    IdentityFile /keys/web
    ProxyJump bastion1,admin@bastion2:22
    StrictHostKeyChecking accept-new

Match host foo
    User never

Host *
    User fallback
    IdentityFile /keys/default
";

    #[test]
    fn fills_gaps_first_value_wins_identity_files_accumulate() {
        let cfg = SshConfig::parse(CONFIG);
        let t = cfg.apply(&HostTarget::new("web-1", "web-1"));
        assert_eq!(t.address, "web-1.example.net");
        assert_eq!(t.user.as_deref(), Some("deploy"));
        assert_eq!(t.port, 2222);
        assert_eq!(
            t.identity_files,
            vec![PathBuf::from("/keys/web"), PathBuf::from("/keys/default")]
        );
        assert_eq!(t.proxy_jump, vec!["bastion1", "admin@bastion2:22"]);
        assert_eq!(t.host_key_policy, HostKeyPolicy::AcceptNew);
    }

    #[test]
    fn inventory_values_win_and_negation_excludes() {
        let cfg = SshConfig::parse(CONFIG);
        let mut inv = HostTarget::new("web-2", "10.0.0.2");
        inv.user = Some("ops".into());
        inv.port = 22022;
        let t = cfg.apply(&inv);
        assert_eq!(
            (t.address.as_str(), t.user.as_deref(), t.port),
            ("10.0.0.2", Some("ops"), 22022)
        );
        let t = cfg.apply(&HostTarget::new("web-9", "web-9"));
        assert_eq!(t.user.as_deref(), Some("fallback"));
        assert_eq!(t.port, 22);
    }
}
