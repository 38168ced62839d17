//! The heartbeat of a lease holder or a worker: while a process holds leases in the PostgreSQL
//! store (or runs as `sluice worker`), a task on the client's runtime pushes their `expires_at`
//! forward every quarter of the lease expiry, on a connection of its own (so a long commit on
//! the main connection never delays it). A process that dies stops renewing, and its leases (or
//! its claims of hosts) expire; a database that cannot be reached is retried at every beat.

use std::time::Duration;

use super::PgStore;
use super::conn::runtime;
use crate::error::AuditError;
use crate::lease::LeaseHolder;

/// The running heartbeat; dropping it stops it.
pub(crate) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a heartbeat keeps alive.
#[derive(Clone)]
enum Beating {
    /// The leases of one controller process.
    Leases { controller: String, pid: i64 },
    /// One worker's row (`worker.rs`): its claims stay its own while it beats.
    Worker { id: i64 },
}

impl Heartbeat {
    pub(crate) fn start(store: &PgStore, holder: &LeaseHolder) -> Result<Heartbeat, AuditError> {
        let beating = Beating::Leases {
            controller: holder.controller.clone(),
            pid: i64::from(holder.pid),
        };
        Self::spawn(store, beating)
    }

    /// The heartbeat of worker `id` (`sluice.workers`).
    pub(crate) fn start_worker(store: &PgStore, id: i64) -> Result<Heartbeat, AuditError> {
        Self::spawn(store, Beating::Worker { id })
    }

    fn spawn(store: &PgStore, beating: Beating) -> Result<Heartbeat, AuditError> {
        let config = store.config.clone();
        let expiry = store.lease_expiry();
        let every = expiry / 4;
        let tls = super::conn::tls(store.name())?;
        let task = runtime(store.name())?.spawn(async move {
            let mut client: Option<tokio_postgres::Client> = None;
            loop {
                tokio::time::sleep(every).await;
                if client
                    .as_ref()
                    .is_none_or(tokio_postgres::Client::is_closed)
                {
                    client = match config.connect(tls.clone()).await {
                        Ok((c, connection)) => {
                            tokio::spawn(async move {
                                let _ = connection.await;
                            });
                            Some(c)
                        }
                        Err(_) => None,
                    };
                }
                if let Some(c) = client.as_mut() {
                    // A failed renewal is retried at the next beat; the leases stay valid
                    // until their expiry.
                    let _ = renew(c, &beating, expiry).await;
                }
            }
        });
        Ok(Heartbeat { task })
    }
}

/// One renewal, under the chain's tip lock like every write, so it never interleaves with a
/// transaction that takes, releases or claims over the same rows.
async fn renew(
    client: &mut tokio_postgres::Client,
    beating: &Beating,
    expiry: Duration,
) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.batch_execute("SET LOCAL synchronous_commit = on")
        .await?;
    txn.execute("SELECT 1 FROM sluice.chain_tip FOR UPDATE", &[])
        .await?;
    let secs = expiry.as_secs_f64();
    match beating {
        Beating::Leases { controller, pid } => {
            txn.execute(
                "UPDATE sluice.leases SET expires_at = now() + make_interval(secs => $3)
                 WHERE controller = $1 AND pid = $2",
                &[controller, pid, &secs],
            )
            .await?;
        }
        Beating::Worker { id } => {
            // A late beat revives a worker judged dead: the claims another worker took over
            // meanwhile are no longer its own, and it finds out at its next record for them
            // (the fence in `shard.rs`); the others stay its own.
            txn.execute(
                "UPDATE sluice.workers SET expires_at = now() + make_interval(secs => $2)
                 WHERE id = $1 AND stopped_at IS NULL",
                &[id, &secs],
            )
            .await?;
        }
    }
    txn.commit().await
}
