//! The monitor: the one task that shows a run while it happens.
//!
//! As in colmena, the executor never draws: it sends events over a channel and this monitor,
//! which owns the display for the whole run, turns them into output. Three renderings:
//! - bars (stdout and stderr are terminals): indicatif with an overall bar, a bar per running
//!   wave and a line per active host showing its current step; notable events are printed above
//!   the bars;
//! - plain (not a terminal): one line per event, for logs and CI;
//! - JSON Lines (`--json`): each event as one JSON object on stdout (docs/json-events.md).
//!
//! While bars are live, indicatif owns stderr, so lines go through `MultiProgress::println`
//! instead of the [`Console`]; everything else is written through the console.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_exec::{Event, EventKind, EventSink, HostOutcome};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::console::{Console, Paint, Verbosity};
use crate::summary::name;

/// How the run is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    Json,
    Quiet,
}

impl Mode {
    pub fn choose(console: &Console, json: bool) -> Mode {
        if json {
            Mode::Json
        } else if console.verbosity() == Verbosity::Quiet {
            Mode::Quiet
        } else if console.is_interactive() && std::io::stdout().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

/// Owns the display of one run.
pub struct Monitor<'c> {
    console: &'c Console,
    mode: Mode,
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    waves: HashMap<String, ProgressBar>,
    hosts: HashMap<String, ProgressBar>,
    pause: Option<(ProgressBar, Instant, Duration, String)>,
    /// Further consumers of the same stream (the audit store), fed before the display.
    sinks: Vec<Box<dyn EventSink + 'c>>,
}

impl<'c> Monitor<'c> {
    pub fn new(console: &'c Console, mode: Mode) -> Self {
        let multi = if mode == Mode::Bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Monitor {
            console,
            mode,
            multi,
            overall: None,
            waves: HashMap::new(),
            hosts: HashMap::new(),
            pause: None,
            sinks: Vec::new(),
        }
    }

    /// Adds a consumer that sees every event, in order, before it is displayed.
    #[allow(dead_code)] // The audit store's sink plugs in here.
    pub fn with_sink(mut self, sink: Box<dyn EventSink + 'c>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The bars' owner, so a prompt can suspend them while it asks.
    pub fn multi(&self) -> MultiProgress {
        self.multi.clone()
    }

    /// Shows events until the run finishes (or every sender is gone).
    pub async fn run(mut self, mut events: UnboundedReceiver<Event>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    None => break,
                    Some(event) => {
                        let last = matches!(event.kind, EventKind::RunFinished { .. });
                        for sink in &mut self.sinks {
                            sink.handle(&event);
                        }
                        self.handle(&event);
                        if last {
                            break;
                        }
                    }
                },
                _ = tick.tick() => self.countdown(),
            }
        }
        let _ = self.multi.clear();
    }

    fn countdown(&self) {
        if let Some((bar, started, total, wave)) = &self.pause {
            let left = total.saturating_sub(started.elapsed());
            bar.set_message(format!("soak after {wave}: {} left", clock(left)));
        }
    }

    fn line(&self, verb: &str, message: &str, bad: bool) {
        let paint = if bad { Paint::Error } else { Paint::Status };
        let line = format!(
            "{} {message}",
            self.console.paint(paint, &format!("{verb:>12}"))
        );
        if self.mode == Mode::Bars {
            let _ = self.multi.println(line);
        } else {
            self.console.text(format!("{line}\n"));
        }
    }

    fn bars(&mut self, kind: &EventKind) {
        match kind {
            EventKind::RunStarted { hosts, .. } => {
                let bar = self.multi.add(ProgressBar::new(*hosts as u64));
                bar.set_style(style(
                    "{prefix:>12.bold} [{bar:40}] {pos}/{len} hosts  {elapsed}",
                ));
                bar.set_prefix("Overall");
                self.overall = Some(bar);
            }
            EventKind::WaveStarted { wave, hosts, .. } => {
                let bar = self.multi.add(ProgressBar::new(hosts.len() as u64));
                bar.set_style(style("{prefix:>12.bold} [{bar:40}] {pos}/{len} {msg}"));
                bar.set_prefix(wave.clone());
                self.waves.insert(wave.clone(), bar);
            }
            EventKind::HostStarted { host, .. } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{spinner:>12} {prefix:.bold} {wide_msg}"));
                bar.set_prefix(host.clone());
                bar.set_message("connecting");
                bar.enable_steady_tick(Duration::from_millis(120));
                self.hosts.insert(host.clone(), bar);
            }
            EventKind::StepStarted {
                host,
                step,
                command,
                ..
            } => {
                if let Some(bar) = self.hosts.get(host) {
                    bar.set_message(format!("{step}: {command}"));
                }
            }
            EventKind::HealthChecked {
                host, check, round, ..
            } => {
                if let Some(bar) = self.hosts.get(host) {
                    bar.set_message(format!("health {check} (round {round})"));
                }
            }
            EventKind::HostFinished { wave, host, .. } => {
                if let Some(bar) = self.hosts.remove(host) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(bar) = self.waves.get(wave) {
                    bar.inc(1);
                }
                if let Some(bar) = &self.overall {
                    bar.inc(1);
                }
            }
            EventKind::WaveFinished { wave, status, .. } => {
                if let Some(bar) = self.waves.remove(wave) {
                    bar.finish_with_message(name(status));
                }
            }
            EventKind::PauseStarted {
                after_wave,
                duration_ms,
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{spinner:>12} {wide_msg}"));
                bar.enable_steady_tick(Duration::from_millis(250));
                self.pause = Some((
                    bar,
                    Instant::now(),
                    Duration::from_millis(*duration_ms),
                    after_wave.clone(),
                ));
                self.countdown();
            }
            EventKind::PauseFinished { .. } => {
                if let Some((bar, ..)) = self.pause.take() {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            EventKind::RunFinished { .. } => {
                // Keep the count where it stopped: hosts of waves that never started are not done.
                if let Some(bar) = self.overall.take() {
                    bar.abandon();
                }
            }
            _ => {}
        }
    }
}

