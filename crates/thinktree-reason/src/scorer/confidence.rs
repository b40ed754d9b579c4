//! Token confidence: how sure the policy itself was while writing the step.

use crate::error::Result;
use thinktree_engine::{Engine, Usage};

use super::{ScoreItem, Scorer};

/// Mean per-token probability of the judged tokens. Free: it reads the log-probabilities
/// the sampler already returned, so it costs no model call. Not Marco-o1's reward, which
/// normalises each probability by the top 5 at its position ([`MarcoScorer`]): a token
/// the model chose among many near-equal options scores low here and there alike, but a
/// token that is one of two likely ones scores ~0.5 here and ~0.5 there while one of five
/// equal ones scores 0.2 in both; they part where the top 5 hold little of the mass.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfidenceScorer;

impl<E: Engine> Scorer<E> for ConfidenceScorer {
    fn name(&self) -> String {
        "confidence".into()
    }

    fn score(
        &self,
        _engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        let scores = items
            .iter()
            .map(|it| mean_probability(it.logprobs))
            .collect();
        Ok((scores, Usage::default()))
    }
}

/// Marco-o1's confidence reward, exactly: for each generated token, the softmax of its
/// log-probability against the 5 most likely tokens at that position,
/// `exp(lp) / sum(exp(top5))`, averaged over the judged tokens. Free like
/// [`ConfidenceScorer`], but it needs the engine's top log-probabilities, which the
/// search asks for when this scorer is used ([`Scorer::needs_top_logprobs`]); an engine
/// that does not report them makes the search fail with its error instead of a silent
/// fallback.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarcoScorer;

impl<E: Engine> Scorer<E> for MarcoScorer {
    fn name(&self) -> String {
        "marco".into()
    }

    fn needs_top_logprobs(&self) -> bool {
        true
    }

    fn score(
        &self,
        _engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        let scores = items
            .iter()
            .map(|it| mean_or_half(it.relative.iter().map(|&c| f64::from(c))))
            .collect();
        Ok((scores, Usage::default()))
    }
}

/// The mean probability of a step's tokens (the confidence scorer's value); 0.5 for a
/// step without tokens.
pub(crate) fn mean_probability(logprobs: &[f32]) -> f64 {
    mean_or_half(logprobs.iter().map(|&l| f64::from(l).exp()))
}

/// The mean of per-token values; 0.5 (no opinion) for a step without tokens.
fn mean_or_half(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = values.len();
    if n == 0 {
        0.5
    } else {
        values.sum::<f64>() / n as f64
    }
}
