//! thinktree-llm: the language-model half of thinktree.
//!
//! The central design choice: **a search node's state is a handle into the model's KV
//! cache.** Tree search differs from chat — thousands of continuations share long
//! prefixes — so the [`Engine`] trait is built around an opaque, cheaply clonable
//! [`Engine::State`]: [`Engine::extend`] continues a state with text, [`Engine::sample`]
//! draws `n` continuations of one state in one batched decode and returns each one's
//! state. Everything above the trait (the policy adapter, scorers and search methods in
//! [`reason`], the GSM8K harness) sees only states, so a prefix is never computed twice
//! and another backend (a remote server) can stand behind the same trait.
//!
//! ```
//! use thinktree_llm::candle_engine::EngineOptions;
//! use thinktree_llm::testing::{TinyModelConfig, tiny_engine};
//! use thinktree_llm::{Engine, SampleParams, StopCondition};
//!
//! // A tiny random GGUF keeps the example fast; `CandleEngine::load(path, opts)` loads a real one.
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Engine
//!
//! [`candle_engine::CandleEngine`] runs a llama/qwen2 GGUF in process. Its state is a
//! [`kv_cache::KvState`], a node of a tree-shaped KV cache: a child stores only its own
//! tokens' keys and values, so continuing a search node computes only new tokens, and the
//! `n` samples of one node are decoded as one batch whose rows share the node's prefix
//! without copying it. The cache has a byte budget; evicted nodes are recomputed from their
//! tokens when needed, which costs time and never changes a result.
#![deny(missing_docs)]

pub mod answer;
pub mod candle_engine;
pub mod chat;
pub mod chat_template;
mod decode_attn;
pub mod engine;
pub mod error;
mod int8;
pub mod kv_cache;
mod linear;
pub mod model;
pub mod model_path;
pub mod reason;
pub mod sampler;
pub mod testing;
pub mod tokenizer;
pub mod value;

pub use chat::{ChatMessage, Role};
pub use chat_template::ChatTemplate;
pub use engine::{Continuation, Engine, FinishReason, SampleParams, StopCondition, Usage};
pub use error::{Error, Result};
pub use model_path::{DEFAULT_MODEL_FILE, ensure_default_model, resolve_model_path};
pub use tokenizer::GgufTokenizer;
