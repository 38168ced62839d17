//! End-to-end: what hosts print, shown safely (issue 16, faults 7 and 11).
//! - Terminal escape sequences, `\r` and BEL from a host are shown as escapes in every human
//!   display (`apply`'s lines and failure block, `sluice exec`, `sluice logs`), never sent to the
//!   terminal raw; `sluice logs --raw` and `--json` keep the bytes.
//! - A secret spanning lines (a PEM key) and secrets that overlap in the output are masked
//!   whole, in the failure summary, in the `--json` events and in the store.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sluice_testfleet::Fleet;

mod support;
use support::{events, sluice};

/// What a hostile host prints: a title change, clear screen, a colour, a carriage return that
/// would overwrite the line, BEL, and a CSI in its 8-bit form.
const HOSTILE: &str =
    r"printf 'before\033]0;pwned-title\007\033[2J\033[1;31mred\rFAKE OK\007 \302\2336n after\n'";

/// Bytes no human display may print raw.
const RAW: [(&str, u8); 3] = [("ESC", 0x1b), ("CR", b'\r'), ("BEL", 0x07)];

fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    for (name, byte) in RAW {
        assert!(
            !bytes.contains(&byte),
            "{what} prints a raw {name}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = String::from_utf8_lossy(bytes);
    assert!(!text.contains('\u{9b}'), "{what} prints a raw 8-bit CSI");
    assert!(
        text.contains(r"\x1b]0;pwned-title\x07\x1b[2J") && text.contains(r"red\rFAKE OK"),
        "{what} shows the sequences as escapes:\n{text}"
    );
}

/// Two local hosts in a directory of their own.
fn local_inventory(dir: &Path) -> PathBuf {
    let inventory = dir.join("inventory.yaml");
    std::fs::write(
        &inventory,
        format!(
            "defaults: {{ transport: local }}\nhosts:\n  l1: {{ workdir: {0}/l1 }}\n  l2: {{ workdir: {0}/l2 }}\n",
            dir.join("hosts").display()
        ),
    )
    .unwrap();
    inventory
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Issue 16, fault 11: escape sequences from a host were printed raw in apply's failure block.
#[test]
fn escape_sequences_from_a_host_are_shown_not_obeyed_by_apply_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = local_inventory(dir.path());
    let plan = write(
        dir.path(),
        "plan.yaml",
        &format!(
            "name: hostile\ntargets: [all]\nfailure: {{ max_failed: 1 }}\nsteps:\n  - id: greet\n    run: |\n      {HOSTILE}; {HOSTILE} >&2; exit 1\n"
        ),
    );
    let store = dir.path().join("store");
    let run = |extra: &[&str]| {
        sluice()
            .env("SLUICE_STATE_DIR", &store)
            .arg("apply")
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .args(["--yes", "--color", "never"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for extra in [&[][..], &["-v"][..]] {
        let out = run(extra);
        assert_eq!(out.status.code(), Some(1));
        assert_no_raw_controls(&format!("apply {extra:?}"), &out.stderr);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Failures"),
            "the failure block is shown"
        );
    }
    // The JSON events keep the output as it came (JSON escapes it).
    let json = run(&["--json"]);
    let greet = events(&json)
        .into_iter()
        .find(|e| e["kind"] == "step_result")
        .unwrap();
    assert!(
        greet["stdout"]["head"]
            .as_str()
            .unwrap()
            .contains("\x1b]0;pwned-title\x07"),
        "{greet}"
    );
    let run_id = greet["run"].as_str().unwrap().to_string();
    let logs = |raw: bool| {
        let mut c = sluice();
        c.env("SLUICE_STATE_DIR", &store).args(["logs", &run_id]);
        if raw {
            c.arg("--raw");
        }
        c.output().unwrap()
    };
    let shown = logs(false);
    assert!(shown.status.success());
    assert_no_raw_controls("logs", &shown.stdout);
    let raw = logs(true);
    assert!(
        String::from_utf8_lossy(&raw.stdout).contains("\x1b]0;pwned-title\x07\x1b[2J"),
        "logs --raw prints the bytes as stored"
    );
    let show = sluice()
        .env("SLUICE_STATE_DIR", &store)
        .args(["show", &run_id])
        .output()
        .unwrap();
    for (name, byte) in RAW {
        assert!(!show.stderr.contains(&byte), "show prints a raw {name}");
    }
}

/// Issue 16, fault 11: escape sequences were printed raw in `exec` output, over SSH and locally.
#[test]
fn escape_sequences_from_a_host_are_shown_not_obeyed_by_exec() {
    let fleet = Fleet::start(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (inventory, host) in [
        (fleet.write_inventory().unwrap(), "host1"),
        (local_inventory(dir.path()), "l1"),
    ] {
        let exec = |json: bool| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
            c.args(["exec", host, "-i"]);
            c.arg(&inventory).args(["--color", "never"]);
            if json {
                c.arg("--json");
            }
            c.args(["--", &format!("{HOSTILE}; {HOSTILE} >&2; exit 3")])
                .output()
                .unwrap()
        };
        let inventory = inventory.display().to_string();
        let out = exec(false);
        assert_eq!(out.status.code(), Some(1), "{inventory}");
        assert_no_raw_controls(&format!("exec on {inventory}"), &out.stderr);
        let json = exec(true);
        let line: serde_json::Value = serde_json::from_str(
            String::from_utf8_lossy(&json.stdout)
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap();
        assert!(
            line["stdout"].as_str().unwrap().contains("\x1b[2J"),
            "--json keeps the bytes: {line}"
        );
    }
}

/// A key spanning lines, with a character JSON escapes and a control character in it.
const PEM: &str =
    "-----BEGIN TEST KEY-----\nMIIBnotReal0/+\nQmFzZTY0\tline\x07two\n-----END TEST KEY-----";

/// Issue 16, fault 7: a PEM secret was shown in the failure summary and in `--json` output
/// because masking worked line by line, and overlapping secrets were partly masked (`***ghij`).
#[test]
fn multi_line_and_overlapping_secrets_are_masked_whole_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = local_inventory(dir.path());
    let pem = write(dir.path(), "key.pem", &format!("{PEM}\n"));
    // l1's step prints the secrets and fails; l2's step passes and its health check prints them
    // and fails. `abcdefXYZ1` and `XYZ1ghij` overlap in `abcdefXYZ1ghij`.
    // The texts come from the environment, so the plan (stored with the run) holds none.
    let print = "cat \\\"$KEYFILE\\\"; printf 'overlap %s end\\n' \\\"$OVERLAP\\\"; printf 'err %s\\n' \\\"$OVERLAP\\\" >&2";
    let plan = write(
        dir.path(),
        "plan.yaml",
        &format!(
            r#"name: masking
targets: [all]
secrets:
  pem: {{ file: {pem} }}
  a: {{ env: SLUICE_E2E_A }}
  b: {{ env: SLUICE_E2E_B }}
failure: {{ max_failed: 1, action: halt }}
health:
  checks:
    - {{ name: app, run: "{print}; exit 1" }}
  retries: 0
  interval: 100ms
steps:
  - {{ id: show, run: "test -n {{{{secrets.pem}}}}{{{{secrets.a}}}}{{{{secrets.b}}}}; {print}; test {{{{host.name}}}} = l2" }}
"#,
            pem = pem.display()
        ),
    );
    let store = dir.path().join("store");
    let run = |extra: &[&str]| {
        sluice()
            .env("SLUICE_STATE_DIR", &store)
            .env("SLUICE_E2E_A", "abcdefXYZ1")
            .env("SLUICE_E2E_B", "XYZ1ghij")
            .env("KEYFILE", &pem)
            .env("OVERLAP", "abcdefXYZ1ghij")
            .arg("apply")
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .args(["--yes", "--color", "never"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let needles = [
        "MIIBnotReal",
        "QmFzZTY0",
        "BEGIN TEST",
        "abcdef",
        "XYZ1",
        "ghij",
    ];
    let check = |what: &str, out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        for needle in needles {
            assert!(!text.contains(needle), "{what} shows {needle:?}:\n{text}");
        }
    };
    let human = run(&[]);
    assert_eq!(
        human.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&human.stderr)
    );
    let text = String::from_utf8_lossy(&human.stderr);
    assert!(
        text.contains("overlap *** end") && text.contains("err ***"),
        "the failure block shows the output, masked: {text}"
    );
    check("apply", &human.stderr);
    let json = run(&["--json"]);
    check("apply --json", &json.stdout);
    check("apply --json (stderr)", &json.stderr);
    let run_id = events(&json)[0]["run"].as_str().unwrap().to_string();
    for args in [
        vec!["logs", &run_id],
        vec!["show", &run_id, "--json"],
        vec!["audit", "export"],
    ] {
        let out = sluice()
            .env("SLUICE_STATE_DIR", &store)
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        check(&args.join(" "), &out.stdout);
    }
}
