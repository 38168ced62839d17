//! End-to-end: secrets out of sight (issue 11). A plan whose guard, steps, health check and undos
//! use secrets (one with quotes and `$(…)`, one a multi-line key with control characters, the
//! sudo password) and a value registered from output that held one, run over SSH (the sshd fleet,
//! logging in as a user whose sudo asks for the password) and on local hosts, with and without
//! `become`:
//! - `ps` on the controller (the fleet's sshd hosts are processes of this machine too) never
//!   shows a secret, sampled throughout the run;
//! - stdout, stderr, `--json`, `sluice logs` (with and without `--raw`), `sluice show` (human
//!   and `--json`), `sluice audit export` and the store's raw bytes never hold one, nor the
//!   registered value, nor part of it;
//! - the commands still receive every value exactly (written to files on the host and compared),
//!   and a step's stdin stays empty.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_testfleet::Fleet;
use sluice_testfleet::sudo::{PASSWORD_USER, TARGET_USER};

mod support;
use support::sluice;

/// A multi-line key with control characters, from a file.
const PEM: &str = "-----BEGIN TEST KEY-----\nAbC+/=Zq\x01\x07\x1b[31m\tz\r\nline3-pem é ✓\n-----END TEST KEY-----";

/// The values of one run and where its commands write what they received.
struct Case {
    dir: PathBuf,
    /// World-writable: steps write there as the login user and as `nobody`.
    drop: PathBuf,
    store: PathBuf,
    tok: String,
    sudo_pw: String,
}

impl Case {
    fn new(dir: &Path, sudo_pw: &str) -> Case {
        let drop = dir.join("drop");
        std::fs::create_dir_all(&drop).unwrap();
        std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        let d = drop.display();
        // Quotes, `$(…)`, backticks, a backslash, `$HOME` and a glob: if the shell ever parsed
        // it, a `pwned` file would appear.
        let tok =
            format!("sEcReT-7f3a 'q' \"d\" $(touch {d}/pwned) `touch {d}/pwned2` \\ $HOME * end");
        std::fs::write(dir.join("key.pem"), format!("{PEM}\n")).unwrap();
        Case {
            dir: dir.to_path_buf(),
            drop,
            store: dir.join("store"),
            tok,
            sudo_pw: sudo_pw.to_string(),
        }
    }

    /// What the `login` step registers: its output, which holds the token.
    fn session(&self) -> String {
        format!("SeSs{}IoN", self.tok)
    }

    /// Parts of the values no output or process listing may show. `SeSs***` and `***IoN` are
    /// the registered value with only the token in it masked.
    fn needles(&self) -> Vec<String> {
        vec![
            "sEcReT-7f3a".into(),
            "AbC+/=Zq".into(),
            "line3-pem".into(),
            "SeSs***".into(),
            "***IoN".into(),
            self.sudo_pw.clone(),
        ]
    }

