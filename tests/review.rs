//! End-to-end tests of the review: where it goes, `--from`, completeness, the host-name
//! regression, the JSON's documentation, approvals from the store, and warnings in `validate`.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/playbooks.rs"]
mod playbooks;

use std::path::{Path, PathBuf};

use playbooks::{AS_OF, PLAYBOOKS, review_args, sluice};

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    let out = sluice().args(args).output().unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sluice-review-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn review_out_writes_the_file_and_leaves_stdout_empty() {
    let dir = scratch("out");
    let file = dir.join("review.md");
    let mut args = review_args("openssl-patch", "inventory/prod.yaml", "markdown");
    args.extend(["--review-out".into(), path(&file)]);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("# Change review: openssl-3.0.15"));
    assert!(out.stderr.contains("review to"), "{}", out.stderr);
}

/// A saved artifact renders as the compiled plan did (the compile-time warnings aside: the
/// openssl plan has none), in every format, after its hash is checked.
#[test]
fn from_renders_a_saved_artifact_in_any_format() {
    let dir = scratch("from");
    let saved = dir.join("plan.json");
    for format in ["text", "markdown", "html", "json"] {
        let mut args = review_args("openssl-patch", "inventory/prod.yaml", format);
        args.extend(["--out".into(), path(&saved)]);
        let compiled = run(&args);
        assert_eq!(compiled.code, Some(0), "{}", compiled.stderr);
        let again = run(&[
            "plan",
            "--from",
            &path(&saved),
            "--as-of",
            AS_OF,
            "--format",
            format,
        ]);
        assert_eq!(again.code, Some(0), "{}", again.stderr);
        assert_eq!(again.stdout, compiled.stdout, "{format}");
    }
    // Edited after review: refused with exit 2.
    let text = std::fs::read_to_string(&saved)
        .unwrap()
        .replace("systemctl restart app", "rm -rf /");
    std::fs::write(&saved, text).unwrap();
    let edited = run(&["plan", "--from", &path(&saved)]);
    assert_eq!(edited.code, Some(2));
    assert_eq!(edited.stdout, "");
    assert!(
        edited.stderr.contains("was modified after it was planned"),
        "{}",
        edited.stderr
    );
}

