//! The crate's one error type.
//!
//! The [`thinktree_engine::Engine`] trait speaks `thinktree_engine::Error`, so every error
//! here also converts into [`thinktree_engine::Error::Backend`] with this type as its
//! source: callers above the engine line can still downcast to it and tell a dead server
//! from a bad request.

/// Everything that can go wrong talking to inference servers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is out of range (no servers, a malformed URL, zero retries budget...).
    #[error("invalid remote config: {0}")]
    InvalidConfig(String),
    /// Every attempt failed with a retryable error (connection refused or dropped,
    /// timeout, HTTP 429 or 5xx) and the retry budget is spent.
    #[error(
        "no server answered after {attempts} attempts (last: {last_url}: {last_error})\n  fix: check that the server(s) are running and reachable, or raise --retries / the timeout"
    )]
    Unavailable {
        /// Attempts made (first try plus retries).
        attempts: u32,
        /// The server of the last attempt.
        last_url: String,
        /// What went wrong on the last attempt.
        last_error: String,
    },
    /// The server rejected the request (an HTTP 4xx other than 429); retrying would not
    /// help.
    #[error("{url} answered HTTP {status}: {body}")]
    Rejected {
        /// The endpoint.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The start of the response body (servers explain themselves there).
        body: String,
    },
    /// The server's answer is not the OpenAI completions format we expect.
    #[error("{url}: malformed response: {reason}")]
    Protocol {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The response body is longer than [`crate::RemoteOptions::max_response_bytes`]; it
    /// was read no further. Not retried: the same request would most likely get the
    /// same answer again.
    #[error(
        "{url}: the response body exceeds the {limit}-byte limit (read no further)\n  fix: ask for fewer samples (n) or tokens (max_tokens), or raise RemoteOptions::max_response_bytes"
    )]
    ResponseTooLarge {
        /// The endpoint.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The server lacks something the search needs and there is no fallback.
    #[error(
        "{url} does not support {feature}\n  fix: use a server with OpenAI-compatible completions that returns {feature} (vLLM, SGLang, llama.cpp server, llama-cpp-python)"
    )]
    Unsupported {
        /// The endpoint.
        url: String,
        /// The missing feature (e.g. `"logprobs"`).
        feature: &'static str,
    },
    /// User text holds a control token's string. An OpenAI-compatible server tokenizes a
    /// string prompt with control tokens parsed, and some (llama-cpp-python's) accept no
    /// token-id prompt, so such text cannot be sent as literal text: it is refused before
    /// any request.
    #[error(
        "the prompt's text contains the control token {token:?}; a server would read it as one, so it is not sent"
    )]
    ControlTokenInText {
        /// The control token's text.
        token: String,
    },
    /// The GGUF's tokenizer or chat template could not be read or applied.
    #[error(transparent)]
    Gguf(#[from] thinktree_gguf::Error),
    /// An engine-level error (bad sampling parameters, an empty prompt).
    #[error(transparent)]
    Engine(#[from] thinktree_engine::Error),
}

impl From<Error> for thinktree_engine::Error {
    fn from(e: Error) -> Self {
        match e {
            // Engine-level errors keep their own type so callers match them as usual.
            Error::Engine(inner) => inner,
            Error::Gguf(inner) => inner.into(),
            other => thinktree_engine::Error::Backend {
                backend: "remote",
                source: Box::new(other),
            },
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
