//! Reading the PostgreSQL store: runs, records, approvals, artifacts, and the chain's
//! verification and export (records read in pages, in one consistent snapshot).

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use serde_json::Value;
use sluice_model::{Approval, ApprovalScope, Fact};
use tokio_postgres::Row;

use super::PgStore;
use super::conn::{Connection, block};
use crate::chain::{Break, ChainWalk, GENESIS, Scope, write_line};
use crate::error::{AuditError, StoreName};
use crate::export::{ExportEnd, VerifyReport};
use crate::query::{PendingGate, RunSummary};
use crate::record::Record;

/// Records read per query by `verify` and `export`.
const PAGE: i64 = 5000;

/// A run's hosts as `run_hosts` lists them.
#[derive(Default)]
struct ListedHosts {
    finished: BTreeSet<String>,
    failed: BTreeSet<String>,
}

impl ListedHosts {
    fn fill(self, summary: &mut RunSummary) {
        summary.hosts_finished.extend(self.finished);
        summary.hosts_failed.extend(self.failed);
    }
}

/// A `(seq, body)` row as a record; one that does not parse is reported with its seq.
pub(crate) fn decode_row(store: &StoreName, row: &Row) -> Result<Record, AuditError> {
    let seq: i64 = row.get(0);
    let body: String = row.get(1);
    crate::store::decode_record(store, u64::try_from(seq).unwrap_or(0), body.as_bytes())
}

impl PgStore {
    fn read_rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, AuditError> {
        self.with_client(|conn| conn.query(sql, params))
    }

    fn records_from(&self, rows: &[Row]) -> Result<Vec<Record>, AuditError> {
        rows.iter()
            .map(|row| decode_row(self.name(), row))
            .collect()
    }

