//! How sluice reaches hosts: one [`Transport`] interface and its implementations.
//!
//! Code map:
//! - [`transport`]: the interface the executor depends on (requests, outcomes, errors).
//! - [`capture`]: bounded capture of a command's output (head, tail, sha256 and size of all of it).
//! - [`local`]: commands run by `sh -c` on the controller itself.
//!
//! Architecture invariant: no code outside this crate knows whether a host is reached over SSH
//! or locally; the executor only sees [`Transport`] and [`Connection`].

pub mod capture;
pub mod local;
pub mod transport;

pub use capture::{CapturedOutput, OutputCapture};
pub use local::LocalTransport;
pub use transport::*;
