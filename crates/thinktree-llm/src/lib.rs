//! thinktree-llm: the language-model half of thinktree.
//!
//! (Crate docs with the central design choice and a doctest are written once the engine lands.)
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
pub mod engine;
pub mod error;
pub mod kv_cache;
pub mod model;
pub mod model_path;
pub mod reason;
pub mod sampler;
pub mod testing;
pub mod tokenizer;

pub use chat::{ChatMessage, Role};
pub use chat_template::ChatTemplate;
pub use engine::{Continuation, Engine, FinishReason, SampleParams, StopCondition, Usage};
pub use error::{Error, Result};
pub use model_path::{DEFAULT_MODEL_FILE, ensure_default_model, resolve_model_path};
pub use tokenizer::GgufTokenizer;
