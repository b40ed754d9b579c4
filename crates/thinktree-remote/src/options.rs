//! How to reach the servers: URLs, timeouts, retries, concurrency.

use std::time::Duration;

use serde_json::{Map, Value, json};
use thinktree_gguf::ChatTemplate;

use crate::error::{Error, Result};

/// The default [`RemoteOptions::max_response_bytes`]: 32 MiB. A completion with one
/// log-probability per token costs the server about 100 bytes per token in JSON, so this
/// leaves room for e.g. 16 samples of 16k tokens; the top-20 alternatives read for
/// next-token probabilities are one token long.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 << 20;

/// Connection and retry settings for [`crate::RemoteEngine`]. Build with
/// [`RemoteOptions::new`] and the chained setters, then check with
/// [`RemoteOptions::validate`] (the engine builder does).
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Base URLs of OpenAI-compatible servers, e.g. `http://127.0.0.1:8080` (a trailing
    /// `/v1` is accepted and ignored).
    pub servers: Vec<String>,
    /// The `model` field sent with each request (vLLM and SGLang need the served name;
    /// llama.cpp servers ignore it).
    pub model: Option<String>,
    /// Limit for one HTTP request, connect to last byte.
    pub timeout: Duration,
    /// Limit for opening a connection.
    pub connect_timeout: Duration,
    /// Retries after the first attempt on connection errors, timeouts, 429 and 5xx.
    pub retries: u32,
    /// Wait before the first retry; doubles with each further one.
    pub backoff: Duration,
    /// Ceiling of the wait between retries.
    pub max_backoff: Duration,
    /// Largest response body read, in bytes; a longer one is refused
    /// ([`crate::Error::ResponseTooLarge`]) after reading at most this much, so a broken
    /// or hostile server cannot exhaust memory.
    pub max_response_bytes: u64,
    /// Requests in flight per server at most; callers beyond it wait for a slot.
    pub max_in_flight: usize,
    /// How many top alternatives to ask for when reading next-token probabilities
    /// (vLLM's default ceiling is 20).
    pub top_logprobs: usize,
    /// Extra JSON fields merged into every completions request (they override ours).
    /// The defaults turn off llama.cpp's extra samplers (`min_p`, `repeat_penalty`) so a
    /// request means the same thing on every server; vLLM ignores unknown fields.
    pub extra_body: Map<String, Value>,
    /// Renders prompts instead of the GGUF's own template (or instead of the few-shot
    /// completion prompt a base model without one gets), as the in-process engine's
    /// option of the same name.
    pub chat_template: Option<ChatTemplate>,
}

impl RemoteOptions {
    /// Defaults for the given servers: 120 s timeout, 4 retries from 250 ms backoff,
    /// 4 requests in flight per server, responses up to 32 MiB.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut extra_body = Map::new();
        extra_body.insert("min_p".into(), json!(0.0));
        extra_body.insert("repeat_penalty".into(), json!(1.0));
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            model: None,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            retries: 4,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_in_flight: 4,
            top_logprobs: 20,
            extra_body,
            chat_template: None,
        }
    }

    /// Parses a comma-separated list of URLs (the `--server` flag).
    pub fn from_list(list: &str) -> Result<Self> {
        let servers: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let opts = Self::new(servers);
        opts.validate()?;
        Ok(opts)
    }

    /// Sets the `model` request field.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Renders prompts with `template` instead of the GGUF's own.
    pub fn chat_template(mut self, template: ChatTemplate) -> Self {
        self.chat_template = Some(template);
        self
    }

    /// Sets the per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry count and the first backoff.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Sets the largest response body accepted, in bytes.
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Sets the per-server in-flight bound.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Adds or replaces one extra request field.
    pub fn extra(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra_body.insert(key.into(), value);
        self
    }

    /// Checks that there is at least one `http(s)://` URL and that bounds are positive.
    pub fn validate(&self) -> Result<()> {
        if self.servers.is_empty() {
            return Err(Error::InvalidConfig(
                "no server URL given (expected e.g. http://127.0.0.1:8080)".into(),
            ));
        }
        for s in &self.servers {
            if !(s.starts_with("http://") || s.starts_with("https://")) {
                return Err(Error::InvalidConfig(format!(
                    "server URL `{s}` must start with http:// or https://"
                )));
            }
        }
        if self.max_in_flight == 0 {
            return Err(Error::InvalidConfig("max_in_flight must be >= 1".into()));
        }
        if self.top_logprobs == 0 {
            return Err(Error::InvalidConfig("top_logprobs must be >= 1".into()));
        }
        if self.max_response_bytes == 0 {
            return Err(Error::InvalidConfig(
                "max_response_bytes must be >= 1".into(),
            ));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::InvalidConfig("timeouts must be > 0".into()));
        }
        Ok(())
    }

    /// The completions endpoint of server `base`.
    pub(crate) fn completions_url(base: &str) -> String {
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        format!("{base}/v1/completions")
    }

    /// Backoff before retry number `retry` (0-based).
    pub(crate) fn backoff_for(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}
