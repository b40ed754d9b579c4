//! Self-play: solve a training problem with MCTS, complete its open leaves with rollouts,
//! and export the tree as labelled records.
//!
//! A search on a small budget rarely finishes many paths, and a step with no finished path
//! below it has no outcome to learn from. So after the search, up to
//! [`SelfPlayOptions::rollout_leaves`] open leaves (most visited first) are each completed
//! [`SelfPlayOptions::rollouts`] times by sampling to the end (Math-Shepherd's
//! "completions"); every finished path, in the tree or rolled out, then counts towards the
//! estimate of each step above it.

use crate::error::{Error, Result};
use thinktree_engine::{Engine, SampleParams, StopCondition, Usage};
use thinktree_reason::{Method, Scorer, Solution, SolveConfig, prompt_text, solve_with_scorer};

use crate::label::{LabelOptions, Rollout, label_tree};
use crate::records::Record;

/// How self-play completes and labels a tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfPlayOptions {
    /// Labelling settings.
    pub label: LabelOptions,
    /// Open leaves completed after the search (most visited first; 0: none).
    pub rollout_leaves: usize,
    /// Completions per such leaf, decoded together.
    pub rollouts: usize,
    /// Generated tokens per completion at most.
    pub rollout_tokens: usize,
    /// Sampling temperature of the completions.
    pub temperature: f32,
}

impl Default for SelfPlayOptions {
    fn default() -> Self {
        Self {
            label: LabelOptions::default(),
            rollout_leaves: 8,
            rollouts: 1,
            rollout_tokens: 192,
            temperature: 0.7,
        }
    }
}

/// What one self-play problem produced.
#[derive(Debug, Clone)]
pub struct SelfPlay {
    /// The search's solution (its tree in [`Solution::tree`]).
    pub solution: Solution,
    /// Completions run after the search.
    pub rollouts: Vec<Rollout>,
    /// Compute the completions spent (not part of the search's bill).
    pub rollout_usage: Usage,
    /// Labelled step and pair records.
    pub records: Vec<Record>,
}

/// Solves `question` with MCTS under `cfg`, scored by `scorer` (built once per run, e.g.
/// by `thinktree::scorers::for_config`; the method is forced to MCTS and the tree is
/// exported), completes open leaves, then labels every step against `gold`. The search
/// itself never sees `gold`.
pub fn selfplay_problem<E: Engine>(
    engine: &E,
    scorer: &dyn Scorer<E>,
    problem: &str,
    question: &str,
    gold: &str,
    cfg: &SolveConfig,
    opts: &SelfPlayOptions,
) -> Result<SelfPlay> {
    let cfg = SolveConfig {
        method: Method::Mcts,
        export_tree: true,
        ..cfg.clone()
    };
    let solution = solve_with_scorer(engine, question, &cfg, scorer)?;
    let tree = solution.tree.as_ref().ok_or_else(|| Error::NoTree)?;
    let prompt = prompt_text(engine, cfg.system_prompt.as_deref(), question, cfg.split)?;

    let mut open: Vec<&thinktree_reason::TreeNode> = tree
        .nodes
        .iter()
        .filter(|n| n.parent.is_some() && !n.terminal && tree.children(n.id).next().is_none())
        .collect();
    open.sort_by(|a, b| b.visits.cmp(&a.visits).then(a.id.cmp(&b.id)));
    open.truncate(opts.rollout_leaves);
    let mut rollouts = Vec::new();
    let mut rollout_usage = Usage::default();
    if !open.is_empty() && opts.rollouts > 0 {
        // The prompt rendered above, not rendered again.
        let (root, u) = engine.extend_prompt(&engine.root(), &prompt)?;
        rollout_usage += u;
        for (i, leaf) in open.iter().enumerate() {
            let (state, u) = engine.extend(&root, &leaf.raw)?;
            rollout_usage += u;
            let params = SampleParams {
                temperature: opts.temperature,
                top_k: cfg.top_k,
                top_p: cfg.top_p,
                stop: StopCondition::tokens(opts.rollout_tokens.max(1)),
                seed: cfg.seed ^ (0x05e1_f9a7 + i as u64),
            };
            let (conts, u) = engine.sample(&state, opts.rollouts, &params)?;
            rollout_usage += u;
            for c in conts {
                let answer = cfg.extractor.completion_answer(&leaf.raw, &c.text);
                rollouts.push(Rollout {
                    node: leaf.id,
                    answer,
                });
            }
        }
    }
    let records = label_tree(
        tree,
        &rollouts,
        problem,
        question,
        &prompt,
        gold,
        &opts.label,
    );
    Ok(SelfPlay {
        solution,
        rollouts,
        rollout_usage,
        records,
    })
}
