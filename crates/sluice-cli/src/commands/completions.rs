//! `sluice completions SHELL` and `sluice man --out DIR`: a completion script and man pages,
//! generated from the clap definitions (clap_complete, clap_mangen), so they never drift from
//! the command line.

use std::path::PathBuf;

use crate::console::Console;
use crate::error::CliError;
use crate::exit;

/// The shells a completion script is written for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: `source <(sluice completions bash)`, or save it where the shell loads
    /// completions (bash: /usr/share/bash-completion/completions/sluice; zsh: a `_sluice` file
    /// in $fpath; fish: ~/.config/fish/completions/sluice.fish).
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages to (created if missing): sluice.1, sluice-apply.1, ...
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut crate::command_definition(),
        "sluice",
        &mut script,
    );
    console.stdout(&String::from_utf8_lossy(&script));
    Ok(exit::OK)
}

pub fn run_man(args: ManArgs, console: &Console) -> Result<u8, CliError> {
    let written = |e: std::io::Error| {
        CliError::failed(format!(
            "cannot write man pages to {}: {e}",
            args.out.display()
        ))
    };
    std::fs::create_dir_all(&args.out).map_err(written)?;
    let command = crate::command_definition().version(env!("CARGO_PKG_VERSION"));
    clap_mangen::generate_to(command, &args.out).map_err(written)?;
    console.status("Wrote", format!("man pages to {}", args.out.display()));
    Ok(exit::OK)
}