    /// Every run, most recent first (plan pseudo-runs left out); a running run whose leases no
    /// live holder renews is `interrupted`.
    pub fn list_runs(&self) -> Result<Vec<RunSummary>, AuditError> {
        let rows = self.read_rows(
            "SELECT run, summary FROM sluice.runs WHERE run NOT LIKE 'plan:%'",
            &[],
        )?;
        let live = self.live_runs()?;
        let mut hosts = self.run_hosts(None)?;
        let mut out = Vec::new();
        for row in &rows {
            let run: String = row.get(0);
            let text: String = row.get(1);
            let mut summary = RunSummary::decode(text.as_bytes(), self.name(), &run)?;
            if let Some(listed) = hosts.remove(&run) {
                listed.fill(&mut summary);
            }
            summary.mark_interrupted_unless(live.contains(&run));
            out.push(summary);
        }
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run.cmp(&a.run)));
        Ok(out)
    }

    pub fn run_summary(&self, run: &str) -> Result<RunSummary, AuditError> {
        let rows = self.read_rows("SELECT summary FROM sluice.runs WHERE run = $1", &[&run])?;
        let Some(row) = rows.first() else {
            return Err(AuditError::UnknownRun {
                run: run.to_string(),
            });
        };
        let text: String = row.get(0);
        let mut summary = RunSummary::decode(text.as_bytes(), self.name(), run)?;
        if let Some(listed) = self.run_hosts(Some(run))?.remove(run) {
            listed.fill(&mut summary);
        }
        summary.mark_interrupted_unless(self.live_runs()?.contains(run));
        Ok(summary)
    }

    /// The finished and failed hosts of one run (or of every run), from `run_hosts`: the
    /// summaries in `runs` do not list them (see `tx.rs`).
    fn run_hosts(&self, run: Option<&str>) -> Result<HashMap<String, ListedHosts>, AuditError> {
        let rows = self.read_rows(
            "SELECT run, host, finished, failed FROM sluice.run_hosts
             WHERE $1::text IS NULL OR run = $1",
            &[&run],
        )?;
        let mut out: HashMap<String, ListedHosts> = HashMap::new();
        for row in &rows {
            let listed = out.entry(row.get(0)).or_default();
            let host: String = row.get(1);
            if row.get::<_, bool>(3) {
                listed.failed.insert(host.clone());
            }
            if row.get::<_, bool>(2) {
                listed.finished.insert(host);
            }
        }
        Ok(out)
    }

    /// The records of one run, in order.
    pub fn run_records(&self, run: &str) -> Result<Vec<Record>, AuditError> {
        let rows = self.read_rows(
            "SELECT seq, body FROM sluice.records WHERE run = $1 ORDER BY seq",
            &[&run],
        )?;
        if rows.is_empty() {
            return Err(AuditError::UnknownRun {
                run: run.to_string(),
            });
        }
        self.records_from(&rows)
    }

    /// One record by sequence number.
    pub fn record(&self, seq: u64) -> Result<Option<Record>, AuditError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let rows = self.read_rows(
            "SELECT seq, body FROM sluice.records WHERE seq = $1",
            &[&seq],
        )?;
        rows.first()
            .map(|row| decode_row(self.name(), row))
            .transpose()
    }

    /// Approvals recorded for exactly this plan hash, oldest first.
    pub fn plan_approvals(&self, plan_hash: &str) -> Result<Vec<(Record, Approval)>, AuditError> {
        let rows = self.read_rows(
            "SELECT r.seq, r.body FROM sluice.plan_approvals p
             JOIN sluice.records r ON r.seq = p.seq WHERE p.plan_hash = $1 ORDER BY r.seq",
            &[&plan_hash],
        )?;
        let mut out = Vec::new();
        for record in self.records_from(&rows)? {
            if let Fact::Approval(approval) = record.fact.clone() {
                out.push((record, approval));
            }
        }
        Ok(out)
    }

    /// The latest answer to the gate before `wave` of `run` and its record's sequence number.
    /// A waiting run polls this.
    pub fn wave_answer(
        &self,
        run: &str,
        wave: &str,
    ) -> Result<Option<(u64, Approval)>, AuditError> {
        let rows = self.read_rows(
            "SELECT r.seq, r.body FROM sluice.wave_approvals w
             JOIN sluice.records r ON r.seq = w.seq WHERE w.run = $1 AND w.wave = $2",
            &[&run, &wave],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let record = decode_row(self.name(), row)?;
        match record.fact {
            Fact::Approval(
                approval @ Approval {
                    scope: ApprovalScope::Wave { .. },
                    ..
                },
            ) => Ok(Some((record.seq, approval))),
            _ => Ok(None),
        }
    }

    /// Gates runs are waiting at, oldest first.
    pub fn pending_approvals(&self) -> Result<Vec<PendingGate>, AuditError> {
        let rows = self.read_rows(
            "SELECT r.seq, r.body, g.run, g.wave FROM sluice.pending_gates g
             JOIN sluice.records r ON r.seq = g.seq ORDER BY g.seq",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let record = decode_row(self.name(), row)?;
                Ok(PendingGate {
                    run: row.get(2),
                    wave: row.get(3),
                    since: record.at,
                    seq: record.seq,
                })
            })
            .collect()
    }

    /// A stored plan artifact by hash.
    pub fn artifact(&self, plan_hash: &str) -> Result<Option<Value>, AuditError> {
        let rows = self.read_rows(
            "SELECT r.seq, r.body FROM sluice.artifacts a JOIN sluice.records r ON r.seq = a.seq
             WHERE a.plan_hash = $1",
            &[&plan_hash],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        match decode_row(self.name(), row)?.fact {
            Fact::PlanArtifactStored(stored) => Ok(Some(stored.artifact)),
            _ => Ok(None),
        }
    }

    /// Walks the whole chain and reports the first record that breaks it: a row changed (its
    /// hash), deleted (a gap, or the tip naming a record that is gone) or inserted (a record
    /// that does not follow, or one beyond the tip) with SQL, named by its sequence number.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        self.with_client(|conn| {
            let snapshot = Snapshot::begin(conn)?;
            let mut walk = ChainWalk::new(Scope::All);
            let mut broken = None;
            snapshot.each_record(None, |seq, body| {
                let checked = serde_json::from_str::<Value>(body)
                    .map_err(|err| Break {
                        seq,
                        line: 0,
                        reason: format!("not readable JSON ({err})"),
                    })
                    .and_then(|value| walk.check(&value, 0));
                match checked {
                    Ok(_) => Ok(true),
                    Err(brk) => {
                        broken = Some(brk);
                        Ok(false)
                    }
                }
            })?;
            if broken.is_none() {
                broken = tip_break(&walk, &snapshot.tip()?);
            }
            Ok(VerifyReport {
                records: walk.count(),
                last_seq: walk.last_seq(),
                last_hash: walk.last_hash().to_string(),
                run: None,
                broken,
            })
        })
    }

    /// Writes every record (or one run's) as JSON Lines — each the stored text verbatim —
    /// then the end line.
    pub fn export(&self, run: Option<&str>, out: &mut impl Write) -> Result<ExportEnd, AuditError> {
        self.with_client(|conn| {
            let snapshot = Snapshot::begin(conn)?;
            let mut end = ExportEnd {
                records: 0,
                last_seq: 0,
                last_hash: GENESIS.to_string(),
                run: run.map(str::to_string),
            };
            snapshot.each_record(run, |seq, body| {
                let record = crate::store::decode_record(self.name(), seq, body.as_bytes())?;
                out.write_all(body.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(AuditError::Write)?;
                end.records += 1;
                end.last_seq = record.seq;
                end.last_hash = record.hash;
                Ok(true)
            })?;
            if let (Some(run), 0) = (run, end.records) {
                return Err(AuditError::UnknownRun {
                    run: run.to_string(),
                });
            }
            write_line(out, &serde_json::json!({ "end": &end })).map_err(AuditError::Write)?;
            Ok(end)
        })
    }
}

