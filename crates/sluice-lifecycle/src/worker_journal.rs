//! A worker's journal (`sluice worker`): every fact of a claimed host redacted, then recorded
//! in the run's chain only while the claim is this worker's, through one group commit per
//! worker process.
//!
//! 1. A host's [`FencedJournal`] hands its fact to the worker's [`FencedWriter`] and awaits it.
//! 2. The writer's thread takes everything queued (up to [`MAX_BATCH`]) and records it with
//!    `PgStore::append_fenced_batch` in one durable commit, each fact fenced by its own claim,
//!    then answers every waiter.
//! 3. While that commit is in flight, new facts queue up and form the next batch.
//!
//! So the hosts of one worker that record at the same moment share a commit, as the redb group
//! commit does for one process, and the durability contract is the one of a single record: a
//! host waits for its fact's commit, so a step's intent is committed before its command is
//! sent, and its result before the host's next step. A fact whose claim was lost is refused on
//! its own (its host stops); a commit that failed fails every fact in it.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use sluice_audit::pg::{Claim, FencedEntry};
use sluice_audit::{AuditError, AuditLog, Redactor};
use sluice_exec::{Journal, JournalError, JournalFuture, Shutdown};
use sluice_model::Fact;
use tokio::sync::oneshot;

/// Most facts in one commit: keeps one transaction, and the chain's lock it holds, short.
pub const MAX_BATCH: usize = 256;

/// Why a fact of a claimed host was not recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not recorded: {reason}")]
pub struct NotRecorded {
    pub reason: String,
    /// The host must stop: the store went away, or another worker holds the host now.
    pub stops_host: bool,
}

impl NotRecorded {
    fn of(err: &AuditError) -> NotRecorded {
        NotRecorded {
            reason: err.to_string(),
            stops_host: err.is_unreachable() || matches!(err, AuditError::ClaimLost { .. }),
        }
    }
}

struct Pending {
    entry: FencedEntry,
    ack: oneshot::Sender<Result<(), NotRecorded>>,
}

/// The group commit of one worker process; see the module documentation. Dropping it lets the
/// thread commit what is queued and end.
pub struct FencedWriter {
    queue: Option<mpsc::Sender<Pending>>,
    thread: Option<JoinHandle<()>>,
}

impl FencedWriter {
    pub fn start(log: Arc<AuditLog>) -> std::io::Result<FencedWriter> {
        let (queue, rx) = mpsc::channel::<Pending>();
        let thread = std::thread::Builder::new()
            .name("fenced-writer".into())
            .spawn(move || write_batches(&log, &rx))?;
        Ok(FencedWriter {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues a fact now (facts keep the order of the calls) and returns the wait for its
    /// commit.
    fn submit(
        &self,
        entry: FencedEntry,
    ) -> impl std::future::Future<Output = Result<(), NotRecorded>> + Send + 'static {
        let (ack, done) = oneshot::channel();
        let queued = self
            .queue
            .as_ref()
            .is_some_and(|q| q.send(Pending { entry, ack }).is_ok());
        async move {
            let stopped = || NotRecorded {
                reason: "the worker's writer has stopped".into(),
                stops_host: true,
            };
            if !queued {
                return Err(stopped());
            }
            done.await.unwrap_or_else(|_| Err(stopped()))
        }
    }
}

impl Drop for FencedWriter {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer's thread: until the queue closes, take what is queued, commit it, answer it.
fn write_batches(log: &AuditLog, rx: &mpsc::Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (entries, acks): (Vec<FencedEntry>, Vec<_>) =
            batch.into_iter().map(|p| (p.entry, p.ack)).unzip();
        // A panic inside the database client must fail this batch's waiters, not strand them.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            log.postgres("sluice worker")?.append_fenced_batch(entries)
        }));
        match committed {
            Ok(Ok(results)) => {
                for (ack, result) in acks.into_iter().zip(results) {
                    let _ = ack.send(result.map(|_| ()).map_err(|e| NotRecorded::of(&e)));
                }
            }
            Ok(Err(err)) => {
                let failed = NotRecorded::of(&err);
                for ack in acks {
                    let _ = ack.send(Err(failed.clone()));
                }
            }
            Err(_) => {
                let failed = NotRecorded {
                    reason: "the database client failed while committing".into(),
                    stops_host: true,
                };
                for ack in acks {
                    let _ = ack.send(Err(failed.clone()));
                }
            }
        }
    }
}

/// The journal of one claimed host; see the module documentation.
pub struct FencedJournal {
    pub writer: Arc<FencedWriter>,
    pub claim: Claim,
    pub worker: String,
    pub redactor: Arc<Redactor>,
    pub shutdown: Shutdown,
}

impl Journal for FencedJournal {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        let entry = FencedEntry {
            claim: self.claim.clone(),
            worker: self.worker.clone(),
            fact: crate::journal::redact(&self.redactor, fact.clone()),
        };
        let recorded = self.writer.submit(entry);
        Box::pin(async move {
            recorded.await.map_err(|e| {
                if e.stops_host {
                    // No new step may start without its intent recorded: stop the host.
                    self.shutdown.store_unreachable();
                }
                JournalError::new(e)
            })
        })
    }

    fn treat_as_secret(&self, value: &str) {
        self.redactor.add(value);
    }
}