/// Issue 12: `sluice plan p.json -i …` said `unknown key format in the change plan`.
#[test]
fn an_artifact_given_as_the_plan_points_to_from() {
    let dir = scratch("as-plan");
    let saved = dir.join("p.json");
    let out = run(&[
        "plan",
        "playbooks/demo-rolling-patch.yaml",
        "-i",
        "inventory/demo.yaml",
        "--out",
        &path(&saved),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = run(&["plan", &path(&saved), "-i", "inventory/demo.yaml"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("is a saved plan artifact") && out.stderr.contains("--from"),
        "{}",
        out.stderr
    );
}

/// Issue 12: the review wrote host names in literal text as references — host t-2's
/// `test t-2 != t-2` read `test {{host.name}} != {{host.name}}`.
#[test]
fn a_host_name_written_literally_is_not_taken_for_a_reference() {
    let dir = scratch("literal");
    let inventory = dir.join("inv.yaml");
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &inventory,
        "hosts:\n  t-1: { transport: local }\n  t-2: { transport: local }\n  t-3: { transport: local }\n",
    )
    .unwrap();
    std::fs::write(
        &plan,
        "name: literal\ntargets: [t-1, t-2, t-3]\nsteps:\n  - { id: check, run: \"test {{host.name}} != t-2\" }\n",
    )
    .unwrap();
    let out = run(&["plan", &path(&plan), "-i", &path(&inventory)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("run: test ⟨host.name⟩ != t-2\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("!= ⟨host.name⟩"), "{}", out.stdout);
}

/// Issue 12: host lists were cut (`h05 … h12 … and 7 more`, `… and 14 more: echo 1.0 >
/// version`). Thirty hosts with a value of their own each: every host and every distinct
/// command is in every human format.
#[test]
fn nothing_is_cut_however_many_hosts_differ() {
    let dir = scratch("complete");
    let inventory = dir.join("inv.yaml");
    let plan = dir.join("plan.yaml");
    let hosts: String = (1..=30)
        .map(|i| {
            format!(
                "  h{i:02}: {{ transport: local, vars: {{ v: \"{}\" }} }}\n",
                i * 7
            )
        })
        .collect();
    let names: Vec<String> = (1..=30).map(|i| format!("h{i:02}")).collect();
    std::fs::write(
        &inventory,
        format!(
            "hosts:\n{hosts}groups:\n  fleet: {{ hosts: [{}] }}\n",
            names.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(
        &plan,
        "name: many\ntargets: [fleet]\nsteps:\n  - { id: set, run: \"echo {{vars.v}} > version\", undo: \"rm version\" }\n",
    )
    .unwrap();
    for format in ["text", "markdown", "html"] {
        let out = run(&[
            "plan",
            &path(&plan),
            "-i",
            &path(&inventory),
            "--format",
            format,
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        for i in 1..=30 {
            assert!(
                out.stdout.contains(&format!("h{i:02}")),
                "{format}: h{i:02}"
            );
            assert!(
                out.stdout.contains(&format!("echo {} &gt; version", i * 7))
                    || out.stdout.contains(&format!("echo {} > version", i * 7)),
                "{format}: the command of h{i:02}"
            );
        }
        assert!(!out.stdout.contains("… and"), "{format}: {}", out.stdout);
    }
}

/// The JSON review is documented: every field of the output is described in
/// docs/review-json.md.
#[test]
fn json_review_fields_are_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/review-json.md"
    ))
    .unwrap();
    let mut keys = std::collections::BTreeSet::new();
    for (plan, inventory) in PLAYBOOKS {
        let out = run(&review_args(plan, inventory, "json"));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        collect_keys(&value, &mut keys);
    }
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/review-json.md: {missing:?}"
    );
}

fn collect_keys(value: &serde_json::Value, keys: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                keys.insert(k.clone());
                collect_keys(v, keys);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

/// Approvals of this exact hash are read from the audit store and shown in every format.
#[test]
fn approvals_recorded_in_the_store_are_shown() {
    let dir = scratch("approvals");
    let store = dir.join("state");
    let saved = dir.join("plan.json");
    let out = run(&[
        "plan",
        "playbooks/demo-rolling-patch.yaml",
        "-i",
        "inventory/demo.yaml",
        "--out",
        &path(&saved),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let approve = run(&[
        "approve-plan",
        &path(&saved),
        "--by",
        "alice",
        "--comment",
        "CAB 2026-11-02",
        "--state-dir",
        &path(&store),
    ]);
    assert_eq!(approve.code, Some(0), "{}", approve.stderr);
    for (format, expected) in [
        ("text", "approved by alice at "),
        ("markdown", "approved by alice at "),
        ("html", "approved by alice at "),
        ("json", "\"by\": \"alice\""),
    ] {
        let out = run(&[
            "plan",
            "--from",
            &path(&saved),
            "--state-dir",
            &path(&store),
            "--format",
            format,
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stdout.contains(expected), "{format}: {}", out.stdout);
        assert!(out.stdout.contains("CAB 2026-11-02"), "{format}");
    }
    // Without a store, the review says approvals were not checked.
    let out = run(&["plan", "--from", &path(&saved)]);
    assert!(
        out.stdout
            .contains("Approvals  not checked: no audit store"),
        "{}",
        out.stdout
    );
}

/// Warnings are printed by validate, which still exits 0; `--deny-warnings` makes them errors.
#[test]
fn validate_prints_warnings_and_deny_warnings_fails() {
    let args = [
        "validate",
        "playbooks/nginx-config.yaml",
        "-i",
        "inventory/prod.yaml",
        "--var",
        "worker_conections=8192",
    ];
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for expected in [
        "--var worker_conections: no template, plan, group or host uses a variable",
        "did you mean `worker_connections`?",
        "[unknown_var]",
        "[no_undo]",
        "Valid",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
    let mut denied = args.to_vec();
    denied.push("--deny-warnings");
    let out = run(&denied);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--deny-warnings"), "{}", out.stderr);
    assert!(!out.stderr.contains("Valid"), "{}", out.stderr);
}

/// A plan compiled with `--limit` says so in every format, so a change board sees that the
/// review covers only part of the inventory.
#[test]
fn a_limited_plan_says_so_in_its_review() {
    for (format, needle) in [
        ("text", "limited by --limit web-1 (only"),
        ("markdown", "limited by --limit web-1 (only"),
        ("json", "\"limit\": \"web-1\""),
    ] {
        let mut args = review_args("openssl-patch", "inventory/prod.yaml", format);
        args.extend(["--limit".into(), "web-1".into()]);
        let out = run(&args);
        assert_eq!(out.code, Some(0), "{format}: {}", out.stderr);
        assert!(out.stdout.contains(needle), "{format}: {}", out.stdout);
    }
    let out = run(&review_args("openssl-patch", "inventory/prod.yaml", "text"));
    assert!(!out.stdout.contains("--limit"), "{}", out.stdout);
}

/// HTTPS health checks in every format: how each certificate is checked, redirects and the body
/// rule, and an `insecure: true` check is a coded warning (`insecure_tls`).
#[test]
fn https_checks_show_their_trust_and_insecure_is_a_warning() {
    let dir = scratch("https");
    let inventory = dir.join("inv.yaml");
    std::fs::write(
        &inventory,
        "hosts:\n  w-1: { transport: local }\n  w-2: { transport: local }\n",
    )
    .unwrap();
    // The planner only checks that the file is PEM; the probe parses it at run time.
    std::fs::write(
        dir.join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        "name: https\ntargets: [w-1, w-2]\nhealth:\n  checks:\n\
         \x20   - { name: lax, http: \"https://{{host.name}}:8443/\", insecure: true }\n\
         \x20   - { name: pinned, http: \"https://{{host.name}}/\", ca_file: ca.pem, body_contains: ok, follow_redirects: true }\n\
         \x20   - { name: public, http: \"https://{{host.name}}/\", expect_status: 204 }\n\
         steps:\n  - { id: a, run: \"true\", undo: \"true\" }\n",
    )
    .unwrap();
    let review = |format: &str| {
        let out = run(&[
            "plan",
            &path(&plan),
            "-i",
            &path(&inventory),
            "--format",
            format,
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    let text = review("text");
    for expected in [
        "insecure_tls",
        "health check `lax` accepts any TLS certificate (`insecure: true`) on 2 host(s)",
        "expects 2xx; certificate NOT checked (insecure: any certificate is accepted); redirects not followed",
        "expects 2xx; certificate checked against ca_file ca.pem; redirects followed; the body must contain \"ok\"",
        "expects 204; certificate checked against the system's roots; redirects not followed",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    for format in ["markdown", "html"] {
        let shown = review(format);
        assert!(shown.contains("insecure_tls"), "{format}:\n{shown}");
        assert!(
            shown.contains("certificate NOT checked"),
            "{format}:\n{shown}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&review("json")).unwrap();
    let codes: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"insecure_tls"), "{codes:?}");
    let trust: Vec<&str> = json["health"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["http"]["trust"].as_str().unwrap())
        .collect();
    assert_eq!(trust, ["insecure", "ca_file", "system_roots"]);
    // validate warns too, and --deny-warnings refuses.
    let denied = run(&[
        "validate",
        &path(&plan),
        "-i",
        &path(&inventory),
        "--deny-warnings",
    ]);
    assert_eq!(denied.code, Some(2), "{}", denied.stderr);
    assert!(denied.stderr.contains("insecure_tls"), "{}", denied.stderr);
}

/// Issue 15: a `reboot:` step is shown as a reboot, with its wait, in every format.
#[test]
fn a_reboot_step_is_shown_as_a_reboot_with_its_wait_in_every_format() {
    let (plan, inventory) = ("kernel-update", "inventory/prod.yaml");
    let out = run(&review_args(plan, inventory, "json"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let steps = value["steps"].as_array().unwrap();
    let timeout =
        |id: &str| steps.iter().find(|s| s["id"] == id).unwrap()["reboot_timeout_ms"].clone();
    assert_eq!(timeout("reboot"), serde_json::json!(900_000));
    assert_eq!(timeout("install"), serde_json::Value::Null);
    for format in ["text", "markdown", "html"] {
        let out = run(&review_args(plan, inventory, format));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(
            out.stdout
                .matches("reboots the host, waits up to 15m")
                .count(),
            1,
            "{format}: {}",
            out.stdout
        );
    }
}

/// Issue 15: the backup gate is a phase of its own before the waves, and `host_lease: true`
/// is shown, in every format.
#[test]
fn backups_are_a_phase_of_their_own_and_host_leases_are_shown_in_every_format() {
    let dir = scratch("backup");
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        r#"name: with-backups
targets: [web]
host_lease: true
backup:
  - id: etc-tarball
    run: tar -czf /var/backups/etc-{{host.name}}.tgz /etc
    verify: tar -tzf /var/backups/etc-{{host.name}}.tgz
    become: true
    timeout: 10m
steps:
  - { id: install, run: apt-get install -y nginx, undo: apt-get remove -y nginx }
"#,
    )
    .unwrap();
    let inventory = dir.join("inventory.yaml");
    std::fs::write(
        &inventory,
        "hosts:\n  web-1: { address: 10.0.0.1 }\n  web-2: { address: 10.0.0.2 }\ngroups:\n  web: { hosts: [web-1, web-2] }\n",
    )
    .unwrap();
    let args = |format: &str| {
        vec![
            "plan".to_string(),
            path(&plan),
            "-i".into(),
            path(&inventory),
            "--format".into(),
            format.into(),
        ]
    };
    let out = run(&args("json"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(value["summary"]["host_lease"], true);
    let backup = &value["backups"][0];
    assert_eq!(backup["id"], "etc-tarball");
    assert_eq!(backup["become_user"], "root");
    assert_eq!(backup["timeout_ms"], 600_000);
    let verify = &backup["verify"]["forms"][0];
    assert_eq!(verify["hosts"], serde_json::json!(["web-1", "web-2"]));
    for (format, heading) in [("text", "\n"), ("markdown", "## "), ("html", "<h2>")] {
        let out = run(&args(format));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let text = &out.stdout;
        let backups = text.find(&format!("{heading}Backups")).expect(format);
        let waves = text.find(&format!("{heading}Waves")).expect(format);
        assert!(backups < waves, "{format}: backups come before the waves");
        assert!(
            text.contains("tar -tzf /var/backups/etc-"),
            "{format}: {text}"
        );
        assert!(
            text.contains("as root") && text.contains("timeout 10m each"),
            "{format}: {text}"
        );
        assert!(
            text.contains("on each host itself (host"),
            "{format}: {text}"
        );
    }
}

/// Issue 15: a step with `confirm:` shows its window in every format.
#[test]
fn a_confirm_step_shows_its_window_in_every_format() {
    let dir = scratch("confirm");
    let inventory = dir.join("inv.yaml");
    std::fs::write(&inventory, "hosts:\n  w-1: { transport: local }\n").unwrap();
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        "name: sshd-port\ntargets: [w-1]\nsteps:\n\
         \x20 - { id: port, run: \"sshd-set-port 2222\", undo: \"sshd-set-port 22\", confirm: { within: 2m } }\n\
         \x20 - { id: after, run: \"true\", after: [port] }\n",
    )
    .unwrap();
    let review = |format: &str| {
        let out = run(&[
            "plan",
            &path(&plan),
            "-i",
            &path(&inventory),
            "--format",
            format,
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    for format in ["text", "markdown", "html"] {
        let shown = review(format);
        assert_eq!(
            shown
                .matches("confirm within 2m, else the host runs the undo by itself")
                .count(),
            1,
            "{format}:\n{shown}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&review("json")).unwrap();
    let steps = json["steps"].as_array().unwrap();
    let confirm = |id: &str| steps.iter().find(|s| s["id"] == id).unwrap()["confirm"].clone();
    assert_eq!(
        confirm("port"),
        serde_json::json!({"within_ms": 120_000, "revert_timeout_ms": 300_000})
    );
    assert_eq!(confirm("after"), serde_json::Value::Null);
}
