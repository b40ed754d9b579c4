//! Tree export: to a petgraph graph (for graph algorithms), to Graphviz DOT (to look at) and
//! to JSON through serde (to analyse offline). Actions are rendered by a caller-supplied
//! closure, so no `Display` or `Serialize` bound is forced on them.

use crate::error::{Error, Result};
use crate::problem::Player;
use crate::tree::{NodeId, Tree};
use petgraph::graph::{DiGraph, NodeIndex};
use std::fmt;

/// One node as exported.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeExport {
    /// The node's id in the tree.
    pub id: NodeId,
    /// Its parent, `None` for the root.
    pub parent: Option<NodeId>,
    /// The rendered action that led here.
    pub action: Option<String>,
    /// Distance from the root.
    pub depth: u32,
    /// Completed visits.
    pub visits: u64,
    /// Simulations that ended here.
    pub leaf_visits: u64,
    /// Mean backed-up value (chooser's perspective); `None` if never visited.
    pub mean: Option<f64>,
    /// Largest backed-up value (chooser's perspective); `None` if never visited.
    pub max: Option<f64>,
    /// Proposed prior.
    pub prior: f32,
    /// Player to move in the node's state.
    pub to_move: Player,
    /// Exact terminal value, if terminal.
    pub terminal: Option<f64>,
    /// Proven value, if solved.
    pub solved: Option<f64>,
    /// First evaluation, if it was ever a leaf.
    pub evaluation: Option<f64>,
}

impl fmt::Display for NodeExport {
    /// The DOT label: action, visits and mean value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.action {
            Some(a) => write!(f, "{a}")?,
            None => write!(f, "root")?,
        }
        write!(f, "\nN={}", self.visits)?;
        if let Some(m) = self.mean {
            write!(f, " Q={m:.3}")?;
        }
        if let Some(t) = self.terminal {
            write!(f, "\nterminal={t:.3}")?;
        }
        Ok(())
    }
}

/// The whole tree as exported, nodes in id order (parents before children).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TreeExport {
    /// All nodes.
    pub nodes: Vec<NodeExport>,
}

impl<S, A> Tree<S, A> {
    /// A plain, serialisable copy of the tree's statistics.
    pub fn export<F>(&self, label: F) -> TreeExport
    where
        F: Fn(&A) -> String,
    {
        let nodes = self
            .iter()
            .map(|(id, n)| {
                let s = n.stats();
                let visited = s.visits > 0;
                NodeExport {
                    id,
                    parent: n.parent(),
                    action: n.action().map(&label),
                    depth: n.depth(),
                    visits: s.visits,
                    leaf_visits: s.leaf_visits,
                    mean: visited.then(|| s.mean()),
                    max: visited.then_some(s.max),
                    prior: n.prior(),
                    to_move: n.to_move(),
                    terminal: n.terminal_value(),
                    solved: n.solved_value(),
                    evaluation: n.evaluation(),
                }
            })
            .collect();
        TreeExport { nodes }
    }

    /// The tree as a petgraph directed graph whose node indices equal the [`NodeId`]s and
    /// whose edges carry the rendered actions.
    pub fn to_graph<F>(&self, label: F) -> DiGraph<NodeExport, String>
    where
        F: Fn(&A) -> String,
    {
        let export = self.export(label);
        let mut graph = DiGraph::with_capacity(export.nodes.len(), export.nodes.len());
        for node in export.nodes {
            let edge = node
                .parent
                .map(|p| (p, node.action.clone().unwrap_or_default()));
            let idx = graph.add_node(node);
            if let Some((p, action)) = edge {
                // Parents precede children in the arena, so the parent index already exists.
                graph.add_edge(NodeIndex::new(p.index()), idx, action);
            }
        }
        graph
    }

    /// Graphviz DOT source of the tree.
    pub fn to_dot<F>(&self, label: F) -> String
    where
        F: Fn(&A) -> String,
    {
        let graph = self.to_graph(label);
        format!(
            "{}",
            petgraph::dot::Dot::with_config(&graph, &[petgraph::dot::Config::EdgeNoLabel])
        )
    }

    /// Pretty-printed JSON of [`Tree::export`].
    pub fn to_json<F>(&self, label: F) -> Result<String>
    where
        F: Fn(&A) -> String,
    {
        serde_json::to_string_pretty(&self.export(label)).map_err(|e| Error::Export(e.to_string()))
    }
}
