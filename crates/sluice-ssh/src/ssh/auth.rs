//! User authentication: ssh-agent keys first, then identity files, as OpenSSH orders them.
//!
//! RSA keys sign with rsa-sha2-512/256 (whichever the server announces), never SHA-1. An
//! encrypted identity file is decrypted with the passphrase in `SshOptions::passphrase_env`.

use std::path::PathBuf;
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::{self, HashAlg, PrivateKeyWithHashAlg};

use super::SshOptions;
use super::connect::Client;
use crate::transport::{HostTarget, TransportError};

/// Authenticates `user`, or says which credentials the server refused.
pub async fn authenticate(
    handle: &mut Handle<Client>,
    host: &str,
    user: &str,
    target: &HostTarget,
    options: &SshOptions,
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
        let key = match keys::load_secret_key(&path, passphrase.as_deref()) {
            Ok(k) => k,
            Err(e) => {
                let reason = match e {
                    keys::Error::KeyIsEncrypted => format!(
                        "the key is encrypted; put its passphrase in ${}",
                        options.passphrase_env
                    ),
                    other => other.to_string(),
                };
                tracing::warn!(host, path = %path.display(), "identity file unusable: {reason}");
                file_error.get_or_insert(TransportError::IdentityFile {
                    host: host.to_string(),
                    path: path.display().to_string(),
                    reason,
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

/// `~/x` → `$HOME/x`, as inventories and ssh_config write paths.
pub fn expand_home(path: &std::path::Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}
