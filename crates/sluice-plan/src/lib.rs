//! The sluice planner: turns a YAML change plan and an inventory into a reviewed, hashed
//! [`PlanArtifact`] that the executor runs exactly as shown.
//!
//! Code map:
//! - [`artifact`]: the compiled plan, the contract between planner and executor.
//! - [`command`]: rendered commands whose secrets and registered values are filled in only at
//!   run time, and the shell quoting rules.
//! - [`template`]: the `{{ }}` language; [`shell`]: in which quoting context each reference of a
//!   command stands (or why it may not stand there); [`url`]: values in health URLs and
//!   addresses, and the checks of the rendered targets.
//! - [`source`]: reading YAML within limits; [`node`]: the located YAML tree;
//!   [`diagnostic`]: located problems reported all at once; [`warning`]: the typed warnings
//!   (each with a stable code) found while compiling or in an artifact.
//! - [`stages`]: plans with stages (compiled one stage at a time, merged into one artifact)
//!   and a stage of an artifact as a plan of its own.
//! - [`estimate`]: how long a plan may take; [`window`]: maintenance window arithmetic.
//!
//! The review a change board reads is rendered by the `sluice-review` crate.
//!
//! Architecture invariant: the planner never opens a connection and never reads a secret's value.

pub mod artifact;
pub mod command;
pub mod diagnostic;
pub mod node;
pub mod source;

pub use artifact::*;
pub use command::{
    RenderedCommand, ResolveError, ResolvedCommand, RuntimeValues, SECRET_VARIABLE_PREFIX,
    SecretBinding, Segment, shell_quote,
};
pub mod backup;
pub mod compile;
pub mod confirm;
pub mod error;
pub mod estimate;
pub mod graph;
pub mod health;
pub mod host_hooks;
pub mod inventory;
pub mod model;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod reboot;
pub mod references;
pub mod register;
mod render;
pub mod saved;
pub mod schema;
pub mod shell;
pub mod stages;
pub mod template;
pub mod url;
pub mod warning;
pub mod waves;
pub mod window;

pub use compile::{CompileOptions, Compiled, compile_files, compile_sources, compile_sources_with};
pub use error::PlanError;
pub use saved::{load_artifact, parse_artifact, to_file_text};
