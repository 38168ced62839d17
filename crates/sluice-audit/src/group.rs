//! Group commit: records that many callers append at the same moment share one durable commit.
//!
//! A durable commit costs the same two `fsync`s (~6–10 ms on the development VM) whether it holds
//! one record or a hundred, so hosts that finish a step together should not each pay for one.
//!
//! 1. A caller [`GroupCommitter::submit`]s an [`Entry`] and awaits its acknowledgement.
//! 2. One writer thread takes everything queued (up to a cap), appends it with
//!    [`AuditLog::append_batch`] in one durable transaction, then acknowledges every waiter.
//! 3. While that commit is in flight, new entries queue up and form the next batch.
//!
//! So batches grow with the load by themselves: a lone caller waits for one commit, as with
//! [`AuditLog::append`], and a hundred hosts finishing together wait for about two. Nothing waits
//! for a timer to fill a batch.
//!
//! The contract of a single append is unchanged: an acknowledgement means the record is on
//! disk. A batch lands whole or not at all, so a failed commit fails every entry in it, and each
//! waiter decides what that means for it (the executor does not send a command whose intent
//! failed). Entries keep their submission order within the chain.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::audit_log::AuditLog;
use crate::error::AuditError;
use crate::record::Entry;
use crate::store::Appended;

/// Most records in one commit: keeps one transaction's size, and a waiter's worst case, bounded.
pub const MAX_BATCH: usize = 512;

/// Where batches are committed: the store, or a stand-in in tests.
pub trait BatchSink: Send + 'static {
    /// Appends `entries` in one durable commit, in order, or none of them.
    fn commit(&self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError>;
}

impl BatchSink for Arc<AuditLog> {
    fn commit(&self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError> {
        self.append_batch(entries)
    }
}

/// A commit that failed, as every waiter of its batch sees it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not recorded: the audit store's commit of {records} records failed: {reason}")]
pub struct CommitFailed {
    pub records: usize,
    pub reason: String,
    /// The store could not be reached (a database that went away), rather than refusing the
    /// records: the run stops, to be resumed once it is back.
    pub store_unreachable: bool,
}

/// Commits and records so far, for measurements and the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Commits attempted (failed ones included).
    pub commits: u64,
    pub records: u64,
    /// The largest batch committed at once.
    pub largest: u64,
    /// Time from submission to acknowledgement, summed over every record: what the callers
    /// waited for durability (concurrent waits add up).
    pub waited: Duration,
}

impl CommitStats {
    /// How long a caller waited, on average, for one record to be durable.
    pub fn mean_wait(&self) -> Duration {
        match u32::try_from(self.records) {
            Ok(n) if n > 0 => self.waited / n,
            _ => Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    records: AtomicU64,
    largest: AtomicU64,
    waited_us: AtomicU64,
}

struct Pending {
    entry: Entry,
    queued: Instant,
    ack: oneshot::Sender<Result<Appended, CommitFailed>>,
}

/// The writer of a group commit; see the module documentation. Dropping it waits until every
/// submitted entry is committed (or failed).
pub struct GroupCommitter {
    queue: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl GroupCommitter {
    /// Starts the writer thread, committing batches of up to [`MAX_BATCH`] records to `sink`.
    pub fn start(sink: impl BatchSink) -> std::io::Result<Self> {
        Self::with_max_batch(sink, MAX_BATCH)
    }

    /// As [`GroupCommitter::start`] with another cap; 1 commits every record on its own (what
    /// the benchmark compares against).
    pub fn with_max_batch(sink: impl BatchSink, max_batch: usize) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::channel::<Pending>();
        let counters = Arc::new(Counters::default());
        let seen = counters.clone();
        let max_batch = max_batch.max(1);
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_batches(&sink, &rx, max_batch, &seen))?;
        Ok(GroupCommitter {
            queue: Some(queue),
            writer: Some(writer),
            counters,
        })
    }

    /// Queues `entry` now (so entries keep the order of the calls) and returns the wait for its
    /// commit. The future owns everything it needs; dropping it does not un-queue the entry.
    pub fn submit(
        &self,
        entry: Entry,
    ) -> impl Future<Output = Result<Appended, CommitFailed>> + Send + 'static {
        let (ack, done) = oneshot::channel();
        let queued = self.queue.as_ref().is_some_and(|q| {
            let queued = Instant::now();
            q.send(Pending { entry, queued, ack }).is_ok()
        });
        async move {
            if !queued {
                return Err(stopped());
            }
            // The writer drops an acknowledgement only if it stopped abnormally.
            done.await.unwrap_or_else(|_| Err(stopped()))
        }
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            records: self.counters.records.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
            waited: Duration::from_micros(self.counters.waited_us.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and end.
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn stopped() -> CommitFailed {
    CommitFailed {
        records: 1,
        reason: "the audit writer has stopped".into(),
        store_unreachable: false,
    }
}

/// The writer thread: until the queue closes, take what is queued, commit it, acknowledge it.
fn write_batches(
    sink: &impl BatchSink,
    rx: &mpsc::Receiver<Pending>,
    max_batch: usize,
    counters: &Counters,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (entries, acks): (Vec<Entry>, Vec<_>) = batch
            .into_iter()
            .map(|p| (p.entry, (p.queued, p.ack)))
            .unzip();
        let n = entries.len();
        // A panic inside the store engine must fail this batch's waiters, not strand them and
        // every later caller.
        let committed =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.commit(entries))) {
                Ok(Ok(appended)) => Ok(appended),
                Ok(Err(err)) => Err((err.to_string(), err.is_unreachable())),
                Err(_) => Err((
                    "the store engine failed while committing".to_string(),
                    false,
                )),
            };
        let size = u64::try_from(n).unwrap_or(u64::MAX);
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters.records.fetch_add(size, Ordering::Relaxed);
        counters.largest.fetch_max(size, Ordering::Relaxed);
        // Measured just before the acknowledgements go out: what each caller waited for.
        let acked = Instant::now();
        let waited: u128 = acks
            .iter()
            .map(|(queued, _)| acked.duration_since(*queued).as_micros())
            .sum();
        counters
            .waited_us
            .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
        match committed {
            Ok(appended) => {
                // A waiter that went away (its task was dropped) needs no answer.
                for ((_, ack), appended) in acks.into_iter().zip(appended) {
                    let _ = ack.send(Ok(appended));
                }
            }
            Err((reason, store_unreachable)) => {
                let err = CommitFailed {
                    records: n,
                    reason,
                    store_unreachable,
                };
                for (_, ack) in acks {
                    let _ = ack.send(Err(err.clone()));
                }
            }
        }
    }
}
