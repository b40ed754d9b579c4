//! thinktree-llm: the in-process engine, a GGUF model run by thinktree's own kernels.
//!
//! **A search node's state is a node of a tree-shaped KV cache.** [`LocalEngine`]
//! implements [`thinktree_engine::Engine`] with a [`kv_cache::KvState`] as its state: a
//! child stores only its own tokens' keys and values, so continuing a search node computes
//! only new tokens, and the `n` samples of one node are decoded as one batch whose rows
//! share the node's prefix without copying it. The cache has a byte budget; evicted nodes
//! are recomputed from their tokens when needed.
//!
//! **One engine serves every thread, and concurrent searches share forward passes.**
//! Sampling calls made at once from several threads (several searches, problems or
//! methods) decode through one scheduler that merges their steps into one batched
//! forward per token, rows joining and leaving between steps (continuous batching); each
//! call's results are bit for bit what it gets alone. Share the engine (`&LocalEngine`
//! across `std::thread::scope`, or an `Arc`) and it happens; [`BatchStats`] says how much
//! was merged.
//!
//! Layers, bottom up: `kernels` (the 8-bit block matmul with its scalar reference and
//! SIMD variants, decode attention in plain loops), [`model`] (config, weights, one struct
//! per transformer block, one layer loop for prefill and decode), [`kv_cache`],
//! [`sampler`], `decode` (one sampling call's rows between steps), `scheduler` (the
//! merging of concurrent calls' steps), and [`engine`] tying them to the trait. The tokenizer and chat template
//! come from `thinktree-gguf`. This crate must never depend on the reasoning layer, the
//! search core or candle-nn's training code; a library takes a model path (finding and
//! downloading models is the binaries' business).
//!
//! ```
//! use thinktree_llm::EngineOptions;
//! use thinktree_llm::testing::{TinyModelConfig, tiny_engine};
//! use thinktree_engine::{Engine, SampleParams, StopCondition};
//!
//! // A tiny random GGUF keeps the example fast; `LocalEngine::load(path, opts)` loads a real one.
//! let dir = tempfile::tempdir()?;
//! let engine = tiny_engine(dir.path(), &TinyModelConfig::default(), EngineOptions::default())?;
//!
//! let (prompt, cost) = engine.extend(&engine.root(), "Question: 2 + 3 = ?\n")?;
//! assert_eq!(cost.prompt_tokens as usize, engine.state_len(&prompt));
//!
//! // Four sibling steps, decoded together; each stops on its own at a newline.
//! let params = SampleParams { seed: 7, stop: StopCondition::newline(16), ..SampleParams::default() };
//! let (steps, _) = engine.sample(&prompt, 4, &params)?;
//! assert_eq!(steps.len(), 4);
//!
//! // Continuing a step reuses everything its state holds: only the new text is computed
//! // (plus at most the step's last sampled token, not yet run through the model).
//! let text = "So the answer is 5.";
//! let (_, more) = engine.extend(&steps[0].state, text)?;
//! assert!(more.computed_tokens as usize <= engine.tokenize(text)?.len() + 1);
//!
//! // Two searches on two threads share the engine: their decode steps may merge into one
//! // forward pass, and each gets exactly what it would get alone.
//! let (a, b) = std::thread::scope(|s| {
//!     let a = s.spawn(|| engine.sample(&prompt, 2, &params));
//!     let b = s.spawn(|| engine.sample(&steps[0].state, 3, &params));
//!     (a.join().expect("thread"), b.join().expect("thread"))
//! });
//! let alone = engine.sample(&prompt, 2, &params)?.0;
//! assert!(a?.0.iter().zip(&alone).all(|(x, y)| x.tokens == y.tokens && x.logprobs == y.logprobs));
//! assert_eq!(b?.0.len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod decode;
pub mod engine;
pub mod error;
mod kernels;
pub mod kv_cache;
pub mod model;
pub mod sampler;
mod scheduler;
#[cfg(feature = "testing")]
pub mod testing;

pub use engine::{EngineOptions, LocalEngine};
pub use error::{Error, Result};
pub use model::WeightFormat;
pub use scheduler::BatchStats;

/// The variant of the 8-bit matmul kernel this process runs (`avxvnni`, `avx512vl+vnni`,
/// `avx2+fma`, `avx512vnni`, `neon` on aarch64, or `scalar`), the fastest measured among
/// those the CPU reports, chosen at run time whatever the build's `-C target-cpu`
/// (`THINKTREE_KERNEL=<name>` picks another variant the CPU has; `scalar` forces the
/// portable reference).
pub fn kernel() -> &'static str {
    kernels::simd::Level::best().name()
}

/// How the 8-bit kernel holds weights whose values fit in 4 bits (the GGUF's Q4_1 and
/// Q4_0): `packed`, two weights per byte unpacked in registers by every kernel variant
/// (the default: a token reads about half the bytes), or `unpacked`, a byte each, when
/// `THINKTREE_Q4=unpacked` is set (for comparisons). Read once per process, like
/// `THINKTREE_KERNEL`; both layouts compute the same bits.
pub fn q4_layout() -> &'static str {
    kernels::int8::Q4Layout::configured().name()
}
