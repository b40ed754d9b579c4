//! The crate's one error type.

use std::sync::Arc;

/// Everything that can go wrong in `thinktree-search`.
///
/// Callbacks written by users (problem, policy, evaluator) return this type too, so that a
/// failure deep inside a simulation surfaces from `run` unchanged; foreign errors travel in
/// [`Error::External`] so the caller can downcast them back.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The policy proposed no action for a non-terminal node that had no children yet, so the
    /// search cannot go on below it.
    #[error("empty action set: the policy proposed no action for non-terminal node {node}")]
    EmptyActionSet {
        /// Index of the node that got no actions.
        node: u32,
    },
    /// A callback returned a different number of answers than it was asked for.
    #[error("{what} returned {got} answers for a batch of {expected}")]
    BatchSizeMismatch {
        /// Which callback misbehaved ("policy" or "evaluator").
        what: &'static str,
        /// Batch size asked for.
        expected: usize,
        /// Number of answers returned.
        got: usize,
    },
    /// A value (from the evaluator or a terminal state) lies outside the configured bounds or
    /// is not finite; letting it through would corrupt every mean above it.
    #[error("value {value} outside the configured bounds [{min}, {max}]")]
    ValueOutOfRange {
        /// The offending value.
        value: f64,
        /// Lower bound from the config.
        min: f64,
        /// Upper bound from the config.
        max: f64,
    },
    /// A prior was negative or not finite.
    #[error("invalid prior {0}: priors must be finite and >= 0")]
    InvalidPrior(f32),
    /// A [`NodeId`](crate::NodeId) that does not belong to the tree it was used with.
    #[error("unknown node id {0}")]
    UnknownNode(u32),
    /// The tree outgrew `u32` node ids.
    #[error("tree is full: at most u32::MAX nodes")]
    TreeFull,
    /// Serialising the tree failed.
    #[error("export failed: {0}")]
    Export(String),
    /// An error raised by user code (an LLM engine, a tokenizer…), kept intact so the caller can
    /// downcast it.
    #[error("callback failed: {0}")]
    External(Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// `Ok` when a callback gave `got` answers for a batch of `expected`; every batched
    /// callback's answer count is checked before it is zipped with its batch.
    pub(crate) fn check_batch(what: &'static str, expected: usize, got: usize) -> Result<()> {
        if expected == got {
            Ok(())
        } else {
            Err(Error::BatchSizeMismatch {
                what,
                expected,
                got,
            })
        }
    }

    /// Wraps any foreign error so it can be returned from a policy, evaluator or problem.
    pub fn external<E>(err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::External(Arc::new(err))
    }
}

impl PartialEq for Error {
    /// External errors compare by identity (they carry no `PartialEq`); every other variant
    /// compares by value, which is what tests want.
    fn eq(&self, other: &Self) -> bool {
        use Error::*;
        match (self, other) {
            (InvalidConfig(a), InvalidConfig(b)) => a == b,
            (EmptyActionSet { node: a }, EmptyActionSet { node: b }) => a == b,
            (
                BatchSizeMismatch {
                    what: a,
                    expected: b,
                    got: c,
                },
                BatchSizeMismatch {
                    what: x,
                    expected: y,
                    got: z,
                },
            ) => a == x && b == y && c == z,
            (
                ValueOutOfRange {
                    value: a,
                    min: b,
                    max: c,
                },
                ValueOutOfRange {
                    value: x,
                    min: y,
                    max: z,
                },
            ) => a.to_bits() == x.to_bits() && b == y && c == z,
            (InvalidPrior(a), InvalidPrior(b)) => a.to_bits() == b.to_bits(),
            (UnknownNode(a), UnknownNode(b)) => a == b,
            (TreeFull, TreeFull) => true,
            (Export(a), Export(b)) => a == b,
            (External(a), External(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
