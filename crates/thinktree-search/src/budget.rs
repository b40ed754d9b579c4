//! Budget accounting: simulations, wall time and callback-reported cost.

use crate::config::MctsConfig;
use crate::result::StopReason;
use crate::search::Counters;
use std::time::{Duration, Instant};

/// The limits of one run and when it started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    simulations: Option<u64>,
    deadline: Option<Instant>,
    cost: Option<u64>,
}

impl Budget {
    pub(crate) fn new(cfg: &MctsConfig, start: Instant) -> Self {
        Budget {
            simulations: cfg.simulations,
            deadline: cfg.time.map(|t: Duration| start + t),
            cost: cfg.cost,
        }
    }

    /// Simulations left under the simulation budget, `None` without one.
    pub(crate) fn simulations_left(&self, c: &Counters) -> Option<u64> {
        self.simulations.map(|n| n.saturating_sub(c.simulations))
    }

    /// `Ok(simulations still allowed)` or `Err(why we must stop)`. The cost budget is checked
    /// between rounds, so a batch may overshoot it by at most one round's cost.
    pub(crate) fn exhausted(&self, c: &Counters) -> Result<u64, StopReason> {
        let left = match self.simulations_left(c) {
            Some(0) => return Err(StopReason::Simulations),
            Some(n) => n,
            None => u64::MAX,
        };
        if self.cost.is_some_and(|max| c.cost >= max) {
            return Err(StopReason::Cost);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(StopReason::Time);
        }
        Ok(left)
    }
}
