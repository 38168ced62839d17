//! User authentication: ssh-agent keys first, then identity files, as OpenSSH orders them.
//!
//! RSA keys sign with rsa-sha2-512/256 (whichever the server announces), never SHA-1. An
//! encrypted identity file is decrypted with `SshOptions::passphrase`, else the passphrase in
//! `SshOptions::passphrase_env`, else what `SshOptions::passphrase_prompt` (the CLI's terminal
//! prompt) answers: asked once per key file for all connections of a transport, one question at a
//! time, the answer kept in memory for the transport's life.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::{self, HashAlg, PrivateKeyWithHashAlg};

use super::connect::Client;
use super::{PassphrasePrompt, SshOptions};
use crate::transport::{HostTarget, TransportError};

/// Authenticates `user`, or says which credentials the server refused.
pub async fn authenticate(
    handle: &mut Handle<Client>,
    host: &str,
    user: &str,
    target: &HostTarget,
    options: &SshOptions,
    asked: &AskedPassphrases,
) -> Result<(), TransportError> {
    let mut tried: Vec<String> = Vec::new();
    let rsa_hash = match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => hash,
        _ => Some(HashAlg::Sha256),
    };
    let protocol = |e: russh::Error| TransportError::Protocol {
        host: host.to_string(),
        reason: format!("during authentication: {e}"),
    };

    let agent_socket = options
        .agent_socket
        .clone()
        .or_else(|| std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from))
        .filter(|_| options.use_agent);
    if let Some(socket) = agent_socket
        && let Ok(mut agent) = keys::agent::client::AgentClient::connect_uds(&socket).await
        && let Ok(identities) = agent.request_identities().await
    {
        for identity in identities {
            let keys::agent::AgentIdentity::PublicKey { key, comment } = identity else {
                continue;
            };
            let hash = key.algorithm().is_rsa().then_some(rsa_hash).flatten();
            tried.push(format!(
                "agent key {}",
                if comment.is_empty() {
                    key.algorithm().to_string()
                } else {
                    comment
                }
            ));
            match handle
                .authenticate_publickey_with(user, key, hash, &mut agent)
                .await
            {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(AuthResult::Failure { .. }) => {}
                Err(e) => tracing::debug!(host, "agent signing failed: {e}"),
            }
        }
    }

    let explicit = !target.identity_files.is_empty();
    let files: Vec<PathBuf> = if explicit {
        target
            .identity_files
            .iter()
            .map(|p| expand_home(p))
            .collect()
    } else {
        options.default_identity_files.clone()
    };
    let passphrase = options
        .passphrase
        .as_ref()
        .map(|p| p.0.clone())
        .or_else(|| std::env::var(&options.passphrase_env).ok());
    let mut file_error = None;
    for path in files {
        if !explicit && !path.exists() {
            continue;
        }
        let key = match load_key(&path, passphrase.as_deref(), options, asked).await {
            Ok(k) => k,
            Err(reason) => {
                tracing::warn!(host, path = %path.display(), "identity file unusable: {reason}");
                file_error.get_or_insert(TransportError::IdentityFile {
                    host: host.to_string(),
                    path: path.display().to_string(),
                    reason: reason.to_string(),
                });
                continue;
            }
        };
        let hash = key.algorithm().is_rsa().then_some(rsa_hash).flatten();
        tried.push(path.display().to_string());
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(protocol)?;
        if matches!(result, AuthResult::Success) {
            return Ok(());
        }
    }
    // Nothing was even offered because the only keys could not be read: say so, not "refused".
    if tried.is_empty()
        && let Some(e) = file_error
    {
        return Err(e);
    }
    Err(TransportError::AuthFailed {
        host: host.to_string(),
        user: user.to_string(),
        tried: if tried.is_empty() {
            "no identity file or agent key found".into()
        } else {
            tried.join(", ")
        },
    })
}

/// Why an identity file gave no key; the message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Not readable, or not a key.
    #[error("{0}")]
    Unreadable(#[source] keys::Error),
    /// A passphrase came from the options or the environment, and it did not open the key.
    #[error("{source} (is the passphrase given by ${env} right?)")]
    GivenPassphrase {
        env: String,
        #[source]
        source: keys::Error,
    },
    /// Encrypted, and there is no terminal to ask on.
    #[error(
        "the key is encrypted and there is no terminal to ask for its passphrase: put it in ${env}"
    )]
    NoPrompt { env: String },
    /// Encrypted, and the operator gave no passphrase at the prompt.
    #[error(
        "the key is encrypted and no passphrase was given at the prompt: type it, or put it in ${env}"
    )]
    NoAnswer { env: String },
    /// The passphrase typed at the prompt did not open the key.
    #[error("the passphrase typed does not decrypt the key ({0})")]
    TypedPassphrase(#[source] keys::Error),
}

/// Reads an identity file, asking for its passphrase when it is encrypted and none was given.
async fn load_key(
    path: &Path,
    passphrase: Option<&str>,
    options: &SshOptions,
    asked: &AskedPassphrases,
) -> Result<keys::PrivateKey, KeyFileError> {
    let env = || options.passphrase_env.clone();
    match keys::load_secret_key(path, passphrase) {
        Ok(k) => return Ok(k),
        Err(keys::Error::KeyIsEncrypted) => {}
        Err(source) if passphrase.is_some() => {
            return Err(KeyFileError::GivenPassphrase { env: env(), source });
        }
        Err(e) => return Err(KeyFileError::Unreadable(e)),
    }
    let Some(prompt) = &options.passphrase_prompt else {
        return Err(KeyFileError::NoPrompt { env: env() });
    };
    let Some(answer) = asked.answer(path, prompt).await else {
        return Err(KeyFileError::NoAnswer { env: env() });
    };
    keys::load_secret_key(path, Some(&answer)).map_err(|e| {
        asked.forget_wrong(path);
        KeyFileError::TypedPassphrase(e)
    })
}

/// Passphrases answered at the prompt, per key file: one question at a time, asked once.
#[derive(Default)]
pub struct AskedPassphrases {
    answers: tokio::sync::Mutex<HashMap<PathBuf, Option<String>>>,
    /// Keys whose typed passphrase was wrong: not asked again (one prompt per host otherwise).
    wrong: std::sync::Mutex<Vec<PathBuf>>,
}

impl AskedPassphrases {
    async fn answer(&self, path: &Path, prompt: &PassphrasePrompt) -> Option<String> {
        // Held while the operator types: other connections needing this key wait and reuse it.
        let mut answers = self.answers.lock().await;
        if self.was_wrong(path) {
            return None;
        }
        if let Some(answer) = answers.get(path) {
            return answer.clone();
        }
        let (ask, key) = (prompt.clone(), path.to_path_buf());
        // The prompt blocks on the terminal: keep it off the async workers.
        let answer = tokio::task::spawn_blocking(move || (ask.0)(&key))
            .await
            .ok()
            .flatten()
            .map(|p| p.0);
        answers.insert(path.to_path_buf(), answer.clone());
        answer
    }

    fn was_wrong(&self, path: &Path) -> bool {
        let wrong = self.wrong.lock().unwrap_or_else(|p| p.into_inner());
        wrong.iter().any(|p| p == path)
    }

    fn forget_wrong(&self, path: &Path) {
        let mut wrong = self.wrong.lock().unwrap_or_else(|p| p.into_inner());
        wrong.push(path.to_path_buf());
    }
}

/// `~/x` → `$HOME/x`, as inventories and ssh_config write paths.
pub fn expand_home(path: &std::path::Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}
