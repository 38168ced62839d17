//! The verdicts a resume keeps: each host's health checks from their recorded results, and
//! which waves started and how they were decided.

use std::collections::{BTreeMap, BTreeSet};

use sluice_plan::PlanArtifact;

use super::Prior;
use super::trail::Seen;
use crate::resume::{HealthVerdict, WaveVerdict};
use crate::run::RUN_ONCE_WAVE;

impl Prior {
    /// Health verdicts of hosts whose checks were recorded: passed when every check's latest
    /// result passed; failed when a check flapped or failed more rounds than the policy allows;
    /// otherwise unknown (the checks run again).
    pub(super) fn read_health(
        &mut self,
        artifact: &PlanArtifact,
        scope: Option<&str>,
        health: &BTreeMap<String, Vec<(String, bool)>>,
    ) {
        let plans: Vec<&sluice_plan::HostPlan> = match scope {
            Some(host) => artifact.host(host).into_iter().collect(),
            None => artifact.hosts.iter().collect(),
        };
        for plan in plans {
            let Some(results) = health.get(&plan.name) else {
                continue;
            };
            let mut verdict = Some(HealthVerdict::Passed);
            for check in &plan.health {
                let runs: Vec<bool> = results
                    .iter()
                    .filter(|(name, _)| *name == check.name)
                    .map(|(_, ok)| *ok)
                    .collect();
                let flapped = runs.windows(2).any(|w| w[0] && !w[1]);
                let failures = runs.iter().filter(|ok| !**ok).count();
                if flapped || failures > artifact.health.retries as usize {
                    verdict = Some(HealthVerdict::Failed {
                        what: format!("health check {} failed", check.name),
                    });
                    break;
                }
                if runs.last() != Some(&true) {
                    verdict = None;
                }
            }
            if let Some(verdict) = verdict {
                self.state = std::mem::take(&mut self.state).health(&plan.name, verdict);
            }
        }
    }

    /// Waves that started (recorded, or a host of theirs has a step record) skip their gate; a
    /// wave before the last started one went on; recorded decisions stand.
    pub(super) fn read_waves(
        &mut self,
        artifact: &PlanArtifact,
        steps: &BTreeMap<(String, String), Seen>,
        mut started: BTreeSet<String>,
        decided: BTreeMap<String, WaveVerdict>,
    ) {
        // A host in several stages started a wave of a stage only with a step of that stage.
        let stage_of = |step: &str| artifact.step(step).and_then(|s| s.stage.clone());
        let touched: BTreeSet<(&str, Option<String>)> = steps
            .keys()
            .map(|(h, s)| (h.as_str(), stage_of(s)))
            .collect();
        for wave in &artifact.waves {
            if wave
                .hosts
                .iter()
                .any(|h| touched.contains(&(h.as_str(), wave.stage.clone())))
            {
                started.insert(wave.name.clone());
            }
        }
        let last = artifact
            .waves
            .iter()
            .rposition(|w| started.contains(&w.name));
        let mut state = std::mem::take(&mut self.state);
        if last.is_some() {
            state = state.verdict(RUN_ONCE_WAVE, WaveVerdict::WentOn);
        }
        // Each stage that started a wave went on past its run_once steps.
        for stage in &artifact.stages {
            let of_stage = |w: &&sluice_plan::WavePlan| w.stage.as_deref() == Some(&stage.name);
            if artifact
                .waves
                .iter()
                .filter(of_stage)
                .any(|w| started.contains(&w.name))
            {
                let name = format!("{}/{RUN_ONCE_WAVE}", stage.name);
                state = state.verdict(&name, WaveVerdict::WentOn);
            }
        }
        for (index, wave) in artifact.waves.iter().enumerate() {
            if started.contains(&wave.name) {
                state = state.started(&wave.name);
            }
            if let Some(verdict) = decided.get(&wave.name) {
                state = state.verdict(&wave.name, *verdict);
            } else if last.is_some_and(|last| index < last) {
                state = state.verdict(&wave.name, WaveVerdict::WentOn);
            }
        }
        self.state = state;
    }
}
