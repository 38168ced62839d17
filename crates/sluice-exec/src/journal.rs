//! The step journal hook: the executor awaits it before sending each command and after each
//! command ends, so a durable store (the audit trail) has committed the intent before the host
//! acts, and the result before the host's next step. Unlike events (fire-and-forget), the
//! executor waits for the journal.
//!
//! No journal ([`JournalHandle::none`], the default) costs nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A step about to be sent to a host. `command` is redacted (secrets are `***`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepIntentNote {
    pub host: String,
    pub step: String,
    pub command: String,
    /// 1 for the first try, 2 for the first retry...
    pub attempt: u32,
}

/// How one attempt of a step ended. `detail` is the event's detail (`exit 0`, `timed out`,
/// the transport error), already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResultNote {
    pub host: String,
    pub step: String,
    pub attempt: u32,
    pub ok: bool,
    /// The exit code, when the command ran to one.
    pub exit_code: Option<i32>,
    pub detail: String,
    pub duration_ms: u64,
    /// Captured stdout and stderr (head and tail up to the caps), secrets already `***`.
    pub stdout: CapturedNote,
    pub stderr: CapturedNote,
}

/// One captured stream of a step, redacted. `bytes` counts the whole stream as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedNote {
    pub head: String,
    pub tail: String,
    pub bytes: u64,
    /// sha256 (hex) of the whole stream as received.
    pub sha256: String,
    pub truncated: bool,
}

/// A boxed future, so journals can be used behind `dyn`. An `Err` is a journal that could not
/// record: the executor does not send a command whose intent was not recorded.
pub type JournalFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Records step intents and results durably; the executor awaits both.
pub trait Journal: Send + Sync {
    fn intent<'a>(&'a self, note: &'a StepIntentNote) -> JournalFuture<'a>;
    fn result<'a>(&'a self, note: &'a StepResultNote) -> JournalFuture<'a>;
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

    pub(crate) async fn intent(&self, note: StepIntentNote) -> Result<(), String> {
        match &self.0 {
            Some(j) => j.intent(&note).await,
            None => Ok(()),
        }
    }

    pub(crate) async fn result(&self, note: StepResultNote) -> Result<(), String> {
        match &self.0 {
            Some(j) => j.result(&note).await,
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
