//! Signed approvals.
//!
//! A change board's approval is an SSH signature, in OpenSSH's `sshsig` format
//! (`ssh-keygen -Y sign -n sluice-approval`), over a canonical [`Statement`] of what is approved:
//! the plan's exact hash, the scope (the plan, the gate before wave W of run R, or the start of a
//! run), when it was signed, until when it is valid, and the comment. Who may approve is an
//! OpenSSH `allowed_signers` file ([`AllowedSigners`]): it gives each key its principal, the
//! namespaces it may sign and the period it is valid in.
//!
//! - [`statement`]: the statement, its canonical text and strict parser;
//! - [`signers`]: `allowed_signers` parsing and lookup, as `ssh-keygen -Y verify` does it;
//! - [`signing`]: signing with a private key file or with a key held by `ssh-agent`;
//! - [`verdict`]: checking one signed approval, with the reason when it does not count;
//! - [`quorum`]: counting the valid approvals of distinct principals a policy requires.
//!
//! Signatures made here verify with `ssh-keygen -Y verify`, and signatures made by
//! `ssh-keygen -Y sign` verify here (tests/interop.rs runs the real `ssh-keygen`).

pub mod quorum;
pub mod signers;
pub mod signing;
pub mod statement;
pub mod verdict;

/// The sshsig namespace of sluice approvals: a signature made for anything else does not count.
pub const NAMESPACE: &str = "sluice-approval";

pub use quorum::{Candidate, Identity, Quorum, QuorumReport};
pub use signers::{AllowedSigners, SignersError};
pub use signing::{SignError, Signer};
pub use statement::{Statement, StatementError, StatementScope};
pub use verdict::{Expected, Rejection, Verified, verify};
