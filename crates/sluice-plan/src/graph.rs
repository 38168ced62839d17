//! The step graph: `after` edges checked, cycles spelt out, a stable execution order, and the
//! ancestors of each step (which registered values it may use); plus the execution graph of a
//! compiled plan, one node per (host, step), for `--dot` and for checking the scheduling rules.
//!
//! Edges point from a step to the steps that wait for it, so a cycle reads in execution order:
//! `drain -> install -> restart -> drain`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::artifact::PlanArtifact;

/// A cycle in `edges` (node → successors), as the path `a, b, …, a`, starting at the smallest
/// node that lies on a cycle. `None` when the graph is acyclic.
pub fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<NodeIndex> = (0..edges.len()).map(|i| graph.add_node(i)).collect();
    for (from, tos) in edges.iter().enumerate() {
        for &to in tos {
            graph.add_edge(nodes[from], nodes[to], ());
        }
    }
    let sccs = petgraph::algo::tarjan_scc(&graph);
    let cyclic = sccs
        .into_iter()
        .filter(|scc| scc.len() > 1 || edges[graph[scc[0]]].contains(&graph[scc[0]]))
        .map(|scc| {
            let mut members: Vec<usize> = scc.iter().map(|&n| graph[n]).collect();
            members.sort_unstable();
            members
        })
        .min()?;
    // Walk inside the component from its smallest node, always to the smallest unvisited
    // successor in the component, until a node repeats: that suffix is a cycle through it.
    let start = cyclic[0];
    let mut path = vec![start];
    let mut on_path = vec![false; edges.len()];
    on_path[start] = true;
    let mut current = start;
    loop {
        let mut next: Vec<usize> = edges[current]
            .iter()
            .copied()
            .filter(|n| cyclic.binary_search(n).is_ok())
            .collect();
        next.sort_unstable();
        // Prefer closing the loop at the start, for the shortest reading.
        let chosen = if next.contains(&start) {
            start
        } else {
            *next
                .iter()
                .find(|n| !on_path[**n])
                .or_else(|| next.first())?
        };
        if on_path[chosen] {
            let from = path.iter().position(|&n| n == chosen).unwrap_or(0);
            let mut cycle = path[from..].to_vec();
            cycle.push(chosen);
            return Some(cycle);
        }
        on_path[chosen] = true;
        path.push(chosen);
        current = chosen;
    }
}

/// A topological order of `deps` (node → the nodes it waits for) that keeps declaration order
/// wherever the dependencies allow. `None` when there is a cycle.
pub fn stable_order(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// For each node, every node it transitively waits for. `order` must be topological.
pub fn ancestors(deps: &[Vec<usize>], order: &[usize]) -> Vec<Vec<bool>> {
    let n = deps.len();
    let mut anc = vec![vec![false; n]; n];
    for &i in order {
        for &d in &deps[i] {
            // `d` comes earlier in the order, so its row is complete.
            let row = anc[d].clone();
            anc[i][d] = true;
            for (k, v) in row.into_iter().enumerate() {
                anc[i][k] |= v;
            }
        }
    }
    anc
}

/// A node of the execution graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecNode {
    /// A `run_once` step (it runs on the first host of the first wave).
    RunOnce { step: String, host: String },
    /// One step on one host.
    Step { host: String, step: String },
    /// Every host of a wave has finished (and the wave's pause and the next approval follow).
    WaveDone { wave: String },
}

/// Builds the whole schedule as one graph: run_once steps before every first-wave host's first
/// steps, `after` edges per host, and each wave's barrier before the next wave's first steps.
pub fn execution_graph(plan: &PlanArtifact) -> DiGraph<ExecNode, ()> {
    let mut g = DiGraph::new();
    let first_host = plan
        .waves
        .first()
        .and_then(|w| w.hosts.first())
        .cloned()
        .unwrap_or_default();
    let mut once_nodes = Vec::new();
    for step in &plan.run_once {
        let node = g.add_node(ExecNode::RunOnce {
            step: step.step.id.clone(),
            host: first_host.clone(),
        });
        if let Some(spec) = plan.step(&step.step.id) {
            for dep in &spec.after {
                if let Some(&(_, d)) = once_nodes
                    .iter()
                    .find(|(id, _): &&(String, NodeIndex)| id == dep)
                {
                    g.add_edge(d, node, ());
                }
            }
        }
        once_nodes.push((step.step.id.clone(), node));
    }
    let host_steps: Vec<&crate::artifact::StepSpec> =
        plan.steps.iter().filter(|s| !s.run_once).collect();
    let mut previous_barrier: Option<NodeIndex> = None;
    for (wi, wave) in plan.waves.iter().enumerate() {
        let barrier = g.add_node(ExecNode::WaveDone {
            wave: wave.name.clone(),
        });
        for host in &wave.hosts {
            let ids: Vec<NodeIndex> = host_steps
                .iter()
                .map(|s| {
                    g.add_node(ExecNode::Step {
                        host: host.clone(),
                        step: s.id.clone(),
                    })
                })
                .collect();
            for (si, spec) in host_steps.iter().enumerate() {
                let deps: Vec<usize> = spec
                    .after
                    .iter()
                    .filter_map(|a| host_steps.iter().position(|s| &s.id == a))
                    .collect();
                if deps.is_empty() {
                    if let Some(b) = previous_barrier {
                        g.add_edge(b, ids[si], ());
                    }
                    if wi == 0 {
                        for (_, o) in &once_nodes {
                            g.add_edge(*o, ids[si], ());
                        }
                    }
                }
                for d in deps {
                    g.add_edge(ids[d], ids[si], ());
                }
                g.add_edge(ids[si], barrier, ());
            }
        }
        previous_barrier = Some(barrier);
    }
    g
}

/// Graphviz of [`execution_graph`]; for a plan with stages, of its stage graph
/// ([`crate::stages::dot`]).
pub fn to_dot(plan: &PlanArtifact) -> String {
    if !plan.stages.is_empty() {
        return crate::stages::dot::to_dot(plan);
    }
    let g = execution_graph(plan);
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", escape(&plan.name));
    for idx in g.node_indices() {
        let (label, shape) = match &g[idx] {
            ExecNode::RunOnce { step, host } => (format!("{step} (run_once on {host})"), "box"),
            ExecNode::Step { host, step } => (format!("{host}: {step}"), "ellipse"),
            ExecNode::WaveDone { wave } => (format!("wave {wave} done"), "diamond"),
        };
        out.push_str(&format!(
            "  n{} [label=\"{}\", shape={shape}];\n",
            idx.index(),
            escape(&label)
        ));
    }
    for e in g.edge_indices() {
        if let Some((a, b)) = g.edge_endpoints(e) {
            out.push_str(&format!("  n{} -> n{};\n", a.index(), b.index()));
        }
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_is_spelt_from_its_smallest_node() {
        // 0 -> 1 -> 2 -> 0, and 3 hangs off 1.
        let edges = vec![vec![1], vec![2, 3], vec![0], vec![]];
        assert_eq!(find_cycle(&edges), Some(vec![0, 1, 2, 0]));
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
        assert_eq!(find_cycle(&[vec![1], vec![]]), None);
    }

    #[test]
    fn order_keeps_declaration_order_where_free() {
        // 0 waits for 2; 1 and 2 are free.
        let deps = vec![vec![2], vec![], vec![]];
        assert_eq!(stable_order(&deps), Some(vec![1, 2, 0]));
        let anc = ancestors(&deps, &[1, 2, 0]);
        assert!(anc[0][2] && !anc[0][1] && !anc[2][0]);
        assert_eq!(stable_order(&[vec![1], vec![0]]), None);
    }
}
