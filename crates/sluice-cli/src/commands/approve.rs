//! `sluice approve-plan PLAN.json` (an approval bound to the artifact's exact hash) and
//! `sluice approve RUN --wave W` (answers a waiting run's gate; the run polls the store for it).
//!
//! An approval is signed (`--key`: a private key, or a public key whose private half ssh-agent
//! holds), signed elsewhere (`--statement` prints what to sign with `ssh-keygen -Y sign -n
//! sluice-approval`; `--signed STMT` records STMT and STMT.sig), or, where no policy asks for
//! signatures, given by name (`--by`). docs/operations.md, "Change approval".

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use sluice_approval::{AllowedSigners, Expected, Statement, StatementScope, verify};
use sluice_model::{Approval, ApprovalHow, ApprovalScope, ApprovalSignature};
use sluice_plan::PlanArtifact;

use super::audit::StateDirArg;
use crate::console::Console;
use crate::error::CliError;
use crate::exit;

/// How an approval is given; at most one (an approval needs one, a refusal none).
#[derive(Debug, clap::Args)]
#[group(required = false, multiple = false)]
pub struct How {
    /// Sign it with this key: a private key file, or a public key whose private half is in
    /// ssh-agent (as `ssh-keygen -Y sign -f` takes it).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// Print the statement to sign (with `ssh-keygen -Y sign -n sluice-approval -f KEY`) on
    /// stdout; nothing is recorded.
    #[arg(long)]
    statement: bool,
    /// Record a statement signed elsewhere: STMT and its signature STMT.sig.
    #[arg(long, value_name = "STMT")]
    signed: Option<PathBuf>,
    /// Record an unsigned approval by this name (only where no policy asks for signatures).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

/// What every approval command shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    how: How,
    /// A comment, recorded (and signed, in a signed approval).
    #[arg(long)]
    comment: Option<String>,
    /// How long a signed approval stays valid.
    #[arg(long, value_name = "DURATION", default_value = "7d")]
    valid_for: String,
    /// Also write the signed statement to STMT and its signature to STMT.sig (with --key).
    #[arg(long, value_name = "STMT", requires = "key")]
    out: Option<PathBuf>,
    /// Check the signature against this OpenSSH allowed_signers file before recording, and
    /// record the approval under the principal it gives the key.
    #[arg(long, value_name = "FILE")]
    allowed_signers: Option<PathBuf>,
    #[command(flatten)]
    store: StateDirArg,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The plan artifact (JSON, as written by `sluice plan --out`).
    plan: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct WaveArgs {
    /// The waiting run.
    run: String,
    /// The wave whose gate to answer: its name, or its 0-based index.
    #[arg(long, value_name = "W")]
    wave: String,
    /// Refuse instead: the run stops before the wave (a refusal needs no signature).
    #[arg(long, conflicts_with_all = ["key", "statement", "signed"])]
    refuse: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run_plan(args: PlanArgs, console: &Console) -> Result<u8, CliError> {
    let (artifact, value) = read_artifact(&args.plan)?;
    let common = &args.common;
    let scope = StatementScope::Plan;
    let Some(given) = give(common, &artifact.plan_hash, scope, console)? else {
        return Ok(exit::OK);
    };
    let approval = Approval {
        scope: ApprovalScope::Plan {
            plan_hash: artifact.plan_hash.clone(),
        },
        by: given.by,
        comment: given.comment,
        refused: false,
        how: ApprovalHow::Command,
        signature: given.signature,
    };
    let by = approval.by.clone();
    let log = common.store.open()?;
    let appended = log.approve_plan(Some(value), approval)?;
    console.status(
        "Approved",
        format!(
            "plan {} ({}) by {by} (record {})",
            artifact.name, artifact.plan_hash, appended.seq
        ),
    );
    Ok(exit::OK)
}

pub fn run_wave(args: WaveArgs, console: &Console) -> Result<u8, CliError> {
    let common = &args.common;
    let log = common.store.open_existing()?;
    // Checked before anything is signed: the run is going, the wave has a gate, not yet passed.
    let gate = log.gate(&args.run, &args.wave)?;
    let scope = StatementScope::Gate {
        run: gate.run.clone(),
        wave: gate.wave.clone(),
    };
    let given = if args.refuse {
        Given {
            by: unsigned_name(common)?,
            comment: common.comment.clone(),
            signature: None,
        }
    } else {
        match give(common, &gate.plan_hash, scope, console)? {
            Some(given) => given,
            None => return Ok(exit::OK),
        }
    };
    let approval = Approval {
        scope: ApprovalScope::Wave {
            wave: gate.wave.clone(),
        },
        by: given.by.clone(),
        comment: given.comment,
        refused: args.refuse,
        how: ApprovalHow::Command,
        signature: given.signature,
    };
    let appended = log.approve_wave(&gate.run, approval)?;
    let verb = if args.refuse { "Refused" } else { "Approved" };
    console.status(
        verb,
        format!(
            "wave {} of run {} by {} (record {})",
            gate.wave, gate.run, given.by, appended.seq
        ),
    );
    Ok(exit::OK)
}

/// An approval ready to record: who, the comment, and the proof.
struct Given {
    by: String,
    comment: Option<String>,
    signature: Option<ApprovalSignature>,
}

/// Makes the approval of `scope` of plan `plan_hash` the way the arguments say; `None` when
/// `--statement` only printed the statement.
fn give(
    common: &Common,
    plan_hash: &str,
    scope: StatementScope,
    console: &Console,
) -> Result<Option<Given>, CliError> {
    let how = &common.how;
    if how.key.is_none() && !how.statement && how.signed.is_none() && how.by.is_none() {
        return Err(CliError::invalid_input(
            "say how the approval is given: --key PATH (signed), --statement then --signed STMT (signed elsewhere), or --by NAME (unsigned)",
        ));
    }
    if how.by.is_some() {
        return Ok(Some(Given {
            by: unsigned_name(common)?,
            comment: common.comment.clone(),
            signature: None,
        }));
    }
    if let Some(stmt) = &how.signed {
        return signed_elsewhere(common, stmt, plan_hash, scope).map(Some);
    }
    let statement = new_statement(common, plan_hash, scope)?;
    let text = statement
        .to_text()
        .map_err(|e| CliError::invalid_input(e.to_string()))?;
    let Some(key) = &how.key else {
        // --statement
        console.stdout(&text);
        return Ok(None);
    };
    let signed = crate::signing::sign(key, &text, console)?;
    let pem = signed.signature;
    if let Some(out) = &common.out {
        write(out, &text)?;
        write(&signature_path(out), &pem)?;
    }
    let expected = Expected {
        plan_hash: plan_hash.to_string(),
        scope: statement.scope.clone(),
    };
    recorded_signature(common, &text, &pem, &expected).map(Some)
}

/// `--signed STMT`: the statement and STMT.sig as `ssh-keygen -Y sign` wrote them.
fn signed_elsewhere(
    common: &Common,
    stmt: &Path,
    plan_hash: &str,
    scope: StatementScope,
) -> Result<Given, CliError> {
    let text = read(stmt)?;
    let pem = read(&signature_path(stmt))?;
    let expected = Expected {
        plan_hash: plan_hash.to_string(),
        scope,
    };
    recorded_signature(common, &text, &pem, &expected)
}

/// Checks a signature (against `--allowed-signers` when given) and makes what is recorded.
fn recorded_signature(
    common: &Common,
    text: &str,
    pem: &str,
    expected: &Expected,
) -> Result<Given, CliError> {
    // Without allowed signers, the signature is still checked against its own key and the
    // statement against what is approved; who the key belongs to is decided when it is used.
    let anyone = AllowedSigners::default();
    let signers = match &common.allowed_signers {
        Some(path) => {
            AllowedSigners::read(path).map_err(|e| CliError::invalid_input(e.to_string()))?
        }
        None => anyone,
    };
    let now = Timestamp::now();
    let verified = verify(text, pem, &signers, expected, now, None);
    let (by, key, statement) = match verified {
        Ok(v) => (v.principal, v.key, v.statement),
        Err(sluice_approval::Rejection::UnknownSigner { key })
            if common.allowed_signers.is_none() =>
        {
            let statement = Statement::parse(text).map_err(|e| {
                CliError::invalid_input(format!("not a sluice approval statement: {e}"))
            })?;
            (format!("key {key}"), key, statement)
        }
        Err(rejection) => {
            return Err(CliError::invalid_input(format!(
                "the signed approval does not count: {rejection}; nothing was recorded"
            )));
        }
    };
    Ok(Given {
        by,
        comment: statement.comment,
        signature: Some(ApprovalSignature {
            statement: text.to_string(),
            signature: pem.to_string(),
            key,
        }),
    })
}

fn new_statement(
    common: &Common,
    plan_hash: &str,
    scope: StatementScope,
) -> Result<Statement, CliError> {
    let valid_for = sluice_plan::schema::parse_duration_ms(&common.valid_for)
        .filter(|ms| *ms > 0)
        .and_then(|ms| i64::try_from(ms).ok())
        .ok_or_else(|| {
            CliError::invalid_input(format!(
                "--valid-for {}: not a duration like 7d or 12h",
                common.valid_for
            ))
        })?;
    let now = Timestamp::now();
    Ok(Statement {
        plan_hash: plan_hash.to_string(),
        scope,
        signed_at: now,
        expires: now + SignedDuration::from_millis(valid_for),
        comment: common.comment.clone(),
    })
}

/// `--by NAME`, which must name someone.
fn unsigned_name(common: &Common) -> Result<String, CliError> {
    let name = common
        .how
        .by
        .clone()
        .unwrap_or_else(sluice_audit::operator_name);
    if name.trim().is_empty() {
        return Err(CliError::invalid_input(
            "--by: an approval must name who gives it; nothing was recorded",
        ));
    }
    Ok(name)
}

fn read_artifact(path: &Path) -> Result<(PlanArtifact, serde_json::Value), CliError> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|err| CliError::invalid_input(format!("cannot read {shown}: {err}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|err| CliError::invalid_input(format!("{shown} is not JSON: {err}")))?;
    let artifact: PlanArtifact = serde_json::from_value(value.clone()).map_err(|err| {
        CliError::invalid_input(format!("{shown} is not a sluice plan artifact: {err}"))
    })?;
    if !artifact.hash_is_valid() {
        return Err(CliError::invalid_input(format!(
            "{shown}: its plan_hash does not match its content (edited after `sluice plan`?); \
             nothing was approved"
        )));
    }
    Ok((artifact, value))
}

/// Where `ssh-keygen -Y sign` writes the signature of `stmt`.
fn signature_path(stmt: &Path) -> PathBuf {
    let mut name = stmt.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid_input(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
}
