//! Search configuration and its validating builder.

use crate::backprop::Backup;
use crate::error::{Error, Result};
use crate::select::Selection;
use std::time::Duration;

/// The range every value lives in. Two-player flipping maps `v` to `min + max - v`, so the
/// same code serves `[0, 1]` probabilities (LLM scorers) and `[-1, 1]` game outcomes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueBounds {
    /// Worst value (a loss).
    pub min: f64,
    /// Best value (a win).
    pub max: f64,
}

impl Default for ValueBounds {
    fn default() -> Self {
        ValueBounds { min: 0.0, max: 1.0 }
    }
}

impl ValueBounds {
    /// Checks `v` is finite and inside the bounds, so a buggy scorer fails loudly instead of
    /// skewing every mean above it.
    pub fn check(&self, v: f64) -> Result<f64> {
        if v.is_finite() && v >= self.min && v <= self.max {
            Ok(v)
        } else {
            Err(Error::ValueOutOfRange {
                value: v,
                min: self.min,
                max: self.max,
            })
        }
    }

    /// The same outcome seen by the other player of a zero-sum game.
    #[inline]
    #[must_use]
    pub fn flip(&self, v: f64) -> f64 {
        self.min + self.max - v
    }

    /// Maps `v` to `[0, 1]` so selection constants do not depend on the bounds.
    #[inline]
    #[must_use]
    pub fn normalize(&self, v: f64) -> f64 {
        (v - self.min) / (self.max - self.min)
    }
}

/// Progressive widening: a node with `N` visits may have at most `max(1, ⌊k·N^α⌋)`
/// children, so an open action space (sampled LLM steps) grows where the search returns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Widening {
    /// Scale `k > 0`.
    pub k: f64,
    /// Exponent `α` in `(0, 1]`; 0.5 is common.
    pub alpha: f64,
}

impl Widening {
    /// Children allowed for a node with `visits` completed visits.
    #[inline]
    #[must_use]
    pub fn allowed(&self, visits: u64) -> usize {
        let n = (self.k * (visits as f64).powf(self.alpha)).floor();
        if n.is_finite() && n >= 1.0 {
            n.min(usize::MAX as f64) as usize
        } else {
            1
        }
    }
}

/// Everything that shapes a search. Build it with [`MctsConfig::builder`]; fields are public
/// for inspection, and [`MctsConfig::validate`] is re-run by every search so a hand-edited
/// config cannot slip through.
#[derive(Debug, Clone)]
pub struct MctsConfig {
    /// How children are chosen.
    pub selection: Selection,
    /// How values are backed up.
    pub backup: Backup,
    /// Progressive widening; `None` expands each node once.
    pub widening: Option<Widening>,
    /// Children wanted per expansion when widening is off (a hint to the policy).
    pub expansion_width: usize,
    /// Simulation budget.
    pub simulations: Option<u64>,
    /// Wall-time budget.
    pub time: Option<Duration>,
    /// Cost budget (units reported by the policy, evaluator and rollout policy, e.g. tokens).
    pub cost: Option<u64>,
    /// Leaves selected per round and handed to the policy/evaluator as one batch.
    pub batch_size: usize,
    /// Weight of one in-flight path: it counts as this many visits that were all losses.
    pub virtual_loss: f64,
    /// Seed of the search's random generator (tie-breaking, rollouts).
    pub seed: u64,
    /// Range of every value.
    pub value_bounds: ValueBounds,
    /// Most steps a rollout takes before the evaluator scores where it stopped.
    pub rollout_depth: u32,
    /// Nodes at this depth are never expanded; they are evaluated as leaves.
    pub max_depth: Option<u32>,
    /// Stop once the most-visited root child cannot be overtaken within the remaining
    /// simulation budget.
    pub early_stop: bool,
    /// Normalised value assumed for an unvisited child under PUCT; `None` uses the parent's.
    pub first_play_value: Option<f64>,
}

impl Default for MctsConfig {
    fn default() -> Self {
        MctsConfig {
            selection: Selection::default(),
            backup: Backup::default(),
            widening: None,
            expansion_width: usize::MAX,
            simulations: Some(1000),
            time: None,
            cost: None,
            batch_size: 1,
            virtual_loss: 1.0,
            seed: 0,
            value_bounds: ValueBounds::default(),
            rollout_depth: 64,
            max_depth: None,
            early_stop: false,
            first_play_value: None,
        }
    }
}

impl MctsConfig {
    /// A builder starting from the defaults: UCT (c = √2), mean backup, no widening,
    /// 1000 simulations, batch size 1, values in `[0, 1]`, seed 0.
    #[must_use]
    pub fn builder() -> MctsConfigBuilder {
        MctsConfigBuilder {
            config: MctsConfig::default(),
        }
    }

