//! The waves section of `sluice show`: one line per wave with its decision, grouped under a
//! heading per stage (in the plan's stage order) when the run's plan has stages.

use sluice_model::{StageFinished, StageStarted, WaveDecided, WaveDecision, WaveStarted};

use crate::console::{Console, Paint, count};
use crate::event_line::ms;

/// What the records say about one stage: its start and its end, when recorded.
#[derive(Default)]
struct StageRecord {
    started: Option<StageStarted>,
    finished: Option<StageFinished>,
}

/// The wave lines of a run, per stage (`None`: a plan without stages), in the order first seen.
/// A line without a trailing line break is a wave that started with no decision recorded yet.
#[derive(Default)]
pub(super) struct WaveSection {
    groups: Vec<(Option<String>, Vec<String>)>,
    stages: Vec<(String, StageRecord)>,
}

impl WaveSection {
    fn lines(&mut self, stage: Option<&str>) -> &mut Vec<String> {
        let at = match self.groups.iter().position(|g| g.0.as_deref() == stage) {
            Some(at) => at,
            None => {
                self.groups.push((stage.map(str::to_string), Vec::new()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[at].1
    }

    fn stage(&mut self, name: &str) -> &mut StageRecord {
        let at = match self.stages.iter().position(|s| s.0 == name) {
            Some(at) => at,
            None => {
                self.stages.push((name.to_string(), StageRecord::default()));
                self.stages.len() - 1
            }
        };
        &mut self.stages[at].1
    }

    pub(super) fn wave_started(&mut self, w: &WaveStarted) {
        self.lines(w.stage.as_deref()).push(format!(
            "{:<12} {}, {} at a time",
            w.wave,
            count(w.hosts.len(), "host"),
            w.concurrency
        ));
    }

    /// The decision goes on the line of its wave's start when there is one (run_once has
    /// none). Stages run at the same time interleave their records, so the line is looked for
    /// among its own stage's waves.
    pub(super) fn wave_decided(&mut self, w: &WaveDecided, console: &Console) {
        let lines = self.lines(w.stage.as_deref());
        let mut line = match lines.pop() {
            Some(open)
                if !open.ends_with('\n')
                    && open.split_whitespace().next() == Some(w.wave.as_str()) =>
            {
                format!("{open}: ")
            }
            other => {
                lines.extend(other);
                format!("{:<12} ", w.wave)
            }
        };
        line.push_str(&super::arithmetic(w));
        line.push('\n');
        lines.push(if w.decision == WaveDecision::Continue {
            line
        } else {
            console.paint(Paint::Bad, &line)
        });
    }

    pub(super) fn stage_started(&mut self, s: &StageStarted) {
        self.stage(&s.stage).started = Some(s.clone());
    }

    pub(super) fn stage_finished(&mut self, s: &StageFinished) {
        self.stage(&s.stage).finished = Some(s.clone());
    }

    /// The section's title and body: `waves` as before for a plan without stages; `stages`,
    /// each stage's heading then its waves, in `order` (the plan's stage order; stages it does
    /// not name follow in the order first seen) otherwise. Empty when no wave or stage ran.
    pub(super) fn render(mut self, order: &[String]) -> (&'static str, String) {
        let close = |lines: Vec<String>, indent: &str| -> String {
            lines
                .into_iter()
                .map(|l| {
                    if l.ends_with('\n') {
                        format!("{indent}{l}")
                    } else {
                        format!("{indent}{l}: no decision recorded\n")
                    }
                })
                .collect()
        };
        if self.stages.is_empty() {
            let lines = self.groups.into_iter().flat_map(|g| g.1).collect();
            return ("waves", close(lines, "  "));
        }
        let rank = |name: &str| order.iter().position(|o| o == name).unwrap_or(order.len());
        // A stable sort keeps the order first seen among stages the plan does not name.
        self.stages.sort_by_key(|s| rank(&s.0));
        let mut out = String::new();
        // Waves without a stage (none are expected in a plan with stages) come first.
        if let Some(at) = self.groups.iter().position(|g| g.0.is_none()) {
            out.push_str(&close(self.groups.remove(at).1, "  "));
        }
        for (name, record) in std::mem::take(&mut self.stages) {
            out.push_str(&format!("  {}\n", heading(&name, &record)));
            let at = self.groups.iter().position(|g| g.0.as_ref() == Some(&name));
            if let Some(at) = at {
                out.push_str(&close(self.groups.remove(at).1, "    "));
            }
        }
        for (_, lines) in self.groups {
            out.push_str(&close(lines, "  "));
        }
        ("stages", out)
    }
}

/// `app, after drain, 3 hosts (h2, h3, h4): ok (every wave ended ok) in 1.2s`.
fn heading(name: &str, record: &StageRecord) -> String {
    let mut line = format!("stage {name}");
    if let Some(s) = &record.started {
        if !s.after.is_empty() {
            line.push_str(&format!(", after {}", s.after.join(", ")));
        }
        line.push_str(&format!(
            ", {} ({})",
            count(s.hosts.len(), "host"),
            s.hosts.join(", ")
        ));
    }
    match &record.finished {
        Some(f) => line.push_str(&format!(
            ": {} ({}) in {}",
            f.status,
            f.reason,
            ms(f.duration_ms)
        )),
        None => line.push_str(": no end recorded"),
    }
    line
}
