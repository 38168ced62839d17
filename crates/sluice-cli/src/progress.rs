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
//!
//! No bar is ever dropped while it is part of the display: the monitor keeps every bar until it
//! takes it out itself ([`Monitor::close`]). indicatif turns a dropped bar into a "zombie" and,
//! when the next line is printed above the bars, counts the zombie's lines twice, so the cursor
//! went up past the bars and erased the last lines printed (the last wave's results and its
//! summary; tests/live_display.rs).

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_exec::EventSink;
use sluice_model::{Event, Fact};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::console::{Console, Paint, Verbosity};
use crate::event_line::{Line, lines};

/// The bars being drawn, if any: while they are, every other line must go above them.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Prints a human line on stderr, above the bars when a monitor draws them (log lines use this:
/// they may come from any thread at any time).
pub fn print_line(line: &str) {
    let bars = BARS.lock().ok().and_then(|b| b.clone());
    match bars {
        Some(multi) => {
            let _ = multi.println(line);
        }
        None => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

/// Routes [`print_line`] above `multi` until the guard is dropped.
pub struct BarsGuard;

impl BarsGuard {
    pub fn draw(multi: &MultiProgress) -> BarsGuard {
        if let Ok(mut bars) = BARS.lock() {
            *bars = Some(multi.clone());
        }
        BarsGuard
    }
}

impl Drop for BarsGuard {
    fn drop(&mut self) {
        if let Ok(mut bars) = BARS.lock() {
            *bars = None;
        }
    }
}

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
    /// Every wave's bar, finished or not, until the monitor closes.
    waves: HashMap<String, ProgressBar>,
    hosts: HashMap<String, ProgressBar>,
    pause: Option<Soak>,
    /// What the overall bar counts.
    tally: HostTally,
    /// Stop at `run_finished` (the Ctrl-C handler's sender outlives the run), unless the
    /// events come through a relay that closes the stream itself ([`Monitor::until_closed`]).
    stop_at_run_finished: bool,
    /// Log lines go above the bars while this monitor draws them.
    _bars: Option<BarsGuard>,
}

/// The countdown of a pause between waves.
struct Soak {
    bar: ProgressBar,
    started: Instant,
    total: Duration,
    after_wave: String,
}

impl<'c> Monitor<'c> {
    pub fn new(console: &'c Console, mode: Mode) -> Self {
        let multi = if mode == Mode::Bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        let bars = (mode == Mode::Bars).then(|| BarsGuard::draw(&multi));
        Monitor {
            console,
            mode,
            multi,
            overall: None,
            waves: HashMap::new(),
            hosts: HashMap::new(),
            pause: None,
            tally: HostTally::default(),
            stop_at_run_finished: true,
            _bars: bars,
        }
    }

    /// Shows events until the stream closes, `run_finished` included: for a relay (webhooks)
    /// that passes facts on after the run's end and then closes the stream.
    pub fn until_closed(mut self) -> Self {
        self.stop_at_run_finished = false;
        self
    }

    /// The overall bar counts `hosts` host ends: every host of every wave of the plan
    /// ([`HostTally`]), rather than the run's hosts.
    pub fn hosts_in_waves(mut self, hosts: u64) -> Self {
        self.tally.planned = Some(hosts);
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
                        self.handle(&event);
                        // Other senders (the Ctrl-C handler) outlive the run.
                        if self.stop_at_run_finished && matches!(event.fact, Fact::RunFinished(_)) {
                            break;
                        }
                    }
                },
                _ = tick.tick() => self.countdown(),
            }
        }
        self.close();
    }

    /// Takes every bar out of the display, then erases the lines the bars were drawn on (and only
    /// those: a bar taken out is never drawn again nor counted as a zombie).
    fn close(&mut self) {
        let bars = self
            .overall
            .take()
            .into_iter()
            .chain(self.waves.drain().map(|(_, bar)| bar))
            .chain(self.hosts.drain().map(|(_, bar)| bar))
            .chain(self.pause.take().map(|soak| soak.bar));
        for bar in bars {
            self.multi.remove(&bar);
        }
        let _ = self.multi.clear();
    }

    fn countdown(&self) {
        if let Some(soak) = &self.pause {
            let left = soak.total.saturating_sub(soak.started.elapsed());
            soak.bar.set_message(format!(
                "soak after {}: {} left",
                soak.after_wave,
                clock(left)
            ));
        }
    }

    fn line(&self, line: &Line) {
        let paint = if line.bad {
            Paint::Error
        } else {
            Paint::Status
        };
        let line = format!(
            "{} {}",
            self.console.paint(paint, &format!("{:>12}", line.verb)),
            line.message
        );
        if self.mode == Mode::Bars {
            let _ = self.multi.println(line);
        } else {
            self.console.text(format!("{line}\n"));
        }
    }

    fn bars(&mut self, fact: &Fact) {
        let counted = self.tally.on(fact);
        match fact {
            Fact::RunStarted(_) => {
                let bar = self.multi.add(ProgressBar::new(self.tally.total));
                bar.set_style(style(
                    "{prefix:>12.bold} [{bar:40}] {pos}/{len} hosts  {elapsed}",
                ));
                bar.set_prefix("Overall");
                self.overall = Some(bar);
            }
            Fact::WaveStarted(w) => {
                let bar = self.multi.add(ProgressBar::new(w.hosts.len() as u64));
                bar.set_style(style("{prefix:>12.bold} [{bar:40}] {pos}/{len} {msg}"));
                bar.set_prefix(w.wave.clone());
                self.waves.insert(w.wave.clone(), bar);
            }
            Fact::HostStarted(h) => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{spinner:>12} {prefix:.bold} {wide_msg}"));
                bar.set_prefix(h.host.clone());
                bar.set_message("connecting");
                bar.enable_steady_tick(Duration::from_millis(120));
                self.hosts.insert(h.host.clone(), bar);
            }
            Fact::StepIntent(i) => {
                if let Some(bar) = self.hosts.get(&i.host) {
                    let command = crate::visible::visible(&i.command).into_owned();
                    bar.set_message(format!("{}: {command}", i.step));
                }
            }
            Fact::HealthResult(h) => {
                if let Some(bar) = self.hosts.get(&h.host) {
                    bar.set_message(format!("health {} (round {})", h.check, h.round));
                }
            }
            Fact::HostFinished(h) => {
                if let Some(bar) = self.hosts.remove(&h.host) {
                    bar.finish_and_clear();
                    // Out of the display before it is dropped (see the module doc).
                    self.multi.remove(&bar);
                }
                if counted {
                    if let Some(bar) = self.waves.get(&h.wave) {
                        bar.inc(1);
                    }
                    if let Some(bar) = &self.overall {
                        bar.inc(1);
                    }
                }
            }
            Fact::WaveDecided(w) => {
                // Kept in `waves`: a bar dropped now would erase printed lines later.
                if let Some(bar) = self.waves.get(&w.wave) {
                    bar.finish_with_message(w.status.as_str());
                }
            }
            Fact::PauseStarted(p) => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style("{spinner:>12} {wide_msg}"));
                bar.enable_steady_tick(Duration::from_millis(250));
                self.pause = Some(Soak {
                    bar,
                    started: Instant::now(),
                    total: Duration::from_millis(p.duration_ms),
                    after_wave: p.after_wave.clone(),
                });
                self.countdown();
            }
            Fact::PauseFinished(_) => {
                if let Some(soak) = self.pause.take() {
                    soak.bar.finish_and_clear();
                    self.multi.remove(&soak.bar);
                }
            }
            Fact::RunFinished(_) => {
                // Keep the count where it stopped: hosts of waves that never started are not done.
                if let Some(bar) = &self.overall {
                    bar.abandon();
                }
            }
            _ => {}
        }
    }
}

