//! Ansible's host pattern language, for `--limit`.
//!
//! A limit is a list of patterns separated by commas (or by colons when there is no comma and
//! the text is not one host address). `@FILE` stands for the patterns in FILE, one per line.
//! Each pattern is:
//! - `all` (every host), a group name (its hosts, children's included) or a host name;
//! - a glob (`web*`, `db-?`, `web[12]`, `[!x]`): every group and every host whose name matches;
//! - any of these with a subscript, `web[0]`, `web[-1]`, `web[1:3]`, `web[2:]` (positions in the
//!   group's host list, as Ansible orders it);
//! - prefixed with `&` (intersection) or `!` (exclusion).
//!
//! As in Ansible, the plain patterns are applied first (their union), then every `&`, then every
//! `!`, whatever order they are written in; only `&` and `!` patterns mean `all` first. Not
//! supported: regular expressions (`~…`), which are refused.

use std::collections::HashSet;
use std::path::Path;

use super::{Inventory, host_range};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::schema::nearest;

/// Why a limit cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("--limit is empty")]
    Empty,
    #[error("cannot read the limit file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("--limit pattern `{0}` is a regular expression (`~`), which sluice does not support")]
    Regex(String),
    #[error("--limit pattern `{pattern}` has a subscript beyond the {count} host(s) it matches")]
    Subscript { pattern: String, count: usize },
}

/// The patterns of a `--limit` argument, `@FILE`s read.
pub fn parse(limit: &str, base: &Path) -> Result<Vec<String>, LimitError> {
    let mut patterns = Vec::new();
    for p in split(limit) {
        match p.strip_prefix('@') {
            Some(file) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path).map_err(|e| LimitError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                patterns.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
            None => patterns.push(p),
        }
    }
    if patterns.is_empty() {
        return Err(LimitError::Empty);
    }
    if let Some(p) = patterns
        .iter()
        .find(|p| p.trim_start_matches(['&', '!']).starts_with('~'))
    {
        return Err(LimitError::Regex(p.clone()));
    }
    Ok(patterns)
}

