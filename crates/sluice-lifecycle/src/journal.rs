//! The executor's journal over the audit store.

use std::sync::Arc;

use sluice_audit::{Entry, GroupCommitter, Redactor};
use sluice_exec::{Journal, JournalError, JournalFuture};
use sluice_model::Fact;

/// Records every fact the executor journals, in the order it calls, through one
/// [`GroupCommitter`]: the executor still waits for each record to be durable, but records of
/// hosts that reach the store together share a commit. Every text a fact carries is redacted
/// again with the run's [`Redactor`] (the executor already masks secrets; this is the store's
/// own guarantee).
pub struct AuditJournal {
    pub writer: Arc<GroupCommitter>,
    pub run: String,
    pub redactor: Arc<Redactor>,
}

impl Journal for AuditJournal {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        let fact = redact(&self.redactor, fact.clone());
        // Queued now, in the order the executor calls; the future only waits for the commit.
        let wait = self.writer.submit(Entry::new(&self.run, fact));
        Box::pin(async move { wait.await.map(|_| ()).map_err(JournalError::new) })
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
