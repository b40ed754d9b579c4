//! The crate's one error type.
//!
//! Every fallible public function returns [`Result`]. Bad input (a malformed GGUF, an
//! empty prompt, an invalid sampling config, a broken data line) is an [`Error`], never a
//! panic.

use std::path::PathBuf;

/// Everything that can go wrong in `thinktree-llm`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file does not exist where it was looked for.
    #[error(
        "model file not found: {path}\n  fix: run `bash scripts/fetch-model.sh` (downloads SmolLM2-135M-Instruct Q4_1 into models/), or pass --model PATH, or set THINKTREE_MODEL"
    )]
    ModelNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file exists but is not a usable GGUF model.
    #[error(
        "invalid GGUF file {path}: {reason}\n  fix: re-download it with `bash scripts/fetch-model.sh --force`, or pass a valid llama-family GGUF"
    )]
    InvalidGguf {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The GGUF is valid but describes an architecture or tensor layout we do not run.
    #[error("unsupported model: {0}")]
    UnsupportedModel(String),
    /// A metadata key required to build the model or tokenizer is missing or has the wrong type.
    #[error("GGUF metadata key `{key}`: {reason}")]
    Metadata {
        /// The metadata key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// Building or running the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template could not be applied.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A prompt or text that must not be empty was empty.
    #[error("empty prompt: {0}")]
    EmptyPrompt(&'static str),
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The context would exceed the model's maximum length.
    #[error("context length {len} exceeds the model's maximum of {max}")]
    ContextOverflow {
        /// Tokens that would be in context.
        len: usize,
        /// The model's limit.
        max: usize,
    },
    /// A KV-cache handle belongs to another cache or was evicted beyond recovery.
    #[error("kv cache: {0}")]
    KvCache(String),
    /// An error from candle (tensor ops, GGUF reading).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed line in a JSONL data file.
    #[error("{path}:{line}: {reason}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with it.
        reason: String,
    },
    /// A JSON (de)serialisation error.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// An error from the search core.
    #[error("search: {0}")]
    Search(#[from] thinktree_search::Error),
    /// The engine cannot do what was asked (e.g. a remote backend has no hidden states).
    #[error("unsupported by this engine: {0}")]
    Unsupported(String),
    /// A weight file (a value head) is missing, not a safetensors file, or lacks a tensor.
    #[error(
        "weight file {path}: {reason}\n  fix: train one with `train-value --out {path}` (docs/SELFPLAY.md)"
    )]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A weight tensor has the wrong shape, or the weights do not fit the model they are
    /// used with.
    #[error("weight shape mismatch in {what}: expected {expected:?}, found {found:?}")]
    WeightShape {
        /// Which tensor or input.
        what: String,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// An error from an engine backend outside this crate (such as the remote server
    /// backend in `thinktree-remote`); downcast `source` to that crate's error type.
    #[error("{backend} backend: {source}")]
    Backend {
        /// Which backend failed (e.g. `"remote"`).
        backend: &'static str,
        /// The backend's own typed error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