/// Where the records and the tip disagree once every record checked out: the last record was
/// deleted (the tip names one that is gone), or records were added beyond the tip.
fn tip_break(walk: &ChainWalk, tip: &(u64, String)) -> Option<Break> {
    let (tip_seq, tip_hash) = tip;
    let last = walk.last_seq();
    if last < *tip_seq {
        Some(Break {
            seq: last + 1,
            line: 0,
            reason: format!(
                "record {} is missing: the chain's tip names record {tip_seq} (deleted outside sluice)",
                last + 1
            ),
        })
    } else if last > *tip_seq {
        Some(Break {
            seq: tip_seq + 1,
            line: 0,
            reason: format!(
                "record {} is beyond the chain's tip (record {tip_seq}): it was inserted outside sluice",
                tip_seq + 1
            ),
        })
    } else if walk.last_hash() != tip_hash {
        Some(Break {
            seq: last,
            line: 0,
            reason: "its hash is not the one the chain's tip holds".into(),
        })
    } else {
        None
    }
}

/// A read-only, repeatable-read transaction: everything a verification or an export reads is
/// one moment of the store, whatever is committed meanwhile.
struct Snapshot<'a> {
    txn: tokio_postgres::Transaction<'a>,
    store: &'a StoreName,
}

impl<'a> Snapshot<'a> {
    fn begin(conn: &'a mut Connection) -> Result<Self, AuditError> {
        let (txn, store) = conn.snapshot()?;
        Ok(Snapshot { txn, store })
    }

    fn err(&self, err: &tokio_postgres::Error) -> AuditError {
        super::conn::db_error(self.store, err)
    }

    fn tip(&self) -> Result<(u64, String), AuditError> {
        let row = block(
            self.txn
                .query_one("SELECT seq, hash FROM sluice.chain_tip", &[]),
        )
        .map_err(|e| self.err(&e))?;
        let seq: i64 = row.get(0);
        Ok((u64::try_from(seq).unwrap_or(0), row.get(1)))
    }

    /// Calls `each` with every record (of `run`, or all) in seq order, a page at a time, until
    /// it returns `false`.
    fn each_record(
        &self,
        run: Option<&str>,
        mut each: impl FnMut(u64, &str) -> Result<bool, AuditError>,
    ) -> Result<(), AuditError> {
        let mut after = i64::MIN;
        loop {
            let rows = match run {
                None => block(self.txn.query(
                    "SELECT seq, body FROM sluice.records WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &PAGE],
                )),
                Some(run) => block(self.txn.query(
                    "SELECT seq, body FROM sluice.records WHERE run = $3 AND seq > $1
                     ORDER BY seq LIMIT $2",
                    &[&after, &PAGE, &run],
                )),
            }
            .map_err(|e| self.err(&e))?;
            for row in &rows {
                let seq: i64 = row.get(0);
                let body: String = row.get(1);
                after = seq;
                if !each(u64::try_from(seq).unwrap_or(0), &body)? {
                    return Ok(());
                }
            }
            if rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                return Ok(());
            }
        }
    }
}
