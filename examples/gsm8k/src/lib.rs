//! The GSM8K harness of thinktree: the library behind the `gsm8k`, `selfplay` and
//! `train-value` binaries, so every part can be tested (the binaries only parse and call).
//!
//! [`cli`] parses `gsm8k`'s options, [`data`] loads problem sets, [`model_path`] finds
//! (and fetches) the model, [`solver`] answers one problem with one method,
//! [`evaluate`] schedules (problem, method) pairs over parallel workers, [`run`] is
//! `gsm8k`'s whole job ([`variant`] names a method run with options that change it),
//! [`report`] and [`plot`] summarise it, [`trees`] writes the tree
//! viewer's pages. [`selfplay`] and
//! [`train_value`] are the other two binaries' work. [`journal`] is the one resume
//! mechanism of all three: an append-only, locked JSONL file ([`output`] holds `gsm8k`'s
//! record type).
#![deny(missing_docs)]

pub mod cli;
pub mod data;
pub mod entry;
pub mod evaluate;
pub mod journal;
pub mod model_path;
pub mod output;
pub mod plot;
pub mod report;
pub mod run;
pub mod selfplay;
pub mod solver;
pub mod train_value;
pub mod trees;
pub mod variant;
