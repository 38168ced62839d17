//! How sluice reaches hosts: one [`Transport`] interface and its implementations.
//!
//! Code map:
//! - [`transport`]: the interface the executor depends on (requests, outcomes, errors).
//! - [`capture`]: bounded capture of a command's output (head, tail, sha256 and size of all of it).
//! - [`local`]: commands run by `sh -c` on the controller itself.
//! - [`secret_stdin`]: how secret values reach the shell that runs a command: on its stdin,
//!   read by a fixed prologue, never on a command line.
//! - [`fd_limit`]: the process's file-descriptor budget (`RLIMIT_NOFILE` raised once) and the
//!   shares of it SSH connections and local commands hold at most.
//! - [`ssh`]: the russh client: dialling with handshake limits ([`ssh::connect`],
//!   [`ssh::limits`]), host keys ([`ssh::known_hosts`]), authentication ([`ssh::auth`]), commands
//!   and uploads on a shared connection ([`ssh::exec`], [`ssh::shell`]), `become` through sudo
//!   ([`ssh::sudo`]), `~/.ssh/config` ([`ssh::config`]).
//!
//! Architecture invariant: no code outside this crate knows whether a host is reached over SSH
//! or locally; the executor only sees [`Transport`] and [`Connection`].

pub mod capture;
pub mod fd_limit;
pub mod local;
pub mod secret_stdin;
pub mod ssh;
pub mod transport;

pub use capture::{CapturedOutput, OutputCapture};
pub use local::LocalTransport;
pub use secret_stdin::SecretVar;
pub use ssh::{Passphrase, PassphrasePrompt, SshConnection, SshOptions, SshTransport};
pub use transport::*;
