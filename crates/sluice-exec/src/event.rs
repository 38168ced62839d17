//! The typed event stream: everything the executor does, as data.
//!
//! The executor never prints. It sends [`Event`]s over a channel; whoever holds the receiving end
//! decides what to do with them (the CLI's monitor drives the terminal display and the JSON Lines
//! output; the audit store will be one more [`EventSink`]). Every event is serde-serializable
//! and carries no secret: commands are the redacted text and captured output has every secret
//! value replaced before the event is built. The wire format is documented in
//! `docs/json-events.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::report::{HostOutcome, RollbackOutcome, RunStatus, StepStatus, WaveStatus};

/// One thing that happened during a run.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Position in the run's stream, from 1, without gaps.
    pub seq: u64,
    /// Wall-clock time the event was emitted.
    pub at: jiff::Timestamp,
    pub run_id: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialized with an `"event"` tag in snake_case.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        plan: String,
        plan_hash: String,
        waves: usize,
        hosts: usize,
    },
    /// A choice the executor made that changes what runs: a budget spent, a wave not started,
    /// the window ignored, a rollback chosen. `decision` is a stable snake_case name.
    Decision {
        decision: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        wave: Option<String>,
    },
    WaveStarted {
        wave: String,
        index: usize,
        hosts: Vec<String>,
        concurrency: usize,
        max_failed: usize,
    },
    WaveFinished {
        wave: String,
        index: usize,
        status: WaveStatus,
        ok: usize,
        failed: usize,
        not_started: usize,
        duration_ms: u64,
    },
    HostStarted {
        wave: String,
        host: String,
    },
    HostFinished {
        wave: String,
        host: String,
        outcome: HostOutcome,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    StepStarted {
        host: String,
        step: String,
        /// The command as it may be shown: secrets are `***`.
        command: String,
        attempt: u32,
    },
    StepFinished {
        host: String,
        step: String,
        status: StepStatus,
        /// `exit 0`, `exit 3`, `killed by SIGTERM`, `timed out`, or the transport error.
        detail: String,
        attempt: u32,
        duration_ms: u64,
        /// First lines of stderr then stdout, only when the step did not succeed.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        output: Vec<String>,
    },
    StepRetrying {
        host: String,
        step: String,
        next_attempt: u32,
        delay_ms: u64,
    },
    HealthChecked {
        host: String,
        check: String,
        passed: bool,
        round: u32,
        detail: String,
    },
    RollbackStarted {
        wave: String,
        hosts: Vec<String>,
    },
    UndoStarted {
        host: String,
        step: String,
        command: String,
    },
    UndoFinished {
        host: String,
        step: String,
        ok: bool,
        detail: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        output: Vec<String>,
    },
    HostRolledBack {
        wave: String,
        host: String,
        outcome: RollbackOutcome,
    },
    RollbackFinished {
        wave: String,
        rolled_back: usize,
        failed: usize,
    },
    PauseStarted {
        after_wave: String,
        duration_ms: u64,
    },
    PauseFinished {
        after_wave: String,
    },
    ApprovalWaiting {
        wave: String,
    },
    ApprovalGiven {
        wave: String,
        by: String,
    },
    ApprovalRefused {
        wave: String,
        by: String,
    },
    RunFinished {
        status: RunStatus,
        duration_ms: u64,
    },
}

/// Consumes events (display, JSON Lines, audit store). Called in stream order.
pub trait EventSink: Send {
    fn handle(&mut self, event: &Event);
}

/// The executor's sending end: numbers and timestamps events, never blocks.
#[derive(Clone)]
pub struct Emitter {
    tx: mpsc::UnboundedSender<Event>,
    seq: Arc<AtomicU64>,
    run_id: Arc<str>,
}

impl Emitter {
    pub fn new(run_id: &str, tx: mpsc::UnboundedSender<Event>) -> Self {
        Emitter {
            tx,
            seq: Arc::new(AtomicU64::new(0)),
            run_id: run_id.into(),
        }
    }

    pub fn emit(&self, kind: EventKind) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        // A receiver that went away (the display ended early) must not stop the rollout.
        let _ = self.tx.send(Event {
            seq,
            at: jiff::Timestamp::now(),
            run_id: self.run_id.to_string(),
            kind,
        });
    }

    pub fn decision(&self, decision: &str, wave: Option<&str>, reason: impl Into<String>) {
        self.emit(EventKind::Decision {
            decision: decision.into(),
            reason: reason.into(),
            wave: wave.map(str::to_string),
        });
    }
}

impl Emitter {
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}
