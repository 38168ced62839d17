//! Change approval end to end on the sshd fleet: an inventory's policy asks for signed
//! approvals by distinct principals, and `sluice apply` counts only the ones that verify; gates
//! open only on a signature; `ssh-keygen` signs and verifies what sluice does; overrides need a
//! reason; `sluice exec` is leased and recorded.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sluice_testfleet::Fleet;

/// A fleet, its inventory with a policy, approvers' keys and a state directory.
struct World {
    fleet: Fleet,
    dir: tempfile::TempDir,
    inventory: PathBuf,
}

const APPROVERS: [&str; 4] = ["alice", "bob", "carol", "ops"];

impl World {
    /// `policy` is the YAML under `policy:`; `allowed_signers: approvers` is the file written
    /// here, listing alice, bob, carol and ops.
    fn new(hosts: usize, policy: &str) -> World {
        let fleet = Fleet::start(hosts).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let inventory = fleet.write_inventory().unwrap();
        let mut signers = String::new();
        for who in APPROVERS {
            let key = keygen(dir.path(), who);
            signers.push_str(&format!("{who}@example.com {}", public(&key)));
        }
        // The inventory names the file relative to itself.
        let beside = inventory.parent().unwrap().join("approvers");
        std::fs::write(&beside, signers).unwrap();
        let mut text = std::fs::read_to_string(&inventory).unwrap();
        text.push_str("policy:\n");
        for line in policy.lines() {
            text.push_str(&format!("  {line}\n"));
        }
        std::fs::write(&inventory, text).unwrap();
        World {
            fleet,
            dir,
            inventory,
        }
    }

    fn key(&self, who: &str) -> PathBuf {
        self.dir.path().join(who)
    }

    fn signers(&self) -> PathBuf {
        self.inventory.parent().unwrap().join("approvers")
    }

    fn sluice(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.env("SLUICE_STATE_DIR", self.dir.path().join("state"))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sluice().args(args).output().unwrap()
    }

