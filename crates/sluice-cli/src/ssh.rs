//! The SSH transport as the commands that reach hosts (`exec`, `apply`, `resume`) build it.
//!
//! An encrypted identity file without `SLUICE_SSH_PASSPHRASE` is asked for on the terminal, echo
//! off, when stdin and stderr are terminals. Those commands draw progress bars on stderr at the
//! same time, so the question is asked with the bars suspended, through the command's own
//! `MultiProgress`: otherwise a redraw would overwrite the prompt while the operator types.

use std::path::Path;
use std::sync::Arc;

use indicatif::MultiProgress;
use sluice_ssh::{Passphrase, PassphrasePrompt, SshOptions, SshTransport};

use crate::console::Console;

/// The SSH transport with the default options, and the terminal prompt when there is one;
/// `exec_per_step` (`--exec-per-step`) gives every command a channel of its own.
pub fn transport(console: &Console, bars: &MultiProgress, exec_per_step: bool) -> SshTransport {
    SshTransport::new(SshOptions {
        exec_per_step,
        passphrase_prompt: console
            .can_prompt()
            .then(|| passphrase_prompt(bars.clone())),
        ..SshOptions::default()
    })
}

/// Asks on the terminal, echo off, with the bars out of the way while the operator types. The
/// transport calls it on a blocking thread, one question at a time, once per key file.
fn passphrase_prompt(bars: MultiProgress) -> PassphrasePrompt {
    PassphrasePrompt(Arc::new(move |key: &Path| {
        bars.suspend(|| {
            let term = console::Term::stderr();
            term.write_str(&format!("Enter passphrase for {}: ", key.display()))
                .ok()?;
            let typed = term.read_secure_line().ok()?;
            (!typed.is_empty()).then_some(Passphrase(typed))
        })
    }))
}
