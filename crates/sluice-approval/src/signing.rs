//! Making a signature: with a private key file (decrypted with its passphrase when it is
//! encrypted), or, as `ssh-keygen -Y sign -f KEY.pub` does, with the private half of a public key
//! that `ssh-agent` holds.

use std::path::{Path, PathBuf};

use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{HashAlg, PrivateKey, PublicKey, SshSig};

use crate::NAMESPACE;

/// Who signs: a private key, or a key in the agent.
#[derive(Debug)]
pub enum Signer {
    Key(Box<PrivateKey>),
    Agent(PublicKey),
}

/// Why no signature was made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is neither a private key nor a public key ({reason})")]
    NotAKey { path: PathBuf, reason: String },
    #[error(
        "{path} is encrypted and no passphrase was given (type it at the prompt, or set {env})"
    )]
    NoPassphrase { path: PathBuf, env: &'static str },
    #[error("the passphrase does not decrypt {path}: {reason}")]
    WrongPassphrase { path: PathBuf, reason: String },
    #[error(
        "{path} is a public key, so its private half must be in ssh-agent, but the agent cannot be reached: {reason}"
    )]
    NoAgent { path: PathBuf, reason: String },
    #[error("ssh-agent does not hold the private half of {path}")]
    NotInAgent { path: PathBuf },
    #[error("the signature could not be made: {0}")]
    Sign(String),
}

/// The environment variable a key's passphrase may come from when there is no terminal.
pub const PASSPHRASE_ENV: &str = "SLUICE_SSH_PASSPHRASE";

impl Signer {
    /// Reads `path`: a private key (asking `passphrase` for an encrypted one), or a public key
    /// whose private half ssh-agent must hold.
    pub fn load(
        path: &Path,
        passphrase: impl FnOnce() -> Option<String>,
    ) -> Result<Signer, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if let Ok(public) = PublicKey::from_openssh(text.trim()) {
            return Ok(Signer::Agent(public));
        }
        match russh::keys::decode_secret_key(&text, None) {
            Ok(key) => return Ok(Signer::Key(Box::new(key))),
            Err(russh::keys::Error::KeyIsEncrypted) => {}
            Err(e) => {
                return Err(SignError::NotAKey {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        }
        let given = std::env::var(PASSPHRASE_ENV).ok().or_else(passphrase);
        let Some(passphrase) = given else {
            return Err(SignError::NoPassphrase {
                path: path.to_path_buf(),
                env: PASSPHRASE_ENV,
            });
        };
        russh::keys::decode_secret_key(&text, Some(&passphrase))
            .map(|key| Signer::Key(Box::new(key)))
            .map_err(|e| SignError::WrongPassphrase {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// The public key that signs.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Signer::Key(key) => key.public_key().clone(),
            Signer::Agent(public) => public.clone(),
        }
    }

    /// Signs `message` in the `sluice-approval` namespace (SHA-512, as `ssh-keygen -Y sign`).
    /// `path` names the key in messages.
    pub async fn sign(&self, message: &[u8], path: &Path) -> Result<SshSig, SignError> {
        match self {
            Signer::Key(key) => key
                .sign(NAMESPACE, HashAlg::Sha512, message)
                .map_err(|e| SignError::Sign(e.to_string())),
            Signer::Agent(public) => sign_with_agent(public, message, path).await,
        }
    }
}

async fn sign_with_agent(
    public: &PublicKey,
    message: &[u8],
    path: &Path,
) -> Result<SshSig, SignError> {
    let mut agent = AgentClient::connect_env()
        .await
        .map_err(|e| SignError::NoAgent {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let held = agent
        .request_identities()
        .await
        .map_err(|e| SignError::NoAgent {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !held
        .iter()
        .any(|id| id.public_key().key_data() == public.key_data())
    {
        return Err(SignError::NotInAgent {
            path: path.to_path_buf(),
        });
    }
    let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, message)
        .map_err(|e| SignError::Sign(e.to_string()))?;
    // RSA keys sign sshsig data with rsa-sha2-512, as ssh-keygen does.
    let rsa = public.algorithm().is_rsa().then_some(HashAlg::Sha512);
    let signature = agent
        .sign_request_signature(public, rsa, &data)
        .await
        .map_err(|e| SignError::Sign(e.to_string()))?;
    SshSig::new(
        public.key_data().clone(),
        NAMESPACE,
        HashAlg::Sha512,
        signature,
    )
    .map_err(|e| SignError::Sign(e.to_string()))
}