/// The overall bar's arithmetic: hosts' ends in the plan's waves, out of every host of every
/// wave (a host in several stages once per stage). The `host_finished` of the `run_once`
/// pseudo-wave is not one: a worker records it at the end of every `run_once` task, and one
/// process for a host it cannot reach; the host's waves are still to come, and a host that
/// `delegate:` names outside the targets has none (it is among the run's hosts, which the
/// count therefore does not use when the monitor knows the plan's waves).
#[derive(Debug, Default)]
struct HostTally {
    /// Every host of every wave, when the monitor was told ([`Monitor::hosts_in_waves`]).
    planned: Option<u64>,
    total: u64,
    done: u64,
    /// The waves seen starting: only a host's end in one of them counts.
    waves: HashSet<String>,
}

impl HostTally {
    /// Takes `fact` into account; `true` when it is a host's end that counts.
    fn on(&mut self, fact: &Fact) -> bool {
        match fact {
            Fact::RunStarted(started) => {
                self.total = self.planned.unwrap_or(started.hosts.len() as u64);
                false
            }
            Fact::WaveStarted(w) => {
                self.waves.insert(w.wave.clone());
                false
            }
            Fact::HostFinished(h) if self.waves.contains(&h.wave) => {
                self.done += 1;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Monitor<'_> {
    /// A monitor dropped before its run finished (an error while starting) leaves no bar behind.
    fn drop(&mut self) {
        self.close();
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
                    self.bars(&event.fact);
                }
                let detailed =
                    self.mode == Mode::Plain || self.console.verbosity() == Verbosity::Verbose;
                for line in lines(&event.fact, detailed) {
                    self.line(&line);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;
    use sluice_model::Fact;

    use super::HostTally;

    fn fact(value: serde_json::Value) -> Fact {
        serde_json::from_value(value).unwrap()
    }

    fn run_started(hosts: &[&str]) -> Fact {
        fact(json!({
            "kind": "run_started", "run_kind": "apply", "operator": "op", "controller": "c",
            "sluice_version": "0", "plan_name": "p", "ticket": null, "plan_hash": "h",
            "command_line": [], "hosts": hosts, "waves": ["all"]
        }))
    }

    fn wave_started(hosts: &[&str]) -> Fact {
        fact(json!({
            "kind": "wave_started", "wave": "all", "index": 0, "hosts": hosts,
            "concurrency": 2, "budget": "0", "max_failed": 0
        }))
    }

    fn host_finished(wave: &str, host: &str) -> Fact {
        fact(json!({
            "kind": "host_finished", "wave": wave, "host": host, "outcome": "ok",
            "duration_ms": 1, "error": null
        }))
    }

    /// Feeds `facts` to a tally told the plan's waves hold `planned` hosts; checks that the
    /// count never passes its end and ends there.
    fn check(planned: u64, facts: &[Fact]) {
        let mut tally = HostTally {
            planned: Some(planned),
            ..HostTally::default()
        };
        for fact in facts {
            tally.on(fact);
            assert!(
                tally.done <= tally.total,
                "{}/{} after {fact:?}",
                tally.done,
                tally.total
            );
        }
        assert_eq!((tally.done, tally.total), (planned, planned));
    }

    /// A `run_once` step with `delegate: db` (not a target): `db` is among the run's (leased)
    /// hosts but in no wave.
    #[test]
    fn a_host_delegated_outside_the_targets_is_not_waited_for() {
        // In one process the run_once steps end without a `host_finished`.
        check(
            2,
            &[
                run_started(&["web1", "web2", "db"]),
                wave_started(&["web1", "web2"]),
                host_finished("all", "web1"),
                host_finished("all", "web2"),
            ],
        );
    }

    /// `delegate: web2` (a target): under `--workers` its run_once task ends with a
    /// `host_finished` of the pseudo-wave, which is not a host done.
    #[test]
    fn the_end_of_a_delegated_run_once_task_on_a_worker_is_not_a_host_done() {
        check(
            2,
            &[
                run_started(&["web1", "web2"]),
                host_finished("run-once", "web2"),
                wave_started(&["web1", "web2"]),
                host_finished("all", "web1"),
                host_finished("all", "web2"),
            ],
        );
    }
}
