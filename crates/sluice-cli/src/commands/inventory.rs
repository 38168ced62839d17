//! `sluice inventory list|graph|host`: what an inventory holds, as `ansible-inventory` shows it.
//!
//! - `list`: every host with how it is reached and its groups (human, stderr); `--json` prints
//!   `ansible-inventory --list`'s JSON on stdout (`_meta.hostvars`, each group's `hosts` and
//!   `children`).
//! - `graph [GROUP]`: the group tree under GROUP (default `all`), on stdout.
//! - `host NAME`: the host's merged variables as JSON, on stdout.
//!
//! Nothing is contacted. Problems in the inventory are printed with their location; errors
//! exit 2, warnings are printed and the command goes on.

use std::path::PathBuf;

use sluice_plan::diagnostic::Diagnostics;
use sluice_plan::inventory::{Inventory, listing};

use crate::commands::plan::{InventoryFormatArg, print_diagnostic};
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: InventoryCommand,
}

/// The inventory to read, shared by the subcommands.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// The inventory: sluice YAML, Ansible INI or YAML, an inventory script, or
    /// `ssh_config[:PATH]`.
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: PathBuf,
    #[command(flatten)]
    pub format: InventoryFormatArg,
}

#[derive(Debug, clap::Subcommand)]
pub enum InventoryCommand {
    /// Every host: how it is reached and its groups (`--json`: ansible-inventory --list).
    List {
        #[command(flatten)]
        source: Source,
        /// Print ansible-inventory's --list JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The tree of groups and hosts under GROUP (like ansible-inventory --graph).
    Graph {
        #[command(flatten)]
        source: Source,
        /// The group to start at.
        #[arg(default_value = "all")]
        group: String,
    },
    /// One host's merged variables as JSON (like ansible-inventory --host).
    Host {
        #[command(flatten)]
        source: Source,
        /// The host's inventory name.
        name: String,
    },
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    match args.command {
        InventoryCommand::List { source, json } => {
            let inv = load(&source, console)?;
            if json {
                console.stdout(&(listing::to_ansible_json(&listing::list(&inv)) + "\n"));
            } else {
                console.text(human_list(&inv));
            }
        }
        InventoryCommand::Graph { source, group } => {
            let inv = load(&source, console)?;
            let graph = listing::graph(&inv, &group).ok_or_else(|| {
                CliError::invalid_input(format!("`{group}` is not a group of the inventory"))
            })?;
            console.stdout(&graph);
        }
        InventoryCommand::Host { source, name } => {
            let inv = load(&source, console)?;
            let vars = listing::host(&inv, &name).ok_or_else(|| {
                CliError::invalid_input(format!("`{name}` is not a host of the inventory"))
            })?;
            console.stdout(&(listing::to_ansible_json(&vars) + "\n"));
        }
    }
    Ok(exit::OK)
}

fn load(source: &Source, console: &Console) -> Result<Inventory, CliError> {
    let mut diags = Diagnostics::default();
    let input = source.format.input(&source.inventory);
    let inventory = sluice_plan::inventory::load(&input, &Default::default(), &mut diags);
    for d in &diags.items {
        print_diagnostic(console, d);
    }
    match inventory {
        Some(inv) if !diags.has_errors() => Ok(inv),
        _ => Err(CliError::invalid_input(format!(
            "{} problem(s) in {}",
            diags.error_count().max(1),
            input.spec
        ))),
    }
}

/// One line per host: name, transport and address, login user, groups (`all` left out).
fn human_list(inv: &Inventory) -> String {
    let width = inv.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let mut out = format!(
        "{} host(s), {} group(s) ({}, {})\n",
        inv.hosts.len(),
        inv.groups.len(),
        inv.format,
        inv.file.path
    );
    for (h, host) in inv.hosts.iter().enumerate() {
        let c = inv.connection(h);
        let reach = match c.transport {
            sluice_plan::TransportKind::Local => match &c.workdir {
                Some(dir) => format!("local in {dir}"),
                None => "local".to_string(),
            },
            sluice_plan::TransportKind::Ssh => {
                let user = c.user.map(|u| format!("{u}@")).unwrap_or_default();
                let jump = if c.proxy_jump.is_empty() {
                    String::new()
                } else {
                    format!(" via {}", c.proxy_jump.join(","))
                };
                format!("ssh {user}{}:{}{jump}", c.address, c.port)
            }
        };
        let become_all = match c.become_all {
            Some(b) => format!(" become {}", b.user.as_deref().unwrap_or("root")),
            None => String::new(),
        };
        let groups: Vec<&str> = inv
            .groups_of(h)
            .iter()
            .map(|&g| inv.groups[g].name.as_str())
            .filter(|&g| g != sluice_plan::inventory::ALL)
            .collect();
        out.push_str(&format!(
            "  {:width$}  {reach}{become_all}  [{}]\n",
            host.name,
            groups.join(", ")
        ));
    }
    out
}
