//! Differential test against real Ansible: for every inventory of tests/ansible-inventories/
//! (INI and YAML, ranges, children, variable precedence, group_vars/ and host_vars/, connection
//! variables, inventory scripts), `ansible-inventory --list` and `sluice inventory list --json`
//! print the same hosts, groups and variables; `--graph` and `--host` agree too.
//!
//! ansible-core comes from PyPI into target/ansible-venv (scripts/test.sh installs it when it is
//! missing). Without it the test fails and says how to install it; it never skips.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> PathBuf {
    repo().join("tests/ansible-inventories")
}

/// `ansible-inventory` of the test venv (or `SLUICE_ANSIBLE_INVENTORY`).
fn ansible_inventory() -> PathBuf {
    let path = std::env::var_os("SLUICE_ANSIBLE_INVENTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/ansible-venv/bin/ansible-inventory"));
    assert!(
        path.exists(),
        "{} not found: the differential test needs ansible-core. Run `bash scripts/test.sh` \
         (it installs it), or `python3 -m venv target/ansible-venv && \
         target/ansible-venv/bin/pip install ansible-core` in the repository root \
         (or set SLUICE_ANSIBLE_INVENTORY to an ansible-inventory)",
        path.display()
    );
    path
}

/// Ansible with no config file, no home and no temp dir of the user's, and parse failures as
/// errors (by default a source it cannot parse is only a warning and an empty inventory).
fn ansible(args: &[&str]) -> Output {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible-scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let config = scratch.join("ansible.cfg");
    std::fs::write(&config, "").unwrap();
    let out = Command::new(ansible_inventory())
        .args(args)
        .env("ANSIBLE_CONFIG", &config)
        .env("ANSIBLE_HOME", scratch.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", scratch.join("tmp"))
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-inventory {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sluice(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluice {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every inventory of the corpus: one per directory, named hosts.* or inventory.*.
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|dir| {
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    p.is_file() && (name.starts_with("hosts") || name.starts_with("inventory"))
                })
                .unwrap_or_else(|| panic!("{} holds no hosts.* or inventory.*", dir.display()))
        })
        .collect();
    cases.sort();
    cases
}

/// Where the two lists differ, host by host and group by group (empty when they agree).
fn differences(ansible: &serde_json::Value, sluice: &serde_json::Value) -> Vec<String> {
    let mut ansible = ansible.clone();
    // Ansible's JSON encoder profile; not part of the inventory.
    ansible["_meta"].as_object_mut().unwrap().remove("profile");
    let (a, s) = (ansible.as_object().unwrap(), sluice.as_object().unwrap());
    let mut diffs = Vec::new();
    let (ha, hs) = (&a["_meta"]["hostvars"], &s["_meta"]["hostvars"]);
    let hosts: std::collections::BTreeSet<&String> = ha
        .as_object()
        .unwrap()
        .keys()
        .chain(hs.as_object().unwrap().keys())
        .collect();
    for h in hosts {
        if ha.get(h) != hs.get(h) {
            diffs.push(format!(
                "host {h}:\n  ansible {}\n  sluice  {}",
                ha.get(h).unwrap_or(&serde_json::Value::Null),
                hs.get(h).unwrap_or(&serde_json::Value::Null)
            ));
        }
    }
    let groups: std::collections::BTreeSet<&String> = a.keys().chain(s.keys()).collect();
    for g in groups.into_iter().filter(|g| *g != "_meta") {
        if a.get(g) != s.get(g) {
            diffs.push(format!(
                "group {g}: ansible {:?}, sluice {:?}",
                a.get(g),
                s.get(g)
            ));
        }
    }
    diffs
}

#[test]
fn sluice_lists_every_inventory_of_the_corpus_as_ansible_does() {
    let cases = cases();
    assert!(cases.len() >= 7, "the corpus shrank: {cases:?}");
    // One at a time: ansible-inventory is CPU-bound while Python starts, and side by side on
    // two cores the runs only wait for each other (measured: 15 s instead of 8 s).
    let results: Vec<(PathBuf, Vec<String>, usize)> = cases
        .iter()
        .map(|case| {
            let path = case.to_str().unwrap();
            let expected = json(&ansible(&["-i", path, "--list"]));
            let got = json(&sluice(&["inventory", "list", "--json", "-i", path]));
            let hosts = expected["_meta"]["hostvars"].as_object().unwrap().len();
            (case.clone(), differences(&expected, &got), hosts)
        })
        .collect();
    let mut failures = Vec::new();
    for (case, diffs, hosts) in results {
        // An inventory Ansible reads as empty would agree with anything.
        assert!(
            hosts >= 2,
            "{}: ansible-inventory found {hosts} host(s) with variables",
            case.display()
        );
        if !diffs.is_empty() {
            failures.push(format!("{}:\n{}", case.display(), diffs.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "sluice and ansible-inventory disagree:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn graph_and_host_agree_with_ansible_inventory() {
    let ini = corpus().join("ini-basics/hosts.ini");
    let yaml = corpus().join("yaml-basics/hosts.yml");
    let (ini, yaml) = (ini.to_str().unwrap(), yaml.to_str().unwrap());
    for path in [ini, yaml] {
        let expected = String::from_utf8(ansible(&["-i", path, "--graph"]).stdout).unwrap();
        let got = String::from_utf8(sluice(&["inventory", "graph", "-i", path]).stdout).unwrap();
        assert_eq!(got.trim_end(), expected.trim_end(), "--graph of {path}");
    }
    let precedence = corpus().join("ini-precedence/hosts.ini");
    let path = precedence.to_str().unwrap();
    let expected = json(&ansible(&["-i", path, "--host", "web-2"]));
    let got = json(&sluice(&["inventory", "host", "-i", path, "web-2"]));
    assert_eq!(got, expected, "--host web-2");
    assert_eq!(
        got["prio"], "low",
        "the higher ansible_group_priority applies last"
    );
}
