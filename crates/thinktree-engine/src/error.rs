//! The errors any engine call can return.

/// What went wrong in an [`crate::Engine`] call.
///
/// The variants a caller can act on are spelled out; everything a particular backend
/// knows better (a malformed model file, an HTTP failure, a cache miss) travels typed in
/// [`Error::Backend`], to be downcast to that backend's own error enum.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Sampling parameters out of range (temperature, top-k, top-p, stop condition).
    #[error("invalid sampling parameters: {0}")]
    InvalidParams(String),
    /// A text that must not be empty was empty.
    #[error("empty prompt: {0}")]
    EmptyPrompt(&'static str),
    /// A token id outside the model's vocabulary was asked about.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfVocab {
        /// The id asked about.
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
    /// The engine cannot do what was asked (e.g. a remote backend has no hidden states).
    #[error("unsupported by this engine: {0}")]
    Unsupported(String),
    /// A backend's own typed error; downcast `source` to that crate's error type.
    #[error("{backend} backend: {source}")]
    Backend {
        /// Which backend failed (e.g. `"local"`, `"remote"`).
        backend: &'static str,
        /// The backend's own typed error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
