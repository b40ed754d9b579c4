//! The arithmetic verifier as a scorer.

use crate::error::Result;
use thinktree_engine::{Engine, Usage};

use super::arith::check_equations;
use super::{ScoreItem, Scorer};

/// Scores the judged steps by their arithmetic: 1 when every equation is right, near 0
/// when any is wrong (one wrong product poisons everything after it), and a neutral 0.5
/// when there is nothing to check. Costs no model call.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifierScorer;

impl VerifierScorer {
    /// The score of a text on its own.
    pub fn score_text(text: &str) -> f64 {
        let c = check_equations(text);
        if c.checked == 0 {
            0.5
        } else if c.correct == c.checked {
            1.0
        } else {
            0.1 * c.correct as f64 / c.checked as f64
        }
    }
}

impl<E: Engine> Scorer<E> for VerifierScorer {
    fn name(&self) -> String {
        "verifier".into()
    }

    fn score(
        &self,
        _engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        let scores = items
            .iter()
            .map(|it| Self::score_text(&it.judged_steps().join("\n")))
            .collect();
        Ok((scores, Usage::default()))
    }
}
