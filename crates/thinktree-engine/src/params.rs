//! What a sampling call asks for: [`SampleParams`] and its [`StopCondition`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// When a sampled continuation stops (besides EOS, which always stops it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopCondition {
    /// Stop as soon as the generated text contains any of these strings. The matched
    /// string is kept in the continuation's text, which runs to the end of the token
    /// that completed it (a token is never split, so the text is exactly what the
    /// continuation's state holds: a `\n` stop matched inside a `\n\n` token keeps both).
    pub stop_strings: Vec<String>,
    /// Stop after this many generated tokens.
    pub max_tokens: usize,
}

impl StopCondition {
    /// Stop at a newline or after `max_tokens`.
    pub fn newline(max_tokens: usize) -> Self {
        Self {
            stop_strings: vec!["\n".into()],
            max_tokens,
        }
    }
    /// Stop at a blank line or after `max_tokens`.
    pub fn blank_line(max_tokens: usize) -> Self {
        Self {
            stop_strings: vec!["\n\n".into()],
            max_tokens,
        }
    }
    /// Stop only at EOS or after `max_tokens` (fixed-size chunks).
    pub fn tokens(max_tokens: usize) -> Self {
        Self {
            stop_strings: Vec::new(),
            max_tokens,
        }
    }
}

/// Sampling settings for one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleParams {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the smallest set with this much mass (None: all).
    pub top_p: Option<f32>,
    /// When each continuation stops.
    pub stop: StopCondition,
    /// Seed of this call's random stream: the same seed, state and params give the same
    /// continuations.
    pub seed: u64,
}

impl Default for SampleParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: None,
            top_p: Some(0.95),
            stop: StopCondition::newline(128),
            seed: 0,
        }
    }
}

impl SampleParams {
    /// Greedy decoding with the given stop condition.
    pub fn greedy(stop: StopCondition) -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            stop,
            seed: 0,
        }
    }

    /// Checks ranges: temperature >= 0 and finite, top_k >= 1, top_p in (0, 1],
    /// max_tokens >= 1.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::InvalidParams(format!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidParams("top_k must be >= 1".into()));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::InvalidParams(format!(
                "top_p must be in (0, 1], got {p}"
            )));
        }
        if self.stop.max_tokens == 0 {
            return Err(Error::InvalidParams("max_tokens must be >= 1".into()));
        }
        if self.stop.stop_strings.iter().any(|s| s.is_empty()) {
            return Err(Error::InvalidParams(
                "stop strings must not be empty".into(),
            ));
        }
        Ok(())
    }
}
