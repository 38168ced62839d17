//! `sluice inventory`, Ansible inventories and `--limit` end to end: the demo fleet as an INI
//! inventory (local transport), and a real OpenSSH fleet reached through Ansible's connection
//! variables, with `apply` and `exec` narrowed by `--limit`.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use sluice_testfleet::Fleet;

mod support;
use support::sluice;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ok(out: Output) -> Output {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn plan_json(inventory: &str) -> serde_json::Value {
    let out = ok(sluice()
        .current_dir(repo())
        .args([
            "plan",
            "playbooks/demo-rolling-patch.yaml",
            "--json",
            "-i",
            inventory,
        ])
        .output()
        .unwrap());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_ini_demo_inventory_plans_the_same_rollout_as_the_yaml_one() {
    let (ini, yaml) = (
        plan_json("inventory/demo.ini"),
        plan_json("inventory/demo.yaml"),
    );
    assert_eq!(ini["waves"], yaml["waves"]);
    let hosts = |plan: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        plan["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["name"].clone(), h["connection"].clone()))
            .collect()
    };
    assert_eq!(hosts(&ini), hosts(&yaml));
    assert_eq!(ini["hosts"][0]["vars"]["service"], "demo-app");
}

#[test]
fn inventory_list_and_graph_show_the_demo_ini() {
    let list = ok(sluice()
        .current_dir(repo())
        .args([
            "inventory",
            "list",
            "-i",
            "inventory/demo.ini",
            "--color",
            "never",
        ])
        .output()
        .unwrap());
    insta::assert_snapshot!(
        "inventory-list-demo-ini",
        String::from_utf8_lossy(&list.stderr)
    );
    let graph = ok(sluice()
        .current_dir(repo())
        .args(["inventory", "graph", "-i", "inventory/demo.ini"])
        .output()
        .unwrap());
    insta::assert_snapshot!(
        "inventory-graph-demo-ini",
        String::from_utf8_lossy(&graph.stdout)
    );
    let host = ok(sluice()
        .current_dir(repo())
        .args(["inventory", "host", "-i", "inventory/demo.ini", "demo-3"])
        .output()
        .unwrap());
    let vars: serde_json::Value = serde_json::from_slice(&host.stdout).unwrap();
    assert_eq!(
        vars,
        serde_json::json!({
            "ansible_connection": "local", "service": "demo-app",
            "sluice_workdir": "./demo-state/demo-3"
        })
    );
}

#[test]
fn apply_and_exec_with_limit_touch_only_the_limited_demo_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(sluice()
        .current_dir(dir.path())
        .arg("apply")
        .arg(repo().join("playbooks/demo-rolling-patch.yaml"))
        .arg("-i")
        .arg(repo().join("inventory/demo.ini"))
        .args([
            "--limit",
            "demo:!demo-1:!demo-6",
            "--yes",
            "--color",
            "never",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 hosts"), "{stderr}");
    for h in 1..=6 {
        let version = dir.path().join(format!("demo-state/demo-{h}/version"));
        let patched = std::fs::read_to_string(&version).ok();
        if (2..=5).contains(&h) {
            assert_eq!(patched.as_deref(), Some("2.0.1\n"), "demo-{h}");
        } else {
            assert_eq!(
                patched, None,
                "demo-{h} is outside the limit but was patched"
            );
        }
    }
    let exec = ok(sluice()
        .current_dir(dir.path())
        .args(["exec", "all", "--json", "--limit", "demo-2,demo-3", "-i"])
        .arg(repo().join("inventory/demo.ini"))
        .args(["--", "cat version"])
        .stdin(Stdio::null())
        .output()
        .unwrap());
    let hosts: Vec<String> = String::from_utf8_lossy(&exec.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["host"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(hosts.contains(&"demo-2".to_string()) && hosts.contains(&"demo-3".to_string()));

    let none = sluice()
        .current_dir(dir.path())
        .args(["exec", "all", "--limit", "nothing-here", "-i"])
        .arg(repo().join("inventory/demo.ini"))
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(
        none.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    assert!(String::from_utf8_lossy(&none.stderr).contains("keeps none of the 6 targeted host(s)"));
}

/// The fleet as an Ansible INI inventory: every connection setting through Ansible's variables.
fn ansible_inventory(fleet: &Fleet) -> PathBuf {
    let mut ini = String::from("[fleet]\n");
    for i in 1..=fleet.len() {
        ini.push_str(&format!(
            "host{i} ansible_host=127.0.0.1 ansible_port={}\n",
            fleet.port(i)
        ));
    }
    ini.push_str(&format!(
        "\n[fleet:vars]\nansible_user={}\nansible_ssh_private_key_file={}\nansible_ssh_common_args='-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes'\n",
        fleet.user(),
        fleet.identity_file().display(),
        fleet.known_hosts().display()
    ));
    let path = fleet.dir().join("hosts.ini");
    std::fs::write(&path, ini).unwrap();
    path
}

#[test]
fn fleet_apply_and_exec_through_an_ansible_inventory_honour_the_limit() {
    let fleet = Fleet::start(4).expect("start fleet");
    let inventory = ansible_inventory(&fleet);
    let plan = fleet.dir().join("plan.yaml");
    std::fs::write(
        &plan,
        "name: limited\ntargets: [fleet]\nwaves: [{ name: one, size: 1 }, { name: rest, size: 100% }]\nsteps:\n  - { id: mark, run: 'echo $FLEET_HOST >> \"$FLEET_ROOT/log\"' }\n",
    )
    .unwrap();
    let out = ok(sluice()
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .args(["--limit", "fleet:!host1:!host4", "--yes", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap());
    let events = support::events(&out);
    let waves: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "wave_started")
        .collect();
    assert_eq!(
        waves.len(),
        2,
        "the waves are split on the two limited hosts"
    );
    for i in 1..=4 {
        let log = std::fs::read_to_string(fleet.root(i).join("log")).unwrap_or_default();
        let expected = if i == 2 || i == 3 {
            format!("host{i}\n")
        } else {
            String::new()
        };
        assert_eq!(log, expected, "host{i}");
    }
    let exec = ok(sluice()
        .args(["exec", "fleet", "--limit", "fleet[1:2]", "-i"])
        .arg(&inventory)
        .args(["--", "echo $FLEET_HOST"])
        .stdin(Stdio::null())
        .output()
        .unwrap());
    let stderr = String::from_utf8_lossy(&exec.stderr);
    assert!(stderr.contains("2 hosts: 2 ok"), "{stderr}");
    assert!(
        stderr.contains("host2 (1)\nhost2\n") && stderr.contains("host3 (1)\nhost3\n"),
        "{stderr}"
    );
}
