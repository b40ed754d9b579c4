//! The one record of an explored tree, for every method that has one (MCTS and beam).
//!
//! A [`SearchTree`] keeps, per node, what people and tools both need: the step text, the
//! whole path of steps, the raw sampled text, the answer, visits, values and the prior.
//! A training-data exporter reads it without parsing labels back out of strings, and the
//! renderings for people ([`SearchTree::to_dot`], [`SearchTree::to_json`]) are made from
//! it, so every method's export looks the same.

use serde::{Deserialize, Serialize};

/// One node of a search tree over reasoning steps.
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
    /// Visits the node received (MCTS; 0 for methods that do not visit).
    pub visits: u64,
    /// Mean backed-up value (MCTS; None if never visited).
    pub mean: Option<f64>,
    /// The policy's prior for the step that led here (1 for the root).
    pub prior: f32,
    /// The scorer's value for the node (beam: its step score; MCTS: its leaf evaluation,
    /// or its exact value if the outcome is known).
    pub value: Option<f64>,
    /// Tokens generated for the step that led here (a chain node of the voting methods:
    /// for its whole chain); 0 for the root and in records written before it was kept.
    #[serde(default)]
    pub tokens: usize,
}

impl TreeNode {
    /// The step that led here (empty for the root).
    pub fn step(&self) -> &str {
        self.steps.last().map_or("", String::as_str)
    }
}

/// A whole tree, nodes in creation order (a parent always precedes its children).
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

    /// Graphviz DOT: one box per node with its step (first 60 characters), visits, value,
    /// prior and answer; finished paths in bold.
    pub fn to_dot(&self) -> String {
        let mut s = String::from("digraph thinktree {\n  node [shape=box, fontsize=10];\n");
        for n in &self.nodes {
            let step = if n.parent.is_none() {
                "(question)"
            } else {
                n.step()
            };
            let mut label: String = step.chars().take(60).collect();
            if step.chars().count() > 60 {
                label.push('…');
            }
            let mut lines = vec![label];
            let mut numbers = Vec::new();
            if n.visits > 0 {
                numbers.push(format!("N={}", n.visits));
            }
            if let Some(q) = n.mean.or(n.value) {
                numbers.push(format!("v={q:.3}"));
            }
            if n.parent.is_some() {
                numbers.push(format!("p={:.2}", n.prior));
            }
            if !numbers.is_empty() {
                lines.push(numbers.join(" "));
            }
            if let Some(a) = &n.answer {
                lines.push(format!("answer={a}"));
            }
            let label: Vec<String> = lines.iter().map(|l| dot_escape(l)).collect();
            let style = if n.terminal { ", style=bold" } else { "" };
            s.push_str(&format!(
                "  n{} [label=\"{}\"{style}];\n",
                n.id,
                label.join("\\n")
            ));
            if let Some(p) = n.parent {
                s.push_str(&format!("  n{p} -> n{};\n", n.id));
            }
        }
        s.push_str("}\n");
        s
    }

    /// JSON: `{"nodes": [{id, parent, depth, steps, raw, terminal, answer, visits, mean,
    /// prior, value}]}`, the same fields as [`TreeNode`].
    pub fn to_json(&self) -> crate::error::Result<String> {
        Ok(serde_json::to_string(self)?)
    }
}

/// Escapes a DOT label line: quotes and backslashes, and newlines become spaces.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}
