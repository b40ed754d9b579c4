//! The GSM8K evaluation harness of thinktree, as a library so its parts can be tested.
//!
//! [`cli`] parses options, [`data`] loads problem sets, [`run`] solves (problem, method)
//! pairs in parallel over one shared model, [`output`] streams and resumes the results
//! file, [`report`] builds the per-method table and [`plot`] draws accuracy against
//! compute.
#![deny(missing_docs)]

pub mod cli;
pub mod data;
pub mod model_path;
pub mod output;
pub mod plot;
pub mod report;
pub mod run;
pub mod thread_env;
