//! Each warning, as a specification: the plan that raises it, and the nearest plan that does not.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::Timestamp;
use sluice_plan::warning::{PlanWarning, artifact};
use sluice_plan::{Compiled, compile_sources};

const INVENTORY: &str = "
hosts:
  web-1: { address: 10.0.0.11, vars: { rack: a } }
  web-2: { address: 10.0.0.12 }
  web-3: { address: 10.0.0.13 }
groups:
  web: { hosts: [web-1, web-2, web-3], vars: { lb_pool: prod } }
";

/// A plan with none of the warnings: every step has an undo or registers, a health check, a
/// canary that stops the rollout.
const CLEAN: &str = r#"
name: clean
targets: [web]
vars: { version: "1.2" }
waves: [{ name: canary, size: 1 }, { name: rest, size: 100% }]
health: { checks: [{ name: up, run: "true" }] }
steps:
  - { id: current, run: "cat /v", register: old }
  - { id: install, run: "echo {{vars.version}} > /v", undo: "echo {{old}} > /v" }
"#;

fn compiled(plan: &str, vars: &[(&str, &str)]) -> Compiled {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match compile_sources(("plan.yaml", plan), ("inv.yaml", INVENTORY), &vars) {
        Ok(c) => c,
        Err(e) => panic!("{e}: {e:?}"),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Every warning of a plan judged at `now`: the compiler's, then the artifact's.
fn warnings_at(plan: &str, vars: &[(&str, &str)], now: &str) -> Vec<PlanWarning> {
    let c = compiled(plan, vars);
    let mut all: Vec<PlanWarning> = c
        .warnings
        .iter()
        .filter_map(|d| d.warning.as_deref().cloned())
        .collect();
    all.extend(artifact::check(&c.artifact, ts(now)));
    all
}

fn warnings(plan: &str) -> Vec<PlanWarning> {
    warnings_at(plan, &[], "2026-01-01T00:00:00Z")
}

#[test]
fn a_clean_plan_has_no_warning() {
    assert_eq!(warnings(CLEAN), []);
}

#[test]
fn a_window_that_ended_is_a_warning_only_after_its_end() {
    let plan = CLEAN.replace(
        "targets: [web]",
        "targets: [web]\nwindow: { start: 2026-03-01T22:00:00Z, end: 2026-03-02T02:00:00Z }",
    );
    assert_eq!(warnings_at(&plan, &[], "2026-03-01T23:00:00Z"), []);
    assert_eq!(
        warnings_at(&plan, &[], "2026-03-02T02:00:00Z"),
        [PlanWarning::WindowEnded {
            end: ts("2026-03-02T02:00:00Z")
        }]
    );
}

#[test]
fn a_window_shorter_than_the_estimate_is_a_warning() {
    // Three hosts one at a time, two steps of up to 10 minutes each, one health check of up to
    // 5 seconds: 3 x (20m + 5s) = 1h0m15s.
    let plan = r#"
name: slow
targets: [web]
window: { days: [sat], from: "22:00", to: "22:30", timezone: UTC }
concurrency: 1
health: { checks: [{ name: up, run: "true" }], timeout: 5s }
steps:
  - { id: current, run: "cat /v", register: old, timeout: 10m }
  - { id: install, run: "echo 2 > /v", undo: "echo {{old}} > /v", timeout: 10m }
"#;
    assert_eq!(
        warnings(plan),
        [PlanWarning::WindowTooShort {
            window_ms: 30 * 60_000,
            estimate_ms: 3 * (20 * 60_000 + 5_000),
        }]
    );
    // The same plan in a window of two hours fits.
    assert_eq!(warnings(&plan.replace("\"22:30\"", "\"00:00\"")), []);
}

#[test]
fn a_step_without_undo_is_a_warning_unless_it_only_reads() {
    let plan = CLEAN.replace(", undo: \"echo {{old}} > /v\"", "");
    assert_eq!(
        warnings(&plan),
        [PlanWarning::NoUndo {
            step: "install".into()
        }]
    );
}

#[test]
fn a_canary_that_tolerates_all_its_hosts_is_a_warning() {
    // The first of several waves tolerates no failure unless it says otherwise, whatever the
    // plan's budget: a plan-wide budget alone does not warn.
    let budget = format!("{CLEAN}failure: {{ max_failed: 1, action: rollback }}\n");
    assert_eq!(warnings(&budget), []);
    let plan = budget.replace(
        "{ name: canary, size: 1 }",
        "{ name: canary, size: 1, max_failed: 1 }",
    );
    assert_eq!(
        warnings(&plan),
        [PlanWarning::CanaryToleratesAll {
            wave: "canary".into(),
            hosts: 1,
            max_failed: 1
        }]
    );
    // A single wave is no canary.
    let one_wave = plan.replace(
        "waves: [{ name: canary, size: 1, max_failed: 1 }, { name: rest, size: 100% }]",
        "waves: [{ name: all, size: 100% }]",
    );
    assert_eq!(warnings(&one_wave), []);
}

#[test]
fn no_health_checks_is_a_warning() {
    let plan = CLEAN.replace("health: { checks: [{ name: up, run: \"true\" }] }\n", "");
    assert_eq!(warnings(&plan), [PlanWarning::NoHealthChecks]);
}

#[test]
fn a_var_naming_no_variable_is_a_warning_with_a_suggestion() {
    let found = warnings_at(CLEAN, &[("verison", "9.9")], "2026-01-01T00:00:00Z");
    assert_eq!(
        found,
        [PlanWarning::UnknownVar {
            name: "verison".into(),
            did_you_mean: Some("version".into())
        }]
    );
    assert_eq!(found[0].help().as_deref(), Some("did you mean `version`?"));
    // Variables of the plan, of the inventory and those a template uses are all known.
    for name in ["version", "rack", "lb_pool"] {
        assert_eq!(
            warnings_at(CLEAN, &[(name, "x")], "2026-01-01T00:00:00Z"),
            []
        );
    }
    let uses_extra = CLEAN.replace("cat /v", "cat {{vars.path}}");
    assert_eq!(
        warnings_at(&uses_extra, &[("path", "/v")], "2026-01-01T00:00:00Z"),
        []
    );
}

#[test]
fn an_unused_secret_is_a_warning() {
    let plan = CLEAN.replace("vars:", "secrets: { tok: { env: TOK } }\nvars:");
    assert_eq!(
        warnings(&plan),
        [PlanWarning::UnusedSecret {
            secret: "tok".into()
        }]
    );
}

#[test]
fn a_wave_without_hosts_is_a_warning() {
    let plan = CLEAN.replace(
        "{ name: rest, size: 100% }",
        "{ name: rest, size: 100% }, { name: late, size: 1 }",
    );
    assert_eq!(
        warnings(&plan),
        [PlanWarning::EmptyWave {
            wave: "late".into(),
            targeted: 3
        }]
    );
}

#[test]
fn codes_are_unique_and_listed() {
    let mut codes = PlanWarning::CODES.to_vec();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), PlanWarning::CODES.len());
    let samples = [
        PlanWarning::NoHealthChecks,
        PlanWarning::NoUndo { step: "s".into() },
        PlanWarning::WindowEnded {
            end: ts("2026-01-01T00:00:00Z"),
        },
    ];
    for w in samples {
        assert!(PlanWarning::CODES.contains(&w.code()));
        // The JSON carries the code as `code`.
        assert_eq!(serde_json::to_value(&w).unwrap()["code"], w.code());
    }
}

