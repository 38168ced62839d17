//! Leases in the PostgreSQL store, and taking over an interrupted run.
//!
//! A lease row carries `expires_at`: taking it sets it to now plus the holder's lease expiry,
//! and the holder's heartbeat (`heartbeat.rs`) pushes it forward while the process lives. A
//! holder is alive while its leases have not expired — judged by the database's clock, so
//! controllers on machines whose clocks differ agree. Leases are checked and taken under the
//! chain's tip lock, in the transaction that records `run_started`/`run_resumed`, so two
//! controllers racing for overlapping hosts are serialised: exactly one starts.

use sluice_model::{Fact, LeaseChange, RunFinished, RunResumed, UnknownStepsResolved};

use super::{PgStore, PgTx};
use crate::error::AuditError;
use crate::lease::{Lease, LeaseHolder};
use crate::record::Entry;
use crate::store::Appended;

const LEASE_COLUMNS: &str =
    "host, run, operator, controller, pid, since, expires_at::text, expires_at > now()";

/// A lease row and whether it is still alive (not expired).
struct LeaseRow {
    lease: Lease,
    alive: bool,
}

fn lease_of(row: &tokio_postgres::Row) -> LeaseRow {
    let pid: i64 = row.get(4);
    LeaseRow {
        lease: Lease {
            host: row.get(0),
            run: row.get(1),
            operator: row.get(2),
            controller: row.get(3),
            pid: u32::try_from(pid).unwrap_or(0),
            since: row.get(5),
            expires_at: Some(row.get(6)),
        },
        alive: row.get(7),
    }
}

fn change(hosts: Vec<String>, holder: &LeaseHolder) -> LeaseChange {
    LeaseChange {
        hosts,
        operator: holder.operator.clone(),
        controller: holder.controller.clone(),
        pid: holder.pid,
    }
}

impl PgTx<'_> {
    fn leases_of(&self, run: &str) -> Result<Vec<LeaseRow>, AuditError> {
        let sql = format!("SELECT {LEASE_COLUMNS} FROM sluice.leases WHERE run = $1 ORDER BY host");
        Ok(self.query(&sql, &[&run])?.iter().map(lease_of).collect())
    }

    /// Leases `hosts` to `run`, all or none, and records `lease_taken`; refused while another
    /// run holds any of them, expired or not (a dead holder's lease is broken by
    /// `sluice unlock`, or its run resumed).
    pub(crate) fn lease_hosts(
        &mut self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<Appended, AuditError> {
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM sluice.leases WHERE host = ANY($1) AND run <> $2
             ORDER BY host LIMIT 1"
        );
        if let Some(row) = self.query(&sql, &[&hosts, &run])?.first() {
            let held = lease_of(row).lease;
            return Err(AuditError::LeaseHeld {
                host: held.host.clone(),
                holder: Box::new(held),
            });
        }
        let since = jiff::Timestamp::now().to_string();
        let pid = i64::from(holder.pid);
        let expiry = self.store.lease_expiry().as_secs_f64();
        self.execute(
            "INSERT INTO sluice.leases (host, run, operator, controller, pid, since, expires_at)
             SELECT h, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)
             FROM unnest($1::text[]) AS h
             ON CONFLICT (host) DO UPDATE SET run = excluded.run, operator = excluded.operator,
                 controller = excluded.controller, pid = excluded.pid, since = excluded.since,
                 expires_at = excluded.expires_at",
            &[
                &hosts,
                &run,
                &holder.operator,
                &holder.controller,
                &pid,
                &since,
                &expiry,
            ],
        )?;
        self.append(Entry::new(
            run,
            Fact::LeaseTaken(change(hosts.to_vec(), holder)),
        ))
    }

    /// Removes every lease of `run`; returns them.
    fn remove_leases_of(&mut self, run: &str) -> Result<Vec<Lease>, AuditError> {
        let held = self.leases_of(run)?;
        self.execute("DELETE FROM sluice.leases WHERE run = $1", &[&run])?;
        Ok(held.into_iter().map(|l| l.lease).collect())
    }

    /// Releases the run's leases with a `lease_released` record (none if it held none).
    fn release(&mut self, run: &str) -> Result<Vec<String>, AuditError> {
        let held = self.remove_leases_of(run)?;
        let Some(first) = held.first() else {
            return Ok(Vec::new());
        };
        let holder = LeaseHolder {
            operator: first.operator.clone(),
            controller: first.controller.clone(),
            pid: first.pid,
        };
        let hosts: Vec<String> = held.iter().map(|l| l.host.clone()).collect();
        self.append(Entry::new(
            run,
            Fact::LeaseReleased(change(hosts.clone(), &holder)),
        ))?;
        Ok(hosts)
    }
}

