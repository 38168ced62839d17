//! The generated part of docs/json-events.md: one table per vocabulary enum, listing every value
//! with its meaning. A test (tests/docs.rs) fails when the document's copy differs, and
//! `SLUICE_BLESS=1 cargo test -p sluice-model --test docs` rewrites it.

use crate::status::{
    ApprovalHow, BackupPhase, ConnectErrorKind, Decision, ExecResult, HostOutcome, ProbeKind,
    RollbackOutcome, RunKind, RunProgress, RunStatus, StepStatus, UnknownChoice, WaveDecision,
    WaveStatus, WorkerTask,
};
use crate::status::{CheckVerdict, ConfirmOutcome, ConfirmTimer, NotifyEvent};

/// A closed vocabulary: its name and every value with its meaning.
pub trait Vocabulary {
    const NAME: &'static str;
    fn values() -> Vec<(&'static str, &'static str)>;
}

/// Marks the start of the generated section in docs/json-events.md.
pub const BEGIN: &str = "<!-- generated: vocabulary (sluice-model/src/reference.rs) -->";
/// Marks its end.
pub const END: &str = "<!-- end generated: vocabulary -->";

fn table<V: Vocabulary>(out: &mut String) {
    out.push_str(&format!(
        "\n#### `{}`\n\n| value | meaning |\n|---|---|\n",
        V::NAME
    ));
    for (value, meaning) in V::values() {
        out.push_str(&format!(
            "| `{value}` | {} |\n",
            meaning.replace('|', "\\|")
        ));
    }
}

/// The tables, between [`BEGIN`] and [`END`].
pub fn vocabulary_tables() -> String {
    let mut out = String::from(BEGIN);
    out.push('\n');
    table::<RunKind>(&mut out);
    table::<RunStatus>(&mut out);
    table::<RunProgress>(&mut out);
    table::<WaveStatus>(&mut out);
    table::<WaveDecision>(&mut out);
    table::<HostOutcome>(&mut out);
    table::<StepStatus>(&mut out);
    table::<RollbackOutcome>(&mut out);
    table::<ConfirmOutcome>(&mut out);
    table::<ConfirmTimer>(&mut out);
    table::<Decision>(&mut out);
    table::<ProbeKind>(&mut out);
    table::<ApprovalHow>(&mut out);
    table::<UnknownChoice>(&mut out);
    table::<ConnectErrorKind>(&mut out);
    table::<ExecResult>(&mut out);
    table::<CheckVerdict>(&mut out);
    table::<NotifyEvent>(&mut out);
    table::<BackupPhase>(&mut out);
    table::<WorkerTask>(&mut out);
    out.push('\n');
    out.push_str(END);
    out
}

/// Every value of every vocabulary, for checks that a text names them all.
pub fn all_values() -> Vec<(&'static str, &'static str)> {
    fn named<V: Vocabulary>(out: &mut Vec<(&'static str, &'static str)>) {
        out.extend(V::values().into_iter().map(|(v, _)| (V::NAME, v)));
    }
    let mut out = Vec::new();
    named::<RunKind>(&mut out);
    named::<RunStatus>(&mut out);
    named::<RunProgress>(&mut out);
    named::<WaveStatus>(&mut out);
    named::<WaveDecision>(&mut out);
    named::<HostOutcome>(&mut out);
    named::<StepStatus>(&mut out);
    named::<RollbackOutcome>(&mut out);
    named::<ConfirmOutcome>(&mut out);
    named::<ConfirmTimer>(&mut out);
    named::<Decision>(&mut out);
    named::<ProbeKind>(&mut out);
    named::<ApprovalHow>(&mut out);
    named::<UnknownChoice>(&mut out);
    named::<ConnectErrorKind>(&mut out);
    named::<ExecResult>(&mut out);
    named::<CheckVerdict>(&mut out);
    named::<NotifyEvent>(&mut out);
    named::<BackupPhase>(&mut out);
    named::<WorkerTask>(&mut out);
    out
}