/// Every `sluice_*` hook variable of `host_hooks::HOOKS` that a host sets is named, with the
/// hosts that set it; the clean inventory sets none.
#[test]
fn test_hook_variables_are_flagged_with_their_hosts() {
    use sluice_plan::host_hooks::{HOOKS, hook_vars};
    assert!(warnings(CLEAN).is_empty());
    let inventory = "
hosts:
  web-1: { vars: { sluice_boot_id_file: /tmp/boot, sluice_host_lease_dir: /tmp/lease } }
  web-2: { vars: { sluice_host_lease_ttl: 6 } }
  web-3: { vars: { sluice_boot_id_file: /tmp/boot3 } }
groups:
  web: { hosts: [web-1, web-2, web-3] }
";
    let c = compile_sources(("plan.yaml", CLEAN), ("inv.yaml", inventory), &[]).unwrap();
    let found = artifact::check(&c.artifact, ts("2026-01-01T00:00:00Z"));
    let hosts = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        [
            PlanWarning::TestHook {
                variable: "sluice_boot_id_file".into(),
                hosts: hosts(&["web-1", "web-3"]),
            },
            PlanWarning::TestHook {
                variable: "sluice_host_lease_dir".into(),
                hosts: hosts(&["web-1"]),
            },
            PlanWarning::TestHook {
                variable: "sluice_host_lease_ttl".into(),
                hosts: hosts(&["web-2"]),
            },
        ]
    );
    assert_eq!(
        found[0].to_string(),
        "host variable `sluice_boot_id_file` is set on 2 host(s) (web-1, web-3): reboot steps \
         read the boot id from this file instead of the kernel's /proc/sys/kernel/random/boot_id"
    );
    assert_eq!(found[0].code(), "test_hook");
    let json = serde_json::to_value(&found[2]).unwrap();
    assert_eq!(json["code"], "test_hook");
    assert_eq!(json["hosts"], serde_json::json!(["web-2"]));
    // Every hook is a `sluice_` variable, listed once.
    let names: Vec<&str> = hook_vars().collect();
    assert_eq!(names.len(), HOOKS.len());
    assert!(names.iter().all(|n| n.starts_with("sluice_")));
}

/// A long list of hosts is cut in the message; the JSON keeps every host.
#[test]
fn a_test_hook_warning_names_five_hosts_then_counts_the_rest() {
    let hosts: Vec<String> = (1..=7).map(|i| format!("h{i}")).collect();
    let warning = PlanWarning::TestHook {
        variable: "sluice_host_lease_dir".into(),
        hosts,
    };
    assert!(
        warning
            .to_string()
            .contains("on 7 host(s) (h1, h2, h3, h4, h5, and 2 more)"),
        "{warning}"
    );
}
