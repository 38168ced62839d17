//! Test fleets of real OpenSSH `sshd` processes on 127.0.0.1, for tests and benchmarks.
//!
//! ```no_run
//! let fleet = sluice_testfleet::Fleet::start(3).unwrap();
//! let inventory = fleet.write_inventory().unwrap();   // hosts host1..host3, strict host keys
//! // ... run sluice against `inventory`, then read what a host did:
//! let state = std::fs::read_to_string(fleet.root(2).join("app/state"));
//! // every sshd is killed when `fleet` is dropped, also when the test panics.
//! ```
//!
//! Layout of a fleet directory `DIR`:
//! - `DIR/id_ed25519` (+ `.pub`): the one user key every host accepts.
//! - `DIR/known_hosts`: `[127.0.0.1]:PORT` lines pinning every host key.
//! - `DIR/inventory.yaml`: written by [`Fleet::write_inventory`].
//! - `DIR/hosts/hostI/`: `sshd_config`, `ssh_host_ed25519_key`, `authorized_keys`, `sshd.log`,
//!   and `root/`, the host's state directory. Every SSH session on host I has
//!   `FLEET_HOST=hostI`, `FLEET_ROOT=DIR/hosts/hostI/root` (also as `SLUICE_TEST_HOST` /
//!   `SLUICE_TEST_ROOT`) and `SHLVL=1`, set by sshd `SetEnv`. `SHLVL=1` makes bash skip
//!   `~/.bashrc`, which on this machine costs ~0.3 s per session (pyenv), so tests measure
//!   sluice and not a shell's start-up.
//!
//! Hosts are numbered from 1, like their names: `root(1)` is `host1`'s state directory.
//!
//! Confirm-or-revert tests stop a host's sshd from a step and start it again from the undo
//! the host's timer runs ([`Fleet::write_inventory_for_confirm`], `confirm.rs`).
//!
//! [`Fleet::freeze`] makes a host hang (its whole sshd SIGSTOPped) until [`Fleet::thaw`].
//!
//! The `become` tests also need login users whose sudo asks for a password or a TTY: [`sudo`]
//! creates them on the machine (as root) and [`Fleet::open_to_other_users`] lets them log in.

mod confirm;
mod host;
mod process_tree;
mod reboot;
pub mod sudo;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use host::SSHD;
use host::{HostProcess, HostSpec};

/// The environment variable that runs the SSH suites in `transport_mode: exec` (a channel per
/// command) instead of through each host's runner: scripts/test.sh runs the SSH test binaries a
/// second time with it set to `exec`.
pub const TRANSPORT_MODE_ENV: &str = "SLUICE_TEST_TRANSPORT_MODE";

/// True when [`TRANSPORT_MODE_ENV`] asks for a channel per command.
pub fn exec_mode_requested() -> bool {
    std::env::var(TRANSPORT_MODE_ENV).is_ok_and(|mode| mode == "exec")
}

