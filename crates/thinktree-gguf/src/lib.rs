//! What a GGUF file says besides its weights: typed metadata, the tokenizer and the chat
//! template.
//!
//! **A client that never runs the model still needs its exact tokens and prompt text.**
//! The remote backend sends prompts to servers and must count tokens and render the chat
//! template byte for byte as the server's model expects, so the prefix caches hit; the
//! in-process engine needs the same three things. Both take them from here, and neither
//! drags the other's dependencies along: this crate must never depend on the inference
//! kernels, on candle-nn or on the search (it uses candle-core only for its GGUF reader).
//!
//! - [`gguf`]: opening a file with errors that say what is wrong, and one family of typed
//!   metadata getters ([`gguf::Metadata`]).
//! - [`GgufTokenizer`]: byte-level BPE or SentencePiece built from `tokenizer.ggml.*`,
//!   identical to llama.cpp's tokenization on SmolLM2's and Gemma 3's test strings.
//! - [`ChatTemplate`]: the file's own Jinja template (minijinja); ChatML, or a plain
//!   few-shot completion prompt for a base model, when it has none.
//!
//! ```no_run
//! use thinktree_gguf::{ChatTemplate, GgufTokenizer, gguf};
//! use thinktree_engine::ChatMessage;
//!
//! let (content, _file) = gguf::open("models/SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let tokenizer = GgufTokenizer::from_gguf(&content)?;
//! let template = ChatTemplate::from_gguf(&content)?;
//! let prompt = template.apply(&[ChatMessage::user("2 + 2?")], true)?;
//! println!("{} tokens", tokenizer.encode(&prompt, true)?.len());
//! # Ok::<(), thinktree_gguf::Error>(())
//! ```
#![deny(missing_docs)]

mod chat_template;
mod error;
pub mod gguf;
#[cfg(feature = "testing")]
pub mod testing;
mod tokenizer;

pub use chat_template::{COMPLETION, ChatTemplate};
pub use error::{Error, Result};
pub use tokenizer::GgufTokenizer;
