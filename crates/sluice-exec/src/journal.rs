//! The journal: the durable record of a run, which the executor awaits.
//!
//! Before each command is sent the executor records its intent (`step_intent`, `undo_intent`)
//! and waits until it is durable; after the command ends it records the result before the host's
//! next step or retry. It also records what an auditor needs to redo the run's reasoning: each
//! wave's start and the decision after it with the budget arithmetic, every health probe, every
//! host's outcome, rollbacks, pauses, gates and decisions. What is recorded is the very
//! [`Fact`] the event stream carries, so the journal and the events cannot tell two stories.
//!
//! What a journal failure does: an intent that is not recorded means the command is not sent (a
//! forward step fails with the reason; an undo leaves its host ROLLBACK_FAILED). Any other fact
//! that is not recorded is reported as a `journal_failed` decision and the run carries on, since
//! the next intent guards the next command anyway.
//!
//! No journal ([`JournalHandle::none`], the default) costs nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sluice_model::Fact;

/// A journal that could not record a fact.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct JournalError {
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl JournalError {
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        JournalError {
            source: Box::new(source),
        }
    }
}

/// A boxed future, so journals can be used behind `dyn`. An `Err` is a journal that could not
/// record: the executor does not send a command whose intent was not recorded.
pub type JournalFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send + 'a>>;

/// Records facts durably, in the order it is called; the executor awaits every call.
pub trait Journal: Send + Sync {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a>;

    /// `value` is secret: a journal that masks secrets itself masks it too from now on. The
    /// executor calls it with every form of every secret when the run starts, and with each
    /// value it finds to hold a secret (a tainted registered value) before any fact that could
    /// carry it; the facts it records are masked already.
    fn treat_as_secret(&self, _value: &str) {}
}

/// An optional journal, cheap to clone; `Default` is none.
#[derive(Clone, Default)]
pub struct JournalHandle(Option<Arc<dyn Journal>>);

impl JournalHandle {
    pub fn none() -> Self {
        JournalHandle(None)
    }

    pub fn new(journal: Arc<dyn Journal>) -> Self {
        JournalHandle(Some(journal))
    }

    pub(crate) fn treat_as_secret(&self, value: &str) {
        if let Some(j) = &self.0 {
            j.treat_as_secret(value);
        }
    }

    pub(crate) async fn record(&self, fact: &Fact) -> Result<(), JournalError> {
        match &self.0 {
            Some(j) => j.record(fact).await,
            None => Ok(()),
        }
    }
}

impl fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "JournalHandle(Some)"
        } else {
            "JournalHandle(None)"
        })
    }
}
