//! Scorers: value functions / process rewards over partial solutions, behind one trait.
//!
//! A scorer sees a batch of [`ScoreItem`]s (question, steps so far, the node's cached
//! engine state) and returns one score in `[0, 1]` per item plus the compute it spent.
//! Cheap ones ([`ConfidenceScorer`], [`VerifierScorer`], a user [`Reward`]) read only text
//! and log-probabilities; model-based ones ([`SelfEvalScorer`], [`RolloutScorer`],
//! [`PrmScorer`]) run the engine from the node's state, so they reuse its cache. Any set of
//! them combines into a [`WeightedScorer`].

mod arith;
mod confidence;
pub(crate) use confidence::mean_probability;
mod prm;
mod reward;
mod rollout;
mod self_eval;
mod spec;
mod verifier;

pub use arith::{EquationCheck, check_equations};
pub use confidence::{ConfidenceScorer, MarcoScorer};
pub use prm::PrmScorer;
pub use reward::{Reward, RewardFn};
pub use rollout::RolloutScorer;
pub use self_eval::{SELF_EVAL_QUESTION, SelfEvalScorer};
pub use spec::{ScorerLoader, ScorerSpec};
pub use verifier::VerifierScorer;

use crate::error::{Error, Result};
use thinktree_engine::{Engine, Usage};

/// One partial or finished solution to score.
#[derive(Debug)]
pub struct ScoreItem<'a, S> {
    /// The problem statement.
    pub question: &'a str,
    /// All steps so far (displayed text).
    pub steps: &'a [String],
    /// How many trailing steps are being judged: 1 for a step-level judgement (beam,
    /// MCTS), all of them for a whole solution (best-of-N).
    pub judged: usize,
    /// Token log-probabilities of the judged steps, as sampled.
    pub logprobs: &'a [f32],
    /// Marco-o1 token confidences of the judged steps (each token's probability relative
    /// to the 5 most likely at its position), when the scorer asked for them
    /// ([`Scorer::needs_top_logprobs`]) and the engine reports them; else empty.
    pub relative: &'a [f32],
    /// The engine state after the last step (its cached context).
    pub state: &'a S,
    /// The state before the last step, when there is one.
    pub parent: Option<&'a S>,
    /// The final answer, if this solution is finished and one was read.
    pub answer: Option<&'a str>,
    /// Whether the solution is finished.
    pub terminal: bool,
}

// Manual impls: every field is a reference, so no `S: Clone` bound is needed.
impl<S> Clone for ScoreItem<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for ScoreItem<'_, S> {}

impl<S> ScoreItem<'_, S> {
    /// The steps under judgement.
    pub fn judged_steps(&self) -> &[String] {
        &self.steps[self.steps.len().saturating_sub(self.judged)..]
    }
}

/// A value function over partial solutions. Scores are in `[0, 1]`, higher is better.
pub trait Scorer<E: Engine>: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> String;

    /// Scores a batch. `seed` makes sampling scorers reproducible; the returned `Usage`
    /// is added to the problem's bill, so every method pays for its scorer.
    fn score(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
    ) -> Result<(Vec<f64>, Usage)>;

    /// [`Scorer::score`] with at most `max_generated` generated tokens: what is left of
    /// the problem's budget. Every method calls this, so a scorer that generates tokens
    /// (rollouts) must override it and stay within the cap (a batched step may overrun it
    /// by one token per row); the default suits scorers that generate nothing.
    fn score_within(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
        max_generated: usize,
    ) -> Result<(Vec<f64>, Usage)> {
        let _ = max_generated;
        self.score(engine, items, seed)
    }

    /// Whether this scorer's value of a *finished* solution is its known outcome (a
    /// checker that proves the answer right or wrong) rather than an estimate. Only an
    /// exact score may settle a search: MCTS marks nodes solved and stops early on exact
    /// terminal values alone. Every built-in scorer is an estimate (the arithmetic
    /// verifier checks the sums, not the answer); a user reward says so with
    /// [`RewardFn::exact`].
    fn is_exact(&self) -> bool {
        false
    }

    /// Whether the scorer reads [`ScoreItem::relative`] (Marco-o1's confidence), which
    /// the search then asks the engine for (the top log-probabilities of every token).
    fn needs_top_logprobs(&self) -> bool {
        false
    }
}

