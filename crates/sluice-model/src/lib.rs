//! The one vocabulary of a sluice run: every fact the executor reports, the audit trail records
//! and resume reads back is defined here once, as a type. Statuses and decisions are enums,
//! serialized snake_case; nothing else in sluice spells them as strings.

pub mod status;

pub use status::ConnectErrorKind;
