//! `sluice logs RUN [--host H] [--step S] [--raw]`: the output captured from steps of a run.
//!
//! The output is the product of this command, so it goes to stdout (pipe it, grep it); each
//! step's output is introduced by a `==> host step (exit N) <==` line. Control characters the
//! hosts printed (terminal escape sequences, `\r`) are shown as escapes (`\x1b`), so reading a
//! log never drives the terminal; `--raw` prints the captured text exactly as stored.

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;
use crate::visible::visible;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run id (see `sluice runs`).
    run: String,
    /// Only this host.
    #[arg(long)]
    host: Option<String>,
    /// Only this step.
    #[arg(long)]
    step: Option<String>,
    /// The captured output exactly as stored, control characters included (escape sequences
    /// then act on the terminal: pipe it to a file or `less`).
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let log = args.store.open_read_only()?;
    let outputs = log.outputs(&args.run, args.host.as_deref(), args.step.as_deref())?;
    if outputs.is_empty() {
        return Err(CliError::invalid_input(format!(
            "run {} has no captured output{}{}",
            args.run,
            args.host
                .as_deref()
                .map(|h| format!(" for host {h}"))
                .unwrap_or_default(),
            args.step
                .as_deref()
                .map(|s| format!(" of step {s}"))
                .unwrap_or_default(),
        )));
    }
    let mut text = String::new();
    for out in outputs {
        let rollback = if out.rollback { " (rollback)" } else { "" };
        text.push_str(&format!(
            "==> {} {}{rollback} ({}) <==\n",
            out.host, out.step, out.detail
        ));
        push_stream(&mut text, &out.stdout.text());
        let stderr = out.stderr.text();
        if !stderr.is_empty() {
            text.push_str("--- stderr ---\n");
            push_stream(&mut text, &stderr);
        }
    }
    if args.raw {
        console.stdout(&text);
    } else {
        console.stdout(&visible(&text));
    }
    Ok(exit::OK)
}

fn push_stream(text: &mut String, stream: &str) {
    text.push_str(stream);
    if !stream.is_empty() && !stream.ends_with('\n') {
        text.push('\n');
    }
}
