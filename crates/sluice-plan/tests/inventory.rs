//! Inventory sources: how each format is told apart, what each reads (connections included),
//! and every problem reported where it was written.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_plan::diagnostic::Diagnostics;
use sluice_plan::inventory::{
    Inventory, InventoryFormat, InventoryInput, LoadOptions, load, source::from_bytes,
};
use sluice_plan::{HostBecome, HostKeyChecking, TransportKind};

fn corpus(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/ansible-inventories")
        .join(case)
}

/// Loads `spec`; returns the inventory (when there is one) and every diagnostic as text.
fn open(
    spec: &str,
    format: Option<InventoryFormat>,
    options: &LoadOptions,
) -> (Option<Inventory>, Vec<String>) {
    let mut diags = Diagnostics::default();
    let input = InventoryInput {
        spec: spec.to_string(),
        format,
    };
    let inv = load(&input, options, &mut diags);
    let texts = diags
        .items
        .iter()
        .map(|d| format!("{}: {d}", if d.is_error() { "error" } else { "warning" }))
        .collect();
    (inv, texts)
}

fn text(name: &str, text: &str) -> (Option<Inventory>, Vec<String>) {
    let mut diags = Diagnostics::default();
    let inv = from_bytes(name, text.as_bytes().to_vec(), None, &mut diags);
    let texts = diags
        .items
        .iter()
        .map(|d| format!("{}: {d}", if d.is_error() { "error" } else { "warning" }))
        .collect();
    (inv, texts)
}

fn host_names(inv: &Inventory) -> Vec<&str> {
    inv.hosts.iter().map(|h| h.name.as_str()).collect()
}

#[test]
fn each_format_is_told_by_its_content() {
    let cases = [
        ("[web]\nweb1\n", InventoryFormat::AnsibleIni),
        ("# hosts\nweb1 a=1\nweb2\n", InventoryFormat::AnsibleIni),
        (
            "hosts:\n  web1: {}\ngroups:\n  web: { hosts: [web1] }\n",
            InventoryFormat::Sluice,
        ),
        ("all:\n  hosts:\n    web1:\n", InventoryFormat::AnsibleYaml),
        ("web:\n  hosts:\n    web1:\n", InventoryFormat::AnsibleYaml),
    ];
    for (content, format) in cases {
        let (inv, diags) = text("inv", content);
        let inv = inv.unwrap_or_else(|| panic!("{content}: {diags:?}"));
        assert_eq!(inv.format, format, "{content}");
        assert!(host_names(&inv).contains(&"web1"), "{content}");
    }
    // A typo in a sluice key stays sluice YAML, and says which key is unknown.
    let (_, diags) = text("inv.yaml", "host:\n  web1: { address: 10.0.0.1 }\n");
    assert!(
        diags
            .iter()
            .any(|d| d.contains("unknown key `host`") && d.contains("did you mean `hosts`")),
        "{diags:?}"
    );
}

#[test]
fn the_forced_format_wins_over_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory");
    // Valid as both: INI reads one host named `web:`... which it refuses; YAML reads a group.
    std::fs::write(&path, "web:\n").unwrap();
    let spec = path.to_str().unwrap();
    let (inv, _) = open(
        spec,
        Some(InventoryFormat::AnsibleYaml),
        &LoadOptions::default(),
    );
    assert!(inv.unwrap().group_named("web").is_some());
    let (_, diags) = open(
        spec,
        Some(InventoryFormat::AnsibleIni),
        &LoadOptions::default(),
    );
    assert!(
        diags
            .iter()
            .any(|d| d.contains("ends in `:` without a port")),
        "{diags:?}"
    );
}

#[test]
fn every_inventory_has_all_and_ungrouped() {
    let (inv, diags) = text(
        "inv.yaml",
        "hosts:\n  a: {}\n  b: {}\ngroups:\n  g: { hosts: [a] }\n",
    );
    let inv = inv.unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let names = |g: &str| -> Vec<&str> {
        inv.hosts_of(inv.group_named(g).unwrap())
            .iter()
            .map(|&h| inv.hosts[h].name.as_str())
            .collect()
    };
    assert_eq!(names("all"), ["a", "b"]);
    assert_eq!(names("ungrouped"), ["b"]);
    let (_, diags) = text(
        "inv.yaml",
        "hosts:\n  a: {}\ngroups:\n  all: { hosts: [a] }\n",
    );
    assert_eq!(
        diags,
        [
            "error: inv.yaml:4:3: `all` is an implicit group and cannot be declared (`all` holds every host and `ungrouped` the hosts in no group; put shared values in `defaults` or the plan's `vars`)"
        ]
    );
}