    /// Writes a plan (steps appended to the log of each host, one wave per host, the second
    /// wave gated when `gated`) and saves its artifact; returns the artifact's path.
    fn plan(&self, name: &str, step: &str, gated: bool) -> PathBuf {
        let yaml = format!(
            "name: {name}\ntargets: [fleet]\nwaves:\n  - {{ name: first, size: 1 }}\n  - {{ name: rest, size: 100%{} }}\nsteps:\n  - {{ id: work, run: '{step}' }}\n",
            if gated { ", approval: true" } else { "" }
        );
        let plan = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&plan, yaml).unwrap();
        let artifact = self.dir.path().join(format!("{name}.json"));
        let out = self.run(&[
            "plan",
            plan.to_str().unwrap(),
            "-i",
            self.inventory.to_str().unwrap(),
            "--out",
            artifact.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        artifact
    }

    fn approve(&self, artifact: &Path, who: &str) -> Output {
        self.run(&[
            "approve-plan",
            artifact.to_str().unwrap(),
            "--key",
            self.key(who).to_str().unwrap(),
        ])
    }

    fn apply(&self, artifact: &Path, extra: &[&str]) -> Output {
        self.apply_cmd(artifact, extra).output().unwrap()
    }

    fn apply_cmd(&self, artifact: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.sluice();
        cmd.args(["apply", "--yes", "--plan", artifact.to_str().unwrap()])
            .args(extra);
        cmd
    }

    fn records(&self, run: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["show", run, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn last_run(&self) -> String {
        let out = self.run(&["runs", "--json"]);
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .unwrap();
        first["run"].as_str().unwrap().to_string()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen is needed (apt-get install openssh-client): {e}"));
    assert!(out.status.success());
    path
}

fn public(key: &Path) -> String {
    std::fs::read_to_string(key.with_extension("pub")).unwrap()
}

const QUORUM: &str = "approvals:\n  required: 2\n  allowed_signers: approvers\n  distinct_from_operator: true\n  max_age: 7d";

#[test]
fn two_of_three_approvals_run_one_is_refused_and_the_operators_own_does_not_count() {
    let w = World::new(2, QUORUM);
    let plan = w.plan("quorum", "echo done >> \"$FLEET_ROOT/log\"", false);
    let ops = w.key("ops");
    let ops = ops.to_str().unwrap();

    // Who the operator is must be known when approvers must be distinct from them.
    let out = w.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("identify yourself with --key"),
        "{}",
        text(&out)
    );

    assert!(w.approve(&plan, "alice").status.success());
    assert!(w.approve(&plan, "ops").status.success());
    let stranger = keygen(w.dir.path(), "stranger");
    let out = w.run(&[
        "approve-plan",
        plan.to_str().unwrap(),
        "--key",
        stranger.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = w.apply(&plan, &["--key", ops]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    for expected in [
        "1 valid approval(s) by distinct principals of the 2",
        "counted: record",
        "alice@example.com",
        "signed by the operator (ops@example.com)",
        "unknown signer",
    ] {
        assert!(said.contains(expected), "{expected:?} not in:\n{said}");
    }
    assert!(std::fs::read_to_string(w.fleet.root(1).join("log")).is_err());

    assert!(w.approve(&plan, "bob").status.success());
    let out = w.apply(&plan, &["--key", ops]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let records = w.records(&w.last_run());
    let checked = records
        .iter()
        .find(|r| r["kind"] == "policy_checked")
        .expect("the policy check is recorded");
    let by: Vec<&str> = checked["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["alice@example.com", "bob@example.com"]);
    assert_eq!(checked["operator"], "ops@example.com");
    let operator = records
        .iter()
        .find(|r| r["kind"] == "approval" && r["scope"] == "run_start")
        .unwrap();
    assert_eq!(operator["by"], "ops@example.com");
    assert!(
        operator["signature"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN SSH SIGNATURE-----")
    );
    // Every recorded signature is verified again from the trail: alice's, bob's and the
    // operator's two verify; the stranger's, recorded but never counted, does not.
    let verify = w.run(&[
        "audit",
        "verify",
        "--allowed-signers",
        w.signers().to_str().unwrap(),
    ]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    let said = text(&verify);
    assert!(
        said.contains("4 signed approval(s) verified, 1 failed") && said.contains("unknown signer"),
        "{said}"
    );
}

#[test]
fn signatures_that_do_not_count_are_refused_with_their_reason() {
    let w = World::new(
        1,
        "approvals:\n  required: 1\n  allowed_signers: approvers\n  max_age: 7d",
    );
    let plan = w.plan("reasons", "true", false);
    let other = w.plan("other", "echo other", false);
    let signers = w.signers();
    let sign_elsewhere = |artifact: &Path, namespace: &str, name: &str| -> PathBuf {
        let stmt = w.dir.path().join(name);
        let out = w.run(&["approve-plan", artifact.to_str().unwrap(), "--statement"]);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(&stmt, &out.stdout).unwrap();
        let signed = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(w.key("alice"))
            .arg(&stmt)
            .output()
            .unwrap();
        assert!(signed.status.success(), "{}", text(&signed));
        stmt
    };
    let record_signed = |stmt: &Path| {
        w.run(&[
            "approve-plan",
            plan.to_str().unwrap(),
            "--signed",
            stmt.to_str().unwrap(),
            "--allowed-signers",
            signers.to_str().unwrap(),
        ])
    };
    // Wrong namespace.
    let out = record_signed(&sign_elsewhere(&plan, "git", "ns"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("namespace `git`"), "{}", text(&out));
    // Another plan's hash.
    let out = record_signed(&sign_elsewhere(&other, "sluice-approval", "hash"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("it approves plan"), "{}", text(&out));
    // A corrupted signature.
    let stmt = sign_elsewhere(&plan, "sluice-approval", "corrupt");
    let sig = stmt.with_file_name("corrupt.sig");
    let mut pem = std::fs::read_to_string(&sig).unwrap();
    let at = pem.find('\n').unwrap() + 20;
    let flipped = if &pem[at..=at] == "A" { "B" } else { "A" };
    pem.replace_range(at..=at, flipped);
    std::fs::write(&sig, pem).unwrap();
    let out = record_signed(&stmt);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("bad signature") || text(&out).contains("not an SSH signature"),
        "{}",
        text(&out)
    );
    // Expired by the time the plan runs.
    let out = w.run(&[
        "approve-plan",
        plan.to_str().unwrap(),
        "--key",
        w.key("alice").to_str().unwrap(),
        "--valid-for",
        "1s",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(1500));
    let out = w.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("expired at"), "{}", text(&out));
    // An unsigned approval does not count under the policy either.
    assert!(
        w.run(&["approve-plan", plan.to_str().unwrap(), "--by", "alice"])
            .status
            .success()
    );
    let out = w.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not signed"), "{}", text(&out));
    // An empty name is no approval at all.
    let out = w.run(&["approve-plan", plan.to_str().unwrap(), "--by", ""]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn an_artifact_edited_and_rehashed_is_refused_under_the_policy() {
    let w = World::new(1, "approvals:\n  required: 1\n  allowed_signers: approvers");
    let plan = w.plan("edited", "echo reviewed >> \"$FLEET_ROOT/log\"", false);
    assert!(w.approve(&plan, "alice").status.success());
    let mut artifact = sluice_plan::load_artifact(plan.to_str().unwrap()).unwrap();
    let text_before = serde_json::to_string(&artifact).unwrap();
    let edited = text_before.replace("echo reviewed", "echo EVIL");
    artifact = serde_json::from_str(&edited).unwrap();
    artifact.seal().unwrap();
    let path = w.dir.path().join("edited-rehashed.json");
    std::fs::write(&path, sluice_plan::to_file_text(&artifact).unwrap()).unwrap();
    let out = w.apply(&path, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("0 valid approval(s)"), "{}", text(&out));
    assert!(std::fs::read_to_string(w.fleet.root(1).join("log")).is_err());
    // The reviewed one runs.
    let out = w.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Waits until `run` waits at a gate.
fn wait_for_gate(w: &World, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended before its gate: {status}");
        }
        let out = w.run(&["runs"]);
        if let Some(line) = text(&out)
            .lines()
            .find(|l| l.contains("waits for approval"))
        {
            return line.split_whitespace().nth(1).unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no gate waited");
}

#[test]
fn a_signed_gate_opens_on_a_valid_signature_only() {
    let policy = format!("{QUORUM}\ngates: signed").replace("required: 2", "required: 1");
    let w = World::new(2, &policy);
    let plan = w.plan("gated", "echo done >> \"$FLEET_ROOT/log\"", true);
    assert!(w.approve(&plan, "alice").status.success());
    let mut child = w
        .apply_cmd(&plan, &["--key", w.key("ops").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = wait_for_gate(&w, &mut child);
    // A wave without a gate cannot be approved; nor can the operator open it.
    let out = w.run(&["approve", &run, "--wave", "first", "--by", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no approval gate"), "{}", text(&out));
    for (how, who) in [("--by", "mallory"), ("--key", "ops")] {
        let arg = if how == "--key" {
            w.key(who).to_str().unwrap().to_string()
        } else {
            who.to_string()
        };
        let out = w.run(&["approve", &run, "--wave", "rest", how, &arg]);
        assert!(out.status.success(), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            child.try_wait().unwrap().is_none() && !w.fleet.root(2).join("log").exists(),
            "{how} {who} opened the gate"
        );
    }
    let out = w.run(&[
        "approve",
        &run,
        "--wave",
        "rest",
        "--key",
        w.key("bob").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(w.fleet.root(2).join("log").exists());
    assert!(text(&out).contains("does not open it"), "{}", text(&out));
    // The gate is passed: answering it again is refused, and so is a finished run's.
    let out = w.run(&["approve", &run, "--wave", "rest", "--by", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("finished"), "{}", text(&out));
}

#[test]
fn ssh_keygen_signs_what_sluice_records_and_verifies_what_sluice_signs() {
    let w = World::new(1, "approvals:\n  required: 1\n  allowed_signers: approvers");
    let plan = w.plan("interop", "true", false);
    let stmt = w.dir.path().join("statement");
    let out = w.run(&["approve-plan", plan.to_str().unwrap(), "--statement"]);
    std::fs::write(&stmt, &out.stdout).unwrap();
    let signed = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "sluice-approval", "-f"])
        .arg(w.key("carol"))
        .arg(&stmt)
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", text(&signed));
    let out = w.run(&[
        "approve-plan",
        plan.to_str().unwrap(),
        "--signed",
        stmt.to_str().unwrap(),
        "--allowed-signers",
        w.signers().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("by carol@example.com"),
        "{}",
        text(&out)
    );

    let ours = w.dir.path().join("ours");
    let out = w.run(&[
        "approve-plan",
        plan.to_str().unwrap(),
        "--key",
        w.key("alice").to_str().unwrap(),
        "--out",
        ours.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let verified = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "sluice-approval", "-f"])
        .arg(w.signers())
        .args(["-I", "alice@example.com", "-s"])
        .arg(ours.with_file_name("ours.sig"))
        .stdin(std::fs::File::open(&ours).unwrap())
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
    let out = w.apply(&plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn overrides_need_a_reason_that_is_recorded() {
    let w = World::new(1, "break_glass: reason");
    let plan = w.plan("glass", "true", false);
    let out = w.apply(&plan, &["--ignore-window"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("wants a reason for --ignore-window"),
        "{}",
        text(&out)
    );
    let out = w.apply(&plan, &["--ignore-window", "--reason", "INC-42 hotfix"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let records = w.records(&w.last_run());
    assert!(records.iter().any(|r| r["kind"] == "decision"
        && r["decision"] == "break_glass"
        && r["reason"].as_str().unwrap().contains("INC-42 hotfix")));
}

#[test]
fn exec_is_refused_on_hosts_a_run_holds_and_recorded_otherwise() {
    let w = World::new(2, "break_glass: none");
    let plan = w.plan("slow", "sleep 3", false);
    let mut apply = w
        .apply_cmd(&plan, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let inventory = w.inventory.to_str().unwrap().to_string();
    // Once the apply holds its hosts (its run is recorded as running)...
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(&w.run(&["runs"])).contains("running") {
        assert!(Instant::now() < deadline, "the apply never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...an exec on them is refused, naming the holder.
    let refused = w.run(&["exec", "fleet", "-i", &inventory, "--", "true"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("is leased by run"),
        "{}",
        text(&refused)
    );
    assert!(apply.wait().unwrap().success());

    let out = w.run(&[
        "exec",
        "fleet",
        "-i",
        &inventory,
        "--",
        "echo hi-from-$FLEET_HOST",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = w.last_run();
    let records = w.records(&run);
    let started = &records[0];
    assert_eq!(
        (&started["kind"], &started["run_kind"]),
        (&"run_started".into(), &"exec".into())
    );
    let results: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["kind"] == "step_result")
        .collect();
    assert_eq!(results.len(), 2, "{records:#?}");
    for r in &results {
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["stdout"]["sha256"].as_str().unwrap().len(), 64);
    }
    assert_eq!(records.last().unwrap()["kind"], "run_finished");
    let logs = w.run(&["logs", &run]);
    assert!(text(&logs).contains("hi-from-host1"), "{}", text(&logs));
}

#[test]
fn a_gate_asked_on_a_terminal_is_released_by_an_approval_from_another_process() {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` (util-linux) to give sluice a terminal: apt-get install util-linux"
    );
    let w = World::new(2, "break_glass: none");
    let plan = w.plan("tty", "echo done >> \"$FLEET_ROOT/log\"", true);
    let inner = format!(
        "'{}' --color never apply --plan '{}'",
        env!("CARGO_BIN_EXE_sluice"),
        plan.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("SLUICE_STATE_DIR", w.dir.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The confirmation is typed; the gate's question then waits on the terminal. Stdin stays
    // open (its end would hang up the terminal).
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"yes\n").unwrap();
    let run = wait_for_gate(&w, &mut child);
    let out = w.run(&["approve", &run, "--wave", "rest", "--by", "bob"]);
    assert!(out.status.success(), "{}", text(&out));
    // Nobody presses Enter: the run carries on by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the run still waits for the terminal"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let mut shown = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut shown).unwrap();
    assert!(status.success(), "{shown}");
    assert!(shown.contains("answered elsewhere"), "{shown}");
    assert!(w.fleet.root(2).join("log").exists());
    let approval = w
        .records(&run)
        .into_iter()
        .find(|r| r["kind"] == "approval" && r["scope"] == "wave")
        .unwrap();
    assert_eq!(
        (&approval["by"], &approval["how"]),
        (&"bob".into(), &"command".into())
    );
}

#[test]
fn an_allowed_signers_line_openssh_would_refuse_is_an_error_when_planning() {
    let w = World::new(1, "approvals:\n  required: 1\n  allowed_signers: approvers");
    let mut signers = std::fs::read_to_string(w.signers()).unwrap();
    signers.push_str("mallory@example.com cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJbqjmHPSTWgv1aRAqlVbUW+uCEiTIikLaNbo/EiEIS3\n");
    std::fs::write(w.signers(), signers).unwrap();
    let plan = w.dir.path().join("p.yaml");
    std::fs::write(
        &plan,
        "name: p\ntargets: [fleet]\nwaves:\n  - { name: all, size: 100% }\nsteps:\n  - { id: a, run: 'true' }\n",
    )
    .unwrap();
    let out = w.run(&[
        "validate",
        plan.to_str().unwrap(),
        "-i",
        w.inventory.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("approvers:5: cert-authority lines are not supported"),
        "{}",
        text(&out)
    );
}
