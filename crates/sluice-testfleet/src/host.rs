//! One fleet host: its files, its sshd_config and its sshd process.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{FleetError, io_err, keygen, process_tree};

/// Where the fleet expects OpenSSH's server (Debian's openssh-server).
pub const SSHD: &str = "/usr/sbin/sshd";

/// How long a fresh sshd gets to start answering with its banner.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of host `index`.
pub(crate) struct HostSpec {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    /// Every command a session runs is appended to [`HostSpec::command_log`] first (sshd
    /// `ForceCommand` through a small script), so a test can see exactly what was sent.
    pub(crate) log_commands: bool,
}

impl HostSpec {
    pub(crate) fn new(fleet_dir: &Path, index: usize) -> Self {
        let name = format!("host{index}");
        HostSpec {
            dir: fleet_dir.join("hosts").join(&name),
            name,
            log_commands: false,
        }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    pub(crate) fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }

    pub(crate) fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    /// The commands sessions ran, each followed by a NUL byte (when `log_commands` is set).
    pub(crate) fn command_log(&self) -> PathBuf {
        self.dir.join("commands.log")
    }

    /// The `ForceCommand` script that logs a session's command, then runs it in the login
    /// shell exactly as sshd would have. A sluice runner is not logged itself: it runs each
    /// step as `"$SHELL" -c STEP`, so its `SHELL` becomes a wrapper that logs the step and runs
    /// it in the real shell, and the log holds the steps either way (runner or exec mode).
    fn write_command_logger(&self) -> Result<PathBuf, FleetError> {
        use std::os::unix::fs::PermissionsExt;
        let log = self.command_log();
        let log = log.display();
        let shell = self.dir.join("log-shell.sh");
        let shell_script = format!(
            "#!/bin/sh\n# Written by sluice-testfleet: record a runner's step, then run it.\n[ \"$1\" = -c ] && printf '%s\\000' \"$2\" >> '{log}'\nexec \"$SLUICE_FLEET_REAL_SHELL\" \"$@\"\n"
        );
        let path = self.dir.join("log-command.sh");
        let script = format!(
            "#!/bin/sh\n# Written by sluice-testfleet: record the command, then run it.\ncase $SSH_ORIGINAL_COMMAND in\n  *'# sluice runner:'*)\n    SLUICE_FLEET_REAL_SHELL=${{SHELL:-/bin/sh}}; export SLUICE_FLEET_REAL_SHELL\n    SHELL='{}'; export SHELL\n    exec \"$SLUICE_FLEET_REAL_SHELL\" -c \"$SSH_ORIGINAL_COMMAND\" ;;\nesac\nprintf '%s\\000' \"$SSH_ORIGINAL_COMMAND\" >> '{log}'\nexec \"${{SHELL:-/bin/sh}}\" -c \"$SSH_ORIGINAL_COMMAND\"\n",
            shell.display()
        );
        for (file, text) in [(&shell, shell_script), (&path, script)] {
            fs::write(file, text).map_err(io_err(file))?;
            fs::set_permissions(file, fs::Permissions::from_mode(0o755)).map_err(io_err(file))?;
        }
        Ok(path)
    }

    fn config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    pub(crate) fn host_public_key(&self) -> Result<String, FleetError> {
        let path = self.host_key().with_extension("pub");
        fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(io_err(&path))
    }

    /// Creates the directories, host key and authorized_keys (keeps existing ones).
    pub(crate) fn prepare(&self, user_public_key: &Path) -> Result<(), FleetError> {
        fs::create_dir_all(self.root()).map_err(io_err(&self.dir))?;
        if !self.host_key().exists() {
            keygen(&self.host_key(), &self.name)?;
        }
        fs::copy(user_public_key, self.authorized_keys()).map_err(io_err(user_public_key))?;
        Ok(())
    }

    fn write_config(&self, port: u16) -> Result<(), FleetError> {
        let root = self.root();
        let root = root.display();
        let name = &self.name;
        let config = format!(
            "# Written by sluice-testfleet for {name}.\n\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {auth}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             StrictModes no\n\
             UsePAM no\n\
             PrintMotd no\n\
             LogLevel ERROR\n\
             SetEnv SHLVL=1 FLEET_HOST={name} FLEET_ROOT={root} SLUICE_TEST_HOST={name} SLUICE_TEST_ROOT={root}\n\
             Subsystem sftp internal-sftp\n",
            key = self.host_key().display(),
            pid = self.dir.join("sshd.pid").display(),
            auth = self.authorized_keys().display(),
        );
        let config = if self.log_commands {
            let logger = self.write_command_logger()?;
            format!("{config}ForceCommand {}\n", logger.display())
        } else {
            config
        };
        let path = self.config();
        fs::write(&path, config).map_err(io_err(&path))
    }
}

/// A host and, while it runs, its sshd.
pub(crate) struct HostProcess {
    pub(crate) spec: HostSpec,
    pub(crate) port: u16,
    child: Option<Child>,
    /// The processes [`HostProcess::freeze`] stopped, to continue them again.
    frozen: Vec<u32>,
}