    fn plan(&self, targets: &str) -> PathBuf {
        let drop = self.drop.display();
        let pem = self.dir.join("key.pem");
        let yaml = format!(
            r#"name: secrets-e2e
targets: [{targets}]
secrets:
  tok: {{ env: SLUICE_E2E_TOK }}
  pem: {{ file: {pem} }}
  sudo_pw: {{ env: SLUICE_E2E_SUDO_PW }}
become_password: sudo_pw
waves:
  - {{ name: all, size: 100% }}
failure: {{ max_failed: 0, action: rollback, rollback_scope: wave }}
health:
  checks:
    - {{ name: app, run: 'printf "%s" {{{{secrets.tok}}}} > "{drop}/{{{{host.name}}}}.health"; sleep 1; exit 1' }}
  retries: 0
  interval: 100ms
  timeout: 20s
steps:
  - id: login
    skip_if: 'sleep 1; test {{{{secrets.tok}}}} = never'
    run: 'printf "SeSs%sIoN\n" {{{{secrets.tok}}}}; sleep 1'
    register: session
  - id: write
    run: 'printf "%s" {{{{secrets.tok}}}} > "{drop}/{{{{host.name}}}}.tok"; printf "%s" {{{{secrets.pem}}}} > "{drop}/{{{{host.name}}}}.pem"; printf "%s" {{{{session}}}} > "{drop}/{{{{host.name}}}}.session"; sleep 1'
    undo: 'printf "%s" {{{{secrets.tok}}}} > "{drop}/{{{{host.name}}}}.undo"; sleep 1'
  - id: as_nobody
    become_user: {TARGET_USER}
    skip_if: 'sleep 1; test {{{{secrets.pem}}}} = never'
    run: 'printf "%s" {{{{secrets.tok}}}} > "{drop}/{{{{host.name}}}}.become"; cat > "{drop}/{{{{host.name}}}}.stdin"; sleep 1'
    undo: 'printf "%s" {{{{session}}}} > "{drop}/{{{{host.name}}}}.become-undo"; sleep 1'
"#,
            pem = pem.display()
        );
        let path = self.dir.join("plan.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn sluice(&self) -> Command {
        let mut c = sluice();
        c.env("SLUICE_STATE_DIR", &self.store)
            .env("SLUICE_E2E_TOK", &self.tok)
            .env("SLUICE_E2E_SUDO_PW", &self.sudo_pw)
            .stdin(Stdio::null());
        c
    }

    /// Runs `apply` while sampling `ps` until it ends. Returns its output and the samples'
    /// count.
    fn apply_watched(&self, plan: &Path, inventory: &Path, extra: &[&str]) -> (Output, Watched) {
        let child = self
            .sluice()
            .arg("apply")
            .arg(plan)
            .arg("-i")
            .arg(inventory)
            .args(["--yes", "--color", "never"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let watch = Watch::start(self.needles(), self.drop.display().to_string());
        let out = child.wait_with_output().unwrap();
        (out, watch.stop())
    }

    /// Every value reached its command exactly, on every host, and nothing in them ran.
    fn check_values_arrived(&self, hosts: &[&str]) {
        let read = |name: &str| {
            std::fs::read(self.drop.join(name))
                .unwrap_or_else(|e| panic!("{name} was not written: {e}"))
        };
        for host in hosts {
            for (file, expected) in [
                ("tok", self.tok.clone()),
                ("pem", PEM.to_string()),
                ("session", self.session()),
                ("become", self.tok.clone()),
                ("stdin", String::new()),
                ("health", self.tok.clone()),
                ("undo", self.tok.clone()),
                ("become-undo", self.session()),
            ] {
                let got = read(&format!("{host}.{file}"));
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    expected,
                    "{host}.{file}: the command did not get the exact value"
                );
            }
        }
        for pwned in ["pwned", "pwned2"] {
            assert!(!self.drop.join(pwned).exists(), "a secret ran as code");
        }
    }

    /// No output of the run, of `logs`, `show`, `audit export`, and no byte of the store holds
    /// any part of a secret.
    fn check_nothing_shows(&self, apply: &Output, run: &str) {
        let mut shown = vec![("apply".to_string(), text(apply))];
        for args in [
            vec!["logs", run],
            vec!["logs", run, "--raw"],
            vec!["show", run],
            vec!["show", run, "--json"],
            vec!["audit", "export"],
        ] {
            let out = self.sluice().args(&args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", text(&out));
            shown.push((args.join(" "), text(&out)));
        }
        assert!(
            shown[1].1.contains("==> ") && shown[5].1.contains("step_intent"),
            "logs and export have the run: {shown:?}"
        );
        for (what, out) in &shown {
            for needle in self.needles() {
                assert!(!out.contains(&needle), "{what} shows {needle:?}:\n{out}");
            }
        }
        let mut files = vec![self.store.clone()];
        let mut bytes = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            bytes += raw.len();
            for needle in self.needles() {
                let n = needle.as_bytes();
                assert!(
                    !raw.windows(n.len()).any(|w| w == n),
                    "{} holds {needle:?}",
                    path.display()
                );
            }
        }
        assert!(bytes > 0, "the store was read");
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Samples `ps -ww -eo args` in a thread until stopped.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Watched>,
}

/// What the samples saw.
struct Watched {
    samples: usize,
    /// Samples that caught a command of this run (its shell, whose prologue reads the
    /// secrets): proof the sampling overlapped the commands.
    saw_commands: usize,
    leaks: Vec<String>,
}

impl Watch {
    /// Samples until stopped; `ours` is in the text of this run's commands.
    fn start(needles: Vec<String>, ours: String) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut watched = Watched {
                samples: 0,
                saw_commands: 0,
                leaks: Vec::new(),
            };
            while !stopped.load(Ordering::SeqCst) {
                let out = Command::new("ps")
                    .args(["-ww", "-eo", "args"])
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run ps ({e}): apt-get install procps"));
                let listing = String::from_utf8_lossy(&out.stdout);
                watched.samples += 1;
                if listing
                    .lines()
                    .any(|l| l.contains("__sluice_read") && l.contains(&ours))
                {
                    watched.saw_commands += 1;
                }
                for line in listing.lines() {
                    if needles.iter().any(|n| line.contains(n.as_str())) {
                        watched.leaks.push(line.to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            watched
        });
        Watch { stop, thread }
    }

    fn stop(self) -> Watched {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// Samples of a run that lasts several seconds, most of them while a command runs.
fn check_ps(watched: &Watched) {
    eprintln!(
        "ps samples: {}, with a command's shell: {}, leaks: {}",
        watched.samples,
        watched.saw_commands,
        watched.leaks.len()
    );
    let first: Vec<_> = watched.leaks.iter().take(5).collect();
    assert!(
        watched.leaks.is_empty(),
        "{} ps lines show a secret, the first: {first:#?}",
        watched.leaks.len()
    );
    assert!(watched.samples >= 50, "{} samples", watched.samples);
    assert!(
        watched.saw_commands >= 20,
        "{} samples",
        watched.saw_commands
    );
}

#[test]
fn secrets_stay_out_of_process_listings_and_every_output_over_ssh_with_and_without_become() {
    let users = sluice_testfleet::sudo::ensure()
        .unwrap_or_else(|e| panic!("cannot prepare the become test users: {e}"));
    let fleet = Fleet::start(2).unwrap();
    fleet.open_to_other_users().unwrap();
    let inventory = fleet.write_inventory().unwrap();
    let text = std::fs::read_to_string(&inventory).unwrap().replace(
        &format!("user: \"{}\"", fleet.user()),
        &format!("user: {PASSWORD_USER}"),
    );
    std::fs::write(&inventory, text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let case = Case::new(dir.path(), &users.password);
    let (out, watched) = case.apply_watched(&case.plan("fleet"), &inventory, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", self::text(&out));
    check_ps(&watched);
    case.check_values_arrived(&["host1", "host2"]);
    let run = support::events(&out)[0]["run"]
        .as_str()
        .unwrap()
        .to_string();
    case.check_nothing_shows(&out, &run);
}

#[test]
fn secrets_stay_out_of_process_listings_and_every_output_on_local_hosts_with_and_without_become() {
    let dir = tempfile::tempdir().unwrap();
    // Not the sudo password of any user here: local `become` runs as root, whose sudo asks
    // nothing, so it is read with the other secrets and never sent.
    let case = Case::new(dir.path(), "local-sudo-pw-5150");
    let inventory = dir.path().join("inventory.yaml");
    let state = dir.path().join("hosts");
    std::fs::write(
        &inventory,
        format!(
            "defaults: {{ transport: local }}\nhosts:\n  l1: {{ workdir: {0}/l1 }}\n  l2: {{ workdir: {0}/l2 }}\n",
            state.display()
        ),
    )
    .unwrap();
    // Human output, with every command shown (`-v`).
    let (out, watched) = case.apply_watched(&case.plan("all"), &inventory, &["-v"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(r#"printf "%s" *** > "#),
        "commands are shown, masked: {}",
        text(&out)
    );
    check_ps(&watched);
    case.check_values_arrived(&["l1", "l2"]);
    let runs = case.sluice().args(["runs", "--json"]).output().unwrap();
    let run = String::from_utf8_lossy(&runs.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["run"].as_str().map(str::to_string))
        .expect("the run is listed");
    case.check_nothing_shows(&out, &run);
}
