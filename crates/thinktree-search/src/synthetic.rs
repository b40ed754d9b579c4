//! A synthetic uniform tree (branching `b`, depth `d`, values from a hash of the path) for
//! benchmarks and property tests: it costs almost nothing per call, so timings measure the
//! search itself, and its values are reproducible without storing anything.

use crate::error::Result;
use crate::problem::{Evaluations, Evaluator, ExpandRequest, Policy, Problem, Proposals};

/// A uniform tree whose every node's value is a hash of its path. It is its own problem,
/// policy (every action, uniform prior, proposed once) and evaluator (the hash value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticTree {
    /// Children per node.
    pub branching: u32,
    /// Depth of the terminal layer.
    pub depth: u32,
}

/// A node of the synthetic tree: a running hash of its path and its depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyntheticState {
    /// Hash of the actions from the root.
    pub hash: u64,
    /// Distance from the root.
    pub depth: u32,
}

/// A SplitMix64 finaliser: cheap and well mixed, so sibling values look independent
/// (the workspace's one copy, [`crate::rng::splitmix64`]).
#[inline]
#[must_use]
pub fn mix(z: u64) -> u64 {
    crate::rng::splitmix64(z)
}

/// Maps a hash to a value in `[0, 1]`.
#[inline]
#[must_use]
pub fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

impl Problem for SyntheticTree {
    type State = SyntheticState;
    type Action = u32;

    fn initial_state(&self) -> Result<SyntheticState> {
        Ok(SyntheticState { hash: 0, depth: 0 })
    }

    fn apply(&self, state: &SyntheticState, action: &u32) -> Result<SyntheticState> {
        Ok(SyntheticState {
            hash: mix(state.hash ^ u64::from(*action).wrapping_mul(0xD6E8_FEB8_6659_FD93)),
            depth: state.depth + 1,
        })
    }

    fn terminal_value(&self, state: &SyntheticState) -> Option<f64> {
        (state.depth >= self.depth).then(|| unit(state.hash))
    }
}

impl Policy<SyntheticState, u32> for SyntheticTree {
    fn propose(&self, batch: &[ExpandRequest<'_, SyntheticState>]) -> Result<Proposals<u32>> {
        Ok(batch
            .iter()
            .map(|r| {
                if r.existing_children == 0 {
                    (0..self.branching).map(|a| (a, 1.0)).collect()
                } else {
                    Vec::new()
                }
            })
            .collect::<Vec<_>>()
            .into())
    }
}

impl Evaluator<SyntheticState> for SyntheticTree {
    fn evaluate(&self, states: &[&SyntheticState]) -> Result<Evaluations> {
        Ok(states
            .iter()
            .map(|s| unit(mix(s.hash)))
            .collect::<Vec<_>>()
            .into())
    }
}