/// Ansible's `split_host_pattern`.
fn split(text: &str) -> Vec<String> {
    let parts: Vec<String> = if text.contains(',') {
        text.split(',').map(str::to_string).collect()
    } else if host_range::is_address(text.trim()) {
        vec![text.to_string()]
    } else {
        // Colon-separated: runs of characters other than space, `:` and brackets, or whole
        // bracketed expressions.
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '[' => {
                    let mut group = String::from('[');
                    let mut closed = false;
                    for n in chars.by_ref() {
                        group.push(n);
                        if n == ']' {
                            closed = true;
                            break;
                        }
                    }
                    if closed {
                        current.push_str(&group);
                    } else {
                        parts.push(std::mem::take(&mut current));
                    }
                }
                ':' | ']' => parts.push(std::mem::take(&mut current)),
                c if c.is_whitespace() => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        parts
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// What a limit selects.
#[derive(Debug)]
pub struct Selection {
    /// For each host of the inventory, whether the limit keeps it.
    pub hosts: Vec<bool>,
    /// Patterns that matched no host (Ansible warns about them too).
    pub unmatched: Vec<String>,
}

/// Applies `patterns` to the inventory.
pub fn select(inv: &Inventory, patterns: &[String]) -> Result<Selection, LimitError> {
    let mut ordered: Vec<&str> = patterns
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with(['&', '!']))
        .collect();
    if ordered.is_empty() {
        ordered.push(super::ALL);
    }
    ordered.extend(
        patterns
            .iter()
            .map(String::as_str)
            .filter(|p| p.starts_with('&')),
    );
    ordered.extend(
        patterns
            .iter()
            .map(String::as_str)
            .filter(|p| p.starts_with('!')),
    );
    let mut selected = vec![false; inv.hosts.len()];
    let mut unmatched = Vec::new();
    for p in ordered {
        let matched: HashSet<usize> = match inv.host_named(p) {
            Some(h) => [h].into(),
            None => match_one(inv, p.trim_start_matches(['&', '!']))?,
        };
        if matched.is_empty() {
            unmatched.push(p.to_string());
        }
        match p.as_bytes().first() {
            Some(b'!') => matched.iter().for_each(|&h| selected[h] = false),
            Some(b'&') => selected
                .iter_mut()
                .enumerate()
                .for_each(|(h, s)| *s &= matched.contains(&h)),
            _ => matched.iter().for_each(|&h| selected[h] = true),
        }
    }
    Ok(Selection {
        hosts: selected,
        unmatched,
    })
}

/// The targeted hosts `--limit` keeps (in inventory order). A pattern that matches no host of
/// the inventory is a warning, as in Ansible; a limit that keeps no targeted host is an error.
pub fn limit_targets(
    inv: &Inventory,
    targeted: Vec<usize>,
    patterns: &[String],
    diags: &mut Diagnostics,
) -> Vec<usize> {
    let selection = match select(inv, patterns) {
        Ok(s) => s,
        Err(e) => {
            diags.push(Diagnostic::error(e.to_string()));
            return Vec::new();
        }
    };
    for p in &selection.unmatched {
        let names: Vec<&str> = inv
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .chain(inv.hosts.iter().map(|h| h.name.as_str()))
            .collect();
        let bare = p.trim_start_matches(['&', '!']);
        let mut d = Diagnostic::warning(crate::warning::PlanWarning::LimitMatchesNothing {
            pattern: p.to_string(),
            inventory: inv.file.path.clone(),
        });
        if let Some(n) = nearest(bare, &names) {
            d = d.with_help(format!("did you mean `{n}`?"));
        }
        diags.push(d);
    }
    let count = targeted.len();
    let kept: Vec<usize> = targeted
        .into_iter()
        .filter(|&h| selection.hosts[h])
        .collect();
    if kept.is_empty() && count > 0 {
        diags.push(
            Diagnostic::error(format!(
                "--limit {} keeps none of the {count} targeted host(s); nothing would run",
                patterns.join(",")
            ))
            .with_help("`sluice inventory list -i INVENTORY` shows the groups and hosts"),
        );
    }
    kept
}

/// The hosts one pattern (without `&`/`!`) matches.
fn match_one(inv: &Inventory, pattern: &str) -> Result<HashSet<usize>, LimitError> {
    let (expr, subscript) = split_subscript(pattern);
    let mut hosts: Vec<usize> = Vec::new();
    let groups: Vec<usize> = (0..inv.groups.len())
        .filter(|&g| glob(expr, &inv.groups[g].name))
        .collect();
    for &g in &groups {
        hosts.extend(ansible_group_order(inv, g));
    }
    if groups.is_empty() || expr.contains(['.', '?', '*', '[']) {
        hosts.extend((0..inv.hosts.len()).filter(|&h| glob(expr, &inv.hosts[h].name)));
    }
    let mut seen = HashSet::new();
    hosts.retain(|h| seen.insert(*h));
    let Some((start, end)) = subscript else {
        return Ok(hosts.into_iter().collect());
    };
    if hosts.is_empty() {
        return Ok(HashSet::new());
    }
    let n = hosts.len() as i64;
    let beyond = || LimitError::Subscript {
        pattern: pattern.to_string(),
        count: hosts.len(),
    };
    match end {
        None => {
            let i = if start < 0 { n + start } else { start };
            let i = usize::try_from(i)
                .ok()
                .filter(|&i| i < hosts.len())
                .ok_or_else(beyond)?;
            Ok([hosts[i]].into())
        }
        Some(end) => {
            let end = if end == -1 { n - 1 } else { end };
            let (from, to) = (start.clamp(0, n) as usize, (end + 1).clamp(0, n) as usize);
            Ok(hosts
                .get(from..to.max(from))
                .unwrap_or_default()
                .iter()
                .copied()
                .collect())
        }
    }
}

/// `pattern[i]`, `pattern[a:b]`, `pattern[a:]` (Ansible's `PATTERN_WITH_SUBSCRIPT`).
fn split_subscript(pattern: &str) -> (&str, Option<(i64, Option<i64>)>) {
    let Some(body) = pattern.strip_suffix(']') else {
        return (pattern, None);
    };
    let Some(open) = body.rfind('[') else {
        return (pattern, None);
    };
    let (expr, inside) = (&body[..open], &body[open + 1..]);
    if expr.is_empty() {
        return (pattern, None);
    }
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Ok(i) = inside.parse::<i64>()
        && number(inside.trim_start_matches('-'))
    {
        return (expr, Some((i, None)));
    }
    if let Some((a, b)) = inside.split_once([':', '-'])
        && number(a)
        && (b.is_empty() || number(b))
    {
        let start = a.parse().unwrap_or(0);
        let end = if b.is_empty() {
            -1
        } else {
            b.parse().unwrap_or(-1)
        };
        return (expr, Some((start, Some(end))));
    }
    (pattern, None)
}

/// A group's hosts in Ansible's order: its own, then its children's, breadth first.
fn ansible_group_order(inv: &Inventory, g: usize) -> Vec<usize> {
    let mut groups = vec![g];
    let mut seen_groups: HashSet<usize> = [g].into();
    let mut i = 0;
    while i < groups.len() {
        for &c in &inv.groups[groups[i]].children {
            if seen_groups.insert(c) {
                groups.push(c);
            }
        }
        i += 1;
    }
    let mut seen = HashSet::new();
    groups
        .iter()
        .flat_map(|&g| inv.groups[g].hosts.iter().copied())
        .filter(|h| seen.insert(*h))
        .collect()
}

/// Python's `fnmatch` (case-sensitive): `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && glob_at(&p[1..], &t[1..]),
        Some('[') => match class(&p[1..]) {
            Some((matches, used)) => {
                t.first().is_some_and(|&c| matches(c)) && glob_at(&p[1 + used..], &t[1..])
            }
            None => t.first() == Some(&'[') && glob_at(&p[1..], &t[1..]),
        },
        Some(&c) => t.first() == Some(&c) && glob_at(&p[1..], &t[1..]),
    }
}

