//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong reading a GGUF's metadata, tokenizer or chat template.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not exist.
    #[error("model file not found: {path}")]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file exists but is not a usable GGUF (bad magic, truncated, inconsistent).
    #[error(
        "invalid GGUF file {path}: {reason}\n  fix: re-download it, or pass a valid GGUF model"
    )]
    InvalidGguf {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A metadata key is missing or has the wrong type or an impossible value.
    #[error("GGUF metadata key `{key}`: {reason}")]
    Metadata {
        /// The metadata key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The vocabulary is of a kind this crate does not build (it names what is supported).
    #[error("unsupported tokenizer: {0}")]
    UnsupportedTokenizer(String),
    /// Building or running the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template could not be compiled or applied.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A text that must not be empty was empty.
    #[error("empty input: {0}")]
    Empty(&'static str),
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for thinktree_engine::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Empty(what) => thinktree_engine::Error::EmptyPrompt(what),
            other => thinktree_engine::Error::Backend {
                backend: "gguf",
                source: Box::new(other),
            },
        }
    }
}
