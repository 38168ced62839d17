//! The event stream: every fact of the run, as it happens, to whoever displays it.
//!
//! The executor never prints. It sends [`Event`]s (sluice-model's [`Fact`] with a sequence number
//! and a time) over a channel; whoever holds the receiving end decides what to do with them (the
//! CLI's monitor drives the terminal display and the JSON Lines output). Facts that must be
//! durable go through the journal first ([`crate::journal`]); the event is the same value. Every
//! event carries no secret: commands are the redacted text and captured output has every secret
//! value replaced before the fact is built. The wire format is documented in
//! `docs/json-events.md`.

use std::sync::{Arc, Mutex};

use sluice_model::{Decision, DecisionTaken, Event, Fact};
use tokio::sync::mpsc;

/// Consumes events (display, JSON Lines). Called in stream order.
pub trait EventSink: Send {
    fn handle(&mut self, event: &Event);
}

/// The sending end: numbers and timestamps events, never blocks.
#[derive(Clone)]
pub struct Emitter {
    tx: mpsc::UnboundedSender<Event>,
    /// The last sequence number sent. Numbering and sending happen under this one lock, so
    /// events from tasks on different threads arrive in the order of their numbers.
    seq: Arc<Mutex<u64>>,
    run_id: Arc<str>,
}

impl Emitter {
    pub fn new(run_id: &str, tx: mpsc::UnboundedSender<Event>) -> Self {
        Emitter {
            tx,
            seq: Arc::new(Mutex::new(0)),
            run_id: run_id.into(),
        }
    }

    pub fn emit(&self, fact: Fact) {
        // A panic elsewhere while holding the lock leaves a valid counter: carry on with it.
        let mut last = self
            .seq
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *last += 1;
        // A receiver that went away (the display ended early) must not stop the rollout.
        let _ = self.tx.send(Event {
            seq: *last,
            at: jiff::Timestamp::now(),
            run: self.run_id.to_string(),
            fact,
        });
    }

    /// The fact of a decision, not sent anywhere yet.
    pub fn decision_fact(
        decision: Decision,
        wave: Option<&str>,
        reason: impl Into<String>,
    ) -> Fact {
        Fact::Decision(DecisionTaken {
            decision,
            wave: wave.map(str::to_string),
            reason: reason.into(),
        })
    }

    /// Emits a decision without recording it (the journal records through
    /// [`crate::run::RunContext::note`]).
    pub fn decision(&self, decision: Decision, wave: Option<&str>, reason: impl Into<String>) {
        self.emit(Self::decision_fact(decision, wave, reason));
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Tasks on several threads emit at once; the receiver sees 1, 2, 3, ... in order (a
    /// counter bumped apart from the send let a later number overtake an earlier one).
    #[test]
    fn events_from_many_threads_arrive_in_sequence_order() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let emitter = Emitter::new("run", tx);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let emitter = emitter.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        emitter.decision(Decision::Interrupt, None, "x");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut expected = 1;
        while let Ok(event) = rx.try_recv() {
            assert_eq!(event.seq, expected);
            expected += 1;
        }
        assert_eq!(expected, 16_001);
    }
}
