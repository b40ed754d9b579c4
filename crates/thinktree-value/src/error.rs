//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in self-play, training or scoring with a value head.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A training or head setting is out of range, or there is nothing to train on.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A self-play search returned no tree to label (it must run MCTS with a tree record).
    #[error("self-play: the search returned no tree to label")]
    NoTree,
    /// A head's arithmetic left the numbers (its weights overflow on these features): no
    /// value is made up.
    #[error("value head: {0}")]
    NonFinite(String),
    /// A malformed line in a JSONL records file.
    #[error("{path}:{line}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A weight file is missing, not a safetensors file, or lacks a tensor.
    #[error(
        "weight file {path}: {reason}\n  fix: train one with `train-value --out {path}` (docs/SELFPLAY.md)"
    )]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A weight tensor has the wrong shape, or the weights do not fit the model they are
    /// used with.
    #[error("weight shape mismatch in {what}: expected {expected:?}, found {found:?}")]
    WeightShape {
        /// Which tensor or input.
        what: String,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Tensor arithmetic (candle) failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The engine failed (hidden states, sampling).
    #[error(transparent)]
    Engine(#[from] thinktree_engine::Error),
    /// The self-play search failed.
    #[error(transparent)]
    Reason(#[from] thinktree_reason::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for thinktree_reason::Error {
    /// A value head used as a scorer reports its failures through the reasoning layer,
    /// typed (downcast `source` to this enum).
    fn from(e: Error) -> Self {
        match e {
            Error::Engine(e) => thinktree_reason::Error::Engine(e),
            Error::Reason(e) => e,
            other => thinktree_reason::Error::ScorerFailed {
                scorer: "value".into(),
                source: Box::new(other),
            },
        }
    }
}
