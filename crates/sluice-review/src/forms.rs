//! Grouping one command's renderings across hosts into the few [`Form`]s a reviewer reads.
//!
//! Hosts whose rendered text is identical share a form. Texts that differ only where each
//! host's own name or address stands share a form with a hole there — but only when the form,
//! filled in with each listed host's name and address, gives back exactly that host's rendered
//! text. The check is what makes the shortcut safe: a name written literally in the plan
//! (`test {{host.name}} != t-2`, rendered `test t-2 != t-2` on host t-2) is never taken for a
//! reference, because the other hosts' texts contradict that reading.
//!
//! Finding forms: the first host not yet covered proposes candidate forms (each occurrence of
//! its name or address in its text kept literal or made a hole); the candidate that reproduces
//! the most of a sample of the remaining texts wins (fewer holes on a tie), takes every host it
//! reproduces, and the next uncovered host proposes again. After [`MAX_ROUNDS`] rounds the rest
//! is grouped by exact text, so the work stays linear in the number of hosts.

use std::collections::HashMap;

use crate::model::{Form, Piece};

/// Occurrences of a name or address that are tried as holes (2^n candidates).
const MAX_OCCURRENCES: usize = 8;
/// Distinct texts each candidate is tried on before the best one is chosen.
const SAMPLE: usize = 16;
/// Rounds of generalisation before the remaining hosts are grouped by exact text.
const MAX_ROUNDS: usize = 64;

/// A host as far as forms care: its name and address.
#[derive(Clone, Copy, Debug)]
pub struct HostKey<'a> {
    pub name: &'a str,
    pub address: &'a str,
}

/// The forms of one command; `texts[i]` is host `i`'s rendering (`None`: the host has none).
/// Forms come in the order of their first host; each lists its hosts in host order.
pub fn forms(hosts: &[HostKey], texts: &[Option<String>]) -> Vec<Form> {
    let mut remaining = exact_groups(texts);
    if remaining.len() <= 1 {
        return remaining
            .into_iter()
            .map(|g| literal_form(&g.text, &g.hosts, hosts))
            .collect();
    }
    let mut out: Vec<(usize, Form)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let Some(first) = remaining.first() else {
            break;
        };
        let pivot = first.hosts[0];
        let best = best_candidate(&first.text, hosts[pivot], &remaining, hosts);
        let mut covered = Vec::new();
        for group in &mut remaining {
            group.hosts.retain(|&h| {
                let fits = reproduces(&best, hosts[h], &group.text);
                if fits {
                    covered.push(h);
                }
                !fits
            });
        }
        remaining.retain(|g| !g.hosts.is_empty());
        covered.sort_unstable();
        let names = covered.iter().map(|&h| hosts[h].name.to_string()).collect();
        out.push((
            covered[0],
            Form {
                pieces: best,
                hosts: names,
            },
        ));
    }
    for group in remaining {
        out.push((
            group.hosts[0],
            literal_form(&group.text, &group.hosts, hosts),
        ));
    }
    out.sort_by_key(|(first, _)| *first);
    out.into_iter().map(|(_, f)| f).collect()
}

/// Hosts with one exact text, in the order of their first host.
struct Group {
    text: String,
    hosts: Vec<usize>,
}

fn exact_groups(texts: &[Option<String>]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (host, text) in texts.iter().enumerate() {
        let Some(text) = text else { continue };
        match index.get(text.as_str()) {
            Some(&g) => groups[g].hosts.push(host),
            None => {
                index.insert(text, groups.len());
                groups.push(Group {
                    text: text.clone(),
                    hosts: vec![host],
                });
            }
        }
    }
    groups
}

fn literal_form(text: &str, members: &[usize], hosts: &[HostKey]) -> Form {
    Form {
        pieces: vec![Piece::Text(text.to_string())],
        hosts: members.iter().map(|&h| hosts[h].name.to_string()).collect(),
    }
}

/// The candidate form of `text` (rendered for `pivot`) that reproduces the most sampled groups.
fn best_candidate(text: &str, pivot: HostKey, groups: &[Group], hosts: &[HostKey]) -> Vec<Piece> {
    let sample: Vec<(&str, HostKey)> = groups
        .iter()
        .take(SAMPLE)
        .map(|g| (g.text.as_str(), hosts[g.hosts[0]]))
        .collect();
    let mut best: Option<(usize, usize, Vec<Piece>)> = None;
    for candidate in candidates(text, pivot) {
        let fits = sample
            .iter()
            .filter(|(t, h)| reproduces(&candidate, *h, t))
            .count();
        let holes = candidate
            .iter()
            .filter(|p| !matches!(p, Piece::Text(_)))
            .count();
        let better = match &best {
            None => true,
            Some((f, n, _)) => fits > *f || (fits == *f && holes < *n),
        };
        if better {
            best = Some((fits, holes, candidate));
        }
    }
    best.map(|(_, _, c)| c)
        .unwrap_or_else(|| vec![Piece::Text(text.to_string())])
}

/// An occurrence of the pivot's name or address in its text.
#[derive(Clone, Copy)]
struct Occurrence {
    start: usize,
    end: usize,
    hole: fn() -> Piece,
}

