//! `sluice audit verify [--file F]` and `sluice audit export [--run RUN]`, plus what every
//! command on the audit store shares: `--state-dir`.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use sluice_audit::{AuditError, AuditLog, OpenMode, StoreLocation, VerifyReport};

use crate::console::Console;
use crate::error::CliError;
use crate::exit;

/// Where the audit store lives.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirArg {
    /// State directory holding the audit store [default: $SLUICE_STATE_DIR, else
    /// ~/.local/state/sluice].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The audit store: `postgres://USER@HOST/DATABASE` (shared by a team; the password from
    /// PGPASSWORD or ~/.pgpass, never in the URL) or `redb:DIR` [default: $SLUICE_STORE, else
    /// the redb store in the state directory].
    #[arg(long = "store", value_name = "URL")]
    pub store_url: Option<String>,
}

impl StateDirArg {
    /// The state directory (of the redb store, and of files kept beside it).
    pub fn dir(&self) -> Result<PathBuf, CliError> {
        Ok(sluice_audit::resolve_state_dir(self.state_dir.as_deref())?)
    }

    /// Where the store is: `--store`, else `--state-dir`, else `$SLUICE_STORE`, else the state
    /// directory from the environment.
    pub fn location(&self) -> Result<StoreLocation, CliError> {
        let from_env = || std::env::var("SLUICE_STORE").ok().filter(|v| !v.is_empty());
        let text = match (&self.store_url, &self.state_dir) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(_)) => None,
            (None, None) => from_env(),
        };
        match text {
            Some(text) => Ok(StoreLocation::parse(&text)?),
            None => Ok(StoreLocation::Redb(self.dir()?)),
        }
    }

    /// Opens an existing store to write to it (never creates one).
    pub fn open_existing(&self) -> Result<AuditLog, CliError> {
        Ok(AuditLog::open_at(&self.location()?, OpenMode::Existing)?)
    }

    /// Opens an existing store to read it: nothing in the store is created or changed, so read
    /// commands work on a read-only mount (or a read-only database role).
    pub fn open_read_only(&self) -> Result<AuditLog, CliError> {
        Ok(AuditLog::open_at(&self.location()?, OpenMode::ReadOnly)?)
    }

    /// Opens the store, creating it if there is none yet.
    pub fn open(&self) -> Result<AuditLog, CliError> {
        Ok(AuditLog::open_at(&self.location()?, OpenMode::Create)?)
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check the hash chain of the store, or of an exported file; report the first bad record.
    Verify(VerifyArgs),
    /// Write the audit trail (or one run's records) as JSON Lines.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// An export to check instead of the store (needs no store: works on any machine).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Also verify every signed approval again against this OpenSSH allowed_signers file.
    #[arg(long, value_name = "FILE")]
    allowed_signers: Option<PathBuf>,
    #[command(flatten)]
    store: StateDirArg,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Only this run's records (checked along the run's own chain).
    #[arg(long, value_name = "RUN")]
    run: Option<String>,
    /// Write to this file instead of stdout (the older spelling is still accepted).
    #[arg(long = "out", short = 'o', alias = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    store: StateDirArg,
}

pub fn run(args: Args, console: &Console) -> Result<u8, CliError> {
    match args.action {
        Action::Verify(args) => verify(args, console),
        Action::Export(args) => export(args, console),
    }
}

