//! Verification of the chain in the store, export to JSON Lines, and standalone verification of
//! an exported file.
//!
//! # Export format
//! One record per line, exactly as stored (with `seq`, `prev_hash`, `run_prev_hash`, `hash`),
//! then one end line: `{"end":{"records":N,"last_seq":S,"last_hash":H,"run":R}}`. The end line
//! is what makes a truncated file detectable: without it, the first lines of an export are a
//! valid chain on their own. (Someone who cuts the file AND rewrites the end line is caught only
//! by comparing `last_hash` with the head hash `sluice audit verify` prints on the controller.)
//!
//! A full export is checked along the store's chain (`prev_hash`, `seq` without gaps from 1).
//! A `--run` export holds only that run's records, whose `prev_hash` points at other runs'
//! records that are not in the file; it is checked along the run's own chain (`run_prev_hash`,
//! from the run's first record), which every record also carries under its hash.

use std::io::{BufRead, Write};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::{Break, ChainWalk, Scope, write_line};
use crate::error::AuditError;
use crate::store::{RECORDS, RedbStore};

/// The last line of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEnd {
    pub records: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub run: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndLine {
    end: ExportEnd,
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records that checked out before the first break (all of them when there is none).
    pub records: u64,
    pub last_seq: u64,
    /// Hash of the last good record: the head of the chain when `broken` is `None`.
    pub last_hash: String,
    pub run: Option<String>,
    pub broken: Option<Break>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }

    fn from_walk(walk: &ChainWalk, run: Option<String>, broken: Option<Break>) -> Self {
        VerifyReport {
            records: walk.count(),
            last_seq: walk.last_seq(),
            last_hash: walk.last_hash().to_string(),
            run,
            broken,
        }
    }
}

impl RedbStore {
    /// Walks the whole chain in the store and reports the first record that breaks it.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let txn = self.read()?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let mut walk = ChainWalk::new(Scope::All);
        for item in records.iter().map_err(|e| self.err(e))? {
            let (seq, bytes) = item.map_err(|e| self.err(e))?;
            let checked = serde_json::from_slice::<Value>(bytes.value())
                .map_err(|err| Break {
                    seq: seq.value(),
                    line: 0,
                    reason: format!("not readable JSON ({err})"),
                })
                .and_then(|value| walk.check(&value, 0));
            if let Err(broken) = checked {
                return Ok(VerifyReport::from_walk(&walk, None, Some(broken)));
            }
        }
        Ok(VerifyReport::from_walk(&walk, None, None))
    }

    /// Writes every record (or one run's) as JSON Lines, then the end line.
    pub fn export(&self, run: Option<&str>, out: &mut impl Write) -> Result<ExportEnd, AuditError> {
        let txn = self.read()?;
        let records = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let mut end = ExportEnd {
            records: 0,
            last_seq: 0,
            last_hash: crate::chain::GENESIS.to_string(),
            run: run.map(str::to_string),
        };
        let mut emit = |seq: u64, bytes: &[u8]| -> Result<(), AuditError> {
            let record = crate::store::decode_record(self.name(), seq, bytes)?;
            // Lines are the stored bytes verbatim (compact JSON, one line), not re-serialised
            // from today's record type: a field added to a payload type later must not change
            // what an old record's hash was computed over.
            out.write_all(bytes)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(AuditError::Write)?;
            end.records += 1;
            end.last_seq = record.seq;
            end.last_hash = record.hash;
            Ok(())
        };
        match run {
            None => {
                for item in records.iter().map_err(|e| self.err(e))? {
                    let (seq, bytes) = item.map_err(|e| self.err(e))?;
                    emit(seq.value(), bytes.value())?;
                }
            }
            Some(run) => {
                let seqs = self.run_seqs(&txn, run)?;
                if seqs.is_empty() {
                    return Err(AuditError::UnknownRun {
                        run: run.to_string(),
                    });
                }
                for seq in seqs {
                    let value = records.get(seq).map_err(|e| self.err(e))?;
                    if let Some(bytes) = value {
                        emit(seq, bytes.value())?;
                    }
                }
            }
        }
        write_line(out, &EndLine { end: end.clone() }).map_err(AuditError::Write)?;
        Ok(end)
    }
}