/// Every way of reading occurrences of the pivot's name and address as holes (non-overlapping),
/// the all-literal reading included.
fn candidates(text: &str, pivot: HostKey) -> Vec<Vec<Piece>> {
    let mut found: Vec<Occurrence> = Vec::new();
    let mut find = |needle: &str, hole: fn() -> Piece| {
        if needle.is_empty() {
            return;
        }
        for (start, m) in text.match_indices(needle) {
            found.push(Occurrence {
                start,
                end: start + m.len(),
                hole,
            });
        }
    };
    find(pivot.name, || Piece::HostName);
    if pivot.address != pivot.name {
        find(pivot.address, || Piece::HostAddress);
    }
    found.sort_by_key(|o| (o.start, o.end));
    found.truncate(MAX_OCCURRENCES);
    let mut out = Vec::new();
    for mask in 0u32..(1 << found.len()) {
        let chosen: Vec<Occurrence> = found
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, o)| *o)
            .collect();
        if chosen.windows(2).any(|w| w[1].start < w[0].end) {
            continue;
        }
        out.push(pieces_of(text, &chosen));
    }
    out
}

fn pieces_of(text: &str, holes: &[Occurrence]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for o in holes {
        if o.start > at {
            pieces.push(Piece::Text(text[at..o.start].to_string()));
        }
        pieces.push((o.hole)());
        at = o.end;
    }
    if at < text.len() || pieces.is_empty() {
        pieces.push(Piece::Text(text[at..].to_string()));
    }
    pieces
}

/// True when `pieces` filled in for `host` is exactly `text`.
fn reproduces(pieces: &[Piece], host: HostKey, text: &str) -> bool {
    let mut rest = text;
    for piece in pieces {
        let part = match piece {
            Piece::Text(t) => t.as_str(),
            Piece::HostName => host.name,
            Piece::HostAddress => host.address,
        };
        match rest.strip_prefix(part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys<'a>(names: &'a [(&'a str, &'a str)]) -> Vec<HostKey<'a>> {
        names
            .iter()
            .map(|(name, address)| HostKey { name, address })
            .collect()
    }

    fn show(forms: &[Form]) -> Vec<String> {
        forms
            .iter()
            .map(|f| {
                let text: String = f
                    .pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.clone(),
                        Piece::HostName => "<name>".into(),
                        Piece::HostAddress => "<address>".into(),
                    })
                    .collect();
                format!("{}: {text}", f.hosts.join(","))
            })
            .collect()
    }

    fn texts(t: &[&str]) -> Vec<Option<String>> {
        t.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn identical_texts_make_one_literal_form() {
        let h = keys(&[("a", "10.0.0.1"), ("b", "10.0.0.2")]);
        let f = forms(&h, &texts(&["uptime", "uptime"]));
        assert_eq!(show(&f), ["a,b: uptime"]);
        assert!(f[0].is_literal());
    }

    /// Regression: the old review replaced every occurrence of a host's name, so host t-2's
    /// `test t-2 != t-2` read `test {{host.name}} != {{host.name}}`.
    #[test]
    fn a_literal_equal_to_a_host_name_stays_literal() {
        let h = keys(&[("t-1", "t-1"), ("t-2", "t-2"), ("t-3", "t-3")]);
        let f = forms(
            &h,
            &texts(&["test t-1 != t-2", "test t-2 != t-2", "test t-3 != t-2"]),
        );
        assert_eq!(show(&f), ["t-1,t-2,t-3: test <name> != t-2"]);
    }

    #[test]
    fn names_and_addresses_become_holes_only_where_every_host_agrees() {
        let h = keys(&[("web-1", "10.0.0.11"), ("web-2", "10.0.0.12")]);
        let f = forms(
            &h,
            &texts(&[
                "drain web-1 at http://10.0.0.11:8080",
                "drain web-2 at http://10.0.0.12:8080",
            ]),
        );
        assert_eq!(
            show(&f),
            ["web-1,web-2: drain <name> at http://<address>:8080"]
        );
    }

    #[test]
    fn hosts_that_differ_otherwise_get_a_form_each_group() {
        let h = keys(&[("a", "a"), ("b", "b"), ("c", "c"), ("d", "d")]);
        let f = forms(
            &h,
            &texts(&[
                "x a --rack 1",
                "x b --rack 1",
                "x c --rack 2",
                "x d --rack 2",
            ]),
        );
        assert_eq!(
            show(&f),
            ["a,b: x <name> --rack 1", "c,d: x <name> --rack 2"]
        );
    }

    #[test]
    fn a_single_host_keeps_its_text() {
        let h = keys(&[("web-1", "10.0.0.11")]);
        let f = forms(&h, &texts(&["logger on web-1"]));
        assert_eq!(show(&f), ["web-1: logger on web-1"]);
    }

    #[test]
    fn shared_addresses_are_not_holes() {
        let h = keys(&[("a", "127.0.0.1"), ("b", "127.0.0.1")]);
        let f = forms(&h, &texts(&["ping 127.0.0.1 a", "ping 127.0.0.1 b"]));
        assert_eq!(show(&f), ["a,b: ping 127.0.0.1 <name>"]);
    }

    #[test]
    fn hosts_without_the_command_are_left_out() {
        let h = keys(&[("a", "a"), ("b", "b")]);
        let f = forms(&h, &[Some("x".into()), None]);
        assert_eq!(show(&f), ["a: x"]);
    }

    #[test]
    fn every_host_is_in_exactly_one_form() {
        let names: Vec<(String, String)> = (0..300)
            .map(|i| (format!("h{i}"), format!("10.0.{}.{}", i / 256, i % 256)))
            .collect();
        let h: Vec<HostKey> = names
            .iter()
            .map(|(n, a)| HostKey {
                name: n,
                address: a,
            })
            .collect();
        // Every host differs in a way no hole explains: rounds run out, the rest is exact.
        let t: Vec<Option<String>> = (0..300).map(|i| Some(format!("id {}", i * 7))).collect();
        let f = forms(&h, &t);
        let mut all: Vec<&String> = f.iter().flat_map(|f| &f.hosts).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 300);
        assert_eq!(f.iter().map(|f| f.hosts.len()).sum::<usize>(), 300);
    }
}
