//! `sluice plan diff OLD.json NEW.json`: what changed between two saved plan artifacts, in text,
//! Markdown or JSON. Exit codes as `diff`'s: 0 identical, 1 different, 2 bad input (a missing,
//! unreadable, edited or foreign artifact).

use std::path::PathBuf;

use sluice_review::diff::{PlanDiff, render};

use crate::commands::review;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum DiffFormat {
    #[default]
    Text,
    #[value(alias = "md")]
    Markdown,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The artifact reviewed before (as written by `sluice plan --out`).
    pub old: PathBuf,
    /// The artifact to review now.
    pub new: PathBuf,
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let old = review::load(&args.old)?;
    let new = review::load(&args.new)?;
    let diff = PlanDiff::between(&old, &new);
    let text = match args.format {
        DiffFormat::Text => render::text(&diff),
        DiffFormat::Markdown => render::markdown(&diff),
        DiffFormat::Json => {
            serde_json::to_string_pretty(&diff).map_err(|e| CliError::failed(e.to_string()))? + "\n"
        }
    };
    console.stdout(&text);
    Ok(if diff.identical {
        exit::OK
    } else {
        exit::DIFFERENT
    })
}
