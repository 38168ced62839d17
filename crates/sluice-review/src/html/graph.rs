//! Drawings: the waves as a flow of boxes (HTML that wraps on a narrow screen) and the step
//! graph as inline SVG, laid out top to bottom so it fits a phone as well as a desktop.
//!
//! Step graph layout: a step's layer is the longest chain of `after` before it (`run_once`
//! steps first, in layers of their own); steps of a layer stand side by side, centred. An edge
//! between adjacent layers is a straight curve; one that skips layers bows out to the right so
//! it does not cross the steps in between. Sizes are computed from the text (monospace, so
//! widths are known without a browser).

use std::collections::HashMap;
use std::fmt::Write;

use super::esc;
use crate::hosts::count;
use crate::model::*;
use crate::phrases::format_duration_ms as duration;

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

const CHAR_W: f64 = 7.8;
const SMALL_CHAR_W: f64 = 6.6;
const NODE_H: f64 = 46.0;
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 30.0;
const PAD: f64 = 12.0;
/// Room on the right for edges that skip layers.
const BOW: f64 = 56.0;

struct Node<'a> {
    step: &'a StepView,
    layer: usize,
    width: f64,
    x: f64,
    y: f64,
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
    let mut nodes: Vec<Node> = r
        .steps
        .iter()
        .zip(&layer)
        .map(|(s, &l)| {
            let text = (s.id.chars().count() as f64 * CHAR_W)
                .max(caption(s).chars().count() as f64 * SMALL_CHAR_W);
            Node {
                step: s,
                layer: l,
                width: (text + 2.0 * PAD).max(110.0),
                x: 0.0,
                y: 0.0,
            }
        })
        .collect();
    let layer_count = layer.iter().max().map_or(0, |m| m + 1);
    let row_width = |l: usize, nodes: &[Node]| -> f64 {
        let widths: Vec<f64> = nodes
            .iter()
            .filter(|n| n.layer == l)
            .map(|n| n.width)
            .collect();
        widths.iter().sum::<f64>() + GAP_X * (widths.len().saturating_sub(1)) as f64
    };
    let widest = (0..layer_count)
        .map(|l| row_width(l, &nodes))
        .fold(0.0, f64::max);
    for l in 0..layer_count {
        let mut x = PAD + (widest - row_width(l, &nodes)) / 2.0;
        for n in nodes.iter_mut().filter(|n| n.layer == l) {
            n.x = x;
            n.y = PAD + l as f64 * (NODE_H + GAP_Y);
            x += n.width + GAP_X;
        }
    }
    let width = widest + 2.0 * PAD + BOW;
    let height = layer_count as f64 * (NODE_H + GAP_Y) - GAP_Y + 2.0 * PAD;
    writeln!(
        o,
        "<figure class=\"graph\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" \
         aria-labelledby=\"graph-title\"><title id=\"graph-title\">Step graph: each arrow \
         points from a step to a step that runs after it</title>"
    )?;
    writeln!(
        o,
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" class=\"arrowhead\"/></marker></defs>"
    )?;
    write_edges(o, &nodes)?;
    for n in &nodes {
        let class = match (&n.step.undo, &n.step.register, &n.step.run_once_on) {
            (_, _, Some(_)) => "node once",
            (None, None, _) => "node risky",
            _ => "node",
        };
        writeln!(
            o,
            "<g class=\"{class}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{NODE_H}\" \
             rx=\"6\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"id\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"cap\">{}</text></g>",
            n.x,
            n.y,
            n.width,
            n.x + n.width / 2.0,
            n.y + 19.0,
            esc(&n.step.id),
            n.x + n.width / 2.0,
            n.y + 36.0,
            esc(&caption(n.step))
        )?;
    }
    writeln!(
        o,
        "</svg><figcaption>Solid arrows: \"runs after\" on the same host. Dashed: run-once \
         steps finish before any host starts. Amber boxes have no undo.</figcaption></figure>"
    )
}

fn write_edges(o: &mut String, nodes: &[Node]) -> std::fmt::Result {
    let position: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.step.id.as_str(), i))
        .collect();
    let mut bows: f64 = 0.0;
    for n in nodes {
        let mut from: Vec<(usize, bool)> = n
            .step
            .after
            .iter()
            .filter_map(|a| position.get(a.as_str()).map(|&i| (i, false)))
            .collect();
        // Host steps without `after` start once every run_once step is done.
        if n.step.run_once_on.is_none() && n.step.after.is_empty() {
            from.extend(
                nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.step.run_once_on.is_some())
                    .filter(|(_, m)| !nodes.iter().any(|k| k.step.after.contains(&m.step.id)))
                    .map(|(i, _)| (i, true)),
            );
        }
        for (i, dashed) in from {
            let s = &nodes[i];
            let class = if dashed { "edge once" } else { "edge" };
            let d = if n.layer == s.layer + 1 {
                let (x1, y1) = (s.x + s.width / 2.0, s.y + NODE_H);
                let (x2, y2) = (n.x + n.width / 2.0, n.y - 2.0);
                let mid = (y1 + y2) / 2.0;
                format!("M{x1:.1},{y1:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{y2:.1}")
            } else {
                // Around the steps in between, on the right.
                bows += 8.0;
                let (x1, y1) = (s.x + s.width, s.y + NODE_H / 2.0);
                let (x2, y2) = (n.x + n.width + 2.0, n.y + NODE_H / 2.0);
                let out = x1.max(x2) + 24.0 + bows.min(BOW - 24.0);
                format!("M{x1:.1},{y1:.1} C{out:.1},{y1:.1} {out:.1},{y2:.1} {x2:.1},{y2:.1}")
            };
            writeln!(
                o,
                "<path class=\"{class}\" d=\"{d}\" marker-end=\"url(#arrow)\"/>"
            )?;
        }
    }
    Ok(())
}
