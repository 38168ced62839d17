//! The sluice planner: turns a YAML change plan and an inventory into a reviewed, hashed
//! [`PlanArtifact`] that the executor runs exactly as shown.
//!
//! Code map:
//! - [`artifact`]: the compiled plan, the contract between planner and executor.
//! - [`command`]: rendered commands whose secrets and registered values are filled in only at
//!   run time, and the shell quoting rule.
//!
//! Architecture invariant: the planner never opens a connection and never reads a secret's value.

pub mod artifact;
pub mod command;

pub use artifact::*;
pub use command::{
    RenderedCommand, ResolveError, ResolvedCommand, RuntimeValues, Segment, shell_quote,
};
