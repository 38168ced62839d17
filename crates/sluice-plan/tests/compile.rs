//! Compilation as a specification: variable precedence, waves, run_once, rendering, holes.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_plan::{FailureBudget, HostPlan, PlanArtifact, Segment, compile_sources};

const INVENTORY: &str = "
defaults: { user: deploy, env: { A: from-defaults, B: from-defaults } }
hosts:
  web-1: { address: 10.0.0.11, vars: { colour: host } }
  web-2: { address: 10.0.0.12, env: { B: from-host } }
  web-3: {}
  db-1: { port: 2222, user: admin, transport: local, workdir: /tmp }
groups:
  web: { hosts: [web-1, web-2, web-3], vars: { colour: web, tier: web } }
  prod: { children: [web, db], vars: { colour: prod, tier: prod, env: prod } }
  db: { hosts: [db-1], vars: { colour: db } }
";

fn compile(plan: &str, cli: &[(&str, &str)]) -> PlanArtifact {
    let cli: Vec<(String, String)> = cli
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match compile_sources(("plan.yaml", plan), ("inv.yaml", INVENTORY), &cli) {
        Ok(c) => c.artifact,
        Err(sluice_plan::PlanError::Invalid(d)) => panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Err(e) => panic!("{e}"),
    }
}

fn host<'a>(a: &'a PlanArtifact, name: &str) -> &'a HostPlan {
    a.host(name).unwrap()
}

fn run_text(a: &PlanArtifact, h: &str, step: &str) -> String {
    host(a, h)
        .steps
        .iter()
        .find(|s| s.id == step)
        .unwrap()
        .run
        .to_string()
}

const ECHO: &str = r#"
name: t
targets: [prod]
vars: { colour: plan, only_plan: p }
steps:
  - { id: echo, run: "echo {{vars.colour}} {{vars.tier}} {{vars.only_plan}} {{host.name}}@{{host.address}}:{{host.port}}" }
"#;

#[test]
fn variable_precedence_plan_groups_parent_first_host_cli() {
    let a = compile(ECHO, &[]);
    // web-1: host vars win over groups; the child group `web` wins over its parent `prod`.
    assert_eq!(
        run_text(&a, "web-1", "echo"),
        "echo host web p web-1@10.0.0.11:22"
    );
    assert_eq!(
        run_text(&a, "web-2", "echo"),
        "echo web web p web-2@10.0.0.12:22"
    );
    assert_eq!(
        run_text(&a, "db-1", "echo"),
        "echo db prod p db-1@db-1:2222"
    );
    let a = compile(ECHO, &[("colour", "cli")]);
    assert_eq!(
        run_text(&a, "web-1", "echo"),
        "echo cli web p web-1@10.0.0.11:22"
    );
}

#[test]
fn connection_snapshot_merges_defaults() {
    let a = compile(ECHO, &[]);
    let web2 = &host(&a, "web-2").connection;
    assert_eq!(web2.user.as_deref(), Some("deploy"));
    assert_eq!(web2.env["A"], "from-defaults");
    assert_eq!(web2.env["B"], "from-host");
    let db = &host(&a, "db-1").connection;
    assert_eq!(
        (db.port, db.user.as_deref(), db.workdir.as_deref()),
        (2222, Some("admin"), Some("/tmp"))
    );
    assert_eq!(db.transport, sluice_plan::TransportKind::Local);
    // Targets resolve in inventory order, each host once.
    let names: Vec<&str> = a.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web-1", "web-2", "web-3", "db-1"]);
}

#[test]
fn waves_concurrency_and_failure_budget() {
    let a = compile(
        r#"
name: t
targets: [prod]
concurrency: 2
failure: { max_failed: 50% }
waves:
  - { name: canary, size: 1 }
  - { name: rest, size: 1, concurrency: 5, pause: 90s, approval: true }
steps: [{ id: a, run: "true" }]
"#,
        &[],
    );
    assert_eq!(a.waves.len(), 2);
    assert_eq!(a.waves[0].hosts, ["web-1"]);
    assert_eq!((a.waves[0].concurrency, a.waves[0].max_failed), (1, 0));
    // The last wave takes the rest whatever its size; its concurrency is capped at its size.
    assert_eq!(a.waves[1].hosts, ["web-2", "web-3", "db-1"]);
    assert_eq!((a.waves[1].concurrency, a.waves[1].max_failed), (3, 1));
    assert_eq!(
        (a.waves[1].pause_ms, a.waves[1].approval),
        (Some(90_000), true)
    );
    assert_eq!(a.failure.max_failed, FailureBudget::Percent(50));
}

