//! The plan hash: same inputs give the same hash byte for byte; YAML layout and key order do
//! not matter; any meaningful change gives a different hash.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_plan::compile_sources;

const INVENTORY: &str = "
hosts:
  web-1: { address: 10.0.0.11 }
  web-2: { address: 10.0.0.12, vars: { weight: 2 } }
groups:
  web: { hosts: [web-1, web-2], vars: { tier: web } }
";

const PLAN: &str = r#"
name: demo
ticket: CHG-1
targets: [web]
vars: { version: "1.2", pkg: openssl }
waves: [{ name: canary, size: 1 }, { name: rest, size: 100% }]
steps:
  - { id: current, run: "dpkg-query -W {{vars.pkg}}", register: old }
  - { id: install, run: "apt-get install -y {{vars.pkg}}={{vars.version}}", undo: "apt-get install -y {{vars.pkg}}={{old}}" }
"#;

/// The same plan with keys in another order, other quoting, block style and comments.
const PLAN_REORDERED: &str = r#"
# comments do not count
steps:
  - id: current
    register: old
    run: 'dpkg-query -W {{vars.pkg}}'
  - undo: "apt-get install -y {{vars.pkg}}={{old}}"
    id: install
    run: "apt-get install -y {{vars.pkg}}={{vars.version}}"
waves:
  - size: 1
    name: canary
  - { size: 100%, name: rest }
vars:
  pkg: openssl
  version: "1.2"
targets:
  - web
ticket: CHG-1
name: demo
"#;

fn hash(plan: &str, inventory: &str) -> String {
    compile_sources(("plan.yaml", plan), ("inv.yaml", inventory), &[])
        .unwrap()
        .artifact
        .plan_hash
}

#[test]
fn same_inputs_same_hash() {
    let h = hash(PLAN, INVENTORY);
    assert_eq!(h.len(), 64);
    assert_eq!(h, hash(PLAN, INVENTORY));
    let a = compile_sources(("plan.yaml", PLAN), ("inv.yaml", INVENTORY), &[])
        .unwrap()
        .artifact;
    let b = compile_sources(("plan.yaml", PLAN), ("inv.yaml", INVENTORY), &[])
        .unwrap()
        .artifact;
    assert_eq!(
        sluice_plan::to_file_text(&a).unwrap(),
        sluice_plan::to_file_text(&b).unwrap()
    );
    assert!(a.hash_is_valid());
}

#[test]
fn layout_and_key_order_do_not_change_the_hash() {
    assert_eq!(hash(PLAN, INVENTORY), hash(PLAN_REORDERED, INVENTORY));
    let inventory_reordered = "
groups:
  web: { vars: { tier: web }, hosts: [web-1, web-2] }
hosts:
  web-1: { address: 10.0.0.11 }
  web-2: { vars: { weight: 2 }, address: 10.0.0.12 }
";
    assert_eq!(hash(PLAN, INVENTORY), hash(PLAN, inventory_reordered));
}

#[test]
fn meaningful_changes_change_the_hash() {
    let base = hash(PLAN, INVENTORY);
    let changes = [
        PLAN.replace(r#"version: "1.2""#, r#"version: "1.3""#),
        PLAN.replace("CHG-1", "CHG-2"),
        PLAN.replace("size: 1 }", "size: 2 }"),
        PLAN.replace("register: old }", "register: old, retries: 1 }"),
    ];
    for changed in &changes {
        assert_ne!(hash(changed, INVENTORY), base, "{changed}");
    }
    assert_ne!(
        hash(PLAN, &INVENTORY.replace("10.0.0.12", "10.0.0.13")),
        base
    );
    // Host order in the inventory is wave order, so it is meaningful.
    let swapped = INVENTORY
        .replace("  web-1: { address: 10.0.0.11 }\n", "")
        .replace("groups:", "  web-1: { address: 10.0.0.11 }\ngroups:");
    assert_ne!(hash(PLAN, &swapped), base);
    let with_var = compile_sources(
        ("plan.yaml", PLAN),
        ("inv.yaml", INVENTORY),
        &[("version".into(), "9".into())],
    )
    .unwrap();
    assert_ne!(with_var.artifact.plan_hash, base);
}

/// The inventory's file name is a label for the review: the same hosts from a file of another
/// name (or the same file typed another way) are the same plan, and an edited label is not a
/// tampered plan.
#[test]
fn the_inventory_path_is_shown_but_not_hashed() {
    let compiled = |inventory_name: &str| {
        compile_sources(("plan.yaml", PLAN), (inventory_name, INVENTORY), &[])
            .unwrap()
            .artifact
    };
    let a = compiled("inventory/prod.yaml");
    let b = compiled("./inventory/prod.yaml");
    assert_eq!(a.plan_hash, b.plan_hash);
    assert_eq!(
        a.planned_for.as_ref().map(|p| p.inventory.as_str()),
        Some("inventory/prod.yaml")
    );
    let text = sluice_plan::to_file_text(&a).unwrap();
    assert!(
        text.contains("\"inventory\": \"inventory/prod.yaml\""),
        "{text}"
    );
    let loaded = sluice_plan::parse_artifact("a.json", text.as_bytes()).unwrap();
    assert_eq!(loaded, a);
    assert!(loaded.hash_is_valid());
}

/// The hash of a plan is part of what a change board approved: a new sluice must give the same
/// hash for the same inputs (these values were computed before the shell-context and URL checks
/// were added, and must not change without a new artifact format).
#[test]
fn hashes_are_stable_across_versions() {
    assert_eq!(
        hash(PLAN, INVENTORY),
        "8d47fd2a3c4d4b06f41dc4242104043b320b2fb3514340e6902f9860854f51b2"
    );
    let with_var = compile_sources(
        ("plan.yaml", PLAN),
        ("inv.yaml", INVENTORY),
        &[("version".into(), "9".into())],
    )
    .unwrap();
    assert_eq!(
        with_var.artifact.plan_hash,
        "c7db5557097b1ddef58b80619b1a1016d6121f3b28276a9cc8b62d0322b88801"
    );
}
