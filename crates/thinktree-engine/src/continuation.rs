//! What a sampling call returns: one [`Continuation`] per row and why it ended.

use serde::{Deserialize, Serialize};

/// Why a continuation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// One of the stop strings appeared (the string that matched).
    Stop(String),
    /// The model emitted an end-of-sequence token.
    Eos,
    /// `max_tokens` was reached.
    MaxTokens,
    /// The group confidence fell under [`crate::ConfidenceStop::threshold`].
    LowConfidence,
}

/// One sampled continuation of a state.
#[derive(Debug, Clone)]
pub struct Continuation<S> {
    /// The generated text (including a matched stop string, excluding EOS): the exact text
    /// of `tokens`, so it re-tokenizes to what the state holds.
    pub text: String,
    /// The generated token ids (excluding EOS).
    pub tokens: Vec<u32>,
    /// Natural-log probability of each generated token under the model's unmodified
    /// distribution (temperature 1, no truncation), one per entry of `tokens`.
    pub logprobs: Vec<f32>,
    /// DeepConf token confidence of each generated token ([`crate::token_confidence`]),
    /// when the call's [`crate::StopCondition::confidence`] asked for it; else empty.
    pub confidences: Vec<f32>,
    /// The [`crate::ConfidenceStop::top_k`] largest log-probabilities at each generated
    /// position, largest first ([`crate::top_logprobs`]), when confidence was tracked;
    /// else empty. Marco-o1's reward reads them ([`crate::relative_confidence`]).
    pub top_logprobs: Vec<Vec<f32>>,
    /// Why it stopped.
    pub finish: FinishReason,
    /// The state after this continuation: parent context plus `tokens`. Continuing from
    /// it reuses everything already computed.
    pub state: S,
}

impl<S> Continuation<S> {
    /// Sum of token log-probabilities.
    pub fn total_logprob(&self) -> f32 {
        self.logprobs.iter().sum()
    }
    /// Mean token log-probability (0 for an empty continuation).
    pub fn mean_logprob(&self) -> f32 {
        if self.logprobs.is_empty() {
            0.0
        } else {
            self.total_logprob() / self.logprobs.len() as f32
        }
    }
}
