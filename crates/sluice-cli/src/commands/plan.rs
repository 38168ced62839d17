//! `sluice plan`: compile a change plan against an inventory (or load a saved artifact with
//! `--from`) and show it for review; `sluice plan diff` compares two saved artifacts.
//!
//! Output (README.md, docs/operations.md "Reviewing a change"): the review is the command's
//! product, so it goes to stdout (or `--review-out FILE`) in `--format text|markdown|html|json`;
//! `--json` prints the plan artifact itself; `--dot` prints Graphviz; `--out FILE` writes the
//! artifact for `sluice apply --plan`. Diagnostics and warnings go to stderr; invalid input exits 2.

use std::path::PathBuf;

use sluice_plan::diagnostic::{Diagnostic, Rendered};
use sluice_plan::inventory::{InventoryFormat, InventoryInput};
use sluice_plan::{Compiled, PlanError};

use crate::commands::audit::StateDirArg;
use crate::commands::{plan_diff, review};
use crate::console::{Console, Paint};
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    override_usage = "sluice plan [OPTIONS] <PLAN> -i <INVENTORY>\n       \
                      sluice plan [OPTIONS] --from <PLAN.json>\n       \
                      sluice plan diff [OPTIONS] <OLD> <NEW>"
)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// The change plan (YAML).
    #[arg(required_unless_present = "from", requires = "inventory")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub input: Option<InputArgs>,
    /// Review a saved plan artifact (as written by --out) instead of compiling; its hash is
    /// verified first.
    #[arg(long, value_name = "PLAN.json", conflicts_with_all = ["plan", "inventory", "vars"])]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub review: review::ReviewArgs,
    /// Print the plan artifact as JSON on stdout instead of the review.
    #[arg(long, conflicts_with_all = ["dot", "format"])]
    pub json: bool,
    /// Print the execution graph as Graphviz on stdout.
    #[arg(long, conflicts_with = "format")]
    pub dot: bool,
    /// Write the plan artifact (canonical JSON with its plan_hash) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StateDirArg,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// What changed between two saved plan artifacts (exit 0 identical, 1 different, 2 bad
    /// input).
    Diff(plan_diff::Args),
}

/// The inputs `plan` and `validate` share.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// The inventory: sluice YAML, Ansible INI or YAML, an inventory script, or
    /// `ssh_config[:PATH]` (the format is told from the content).
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: PathBuf,
    /// Read the inventory as this format instead of telling it from the content: sluice,
    /// ansible-ini, ansible-yaml, script or ssh-config.
    // A field, not a flattened InventoryFormatArg: clap leaves the group of an optional
    // flattened struct (`plan`'s `Option<InputArgs>`) empty when it nests another flatten, and
    // the inputs would then never be seen as given.
    #[arg(id = "inventory_format", long = "inventory-format", value_name = "FORMAT", value_parser = parse_format)]
    pub inventory_format: Option<InventoryFormat>,
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
    #[arg(id = "inventory_format", long = "inventory-format", value_name = "FORMAT", value_parser = parse_format)]
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
    if let Some(Action::Diff(diff)) = args.action {
        return plan_diff::run(diff, console);
    }
    let (artifact, warnings) = match (&args.from, &args.plan, &args.input) {
        (Some(from), _, _) => (review::load(from)?, Vec::new()),
        (None, Some(plan), Some(input)) => {
            review::refuse_artifact_as_plan(plan)?;
            let compiled = compile(plan, input, console)?;
            let warnings = compiled
                .warnings
                .iter()
                .filter_map(|d| d.warning.as_deref().cloned())
                .collect();
            (compiled.artifact, warnings)
        }
        // clap requires a plan and an inventory unless --from is given.
        _ => {
            return Err(CliError::invalid_input(
                "name a change plan and -i INVENTORY, or --from PLAN.json",
            ));
        }
    };
    let artifact = &artifact;
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
        review::show(artifact, warnings, &args.review, &args.store, console)?;
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
        &InventoryFormatArg {
            format: input.inventory_format,
        }
        .input(&input.inventory),
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
