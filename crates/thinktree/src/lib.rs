//! thinktree: make a language model think before it answers.
//!
//! This facade re-exports the two halves of the library:
//! - [`search`]: the generic Monte Carlo Tree Search core (no LLM dependency),
//! - [`llm`]: the in-process GGUF engine, scorers and the reasoning environment.
#![deny(missing_docs)]

pub use thinktree_llm as llm;
pub use thinktree_search as search;