impl<E: Engine, T: Scorer<E> + ?Sized> Scorer<E> for Box<T> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn is_exact(&self) -> bool {
        (**self).is_exact()
    }
    fn needs_top_logprobs(&self) -> bool {
        (**self).needs_top_logprobs()
    }
    fn score_within(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
        max_generated: usize,
    ) -> Result<(Vec<f64>, Usage)> {
        (**self).score_within(engine, items, seed, max_generated)
    }
    fn score(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        (**self).score(engine, items, seed)
    }
}

/// A weighted mean of scorers: `Σ wᵢ·sᵢ / Σ wᵢ`.
pub struct WeightedScorer<'e, E: Engine> {
    parts: Vec<(Box<dyn Scorer<E> + 'e>, f64)>,
}

impl<E: Engine> std::fmt::Debug for WeightedScorer<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .parts
            .iter()
            .map(|(s, w)| format!("{}:{w}", s.name()))
            .collect();
        write!(f, "WeightedScorer({})", names.join(","))
    }
}

impl<'e, E: Engine> WeightedScorer<'e, E> {
    /// Combines `parts`; weights must be finite, non-negative and not all zero.
    pub fn new(parts: Vec<(Box<dyn Scorer<E> + 'e>, f64)>) -> Result<Self> {
        if parts.is_empty() {
            return Err(Error::InvalidConfig(
                "a weighted scorer needs at least one part".into(),
            ));
        }
        if parts.iter().any(|(_, w)| !w.is_finite() || *w < 0.0) {
            return Err(Error::InvalidConfig(
                "scorer weights must be finite and >= 0".into(),
            ));
        }
        if parts.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
            return Err(Error::InvalidConfig(
                "scorer weights must not all be zero".into(),
            ));
        }
        Ok(Self { parts })
    }
}

impl<E: Engine> Scorer<E> for WeightedScorer<'_, E> {
    /// Exact only when every part with a weight is exact.
    fn is_exact(&self) -> bool {
        self.parts.iter().all(|(s, w)| *w == 0.0 || s.is_exact())
    }

    fn needs_top_logprobs(&self) -> bool {
        self.parts
            .iter()
            .any(|(s, w)| *w > 0.0 && s.needs_top_logprobs())
    }

    fn name(&self) -> String {
        let names: Vec<String> = self
            .parts
            .iter()
            .map(|(s, w)| format!("{}:{w}", s.name()))
            .collect();
        names.join(",")
    }

    fn score(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        self.score_within(engine, items, seed, usize::MAX)
    }

    /// Each part gets what the parts before it left of `max_generated`.
    fn score_within(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        seed: u64,
        max_generated: usize,
    ) -> Result<(Vec<f64>, Usage)> {
        let total: f64 = self.parts.iter().map(|(_, w)| w).sum();
        let mut acc = vec![0.0; items.len()];
        let mut usage = Usage::default();
        for (i, (scorer, w)) in self.parts.iter().enumerate() {
            if *w == 0.0 {
                continue;
            }
            let left = max_generated.saturating_sub(usage.generated_tokens as usize);
            let (s, u) = scorer.score_within(engine, items, seed.wrapping_add(i as u64), left)?;
            if s.len() != items.len() {
                return Err(Error::Scorer {
                    scorer: scorer.name(),
                    reason: format!("returned {} scores for {} items", s.len(), items.len()),
                });
            }
            usage += u;
            for (a, v) in acc.iter_mut().zip(s) {
                *a += w * v;
            }
        }
        Ok((acc.into_iter().map(|a| a / total).collect(), usage))
    }
}
