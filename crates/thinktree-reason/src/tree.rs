//! The MCTS search tree in structured form, for tools that learn from search.
//!
//! [`super::Solution::tree_json`] is a rendering for people; a [`SearchTree`] keeps, per
//! node, exactly what a training-data exporter needs (the steps, the raw sampled text, the
//! answer, visits and values) without parsing labels back out of strings.

use serde::{Deserialize, Serialize};

/// One node of an MCTS search tree over reasoning steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Index of the node in [`SearchTree::nodes`] (the root is 0).
    pub id: usize,
    /// The parent's index (None for the root).
    pub parent: Option<usize>,
    /// Depth in the tree (steps sampled since the root).
    pub depth: usize,
    /// All displayed steps on the path to this node.
    pub steps: Vec<String>,
    /// The generated text on the path exactly as sampled (the root's is empty): the
    /// prompt followed by this text is the node's context.
    pub raw: String,
    /// Whether the path ends here.
    pub terminal: bool,
    /// The final answer read at a terminal node.
    pub answer: Option<String>,
    /// Visits the node received.
    pub visits: u64,
    /// Mean backed-up value (None if never visited).
    pub mean: Option<f64>,
    /// The policy's prior for the step that led here.
    pub prior: f32,
    /// The scorer's value when the node was a leaf, or its exact value if terminal.
    pub value: Option<f64>,
}

/// A whole MCTS tree, nodes in creation order (a parent always precedes its children).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchTree {
    /// The nodes; index 0 is the root.
    pub nodes: Vec<TreeNode>,
}

impl SearchTree {
    /// The children of node `id`, in creation order.
    pub fn children(&self, id: usize) -> impl Iterator<Item = &TreeNode> + '_ {
        self.nodes.iter().filter(move |n| n.parent == Some(id))
    }
}
