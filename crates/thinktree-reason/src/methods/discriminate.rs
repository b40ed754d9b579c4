//! rStar's mutual-consistency discriminator ("Mutual Reasoning Makes Smaller LLMs
//! Stronger Problem-Solvers", Qi et al. 2024), for any method's finished trajectories.
//!
//! Each distinct finished trajectory is cut after a random 20-80 % of its steps; the
//! model (the same engine with its own seeds) completes the question from that prefix;
//! the trajectory is mutually consistent when the completion reaches the same answer. The
//! answer is the best-scored consistent trajectory's; when none agrees, the method's own
//! choice stands. The check's tokens come out of the problem's budget: a share of it
//! ([`Discriminator::reserve`]) is held back from the method for it.

use serde::{Deserialize, Serialize};
use thinktree_engine::Engine;

use crate::aggregate::Finished;
use crate::answer::answers_match;
use crate::error::{Error, Result};

use super::Solve;

/// The discriminator's settings ([`crate::SolveConfig::discriminator`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Discriminator {
    /// Shortest prefix shown, as a share of the trajectory's steps (rStar: 0.2).
    pub min_prefix: f64,
    /// Longest prefix shown (rStar: 0.8).
    pub max_prefix: f64,
    /// Share of the token budget held back from the method for the check.
    pub reserve: f64,
    /// Trajectories checked at most (the best-scored distinct ones).
    pub max_checked: usize,
    /// Sampling temperature of the completions (None: the method's).
    pub temperature: Option<f32>,
}

impl Default for Discriminator {
    fn default() -> Self {
        Self {
            min_prefix: 0.2,
            max_prefix: 0.8,
            reserve: 0.25,
            max_checked: 8,
            temperature: None,
        }
    }
}

impl Discriminator {
    /// Checks ranges; a bad value is an [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        let ok = (0.0..=1.0).contains(&self.min_prefix)
            && (0.0..=1.0).contains(&self.max_prefix)
            && self.min_prefix <= self.max_prefix
            && (0.0..1.0).contains(&self.reserve)
            && self.max_checked >= 1
            && self.temperature.is_none_or(|t| t.is_finite() && t >= 0.0);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "discriminator needs 0 <= min_prefix <= max_prefix <= 1, 0 <= reserve < 1, \
                 max_checked >= 1 and a finite temperature >= 0, got {self:?}"
            )))
        }
    }

    /// The number of leading steps shown for a trajectory of `steps` steps, drawn from
    /// `draw` in [0, 1): between `min_prefix` and `max_prefix` of them, and always fewer
    /// than all (the completion must write something).
    pub fn prefix_len(&self, steps: usize, draw: f64) -> usize {
        if steps == 0 {
            return 0;
        }
        let lo = (self.min_prefix * steps as f64).ceil() as usize;
        let hi = ((self.max_prefix * steps as f64).floor() as usize).max(lo);
        let n = lo + ((hi - lo + 1) as f64 * draw.clamp(0.0, 0.999_999)) as usize;
        n.min(steps - 1)
    }
}

/// What the discriminator found ([`crate::Solution::mutual`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutualCheck {
    /// Trajectories checked.
    pub checked: usize,
    /// Of those, mutually consistent.
    pub consistent: usize,
    /// Whether the answer came from a consistent trajectory (else the method's choice).
    pub decided: bool,
}

/// The consistent trajectory chosen: its answer and steps.
pub(crate) type Winner = (String, Vec<String>);

/// Checks the best-scored distinct trajectories and returns the consistent winner's
/// answer and steps (None: keep the method's choice) with the report.
pub(crate) fn check<E: Engine>(
    run: &mut Solve<'_, E>,
    finished: &[Finished],
    d: &Discriminator,
) -> Result<(Option<Winner>, MutualCheck)> {
    let mut distinct: Vec<&Finished> = Vec::new();
    let mut order: Vec<&Finished> = finished.iter().filter(|f| f.answer.is_some()).collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    for f in order {
        if !distinct.iter().any(|g| g.steps == f.steps) {
            distinct.push(f);
        }
    }
    distinct.truncate(d.max_checked);
    let mut report = MutualCheck {
        checked: 0,
        consistent: 0,
        decided: false,
    };
    if distinct.is_empty() || run.meter.left() == 0 {
        return Ok((None, report));
    }
    // One prefix state per trajectory, all completed in one batched call.
    let mut states = Vec::with_capacity(distinct.len());
    for f in &distinct {
        let draw = (run.meter.next_seed() >> 11) as f64 / (1u64 << 53) as f64;
        let shown = d.prefix_len(f.steps.len(), draw);
        let text: String = f.steps[..shown].iter().map(|s| format!("{s}\n")).collect();
        let state = if text.is_empty() {
            run.root.state.clone()
        } else {
            let (s, u) = run.engine.extend(&run.root.state, &text)?;
            run.meter.add(u);
            s
        };
        states.push((state, text));
    }
    let cfg = run.cfg;
    let temperature = d.temperature.unwrap_or(cfg.temperature);
    let seed = run.meter.next_seed();
    let params = run.chain_params(states.len(), cfg.max_steps, temperature, seed);
    let requests: Vec<(&E::State, usize)> = states.iter().map(|(s, _)| (s, 1)).collect();
    let (conts, usage) = run.engine.sample_many(&requests, &params)?;
    run.meter.add(usage);
    let mut best: Option<&Finished> = None;
    for ((f, (_, shown)), mut cs) in distinct.iter().zip(&states).zip(conts) {
        let Some(c) = cs.pop() else { continue };
        report.checked += 1;
        let answer = cfg.extractor.completion_answer(shown, &c.text);
        let agrees = matches!((&answer, &f.answer), (Some(a), Some(b)) if answers_match(a, b));
        if agrees {
            report.consistent += 1;
            if best.is_none_or(|b| f.score > b.score) {
                best = Some(f);
            }
        }
    }
    report.decided = best.is_some();
    Ok((
        best.and_then(|f| f.answer.clone().map(|a| (a, f.steps.clone()))),
        report,
    ))
}
