//! Warnings that concern a run reach its audit trail.
//!
//! Libraries report what the operator must know without stopping anything (a host key learned by
//! accept-new, an unusable identity file, an ssh_config block sluice ignores) as `tracing`
//! warnings. The binary's log layer shows them to the operator and hands each one to
//! [`report`]; while a recorded run is going, [`WarningTap`] receives them and the run records
//! each as a `warning` fact (and shows it in its event stream). Outside a run, [`report`] does
//! nothing.

use std::sync::Mutex;

use sluice_model::Warning;
use tokio::sync::mpsc;

/// The running recorded run's receiving end, if a run is going.
static TAP: Mutex<Option<mpsc::UnboundedSender<Warning>>> = Mutex::new(None);

/// Hands a warning to the recorded run in progress, if there is one.
pub fn report(host: Option<String>, message: String) {
    if let Ok(tap) = TAP.lock()
        && let Some(tx) = tap.as_ref()
    {
        let _ = tx.send(Warning { host, message });
    }
}

/// Receives the warnings reported while it lives; dropping it stops the capture.
pub struct WarningTap {
    rx: mpsc::UnboundedReceiver<Warning>,
}

impl WarningTap {
    /// Starts capturing. One run at a time per process: a second tap replaces the first.
    pub fn install() -> WarningTap {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut tap) = TAP.lock() {
            *tap = Some(tx);
        }
        WarningTap { rx }
    }

    /// The next warning; `None` once the tap is uninstalled and drained.
    pub async fn next(&mut self) -> Option<Warning> {
        self.rx.recv().await
    }

    /// Stops capturing; warnings already reported are still returned by [`WarningTap::next`].
    pub fn uninstall(&mut self) {
        if let Ok(mut tap) = TAP.lock() {
            *tap = None;
        }
        self.rx.close();
    }
}

impl Drop for WarningTap {
    fn drop(&mut self) {
        self.uninstall();
    }
}