impl HostProcess {
    /// Starts sshd on a free port, retrying with another port if one was taken meanwhile.
    pub(crate) fn spawn(mut spec: HostSpec) -> Result<HostProcess, FleetError> {
        let mut last = None;
        for _ in 0..5 {
            let port = free_port().map_err(io_err(&spec.dir))?;
            let mut host = HostProcess {
                spec,
                port,
                child: None,
                frozen: Vec::new(),
            };
            match host.start() {
                Ok(()) => return Ok(host),
                Err(e) => {
                    last = Some(e);
                    spec = host.spec;
                }
            }
        }
        Err(last.unwrap_or(FleetError::SshdStart {
            host: spec.name,
            log: "no free port".into(),
        }))
    }

    /// Starts sshd on `self.port` and waits until it sends its banner.
    pub(crate) fn start(&mut self) -> Result<(), FleetError> {
        self.spec.write_config(self.port)?;
        let pid_file = self.spec.dir.join("sshd.pid");
        let _ = fs::remove_file(&pid_file);
        let log_path = self.spec.dir.join("sshd.log");
        let log = fs::File::create(&log_path).map_err(io_err(&log_path))?;
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.spec.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| FleetError::SshdStart {
                host: self.spec.name.clone(),
                log: format!("cannot run {SSHD}: {e} (install openssh-server)"),
            })?;
        let pid = child.id().to_string();
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            // sshd writes its pid file only after it bound the port: a banner alone could come
            // from another process's sshd that took the port first (tests run concurrently).
            let ours = fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid);
            if ours && self.answers_banner() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .map(|c| matches!(c.try_wait(), Ok(Some(_))))
                .unwrap_or(true);
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Err(FleetError::SshdStart {
            host: self.spec.name.clone(),
            log: fs::read_to_string(&log_path).unwrap_or_default(),
        })
    }

    fn answers_banner(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
    }

    /// Stops (SIGSTOP) this host's sshd listener and every process under it: session
    /// processes and the commands they run. The kernel still accepts TCP connections and
    /// acknowledges data, but nothing answers: a hung host. Returns how many processes were
    /// stopped.
    pub(crate) fn freeze(&mut self) -> Result<usize, FleetError> {
        let Some(listener) = self.child.as_ref().map(Child::id) else {
            return Err(FleetError::NotRunning(self.spec.name.clone()));
        };
        // The listener first, so it forks no new session while its children are collected;
        // then until no new descendant appears (a session may fork while we look).
        signal(&[listener], "STOP")?;
        self.frozen.push(listener);
        for _ in 0..20 {
            let fresh: Vec<u32> = process_tree::descendants(listener)
                .into_iter()
                .filter(|pid| !self.frozen.contains(pid))
                .collect();
            if fresh.is_empty() {
                return Ok(self.frozen.len());
            }
            for pid in fresh {
                // A process that exited since it was listed (a session's pre-auth child) is
                // not an error.
                match signal(&[pid], "STOP") {
                    Ok(()) => self.frozen.push(pid),
                    Err(_) if !Path::new(&format!("/proc/{pid}")).exists() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(self.frozen.len())
    }

    /// Continues (SIGCONT) what [`HostProcess::freeze`] stopped. Returns how many processes.
    pub(crate) fn thaw(&mut self) -> Result<usize, FleetError> {
        let frozen = std::mem::take(&mut self.frozen);
        // Processes that exited meanwhile are skipped by `kill` with an error we ignore.
        let _ = signal(&frozen, "CONT");
        Ok(frozen.len())
    }

    /// Kills sshd and every process under it (sessions, their commands, a runner), as a
    /// reboot would, and reaps it.
    pub(crate) fn kill_tree(&mut self) {
        let _ = self.thaw();
        if let Some(listener) = self.child.as_ref().map(Child::id) {
            // The listener first, so it forks no new session while its children are killed.
            let _ = signal(&[listener], "STOP");
            let _ = signal(&process_tree::descendants(listener), "KILL");
        }
        self.kill();
    }

    /// Kills sshd (by pid) and reaps it. Sessions it forked die with their connections (a
    /// frozen host is continued first: a stopped session would not notice).
    pub(crate) fn kill(&mut self) {
        let _ = self.thaw();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.kill_restarted();
    }

    /// Kills an sshd of this host that the fleet did not start: one a step's undo started
    /// again on the host (confirm tests), found by the pid file and its `-f` config.
    fn kill_restarted(&self) {
        let pid_file = self.spec.dir.join("sshd.pid");
        let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            return;
        };
        let config = self.spec.config().display().to_string();
        let ours = fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&config));
        if ours {
            let _ = signal(&[pid], "KILL");
            let _ = fs::remove_file(&pid_file);
        }
    }
}

/// Sends `SIG{name}` to `pids` with kill(1).
fn signal(pids: &[u32], name: &str) -> Result<(), FleetError> {
    if pids.is_empty() {
        return Ok(());
    }
    let out = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .output()
        .map_err(|e| FleetError::Tool {
            program: "kill".into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(FleetError::Tool {
            program: format!("kill -{name}"),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
