//! A layered drawing as inline SVG, shared by the step graph and the stage graph: boxes of one
//! or more lines of text stand in layers top to bottom, so a drawing fits a phone as well as a
//! desktop.
//!
//! The caller gives each box its layer (the longest chain of edges before it); boxes of a layer
//! stand side by side, centred. An edge between adjacent layers is a straight curve; one that
//! skips layers bows out to the right so it does not cross the boxes in between. Sizes are
//! computed from the text (monospace, so widths are known without a browser).

use std::fmt::Write;

use super::esc;

const CHAR_W: f64 = 7.8;
const SMALL_CHAR_W: f64 = 6.6;
/// A box with a title and one caption line; each further caption line adds `LINE_H`.
const NODE_H: f64 = 46.0;
const LINE_H: f64 = 15.0;
const GAP_X: f64 = 24.0;
const GAP_Y: f64 = 30.0;
const PAD: f64 = 12.0;
/// Room on the right for edges that skip layers.
const BOW: f64 = 56.0;

/// One box: a bold title, caption lines under it, a CSS class (`node`, `node risky`, …).
pub struct GraphNode {
    pub title: String,
    pub captions: Vec<String>,
    pub class: &'static str,
    pub layer: usize,
}

/// An arrow from box `from` to box `to` (indices into [`Drawing::nodes`]).
pub struct GraphEdge {
    pub from: usize,
    pub to: usize,
    pub dashed: bool,
}

/// What to draw, and the ids that keep two drawings on one page apart.
pub struct Drawing<'a> {
    /// Prefix of the SVG's element ids (its title and its arrowhead).
    pub id: &'a str,
    /// What the drawing shows, for a screen reader.
    pub title: &'a str,
    pub nodes: Vec<GraphNode>,
    /// In drawing order; edges that skip layers bow out further the later they come.
    pub edges: Vec<GraphEdge>,
}

/// Where a box stands.
struct Placed {
    width: f64,
    x: f64,
    y: f64,
}

/// The `<svg>` element of `d`, laid out as the module documentation says.
pub fn draw(o: &mut String, d: &Drawing) -> std::fmt::Result {
    let lines = d.nodes.iter().map(|n| n.captions.len()).max().unwrap_or(1);
    let node_h = NODE_H + LINE_H * lines.saturating_sub(1) as f64;
    let mut placed: Vec<Placed> = d
        .nodes
        .iter()
        .map(|n| {
            let caption = n.captions.iter().map(|c| c.chars().count()).max();
            let text = (n.title.chars().count() as f64 * CHAR_W)
                .max(caption.unwrap_or(0) as f64 * SMALL_CHAR_W);
            Placed {
                width: (text + 2.0 * PAD).max(110.0),
                x: 0.0,
                y: 0.0,
            }
        })
        .collect();
    let layer_count = d.nodes.iter().map(|n| n.layer).max().map_or(0, |m| m + 1);
    let row_width = |l: usize, placed: &[Placed]| -> f64 {
        let widths: Vec<f64> = d
            .nodes
            .iter()
            .zip(placed)
            .filter(|(n, _)| n.layer == l)
            .map(|(_, p)| p.width)
            .collect();
        widths.iter().sum::<f64>() + GAP_X * (widths.len().saturating_sub(1)) as f64
    };
    let widest = (0..layer_count)
        .map(|l| row_width(l, &placed))
        .fold(0.0, f64::max);
    for l in 0..layer_count {
        let mut x = PAD + (widest - row_width(l, &placed)) / 2.0;
        for (_, p) in d
            .nodes
            .iter()
            .zip(placed.iter_mut())
            .filter(|(n, _)| n.layer == l)
        {
            p.x = x;
            p.y = PAD + l as f64 * (node_h + GAP_Y);
            x += p.width + GAP_X;
        }
    }
    let width = widest + 2.0 * PAD + BOW;
    let height = layer_count as f64 * (node_h + GAP_Y) - GAP_Y + 2.0 * PAD;
    let id = d.id;
    writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" \
         aria-labelledby=\"{id}-title\"><title id=\"{id}-title\">{}</title>",
        esc(d.title)
    )?;
    writeln!(
        o,
        "<defs><marker id=\"{id}-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" class=\"arrowhead\"/></marker></defs>"
    )?;
    write_edges(o, d, &placed, node_h)?;
    for (n, p) in d.nodes.iter().zip(&placed) {
        let centre = p.x + p.width / 2.0;
        write!(
            o,
            "<g class=\"{}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{node_h}\" \
             rx=\"6\"/><text x=\"{centre:.1}\" y=\"{:.1}\" class=\"id\">{}</text>",
            n.class,
            p.x,
            p.y,
            p.width,
            p.y + 19.0,
            esc(&n.title),
        )?;
        for (i, caption) in n.captions.iter().enumerate() {
            write!(
                o,
                "<text x=\"{centre:.1}\" y=\"{:.1}\" class=\"cap\">{}</text>",
                p.y + 36.0 + LINE_H * i as f64,
                esc(caption)
            )?;
        }
        writeln!(o, "</g>")?;
    }
    write!(o, "</svg>")
}

fn write_edges(o: &mut String, d: &Drawing, placed: &[Placed], node_h: f64) -> std::fmt::Result {
    let mut bows: f64 = 0.0;
    for e in &d.edges {
        let (Some(s), Some(n)) = (placed.get(e.from), placed.get(e.to)) else {
            continue;
        };
        let class = if e.dashed { "edge once" } else { "edge" };
        let path = if d.nodes[e.to].layer == d.nodes[e.from].layer + 1 {
            let (x1, y1) = (s.x + s.width / 2.0, s.y + node_h);
            let (x2, y2) = (n.x + n.width / 2.0, n.y - 2.0);
            let mid = (y1 + y2) / 2.0;
            format!("M{x1:.1},{y1:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{y2:.1}")
        } else {
            // Around the boxes in between, on the right.
            bows += 8.0;
            let (x1, y1) = (s.x + s.width, s.y + node_h / 2.0);
            let (x2, y2) = (n.x + n.width + 2.0, n.y + node_h / 2.0);
            let out = x1.max(x2) + 24.0 + bows.min(BOW - 24.0);
            format!("M{x1:.1},{y1:.1} C{out:.1},{y1:.1} {out:.1},{y2:.1} {x2:.1},{y2:.1}")
        };
        writeln!(
            o,
            "<path class=\"{class}\" d=\"{path}\" marker-end=\"url(#{}-arrow)\"/>",
            d.id
        )?;
    }
    Ok(())
}
