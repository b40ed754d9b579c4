//! thinktree-remote: run thinktree's reasoning search against OpenAI-compatible inference
//! servers (vLLM, SGLang, llama.cpp's server, llama-cpp-python).
//!
//! The central design choice: **the remote backend is just another [`Engine`].** The
//! methods and scorers of `thinktree-reason` run unchanged
//! above it. A search node's state is its exact prompt text ([`RemoteState`]); the chat
//! template and the tokenizer run client-side from the model's GGUF metadata, so every
//! request for a shared prefix sends the same bytes and the server's prefix cache plays
//! the role of the in-process KV tree. Requests spread over several servers, with a
//! bound on requests in flight per server, retries with exponential backoff on 429, 5xx
//! and dropped connections, and a fallback to `n` single requests for servers that
//! return one sample per request.
//!
//! Errors are typed ([`Error`]); through the [`Engine`] trait they arrive as
//! `thinktree_engine::Error::Backend` whose source downcasts to [`Error`]. This crate
//! depends on the engine trait and `thinktree-gguf` (tokenizer and template) only: never
//! on the inference kernels or candle-nn.
//!
//!
//! ```
//! use std::time::Duration;
//! use thinktree_engine::{Engine, SampleParams};
//! use thinktree_remote::{RemoteEngine, RemoteOptions};
//!
//! // The client needs only the GGUF's tokenizer and chat template, not its weights.
//! let dir = tempfile::tempdir()?;
//! let gguf = dir.path().join("tiny.gguf");
//! thinktree_gguf::testing::write_tokenizer_gguf(&gguf)?;
//!
//! // Nothing listens on port 9 (discard): every attempt is refused.
//! let opts = RemoteOptions::new(["http://127.0.0.1:9"]).retries(1, Duration::from_millis(10));
//! let engine = RemoteEngine::from_gguf(opts, &gguf)?;
//! let (state, _) = engine.extend(&engine.root(), "Question: 2 + 3 = ?\n")?;
//!
//! let err = engine.sample(&state, 4, &SampleParams::default()).unwrap_err();
//! let remote = match &err {
//!     thinktree_engine::Error::Backend { source, .. } => source.downcast_ref::<thinktree_remote::Error>(),
//!     _ => None,
//! };
//! assert!(matches!(remote, Some(thinktree_remote::Error::Unavailable { attempts: 2, .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod engine;
pub mod error;
mod options;
mod pool;
mod protocol;
#[cfg(feature = "testing")]
pub mod testing;

pub use engine::{RemoteEngine, RemoteState, ServerStats};
pub use error::{Error, Result};
pub use options::{DEFAULT_MAX_RESPONSE_BYTES, RemoteOptions};
pub use thinktree_engine::Engine;