#[test]
fn run_once_runs_on_the_first_host_of_the_first_wave_and_not_per_host() {
    let a = compile(
        r#"
name: t
targets: [web]
steps:
  - { id: backup, run_once: true, run: "backup-db" }
  - { id: a, run: "echo a" }
  - { id: migrate, run_once: true, run: "migrate --on {{host.name}}" }
  - { id: b, run: "echo b" }
"#,
        &[],
    );
    let once: Vec<(&str, &str)> = a
        .run_once
        .iter()
        .map(|r| (r.host.as_str(), r.step.id.as_str()))
        .collect();
    assert_eq!(once, [("web-1", "backup"), ("web-1", "migrate")]);
    assert_eq!(a.run_once[1].step.run.to_string(), "migrate --on web-1");
    // Defaults chain run_once steps together and host steps together.
    assert_eq!(a.step("migrate").unwrap().after, ["backup"]);
    assert_eq!(a.step("b").unwrap().after, ["a"]);
    assert!(a.step("a").unwrap().after.is_empty());
    for h in &a.hosts {
        let ids: Vec<&str> = h.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }
}

#[test]
fn secrets_and_registered_values_stay_holes() {
    let a = compile(
        r#"
name: t
targets: [web-1]
secrets: { tok: { file: /etc/tok } }
steps:
  - { id: current, run: "cat /etc/v", register: old }
  - { id: set, run: "set --token {{secrets.tok}} {{raw vars.flags}}", undo: "set {{old}}" }
"#,
        &[("flags", "-a -b")],
    );
    let step = &host(&a, "web-1").steps[1];
    assert_eq!(step.run.to_string(), "set --token *** -a -b");
    assert!(step.run.segments.contains(&Segment::Secret {
        name: "tok".into(),
        quote: true
    }));
    let undo = step.undo.as_ref().unwrap();
    assert_eq!(undo.to_string(), "set <old from step current>");
    let json = serde_json::to_string(&a).unwrap();
    assert!(
        json.contains("/etc/tok") && !json.contains("\"tok\":\""),
        "only where the secret comes from"
    );
}

#[test]
fn steps_are_ordered_by_after_keeping_declaration_order() {
    let a = compile(
        r#"
name: t
targets: [web-1]
steps:
  - { id: restart, after: [install], run: "r" }
  - { id: drain, after: [], run: "d" }
  - { id: install, after: [drain], run: "i" }
"#,
        &[],
    );
    let ids: Vec<&str> = a.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["drain", "install", "restart"]);
}

#[test]
fn become_password_names_a_declared_secret_and_the_artifact_keeps_only_the_name() {
    let a = compile(
        r#"
name: t
targets: [web-1]
secrets: { sudo_pw: { env: SUDO_PW } }
become_password: sudo_pw
steps:
  - { id: restart, run: "systemctl restart app", become: true }
"#,
        &[],
    );
    assert_eq!(a.become_password.as_deref(), Some("sudo_pw"));
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["become_password"], "sudo_pw");
    assert_eq!(json["secrets"][0]["from"]["env"], "SUDO_PW");

    // A plan without it has no such key at all: its bytes, and so its hash, are unchanged.
    let plain = compile(
        "name: t\ntargets: [web-1]\nsteps:\n  - { id: a, run: x, become: true }\n",
        &[],
    );
    assert!(plain.become_password.is_none());
    assert!(
        !serde_json::to_string(&plain)
            .unwrap()
            .contains("become_password")
    );
}

#[test]
fn become_password_naming_an_undeclared_secret_is_a_located_error() {
    let diagnostics =
        |plan: &str| match compile_sources(("plan.yaml", plan), ("inv.yaml", INVENTORY), &[]) {
            Ok(_) => panic!("accepted"),
            Err(sluice_plan::PlanError::Invalid(d)) => {
                d.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            }
            Err(e) => panic!("{e}"),
        };
    let got = diagnostics(
        "name: t\ntargets: [web-1]\nsecrets: { tok: { env: T } }\nbecome_password: sudo\nsteps:\n  - { id: a, run: 'x {{secrets.tok}}', become: true }\n",
    );
    assert_eq!(
        got,
        [
            "plan.yaml:4:18: become_password names `sudo`, which is not declared under `secrets` (declared secrets: tok)"
        ]
    );
    let got = diagnostics(
        "name: t\ntargets: [web-1]\nbecome_password: sudo\nsteps:\n  - { id: a, run: x, become: true }\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("plan.yaml:3:18: "), "{got:?}");
    assert!(got[0].contains("no secret is declared"), "{got:?}");
}

#[test]
fn become_password_without_a_become_step_is_a_warning() {
    let c = compile_sources(
        (
            "plan.yaml",
            "name: t\ntargets: [web-1]\nsecrets: { pw: { env: PW } }\nbecome_password: pw\nsteps:\n  - { id: a, run: x }\n",
        ),
        ("inv.yaml", INVENTORY),
        &[],
    )
    .unwrap();
    let warnings: Vec<String> = c.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "plan.yaml:4:18: become_password is set but no step uses `become`, so secret `pw` is never sent [become_password_unused]"
        ]
    );
    assert_eq!(
        c.warnings[0].warning.as_deref(),
        Some(&sluice_plan::warning::PlanWarning::BecomePasswordUnused {
            secret: "pw".into()
        })
    );
}

