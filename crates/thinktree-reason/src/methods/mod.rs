//! The search methods, all built on the same environment, policy adapter and meter.

pub(crate) mod beam;
pub(crate) mod deepconf;
pub(crate) mod discriminate;
pub(crate) mod greedy;
pub(crate) mod mcts;
pub(crate) mod reflect;
pub(crate) mod rstar;
pub(crate) mod sampling;

use crate::error::{Error, Result};
use thinktree_engine::{Engine, Usage};

use super::aggregate::Finished;
use super::config::SolveConfig;
use super::scorer::{ScoreItem, Scorer};
use crate::meter::Meter;
use crate::node::Node;
use crate::stepper::Stepper;

/// One problem being solved: the engine, settings, scorer, root and the running bill.
pub(crate) struct Solve<'a, E: Engine> {
    pub engine: &'a E,
    pub cfg: &'a SolveConfig,
    pub question: &'a str,
    pub stepper: Stepper<'a>,
    pub meter: Meter,
    pub scorer: &'a dyn Scorer<E>,
    pub root: Node<E::State>,
}

/// What a method hands back to [`super::solve`].
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub finished: Vec<Finished>,
    pub early_stopped: bool,
    pub tree: Option<super::tree::SearchTree>,
    /// The method's own aggregation, overriding the configured one (DeepConf's
    /// confidence-weighted vote).
    pub aggregation: Option<super::aggregate::Aggregation>,
    /// Chains that reflected, with their answers before and after.
    pub reflections: Vec<reflect::Reflection>,
}

impl<E: Engine> Solve<'_, E> {
    /// Sampling parameters for `rows` whole chains of at most `steps` steps each, capped
    /// by what the budget leaves per row: the config's truncation at `temperature`, and
    /// top log-probabilities when the scorer reads them.
    pub fn chain_params(
        &self,
        rows: usize,
        steps: usize,
        temperature: f32,
        seed: u64,
    ) -> thinktree_engine::SampleParams {
        let cap = self
            .cfg
            .step_tokens
            .saturating_mul(steps.max(1))
            .min(self.meter.per_row(rows))
            .max(1);
        let sampling = temperature > 0.0;
        thinktree_engine::SampleParams {
            temperature,
            top_k: if sampling { self.cfg.top_k } else { None },
            top_p: if sampling { self.cfg.top_p } else { None },
            stop: thinktree_engine::StopCondition {
                confidence: self.stepper.stop(cap).confidence,
                ..thinktree_engine::StopCondition::tokens(cap)
            },
            seed,
        }
    }

    /// Scores nodes in one scorer call and adds its cost to the bill. `whole` judges the
    /// entire solution (best-of-N), otherwise only each node's last step.
    pub fn score(&mut self, nodes: &[&Node<E::State>], whole: bool) -> Result<Vec<f64>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let seed = self.meter.next_seed();
        let left = self.meter.left();
        let (scores, usage) = score_nodes(
            self.engine,
            self.scorer,
            self.question,
            nodes,
            whole,
            seed,
            left,
        )?;
        if usage.forward_calls > 0 {
            self.meter.add(usage);
        }
        Ok(scores)
    }
}

/// One scorer call over `nodes`, with what the scorer returned checked: one finite score
/// in [0, 1] per node. `whole` judges each entire solution, otherwise only its last step.
/// The scorer may generate at most `max_generated` tokens (what is left of the budget).
pub(crate) fn score_nodes<E: Engine>(
    engine: &E,
    scorer: &dyn Scorer<E>,
    question: &str,
    nodes: &[&Node<E::State>],
    whole: bool,
    seed: u64,
    max_generated: usize,
) -> Result<(Vec<f64>, Usage)> {
    let items: Vec<ScoreItem<'_, E::State>> = nodes
        .iter()
        .map(|n| ScoreItem {
            question,
            steps: &n.steps,
            judged: if whole { n.steps.len() } else { 1 },
            logprobs: if whole {
                &n.path_logprobs
            } else {
                &n.step_logprobs
            },
            relative: if whole {
                &n.path_relative
            } else {
                &n.step_relative
            },
            state: &n.state,
            parent: n.parent_state.as_ref(),
            answer: n.answer.as_deref(),
            terminal: n.terminal,
        })
        .collect();
    let (scores, usage) = scorer.score_within(engine, &items, seed, max_generated)?;
    if scores.len() != nodes.len() {
        return Err(Error::Scorer {
            scorer: scorer.name(),
            reason: format!("returned {} scores for {} items", scores.len(), nodes.len()),
        });
    }
    if let Some(bad) = scores
        .iter()
        .find(|s| !(s.is_finite() && (0.0..=1.0).contains(*s)))
    {
        return Err(Error::Scorer {
            scorer: scorer.name(),
            reason: format!("returned {bad}, outside [0, 1]"),
        });
    }
    Ok((scores, usage))
}

/// The tree record of the methods that sample whole chains (greedy, self-consistency,
/// best-of-N): the root and one child per chain holding all its steps, so a viewer shows
/// the chains side by side. Built as chains finish, so no engine state is held for it.
pub(crate) fn chains_root() -> super::tree::SearchTree {
    super::tree::SearchTree {
        nodes: vec![super::tree::TreeNode {
            id: 0,
            parent: None,
            depth: 0,
            steps: Vec::new(),
            raw: String::new(),
            terminal: false,
            answer: None,
            visits: 0,
            mean: None,
            prior: 1.0,
            value: None,
            tokens: 0,
        }],
    }
}

/// Adds a finished chain with its score under the root of a [`chains_root`] tree.
pub(crate) fn push_chain<S>(tree: &mut super::tree::SearchTree, chain: &Node<S>, score: f64) {
    tree.nodes.push(super::tree::TreeNode {
        id: tree.nodes.len(),
        parent: Some(0),
        depth: chain.depth,
        steps: chain.steps.clone(),
        raw: chain.raw.clone(),
        terminal: chain.terminal,
        answer: chain.answer.clone(),
        visits: 0,
        mean: None,
        prior: 1.0,
        value: Some(score),
        tokens: chain.path_logprobs.len(),
    });
}

/// A finished path for the aggregator.
pub(crate) fn finished<S>(node: &Node<S>, score: f64, rank: f64) -> Finished {
    Finished {
        steps: node.steps.clone(),
        answer: node.answer.clone(),
        score,
        rank,
    }
}
