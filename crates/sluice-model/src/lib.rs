//! The one vocabulary of a sluice run: every fact the executor reports, the audit trail records
//! and resume reads back is defined here once, as a type.
//!
//! - [`status`]: the closed vocabularies (statuses, outcomes, decisions, kinds) as enums, each
//!   value with its one spelling and meaning;
//! - [`fact`]: [`Fact`], one variant per kind of fact, and the payload of each;
//! - [`event`]: [`Event`], a fact in the `--json` stream; the audit trail's `Record` is the
//!   other envelope around the same [`Fact`];
//! - [`capture`]: [`Capture`], a captured output stream;
//! - [`mask`]: [`SecretMask`], how secret values become `***` in every output path;
//! - [`reference`]: the generated reference of docs/json-events.md.
//!
//! Architecture invariant: nothing outside this crate spells a status, outcome or decision as a
//! string literal; everything else uses these types.

pub mod capture;
pub mod event;
pub mod fact;
pub mod mask;
pub mod reference;
pub mod status;

pub use capture::Capture;
pub use event::Event;
pub use fact::*;
pub use mask::{MASK, SecretMask};
pub use status::*;