/// Why a fleet could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// OpenSSH's server is not installed: the SSH tests cannot run on this machine.
    #[error("sshd not found at {0}: install openssh-server (apt-get install -y openssh-server)")]
    SshdMissing(String),
    /// A helper program (ssh-keygen) failed.
    #[error("{program} failed: {detail}")]
    Tool { program: String, detail: String },
    /// An sshd did not start listening; its log is quoted.
    #[error("sshd for {host} did not start: {log}")]
    SshdStart { host: String, log: String },
    /// The fleet directory could not be written.
    #[error("fleet directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Something the tests need is missing on this machine; says how to get it.
    #[error("{what}: {how}")]
    Prerequisite { what: String, how: String },
    /// A host number outside 1..=N was given.
    #[error("no host{0} in this fleet")]
    NoSuchHost(usize),
    /// The host's sshd is not running (stopped with [`Fleet::stop`]), so it cannot be frozen.
    #[error("{0}'s sshd is not running: restart it first")]
    NotRunning(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FleetError + '_ {
    move |source| FleetError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// N running sshd hosts. Dropping it kills every sshd and deletes the directory (unless it was
/// given with [`Fleet::start_in`]).
pub struct Fleet {
    _tempdir: Option<tempfile::TempDir>,
    dir: PathBuf,
    user: String,
    hosts: Vec<HostProcess>,
}

impl Fleet {
    /// Starts `n` hosts in a fresh temporary directory.
    pub fn start(n: usize) -> Result<Fleet, FleetError> {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-fleet-")
            .tempdir()
            .map_err(io_err(Path::new("/tmp")))?;
        let dir = tmp.path().to_path_buf();
        let mut fleet = Fleet::start_in(&dir, n)?;
        fleet._tempdir = Some(tmp);
        Ok(fleet)
    }

    /// Starts `n` hosts in `dir` (created if needed; kept after drop).
    pub fn start_in(dir: &Path, n: usize) -> Result<Fleet, FleetError> {
        if !Path::new(SSHD).exists() {
            return Err(FleetError::SshdMissing(SSHD.into()));
        }
        // sshd refuses to start as root without its privilege separation directory.
        if !Path::new("/run/sshd").exists() {
            fs::create_dir_all("/run/sshd").map_err(io_err(Path::new("/run/sshd")))?;
        }
        fs::create_dir_all(dir.join("hosts")).map_err(io_err(dir))?;
        let dir = fs::canonicalize(dir).map_err(io_err(dir))?;
        let key = dir.join("id_ed25519");
        if !key.exists() {
            keygen(&key, "sluice-fleet-user")?;
        }
        let user = current_user()?;
        let mut hosts = Vec::with_capacity(n);
        for i in 1..=n {
            let spec = HostSpec::new(&dir, i);
            spec.prepare(&dir.join("id_ed25519.pub"))?;
            hosts.push(HostProcess::spawn(spec)?);
        }
        let fleet = Fleet {
            _tempdir: None,
            dir,
            user,
            hosts,
        };
        fleet.write_known_hosts()?;
        Ok(fleet)
    }

    /// The fleet directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// True for a fleet of zero hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// `host1`..`hostN`.
    pub fn host_names(&self) -> Vec<String> {
        (1..=self.len()).map(|i| format!("host{i}")).collect()
    }

    /// Always `127.0.0.1`.
    pub fn address(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port host `i` listens on.
    pub fn port(&self, i: usize) -> u16 {
        self.host(i).port
    }

    /// The user every host accepts (the user running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The ed25519 private key every host accepts.
    pub fn identity_file(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// known_hosts pinning every host's current key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Host `i`'s state directory, `$FLEET_ROOT` of its sessions.
    pub fn root(&self, i: usize) -> PathBuf {
        self.host(i).spec.root()
    }

    /// Host `i`'s own directory (config, keys, log).
    pub fn host_dir(&self, i: usize) -> PathBuf {
        self.host(i).spec.dir.clone()
    }

    /// Writes `DIR/inventory.yaml` for sluice: hosts host1..hostN (in order) in group `fleet`,
    /// strict host key checking against [`Fleet::known_hosts`], and `transport_mode: exec` when
    /// [`exec_mode_requested`]. Returns its path.
    pub fn write_inventory(&self) -> Result<PathBuf, FleetError> {
        self.write_inventory_with(|_| None)
    }

    /// [`Fleet::write_inventory`] with `vars` of host I as `host_vars(I)` (a YAML flow
    /// mapping's inside, e.g. `a: 1, b: "x"`), when it gives some.
    pub fn write_inventory_with(
        &self,
        host_vars: impl Fn(usize) -> Option<String>,
    ) -> Result<PathBuf, FleetError> {
        let mut y = String::new();
        y.push_str("defaults:\n");
        y.push_str(&format!("  user: {}\n", yaml_str(&self.user)));
        y.push_str(&format!(
            "  identity_file: {}\n",
            yaml_str(&self.identity_file().display().to_string())
        ));
        y.push_str(&format!(
            "  known_hosts: {}\n",
            yaml_str(&self.known_hosts().display().to_string())
        ));
        y.push_str("  host_key_checking: strict\n");
        if exec_mode_requested() {
            y.push_str("  transport_mode: exec\n");
        }
        y.push_str("hosts:\n");
        for (i, h) in self.hosts.iter().enumerate() {
            let vars = host_vars(i + 1)
                .map(|v| format!(", vars: {{ {v} }}"))
                .unwrap_or_default();
            y.push_str(&format!(
                "  host{}: {{ address: 127.0.0.1, port: {}{vars} }}\n",
                i + 1,
                h.port
            ));
        }
        y.push_str("groups:\n  fleet:\n    hosts: [");
        y.push_str(&self.host_names().join(", "));
        y.push_str("]\n");
        let path = self.dir.join("inventory.yaml");
        fs::write(&path, y).map_err(io_err(&path))?;
        Ok(path)
    }

    /// Restores the benchmark workload's initial state on every host (docs: WORKLOAD.md):
    /// `pkg/openssl` = `3.0.1`, `app/healthy` = `ok`, no `app/state`.
    pub fn reset_workload_state(&self) -> Result<(), FleetError> {
        for i in 1..=self.len() {
            let root = self.root(i);
            for sub in ["pkg", "app"] {
                fs::create_dir_all(root.join(sub)).map_err(io_err(&root))?;
            }
            write(&root.join("pkg/openssl"), "3.0.1\n")?;
            write(&root.join("app/healthy"), "ok\n")?;
            let state = root.join("app/state");
            if state.exists() {
                fs::remove_file(&state).map_err(io_err(&state))?;
            }
        }
        Ok(())
    }

    /// Lets the hosts accept logins by users other than the one running the tests (e.g.
    /// [`sudo::PASSWORD_USER`]): sshd reads authorized_keys as the login user, who must be able
    /// to reach it. The fleet directory becomes traversable (0711), not listable; the user key
    /// stays readable by its owner only.
    pub fn open_to_other_users(&self) -> Result<(), FleetError> {
        use std::os::unix::fs::PermissionsExt;
        for dir in [self.dir.clone(), self.dir.join("hosts")] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o711)).map_err(io_err(&dir))?;
        }
        for i in 1..=self.len() {
            let spec = &self.host(i).spec;
            fs::set_permissions(&spec.dir, fs::Permissions::from_mode(0o711))
                .map_err(io_err(&spec.dir))?;
            let keys = spec.authorized_keys();
            fs::set_permissions(&keys, fs::Permissions::from_mode(0o644)).map_err(io_err(&keys))?;
        }
        Ok(())
    }

    /// Makes every host record each command its sessions run (sshd `ForceCommand` through a
    /// script that appends the command to a log, then runs it in the login shell), and
    /// restarts them. [`Fleet::commands`] reads the log.
    pub fn log_commands(&mut self) -> Result<(), FleetError> {
        for h in &mut self.hosts {
            h.spec.log_commands = true;
            h.kill();
            h.start()?;
        }
        Ok(())
    }

    /// The commands host `i`'s sessions ran since [`Fleet::log_commands`], in order (the full
    /// text sent, prologues included).
    pub fn commands(&self, i: usize) -> Vec<String> {
        fs::read(self.host(i).spec.command_log())
            .map(|bytes| {
                bytes
                    .split(|b| *b == 0)
                    .filter(|c| !c.is_empty())
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops host `i`'s sshd (connections to its port are then refused).
    pub fn stop(&mut self, i: usize) {
        self.host_mut(i).kill();
    }

    /// Starts host `i`'s sshd again on the same port, with its current key and config.
    pub fn restart(&mut self, i: usize) -> Result<(), FleetError> {
        let h = self.host_mut(i);
        h.kill();
        h.start()
    }

    /// Makes host `i` hang: SIGSTOP to its sshd listener and every process under it (the
    /// session processes of open connections and the commands they run). TCP connections are
    /// still accepted and data acknowledged by the kernel, but nothing answers, as on a host
    /// that froze. Undone by [`Fleet::thaw`], and on drop. Returns how many processes stopped.
    pub fn freeze(&mut self, i: usize) -> Result<usize, FleetError> {
        self.host_mut(i).freeze()
    }

    /// Continues (SIGCONT) every process [`Fleet::freeze`] stopped on host `i`.
    pub fn thaw(&mut self, i: usize) -> Result<usize, FleetError> {
        self.host_mut(i).thaw()
    }

    /// Gives host `i` a new host key and restarts it. known_hosts keeps the OLD key, so strict
    /// clients must now refuse it as changed. Returns the new key's public line.
    pub fn change_host_key(&mut self, i: usize) -> Result<String, FleetError> {
        let h = self.host_mut(i);
        h.kill();
        let key = h.spec.host_key();
        for p in [key.clone(), key.with_extension("pub")] {
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
        keygen(&key, &format!("host{i}"))?;
        h.start()?;
        h.spec.host_public_key()
    }

    /// Makes host `i` refuse every key (empties its authorized_keys); `true` restores it.
    pub fn set_accepts_auth(&self, i: usize, accept: bool) -> Result<(), FleetError> {
        let h = self.host(i);
        let path = h.spec.authorized_keys();
        let contents = if accept {
            fs::read_to_string(self.dir.join("id_ed25519.pub")).map_err(io_err(&path))?
        } else {
            String::new()
        };
        write(&path, &contents)
    }

    /// Adds a public key line (e.g. of an rsa or ecdsa test key) to host `i`'s authorized_keys.
    pub fn authorize_key(&self, i: usize, public_key_line: &str) -> Result<(), FleetError> {
        let path = self.host(i).spec.authorized_keys();
        let mut contents = fs::read_to_string(&path).map_err(io_err(&path))?;
        contents.push_str(public_key_line.trim_end());
        contents.push('\n');
        write(&path, &contents)
    }

    /// Creates an ed25519 user key encrypted with `passphrase` (`DIR/id_encrypted`), authorized
    /// on host `i`; returns the private key's path.
    pub fn authorize_encrypted_key(
        &self,
        i: usize,
        passphrase: &str,
    ) -> Result<PathBuf, FleetError> {
        let path = self.dir.join("id_encrypted");
        keygen_with(&path, "ed25519", "sluice-fleet-encrypted", passphrase)?;
        let public = path.with_extension("pub");
        let line = fs::read_to_string(&public).map_err(io_err(&public))?;
        self.authorize_key(i, &line)?;
        Ok(path)
    }

    /// Host `i`'s current public host key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_public_key(&self, i: usize) -> Result<String, FleetError> {
        self.host(i).spec.host_public_key()
    }

    /// The known_hosts line for host `i`'s current key: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self, i: usize) -> Result<String, FleetError> {
        let h = self.host(i);
        let key = h.spec.host_public_key()?;
        let mut parts = key.split_whitespace();
        let (alg, data) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        Ok(format!("[127.0.0.1]:{} {alg} {data}", h.port))
    }

    /// A shell command that never finishes by itself (for timeout tests); `tag` makes its
    /// process findable with `pgrep -f`.
    pub fn hang_command(tag: u32) -> String {
        format!("sleep 1000{tag}.5")
    }

    /// `ssh` arguments that reach host `i` exactly as the fleet's inventory does (for comparisons
    /// with OpenSSH's client in benchmarks).
    pub fn ssh_args(&self, i: usize) -> Vec<String> {
        vec![
            "-i".into(),
            self.identity_file().display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-p".into(),
            self.port(i).to_string(),
            format!("{}@127.0.0.1", self.user),
        ]
    }

    fn write_known_hosts(&self) -> Result<(), FleetError> {
        let mut lines = String::new();
        for i in 1..=self.len() {
            lines.push_str(&self.known_hosts_line(i)?);
            lines.push('\n');
        }
        write(&self.known_hosts(), &lines)
    }

    fn host(&self, i: usize) -> &HostProcess {
        match i.checked_sub(1).and_then(|k| self.hosts.get(k)) {
            Some(h) => h,
            None => panic!("{}", FleetError::NoSuchHost(i)),
        }
    }

    fn host_mut(&mut self, i: usize) -> &mut HostProcess {
        match i.checked_sub(1).and_then(|k| self.hosts.get_mut(k)) {
            Some(h) => h,
            None => panic!("{}", FleetError::NoSuchHost(i)),
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.kill();
        }
    }
}

fn write(path: &Path, contents: &str) -> Result<(), FleetError> {
    fs::write(path, contents).map_err(io_err(path))
}

/// A YAML double-quoted scalar.
pub(crate) fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Generates an unencrypted ed25519 key pair at `path` with ssh-keygen.
pub fn keygen(path: &Path, comment: &str) -> Result<(), FleetError> {
    keygen_typed(path, "ed25519", comment)
}

/// Generates an unencrypted key pair of `key_type` (`ed25519`, `rsa`, `ecdsa`) at `path`.
pub fn keygen_typed(path: &Path, key_type: &str, comment: &str) -> Result<(), FleetError> {
    keygen_with(path, key_type, comment, "")
}

/// Generates a key pair at `path`, encrypted with `passphrase` unless it is empty.
fn keygen_with(
    path: &Path,
    key_type: &str,
    comment: &str,
    passphrase: &str,
) -> Result<(), FleetError> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", key_type, "-N", passphrase, "-C", comment, "-f"])
        .arg(path)
        .output()
        .map_err(|e| FleetError::Tool {
            program: "ssh-keygen".into(),
            detail: format!("{e} (install openssh-client)"),
        })?;
    if !out.status.success() {
        return Err(FleetError::Tool {
            program: "ssh-keygen".into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn current_user() -> Result<String, FleetError> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| FleetError::Tool {
            program: "id".into(),
            detail: e.to_string(),
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sshd_says_what_to_install() {
        let msg = FleetError::SshdMissing(SSHD.into()).to_string();
        assert!(msg.contains("install openssh-server"), "{msg}");
    }
}
