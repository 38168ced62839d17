//! Copying a local store into an empty PostgreSQL store (`sluice store migrate`): every record
//! exactly as exported (same seq, time, bytes and hashes), the indexes rebuilt from them as
//! appends build them, and the leases still held (their holders were local processes, so they
//! come over expired: the runs show as interrupted and can be resumed from any controller).

use super::PgStore;
use crate::error::AuditError;
use crate::lease::Lease;
use crate::store_tx::WritableStore;

impl PgStore {
    /// Imports the JSON Lines of a full export (its end line is skipped), in one transaction,
    /// into a store that holds no record yet. Each record must continue the chain. Returns how
    /// many records were copied.
    pub fn import(&self, export: &[u8], leases: &[Lease]) -> Result<u64, AuditError> {
        self.write(|tx| {
            if tx.tip_seq() != 0 {
                return Err(AuditError::Database {
                    store: self.name().clone(),
                    reason: "the store already holds records: migrate into an empty store".into(),
                    unreachable: false,
                });
            }
            let mut copied = 0;
            for line in export.split(|b| *b == b'\n') {
                let text = String::from_utf8_lossy(line);
                if text.trim().is_empty() || text.starts_with("{\"end\":") {
                    continue;
                }
                tx.insert_verbatim(&text)?;
                copied += 1;
            }
            for lease in leases {
                tx.execute(
                    "INSERT INTO sluice.leases (host, run, operator, controller, pid, since, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, now())",
                    &[
                        &lease.host,
                        &lease.run,
                        &lease.operator,
                        &lease.controller,
                        &i64::from(lease.pid),
                        &lease.since,
                    ],
                )?;
            }
            Ok(copied)
        })
    }
}
