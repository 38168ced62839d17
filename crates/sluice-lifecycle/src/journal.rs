//! The executor's journal over the audit store, and the count of what it could not record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_audit::{Entry, GroupCommitter, Redactor};
use sluice_exec::{Journal, JournalError, JournalFuture, Shutdown};
use sluice_model::Fact;

/// Records every fact the executor journals, in the order it calls, through one
/// [`GroupCommitter`]: the executor still waits for each record to be durable, but records of
/// hosts that reach the store together share a commit. Every text a fact carries is redacted
/// again with the run's [`Redactor`] (the executor already masks secrets; this is the store's
/// own guarantee). The executor tells the journal of every form of every secret when the run
/// starts and of every value it finds to hold one while it runs (a registered value tainted by
/// a secret, [`Journal::treat_as_secret`]): the redactor masks those too from then on.
///
/// It counts the facts the store could not record ([`AuditJournal::lost`]): the executor carries
/// on after most of them, so a run whose journal failed could otherwise end looking complete.
pub struct AuditJournal {
    writer: Arc<GroupCommitter>,
    run: String,
    redactor: Arc<Redactor>,
    lost: AtomicU64,
    /// Why the first lost fact was lost.
    first_loss: Mutex<Option<String>>,
    /// Stopped when the store cannot be reached; see [`AuditJournal::stopping`].
    on_outage: Option<Shutdown>,
}

/// What an [`AuditJournal`] could not record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Facts not recorded.
    pub facts: u64,
    /// Why the first of them was not.
    pub first_reason: Option<String>,
}

impl AuditJournal {
    pub fn new(writer: Arc<GroupCommitter>, run: &str, redactor: Arc<Redactor>) -> Self {
        AuditJournal {
            writer,
            run: run.to_string(),
            redactor,
            lost: AtomicU64::new(0),
            first_loss: Mutex::new(None),
            on_outage: None,
        }
    }

    /// When a commit fails because the store cannot be reached (a database that went away),
    /// `shutdown` is told ([`Shutdown::store_unreachable`]) before the executor hears of the
    /// failure: it starts no further host or step, lets the commands in flight finish, and
    /// undoes nothing, so the run can be resumed once the store is back.
    pub fn stopping(mut self, shutdown: Shutdown) -> Self {
        self.on_outage = Some(shutdown);
        self
    }

    /// The facts the store could not record so far.
    pub fn lost(&self) -> Lost {
        Lost {
            facts: self.lost.load(Ordering::SeqCst),
            first_reason: self.first_loss.lock().ok().and_then(|r| r.clone()),
        }
    }

    fn count_loss(&self, why: &impl std::fmt::Display) {
        self.lost.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut first) = self.first_loss.lock() {
            first.get_or_insert_with(|| why.to_string());
        }
    }
}

impl Journal for AuditJournal {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        let fact = redact(&self.redactor, fact.clone());
        // Queued now, in the order the executor calls; the future only waits for the commit.
        let wait = self.writer.submit(Entry::new(&self.run, fact));
        Box::pin(async move {
            wait.await.map(|_| ()).map_err(|failed| {
                if failed.store_unreachable
                    && let Some(shutdown) = &self.on_outage
                {
                    shutdown.store_unreachable();
                }
                self.count_loss(&failed);
                JournalError::new(failed)
            })
        })
    }

    fn treat_as_secret(&self, value: &str) {
        self.redactor.add(value);
    }
}

/// `fact` with every free text (commands, details, reasons, captured output) redacted.
pub fn redact(redactor: &Redactor, fact: Fact) -> Fact {
    if redactor.is_empty() {
        return fact;
    }
    let text = |s: &mut String| *s = redactor.redact_str(s);
    match fact {
        Fact::StepIntent(mut i) => {
            text(&mut i.command);
            Fact::StepIntent(i)
        }
        Fact::UndoIntent(mut i) => {
            text(&mut i.command);
            Fact::UndoIntent(i)
        }
        Fact::StepResult(r) => Fact::StepResult(redact_result(redactor, r)),
        Fact::UndoResult(r) => Fact::UndoResult(redact_result(redactor, r)),
        Fact::HealthResult(mut h) => {
            text(&mut h.detail);
            Fact::HealthResult(h)
        }
        Fact::WaveDecided(mut w) => {
            text(&mut w.reason);
            Fact::WaveDecided(w)
        }
        Fact::HostFinished(mut h) => {
            if let Some(e) = &mut h.error {
                text(e);
            }
            Fact::HostFinished(h)
        }
        Fact::Decision(mut d) => {
            text(&mut d.reason);
            Fact::Decision(d)
        }
        Fact::Warning(mut w) => {
            text(&mut w.message);
            Fact::Warning(w)
        }
        other => other,
    }
}

fn redact_result(redactor: &Redactor, mut r: sluice_model::StepResult) -> sluice_model::StepResult {
    r.detail = redactor.redact_str(&r.detail);
    r.stdout = redactor.redact_capture(&r.stdout);
    r.stderr = redactor.redact_capture(&r.stderr);
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use sluice_audit::{Appended, AuditError, BatchSink};
    use sluice_model::StepIntent;

    use super::*;

    /// Keeps what would be committed.
    struct Kept(Arc<Mutex<Vec<Entry>>>);

    impl BatchSink for Kept {
        fn commit(&self, entries: Vec<Entry>) -> Result<Vec<Appended>, AuditError> {
            let appended = entries
                .iter()
                .map(|_| Appended {
                    seq: 0,
                    hash: String::new(),
                })
                .collect();
            self.0.lock().unwrap().extend(entries);
            Ok(appended)
        }
    }

    /// A value the executor finds to hold a secret (a tainted registered value) is masked by
    /// the store's own redaction too, from the moment the journal is told.
    #[tokio::test]
    async fn a_value_the_executor_taints_is_redacted_by_the_journal_too() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let journal = AuditJournal::new(
            Arc::new(GroupCommitter::start(Kept(kept.clone())).unwrap()),
            "r",
            Arc::new(Redactor::new(["tok-1"])),
        );
        let intent = |command: &str| {
            Fact::StepIntent(StepIntent {
                host: "h".into(),
                step: "s".into(),
                command: command.into(),
                attempt: 1,
                boot_id: None,
            })
        };
        journal.record(&intent("use sess-tok-1-9")).await.unwrap();
        journal.treat_as_secret("sess-tok-1-9");
        journal.record(&intent("use sess-tok-1-9")).await.unwrap();
        let commands: Vec<String> = kept
            .lock()
            .unwrap()
            .iter()
            .map(|e| match &e.fact {
                Fact::StepIntent(i) => i.command.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(commands, ["use sess-***-9", "use ***"]);
    }
}
