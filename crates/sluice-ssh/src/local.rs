//! The `local` transport: commands run by `sh -c` on the controller itself.
//!
//! Same semantics as SSH for the executor: environment, working directory, stdin, secret values
//! on stdin ([`crate::secret_stdin`]), bounded capture, timeout. Each command runs in its own
//! process group so a timeout kills everything it started, not just the shell.
//!
//! Commands run at most [`crate::fd_limit::FdLimit::local_commands`] at a time in the process
//! (the others wait for a slot; their timeout starts when they do), so a thousand local hosts
//! at once never fail with "Too many open files". Each runs with the soft `RLIMIT_NOFILE` the
//! controller started with, not the raised one.
//!
//! Every command is spawned with `posix_spawn` (vfork-like: the child shares the controller's
//! memory until it execs), never with `fork`, which copies the page tables of a controller that
//! holds a large plan and makes every page it writes afterwards fault while the child lives.
//! Rust's standard library spawns with `posix_spawn` when no `pre_exec` closure is set, and a
//! process group, the working directory, the environment and pipes need none. So the original
//! descriptor limit is set by the shell, in front of the command's text (`ulimit -S -n`), not
//! between fork and exec.

use std::process::Stdio;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::capture::OutputCapture;
use crate::fd_limit;
use crate::secret_stdin::Prologue;
use crate::transport::{
    BoxFuture, Connection, ExecOutcome, ExecRequest, ExitStatus, HostTarget, Stream, Transport,
    TransportError,
};

/// After a timeout, how long the killed process group has to let go of its pipes.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// Slots for local commands running at once, process-wide: the descriptor limit is the
/// process's.
static COMMAND_SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(fd_limit::raised().local_commands()));

/// Runs commands on the controller.
#[derive(Clone, Debug, Default)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    fn connect<'a>(
        &'a self,
        target: &'a HostTarget,
    ) -> BoxFuture<'a, Result<Arc<dyn Connection>, TransportError>> {
        Box::pin(async move {
            if let Some(dir) = &target.workdir {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| TransportError::Spawn {
                        host: target.name.clone(),
                        reason: format!("cannot create working directory {}: {e}", dir.display()),
                    })?;
            }
            Ok(Arc::new(LocalConnection {
                target: target.clone(),
            }) as Arc<dyn Connection>)
        })
    }
}

/// A "connection" to the controller for one inventory host.
pub struct LocalConnection {
    target: HostTarget,
}