    /// Rejects configs that would make the search meaningless or panic: no budget, zero
    /// budgets, negative constants, empty bounds, zero batch size.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_owned()));
        if self.simulations.is_none() && self.time.is_none() && self.cost.is_none() {
            return bad("no budget: set simulations, time or cost");
        }
        if self.simulations == Some(0) {
            return bad("simulation budget is zero");
        }
        if self.time == Some(Duration::ZERO) {
            return bad("time budget is zero");
        }
        if self.cost == Some(0) {
            return bad("cost budget is zero");
        }
        if self.batch_size == 0 {
            return bad("batch size is zero");
        }
        if self.expansion_width == 0 {
            return bad("expansion width is zero");
        }
        if !(self.virtual_loss.is_finite() && self.virtual_loss >= 0.0) {
            return bad("virtual loss must be finite and >= 0");
        }
        let b = self.value_bounds;
        if !(b.min.is_finite() && b.max.is_finite() && b.min < b.max) {
            return bad("value bounds must be finite with min < max");
        }
        let c_ok = |c: f64| c.is_finite() && c >= 0.0;
        match &self.selection {
            Selection::Uct { c } | Selection::Puct { c } if !c_ok(*c) => {
                return bad("exploration constant c must be finite and >= 0");
            }
            Selection::DecayingUct { c, decay } => {
                if !c_ok(*c) {
                    return bad("exploration constant c must be finite and >= 0");
                }
                if !(*decay > 0.0 && *decay <= 1.0) {
                    return bad("decay must be in (0, 1]");
                }
            }
            _ => {}
        }
        if let Backup::Discounted { gamma } = self.backup {
            if !(gamma > 0.0 && gamma <= 1.0) {
                return bad("discount gamma must be in (0, 1]");
            }
            if b.min > 0.0 || b.max < 0.0 {
                return bad("discounted backup needs value bounds that contain 0");
            }
        }
        if let Some(w) = self.widening {
            if !(w.k.is_finite() && w.k > 0.0) {
                return bad("widening k must be finite and > 0");
            }
            if !(w.alpha > 0.0 && w.alpha <= 1.0) {
                return bad("widening alpha must be in (0, 1]");
            }
        }
        if let Some(f) = self.first_play_value
            && !(0.0..=1.0).contains(&f)
        {
            return bad("first-play value is normalised and must lie in [0, 1]");
        }
        Ok(())
    }
}

/// Builder for [`MctsConfig`]; [`build`](MctsConfigBuilder::build) validates.
#[derive(Debug, Clone)]
pub struct MctsConfigBuilder {
    config: MctsConfig,
}

impl MctsConfigBuilder {
    /// Selection rule.
    #[must_use]
    pub fn selection(mut self, selection: Selection) -> Self {
        self.config.selection = selection;
        self
    }
    /// Backup rule.
    #[must_use]
    pub fn backup(mut self, backup: Backup) -> Self {
        self.config.backup = backup;
        self
    }
    /// Turns on progressive widening with `max(1, ⌊k·N^α⌋)` children.
    #[must_use]
    pub fn widening(mut self, k: f64, alpha: f64) -> Self {
        self.config.widening = Some(Widening { k, alpha });
        self
    }
    /// Children wanted per expansion when widening is off.
    #[must_use]
    pub fn expansion_width(mut self, width: usize) -> Self {
        self.config.expansion_width = width;
        self
    }
    /// Simulation budget.
    #[must_use]
    pub fn simulations(mut self, n: u64) -> Self {
        self.config.simulations = Some(n);
        self
    }
    /// Removes the simulation budget (then a time or cost budget must be set).
    #[must_use]
    pub fn unlimited_simulations(mut self) -> Self {
        self.config.simulations = None;
        self
    }
    /// Wall-time budget.
    #[must_use]
    pub fn time(mut self, time: Duration) -> Self {
        self.config.time = Some(time);
        self
    }
    /// Cost budget (e.g. tokens).
    #[must_use]
    pub fn cost(mut self, cost: u64) -> Self {
        self.config.cost = Some(cost);
        self
    }
    /// Leaves per batch.
    #[must_use]
    pub fn batch_size(mut self, batch: usize) -> Self {
        self.config.batch_size = batch;
        self
    }
    /// Virtual loss weight per in-flight path.
    #[must_use]
    pub fn virtual_loss(mut self, weight: f64) -> Self {
        self.config.virtual_loss = weight;
        self
    }
    /// Random seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    /// Value range.
    #[must_use]
    pub fn value_bounds(mut self, min: f64, max: f64) -> Self {
        self.config.value_bounds = ValueBounds { min, max };
        self
    }
    /// Rollout depth limit.
    #[must_use]
    pub fn rollout_depth(mut self, depth: u32) -> Self {
        self.config.rollout_depth = depth;
        self
    }
    /// Tree depth limit.
    #[must_use]
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.config.max_depth = Some(depth);
        self
    }
    /// Early stop when the best root child is out of reach.
    #[must_use]
    pub fn early_stop(mut self, on: bool) -> Self {
        self.config.early_stop = on;
        self
    }
    /// First-play value for unvisited children under PUCT (normalised, `[0, 1]`).
    #[must_use]
    pub fn first_play_value(mut self, value: f64) -> Self {
        self.config.first_play_value = Some(value);
        self
    }
    /// Validates and returns the config.
    pub fn build(self) -> Result<MctsConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
