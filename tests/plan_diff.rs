//! `sluice plan diff`: hosts added, removed and moved, commands changed, budgets and policy
//! changed; exit 0 identical, 1 different, 2 bad input.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/playbooks.rs"]
mod playbooks;

use std::path::{Path, PathBuf};

use playbooks::sluice;

const INVENTORY: &str = "
hosts:
  a: { transport: local }
  b: { transport: local }
  c: { transport: local }
  d: { transport: local, vars: { rack: x } }
groups:
  app: { hosts: [a, b, c, d], vars: { rack: y } }
";

const PLAN: &str = r#"
name: patch
ticket: CHG-1
targets: [app]
vars: { version: "1.0" }
waves: [{ name: canary, size: 1 }, { name: rest, size: 100% }]
failure: { max_failed: 0, action: rollback }
health: { checks: [{ name: up, run: "test -f version" }] }
steps:
  - { id: current, run: "cat version", register: old }
  - { id: install, run: "echo {{vars.version}} > version", undo: "echo {{old}} > version" }
"#;

/// A scratch folder holding artifacts compiled from variants of the plan and inventory.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sluice-plan-diff-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Compiles `plan` against `inventory` and saves the artifact as `name.json`. The
    /// inventory is written under a name of its content's, given relative to the folder, so the
    /// artifacts name the same inventory when it is the same.
    fn artifact(&self, name: &str, plan: &str, inventory: &str) -> String {
        let inventory_name = if inventory == INVENTORY {
            "inventory.yaml".to_string()
        } else {
            format!("{name}.inventory.yaml")
        };
        std::fs::write(self.0.join(format!("{name}.yaml")), plan).unwrap();
        std::fs::write(self.0.join(&inventory_name), inventory).unwrap();
        let out = self.0.join(format!("{name}.json"));
        let status = sluice()
            .current_dir(&self.0)
            .args([
                "plan",
                &format!("{name}.yaml"),
                "-i",
                &inventory_name,
                "--out",
            ])
            .arg(&out)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
        s(&out)
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn diff(old: &str, new: &str, format: &str) -> (Option<i32>, String, String) {
    let out = sluice()
        .args(["plan", "diff", old, new, "--format", format])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(old: &str, new: &str) -> serde_json::Value {
    let (code, stdout, stderr) = diff(old, new, "json");
    assert_eq!(code, Some(1), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn identical_artifacts_exit_0() {
    let w = Scratch::new("same");
    let a = w.artifact("a", PLAN, INVENTORY);
    let b = w.artifact("b", PLAN, INVENTORY);
    let (code, stdout, _) = diff(&a, &b, "text");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("No differences"), "{stdout}");
    let (code, stdout, _) = diff(&a, &b, "json");
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["identical"], true);
}

#[test]
fn hosts_added_removed_and_moved() {
    let w = Scratch::new("hosts");
    let old = w.artifact("old", PLAN, INVENTORY);
    // `d` leaves, `e` joins, and a bigger canary moves `b` into it.
    let inventory = INVENTORY
        .replace(
            "  d: { transport: local, vars: { rack: x } }\n",
            "  e: { transport: local }\n",
        )
        .replace("[a, b, c, d]", "[a, b, c, e]");
    let plan = PLAN.replace("{ name: canary, size: 1 }", "{ name: canary, size: 2 }");
    let new = w.artifact("new", &plan, &inventory);
    let v = json(&old, &new);
    assert_eq!(
        v["hosts"]["added"],
        serde_json::json!([{ "host": "e", "wave": "rest" }])
    );
    assert_eq!(
        v["hosts"]["removed"],
        serde_json::json!([{ "host": "d", "wave": "rest" }])
    );
    assert_eq!(
        v["hosts"]["moved"],
        serde_json::json!([{ "host": "b", "from": "rest", "to": "canary" }])
    );
    let (_, text, _) = diff(&old, &new, "text");
    assert!(text.contains("added e (wave rest)"), "{text}");
    assert!(text.contains("removed d (was in wave rest)"), "{text}");
    assert!(text.contains("moved b: wave rest → wave canary"), "{text}");
    assert!(text.contains("hosts: 1 → 2"), "the canary's size: {text}");
}

#[test]
fn changed_commands_are_a_unified_diff() {
    let w = Scratch::new("commands");
    let old = w.artifact("old", PLAN, INVENTORY);
    let plan = PLAN
        .replace("version: \"1.0\"", "version: \"1.1\"")
        .replace("run: \"cat version\"", "run: \"cat version\", timeout: 30s");
    let new = w.artifact("new", &plan, INVENTORY);
    let v = json(&old, &new);
    let steps = v["steps"].as_array().unwrap();
    let install = steps.iter().find(|s| s["step"] == "install").unwrap();
    assert_eq!(install["commands"][0]["what"], "run");
    let unified = install["commands"][0]["unified_diff"].as_str().unwrap();
    assert!(
        unified.contains("-echo 1.0 > version\n+echo 1.1 > version"),
        "{unified}"
    );
    let current = steps.iter().find(|s| s["step"] == "current").unwrap();
    assert_eq!(
        current["fields"],
        serde_json::json!([{ "field": "timeout", "old": null, "new": "30s" }])
    );
    let (_, text, _) = diff(&old, &new, "text");
    insta::assert_snapshot!("plan-diff-commands-text", text);
    let (_, markdown, _) = diff(&old, &new, "markdown");
    insta::assert_snapshot!("plan-diff-commands-markdown", markdown);
}

#[test]
fn changed_policy_budgets_and_health() {
    let w = Scratch::new("policy");
    let old = w.artifact("old", PLAN, INVENTORY);
    let plan = PLAN
        .replace(
            "max_failed: 0, action: rollback",
            "max_failed: 1, action: halt",
        )
        .replace("test -f version", "test -s version");
    let new = w.artifact("new", &plan, INVENTORY);
    let v = json(&old, &new);
    assert_eq!(
        v["failure"],
        serde_json::json!([
            { "field": "max_failed", "old": "0 failed host(s) per wave", "new": "1 failed host(s) per wave" },
            { "field": "action", "old": "roll back the failed wave", "new": "halt (stop, roll nothing back)" }
        ])
    );
    let waves = v["waves"].as_array().unwrap();
    assert!(
        waves
            .iter()
            .all(|w| w["fields"][0]["field"] == "max_failed"),
        "{waves:?}"
    );
    let changed = &v["health"]["changed"][0];
    assert_eq!(changed["what"], "up");
    assert!(
        changed["unified_diff"]
            .as_str()
            .unwrap()
            .contains("+run test -s version"),
        "{changed}"
    );
}

#[test]
fn bad_input_exits_2() {
    let w = Scratch::new("bad");
    let good = w.artifact("good", PLAN, INVENTORY);
    let (code, _, stderr) = diff(&good, &s(&w.0.join("missing.json")), "text");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing.json"), "{stderr}");
    let edited = w.0.join("edited.json");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("cat version", "rm -rf /");
    std::fs::write(&edited, text).unwrap();
    let (code, _, stderr) = diff(&good, &s(&edited), "text");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("was modified after it was planned"),
        "{stderr}"
    );
}
