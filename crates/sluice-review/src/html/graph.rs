//! Drawings: the waves as a flow of boxes (HTML that wraps on a narrow screen), and the step
//! graph and the stage graph as inline SVG drawn by [`super::layout`].
//!
//! A step's layer is the longest chain of `after` before it (`run_once` steps first, in layers
//! of their own); a stage's layer is the longest chain of stages it waits for.

use std::collections::HashMap;
use std::fmt::Write;

use super::esc;
use super::layout::{self, Drawing, GraphEdge, GraphNode};
use crate::hosts::count;
use crate::model::*;
use crate::phrases::{self, format_duration_ms as duration};

/// The waves in order, with the approval gates and pauses between them.
pub fn waves(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(o, "<ol class=\"flow\" aria-label=\"Waves in order\">")?;
    for (i, w) in r.waves.iter().enumerate() {
        // Between two waves: the pause after the first, the approval before the second, or a
        // plain arrow when there is neither.
        let pause = i
            .checked_sub(1)
            .and_then(|p| r.waves[p].pause_ms)
            .filter(|ms| *ms > 0);
        if let Some(ms) = pause {
            writeln!(o, "<li class=\"gate pause\">pause {}</li>", duration(ms))?;
        }
        if w.approval {
            writeln!(o, "<li class=\"gate\">approval</li>")?;
        } else if i > 0 && pause.is_none() {
            writeln!(o, "<li class=\"arrow\" aria-hidden=\"true\">→</li>")?;
        }
        writeln!(
            o,
            "<li class=\"box\"><strong>{}. {}</strong><span>{}, {} at once</span>\
             <span>tolerates {}</span></li>",
            w.number,
            esc(&w.name),
            count(w.hosts.len()),
            w.concurrency,
            w.max_failed
        )?;
    }
    writeln!(o, "</ol>")
}

/// The second line of a step's box.
fn caption(s: &StepView) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &s.run_once_on {
        parts.push(format!("once on {h}"));
    }
    if let Some(u) = &s.become_user {
        parts.push(format!("as {u}"));
    }
    parts.push(
        match (&s.undo, &s.register) {
            (Some(_), _) => "has undo",
            (None, Some(_)) => "reads only",
            (None, None) => "no undo",
        }
        .to_string(),
    );
    parts.join(" · ")
}

/// Longest chain of `after` before each step; `run_once` steps come first.
fn layers(steps: &[StepView]) -> Vec<usize> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut layer = vec![0usize; steps.len()];
    // `steps` is in execution order, so every dependency is placed before its dependents.
    for (i, s) in steps.iter().enumerate() {
        layer[i] = s
            .after
            .iter()
            .filter_map(|a| index.get(a.as_str()))
            .map(|&d| layer[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let once_layers = steps
        .iter()
        .zip(&layer)
        .filter(|(s, _)| s.run_once_on.is_some())
        .map(|(_, l)| l + 1)
        .max()
        .unwrap_or(0);
    for (s, l) in steps.iter().zip(layer.iter_mut()) {
        if s.run_once_on.is_none() {
            *l += once_layers;
        }
    }
    layer
}

pub fn steps(r: &Review, o: &mut String) -> std::fmt::Result {
    if r.steps.is_empty() {
        return Ok(());
    }
    let layer = layers(&r.steps);
    let nodes = r
        .steps
        .iter()
        .zip(&layer)
        .map(|(s, &l)| GraphNode {
            title: s.id.clone(),
            captions: vec![caption(s)],
            class: match (&s.undo, &s.register, &s.run_once_on) {
                (_, _, Some(_)) => "node once",
                (None, None, _) => "node risky",
                _ => "node",
            },
            layer: l,
        })
        .collect();
    write!(o, "<figure class=\"graph\">")?;
    layout::draw(
        o,
        &Drawing {
            id: "steps",
            title: "Step graph: each arrow points from a step to a step that runs after it",
            nodes,
            edges: step_edges(&r.steps),
        },
    )?;
    writeln!(
        o,
        "<figcaption>Solid arrows: \"runs after\" on the same host. Dashed: run-once \
         steps finish before any host starts. Amber boxes have no undo.</figcaption></figure>"
    )
}

/// One edge per `after`; host steps without `after` also wait for the run_once steps no
/// other step waits for (dashed).
fn step_edges(steps: &[StepView]) -> Vec<GraphEdge> {
    let position: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    for (to, n) in steps.iter().enumerate() {
        edges.extend(
            n.after
                .iter()
                .filter_map(|a| position.get(a.as_str()))
                .map(|&from| GraphEdge {
                    from,
                    to,
                    dashed: false,
                }),
        );
        // Host steps without `after` start once every run_once step is done.
        if n.run_once_on.is_none() && n.after.is_empty() {
            edges.extend(
                steps
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.run_once_on.is_some())
                    .filter(|(_, m)| !steps.iter().any(|k| k.after.contains(&m.id)))
                    .map(|(from, _)| GraphEdge {
                        from,
                        to,
                        dashed: true,
                    }),
            );
        }
    }
    edges
}

/// The stage graph: one box per stage (name, targets and host count, waves), one arrow per
/// `after`, a stage's layer the longest chain of stages before it.
pub fn stages(r: &Review, o: &mut String) -> std::fmt::Result {
    if r.stages.is_empty() {
        return Ok(());
    }
    write!(o, "<figure class=\"graph stage-graph\">")?;
    layout::draw(o, &stage_drawing(&r.stages))?;
    writeln!(
        o,
        "<figcaption>Each arrow points from a stage to a stage that waits for it: every host of \
         the first finishes before any host of the second starts. Stages side by side have no \
         order between them.</figcaption></figure>"
    )
}

fn stage_drawing(stages: &[StageView]) -> Drawing<'static> {
    let position: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut layer = vec![0usize; stages.len()];
    let mut edges = Vec::new();
    // Stages are in execution order: every stage comes after those it waits for.
    for (to, s) in stages.iter().enumerate() {
        for from in s.after.iter().filter_map(|a| position.get(a.as_str())) {
            layer[to] = layer[to].max(layer[*from] + 1);
            edges.push(GraphEdge {
                from: *from,
                to,
                dashed: false,
            });
        }
    }
    let nodes = stages
        .iter()
        .zip(layer)
        .map(|(s, layer)| GraphNode {
            title: format!("{}. {}", s.number, s.name),
            captions: vec![
                format!("{} · {}", s.targets.join(", "), count(s.hosts.len())),
                match s.waves.len() {
                    1 => "one wave".to_string(),
                    _ => phrases::stage_waves(&s.waves),
                },
            ],
            class: "node",
            layer,
        })
        .collect();
    Drawing {
        id: "stages",
        title: "Stage graph: each arrow points from a stage to a stage that waits for it",
        nodes,
        edges,
    }
}
