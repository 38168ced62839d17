//! Shared by the local descriptor-limit tests: set the limit, run many commands at once.
#![allow(dead_code, unsafe_code)]

use sluice_ssh::{ExecRequest, HostTarget, LocalTransport, Transport};

/// The soft and hard `RLIMIT_NOFILE` of this process.
pub fn nofile() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    (limit.rlim_cur, limit.rlim_max)
}

/// Sets this process's `RLIMIT_NOFILE`, before any transport is used.
pub fn set_nofile(soft: u64, hard: u64) {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// Runs `n` local hosts' commands at once (each keeps its pipes open for a moment); returns
/// the failures.
pub async fn run_many(n: usize) -> Vec<String> {
    let runs = (0..n).map(|i| async move {
        let target = HostTarget::new(format!("local{i}"), "localhost");
        let conn = LocalTransport
            .connect(&target)
            .await
            .map_err(|e| e.to_string())?;
        let out = conn
            .exec(ExecRequest::new(format!("sleep 0.05; echo {i}")))
            .await
            .map_err(|e| e.to_string())?;
        if out.status.success() && out.stdout.text_lossy() == format!("{i}\n") {
            Ok(())
        } else {
            Err(format!(
                "local{i}: {} {:?}",
                out.status,
                out.stdout.text_lossy()
            ))
        }
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}
