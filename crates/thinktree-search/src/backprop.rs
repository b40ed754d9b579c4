//! Backup rules: how a leaf's value travels up the path and what a node's value means.

use crate::tree::NodeStats;
use std::fmt;
use std::sync::Arc;

/// A custom backup rule.
///
/// The tree always records, per node, the visit count, the sum of the values backed up
/// through it and the largest of them; a rule decides how a value changes on its way up and
/// which statistic the node's value is.
pub trait BackupRule: Send + Sync + fmt::Debug {
    /// The value credited to a node `steps` edges above the leaf (0 = the leaf itself), from
    /// the leaf's value (first player's perspective); the search then flips it for the node's
    /// chooser when that is the second player. The result must stay inside the value bounds.
    fn propagate(&self, value: f64, steps: u32) -> f64 {
        let _ = steps;
        value
    }

    /// The node's value as seen by selection and by "best by value".
    fn node_value(&self, stats: &NodeStats) -> f64;
}

/// The built-in backup rules, plus an escape hatch for custom ones.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Backup {
    /// Mean of the values backed up (classic MCTS).
    #[default]
    Mean,
    /// Maximum of the values backed up, for the player who chose the node: optimistic, as
    /// used by reasoning searches where one good completion is all that matters.
    Max,
    /// Mean of values discounted by `gamma` per edge above the leaf, so shorter paths to an
    /// equally good state are preferred. Requires the value bounds to contain 0.
    Discounted {
        /// Discount per step, in `(0, 1]`.
        gamma: f64,
    },
    /// A user-supplied rule.
    Custom(Arc<dyn BackupRule>),
}

impl BackupRule for Backup {
    #[inline]
    fn propagate(&self, value: f64, steps: u32) -> f64 {
        match self {
            Backup::Mean | Backup::Max => value,
            Backup::Discounted { gamma } => value * gamma.powi(steps.min(i32::MAX as u32) as i32),
            Backup::Custom(rule) => rule.propagate(value, steps),
        }
    }

    #[inline]
    fn node_value(&self, stats: &NodeStats) -> f64 {
        match self {
            Backup::Mean | Backup::Discounted { .. } => stats.mean(),
            Backup::Max => stats.max,
            Backup::Custom(rule) => rule.node_value(stats),
        }
    }
}