fn verify(args: VerifyArgs, console: &Console) -> Result<u8, CliError> {
    let mut records = String::new();
    let (what, report) = match &args.file {
        Some(file) => {
            let opened = std::fs::File::open(file).map_err(|err| {
                CliError::invalid_input(format!("cannot read {}: {err}", file.display()))
            })?;
            let report = sluice_audit::verify_export(BufReader::new(opened))?;
            if args.allowed_signers.is_some() {
                records = std::fs::read_to_string(file).unwrap_or_default();
            }
            (file.display().to_string(), report)
        }
        None => {
            let log = args.store.open_read_only()?;
            let report = log.verify()?;
            if args.allowed_signers.is_some() {
                let mut out = Vec::new();
                log.export(None, &mut out)?;
                records = String::from_utf8_lossy(&out).into_owned();
            }
            (log.path().display().to_string(), report)
        }
    };
    let signatures_ok = match &args.allowed_signers {
        Some(signers) => {
            let checked = super::signatures::reverify(&records, signers)?;
            super::signatures::print(console, &checked)
        }
        None => true,
    };
    if args.json {
        // `{"source":..., "ok":bool, "records":N, "last_seq":S, "last_hash":H, "run":R|null,
        //   "broken":null|{"seq":S,"line":L,"reason":"..."}}`
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        value["source"] = serde_json::Value::String(what.clone());
        value["ok"] = serde_json::Value::Bool(report.is_ok());
        console.json_line(&value);
    }
    print_report(console, &what, &report);
    Ok(if report.is_ok() && signatures_ok {
        exit::OK
    } else {
        exit::FAILED
    })
}

fn print_report(console: &Console, what: &str, report: &VerifyReport) {
    let scope = report
        .run
        .as_ref()
        .map_or_else(String::new, |run| format!(" of run {run}"));
    match &report.broken {
        None => {
            console.status(
                "Verified",
                format!("{what}: {} records{scope}, chain intact", report.records),
            );
            console.text(format!(
                "{:>12} {} (record {})\n",
                "head", report.last_hash, report.last_seq
            ));
        }
        Some(broken) => {
            console.error(format!(
                "{what}: the audit trail{scope} is broken at {broken}; {} records before it verify",
                report.records
            ));
        }
    }
}

fn export(args: ExportArgs, console: &Console) -> Result<u8, CliError> {
    let location = args.store.location()?;
    // Open the store before creating the output file: a refusal leaves nothing behind.
    let opened = match AuditLog::open_at(&location, OpenMode::ReadOnly) {
        Err(err @ AuditError::Corrupt { .. }) => Err(err),
        Err(err) => return Err(err.into()),
        Ok(log) => Ok(log),
    };
    // Records are written as they are read, never gathered in memory.
    let mut out = output(args.output.as_deref())?;
    let code = match opened {
        Ok(log) => {
            let end = log.export(args.run.as_deref(), &mut out)?;
            finish(out, args.output.as_deref())?;
            console.status(
                "Exported",
                format!("{} records, up to record {}", end.records, end.last_seq),
            );
            exit::OK
        }
        Err(err) => {
            // Salvage what can be read; the file has no end line, so verifying it reports
            // where it stops, which is the truth about a damaged store.
            console.warn(&err);
            if let Some(run) = &args.run {
                console.warn(format!(
                    "a salvage exports every record it can read, not only run {run}'s: the store's index of runs cannot be trusted"
                ));
            }
            // Only a redb file is ever `Corrupt`: a database is not read past its server.
            let StoreLocation::Redb(dir) = &location else {
                return Err(err.into());
            };
            let report = sluice_audit::salvage(dir, &mut out)?;
            finish(out, args.output.as_deref())?;
            console.status("Salvaged", &report);
            console.warn(
                "the export is incomplete (no end line): `sluice audit verify --file` shows where it stops",
            );
            exit::FAILED
        }
    };
    Ok(code)
}

/// Where the export goes: the file (created or truncated) or stdout, buffered.
fn output(path: Option<&Path>) -> Result<Box<dyn Write>, CliError> {
    Ok(match path {
        Some(path) => Box::new(BufWriter::new(std::fs::File::create(path).map_err(
            |err| CliError::failed(format!("cannot write {}: {err}", path.display())),
        )?)),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

fn finish(mut out: Box<dyn Write>, path: Option<&Path>) -> Result<(), CliError> {
    out.flush().map_err(|err| {
        let to = path.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
        CliError::failed(format!("cannot write {to}: {err}"))
    })
}