/// A `[…]` class after its `[`: the test and how many characters it used (`]` included).
#[allow(clippy::type_complexity)]
fn class(p: &[char]) -> Option<(Box<dyn Fn(char) -> bool + '_>, usize)> {
    let negated = p.first() == Some(&'!');
    let start = usize::from(negated);
    // A `]` right after `[` or `[!` is a member, as in fnmatch.
    let close = p.iter().skip(start + 1).position(|&c| c == ']')? + start + 1;
    let members = &p[start..close];
    let test = move |c: char| {
        let mut i = 0;
        let mut hit = false;
        while i < members.len() {
            if i + 2 < members.len() && members[i + 1] == '-' {
                hit |= members[i] <= c && c <= members[i + 2];
                i += 3;
            } else {
                hit |= members[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(test), close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert_eq!(split("web,db"), ["web", "db"]);
        assert_eq!(split("web:!db:&prod"), ["web", "!db", "&prod"]);
        assert_eq!(split("web[1:3]"), ["web[1:3]"]);
        assert_eq!(split(" a , ,b "), ["a", "b"]);
        assert_eq!(split("10.0.0.1:22"), ["10.0.0.1:22"]);
    }

    #[test]
    fn globs() {
        assert!(glob("web*", "web-1"));
        assert!(glob("web-[12]", "web-2"));
        assert!(!glob("web-[!12]", "web-2"));
        assert!(glob("db-[a-c]", "db-b"));
        assert!(glob("w?b", "web"));
        assert!(!glob("web", "web-1"));
        assert!(glob("a[", "a["));
    }

    #[test]
    fn subscripts() {
        assert_eq!(split_subscript("web[0]"), ("web", Some((0, None))));
        assert_eq!(split_subscript("web[-1]"), ("web", Some((-1, None))));
        assert_eq!(split_subscript("web[1:3]"), ("web", Some((1, Some(3)))));
        assert_eq!(split_subscript("web[2:]"), ("web", Some((2, Some(-1)))));
        assert_eq!(split_subscript("web[ab]"), ("web[ab]", None));
    }
}
