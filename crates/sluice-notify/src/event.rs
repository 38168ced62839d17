//! Which facts are notified, as which [`NotifyEvent`], and the CloudEvents 1.0 payload
//! (structured mode: the envelope and `data` in one JSON body).

use sluice_model::{Decision, Fact, NotifyEvent, WaveStatus};

use crate::relay::RunInfo;

/// The CloudEvents `type` prefix: `io.sluice.run_finished`.
pub const TYPE_PREFIX: &str = "io.sluice.";

/// The content type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The event a fact is, if it is one.
pub fn event_of(fact: &Fact) -> Option<NotifyEvent> {
    match fact {
        Fact::ApprovalRequested(_) => Some(NotifyEvent::GateWaiting),
        Fact::WaveDecided(w) if w.status == WaveStatus::Failed || w.decision.is_failure() => {
            Some(NotifyEvent::WaveFailed)
        }
        Fact::RollbackStarted(_) => Some(NotifyEvent::RollbackStarted),
        Fact::RollbackFinished(r) if r.failed > 0 => Some(NotifyEvent::RollbackFailed),
        Fact::Decision(d) if d.decision == Decision::WindowClosed => {
            Some(NotifyEvent::WindowClosing)
        }
        Fact::RunFinished(_) => Some(NotifyEvent::RunFinished),
        _ => None,
    }
}

/// The CloudEvent of `fact` as `event`: `id` unique per run (`RUN-N`), `source` the run on this
/// controller, `subject` the plan, `data` the run, the plan and the fact as in `--json`.
pub fn cloud_event(run: &RunInfo, id: &str, event: NotifyEvent, fact: &Fact) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "type": format!("{TYPE_PREFIX}{event}"),
        "source": format!("sluice://{}/runs/{}", run.controller, run.run_id),
        "id": id,
        "time": jiff::Timestamp::now().to_string(),
        "subject": run.plan_name,
        "datacontenttype": "application/json",
        "data": {
            "run": run.run_id,
            "plan": run.plan_name,
            "plan_hash": run.plan_hash,
            "fact": fact,
        },
    })
}
