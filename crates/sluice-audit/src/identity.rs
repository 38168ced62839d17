//! Who and where: the operator's account, the controller's host name, and whether a lease
//! holder's process is alive. These are the audit trail's only calls into libc; each `unsafe`
//! block says why it is sound, and this module is the one place the crate allows `unsafe`.
#![allow(unsafe_code)]

/// Whether a process with this pid exists on this machine.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists and whether
    // we may signal it. EPERM means it exists but belongs to someone else.
    let rc = unsafe { libc::kill(pid, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// A killed process stays in the process table until its parent reaps it; it can do nothing
/// more, so its leases are a dead holder's. Linux only (`/proc`); elsewhere nothing is a zombie.
fn is_zombie(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so read after the last `)`.
    stat.rfind(')')
        .and_then(|end| stat.get(end + 1..))
        .and_then(|rest| rest.split_whitespace().next())
        == Some("Z")
}

/// The variable that names this controller instead of its host name.
pub const CONTROLLER_VAR: &str = "SLUICE_CONTROLLER";

/// This controller's name, as recorded in runs and leases: `$SLUICE_CONTROLLER` when set and not
/// empty (two machines sharing a store need distinct names, which host names in containers or
/// cloned images may not be), else the host name.
pub fn controller_name() -> String {
    if let Some(name) = std::env::var(CONTROLLER_VAR)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    {
        return name;
    }
    host_name()
}

/// The host name of this machine.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !name.is_empty() {
            return name;
        }
    }
    "localhost".to_string()
}

/// The operating-system user running sluice: the account name of the real uid, else `$USER`,
/// else `$LOGNAME`, else `uid:N`.
pub fn operator_name() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    account_name(uid)
        .or_else(|| {
            ["USER", "LOGNAME"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

fn account_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed passwd is a valid out-parameter; getpwuid_r writes strings into `buf` (of the
    // length given) and sets `result` to `&mut pwd` on success or null when there is no entry.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_process_not_yet_reaped_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        assert!(pid_alive(pid));
        child.kill().expect("kill sleep");
        // Until `wait` reaps it the process is a zombie: it exists, but holds nothing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!pid_alive(pid), "a zombie counts as dead");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        child.wait().expect("reap sleep");
    }
}
