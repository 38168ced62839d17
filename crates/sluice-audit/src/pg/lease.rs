//! Leases in the PostgreSQL store: how a lease row is read, and the reads of live leases
//! (taking, releasing and breaking them is written once for both backends, in `crate::lease`).
//!
//! A lease row carries `expires_at`: taking it sets it to now plus the holder's lease expiry,
//! and the holder's heartbeat (`heartbeat.rs`) pushes it forward while the process lives. A
//! holder is alive while its leases have not expired — judged by the database's clock, so
//! controllers on machines whose clocks differ agree. Leases are checked and taken under the
//! chain's tip lock, in the transaction that records `run_started`/`run_resumed`, so two
//! controllers racing for overlapping hosts are serialised: exactly one starts.

use super::PgStore;
use crate::error::AuditError;
use crate::lease::{HeldLease, Lease};

pub(super) const LEASE_COLUMNS: &str =
    "host, run, operator, controller, pid, since, expires_at::text, expires_at > now()";

/// Reads a row of `LEASE_COLUMNS`: the lease, and whether its holder is alive (it has not
/// expired).
pub(super) fn lease_of(row: &tokio_postgres::Row) -> HeldLease {
    let pid: i64 = row.get(4);
    HeldLease {
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

impl PgStore {
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
}
