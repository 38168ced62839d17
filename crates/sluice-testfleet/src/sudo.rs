//! Login users for the `become` tests, so sudo can be tested for real: one whose sudo asks for a
//! password, one whose sudo requires a TTY.
//!
//! They are created on the machine (as root: CI runs the tests as root) the first time a test
//! asks for them, and kept: `useradd -m`, a password set with `chpasswd`, and a sudoers drop-in
//! checked by `visudo -c` before it is put in place, so a mistake can never break the machine's
//! sudo. Both may only become `nobody`, so a test user cannot be used to gain root. The password
//! is random per machine, kept root-only in [`PASSWORD_FILE`].
//!
//! A fleet host accepts them once [`crate::Fleet::open_to_other_users`] made its authorized_keys
//! reachable: sshd reads that file as the login user.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::{FleetError, io_err};

/// A user whose sudo asks for the password (`ALL=(nobody) ALL`).
pub const PASSWORD_USER: &str = "sluice-sudo-pw";
/// A user whose sudo needs no password but a TTY (`NOPASSWD`, `requiretty`).
pub const TTY_USER: &str = "sluice-sudo-tty";
/// The user both may become.
pub const TARGET_USER: &str = "nobody";

const SUDO: &str = "/usr/bin/sudo";
const SUDOERS: &str = "/etc/sudoers.d/sluice-testfleet";
// sudo ignores files in sudoers.d whose name contains a dot: a half-written file is never read.
const SUDOERS_TMP: &str = "/etc/sudoers.d/sluice-testfleet.new";
const STATE_DIR: &str = "/var/lib/sluice-testfleet";
/// The password of [`PASSWORD_USER`], readable by root only.
pub const PASSWORD_FILE: &str = "/var/lib/sluice-testfleet/sudo-password";

/// The users, ready to log in to an opened fleet.
#[derive(Clone, Debug)]
pub struct SudoUsers {
    /// [`PASSWORD_USER`]'s password.
    pub password: String,
}

/// Makes sure sudo, both users and the sudoers drop-in exist (creating them when running as
/// root); once per process.
pub fn ensure() -> Result<SudoUsers, FleetError> {
    static DONE: OnceLock<SudoUsers> = OnceLock::new();
    static BUSY: Mutex<()> = Mutex::new(());
    let _busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(users) = DONE.get() {
        return Ok(users.clone());
    }
    let users = prepare()?;
    Ok(DONE.get_or_init(|| users).clone())
}

fn prepare() -> Result<SudoUsers, FleetError> {
    if !Path::new(SUDO).exists() {
        return Err(FleetError::Prerequisite {
            what: format!("sudo not found at {SUDO}"),
            how: "install it: apt-get install -y sudo (scripts/test.sh does)".into(),
        });
    }
    if !is_root()? {
        return Err(FleetError::Prerequisite {
            what: "the become tests log in as other users, which needs root".into(),
            how: format!(
                "run the tests as root (CI does: bash scripts/test.sh); the fleet then creates \
                 {PASSWORD_USER} and {TTY_USER} and {SUDOERS} itself"
            ),
        });
    }
    fs::create_dir_all(STATE_DIR).map_err(io_err(Path::new(STATE_DIR)))?;
    fs::set_permissions(STATE_DIR, fs::Permissions::from_mode(0o700))
        .map_err(io_err(Path::new(STATE_DIR)))?;
    // Test binaries run in parallel processes: one of them sets things up at a time.
    let lock_path = Path::new(STATE_DIR).join("lock");
    let lock = fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;

    for user in [PASSWORD_USER, TTY_USER] {
        if !run("getent", &["passwd", user], None).is_ok_and(|out| !out.is_empty()) {
            run("useradd", &["-m", "-s", "/bin/sh", user], None)?;
        }
    }
    let password = password()?;
    // Set every time (it is cheap): the file may have been kept while the user was recreated.
    run(
        "chpasswd",
        &[],
        Some(format!("{PASSWORD_USER}:{password}\n").as_bytes()),
    )?;
    // sshd refuses logins to locked accounts (`!` in shadow), as useradd creates them; `*` is
    // unlocked yet has no password.
    run("usermod", &["-p", "*", TTY_USER], None)?;

    let sudoers = format!(
        "# Written by sluice-testfleet for sluice's become tests; delete it with the two users.\n\
         {PASSWORD_USER} ALL=({TARGET_USER}) ALL\n\
         {TTY_USER} ALL=({TARGET_USER}) NOPASSWD: ALL\n\
         Defaults:{TTY_USER} requiretty\n"
    );
    if fs::read_to_string(SUDOERS).ok().as_deref() != Some(sudoers.as_str()) {
        let tmp = Path::new(SUDOERS_TMP);
        fs::write(tmp, &sudoers).map_err(io_err(tmp))?;
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o440)).map_err(io_err(tmp))?;
        if let Err(e) = run("visudo", &["-c", "-f", SUDOERS_TMP], None) {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        fs::rename(tmp, SUDOERS).map_err(io_err(Path::new(SUDOERS)))?;
    }
    Ok(SudoUsers { password })
}

/// The password in [`PASSWORD_FILE`], made (32 random letters and digits) when missing.
fn password() -> Result<String, FleetError> {
    let path = Path::new(PASSWORD_FILE);
    if let Ok(p) = fs::read_to_string(path)
        && !p.trim().is_empty()
    {
        return Ok(p.trim().to_string());
    }
    let mut random = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(io_err(Path::new("/dev/urandom")))?;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let password: String = random
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    fs::write(path, &password).map_err(io_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(password)
}

fn is_root() -> Result<bool, FleetError> {
    Ok(run("id", &["-u"], None)?.trim() == "0")
}

/// Runs a system tool; its stdout, or an error quoting its stderr.
fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String, FleetError> {
    let tool = |detail: String| FleetError::Tool {
        program: program.to_string(),
        detail,
    };
    // useradd, usermod, chpasswd and visudo live in /usr/sbin, which a CI job's PATH may lack.
    let sbin = Path::new("/usr/sbin").join(program);
    let path = if sbin.exists() { sbin } else { program.into() };
    let mut child = Command::new(path)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            tool(format!(
                "{e} (it comes with the passwd, sudo or coreutils package)"
            ))
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input).map_err(|e| tool(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| tool(e.to_string()))?;
    if !out.status.success() {
        return Err(tool(format!(
            "{} {}: {}",
            out.status,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