impl EventSink for Monitor<'_> {
    fn handle(&mut self, event: &Event) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => match serde_json::to_value(event) {
                Ok(value) => self.console.json_line(&value),
                Err(e) => self
                    .console
                    .error(format!("cannot encode event {}: {e}", event.seq)),
            },
            Mode::Plain | Mode::Bars => {
                if self.mode == Mode::Bars {
                    self.bars(&event.kind);
                }
                let verbose = self.console.verbosity() == Verbosity::Verbose;
                if let Some((verb, message, bad)) = describe(&event.kind, self.mode, verbose) {
                    self.line(verb, &message, bad);
                }
            }
        }
    }
}

pub(crate) fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// `1m05s`, `42s`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn ms(ms: u64) -> String {
    clock(Duration::from_millis(ms))
}

/// The human line for an event: (verb, message, is it bad news). With bars, step-level events
/// are shown on the host's line instead, unless `-v`.
fn describe(kind: &EventKind, mode: Mode, verbose: bool) -> Option<(&'static str, String, bool)> {
    let detailed = mode == Mode::Plain || verbose;
    Some(match kind {
        EventKind::RunStarted {
            plan,
            plan_hash,
            waves,
            hosts,
        } => (
            "Running",
            format!(
                "{plan} (plan {}) on {hosts} hosts in {waves} waves",
                short(plan_hash)
            ),
            false,
        ),
        EventKind::Decision {
            decision,
            reason,
            wave,
        } => (
            "Decision",
            match wave {
                Some(w) => format!("{decision} [{w}]: {reason}"),
                None => format!("{decision}: {reason}"),
            },
            decision != "continue",
        ),
        EventKind::WaveStarted {
            wave,
            hosts,
            concurrency,
            max_failed,
            ..
        } => (
            "Wave",
            format!(
                "{wave}: {} hosts, {concurrency} at a time, max_failed {max_failed}",
                hosts.len()
            ),
            false,
        ),
        EventKind::WaveFinished {
            wave,
            status,
            ok,
            failed,
            not_started,
            duration_ms,
            ..
        } => (
            "Wave",
            format!(
                "{wave} {}: {ok} ok, {failed} failed, {not_started} not started in {}",
                name(status),
                ms(*duration_ms)
            ),
            *failed > 0,
        ),
        EventKind::HostStarted { host, wave } if detailed => {
            ("Host", format!("{host} started ({wave})"), false)
        }
        EventKind::HostFinished {
            host,
            outcome,
            duration_ms,
            error,
            ..
        } => {
            let bad = *outcome != HostOutcome::Ok;
            let what = match error {
                Some(e) => format!("{host}: {} after {}: {e}", name(outcome), ms(*duration_ms)),
                None => format!("{host}: {} in {}", name(outcome), ms(*duration_ms)),
            };
            (if bad { "Failed" } else { "Ok" }, what, bad)
        }
        EventKind::StepStarted {
            host,
            step,
            command,
            attempt,
        } if detailed => {
            let again = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            ("Step", format!("{host} {step}{again}: {command}"), false)
        }
        EventKind::StepFinished {
            host,
            step,
            status,
            detail,
            output,
            ..
        } if detailed => {
            let mut text = format!("{host} {step}: {} ({detail})", name(status));
            for line in output {
                text.push_str(&format!("\n{:>12} | {line}", ""));
            }
            (
                "Step",
                text,
                !matches!(
                    status,
                    sluice_exec::StepStatus::Ok | sluice_exec::StepStatus::Skipped
                ),
            )
        }
        EventKind::StepRetrying {
            host,
            step,
            next_attempt,
            delay_ms,
        } => (
            "Retry",
            format!("{host} {step}: attempt {next_attempt} in {}", ms(*delay_ms)),
            true,
        ),
        EventKind::HealthChecked {
            host,
            check,
            passed,
            round,
            detail,
        } if detailed || !passed => (
            "Health",
            format!(
                "{host} {check} round {round}: {} ({detail})",
                if *passed { "passed" } else { "failed" }
            ),
            !passed,
        ),
        EventKind::RollbackStarted { wave, hosts } => (
            "Rollback",
            format!(
                "wave {wave}: undoing {} host(s): {}",
                hosts.len(),
                hosts.join(", ")
            ),
            true,
        ),
        EventKind::UndoStarted {
            host,
            step,
            command,
        } => ("Undo", format!("{host} {step}: {command}"), false),
        EventKind::UndoFinished {
            host,
            step,
            ok,
            detail,
            output,
        } => {
            let mut text = format!(
                "{host} {step}: {} ({detail})",
                if *ok { "undone" } else { "UNDO FAILED" }
            );
            for line in output {
                text.push_str(&format!("\n{:>12} | {line}", ""));
            }
            ("Undo", text, !ok)
        }
        EventKind::HostRolledBack { host, outcome, .. } => (
            "Rollback",
            format!(
                "{host}: {}",
                match outcome {
                    sluice_exec::RollbackOutcome::RolledBack => "rolled back",
                    sluice_exec::RollbackOutcome::RollbackFailed =>
                        "ROLLBACK FAILED: needs attention",
                }
            ),
            *outcome != sluice_exec::RollbackOutcome::RolledBack,
        ),
        EventKind::RollbackFinished {
            wave,
            rolled_back,
            failed,
        } => (
            "Rollback",
            format!("wave {wave}: {rolled_back} rolled back, {failed} failed"),
            *failed > 0,
        ),
        EventKind::PauseStarted {
            after_wave,
            duration_ms,
        } => (
            "Pause",
            format!("soaking {} after {after_wave}", ms(*duration_ms)),
            false,
        ),
        EventKind::PauseFinished { .. } if detailed => ("Pause", "soak time over".into(), false),
        EventKind::ApprovalWaiting { wave } => {
            ("Approval", format!("wave {wave} waits for approval"), false)
        }
        EventKind::ApprovalGiven { wave, by } => {
            ("Approval", format!("wave {wave} approved by {by}"), false)
        }
        EventKind::ApprovalRefused { wave, by } => {
            ("Approval", format!("wave {wave} refused by {by}"), true)
        }
        EventKind::RunFinished {
            status,
            duration_ms,
        } => (
            "Finished",
            format!("{} in {}", name(status), ms(*duration_ms)),
            *status != sluice_exec::RunStatus::Applied,
        ),
        _ => return None,
    })
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
