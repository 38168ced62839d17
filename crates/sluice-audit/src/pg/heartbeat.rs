//! The heartbeat of a lease holder: while a process holds leases in the PostgreSQL store, a task
//! on the client's runtime pushes their `expires_at` forward every quarter of the lease expiry,
//! on a connection of its own (so a long commit on the main connection never delays it). A
//! process that dies stops renewing, and its leases expire; a database that cannot be reached
//! is retried at every beat.

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

impl Heartbeat {
    pub(crate) fn start(store: &PgStore, holder: &LeaseHolder) -> Result<Heartbeat, AuditError> {
        let config = store.config.clone();
        let expiry = store.lease_expiry();
        let every = expiry / 4;
        let controller = holder.controller.clone();
        let pid = i64::from(holder.pid);
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
                    let _ = renew(c, &controller, pid, expiry).await;
                }
            }
        });
        Ok(Heartbeat { task })
    }
}

/// One renewal, under the chain's tip lock like every write, so it never interleaves with a
/// transaction that takes or releases the same leases.
async fn renew(
    client: &mut tokio_postgres::Client,
    controller: &str,
    pid: i64,
    expiry: Duration,
) -> Result<(), tokio_postgres::Error> {
    let txn = client.transaction().await?;
    txn.batch_execute("SET LOCAL synchronous_commit = on")
        .await?;
    txn.execute("SELECT 1 FROM sluice.chain_tip FOR UPDATE", &[])
        .await?;
    txn.execute(
        "UPDATE sluice.leases SET expires_at = now() + make_interval(secs => $3)
         WHERE controller = $1 AND pid = $2",
        &[&controller, &pid, &expiry.as_secs_f64()],
    )
    .await?;
    txn.commit().await
}
