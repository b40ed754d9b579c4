//! thinktree: make a language model think before it answers.
//!
//! The chain of thought becomes a search tree: each node is a reasoning step the model
//! proposed, scored by a process reward, and Monte Carlo Tree Search spends test-time
//! compute where it pays. This facade re-exports the layers of the library, bottom up:
//!
//! - [`search`] (`thinktree-search`): the generic MCTS core. It knows nothing about
//!   language models — its policy and evaluator are batched, fallible calls that can
//!   be asked for *more* children of a node later (progressive widening), which is what
//!   an LLM that samples steps needs, and what a game that lists its moves ignores.
//! - [`engine`] (`thinktree-engine`): the one trait between a search and a model; a
//!   node's state is a cache handle, siblings are sampled in one call.
//! - [`gguf`] (`thinktree-gguf`): a GGUF's metadata, tokenizer and chat template.
//! - [`llm`] (`thinktree-llm`): the in-process engine, thinktree's own kernels over a
//!   tree-shaped KV cache (children continue from their parent's cache; siblings decode
//!   in one batch).
//! - [`remote`] (`thinktree-remote`): the same trait over OpenAI-compatible inference
//!   servers (vLLM, SGLang, llama.cpp's server), for searches that outgrow one machine.
//! - [`reason`] (`thinktree-reason`): greedy, self-consistency, best-of-N, beam, MCTS,
//!   Marco-o1, rStar and DeepConf over reasoning steps, scorers, answer extraction, the
//!   tree viewer — for any engine.
//! - [`value`] (`thinktree-value`): self-play and a learned value head.
//!
//! Besides re-exports it holds one thing: [`scorers`], the only place that knows every
//! backend, which builds any scorer spec (a `prm:` judge model, a `value:` head).
//!
//! ```
//! use thinktree::search::{ActionsFn, FnEvaluator, Mcts, MctsConfig, from_fn};
//!
//! // Reach 10 by adding 1s and 3s in as few steps as possible (shorter is worth more).
//! let problem = from_fn(
//!     || (0u32, 0u32), // (sum, steps)
//!     |&(sum, n): &(u32, u32), a: &u32| (sum + a, n + 1),
//!     |&(sum, n): &(u32, u32)| match sum {
//!         10 => Some(1.0 / f64::from(n)),
//!         s if s > 10 => Some(0.0),
//!         _ => None,
//!     },
//! );
//! let policy = ActionsFn(|_: &(u32, u32)| vec![(1u32, 1.0), (3u32, 1.0)]);
//! let value = FnEvaluator(|_: &(u32, u32)| 0.2);
//! let mut mcts = Mcts::new(MctsConfig::builder().simulations(3_000).seed(1).build()?)?;
//! let best = mcts.run(&problem, &policy, &value)?.best_path_by_value;
//! assert_eq!(best.iter().sum::<u32>(), 10);
//! assert_eq!(best.len(), 4); // 3 + 3 + 3 + 1 in some order
//! # Ok::<(), thinktree::search::Error>(())
//! ```
#![deny(missing_docs)]

pub mod scorers;

pub use thinktree_engine as engine;
pub use thinktree_gguf as gguf;
pub use thinktree_llm as llm;
pub use thinktree_reason as reason;
pub use thinktree_remote as remote;
pub use thinktree_search as search;
pub use thinktree_value as value;

/// The examples in README.md, compiled and run as doctests so they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