impl PgStore {
    /// `run_started` and the run's leases in one commit.
    pub fn start_run(
        &self,
        started: sluice_model::RunStarted,
        holder: &LeaseHolder,
    ) -> Result<String, AuditError> {
        self.start_run_with(started, holder, None, Vec::new())
    }

    /// `run_started`, the leases, the plan artifact and `more` in one commit.
    pub fn start_run_with_plan(
        &self,
        started: sluice_model::RunStarted,
        holder: &LeaseHolder,
        artifact: serde_json::Value,
        more: Vec<Fact>,
    ) -> Result<String, AuditError> {
        self.start_run_with(started, holder, Some(artifact), more)
    }

    fn start_run_with(
        &self,
        started: sluice_model::RunStarted,
        holder: &LeaseHolder,
        artifact: Option<serde_json::Value>,
        more: Vec<Fact>,
    ) -> Result<String, AuditError> {
        let hosts = started.hosts.clone();
        let plan_hash = started.plan_hash.clone();
        let run = self.write(|tx| {
            let run = tx.new_run_id()?;
            tx.append(Entry::new(&run, Fact::RunStarted(started)))?;
            tx.lease_hosts(&run, &hosts, holder)?;
            if let Some(artifact) = artifact {
                tx.store_artifact(&run, &plan_hash, artifact)?;
            }
            for fact in more {
                tx.append(Entry::new(&run, fact))?;
            }
            Ok(run)
        })?;
        self.keep_alive(holder);
        Ok(run)
    }

