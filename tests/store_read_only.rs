//! Reading the audit store changes nothing (issue 16 fault 5): `runs`, `show`, `logs`,
//! `audit verify` and `audit export` leave the store's bytes, its mtime and the state directory
//! as they were; they work on a read-only mount; and they read a store a live run is writing, or
//! one whose writer was killed, without writing to it either.
//!
//! The tests run as root, whom `chmod` does not stop, so the read-only case is a real read-only
//! bind mount (`mount --bind`, then `mount -o remount,bind,ro`): the kernel refuses every write
//! on it, root's included.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

mod store_support;
use store_support::{real_store, sluice, store_with, text};

/// Everything a reader could change: each file's bytes (sha256) and mtime.
fn snapshot(dir: &Path) -> Vec<(String, String, SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                hex::encode(digest),
                mtime,
            )
        })
        .collect();
    files.sort();
    files
}

/// Every read command, with what its output must show.
fn read_commands(run: &str) -> Vec<(Vec<String>, &'static str)> {
    let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    vec![
        (words("runs"), "rolling"),
        (words("runs --json"), "\"plan\":\"failing\""),
        (words(&format!("show {run}")), "run_finished"),
        (words(&format!("show {run} --json")), "run_finished"),
        (words(&format!("logs {run}")), "v1 on web1"),
        (words("audit verify"), "chain intact"),
        (words("audit verify --json"), "\"ok\":true"),
        (words("audit export"), "\"end\""),
        (words(&format!("audit export --run {run}")), "\"end\""),
    ]
}

fn check_reads(state: &Path) {
    let store = real_store();
    // The first applied run registered output that `logs` shows.
    let run = &store.runs[0];
    for (args, shows) in read_commands(run) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sluice(state, &args);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "sluice {args:?}: {said}");
        assert!(
            said.contains(shows),
            "sluice {args:?} should show {shows}: {said}"
        );
    }
}

#[test]
fn read_commands_leave_the_store_untouched() {
    let store = real_store();
    let dir = store_with(&store.bytes());
    let before = snapshot(dir.path());
    // mtime has a resolution the reads could hide in: give them time to show.
    std::thread::sleep(Duration::from_millis(20));
    check_reads(dir.path());
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read command changed the state directory"
    );
}

/// A read-only bind mount of a directory, unmounted on drop.
struct ReadOnlyMount {
    path: PathBuf,
}

impl ReadOnlyMount {
    fn new(source: &Path, target: &Path) -> Self {
        std::fs::create_dir_all(target).unwrap();
        let mount = |args: &[&str]| {
            let out = Command::new("mount")
                .args(args)
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run mount ({e}): install util-linux (apt-get install mount)")
                });
            assert!(
                out.status.success(),
                "mount {args:?} failed (these tests run as root, like the SSH tests: `sudo cargo test`): {}",
                text(&out.stderr)
            );
        };
        let (source, target_str) = (source.to_str().unwrap(), target.to_str().unwrap());
        mount(&["--bind", source, target_str]);
        let mounted = ReadOnlyMount {
            path: target.to_path_buf(),
        };
        mount(&["-o", "remount,bind,ro", target_str]);
        mounted
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn read_commands_work_on_a_read_only_mount() {
    let store = real_store();
    let dir = store_with(&store.bytes());
    let mounted = dir.path().join("ro");
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("audit.redb"), store.bytes()).unwrap();
    let mount = ReadOnlyMount::new(source.path(), &mounted);
    // The mount refuses writes, root's included.
    assert!(std::fs::write(mount.path.join("probe"), b"x").is_err());
    let before = snapshot(&mount.path);
    check_reads(&mount.path);
    assert_eq!(snapshot(&mount.path), before);
    // A writer is refused with the reason, not as a damaged store.
    let out = sluice(&mount.path, &["unlock", &store.runs[0]]);
    assert_ne!(out.status.code(), Some(0));
    let said = text(&out.stderr);
    assert!(
        said.contains("Read-only file system") && !said.contains("damaged"),
        "{said}"
    );
}

/// A plan whose one step sleeps, so the run holds the store open while it waits.
fn sleeping_run(state: &Path) -> std::process::Child {
    let dir = state.parent().unwrap();
    std::fs::write(
        dir.join("sleep.yaml"),
        "name: sleeper\ntargets: [web1]\nsteps:\n  - { id: nap, run: \"sleep 10\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("inventory.yaml"),
        "hosts:\n  web1: { transport: local }\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["apply", "sleep.yaml", "-i", "inventory.yaml", "--yes"])
        .current_dir(dir)
        .env("SLUICE_STATE_DIR", state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn run_status(state: &Path, plan: &str) -> String {
    let out = sluice(state, &["runs", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["plan"] == plan)
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Readers beside a writer in another process: they see its run as it goes, and after it is
/// killed (the store then needs the crash recovery only a writer may do) they still read it,
/// and still write nothing.
#[test]
fn readers_beside_a_live_run_and_after_it_was_killed() {
    let store = real_store();
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("audit.redb"), store.bytes()).unwrap();
    let mut apply = sleeping_run(&state);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while run_status(&state, "sleeper") != "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never showed as running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    check_reads(&state);
    apply.kill().unwrap();
    apply.wait().unwrap();
    let before = snapshot(&state);
    assert_eq!(run_status(&state, "sleeper"), "interrupted");
    check_reads(&state);
    assert_eq!(snapshot(&state), before);
    // The next writer recovers the store and it reads as before.
    let out = sluice(&state, &["unlock", "--by", "ops", &latest_run(&state)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_reads(&state);
}

fn latest_run(state: &Path) -> String {
    let out = sluice(state, &["runs", "--json"]);
    let first = text(&out.stdout).lines().next().unwrap().to_string();
    serde_json::from_str::<serde_json::Value>(&first).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string()
}