#[test]
fn values_inside_double_quotes_are_escaped_and_holes_step_out_of_the_quotes() {
    let a = compile(
        r#"
name: t
targets: [web-1]
secrets: { tok: { env: T } }
steps:
  - { id: current, run: "cat /etc/v", register: old }
  - { id: set, run: "echo \"v={{vars.p}} t={{secrets.tok}} o={{old}}\"" }
"#,
        &[("p", "$(x) \"q\" \\ `y`")],
    );
    let run = &host(&a, "web-1").steps[1].run;
    assert_eq!(
        run.segments,
        [
            Segment::Text(r#"echo "v=\$(x) \"q\" \\ \`y\` t=""#.into()),
            Segment::Secret {
                name: "tok".into(),
                quote: true
            },
            Segment::Text(r#"" o=""#.into()),
            Segment::Registered {
                name: "old".into(),
                step: "current".into(),
                quote: true
            },
            Segment::Text("\"\"".into()),
        ]
    );
    let mut values = sluice_plan::RuntimeValues::default();
    values.secrets.insert("tok".into(), "$(s)".into());
    values.registered.insert("old".into(), "it's".into());
    assert_eq!(
        run.resolve(&values).unwrap().text,
        r#"echo "v=\$(x) \"q\" \\ \`y\` t=""${__sluice_s1}"" o="'it'\''s'"""#
    );
}

#[test]
fn values_in_health_urls_are_percent_encoded() {
    let a = compile(
        r#"
name: t
targets: [web-1]
health:
  checks:
    - { name: app, http: "http://{{host.address}}:{{vars.port}}/{{vars.path}}?q={{vars.q}}" }
    - { name: tls, tcp: "{{host.address}}:{{vars.port}}" }
steps:
  - { id: a, run: "true" }
"#,
        &[
            ("port", "8080"),
            ("path", "a b/../x"),
            ("q", "1&x=\r\nHost: evil"),
        ],
    );
    let health = &host(&a, "web-1").health;
    assert_eq!(
        health[0].probe,
        sluice_plan::HealthProbe::Http {
            url: "http://10.0.0.11:8080/a%20b%2F..%2Fx?q=1%26x%3D%0D%0AHost%3A%20evil".into(),
            expect_status: None,
            options: Default::default(),
        }
    );
    assert_eq!(
        health[1].probe,
        sluice_plan::HealthProbe::Tcp {
            address: "10.0.0.11:8080".into()
        }
    );
}

#[test]
fn hosts_are_found_by_index_even_after_the_artifact_is_edited() {
    let mut a = compile(ECHO, &[]);
    let names: Vec<String> = a.hosts.iter().map(|h| h.name.clone()).collect();
    for name in &names {
        assert_eq!(&a.host(name).unwrap().name, name);
    }
    assert!(a.host("nope").is_none());
    // The index was built by the lookups above; it must not answer wrong once hosts change.
    let mut extra = a.hosts[0].clone();
    extra.name = "added".into();
    a.hosts.push(extra);
    a.hosts[1].name = "renamed".into();
    assert_eq!(a.host("added").unwrap().name, "added");
    assert_eq!(a.host("renamed").unwrap().name, "renamed");
    assert!(a.host(&names[1]).is_none());
    // The index is not part of the artifact's JSON, so not of its hash.
    let json = serde_json::to_value(&a).unwrap();
    assert!(json.get("host_index").is_none());
}

/// A plan with stages is estimated stage by stage, each as a plan of its own, over the stage
/// graph: `db` and `web` overlap (neither waits for the other) and `last` starts after the
/// longer of them, so the plan takes `web` + `last`, not the sum of every step on every host.
#[test]
fn a_plan_with_stages_is_estimated_along_the_longest_path_of_stages() {
    let a = compile(
        "
name: staged
stages:
  - { name: db, targets: [db-1], steps: [{ id: m, run: 'true', timeout: 10s }] }
  - name: web
    after: []
    targets: [web]
    concurrency: 1
    steps: [{ id: p, run: 'true', timeout: 20s }]
  - { name: last, after: [db, web], targets: [web-1], steps: [{ id: u, run: 'true', timeout: 5s }] }
",
        &[],
    );
    let e = sluice_plan::estimate::Estimate::of(&a);
    let stages: Vec<(&str, u64, u64)> = e
        .per_stage
        .iter()
        .map(|s| (s.name.as_str(), s.ms, s.ends_ms))
        .collect();
    // web: three hosts one at a time, 20 s each.
    assert_eq!(
        stages,
        [
            ("db", 10_000, 10_000),
            ("web", 60_000, 60_000),
            ("last", 5_000, 65_000)
        ]
    );
    assert_eq!(e.total_ms, 65_000);
    assert_eq!(e.longest_path, ["web", "last"]);
    // Each wave as its stage estimates it.
    assert_eq!(e.per_wave_ms, [10_000, 60_000, 5_000]);
}

/// The pause after a stage's last wave holds the stages that wait for it, so it counts towards
/// when that stage ends; the last stage's pause holds nothing and counts nothing.
#[test]
fn the_pause_after_a_stage_s_last_wave_counts_when_stages_wait_for_it() {
    let a = compile(
        "
name: paused
stages:
  - name: first
    targets: [db-1]
    waves: [{ name: all, size: 100%, pause: 30s }]
    steps: [{ id: m, run: 'true', timeout: 10s }]
  - name: second
    targets: [web-1]
    waves: [{ name: all, size: 100%, pause: 30s }]
    steps: [{ id: u, run: 'true', timeout: 5s }]
",
        &[],
    );
    let e = sluice_plan::estimate::Estimate::of(&a);
    let stages: Vec<(&str, u64, u64)> = e
        .per_stage
        .iter()
        .map(|s| (s.name.as_str(), s.ms, s.ends_ms))
        .collect();
    assert_eq!(
        stages,
        [("first", 40_000, 40_000), ("second", 5_000, 45_000)]
    );
    assert_eq!(e.total_ms, 45_000);
    assert_eq!(e.per_wave_ms, [40_000, 5_000]);
}

#[test]
fn a_reboot_step_renders_its_command_as_run_and_keeps_its_timeout_in_the_spec() {
    let a = compile(
        r#"
name: t
targets: [web]
steps:
  - { id: set, run: "grub-set-default 1" }
  - id: reboot
    reboot: { timeout: 20m, command: "shutdown -r now {{host.name}}" }
    become: true
  - id: plain
    reboot: {}
"#,
        &[],
    );
    assert_eq!(run_text(&a, "web-1", "reboot"), "shutdown -r now web-1");
    assert_eq!(run_text(&a, "web-1", "plain"), "systemctl reboot");
    let reboot = a.step("reboot").unwrap();
    assert_eq!(reboot.reboot.as_ref().unwrap().timeout_ms, 20 * 60 * 1000);
    assert!(reboot.become_root);
    let plain = a.step("plain").unwrap();
    assert_eq!(
        plain.reboot.as_ref().unwrap().timeout_ms,
        sluice_plan::reboot::DEFAULT_REBOOT_TIMEOUT_MS
    );
    // The key is written only for reboot steps: other plans keep their hash.
    let json = serde_json::to_value(&a).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert!(steps[0].get("reboot").is_none(), "{}", steps[0]);
    assert_eq!(
        steps[1]["reboot"],
        serde_json::json!({ "timeout_ms": 1_200_000 })
    );
}

#[test]
fn a_confirm_step_keeps_its_window_in_the_spec_and_other_steps_have_no_key() {
    let a = compile(
        r#"
name: t
targets: [web]
steps:
  - { id: plain, run: "true" }
  - id: port
    run: "sshd-set-port 2222"
    undo: "sshd-set-port 22"
    timeout: 30s
    confirm: { within: 2m, revert_timeout: 10m }
  - id: fw
    run: "nft -f new.nft"
    undo: "nft -f old.nft"
    confirm: { within: 90s }
"#,
        &[],
    );
    let port = a.step("port").unwrap().confirm.clone().unwrap();
    assert_eq!(port.within_ms, 120_000);
    assert_eq!(port.revert_timeout_ms, 600_000);
    let fw = a.step("fw").unwrap().confirm.clone().unwrap();
    assert_eq!(
        fw.revert_timeout_ms,
        sluice_plan::confirm::DEFAULT_REVERT_TIMEOUT_MS
    );
    // The key is written only for confirm steps: other plans keep their hash.
    let json = serde_json::to_value(&a).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert!(steps[0].get("confirm").is_none(), "{}", steps[0]);
    assert_eq!(
        steps[1]["confirm"],
        serde_json::json!({ "within_ms": 120_000, "revert_timeout_ms": 600_000 })
    );
}
