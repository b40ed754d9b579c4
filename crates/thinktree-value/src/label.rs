//! Turning one MCTS solve on a training problem into labelled records.
//!
//! Math-Shepherd style: a step's label is the share of finished paths at or below it whose
//! answer matches the gold answer. The search never sees the gold answer; it is used here,
//! after the search, to label what the search found.

use thinktree_engine::Prompt;
use thinktree_reason::SearchTree;
use thinktree_reason::answer::answers_match;

use crate::records::{PairRecord, PairSide, RECORD_VERSION, Record, StepRecord};

/// What to export from one tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelOptions {
    /// Keep step records only for nodes with at least this many finished paths below
    /// (nodes with none have no outcome to learn from and are always dropped).
    pub min_leaves: usize,
    /// Emit a preference pair for siblings whose estimates differ by at least this much.
    pub pair_margin: f64,
}

impl Default for LabelOptions {
    fn default() -> Self {
        Self {
            min_leaves: 1,
            pair_margin: 0.5,
        }
    }
}

/// A finished path that is not in the tree: a rollout completed from node `node` after
/// the search, with the answer it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The tree node it started from.
    pub node: usize,
    /// The answer it reached (None: none could be read).
    pub answer: Option<String>,
}

/// Finished paths and correct ones at or below each node (indexed like `tree.nodes`):
/// the tree's terminal nodes plus `rollouts` attached to their start nodes.
pub fn leaf_counts(tree: &SearchTree, gold: &str, rollouts: &[Rollout]) -> Vec<(usize, usize)> {
    let n = tree.nodes.len();
    let mut counts = vec![(0usize, 0usize); n];
    let right = |a: Option<&str>| usize::from(a.is_some_and(|a| answers_match(a, gold)));
    for node in &tree.nodes {
        if node.terminal && node.id < n {
            counts[node.id] = (1, right(node.answer.as_deref()));
        }
    }
    for r in rollouts.iter().filter(|r| r.node < n) {
        counts[r.node].0 += 1;
        counts[r.node].1 += right(r.answer.as_deref());
    }
    // Parents precede children, so one backward sweep sums every subtree.
    for i in (0..n).rev() {
        if let Some(p) = tree.nodes[i].parent.filter(|&p| p < i) {
            let (l, c) = counts[i];
            counts[p].0 += l;
            counts[p].1 += c;
        }
    }
    counts
}

/// Step records (parents before children) and preference pairs for one solved problem.
/// `prompt` is the prompt text the search started from; `gold` the reference answer;
/// `rollouts` finished paths completed from tree nodes after the search.
pub fn label_tree(
    tree: &SearchTree,
    rollouts: &[Rollout],
    problem: &str,
    question: &str,
    prompt: &Prompt,
    gold: &str,
    opts: &LabelOptions,
) -> Vec<Record> {
    let counts = leaf_counts(tree, gold, rollouts);
    let mc = |i: usize| {
        let (l, c) = counts[i];
        (l > 0).then(|| c as f64 / l as f64)
    };
    let parent_of = |i: usize| tree.nodes[i].parent.and_then(|p| tree.nodes.get(p));
    let split = |i: usize| {
        let node = &tree.nodes[i];
        let (context, step_raw) = match parent_of(i) {
            Some(p) if node.raw.starts_with(&p.raw) => {
                (p.raw.clone(), node.raw[p.raw.len()..].to_string())
            }
            _ => (String::new(), node.raw.clone()),
        };
        let before = parent_of(i).map_or(0, |p| p.steps.len());
        let steps = node.steps[..before.min(node.steps.len())].to_vec();
        let step = node.steps.get(before).cloned().unwrap_or_default();
        (steps, step, context, step_raw)
    };
    let mut out = Vec::new();
    for node in tree.nodes.iter().filter(|n| n.parent.is_some()) {
        let i = node.id;
        let Some(v) = mc(i) else { continue };
        if counts[i].0 < opts.min_leaves.max(1) {
            continue;
        }
        let (steps, step, context, step_raw) = split(i);
        if step_raw.trim().is_empty() {
            continue;
        }
        out.push(Record::Step(StepRecord {
            version: RECORD_VERSION,
            problem: problem.to_string(),
            question: question.to_string(),
            prompt: prompt.clone(),
            steps,
            step,
            context,
            step_raw,
            depth: node.depth,
            mc_value: v,
            leaves: counts[i].0,
            correct: counts[i].1,
            visits: node.visits,
            q_value: node.mean,
            prior: node.prior,
            terminal: node.terminal,
            answer: node.answer.clone(),
        }));
    }
    for parent in &tree.nodes {
        let kids: Vec<usize> = tree
            .children(parent.id)
            .map(|k| k.id)
            .filter(|&k| mc(k).is_some())
            .collect();
        for (a, &x) in kids.iter().enumerate() {
            for &y in &kids[a + 1..] {
                let (vx, vy) = (mc(x).unwrap_or(0.0), mc(y).unwrap_or(0.0));
                if (vx - vy).abs() < opts.pair_margin || (vx - vy).abs() == 0.0 {
                    continue;
                }
                let (b, w) = if vx > vy { (x, y) } else { (y, x) };
                let side = |k: usize| {
                    let (_, step, _, step_raw) = split(k);
                    PairSide {
                        step,
                        step_raw,
                        mc_value: mc(k).unwrap_or(0.0),
                        leaves: counts[k].0,
                    }
                };
                let (steps, _, context, _) = split(b);
                out.push(Record::Pair(PairRecord {
                    version: RECORD_VERSION,
                    problem: problem.to_string(),
                    question: question.to_string(),
                    prompt: prompt.clone(),
                    steps,
                    context,
                    better: side(b),
                    worse: side(w),
                }));
            }
        }
    }
    out
}
