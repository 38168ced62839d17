//! Promotion evidence end to end on real sshd hosts: a plan with `promotion: { after: staging,
//! within: … }` applies to a prod inventory only after the same plan file succeeded on a staging
//! inventory (other hosts), found in the same store or in another controller's verified
//! `sluice audit export` (`--evidence`); and what the review says about it.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sluice_testfleet::Fleet;

/// host1 is staging, host2 is prod.
const STAGING_HOST: usize = 1;
const PROD_HOST: usize = 2;

/// The change: one logged step that fails on a host holding a `broken` file.
fn write_plan(fleet: &Fleet, within: &str) -> PathBuf {
    let yaml = format!(
        r#"name: promoted-patch
ticket: CHG-12
targets: [fleet]
promotion: {{ after: staging, within: {within} }}
steps:
  - {{ id: patch, run: 'test ! -e "$FLEET_ROOT/broken" && echo patched >> "$FLEET_ROOT/log"' }}
"#
    );
    let path = fleet.dir().join("plan.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// An inventory of environment `environment` holding only fleet host `i` (as group `fleet`).
fn write_inventory(fleet: &Fleet, environment: &str, i: usize) -> PathBuf {
    let yaml = format!(
        "environment: {environment}\ndefaults:\n  user: '{user}'\n  identity_file: '{key}'\n  \
         known_hosts: '{known}'\n  host_key_checking: strict\nhosts:\n  host{i}: {{ address: \
         127.0.0.1, port: {port} }}\ngroups:\n  fleet: {{ hosts: [host{i}] }}\n",
        user = fleet.user(),
        key = fleet.identity_file().display(),
        known = fleet.known_hosts().display(),
        port = fleet.port(i),
    );
    let path = fleet.dir().join(format!("{environment}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `sluice ARGS --state-dir STATE`, with no terminal.
fn sluice(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--color", "never"])
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn apply(state: &Path, plan: &Path, inventory: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "apply",
        plan.to_str().unwrap(),
        "-i",
        inventory.to_str().unwrap(),
        "--yes",
    ];
    args.extend_from_slice(extra);
    sluice(state, &args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn patched(fleet: &Fleet, i: usize) -> bool {
    std::fs::read_to_string(fleet.root(i).join("log"))
        .unwrap_or_default()
        .contains("patched")
}

/// The run ids `sluice runs --json` lists.
fn runs(state: &Path) -> Vec<serde_json::Value> {
    let out = sluice(state, &["runs", "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `sluice audit export` of `state` written to `file`.
fn export(state: &Path, file: &Path) {
    let out = sluice(state, &["audit", "export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(file, &out.stdout).unwrap();
}

/// A staging run of `plan` in `state` that succeeded.
fn succeed_on_staging(fleet: &Fleet, state: &Path, plan: &Path) {
    let staging = write_inventory(fleet, "staging", STAGING_HOST);
    let out = apply(state, plan, &staging, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(patched(fleet, STAGING_HOST));
}

/// A change that succeeded on staging on one controller, whose store was exported for another
/// controller (the prod one, with a store of its own) to apply it to prod.
struct ExportedStaging {
    fleet: Fleet,
    prod_state: PathBuf,
    plan: PathBuf,
    prod: PathBuf,
    export: PathBuf,
    staging_run: String,
}

impl ExportedStaging {
    fn start() -> ExportedStaging {
        let fleet = Fleet::start(2).unwrap();
        let staging_state = fleet.dir().join("staging-controller");
        let plan = write_plan(&fleet, "7d");
        succeed_on_staging(&fleet, &staging_state, &plan);
        let staging_run = runs(&staging_state)[0]["run"].as_str().unwrap().to_string();
        let export_file = fleet.dir().join("staging-export.jsonl");
        export(&staging_state, &export_file);
        ExportedStaging {
            prod_state: fleet.dir().join("prod-controller"),
            prod: write_inventory(&fleet, "prod", PROD_HOST),
            fleet,
            plan,
            export: export_file,
            staging_run,
        }
    }

    /// `sluice apply` to prod on the prod controller, with the export as evidence.
    fn apply_with_evidence(&self) -> Output {
        let evidence = ["--evidence", self.export.to_str().unwrap()];
        apply(&self.prod_state, &self.plan, &self.prod, &evidence)
    }
}

/// Asserts a refused prod apply: exit 2, the rule named, nothing ran on the prod host.
fn assert_refused(fleet: &Fleet, out: &Output, why: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for part in ["promotion", "`staging`", "`prod`", why] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert!(!patched(fleet, PROD_HOST), "the prod host ran the change");
}

#[test]
fn prod_without_evidence_is_refused_and_nothing_runs() {
    let fleet = Fleet::start(2).unwrap();
    let state = fleet.dir().join("state");
    let plan = write_plan(&fleet, "7d");
    let prod = write_inventory(&fleet, "prod", PROD_HOST);
    let out = apply(&state, &plan, &prod, &[]);
    assert_refused(
        &fleet,
        &out,
        "no successful run of this change on staging was found in the store",
    );
    let err = stderr(&out);
    assert!(err.contains("within 7d"), "{err}");
    assert!(err.contains("--evidence"), "{err}");
    assert!(runs(&state).is_empty(), "a refused apply recorded a run");
}

#[test]
fn a_staging_run_of_the_same_plan_in_the_same_store_lets_prod_apply() {
    let fleet = Fleet::start(2).unwrap();
    let state = fleet.dir().join("state");
    let plan = write_plan(&fleet, "7d");
    succeed_on_staging(&fleet, &state, &plan);
    let staging_run = runs(&state)[0]["run"].as_str().unwrap().to_string();

    let prod = write_inventory(&fleet, "prod", PROD_HOST);
    let out = apply(&state, &plan, &prod, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("evidence: run {staging_run} succeeded on staging")),
        "{err}"
    );
    assert!(patched(&fleet, PROD_HOST));
    // The prod run is itself on record with its environment and change.
    let export_file = fleet.dir().join("export.jsonl");
    export(&state, &export_file);
    let started: Vec<serde_json::Value> = std::fs::read_to_string(&export_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "run_started")
        .collect();
    let envs: Vec<&str> = started
        .iter()
        .map(|r| r["environment"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["staging", "prod"]);
    assert_eq!(started[0]["change_hash"], started[1]["change_hash"]);
}

#[test]
fn an_export_of_another_controllers_store_is_evidence() {
    let staged = ExportedStaging::start();
    let (fleet, prod_state, plan, prod) = (
        &staged.fleet,
        &staged.prod_state,
        &staged.plan,
        &staged.prod,
    );
    let out = apply(prod_state, plan, prod, &[]);
    assert_refused(fleet, &out, "no successful run of this change on staging");

    let out = staged.apply_with_evidence();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("succeeded on staging") && err.contains("staging-export.jsonl"),
        "{err}"
    );
    assert!(patched(fleet, PROD_HOST));

    // The prod controller's store now holds a successful prod run of the change: it is no
    // evidence, only a run on staging is.
    std::fs::remove_file(fleet.root(PROD_HOST).join("log")).unwrap();
    let out = apply(prod_state, plan, prod, &[]);
    assert_refused(
        fleet,
        &out,
        "no successful run of this change on staging was found in the store.",
    );
}

#[test]
fn a_staging_run_of_an_edited_plan_file_is_another_change() {
    let fleet = Fleet::start(2).unwrap();
    let state = fleet.dir().join("state");
    let plan = write_plan(&fleet, "7d");
    succeed_on_staging(&fleet, &state, &plan);
    // A comment changes nothing the hosts run, but the reviewed change is another file.
    let mut text = std::fs::read_to_string(&plan).unwrap();
    text.push_str("# edited after staging\n");
    std::fs::write(&plan, text).unwrap();

    let prod = write_inventory(&fleet, "prod", PROD_HOST);
    let out = apply(&state, &plan, &prod, &[]);
    assert_refused(
        &fleet,
        &out,
        "1 successful run(s) on staging were of other changes (another version of the plan file)",
    );
}

#[test]
fn a_staging_run_older_than_within_is_refused() {
    let fleet = Fleet::start(2).unwrap();
    let state = fleet.dir().join("state");
    let plan = write_plan(&fleet, "1s");
    succeed_on_staging(&fleet, &state, &plan);
    // Real time, not a test clock: the check reads the run's recorded end against the clock.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let prod = write_inventory(&fleet, "prod", PROD_HOST);
    let out = apply(&state, &plan, &prod, &[]);
    assert_refused(&fleet, &out, "too old");
    assert!(stderr(&out).contains("within 1s"), "{}", stderr(&out));
}

#[test]
fn a_tampered_export_is_refused_naming_the_broken_chain() {
    let staged = ExportedStaging::start();
    let (fleet, file) = (&staged.fleet, &staged.export);

    // One byte of the run_started record (seq 1): the staging host's name.
    let text = std::fs::read_to_string(file).unwrap();
    let first_line_end = text.find('\n').unwrap();
    let at = text[..first_line_end].find("host1").unwrap() + "host".len();
    let mut bytes = text.into_bytes();
    bytes[at] = b'9';
    std::fs::write(file, &bytes).unwrap();
    let out = staged.apply_with_evidence();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the hash chain does not verify") && err.contains("record 1"),
        "{err}"
    );
    assert!(!patched(fleet, PROD_HOST));

    // A byte that is not even UTF-8 is a broken chain too, not an unreadable file.
    bytes[at] = 0xff;
    std::fs::write(file, &bytes).unwrap();
    let out = staged.apply_with_evidence();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the hash chain does not verify"), "{err}");
    assert!(!patched(fleet, PROD_HOST));
}

#[test]
fn a_failed_staging_run_does_not_count_in_the_store_or_an_export() {
    let fleet = Fleet::start(2).unwrap();
    let staging_state = fleet.dir().join("staging-controller");
    let prod_state = fleet.dir().join("prod-controller");
    let plan = write_plan(&fleet, "7d");
    std::fs::write(fleet.root(STAGING_HOST).join("broken"), "").unwrap();
    let staging = write_inventory(&fleet, "staging", STAGING_HOST);
    let out = apply(&staging_state, &plan, &staging, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let prod = write_inventory(&fleet, "prod", PROD_HOST);
    let out = apply(&staging_state, &plan, &prod, &[]);
    assert_refused(
        &fleet,
        &out,
        "on staging (the store) ended rolled_back: only a succeeded run counts",
    );

    let file = fleet.dir().join("export.jsonl");
    export(&staging_state, &file);
    let out = apply(
        &prod_state,
        &plan,
        &prod,
        &["--evidence", file.to_str().unwrap()],
    );
    assert_refused(
        &fleet,
        &out,
        "ended rolled_back: only a succeeded run counts",
    );
    assert!(
        stderr(&out).contains("export.jsonl) ended rolled_back"),
        "{}",
        stderr(&out)
    );
}

/// `sluice plan` of the prod inventory in `state`, as text and as JSON.
fn review(state: &Path, plan: &Path, inventory: &Path) -> (String, serde_json::Value) {
    review_with(state, plan, inventory, &[])
}

fn review_with(
    state: &Path,
    plan: &Path,
    inventory: &Path,
    extra: &[&str],
) -> (String, serde_json::Value) {
    let mut args = vec![
        "plan",
        plan.to_str().unwrap(),
        "-i",
        inventory.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let text = sluice(state, &args);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let json = sluice(state, &json_args);
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    (
        String::from_utf8(text.stdout).unwrap(),
        serde_json::from_slice(&json.stdout).unwrap(),
    )
}

#[test]
fn the_review_shows_the_environment_and_the_evidence_found_or_not() {
    let fleet = Fleet::start(2).unwrap();
    let state = fleet.dir().join("state");
    let plan = write_plan(&fleet, "7d");
    let prod = write_inventory(&fleet, "prod", PROD_HOST);

    let (text, json) = review(&state, &plan, &prod);
    assert!(text.contains("(environment prod)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("Promotion"))
        .unwrap_or_else(|| panic!("no Promotion line in:\n{text}"));
    assert!(
        line.contains("on environment staging within 7d") && line.contains("none found"),
        "{line}"
    );
    let summary = &json["summary"];
    assert_eq!(summary["environment"], "prod");
    assert_eq!(summary["promotion"]["after"], "staging");
    assert_eq!(summary["promotion"]["within_ms"], 7 * 24 * 3600 * 1000);
    assert_eq!(
        summary["promotion"]["change_hash"].as_str().unwrap().len(),
        64
    );
    assert!(
        summary["promotion"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with("none found"),
        "{summary}"
    );
    // No playbook has `promotion:`, so the review JSON test does not see these keys: check here.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/review-json.md"
    ))
    .unwrap();
    for key in summary["promotion"].as_object().unwrap().keys() {
        assert!(
            doc.contains(&format!("`{key}`")),
            "summary.promotion.{key} is not in docs/review-json.md"
        );
    }

    succeed_on_staging(&fleet, &state, &plan);
    let staging_run = runs(&state)[0]["run"].as_str().unwrap().to_string();
    let (text, json) = review(&state, &plan, &prod);
    let found = format!("found: run {staging_run} succeeded on staging");
    assert!(text.contains(&found), "{text}");
    assert!(
        json["summary"]["promotion"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with(&found),
        "{json}"
    );

    // On staging itself no evidence is asked for, and the review says so.
    let staging = write_inventory(&fleet, "staging", STAGING_HOST);
    let (text, json) = review(&state, &plan, &staging);
    assert!(text.contains("(environment staging)"), "{text}");
    assert!(
        json["summary"]["promotion"]["evidence"]
            .as_str()
            .unwrap()
            .starts_with("not needed here"),
        "{json}"
    );
}

#[test]
fn the_review_shows_evidence_from_an_export_and_refuses_a_tampered_one() {
    let staged = ExportedStaging::start();
    let (prod_state, plan, prod, file) = (
        &staged.prod_state,
        &staged.plan,
        &staged.prod,
        &staged.export,
    );
    let staging_run = &staged.staging_run;

    let evidence = ["--evidence", file.to_str().unwrap()];
    let (text, json) = review_with(prod_state, plan, prod, &evidence);
    let found = format!("found: run {staging_run} succeeded on staging");
    let line = text.lines().find(|l| l.starts_with("Promotion")).unwrap();
    assert!(
        line.contains(&found) && line.contains("staging-export.jsonl"),
        "{line}"
    );
    let sentence = json["summary"]["promotion"]["evidence"].as_str().unwrap();
    assert!(sentence.starts_with(&found), "{sentence}");
    // The prod controller's store holds nothing: without the export, none is found.
    let (text, _) = review(prod_state, plan, prod);
    assert!(text.contains("none found"), "{text}");

    // An export that does not verify is refused, as `apply` refuses it, not shown as evidence.
    let tampered = std::fs::read_to_string(file)
        .unwrap()
        .replacen("\"host1\"", "\"host9\"", 1);
    std::fs::write(file, tampered).unwrap();
    let mut args = vec!["plan", plan.to_str().unwrap(), "-i", prod.to_str().unwrap()];
    args.extend_from_slice(&evidence);
    let out = sluice(prod_state, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the hash chain does not verify"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "a review was written from a tampered export"
    );
}
