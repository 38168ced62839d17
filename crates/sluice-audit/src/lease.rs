//! Host leases: a run holds every target host for its whole life, so two runs never change the
//! same host at once. Leases live in the store, taken and released in the same transaction as
//! the record that says so.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::error::AuditError;
pub use crate::identity::{controller_name, operator_name, pid_alive};
use crate::record::Entry;
use crate::store::{Appended, LEASES, RedbStore, Tx};
use sluice_model::{Fact, LeaseChange, RunFinished};

/// Who holds a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    pub operator: String,
    pub controller: String,
    pub pid: u32,
}

impl LeaseHolder {
    /// The current process, user and host.
    pub fn this_process() -> Self {
        LeaseHolder {
            operator: operator_name(),
            controller: controller_name(),
            pid: std::process::id(),
        }
    }
}

/// An active lease on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub host: String,
    pub run: String,
    pub operator: String,
    pub controller: String,
    pub pid: u32,
    /// When it was taken, RFC 3339.
    pub since: String,
    /// In a shared (PostgreSQL) store: when the lease expires unless its holder's heartbeat
    /// renews it. A local (redb) store judges its holder by its pid instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl RedbStore {
    /// Starts a run that leases `hosts`: `run_started` and `lease_taken` in one commit, so a
    /// refused start ([`AuditError::LeaseHeld`]) leaves no trace of a run that never ran.
    /// Returns the new run id.
    pub fn start_run(
        &self,
        started: sluice_model::RunStarted,
        holder: &LeaseHolder,
    ) -> Result<String, AuditError> {
        let hosts = started.hosts.clone();
        self.write(|tx| {
            let run = tx.new_run_id()?;
            tx.append(Entry::new(&run, Fact::RunStarted(started)))?;
            lease_hosts(tx, &run, &hosts, holder)?;
            Ok(run)
        })
    }

    /// Starts the run of a plan in one commit: `run_started`, `lease_taken`, the plan artifact
    /// (stored once per hash), then `more` (the start confirmation, the policy check). A
    /// controller that dies at any moment leaves either no run at all or a run whose plan is in
    /// the store, which `sluice resume` can carry on; a refused start leaves no trace.
    pub fn start_run_with_plan(
        &self,
        started: sluice_model::RunStarted,
        holder: &LeaseHolder,
        artifact: serde_json::Value,
        more: Vec<Fact>,
    ) -> Result<String, AuditError> {
        let hosts = started.hosts.clone();
        let plan_hash = started.plan_hash.clone();
        self.write(|tx| {
            let run = tx.new_run_id()?;
            tx.append(Entry::new(&run, Fact::RunStarted(started)))?;
            lease_hosts(tx, &run, &hosts, holder)?;
            tx.store_artifact(&run, &plan_hash, artifact)?;
            for fact in more {
                tx.append(Entry::new(&run, fact))?;
            }
            Ok(run)
        })
    }

    /// Leases `hosts` to `run`, all or none, and records `lease_taken`. Refused with
    /// [`AuditError::LeaseHeld`] (naming the holder) if another run holds any of them, alive or
    /// not: a dead holder's lease must be broken explicitly (`sluice unlock`). Leases the run
    /// already holds are taken over by this holder (resume after a crash).
    pub fn take_leases(
        &self,
        run: &str,
        hosts: &[String],
        holder: &LeaseHolder,
    ) -> Result<Appended, AuditError> {
        self.write(|tx| lease_hosts(tx, run, hosts, holder))
    }

    /// Releases every lease of `run` and records `lease_released`. Returns the released hosts
    /// (none, and no record, if the run held none).
    pub fn release_leases(&self, run: &str) -> Result<Vec<String>, AuditError> {
        self.write(|tx| {
            let held = remove_leases_of(tx, run)?;
            let Some(first) = held.first() else {
                return Ok(Vec::new());
            };
            let holder = LeaseHolder {
                operator: first.operator.clone(),
                controller: first.controller.clone(),
                pid: first.pid,
            };
            let hosts: Vec<String> = held.iter().map(|l| l.host.clone()).collect();
            tx.append(Entry::new(
                run,
                Fact::LeaseReleased(change(hosts.clone(), &holder)),
            ))?;
            Ok(hosts)
        })
    }

    /// Ends a run in ONE commit: releases its leases (`lease_released`) and records
    /// `run_finished`. A controller killed at any moment leaves a finished run with no leases,
    /// or an unfinished one that still holds them (which `sluice resume` takes over).
    pub fn finish_run(&self, run: &str, finished: RunFinished) -> Result<Appended, AuditError> {
        self.write(|tx| {
            let held = remove_leases_of(tx, run)?;
            if let Some(first) = held.first() {
                let holder = LeaseHolder {
                    operator: first.operator.clone(),
                    controller: first.controller.clone(),
                    pid: first.pid,
                };
                let hosts: Vec<String> = held.iter().map(|l| l.host.clone()).collect();
                tx.append(Entry::new(run, Fact::LeaseReleased(change(hosts, &holder))))?;
            }
            tx.append(Entry::new(run, Fact::RunFinished(finished)))
        })
    }

    /// Breaks the leases of a run whose process is gone (`sluice unlock`), recorded as
    /// `lease_broken` by `by`. Refused while the holder's pid is alive on this controller, or
    /// when the holder is another controller (whose processes cannot be checked from here).
    ///
    /// `reason`, when given (a policy's `break_glass: reason`), is recorded in the same commit as
    /// a `break_glass` decision.
    pub fn break_leases(
        &self,
        run: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<String>, AuditError> {
        let held: Vec<Lease> = self
            .active_leases()?
            .into_iter()
            .filter(|l| l.run == run)
            .collect();
        let Some(first) = held.first() else {
            return Err(AuditError::NoLeases {
                run: run.to_string(),
            });
        };
        if first.controller != self.controller() || pid_alive(first.pid) {
            return Err(AuditError::LeaseHolderAlive {
                run: run.to_string(),
                pid: first.pid,
                controller: first.controller.clone(),
            });
        }
        self.write(|tx| {
            let removed = remove_leases_of(tx, run)?;
            let hosts: Vec<String> = removed.iter().map(|l| l.host.clone()).collect();
            let breaker = LeaseHolder {
                operator: by.to_string(),
                controller: self.controller().to_string(),
                pid: first.pid,
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

    /// Every active lease, by host.
    pub fn active_leases(&self) -> Result<Vec<Lease>, AuditError> {
        let txn = self.read()?;
        let leases = txn.open_table(LEASES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in leases.iter().map_err(|e| self.err(e))? {
            let (host, bytes) = item.map_err(|e| self.err(e))?;
            out.push(decode_lease(self, host.value(), bytes.value())?);
        }
        Ok(out)
    }
}

pub(crate) fn lease_hosts(
    tx: &mut Tx<'_>,
    run: &str,
    hosts: &[String],
    holder: &LeaseHolder,
) -> Result<Appended, AuditError> {
    let log = tx.log;
    let since = jiff::Timestamp::now().to_string();
    {
        let mut leases = tx.table(LEASES)?;
        for host in hosts {
            let existing = leases.get(host.as_str()).map_err(|e| log.err(e))?;
            if let Some(bytes) = existing {
                let lease = decode_lease(log, host, bytes.value())?;
                if lease.run != run {
                    return Err(AuditError::LeaseHeld {
                        host: host.clone(),
                        holder: Box::new(lease),
                    });
                }
            }
        }
        for host in hosts {
            let lease = Lease {
                host: host.clone(),
                run: run.to_string(),
                operator: holder.operator.clone(),
                controller: holder.controller.clone(),
                pid: holder.pid,
                since: since.clone(),
                expires_at: None,
            };
            let bytes = encode_lease(run, &lease)?;
            leases
                .insert(host.as_str(), bytes.as_slice())
                .map_err(|e| log.err(e))?;
        }
    }
    tx.append(Entry::new(
        run,
        Fact::LeaseTaken(change(hosts.to_vec(), holder)),
    ))
}

fn change(hosts: Vec<String>, holder: &LeaseHolder) -> LeaseChange {
    LeaseChange {
        hosts,
        operator: holder.operator.clone(),
        controller: holder.controller.clone(),
        pid: holder.pid,
    }
}

fn remove_leases_of(tx: &mut Tx<'_>, run: &str) -> Result<Vec<Lease>, AuditError> {
    let log = tx.log;
    let mut leases = tx.table(LEASES)?;
    let mut held = Vec::new();
    for item in leases.iter().map_err(|e| log.err(e))? {
        let (host, bytes) = item.map_err(|e| log.err(e))?;
        let lease = decode_lease(log, host.value(), bytes.value())?;
        if lease.run == run {
            held.push(lease);
        }
    }
    for lease in &held {
        leases.remove(lease.host.as_str()).map_err(|e| log.err(e))?;
    }
    Ok(held)
}

pub(crate) fn decode_lease(log: &RedbStore, host: &str, bytes: &[u8]) -> Result<Lease, AuditError> {
    serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
        path: log.path().to_path_buf(),
        seq: 0,
        reason: format!("lease of host {host}: {err}"),
    })
}

fn encode_lease(run: &str, lease: &Lease) -> Result<Vec<u8>, AuditError> {
    serde_json::to_vec(lease).map_err(|source| AuditError::Encode {
        run: run.to_string(),
        kind: "lease",
        source,
    })
}
