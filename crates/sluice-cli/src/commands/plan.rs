//! `sluice plan`: compile a change plan against an inventory and show it for review.
//!
//! Output (README.md, docs/plan-format.md): the human review goes to stderr like all human
//! output (Console rule); `--json` prints the plan artifact as one JSON document on stdout;
//! `--dot` prints Graphviz on stdout; `--out FILE` writes the artifact for `sluice apply --plan`.
//! Diagnostics go to stderr with a caret excerpt; invalid input exits 2.

use std::path::PathBuf;

use sluice_plan::diagnostic::{Diagnostic, Rendered};
use sluice_plan::inventory::{InventoryFormat, InventoryInput};
use sluice_plan::{Compiled, PlanError};

use crate::console::{Console, Paint};
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The change plan (YAML).
    pub plan: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Print the plan artifact as JSON on stdout instead of the human review.
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Print the execution graph as Graphviz on stdout.
    #[arg(long)]
    pub dot: bool,
    /// Write the plan artifact (canonical JSON with its plan_hash) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The inputs `plan` and `validate` share.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// The inventory: sluice YAML, Ansible INI or YAML, an inventory script, or
    /// `ssh_config[:PATH]` (the format is told from the content).
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: PathBuf,
    #[command(flatten)]
    pub inventory_format: InventoryFormatArg,
    /// Set a variable, overriding plan, group and host vars (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Keep only the targeted hosts this Ansible host pattern matches: names, groups, globs
    /// (`web*`), `!exclude`, `&intersect`, comma lists, `@FILE` (docs/plan-format.md).
    #[arg(long, value_name = "PATTERN")]
    pub limit: Option<String>,
}

/// `--inventory-format`, shared by every command that reads an inventory.
#[derive(Debug, Clone, clap::Args)]
pub struct InventoryFormatArg {
    /// Read the inventory as this format instead of telling it from the content: sluice,
    /// ansible-ini, ansible-yaml, script or ssh-config.
    #[arg(long = "inventory-format", value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<InventoryFormat>,
}

impl InventoryFormatArg {
    /// The `-i` argument with the format it is forced to.
    pub fn input(&self, inventory: &std::path::Path) -> InventoryInput {
        InventoryInput {
            spec: inventory.to_string_lossy().into_owned(),
            format: self.format,
        }
    }
}

fn parse_format(s: &str) -> Result<InventoryFormat, String> {
    InventoryFormat::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = InventoryFormat::ALL.iter().map(|f| f.as_str()).collect();
        format!("`{s}` is not a format; use one of {}", names.join(", "))
    })
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let compiled = compile(&args.plan, &args.input, console)?;
    let artifact = &compiled.artifact;
    if let Some(out) = &args.out {
        let text =
            sluice_plan::to_file_text(artifact).map_err(|e| CliError::failed(e.to_string()))?;
        std::fs::write(out, text)
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", out.display())))?;
    }
    if args.json {
        let value = serde_json::to_value(artifact).map_err(|e| CliError::failed(e.to_string()))?;
        console.json_document(&value);
    } else if args.dot {
        console.stdout(&sluice_plan::graph::to_dot(artifact));
    } else {
        console.text(sluice_plan::review::render(artifact));
    }
    if let Some(out) = &args.out {
        console.status(
            "Wrote",
            format!("{} (plan hash {})", out.display(), artifact.plan_hash),
        );
    }
    Ok(exit::OK)
}

/// Compiles and prints warnings; on invalid input prints every diagnostic and returns exit 2.
pub fn compile(
    plan: &std::path::Path,
    input: &InputArgs,
    console: &Console,
) -> Result<Compiled, CliError> {
    let options = sluice_plan::CompileOptions {
        vars: input.vars.clone(),
        limit: input.limit.clone(),
        ..Default::default()
    };
    let result = sluice_plan::compile_files(
        &plan.to_string_lossy(),
        &input.inventory_format.input(&input.inventory),
        &options,
    );
    match result {
        Ok(compiled) => {
            for w in &compiled.warnings {
                print_diagnostic(console, w);
            }
            check_signers(&compiled.artifact, &input.inventory)?;
            Ok(compiled)
        }
        Err(PlanError::Invalid(diags)) => {
            for d in &diags {
                print_diagnostic(console, d);
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            Err(CliError::invalid_input(format!(
                "{errors} problem(s) found; nothing was planned"
            )))
        }
        Err(e) => Err(CliError::invalid_input(e.to_string())),
    }
}

/// The policy's allowed_signers file must be one OpenSSH reads: a line it would refuse is an
/// error now, not when approvals are checked.
fn check_signers(
    artifact: &sluice_plan::PlanArtifact,
    inventory: &std::path::Path,
) -> Result<(), CliError> {
    let Some(file) = artifact
        .policy
        .as_ref()
        .and_then(|p| p.allowed_signers.as_ref())
    else {
        return Ok(());
    };
    let path = inventory
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(&file.path);
    sluice_approval::AllowedSigners::parse(&file.text, &path)
        .map(|_| ())
        .map_err(|e| CliError::invalid_input(format!("{e}; nothing was planned")))
}

/// Draws one diagnostic with miette: message, `file:line:col`, caret excerpt, help.
pub fn print_diagnostic(console: &Console, d: &Diagnostic) {
    let theme = if console.color() {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut text = String::new();
    if handler.render_report(&mut text, &Rendered::new(d)).is_err() {
        text = format!("{d}\n");
    }
    if d.is_error() {
        console.text(text);
    } else {
        console.text(console.paint(Paint::Warning, "") + &text);
    }
}
