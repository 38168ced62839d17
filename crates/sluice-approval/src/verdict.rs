//! Checking one signed approval: is the signature good, by whom (the `allowed_signers`
//! principal), over a statement that approves exactly this, and is it still valid.

use jiff::{SignedDuration, Timestamp};
use russh::keys::ssh_key::{HashAlg, PublicKey, SshSig};

use crate::NAMESPACE;
use crate::signers::{AllowedSigners, SignerMiss};
use crate::statement::{Statement, StatementScope};

/// What an approval must approve to count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub plan_hash: String,
    pub scope: StatementScope,
}

/// A good signature: the statement, who signed it, with which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub statement: Statement,
    /// The `allowed_signers` principal of the key.
    pub principal: String,
    /// SHA256 fingerprint of the key.
    pub key: String,
}

/// Why a signed approval does not count. The text says it in an approver's terms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not signed")]
    Unsigned,
    #[error("the signature is not an SSH signature ({0})")]
    Unreadable(String),
    #[error("signed for namespace `{found}`, not `{NAMESPACE}`")]
    WrongNamespace { found: String },
    #[error("bad signature: it does not match the statement (altered statement or signature)")]
    BadSignature,
    #[error("the signed text is not a sluice approval statement ({0})")]
    NotAStatement(String),
    #[error("it approves plan {found}, not {expected}")]
    OtherPlan { expected: String, found: String },
    #[error("it approves {found}, not {expected}")]
    OtherScope { expected: String, found: String },
    #[error("unknown signer: key {key} is not in allowed_signers")]
    UnknownSigner { key: String },
    #[error("key {key}: {miss}")]
    SignerNotAllowed { key: String, miss: String },
    #[error("expired at {at}")]
    Expired { at: Timestamp },
    #[error("signed at {signed_at}, older than the policy's max_age of {max_age}")]
    TooOld {
        signed_at: Timestamp,
        max_age: String,
    },
    #[error("signed at {signed_at}, in the future")]
    FromTheFuture { signed_at: Timestamp },
}

fn describe(scope: &StatementScope) -> String {
    match scope {
        StatementScope::Plan => "the plan".into(),
        StatementScope::RunStart => "the start of a run".into(),
        StatementScope::Gate { run, wave } => format!("the gate before wave {wave} of run {run}"),
    }
}

/// Tolerated clock difference between the signer's machine and this controller.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Checks one signed approval: `statement` (the exact text) and `signature` (armored sshsig)
/// against `signers`, `expected` and the time `now`; `max_age` bounds how long ago it was signed.
pub fn verify(
    statement: &str,
    signature: &str,
    signers: &AllowedSigners,
    expected: &Expected,
    now: Timestamp,
    max_age: Option<SignedDuration>,
) -> Result<Verified, Rejection> {
    let sig = SshSig::from_pem(signature).map_err(|e| Rejection::Unreadable(e.to_string()))?;
    if sig.namespace() != NAMESPACE {
        return Err(Rejection::WrongNamespace {
            found: sig.namespace().to_string(),
        });
    }
    let public = PublicKey::from(sig.public_key().clone());
    let key = public.fingerprint(HashAlg::Sha256).to_string();
    public
        .verify(NAMESPACE, statement.as_bytes(), &sig)
        .map_err(|_| Rejection::BadSignature)?;
    let parsed =
        Statement::parse(statement).map_err(|e| Rejection::NotAStatement(e.to_string()))?;
    if parsed.plan_hash != expected.plan_hash {
        return Err(Rejection::OtherPlan {
            expected: expected.plan_hash.clone(),
            found: parsed.plan_hash,
        });
    }
    if parsed.scope != expected.scope {
        return Err(Rejection::OtherScope {
            expected: describe(&expected.scope),
            found: describe(&parsed.scope),
        });
    }
    if parsed.signed_at > now + CLOCK_SKEW {
        return Err(Rejection::FromTheFuture {
            signed_at: parsed.signed_at,
        });
    }
    if parsed.expires <= now {
        return Err(Rejection::Expired { at: parsed.expires });
    }
    if let Some(max_age) = max_age
        && now.duration_since(parsed.signed_at) > max_age
    {
        return Err(Rejection::TooOld {
            signed_at: parsed.signed_at,
            max_age: format!("{max_age:#}"),
        });
    }
    let entry = signers
        .find(sig.public_key(), NAMESPACE, now)
        .map_err(|miss| match miss {
            SignerMiss::UnknownKey => Rejection::UnknownSigner { key: key.clone() },
            other => Rejection::SignerNotAllowed {
                key: key.clone(),
                miss: other.to_string(),
            },
        })?;
    Ok(Verified {
        statement: parsed,
        principal: entry.principal(),
        key,
    })
}