#[test]
fn ansible_connection_variables_become_the_connection() {
    let path = corpus("ini-connection").join("hosts.ini");
    let (inv, diags) = open(path.to_str().unwrap(), None, &LoadOptions::default());
    let inv = inv.unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    let web1 = inv.connection(inv.host_named("web-1").unwrap());
    assert_eq!(
        (web1.address.as_str(), web1.port, web1.user.as_deref()),
        ("192.0.2.11", 2201, Some("deploy"))
    );
    assert_eq!(web1.proxy_jump, ["jump@bastion.example.com"]);
    assert_eq!(
        web1.become_all,
        Some(HostBecome {
            user: Some("app".into())
        })
    );
    assert_eq!(web1.host_key_checking, HostKeyChecking::Strict);
    let web2 = inv.connection(inv.host_named("web-2").unwrap());
    assert_eq!(
        (web2.port, web2.user.as_deref()),
        (22, Some("admin")),
        "the group's user, all's port"
    );
    assert_eq!(web2.identity_files, ["~/.ssh/web_ed25519"]);
    let local = inv.connection(inv.host_named("controller").unwrap());
    assert_eq!(local.transport, TransportKind::Local);
    assert_eq!(local.workdir.as_deref(), Some("/tmp/sluice-demo"));
    assert_eq!(local.become_all, None);
}

#[test]
fn unsupported_connection_settings_are_reported_where_they_are_written() {
    let ini = "\
[web]
web-1 ansible_password=hunter2
web-2 ansible_connection=winrm
web-3 ansible_ssh_common_args='-o StrictHostKeyChecking=no'
web-4 ansible_ssh_common_args='-o ProxyCommand=\"ssh -W %h:%p b\"'
web-5 ansible_become_method=su ansible_become=yes
[web:vars]
ansible_host_key_checking=False
";
    let (inv, diags) = text("hosts.ini", ini);
    let inv = inv.unwrap();
    let errors: Vec<&String> = diags.iter().filter(|d| d.starts_with("error")).collect();
    assert_eq!(errors.len(), 5, "{diags:#?}");
    assert!(errors[0].starts_with("error: hosts.ini:2:7: ansible_password (set for host `web-1`): sluice takes no password"), "{}", errors[0]);
    assert!(diags.iter().any(|d| d.starts_with("error: hosts.ini:3:7: ansible_connection = \"winrm\" (host `web-2`): is a connection type sluice does not have")), "{diags:#?}");
    assert!(
        diags.iter().any(
            |d| d.starts_with("error: hosts.ini:4:7: ansible_ssh_common_args")
                && d.contains("StrictHostKeyChecking")
        ),
        "{diags:#?}"
    );
    assert!(
        diags.iter().any(|d| d.contains("ProxyCommand")
            && d.contains("write the jump host as `-J user@bastion`")),
        "{diags:#?}"
    );
    assert!(
        diags
            .iter()
            .any(|d| d.starts_with("error: hosts.ini:6:7: ansible_become_method")),
        "{diags:#?}"
    );
    // Reported once, where it is written, though it applies to five hosts.
    let unused: Vec<&String> = diags
        .iter()
        .filter(|d| d.contains("ansible_host_key_checking"))
        .collect();
    assert_eq!(unused.len(), 1, "{diags:#?}");
    assert!(
        unused[0].starts_with("warning: hosts.ini:8:1:"),
        "{}",
        unused[0]
    );
    // The password is gone from every variable a plan or a listing could show.
    let listed = serde_json::to_string(&sluice_plan::inventory::listing::list(&inv)).unwrap();
    assert!(!listed.contains("hunter2"), "{listed}");
}

#[test]
fn ini_problems_are_located() {
    let ini = "\
[web]
web[1:x]
web-2 novalue
[prod:children]
web
ghost
[nothing:vars]
a=1
[web:what]
";
    let (_, diags) = text("hosts.ini", ini);
    assert_eq!(
        diags,
        [
            "error: hosts.ini:2:1: host pattern `web[1:x]`: host range bounds must be numbers or single letters, found `[1:x]`",
            "error: hosts.ini:3:7: expected key=value after the host, found `novalue` (host variables are written `name=value`)",
            "error: hosts.ini:9:1: section [web:what] has an unknown type `what` (use [group], [group:children] or [group:vars])",
            "error: hosts.ini:6:1: section [prod:children] names group `ghost`, which is never declared (declare it with a `[ghost]` or `[ghost:children]` section)",
            "error: hosts.ini:7:2: section [nothing:vars] is for group `nothing`, which is never declared (declare it with a `[nothing]` or `[nothing:children]` section)",
        ]
    );
}

