//! The crate's one error type.
//!
//! Every fallible public function returns [`Result`]. Bad input (a malformed GGUF, an
//! unsupported architecture, a token outside the vocabulary, a context past the model's
//! length) is an [`Error`], never a panic. Through the [`thinktree_engine::Engine`] trait
//! these travel as [`thinktree_engine::Error`]: the variants the trait names directly,
//! the rest typed inside its `Backend` variant (downcast to this enum).

/// Everything that can go wrong in the in-process engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read as a GGUF, or its metadata, tokenizer or template is
    /// malformed.
    #[error(transparent)]
    Gguf(#[from] thinktree_gguf::Error),
    /// The GGUF is valid but describes an architecture or tensor layout this engine does
    /// not run.
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// A weight tensor's data could not be read or converted.
    #[error("weights: {0}")]
    Weights(#[from] candle_core::Error),
    /// An engine option is out of range (a KV budget, a weight format name).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A forward pass was called with inputs of inconsistent shapes (a caller bug inside
    /// this crate, reported instead of a panic).
    #[error("forward pass: {0}")]
    Shape(String),
    /// A token id outside the model's vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfVocab {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// The context would exceed the model's maximum length.
    #[error("context length {len} exceeds the model's maximum of {max}")]
    ContextOverflow {
        /// Tokens that would be in context.
        len: usize,
        /// The model's limit.
        max: usize,
    },
    /// A KV-cache handle belongs to another cache, or its keys do not line up with the
    /// position asked for.
    #[error("kv cache: {0}")]
    KvCache(String),
    /// The engine's decode scheduler (the thread that merges concurrent sampling calls
    /// into shared forward passes) could not start, has stopped, or dropped this call
    /// because its decode step panicked (a bug; the scheduler recovers and later calls
    /// are served).
    #[error("decode scheduler: {0}")]
    Scheduler(String),
    /// An I/O error, with the path involved (writing a test model).
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An engine-level error (sampling parameters, an empty prompt).
    #[error(transparent)]
    Engine(#[from] thinktree_engine::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for thinktree_engine::Error {
    fn from(e: Error) -> Self {
        use thinktree_engine::Error as E;
        match e {
            Error::Engine(e) => e,
            Error::ContextOverflow { len, max } => E::ContextOverflow { len, max },
            Error::TokenOutOfVocab { id, vocab } => E::TokenOutOfVocab { id, vocab },
            other => E::Backend {
                backend: "local",
                source: Box::new(other),
            },
        }
    }
}
