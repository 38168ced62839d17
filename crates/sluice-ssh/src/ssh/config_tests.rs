//! Tests of `config.rs`: precedence, `Host`, `Match` and `Include`, with files in temp dirs.

use super::*;

const CONFIG: &str = "\
Host web-* !web-9
    HostName %h.example.net
    User deploy
    Port 2222
    IdentityFile /keys/web
    ProxyJump bastion1,admin@bastion2:22
    StrictHostKeyChecking accept-new

Match host foo
    User never

Host *
    User fallback
    IdentityFile /keys/default
";

#[test]
fn fills_gaps_first_value_wins_identity_files_accumulate() {
    let cfg = SshConfig::parse(CONFIG);
    let t = cfg.apply(&HostTarget::new("web-1", "web-1"));
    assert_eq!(t.address, "web-1.example.net");
    assert_eq!(t.user.as_deref(), Some("deploy"));
    assert_eq!(t.port, 2222);
    assert_eq!(
        t.identity_files,
        vec![PathBuf::from("/keys/web"), PathBuf::from("/keys/default")]
    );
    assert_eq!(t.proxy_jump, vec!["bastion1", "admin@bastion2:22"]);
    assert_eq!(t.host_key_policy, HostKeyPolicy::AcceptNew);
}

#[test]
fn inventory_values_win_and_negation_excludes() {
    let cfg = SshConfig::parse(CONFIG);
    let mut inv = HostTarget::new("web-2", "10.0.0.2");
    inv.user = Some("ops".into());
    inv.port = 22022;
    let t = cfg.apply(&inv);
    assert_eq!(
        (t.address.as_str(), t.user.as_deref(), t.port),
        ("10.0.0.2", Some("ops"), 22022)
    );
    let t = cfg.apply(&HostTarget::new("web-9", "web-9"));
    assert_eq!(t.user.as_deref(), Some("fallback"));
    assert_eq!(t.port, 22);
}

/// (user, port) that `config` gives the inventory host `name` (address = name unless given).
fn check(config: &str, target: HostTarget) -> (Option<String>, u16) {
    let t = SshConfig::parse(config).apply(&target);
    (t.user, t.port)
}

#[test]
fn match_host_sees_the_hostname_obtained_so_far_and_originalhost_the_inventory_name() {
    let config = "\
Host db
    HostName db.internal.example
Match host *.internal.example
    User internal
Match originalhost db
    Port 2200
";
    assert_eq!(
        check(config, HostTarget::new("db", "db")),
        (Some("internal".into()), 2200)
    );
    // The inventory's own address counts as the host name too.
    assert_eq!(
        check(config, HostTarget::new("x", "x.internal.example")),
        (Some("internal".into()), 22)
    );
    assert_eq!(check(config, HostTarget::new("web", "web")), (None, 22));
}

#[test]
fn match_user_all_negation_and_lists() {
    let config = "\
Match user admin,root
    Port 2201
Match !host web-*
    User other
Match all
    Port 2299
";
    let mut admin = HostTarget::new("web-1", "web-1");
    admin.user = Some("admin".into());
    assert_eq!(check(config, admin), (Some("admin".into()), 2201));
    let mut bob = HostTarget::new("db-1", "db-1");
    bob.user = Some("bob".into());
    assert_eq!(check(config, bob), (Some("bob".into()), 2299));
    // No inventory user: `User other` applied, and `Match user` later would see it.
    assert_eq!(
        check(config, HostTarget::new("db-1", "db-1")).0.as_deref(),
        Some("other")
    );
}

#[test]
fn match_exec_canonical_and_unknown_criteria_never_apply() {
    let config = "\
Match exec \"true\"
    Port 1
Match canonical all
    Port 2
Match tagged x
    Port 3
Match final host *
    Port 4
";
    assert_eq!(check(config, HostTarget::new("h", "h")).1, 4);
}

#[test]
fn include_reads_globs_in_order_relative_to_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("config.d")).unwrap();
    std::fs::write(d.join("config.d/20-late"), "Port 2020\nUser late\n").unwrap();
    std::fs::write(d.join("config.d/10-early"), "Port 1010\n").unwrap();
    std::fs::write(d.join("config.d/.hidden"), "Port 9999\n").unwrap();
    std::fs::write(d.join("more"), "IdentityFile /keys/more\n").unwrap();
    let top = d.join("config");
    std::fs::write(
        &top,
        format!(
            "Include config.d/* {}\nInclude missing-file\nIdentityFile /keys/top\n",
            d.join("mo?e").display()
        ),
    )
    .unwrap();
    let t = SshConfig::load(&top).apply(&HostTarget::new("h", "h"));
    assert_eq!((t.port, t.user.as_deref()), (1010, Some("late")));
    assert_eq!(
        t.identity_files,
        vec![PathBuf::from("/keys/more"), PathBuf::from("/keys/top")]
    );
}

#[test]
fn include_inside_a_block_applies_only_when_the_block_does_and_nesting_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The included file has its own Host block; it must not leak out of the outer block.
    std::fs::write(d.join("web.conf"), "Port 8022\nHost *\nUser from-include\n").unwrap();
    std::fs::write(d.join("loop.conf"), "Include loop.conf\n").unwrap();
    let top = d.join("config");
    std::fs::write(
        &top,
        "Host web-*\n  Include web.conf\nHost *\n  Include loop.conf\n  User default\n",
    )
    .unwrap();
    let cfg = SshConfig::load(&top);
    let web = cfg.apply(&HostTarget::new("web-1", "web-1"));
    assert_eq!(
        (web.port, web.user.as_deref()),
        (8022, Some("from-include"))
    );
    let db = cfg.apply(&HostTarget::new("db-1", "db-1"));
    assert_eq!((db.port, db.user.as_deref()), (22, Some("default")));
}
