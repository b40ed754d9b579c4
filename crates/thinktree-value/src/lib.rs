//! thinktree-value: learn a value model from the search's own trees (self-play).
//!
//! This is the only crate that trains (candle-nn's optimiser); the engine and the
//! reasoning layer never depend on it. The `thinktree` facade builds its
//! [`ValueScorer`] for `value:PATH` scorer specs.
//!
//! The o1-style data flywheel in four pieces:
//!
//! 1. **Search and label** ([`selfplay_problem`], [`label_tree`]): MCTS solves a training
//!    problem (never seeing its gold answer); afterwards every step of the tree is labelled
//!    with its Math-Shepherd estimate, the share of finished paths at or below it whose
//!    answer matches the gold answer, and sibling steps whose estimates differ become
//!    preference pairs.
//! 2. **Records** ([`records`]): one versioned JSONL line per step or pair
//!    ([`RECORD_VERSION`]); docs/SELFPLAY.md documents the format.
//! 3. **Train** ([`train`]): the frozen model's final hidden state after each step
//!    ([`step_features`], [`thinktree_engine::Engine::hidden_state`]) feeds a small MLP
//!    ([`ValueHead`]) trained with AdamW on binary cross-entropy against the soft labels;
//!    weights are saved as safetensors.
//! 4. **Search with it** ([`ValueScorer`]): `--scorer value:PATH` (or a weighted mix such
//!    as `value:PATH:0.5,confidence:0.5`) makes the head MCTS's value function.
//!
//! ```
//! use thinktree_value::{Example, TrainConfig, ValueHead, train};
//!
//! // Two separable clusters train to a head that tells them apart.
//! let ex: Vec<Example> = (0..64)
//!     .map(|i| {
//!         let good = i % 2 == 0;
//!         let x = if good { 1.0 } else { -1.0 };
//!         Example { features: vec![x, 0.5 * x, (i as f32).sin()], label: f32::from(u8::from(good)), group: format!("p{i}") }
//!     })
//!     .collect();
//! let cfg = TrainConfig { epochs: 60, lr: 1e-2, hidden: 8, ..TrainConfig::default() };
//! let trained = train(&ex, &cfg, |_| {})?;
//! let p = trained.head.predict(&[vec![1.0, 0.5, 0.0], vec![-1.0, -0.5, 0.0]])?;
//! assert!(p[0] > 0.8 && p[1] < 0.2);
//! # Ok::<(), thinktree_value::Error>(())
//! ```

#![deny(missing_docs)]

mod error;
mod export;
mod features;
mod head;
mod label;
pub mod records;
mod scorer;
mod train;

pub use error::{Error, Result};
pub use export::{SelfPlay, SelfPlayOptions, selfplay_problem};
pub use features::step_features;
pub use head::{HEAD_FORMAT_VERSION, ValueHead};
pub use label::{LabelOptions, Rollout, label_tree, leaf_counts};
pub use records::{
    PairRecord, PairSide, RECORD_VERSION, Record, StepRecord, parse_record, read_records,
    write_records,
};
pub use scorer::ValueScorer;
pub use train::{
    EpochStats, Example, TrainConfig, Trained, bce_with_logits, evaluate, train, write_history_csv,
};