#[test]
fn cycles_among_children_are_named() {
    let (_, diags) = text("hosts.ini", "[a:children]\nb\n[b:children]\na\n");
    assert!(
        diags
            .iter()
            .any(|d| d.contains("group children form a cycle: a -> b -> a")),
        "{diags:?}"
    );
}

fn script(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("inventory.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_failing_or_garbled_or_stalled_script_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        script_timeout: Duration::from_millis(500),
    };
    let failing = script(dir.path(), "echo 'cannot reach the CMDB' >&2; exit 3");
    let (inv, diags) = open(&failing, None, &options);
    assert!(inv.is_none());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("inventory.sh --list` failed (exit status: 3)")
            && diags[0].contains("cannot reach the CMDB"),
        "{diags:?}"
    );

    let garbled = script(dir.path(), "printf '{\"web\": {\"hosts\": [\"a\",]}}'");
    let (_, diags) = open(&garbled, None, &options);
    assert!(
        diags[0].contains("inventory.sh --list (output):1:"),
        "{diags:?}"
    );
    assert!(diags[0].contains("is not JSON"), "{diags:?}");

    let stalled = script(dir.path(), "sleep 30");
    let started = std::time::Instant::now();
    let (_, diags) = open(&stalled, None, &options);
    assert!(
        diags[0].contains("did not finish within 0.5s; it was stopped"),
        "{diags:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the script was not stopped"
    );
}

#[test]
fn a_script_without_meta_is_asked_for_each_host() {
    let path = corpus("script-host").join("inventory.py");
    let (inv, diags) = open(path.to_str().unwrap(), None, &LoadOptions::default());
    let inv = inv.unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(inv.format, InventoryFormat::Script);
    assert_eq!(host_names(&inv), ["web-1", "web-2", "solo"]);
    assert_eq!(
        inv.connection(inv.host_named("web-1").unwrap()).address,
        "192.0.2.11"
    );
}

#[test]
fn ssh_config_hosts_are_the_aliases_without_wildcards() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("config"),
        "Include conf.d/*.conf\n\nHost web-1 web-2 !web-3 *.internal\n  HostName %h.example.com\n  User deploy\n\nHost web-2\n  Port 2200\n  User ignored\n\nHost *\n  ProxyJump jump@bastion\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/db.conf"),
        "Host db-1\n  HostName 192.0.2.5\n",
    )
    .unwrap();
    let spec = format!("ssh_config:{}", dir.path().join("config").display());
    let (inv, diags) = open(&spec, None, &LoadOptions::default());
    let inv = inv.unwrap();
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(inv.format, InventoryFormat::SshConfig);
    assert_eq!(host_names(&inv), ["db-1", "web-1", "web-2"]);
    let members = inv.hosts_of(inv.group_named("ssh_config").unwrap());
    assert_eq!(members.len(), 3);
    let web2 = inv.connection(inv.host_named("web-2").unwrap());
    assert_eq!(
        (
            web2.address.as_str(),
            web2.port,
            web2.user.as_deref(),
            web2.proxy_jump.as_slice()
        ),
        (
            "web-2.example.com",
            2200,
            Some("deploy"),
            &["jump@bastion".to_string()][..]
        )
    );
    assert_eq!(
        inv.connection(inv.host_named("db-1").unwrap()).address,
        "192.0.2.5"
    );
}

#[test]
fn nul_bytes_are_refused_in_every_format() {
    // `"'x\0y'"`: the shell quotes go, and Python reads `'x\0y'` as text with a NUL in it.
    let (_, diags) = text("hosts.ini", "[web]\nweb-1 tier=\"'x\\0y'\"\n");
    assert_eq!(
        diags,
        [
            "error: hosts.ini:2:7: variable \"tier\" of host `web-1` holds a NUL byte; no command, value or name can hold one (remove it)"
        ]
    );
    let (_, diags) = text("inv.yaml", "all:\n  hosts:\n    \"web\\0\":\n");
    assert!(diags.iter().any(|d| d.contains("NUL byte")), "{diags:?}");
}
