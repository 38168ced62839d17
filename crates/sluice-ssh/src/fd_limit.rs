//! The process's file-descriptor budget: `RLIMIT_NOFILE` raised to its hard limit once, and the
//! shares of it that SSH connections and local commands may hold at once.
//!
//! A run over many hosts holds a descriptor per SSH connection and several per local command
//! (three pipes and a pidfd, more while spawning). Shells commonly start programs with a soft
//! limit of 1,024 while the hard limit is far higher, so the first transport raises the soft
//! limit to the hard one, as Go's runtime does. Local commands get the original soft limit
//! back ([`FdLimit::original_soft`]): programs that still use `select(2)` break above 1,024.
//! The shares come from the raised limit: half for SSH connections, a quarter for local
//! commands, the rest for everything else (the audit store, the terminal, the runtime). Past
//! its share, a connection or a local command waits for another to end instead of failing
//! with "Too many open files".
// The getrlimit/setrlimit calls below are the reason this module exists.
#![allow(unsafe_code)]

use std::sync::OnceLock;

/// Descriptors one local command may hold in sluice: its stdin, stdout and stderr pipes and a
/// pidfd once spawned; the child's ends and an exec-status pipe while spawning.
pub const FDS_PER_LOCAL_COMMAND: u64 = 8;

/// The descriptor limits of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with (local commands run with it).
    pub original_soft: u64,
    /// The soft limit now: the hard limit, when raising it worked.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

impl FdLimit {
    /// Open SSH connections allowed at once: half the soft limit.
    pub fn ssh_connections(&self) -> usize {
        usize::try_from(self.soft / 2)
            .unwrap_or(usize::MAX)
            .clamp(16, 65_536)
    }

    /// Local commands allowed to run at once: a quarter of the soft limit, at
    /// [`FDS_PER_LOCAL_COMMAND`] each.
    pub fn local_commands(&self) -> usize {
        usize::try_from(self.soft / 4 / FDS_PER_LOCAL_COMMAND)
            .unwrap_or(usize::MAX)
            .clamp(4, 65_536)
    }
}

static LIMIT: OnceLock<FdLimit> = OnceLock::new();

/// The limits, the soft one raised to the hard one on the first call in the process.
pub fn raised() -> FdLimit {
    *LIMIT.get_or_init(raise)
}

fn raise() -> FdLimit {
    let Some((soft, hard)) = current() else {
        // getrlimit does not fail on Linux; were it to, assume the common default.
        return FdLimit {
            original_soft: 1024,
            soft: 1024,
            hard: 1024,
        };
    };
    if soft < hard {
        set(hard, hard);
    }
    let now = current().map_or(soft, |(soft, _)| soft);
    if now > soft {
        tracing::debug!(from = soft, to = now, "raised the soft RLIMIT_NOFILE");
    }
    FdLimit {
        original_soft: soft,
        soft: now,
        hard,
    }
}

/// The soft and hard `RLIMIT_NOFILE`.
fn current() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other effect.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Sets `RLIMIT_NOFILE`; false when refused (e.g. a hard limit of `RLIM_INFINITY` above the
/// kernel's `nr_open`), in which case the limit is unchanged.
fn set(soft: u64, hard: u64) -> bool {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(soft: u64) -> FdLimit {
        FdLimit {
            original_soft: soft,
            soft,
            hard: soft,
        }
    }

    #[test]
    fn shares_leave_a_quarter_for_the_rest_of_the_process() {
        let l = limit(1024);
        assert_eq!(l.ssh_connections(), 512);
        assert_eq!(l.local_commands(), 32);
        let used = l.ssh_connections() as u64 + l.local_commands() as u64 * FDS_PER_LOCAL_COMMAND;
        assert_eq!(used, 768);
    }

    #[test]
    fn tiny_limits_still_allow_some_work() {
        assert_eq!(limit(20).ssh_connections(), 16);
        assert_eq!(limit(20).local_commands(), 4);
    }
}
