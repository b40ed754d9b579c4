//! Rollout agreement: finish the solution a few times and see whether the answers agree
//! (rStar-style). Expensive but model-agnostic and often the strongest signal.

use crate::answer::answers_match;
use crate::error::Result;
use crate::extract::Extractor;
use crate::meter::Meter;
use crate::node::Node;
use crate::split::StepSplit;
use crate::stepper::{Stepper, rollout};
use thinktree_engine::{Engine, Usage};

use super::{ScoreItem, Scorer};

/// Rolls each scored node out to a final answer `rollouts` times (all rows of all items in
/// one batched decode) and scores the agreement.
///
/// A non-terminal node scores the share of its rollouts that reach their most common
/// answer. A terminal node's rollouts restart from its parent, and it scores the share
/// that reach *its* answer: an answer the model keeps arriving at is more likely right.
#[derive(Debug, Clone)]
pub struct RolloutScorer {
    /// Rollouts per scored node.
    pub rollouts: usize,
    /// Sampling temperature of the rollouts.
    pub temperature: f32,
    /// Nucleus mass of the rollouts.
    pub top_p: Option<f32>,
    /// Generated tokens allowed per rollout.
    pub max_tokens: usize,
    /// Step granularity of the rollouts.
    pub split: StepSplit,
    /// Tokens per step at most.
    pub step_tokens: usize,
    /// Steps per rollout at most.
    pub max_steps: usize,
    /// How answers are read.
    pub extractor: Extractor,
}

impl Default for RolloutScorer {
    fn default() -> Self {
        Self {
            rollouts: 4,
            temperature: 0.7,
            top_p: Some(0.95),
            max_tokens: 192,
            split: StepSplit::Newline,
            step_tokens: 96,
            max_steps: 16,
            extractor: Extractor::default(),
        }
    }
}

impl<E: Engine> Scorer<E> for RolloutScorer {
    fn name(&self) -> String {
        "rollout".into()
    }

    fn score(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        self.score_within(engine, items, seed, usize::MAX)
    }

    /// The rollouts share `max_generated` (what is left of the problem's budget) with
    /// `max_tokens` per rollout at most. With nothing left an item scores 0.5 (no
    /// evidence either way) and nothing is generated.
    fn score_within(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
        max_generated: usize,
    ) -> Result<(Vec<f64>, Usage)> {
        let n = self.rollouts.max(1);
        let stepper = Stepper {
            split: self.split,
            step_tokens: self.step_tokens,
            max_steps: self.max_steps,
            top_p: self.top_p,
            top_k: None,
            extractor: &*self.extractor.0,
            top_logprobs: false,
        };
        // Rows: `n` per item that has somewhere to roll out from.
        let mut owners = Vec::new();
        let mut starts = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let (state, steps) = match (it.terminal, it.parent) {
                (false, _) => (it.state, it.steps),
                (true, Some(p)) => (p, &it.steps[..it.steps.len().saturating_sub(1)]),
                (true, None) => continue,
            };
            let mut node = Node::root(state.clone());
            node.steps = steps.to_vec();
            node.raw = steps.iter().map(|s| format!("{s}\n")).collect();
            node.depth = steps.len();
            for _ in 0..n {
                owners.push(i);
                starts.push(node.clone());
            }
        }
        let budget = self
            .max_tokens
            .saturating_mul(starts.len())
            .min(max_generated);
        if budget == 0 {
            return Ok((vec![0.5; items.len()], Usage::default()));
        }
        let mut meter = Meter::new(budget, seed);
        let done = if starts.is_empty() {
            Vec::new()
        } else {
            rollout(engine, &stepper, &mut meter, starts, self.temperature)?
        };
        let mut scores = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            let answers: Vec<&str> = owners
                .iter()
                .zip(&done)
                .filter(|(o, _)| **o == i)
                .filter_map(|(_, d)| d.answer.as_deref())
                .collect();
            let agree = |a: &str| answers.iter().filter(|b| answers_match(a, b)).count();
            let hits = match (it.terminal, it.answer) {
                (true, Some(a)) => agree(a),
                (true, None) => 0,
                (false, _) => answers.iter().map(|a| agree(a)).max().unwrap_or(0),
            };
            let rows = if it.terminal && it.parent.is_none() {
                0
            } else {
                n
            };
            scores.push(if rows == 0 {
                if it.answer.is_some() { 0.5 } else { 0.0 }
            } else {
                hits as f64 / rows as f64
            });
        }
        Ok((scores, meter.usage))
    }
}
