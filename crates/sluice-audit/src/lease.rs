//! Host leases: a run holds every target host for its whole life, so two runs never change the
//! same host at once. Leases live in the store, taken and released in the same transaction as
//! the record that says so; the operations on them are written once over [`StoreTx`] for both
//! backends.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::error::AuditError;
pub use crate::identity::{controller_name, operator_name, pid_alive};
use crate::record::Entry;
use crate::store::{Appended, LEASES, RedbStore};
use crate::store_tx::{StoreTx, WritableStore};
use sluice_model::{Decision, DecisionTaken, Fact, LeaseChange, RunFinished, RunStarted};

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

/// A lease as a write transaction reads it, with whether its holder is alive as the backend
/// judges it: a local pid for redb, a heartbeat that has not expired for PostgreSQL.
pub(crate) struct HeldLease {
    pub(crate) lease: Lease,
    pub(crate) alive: bool,
}

/// Starts a run that leases `hosts`: `run_started` and `lease_taken` in one commit, so a
/// refused start ([`AuditError::LeaseHeld`]) leaves no trace of a run that never ran. With a plan
/// (`sluice apply`), the artifact (stored once per hash) and `more` (the start confirmation, the
/// policy check) join the same commit: a controller that dies at any moment leaves either no run
/// at all or a run whose plan is in the store, which `sluice resume` can carry on. Returns the
/// new run id.
pub(crate) fn start_run(
    store: &impl WritableStore,
    started: RunStarted,
    holder: &LeaseHolder,
    artifact: Option<serde_json::Value>,
    more: Vec<Fact>,
) -> Result<String, AuditError> {
    let hosts = started.hosts.clone();
    let plan_hash = started.plan_hash.clone();
    let run = store.write(|tx| {
        let run = tx.new_run_id()?;
        tx.append(Entry::new(&run, Fact::RunStarted(started)))?;
        lease_hosts(tx, &run, &hosts, holder)?;
        if let Some(artifact) = artifact {
            tx.store_artifact(&run, &plan_hash, artifact)?;
        }
        for fact in more {
            tx.append(Entry::new(&run, fact))?;
        }
        Ok(run)
    })?;
    store.leases_taken(holder);
    Ok(run)
}

/// Leases `hosts` to `run`, all or none, and records `lease_taken`. Refused with
/// [`AuditError::LeaseHeld`] (naming the holder) if another run holds any of them, alive or
/// not: a dead holder's lease must be broken explicitly (`sluice unlock`), or its run resumed.
/// Leases the run already holds are taken over by this holder (resume after a crash).
pub(crate) fn take_leases(
    store: &impl WritableStore,
    run: &str,
    hosts: &[String],
    holder: &LeaseHolder,
) -> Result<Appended, AuditError> {
    let appended = store.write(|tx| lease_hosts(tx, run, hosts, holder))?;
    store.leases_taken(holder);
    Ok(appended)
}

/// Releases every lease of `run` and records `lease_released`. Returns the released hosts
/// (none, and no record, if the run held none).
pub(crate) fn release_leases(
    store: &impl WritableStore,
    run: &str,
) -> Result<Vec<String>, AuditError> {
    store.write(|tx| release(tx, run))
}

/// Ends a run in ONE commit: releases its leases (`lease_released`), closes the tasks it
/// handed to workers and records `run_finished`. A controller killed at any moment leaves a finished run with no leases,
/// or an unfinished one that still holds them (which `sluice resume` takes over).
pub(crate) fn finish_run(
    store: &impl WritableStore,
    run: &str,
    finished: RunFinished,
) -> Result<Appended, AuditError> {
    store.write(|tx| {
        release(tx, run)?;
        tx.close_run_tasks(run)?;
        tx.append(Entry::new(run, Fact::RunFinished(finished)))
    })
}

/// Breaks the leases of a run whose holder is gone (`sluice unlock`), recorded as
/// `lease_broken` by `by`. Refused while a holder is alive as the backend judges it: on the
/// local store, a pid alive on this controller, or another controller (whose processes cannot
/// be checked from here); on PostgreSQL, a heartbeat that has not expired, whichever controller
/// holds it.
///
/// `reason`, when given (a policy's `break_glass: reason`), is recorded in the same commit as
/// a `break_glass` decision.
pub(crate) fn break_leases(
    store: &impl WritableStore,
    run: &str,
    by: &str,
    reason: Option<&str>,
) -> Result<Vec<String>, AuditError> {
    store.write(|tx| {
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
        let breaker = LeaseHolder {
            operator: by.to_string(),
            controller: tx.controller().to_string(),
            pid: first.lease.pid,
        };
        let removed = tx.remove_leases_of(run)?;
        let hosts: Vec<String> = removed.iter().map(|l| l.host.clone()).collect();
        tx.append(Entry::new(
            run,
            Fact::LeaseBroken(change(hosts.clone(), &breaker)),
        ))?;
        if let Some(reason) = reason {
            tx.append(Entry::new(
                run,
                Fact::Decision(DecisionTaken {
                    decision: Decision::BreakGlass,
                    wave: None,
                    reason: format!("unlock by {by}: {reason}"),
                }),
            ))?;
        }
        Ok(hosts)
    })
}

impl RedbStore {
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

/// Leases `hosts` to `run` in `tx` and records `lease_taken` (see [`take_leases`]).
pub(crate) fn lease_hosts(
    tx: &mut impl StoreTx,
    run: &str,
    hosts: &[String],
    holder: &LeaseHolder,
) -> Result<Appended, AuditError> {
    tx.put_leases(run, hosts, holder)?;
    tx.append(Entry::new(
        run,
        Fact::LeaseTaken(change(hosts.to_vec(), holder)),
    ))
}

/// Releases the leases of `run` in `tx` with a `lease_released` record (none if it held none).
fn release(tx: &mut impl StoreTx, run: &str) -> Result<Vec<String>, AuditError> {
    let held = tx.remove_leases_of(run)?;
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
}

fn change(hosts: Vec<String>, holder: &LeaseHolder) -> LeaseChange {
    LeaseChange {
        hosts,
        operator: holder.operator.clone(),
        controller: holder.controller.clone(),
        pid: holder.pid,
    }
}

pub(crate) fn decode_lease(log: &RedbStore, host: &str, bytes: &[u8]) -> Result<Lease, AuditError> {
    serde_json::from_slice(bytes).map_err(|err| AuditError::BadRecord {
        store: log.name().clone(),
        seq: 0,
        reason: format!("lease of host {host}: {err}"),
    })
}

pub(crate) fn encode_lease(run: &str, lease: &Lease) -> Result<Vec<u8>, AuditError> {
    serde_json::to_vec(lease).map_err(|source| AuditError::Encode {
        run: run.to_string(),
        kind: "lease",
        source,
    })
}
