//! A real audit store for the store tests (`mod store_support;`): a few runs of `sluice apply`
//! on local hosts, made once per test binary, and damaged copies of it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The store every test copies, and what is known about it.
pub struct RealStore {
    /// Holds `audit.redb` and nothing else.
    pub state: PathBuf,
    /// A saved plan artifact (`sluice plan --out`) applied to the store, for write commands.
    pub plan: PathBuf,
    /// The runs recorded, oldest first.
    pub runs: Vec<String>,
    /// `sluice audit export` of the store: the records and the end line.
    pub export: Vec<u8>,
}

impl RealStore {
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.state.join("audit.redb")).unwrap()
    }

    /// The exported records, one line each, without the end line.
    pub fn records(&self) -> Vec<&[u8]> {
        let mut lines: Vec<&[u8]> = self.export.split(|b| *b == b'\n').collect();
        lines.retain(|l| !l.is_empty() && !l.starts_with(b"{\"end\""));
        lines
    }
}

/// `sluice` run on the store in `state` (`SLUICE_STATE_DIR`), with no colour and no terminal.
pub fn sluice(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const INVENTORY: &str = "hosts:
  web1: { transport: local }
  web2: { transport: local }
  web3: { transport: local }
";

const PLAN: &str = "name: rolling
targets: [web1, web2, web3]
waves:
  - { name: canary, size: 1 }
  - { name: rest, size: 100% }
steps:
  - { id: version, run: \"echo v1 on {{host.name}}; seq 1 300\", register: old }
  - { id: patch, run: \"echo patched {{host.name}}\", undo: \"echo undo {{host.name}}\" }
";

const FAILING: &str = "name: failing
targets: [web1, web2, web3]
waves:
  - { name: canary, size: 1 }
  - { name: rest, size: 100% }
steps:
  - { id: patch, run: \"echo about to fail >&2; exit 3\", undo: \"echo undo\" }
";

/// The store, made on first use: two runs that applied, one rolled back, a plan approval.
pub fn real_store() -> &'static RealStore {
    static STORE: OnceLock<RealStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sluice-real-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = root.join("state");
        std::fs::create_dir_all(&state).unwrap();
        for (name, content) in [
            ("inventory.yaml", INVENTORY),
            ("plan.yaml", PLAN),
            ("failing.yaml", FAILING),
        ] {
            std::fs::write(root.join(name), content).unwrap();
        }
        let file = |name: &str| root.join(name).to_str().unwrap().to_string();
        let plan = root.join("plan.json");
        let planned = sluice(
            &state,
            &[
                "plan",
                &file("plan.yaml"),
                "-i",
                &file("inventory.yaml"),
                "--out",
                plan.to_str().unwrap(),
            ],
        );
        assert!(planned.status.success(), "{}", text(&planned.stderr));
        let approved = sluice(
            &state,
            &["approve-plan", plan.to_str().unwrap(), "--by", "carol"],
        );
        assert!(approved.status.success(), "{}", text(&approved.stderr));
        for (args, code) in [
            (vec!["apply", "--plan", plan.to_str().unwrap(), "--yes"], 0),
            (vec!["apply", "--plan", plan.to_str().unwrap(), "--yes"], 0),
            (
                vec![
                    "apply",
                    &file("failing.yaml"),
                    "-i",
                    &file("inventory.yaml"),
                    "--yes",
                ],
                1,
            ),
        ] {
            let out = sluice(&state, &args);
            assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        }
        // Writers leave their lock file; the copies hold the store alone.
        let _ = std::fs::remove_file(state.join("audit.redb.lock"));
        let listed = sluice(&state, &["runs", "--json"]);
        let mut runs: Vec<String> = text(&listed.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["run"].to_string())
            .map(|r| r.trim_matches('"').to_string())
            .collect();
        runs.reverse();
        assert_eq!(runs.len(), 3, "{}", text(&listed.stderr));
        let export = sluice(&state, &["audit", "export"]);
        assert!(export.status.success(), "{}", text(&export.stderr));
        RealStore {
            state,
            plan,
            runs,
            export: export.stdout,
        }
    })
}

/// A fresh state directory holding `bytes` as its store.
pub fn store_with(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit.redb"), bytes).unwrap();
    dir
}

/// One way of damaging the store.
pub struct Damage {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The real store damaged in many ways: cut short at many lengths (one byte short, page
/// boundaries, halfway, into the header), one byte changed at offsets spread over the whole
/// file, and whole 4 KiB pages zeroed.
pub fn damaged_corpus(store: &[u8]) -> Vec<Damage> {
    const PAGE: usize = 4096;
    let len = store.len();
    let mut corpus = Vec::new();
    for cut in [
        len - 1,
        len - 100,
        len - PAGE,
        len - PAGE - 1,
        len * 3 / 4,
        len / 2,
        len / 3,
        PAGE * 2,
        PAGE + 1,
        PAGE,
        300,
        10,
    ] {
        corpus.push(Damage {
            name: format!("cut to {cut} of {len} bytes"),
            bytes: store[..cut].to_vec(),
        });
    }
    let spread = (0..20).map(|i| 97 + i * (len - 200) / 20);
    for at in [9, 70, 200, 300].into_iter().chain(spread) {
        let mut bytes = store.to_vec();
        bytes[at] ^= 0xa5;
        corpus.push(Damage {
            name: format!("byte {at} changed"),
            bytes,
        });
    }
    for page in (0..len / PAGE).step_by(3) {
        let mut bytes = store.to_vec();
        bytes[page * PAGE..(page + 1) * PAGE].fill(0);
        corpus.push(Damage {
            name: format!("page {page} zeroed"),
            bytes,
        });
    }
    corpus
}

/// How a bounded command ended.
pub struct Bounded {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `sluice ARGS` on the store in `state` with at most `memory` bytes of address space (under
/// `prlimit`, so a blow-up fails an allocation instead of filling the machine) and kills it
/// after `time`.
pub fn bounded(state: &Path, args: &[&str], memory: u64, time: Duration) -> Bounded {
    let prlimit = which("prlimit").unwrap_or_else(|| {
        panic!("prlimit is needed to bound the memory of sluice: install util-linux (apt-get install util-linux)")
    });
    let mut child = Command::new(prlimit)
        .arg(format!("--as={memory}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Drain the pipes while waiting, so a chatty child never blocks on them.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > time {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Bounded {
        code: status.code(),
        stdout: text(&out.join().unwrap()),
        stderr: text(&err.join().unwrap()),
        elapsed,
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
