//! The review a change board reads before it approves a change, and the diff of two reviews.
//!
//! One model, many formats: [`build`] reads a plan artifact once into a [`Review`] (the data
//! every format shows: summary, warnings, waves, steps, health checks, failure policy in plain
//! words, per-host differences, hosts, approvals), and each format module renders it:
//! - [`text`]: what `sluice plan` prints by default;
//! - [`markdown`]: GitHub/GitLab-flavoured, to paste into a ticket;
//! - [`html`]: one self-contained page (inline CSS and SVG, no script, no request), printable;
//! - JSON: the [`Review`] itself (docs/review-json.md).
//!
//! [`forms`] groups each command's per-host renderings (a host's own name or address becomes
//! a hole only when every host's text confirms it); [`hosts`] writes runs of hosts
//! `first … last`; [`policy`] says what happens when a wave fails; [`when`] puts the window in
//! UTC and local time; [`approvals`] reads the approvals recorded in the audit store.
//! [`diff`] compares two artifacts (`sluice plan diff`).
//!
//! **Invariant:** every format is complete — no host, form or warning is left out; only the
//! human formats shorten runs of consecutive hosts, and they list every host in plan order.

pub mod approvals;
pub mod build;
pub mod diff;
pub mod forms;
pub mod hosts;
pub mod html;
pub mod markdown;
pub mod model;
pub mod phrases;
pub mod policy;
pub mod stages;
pub mod text;
pub mod when;

pub use build::{ReviewInput, build};
pub use model::Review;
pub use when::Clock;

/// The formats of `sluice plan --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Json,
}

/// Could not render (only JSON serialization can fail, and only on a bug).
#[derive(Debug, thiserror::Error)]
#[error("cannot render the review as JSON: {0}")]
pub struct RenderError(#[from] serde_json::Error);

/// The review in `format`, ending with a newline.
pub fn render(review: &Review, format: Format) -> Result<String, RenderError> {
    Ok(match format {
        Format::Text => text::render(review),
        Format::Markdown => markdown::render(review),
        Format::Html => html::render(review),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(review)?;
            s.push('\n');
            s
        }
    })
}
