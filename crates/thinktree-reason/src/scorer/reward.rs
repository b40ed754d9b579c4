//! Custom rewards: the user's own judgement of a partial solution.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use thinktree_engine::{Engine, Usage};

use super::{ScoreItem, Scorer};

/// A reward over the question and the steps written so far, in `[0, 1]` (higher is
/// better). Engine-agnostic, so it plugs into every method unchanged; implement
/// [`Scorer`] instead when the reward needs the model itself.
pub trait Reward: Send + Sync {
    /// Scores a (partial or finished) solution.
    fn reward(&self, question: &str, steps: &[String]) -> f64;
}

impl<F> Reward for F
where
    F: Fn(&str, &[String]) -> f64 + Send + Sync,
{
    fn reward(&self, question: &str, steps: &[String]) -> f64 {
        self(question, steps)
    }
}

/// A named, shareable reward, as carried by [`super::ScorerSpec::Reward`].
#[derive(Clone)]
pub struct RewardFn {
    name: String,
    reward: Arc<dyn Reward>,
    exact: bool,
}

impl RewardFn {
    /// Wraps any reward (a closure `|question, steps| -> f64` is one).
    pub fn new(name: impl Into<String>, reward: impl Reward + 'static) -> Self {
        Self {
            name: name.into(),
            reward: Arc::new(reward),
            exact: false,
        }
    }

    /// Declares the reward exact on finished solutions: its value *is* the outcome (a
    /// verifier that checks the final answer, a game result), so a search may treat it as
    /// proof ([`Scorer::is_exact`]). Without this a reward is an estimate.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// Whether the reward was declared exact.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// The name shown in reports.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for RewardFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RewardFn({})", self.name)
    }
}

impl PartialEq for RewardFn {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reward, &other.reward)
    }
}

impl<E: Engine> Scorer<E> for RewardFn {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn is_exact(&self) -> bool {
        self.exact
    }

    /// Clamps to `[0, 1]`; a NaN or infinite reward is a bug in the reward and is
    /// reported, never silently ranked.
    fn score(
        &self,
        _engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let r = self.reward.reward(it.question, it.steps);
            if !r.is_finite() {
                return Err(Error::Scorer {
                    scorer: format!("reward:{}", self.name),
                    reason: format!("returned {r}; rewards must be finite"),
                });
            }
            out.push(r.clamp(0.0, 1.0));
        }
        Ok((out, Usage::default()))
    }
}