impl LocalConnection {
    fn spawn_error(&self, reason: impl std::fmt::Display) -> TransportError {
        TransportError::Spawn {
            host: self.target.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// Waits for a command slot (see [`COMMAND_SLOTS`]).
    async fn slot(&self) -> Result<SemaphorePermit<'static>, TransportError> {
        COMMAND_SLOTS
            .acquire()
            .await
            .map_err(|e| self.spawn_error(e))
    }

    async fn run(&self, req: ExecRequest) -> Result<ExecOutcome, TransportError> {
        // Secret values go on stdin, read by a prologue: `sh -c TEXT` is visible in `ps`.
        let prologue = Prologue::of(&req).map_err(|e| self.spawn_error(e))?;
        let mut command = fd_limit_restore();
        if let Some(p) = &prologue {
            command.push_str(&p.text);
        }
        command.push_str(&req.command);
        let _slot = self.slot().await?;
        let started = Instant::now();
        // `sudo -S` reads a password from stdin only when it needs one; when it does not (root,
        // NOPASSWD) the password line would reach the command's stdin. So the password is used
        // only when `sudo -n` cannot run as that user.
        let password = match &req.become_user {
            Some(b) if b.password.is_some() && !sudo_needs_no_password(b.user.as_deref()).await => {
                b.password.as_deref()
            }
            _ => None,
        };
        let mut cmd = match &req.become_user {
            None => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(&command);
                c
            }
            Some(become_user) => {
                let mut c = Command::new("sudo");
                match password {
                    Some(_) => c.args(["-S", "-p", ""]),
                    None => c.arg("-n"),
                };
                if let Some(user) = &become_user.user {
                    c.args(["-u", user]);
                }
                c.args(["--", "sh", "-c", &command]);
                c
            }
        };
        if let Some(dir) = &self.target.workdir {
            cmd.current_dir(dir);
        }
        cmd.envs(self.target.env.iter().map(|(k, v)| (k, v)));
        cmd.envs(req.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // No `pre_exec` here, so that the standard library spawns with `posix_spawn` (module
        // documentation); the process group is one of its attributes.
        cmd.process_group(0);
        cmd.kill_on_drop(true);

        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        let pgid = child.id();

        // sudo reads its password line a byte at a time, so the frame of secret values and
        // the command's own stdin after it reach the command whole.
        let mut stdin_bytes = Vec::new();
        if let Some(password) = password {
            stdin_bytes.extend_from_slice(password.as_bytes());
            stdin_bytes.push(b'\n');
        }
        if let Some(p) = &prologue {
            stdin_bytes.extend_from_slice(&p.frame);
        }
        if let Some(input) = &req.stdin {
            stdin_bytes.extend_from_slice(input);
        }
        let stdin = child.stdin.take();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A command that exits without reading stdin closes the pipe: not an error.
                let _ = stdin.write_all(&stdin_bytes).await;
            }
        };

        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out_cap = OutputCapture::new(Stream::Stdout, req.output_cap, req.on_line.clone());
        let err_cap = OutputCapture::new(Stream::Stderr, req.output_cap, req.on_line.clone());

        let work = async {
            let (_, out, err, status) = tokio::join!(
                feed,
                drain(stdout, out_cap),
                drain(stderr, err_cap),
                child.wait()
            );
            (out, err, status)
        };

        let (out, err, status) = match req.timeout {
            None => work.await,
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(done) => done,
                Err(_) => {
                    kill_group(pgid);
                    // Reap the shell; the pipes close once the whole group is gone.
                    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
                    return Ok(ExecOutcome {
                        status: ExitStatus::TimedOut,
                        stdout: OutputCapture::new(Stream::Stdout, 0, None).finish(),
                        stderr: OutputCapture::new(Stream::Stderr, 0, None).finish(),
                        duration: started.elapsed(),
                    });
                }
            },
        };
        let status = status.map_err(|e| self.spawn_error(e))?;
        Ok(ExecOutcome {
            status: exit_status(status),
            stdout: out,
            stderr: err,
            duration: started.elapsed(),
        })
    }
}

impl Connection for LocalConnection {
    fn exec(&self, request: ExecRequest) -> BoxFuture<'_, Result<ExecOutcome, TransportError>> {
        Box::pin(self.run(request))
    }

    fn upload<'a>(
        &'a self,
        path: &'a str,
        contents: &'a [u8],
        mode: u32,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            use std::os::unix::fs::PermissionsExt;
            let _slot = self.slot().await?;
            let full = match &self.target.workdir {
                Some(dir) => dir.join(path),
                None => path.into(),
            };
            tokio::fs::write(&full, contents)
                .await
                .map_err(|e| self.spawn_error(e))?;
            tokio::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| self.spawn_error(e))
        })
    }

    fn host_key_fingerprint(&self) -> Option<String> {
        None
    }
}

/// Shell text that gives the command the soft `RLIMIT_NOFILE` the controller started with, when
/// sluice raised its own (see [`crate::fd_limit`]); empty when it did not. It ends with `; ` on
/// the command's first line, so the command's line numbers (`$LINENO`) are unchanged. Lowering
/// a soft limit cannot fail; were `ulimit` to, the command would run with the raised limit,
/// which is harmless, so its complaint is discarded. `sh`, dash, bash, busybox's ash, ksh and
/// zsh all know `ulimit -S -n`.
fn fd_limit_restore() -> String {
    let limit = fd_limit::raised();
    if limit.original_soft >= limit.soft {
        return String::new();
    }
    format!("ulimit -S -n {} 2>/dev/null; ", limit.original_soft)
}

