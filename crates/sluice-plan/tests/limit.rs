//! `--limit`: Ansible's host patterns narrow the targets, waves are split again on what is
//! left, and the artifact and its review say so.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_plan::{CompileOptions, PlanError, compile_sources, compile_sources_with};

const INVENTORY: &str = "
hosts:
  web-1: {}
  web-2: {}
  web-3: {}
  web-4: {}
  db-1: {}
  db-2: {}
groups:
  web-a: { hosts: [web-1, web-2] }
  web-b: { hosts: [web-3, web-4] }
  web: { children: [web-a, web-b] }
  db: { hosts: [db-1, db-2] }
  canary: { hosts: [web-1, db-1] }
";

const PLAN: &str = "
name: limited
targets: [all]
waves: [{ name: first, size: 1 }, { name: rest, size: 100% }]
steps:
  - { id: hello, run: 'echo hello' }
";

fn options(limit: &str) -> CompileOptions {
    CompileOptions {
        limit: Some(limit.to_string()),
        ..CompileOptions::default()
    }
}

/// The hosts a limit keeps, in the order of the plan's hosts.
fn check(limit: &str, expected: &[&str]) {
    let compiled = compile_sources_with(
        ("plan.yaml", PLAN),
        ("inv.yaml", INVENTORY),
        &options(limit),
    )
    .unwrap_or_else(|e| panic!("--limit {limit}: {e:?}"));
    let hosts: Vec<&str> = compiled
        .artifact
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(hosts, expected, "--limit {limit}");
}

#[test]
fn patterns_select_as_in_ansible() {
    check("web-2", &["web-2"]);
    check("db", &["db-1", "db-2"]);
    check("web", &["web-1", "web-2", "web-3", "web-4"]);
    check("web*", &["web-1", "web-2", "web-3", "web-4"]);
    check("*-1", &["web-1", "db-1"]);
    check("db-[!1]", &["db-2"]);
    // A glob matches group names too: `web-[1a]` is group web-a and host web-1.
    check("web-[1a]", &["web-1", "web-2"]);
    check("web:!web-a", &["web-3", "web-4"]);
    check("web,&canary", &["web-1"]);
    check("!db", &["web-1", "web-2", "web-3", "web-4"]);
    check("&canary", &["web-1", "db-1"]);
    check("!web-1,web", &["web-2", "web-3", "web-4"]);
    check("db-2,web-b", &["web-3", "web-4", "db-2"]);
    check("web[0]", &["web-1"]);
    check("web[-1]", &["web-4"]);
    check("web[1:2]", &["web-2", "web-3"]);
    check(
        "all:!ungrouped",
        &["web-1", "web-2", "web-3", "web-4", "db-1", "db-2"],
    );
}

#[test]
fn a_limit_file_holds_one_pattern_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("retry");
    std::fs::write(&file, "web-4\n\ndb-1\n").unwrap();
    check(&format!("@{}", file.display()), &["web-4", "db-1"]);
    let missing = compile_sources_with(
        ("plan.yaml", PLAN),
        ("inv.yaml", INVENTORY),
        &options("@/nonexistent/retry"),
    );
    let Err(PlanError::Invalid(diags)) = missing else {
        panic!("a missing limit file was accepted")
    };
    assert!(
        diags[0]
            .to_string()
            .starts_with("cannot read the limit file /nonexistent/retry:"),
        "{}",
        diags[0]
    );
}

#[test]
fn waves_are_split_on_the_limited_hosts_and_the_artifact_records_the_limit() {
    let artifact = compile_sources_with(
        ("plan.yaml", PLAN),
        ("inv.yaml", INVENTORY),
        &options("web"),
    )
    .unwrap()
    .artifact;
    let waves: Vec<(&str, usize)> = artifact
        .waves
        .iter()
        .map(|w| (w.name.as_str(), w.hosts.len()))
        .collect();
    assert_eq!(waves, [("first", 1), ("rest", 3)]);
    assert_eq!(artifact.limit.as_deref(), Some("web"));
    let json: serde_json::Value =
        serde_json::from_str(&sluice_plan::to_file_text(&artifact).unwrap()).unwrap();
    assert_eq!(json["limit"], "web");
    // Without a limit the field is absent, so existing plans keep their bytes and hashes.
    let plain = compile_sources(("plan.yaml", PLAN), ("inv.yaml", INVENTORY), &[])
        .unwrap()
        .artifact;
    let json: serde_json::Value =
        serde_json::from_str(&sluice_plan::to_file_text(&plain).unwrap()).unwrap();
    assert!(json.get("limit").is_none(), "{json}");
}

#[test]
fn a_limit_that_keeps_no_targeted_host_is_an_error() {
    let plan = PLAN.replace("targets: [all]", "targets: [db]");
    let result = compile_sources_with(
        ("plan.yaml", &plan),
        ("inv.yaml", INVENTORY),
        &options("web-1,wbe-1"),
    );
    let Err(PlanError::Invalid(diags)) = result else {
        panic!("an empty limit was accepted")
    };
    let texts: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        texts,
        [
            "--limit pattern `wbe-1` matches no host of the inventory inv.yaml [limit_matches_nothing] (did you mean `web-1`?)",
            "--limit web-1,wbe-1 keeps none of the 2 targeted host(s); nothing would run (`sluice inventory list -i INVENTORY` shows the groups and hosts)",
        ]
    );
    assert!(!diags[0].is_error() && diags[1].is_error());
    let regex = compile_sources_with(
        ("plan.yaml", PLAN),
        ("inv.yaml", INVENTORY),
        &options("~web.*"),
    );
    let Err(PlanError::Invalid(diags)) = regex else {
        panic!("a regex limit was accepted")
    };
    assert!(
        diags[0].to_string().contains("regular expression"),
        "{}",
        diags[0]
    );
}

#[test]
fn targets_may_name_all() {
    let artifact = compile_sources(("plan.yaml", PLAN), ("inv.yaml", INVENTORY), &[])
        .unwrap()
        .artifact;
    assert_eq!(artifact.hosts.len(), 6);
}
