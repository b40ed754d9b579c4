//! Token confidence: how sure the policy itself was while writing the step.

use crate::error::Result;
use thinktree_engine::{Engine, Usage};

use super::{ScoreItem, Scorer};

/// Mean per-token probability of the judged tokens (as in Marco-o1). Free: it reads the
/// log-probabilities the sampler already returned, so it costs no model call.
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
            .map(|it| {
                if it.logprobs.is_empty() {
                    0.5
                } else {
                    it.logprobs.iter().map(|&l| f64::from(l).exp()).sum::<f64>()
                        / it.logprobs.len() as f64
                }
            })
            .collect();
        Ok((scores, Usage::default()))
    }
}