/// True when `sudo -n` runs a command as `user` (root when `None`) without asking anything.
async fn sudo_needs_no_password(user: Option<&str>) -> bool {
    let mut probe = Command::new("sudo");
    probe.arg("-n");
    if let Some(user) = user {
        probe.args(["-u", user]);
    }
    probe
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

async fn drain<R: AsyncRead + Unpin>(
    reader: Option<R>,
    mut capture: OutputCapture,
) -> crate::capture::CapturedOutput {
    if let Some(mut reader) = reader {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => capture.push(&buf[..n]),
            }
        }
    }
    capture.finish()
}

#[allow(unsafe_code)]
fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for this
        // command (process_group(0) made the child its leader); it has no memory-safety effects.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(sig)) => ExitStatus::Signal(signal_name(sig)),
        (None, None) => ExitStatus::Code(-1),
    }
}

/// The conventional name of a signal number, without `SIG` (as SSH reports it).
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGILL => "ILL",
        libc::SIGABRT => "ABRT",
        libc::SIGFPE => "FPE",
        libc::SIGKILL => "KILL",
        libc::SIGSEGV => "SEGV",
        libc::SIGPIPE => "PIPE",
        libc::SIGALRM => "ALRM",
        libc::SIGTERM => "TERM",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        _ => return sig.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(req: ExecRequest) -> ExecOutcome {
        let target = HostTarget::new("local-test", "localhost");
        let conn = LocalTransport.connect(&target).await.unwrap();
        conn.exec(req).await.unwrap()
    }

    #[tokio::test]
    async fn exit_codes_and_streams_are_reported() {
        let out = run(ExecRequest::new("echo hi; echo err >&2; exit 42")).await;
        assert_eq!(out.status, ExitStatus::Code(42));
        assert_eq!(out.stdout.kept_bytes(), b"hi\n");
        assert_eq!(out.stderr.kept_bytes(), b"err\n");
    }

    #[tokio::test]
    async fn signal_death_is_reported_by_name() {
        let out = run(ExecRequest::new("kill -TERM $$")).await;
        assert_eq!(out.status, ExitStatus::Signal("TERM".into()));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile_dir();
        let marker = dir.join("child.pid");
        let cmd = format!("sleep 1000 & echo $! > {}; wait", marker.display());
        let started = Instant::now();
        let out = run(ExecRequest::new(cmd).timeout(Duration::from_millis(300))).await;
        assert_eq!(out.status, ExitStatus::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SIGKILL is delivered asynchronously: on a loaded machine the orphan may still be on its
        // way out when we look, so give it a moment; a survivor of the kill stays for 1000 s.
        let deadline = Instant::now() + Duration::from_secs(2);
        while process_is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !process_is_running(pid),
            "background sleep {pid} survived the timeout"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn env_and_stdin_reach_the_command() {
        let mut req = ExecRequest::new("printf '%s:' \"$GREETING\"; cat");
        req.env.push(("GREETING".into(), "hello".into()));
        req.stdin = Some(b"from stdin".to_vec());
        let out = run(req).await;
        assert_eq!(out.stdout.kept_bytes(), b"hello:from stdin");
    }

    #[tokio::test]
    async fn secrets_reach_the_command_on_stdin_before_its_own_stdin() {
        let mut req = ExecRequest::new(r#"printf '%s|' "${__sluice_s1}"; cat"#);
        req.secrets.push(crate::SecretVar {
            name: "__sluice_s1".into(),
            value: "it's\n$(x)".into(),
        });
        req.stdin = Some(b"own".to_vec());
        let out = run(req).await;
        assert_eq!(out.stdout.kept_bytes(), b"it's\n$(x)|own");
    }

    /// True when `pid` exists and is not a zombie (a killed orphan may wait for its reaper).
    fn process_is_running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            }
        }
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