    /// Leases `hosts` to `run`, all or none, recording `lease_taken`.
    pub fn take_leases(
        &self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<Appended, AuditError> {
        let appended = self.write(|tx| tx.lease_hosts(run, hosts, holder))?;
        self.keep_alive(holder);
        Ok(appended)
    }

    /// Releases every lease of `run`, recording `lease_released`.
    pub fn release_leases(&self, run: &str) -> Result<Vec<String>, AuditError> {
        self.write(|tx| tx.release(run))
    }

    /// Releases the run's leases and records `run_finished` in one commit.
    pub fn finish_run(&self, run: &str, finished: RunFinished) -> Result<Appended, AuditError> {
        self.write(|tx| {
            tx.release(run)?;
            tx.append(Entry::new(run, Fact::RunFinished(finished)))
        })
    }

    /// Breaks the leases of a run whose holder stopped renewing them (`sluice unlock`):
    /// refused while they have not expired, whichever controller holds them.
    pub fn break_leases(
        &self,
        run: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<String>, AuditError> {
        self.write(|tx| {
            let held = tx.leases_of(run)?;
            let Some(first) = held.first() else {
                return Err(AuditError::NoLeases {
                    run: run.to_string(),
                });
            };
            if let Some(live) = held.iter().find(|l| l.alive) {
                return Err(AuditError::LeaseHolderAlive {
                    run: run.to_string(),
                    pid: live.lease.pid,
                    controller: live.lease.controller.clone(),
                });
            }
            let pid = first.lease.pid;
            let removed = tx.remove_leases_of(run)?;
            let hosts: Vec<String> = removed.iter().map(|l| l.host.clone()).collect();
            let breaker = LeaseHolder {
                operator: by.to_string(),
                controller: tx.store.controller().to_string(),
                pid,
            };
            tx.append(Entry::new(
                run,
                Fact::LeaseBroken(change(hosts.clone(), &breaker)),
            ))?;
            if let Some(reason) = reason {
                tx.append(Entry::new(
                    run,
                    Fact::Decision(sluice_model::DecisionTaken {
                        decision: sluice_model::Decision::BreakGlass,
                        wave: None,
                        reason: format!("unlock by {by}: {reason}"),
                    }),
                ))?;
            }
            Ok(hosts)
        })
    }

    /// Every active lease, by host (expired ones included: they are held until broken or
    /// taken over; `expires_at` says when they stopped being renewed).
    pub fn active_leases(&self) -> Result<Vec<Lease>, AuditError> {
        let sql = format!("SELECT {LEASE_COLUMNS} FROM sluice.leases ORDER BY host");
        self.with_client(|conn| {
            Ok(conn
                .query(&sql, &[])?
                .iter()
                .map(|r| lease_of(r).lease)
                .collect())
        })
    }

    /// A lease of `run` that has not expired (its holder's heartbeat renews it).
    pub fn live_lease_of(&self, run: &str) -> Result<Option<Lease>, AuditError> {
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM sluice.leases WHERE run = $1 AND expires_at > now()
             ORDER BY host LIMIT 1"
        );
        self.with_client(|conn| {
            Ok(conn
                .query(&sql, &[&run])?
                .first()
                .map(|r| lease_of(r).lease))
        })
    }

    /// Runs whose leases a live holder renews.
    pub(crate) fn live_runs(&self) -> Result<std::collections::BTreeSet<String>, AuditError> {
        self.with_client(|conn| {
            Ok(conn
                .query(
                    "SELECT DISTINCT run FROM sluice.leases WHERE expires_at > now()",
                    &[],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    /// Carries on an interrupted run in ONE commit: refuses a finished run and leases a live
    /// holder still renews, re-takes the leases for `holder`, records `run_resumed` (with this
    /// controller's name), the operator's choice and `more`.
    pub fn resume_run(
        &self,
        run: &str,
        resumed: RunResumed,
        hosts: &[String],
        holder: &LeaseHolder,
        choice: Option<UnknownStepsResolved>,
        more: Vec<Fact>,
    ) -> Result<Appended, AuditError> {
        let appended = self.write(|tx| {
            let summary = tx.run_summary(run)?.ok_or_else(|| AuditError::UnknownRun {
                run: run.to_string(),
            })?;
            if summary.finished_at.is_some() {
                return Err(AuditError::RunFinished {
                    run: run.to_string(),
                    status: summary.status,
                });
            }
            for held in tx.leases_of(run)? {
                let ours =
                    held.lease.controller == holder.controller && held.lease.pid == holder.pid;
                if held.alive && !ours {
                    return Err(AuditError::LeaseHolderAlive {
                        run: run.to_string(),
                        pid: held.lease.pid,
                        controller: held.lease.controller,
                    });
                }
            }
            tx.lease_hosts(run, hosts, holder)?;
            let mut appended = tx.append(Entry::new(run, Fact::RunResumed(resumed)))?;
            if let Some(choice) = choice {
                appended = tx.append(Entry::new(run, Fact::UnknownStepsResolved(choice)))?;
            }
            for fact in more {
                appended = tx.append(Entry::new(run, fact))?;
            }
            Ok(appended)
        })?;
        self.keep_alive(holder);
        Ok(appended)
    }

    /// Starts renewing `holder`'s leases, once per store handle.
    fn keep_alive(&self, holder: &LeaseHolder) {
        let mut beat = self
            .heartbeat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if beat.is_none() {
            *beat = super::heartbeat::Heartbeat::start(self, holder).ok();
        }
    }
}