/// Checks an exported file on its own (no store needed): every line's hash, the chain between
/// lines, and the end line. Reports the first break with its sequence number.
pub fn verify_export(reader: impl BufRead) -> Result<VerifyReport, AuditError> {
    // Split on bytes, not `lines()`: a line that is not UTF-8 is a damaged line to report, not
    // an error that ends the verification.
    let lines = reader.split(b'\n');
    let mut values = Vec::new();
    let mut end: Option<(u64, ExportEnd)> = None;
    let mut unreadable: Option<u64> = None;
    let mut line_no = 0u64;
    for line in lines {
        line_no += 1;
        let mut bytes = line.map_err(AuditError::Read)?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let Ok(text) = String::from_utf8(bytes) else {
            unreadable = Some(line_no);
            end = None;
            break;
        };
        if end.is_some() && text.trim().is_empty() {
            // Blank lines after the end (an editor's or a mailer's) change no record.
            continue;
        }
        if end.is_some() {
            // Anything else after the end line was appended to the file.
            end = None;
            unreadable = Some(line_no);
            break;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(value) if value.get("end").is_some() => {
                match serde_json::from_value::<EndLine>(value) {
                    Ok(e) => end = Some((line_no, e.end)),
                    Err(_) => {
                        unreadable = Some(line_no);
                        break;
                    }
                }
            }
            Ok(value) => values.push((line_no, value)),
            Err(_) => {
                unreadable = Some(line_no);
                break;
            }
        }
    }
    let run = match &end {
        Some((_, e)) => e.run.clone(),
        None => infer_run(&values),
    };
    let mut walk = ChainWalk::new(match &run {
        Some(run) => Scope::Run(run.clone()),
        None => Scope::All,
    });
    for (line, value) in &values {
        if let Err(broken) = walk.check(value, *line) {
            return Ok(VerifyReport::from_walk(&walk, run, Some(broken)));
        }
    }
    let broken = match (unreadable, end) {
        (Some(line), _) => Some(Break {
            seq: walk.expected_seq(),
            line,
            reason: "the line is not a readable record (cut or edited)".into(),
        }),
        (None, None) => Some(Break {
            seq: walk.expected_seq(),
            line: line_no + 1,
            reason: format!(
                "the file ends without its end line: it was cut after record {}",
                walk.last_seq()
            ),
        }),
        (None, Some((line, end))) => {
            if end.records != walk.count()
                || end.last_seq != walk.last_seq()
                || end.last_hash != walk.last_hash()
            {
                Some(Break {
                    seq: walk
                        .expected_seq()
                        .min(end.last_seq.max(walk.last_seq()) + 1),
                    line,
                    reason: format!(
                        "the end line names {} records up to record {}, the file holds {} up to record {}",
                        end.records,
                        end.last_seq,
                        walk.count(),
                        walk.last_seq()
                    ),
                })
            } else {
                None
            }
        }
    };
    Ok(VerifyReport::from_walk(&walk, run, broken))
}

/// The run of a cut export that lost its end line: one run's records that are not the start of
/// the store's chain (a gap in seq, or a first record that follows another) came from `--run`.
/// A file that is a prefix of the store's chain checks the same either way.
fn infer_run(values: &[(u64, Value)]) -> Option<String> {
    let field = |v: &Value, name: &str| v.get(name).cloned();
    let first_run = field(&values.first()?.1, "run")?;
    let same_run = values
        .iter()
        .all(|(_, v)| field(v, "run").as_ref() == Some(&first_run));
    let seqs: Vec<Option<u64>> = values
        .iter()
        .map(|(_, v)| v.get("seq").and_then(Value::as_u64))
        .collect();
    let contiguous_from_one = seqs
        .iter()
        .enumerate()
        .all(|(i, seq)| *seq == Some(i as u64 + 1));
    match first_run {
        Value::String(run) if same_run && !contiguous_from_one => Some(run),
        _ => None,
    }
}
