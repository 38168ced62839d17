//! `--dot` of a plan with stages: the stage graph (petgraph), one node per stage with its
//! targets and waves, an edge from each stage to the stages that wait for it.

use petgraph::graph::DiGraph;

use crate::artifact::PlanArtifact;

/// The stage graph: nodes are indexes into [`PlanArtifact::stages`], edges point from a stage
/// to the stages that wait for it.
pub fn stage_graph(plan: &PlanArtifact) -> DiGraph<usize, ()> {
    let mut g = DiGraph::new();
    let nodes: Vec<_> = (0..plan.stages.len()).map(|i| g.add_node(i)).collect();
    for (i, stage) in plan.stages.iter().enumerate() {
        for name in &stage.after {
            if let Some(j) = plan.stages.iter().position(|s| &s.name == name) {
                g.add_edge(nodes[j], nodes[i], ());
            }
        }
    }
    g
}

/// Graphviz of [`stage_graph`], each stage labelled with its targets and waves.
pub fn to_dot(plan: &PlanArtifact) -> String {
    let g = stage_graph(plan);
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
        escape(&plan.name)
    );
    for idx in g.node_indices() {
        let stage = &plan.stages[g[idx]];
        let waves: Vec<String> = plan
            .waves
            .iter()
            .filter(|w| w.stage.as_deref() == Some(stage.name.as_str()))
            .map(|w| {
                let short = w.name.split_once('/').map_or(w.name.as_str(), |(_, n)| n);
                format!("{short} ({})", w.hosts.len())
            })
            .collect();
        let label = format!(
            "stage {}\\ntargets: {} ({} host(s))\\nwaves: {}",
            escape(&stage.name),
            escape(&stage.targets.join(", ")),
            stage.hosts.len(),
            escape(&waves.join(", "))
        );
        out.push_str(&format!("  s{} [label=\"{label}\"];\n", idx.index()));
    }
    for e in g.edge_indices() {
        if let Some((a, b)) = g.edge_endpoints(e) {
            out.push_str(&format!("  s{} -> s{};\n", a.index(), b.index()));
        }
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
