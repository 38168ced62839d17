//! Signing a statement with the operator's or an approver's key (`--key`): a private key file,
//! asked for its passphrase on the terminal when it is encrypted (or read from
//! `SLUICE_SSH_PASSPHRASE`), or a public key whose private half ssh-agent holds.

use std::path::Path;

use sluice_approval::Signer;
use sluice_model::ApprovalSignature;

use crate::console::Console;
use crate::error::CliError;

/// Signs `text` with the key at `key`; returns the armored signature and the key's fingerprint.
pub fn sign(key: &Path, text: &str, console: &Console) -> Result<ApprovalSignature, CliError> {
    let signer = Signer::load(key, || ask_passphrase(console, key))
        .map_err(|e| CliError::invalid_input(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    let sig = runtime
        .block_on(signer.sign(text.as_bytes(), key))
        .map_err(|e| CliError::invalid_input(e.to_string()))?;
    let pem = sig
        .to_pem(Default::default())
        .map_err(|e| CliError::failed(format!("cannot encode the signature: {e}")))?;
    let fingerprint = signer
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    Ok(ApprovalSignature {
        statement: text.to_string(),
        signature: pem,
        key: fingerprint,
    })
}

/// Asks for an encrypted key's passphrase on the terminal, echo off, when there is one.
fn ask_passphrase(console: &Console, key: &Path) -> Option<String> {
    if !console.can_prompt() {
        return None;
    }
    let term = console::Term::stderr();
    term.write_str(&format!("Enter passphrase for {}: ", key.display()))
        .ok()?;
    let typed = term.read_secure_line().ok()?;
    (!typed.is_empty()).then_some(typed)
}
