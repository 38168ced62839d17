//! Workers in the PostgreSQL store (`sluice worker`): one row of `sluice.workers` per worker
//! process, with the labels it serves and an `expires_at` its heartbeat (`heartbeat.rs`) pushes
//! forward every quarter of `SLUICE_LEASE_EXPIRY`. A worker is live while its row has not
//! expired (by the database's clock) and it has not stopped; the claims of a worker that is not
//! live may be taken over by another (`shard.rs`).

use sluice_model::WorkerTask;

use super::PgStore;
use super::heartbeat::Heartbeat;
use crate::error::AuditError;
use crate::store_tx::WritableStore;

/// What a worker says about itself when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSpec {
    /// Unique among live workers (`--name`).
    pub name: String,
    /// The labels it serves (`--label`): it claims hosts pinned to one of them, and unpinned
    /// hosts.
    pub labels: Vec<String>,
    /// Hosts it runs at once (`--max-hosts`).
    pub max_hosts: u32,
    /// The machine it runs on and its process id, for messages.
    pub machine: String,
    pub pid: u32,
}

/// A registered worker: its row's id and its heartbeat, which stops when this is dropped.
pub struct WorkerRegistration {
    pub id: i64,
    pub spec: WorkerSpec,
    _beat: Heartbeat,
}

impl std::fmt::Debug for WorkerRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerRegistration")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .finish()
    }
}

/// A host of a run that a live worker holds (its claim, its heartbeat current): what a resumed
/// coordinator leaves to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldHost {
    pub task: WorkerTask,
    pub wave: String,
    pub host: String,
    pub worker: String,
}

/// A live worker, as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorker {
    pub name: String,
    pub labels: Vec<String>,
}

impl PgStore {
    /// Registers a worker and starts its heartbeat; refused while a live worker has its name.
    pub fn register_worker(&self, spec: &WorkerSpec) -> Result<WorkerRegistration, AuditError> {
        let expiry = self.lease_expiry().as_secs_f64();
        let max_hosts = i32::try_from(spec.max_hosts).unwrap_or(i32::MAX);
        let id = self.write(|tx| {
            let taken = tx.query(
                "SELECT pid, machine FROM sluice.workers
                 WHERE name = $1 AND stopped_at IS NULL AND expires_at > now() LIMIT 1",
                &[&spec.name],
            )?;
            if let Some(row) = taken.first() {
                let pid: i64 = row.get(0);
                return Err(AuditError::WorkerNameTaken {
                    name: spec.name.clone(),
                    pid: u32::try_from(pid).unwrap_or(0),
                    machine: row.get(1),
                });
            }
            let rows = tx.query(
                "INSERT INTO sluice.workers (name, labels, max_hosts, machine, pid, expires_at)
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING id",
                &[
                    &spec.name,
                    &spec.labels,
                    &max_hosts,
                    &spec.machine,
                    &i64::from(spec.pid),
                    &expiry,
                ],
            )?;
            Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or_default())
        })?;
        let beat = Heartbeat::start_worker(self, id)?;
        Ok(WorkerRegistration {
            id,
            spec: spec.clone(),
            _beat: beat,
        })
    }

    /// Marks a worker stopped: it is no longer live, so whatever it still claims may be taken
    /// over at once, without waiting for its heartbeat to expire.
    pub fn stop_worker(&self, id: i64) -> Result<(), AuditError> {
        self.with_client(|conn| {
            conn.query(
                "UPDATE sluice.workers SET stopped_at = now(), expires_at = now() WHERE id = $1",
                &[&id],
            )
            .map(|_| ())
        })
    }

    /// The hosts of `run` that live workers hold, in the order they were queued.
    pub fn held_hosts(&self, run: &str) -> Result<Vec<HeldHost>, AuditError> {
        self.with_client(|conn| {
            Ok(conn
                .query(
                    "SELECT a.task, a.wave, a.host, w.name FROM sluice.assignments a
                     JOIN sluice.workers w ON w.id = a.worker
                     WHERE a.run = $1 AND a.state = 'claimed'
                       AND w.stopped_at IS NULL AND w.expires_at > now()
                     ORDER BY a.id",
                    &[&run],
                )?
                .iter()
                .map(|row| HeldHost {
                    task: super::shard::task_of(&row.get::<_, String>(0)),
                    wave: row.get(1),
                    host: row.get(2),
                    worker: row.get(3),
                })
                .collect())
        })
    }

    /// Every live worker, by name.
    pub fn live_workers(&self) -> Result<Vec<LiveWorker>, AuditError> {
        self.with_client(|conn| {
            Ok(conn
                .query(
                    "SELECT name, labels FROM sluice.workers
                     WHERE stopped_at IS NULL AND expires_at > now() ORDER BY name",
                    &[],
                )?
                .iter()
                .map(|row| LiveWorker {
                    name: row.get(0),
                    labels: row.get(1),
                })
                .collect())
        })
    }
}
