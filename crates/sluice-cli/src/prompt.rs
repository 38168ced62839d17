//! A question on the terminal that can be withdrawn: the operator's answer, or nothing when the
//! question was answered elsewhere (an approval recorded by another process) before they typed.
//!
//! Reading stdin blocks, and a blocked read cannot be cancelled, so the line is read only once
//! `poll(2)` says one is there; between polls (every 100 ms) the question checks whether it was
//! withdrawn. With the terminal in its usual canonical mode, stdin is readable once a whole line
//! is typed.
#![allow(unsafe_code)]

use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Withdraws the question it was made for when dropped.
pub struct Withdraw(Arc<AtomicBool>);

impl Withdraw {
    pub fn new() -> (Withdraw, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (Withdraw(flag.clone()), flag)
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits for a line on stdin; `None` once `withdrawn` is set (or stdin is closed or unreadable).
pub fn read_line(withdrawn: &AtomicBool) -> Option<String> {
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    loop {
        if withdrawn.load(Ordering::SeqCst) {
            return None;
        }
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for stdin, a count of 1, a bounded timeout; poll only writes
        // `revents` of the struct we own.
        let ready = unsafe { libc::poll(&mut pollfd, 1, 100) };
        if ready < 0 {
            let interrupted =
                std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
            if interrupted {
                continue;
            }
            return None;
        }
        if ready == 0 {
            continue;
        }
        let mut line = String::new();
        return match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        };
    }
}
