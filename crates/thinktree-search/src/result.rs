//! What a search returns.

use crate::backprop::{Backup, BackupRule};
use crate::config::MctsConfig;
use crate::search::Counters;
use crate::tree::{NodeId, Tree};
use std::time::Duration;

/// Why the search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// The simulation budget was spent.
    Simulations,
    /// The wall-time budget was spent.
    Time,
    /// The cost budget was spent.
    Cost,
    /// The most-visited root child could no longer be overtaken.
    EarlyStop,
    /// The root's value is proven; more simulations cannot change it.
    Solved,
    /// Every line of the tree ends in a terminal and nothing is left to expand (some
    /// terminal values are estimates, so the root is not proven).
    Exhausted,
}

/// Counters describing a finished search.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchStats {
    /// Completed simulations (root-to-leaf paths backed up).
    pub simulations: u64,
    /// Selection rounds (one batch each).
    pub rounds: u64,
    /// Paths dropped because they reached a leaf already waiting in the same batch.
    pub collisions: u64,
    /// Nodes in the tree.
    pub nodes: usize,
    /// Deepest node.
    pub max_depth: u32,
    /// Batched policy calls.
    pub policy_calls: u64,
    /// Batched evaluator calls.
    pub evaluator_calls: u64,
    /// States evaluated.
    pub evaluations: u64,
    /// Rollout steps taken.
    pub rollout_steps: u64,
    /// Total cost reported by the callbacks.
    pub cost: u64,
    /// Wall time spent.
    pub elapsed: Duration,
    /// Why it stopped.
    pub stop_reason: StopReason,
}

/// Statistics of one root child, the unit root parallelism merges on.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSummary<A> {
    /// The action.
    pub action: A,
    /// Visits.
    pub visits: u64,
    /// Value under the backup rule (root mover's perspective).
    pub value: f64,
    /// Mean backed-up value.
    pub mean: f64,
    /// Largest backed-up value.
    pub max: f64,
    /// Proposed prior.
    pub prior: f32,
    /// Proven value (first player's perspective), if any.
    pub solved: Option<f64>,
}

/// A terminal node of the tree: a finished solution the caller may vote over.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalLeaf<S, A> {
    /// Which tree it belongs to (its index in a root-parallel search, else 0).
    pub tree: usize,
    /// Its node in that tree.
    pub node: NodeId,
    /// Its state (the final answer lives here).
    pub state: S,
    /// Actions from the root.
    pub path: Vec<A>,
    /// Exact terminal value (first player's perspective).
    pub value: f64,
    /// Times a simulation reached it.
    pub visits: u64,
    /// Its depth.
    pub depth: u32,
}

/// Everything a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult<S, A> {
    /// Most-visited root action: the robust choice.
    pub best_action_by_visits: Option<A>,
    /// Following the most-visited child from the root down to a leaf.
    pub best_path_by_visits: Vec<A>,
    /// Highest-valued root action under the backup rule.
    pub best_action_by_value: Option<A>,
    /// Following the highest-valued child down to a leaf.
    pub best_path_by_value: Vec<A>,
    /// Every root child, in creation order (merged over trees in root parallelism).
    pub root_children: Vec<ChildSummary<A>>,
    /// Every terminal node created, for voting over final answers.
    pub terminals: Vec<TerminalLeaf<S, A>>,
    /// The root's proven value (first player's perspective), when the search solved it.
    pub solved: Option<f64>,
    /// Counters.
    pub stats: SearchStats,
}

/// In a solved node, the child that proves its value: a solved node may never have visited
/// it (it was proven when created), yet it is the line to follow.
fn proven_child<S, A>(tree: &Tree<S, A>, id: NodeId) -> Option<NodeId> {
    let node = &tree.nodes[id.index()];
    let v = node.solved?;
    node.children
        .iter()
        .copied()
        .find(|c| tree.nodes[c.index()].solved == Some(v))
}

/// The visited child of `id` with the most visits (ties: higher value) or, `by_value`, the
/// highest value (ties: more visits); first wins remaining ties.
fn best_child<S, A>(
    tree: &Tree<S, A>,
    id: NodeId,
    backup: &Backup,
    by_value: bool,
) -> Option<NodeId> {
    let key = |c: NodeId| {
        let s = tree.stats_of(c.index());
        let (n, v) = (s.visits as f64, backup.node_value(&s));
        if by_value { (v, n) } else { (n, v) }
    };
    let mut best: Option<(NodeId, (f64, f64))> = None;
    for &c in &tree.nodes[id.index()].children {
        if tree.hot[c.index()].visits == 0 {
            continue;
        }
        let k = key(c);
        if best.is_none_or(|(_, b)| k > b) {
            best = Some((c, k));
        }
    }
    best.map(|(c, _)| c)
}

/// Assembles the caller-facing result from a finished tree.
pub(crate) fn build_result<S: Clone, A: Clone>(
    cfg: &MctsConfig,
    tree: &Tree<S, A>,
    c: Counters,
    stop_reason: StopReason,
    elapsed: std::time::Duration,
) -> SearchResult<S, A> {
    let backup = &cfg.backup;
    let follow = |by_value: bool| -> Vec<A> {
        let mut path = Vec::new();
        let mut cur = NodeId::ROOT;
        while let Some(next) =
            proven_child(tree, cur).or_else(|| best_child(tree, cur, backup, by_value))
        {
            if let Some(a) = &tree.nodes[next.index()].action {
                path.push(a.clone());
            }
            cur = next;
        }
        path
    };
    let best_path_by_visits = follow(false);
    let best_path_by_value = follow(true);
    let root_children = tree.nodes[0]
        .children
        .iter()
        .filter_map(|&id| {
            let n = &tree.nodes[id.index()];
            let s = tree.stats_of(id.index());
            Some(ChildSummary {
                action: n.action.clone()?,
                visits: s.visits,
                value: if s.visits == 0 {
                    f64::NAN
                } else {
                    backup.node_value(&s)
                },
                mean: s.mean(),
                max: s.max,
                prior: tree.hot[id.index()].prior,
                solved: n.solved,
            })
        })
        .collect();
    let terminals = tree
        .iter()
        .filter_map(|(id, n)| {
            let value = n.terminal_value()?;
            Some(TerminalLeaf {
                tree: 0,
                node: id,
                state: tree.states[id.index()].clone(),
                path: tree.path_to(id).ok()?,
                value,
                visits: n.stats().visits,
                depth: n.depth(),
            })
        })
        .collect();
    SearchResult {
        best_action_by_visits: best_path_by_visits.first().cloned(),
        best_action_by_value: best_path_by_value.first().cloned(),
        best_path_by_visits,
        best_path_by_value,
        root_children,
        terminals,
        solved: tree.nodes[0].solved,
        stats: SearchStats {
            simulations: c.simulations,
            rounds: c.rounds,
            collisions: c.collisions,
            nodes: tree.len(),
            max_depth: tree.max_depth(),
            policy_calls: c.policy_calls,
            evaluator_calls: c.evaluator_calls,
            evaluations: c.evaluations,
            rollout_steps: c.rollout_steps,
            cost: c.cost,
            elapsed,
            stop_reason,
        },
    }
}
