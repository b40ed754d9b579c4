//! The engine line: what the reasoning layer needs from a language model.
//!
//! Everything above this trait (policy adapter, scorers, search methods, the GSM8K
//! harness) is written against [`Engine`] only. The in-process candle engine is one
//! implementation; a remote OpenAI-compatible server backend is another.
//!
//! The central idea is the [`Engine::State`]: an opaque, cheaply clonable handle to "the
//! context so far" (for the in-process engine, a node of the tree-shaped KV cache). A
//! search node stores its state; expanding the node continues from it, so a shared
//! prefix is never computed twice.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use crate::chat::ChatMessage;
use crate::error::{Error, Result};

/// Compute spent by one or more engine calls: the unit two methods are compared in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens the model actually computed (prefill not served from a cache).
    pub prompt_tokens: u64,
    /// Tokens sampled (summed over all continuations).
    pub generated_tokens: u64,
    /// Token positions the model computed in total: prefill plus one per batch row per
    /// decode step. This is the honest cost of a call.
    pub computed_tokens: u64,
    /// Forward passes of the model.
    pub forward_calls: u64,
}

impl AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.prompt_tokens += o.prompt_tokens;
        self.generated_tokens += o.generated_tokens;
        self.computed_tokens += o.computed_tokens;
        self.forward_calls += o.forward_calls;
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(mut self, o: Self) -> Self {
        self += o;
        self
    }
}

/// When a sampled continuation stops (besides EOS, which always stops it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopCondition {
    /// Stop as soon as the generated text contains any of these strings. The matched
    /// string is kept at the end of the continuation's text.
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
            return Err(Error::InvalidConfig(format!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidConfig("top_k must be >= 1".into()));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::InvalidConfig(format!(
                "top_p must be in (0, 1], got {p}"
            )));
        }
        if self.stop.max_tokens == 0 {
            return Err(Error::InvalidConfig("max_tokens must be >= 1".into()));
        }
        if self.stop.stop_strings.iter().any(|s| s.is_empty()) {
            return Err(Error::InvalidConfig(
                "stop strings must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// Why a continuation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// One of the stop strings appeared (the string that matched).
    Stop(String),
    /// The model emitted an end-of-sequence token.
    Eos,
    /// `max_tokens` was reached.
    MaxTokens,
}

/// One sampled continuation of a state.
#[derive(Debug, Clone)]
pub struct Continuation<S> {
    /// The generated text (including a matched stop string, excluding EOS).
    pub text: String,
    /// The generated token ids (excluding EOS).
    pub tokens: Vec<u32>,
    /// Natural-log probability of each generated token under the model's unmodified
    /// distribution (temperature 1, no truncation), one per entry of `tokens`.
    pub logprobs: Vec<f32>,
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

/// A language model as the reasoning layer sees it.
///
/// Implementations must be shareable across threads (`Send + Sync`): many trees and rayon
/// workers drive one engine, whose weights are immutable.
pub trait Engine: Send + Sync {
    /// A handle to a context (the tokens so far and whatever is cached for them).
    /// Cloning is cheap; a state stays valid for as long as it is held.
    type State: Clone + Send + Sync + std::fmt::Debug;

    /// A short human-readable name of the model (for reports).
    fn name(&self) -> String;

    /// Token ids of `text` (no special tokens added).
    fn tokenize(&self, text: &str) -> Result<Vec<u32>>;

    /// Text of token ids.
    fn detokenize(&self, ids: &[u32]) -> Result<String>;

    /// The model's chat template applied to `messages`; with `add_generation_prompt` the
    /// text ends where the assistant's reply begins.
    fn chat_prompt(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String>;

    /// The empty context.
    fn root(&self) -> Self::State;

    /// Number of tokens in a state's context.
    fn state_len(&self, state: &Self::State) -> usize;

    /// The state after appending `text` to `parent`. Only the new tokens are computed.
    fn extend(&self, parent: &Self::State, text: &str) -> Result<(Self::State, Usage)>;

    /// `n` continuations of `state`, decoded together (one batched forward per token).
    fn sample(
        &self,
        state: &Self::State,
        n: usize,
        params: &SampleParams,
    ) -> Result<(Vec<Continuation<Self::State>>, Usage)>;

    /// Continuations of several states at once: `requests[i] = (state, n)`. Engines that
    /// can batch different prefixes in one forward override this; the default samples
    /// each request in turn with seeds `params.seed + i`.
    #[allow(clippy::type_complexity)]
    fn sample_many(
        &self,
        requests: &[(&Self::State, usize)],
        params: &SampleParams,
    ) -> Result<(Vec<Vec<Continuation<Self::State>>>, Usage)> {
        let mut usage = Usage::default();
        let mut out = Vec::with_capacity(requests.len());
        for (i, (state, n)) in requests.iter().enumerate() {
            let p = SampleParams {
                seed: params.seed.wrapping_add(i as u64),
                ..params.clone()
            };
            let (c, u) = self.sample(state, *n, &p)?;
            usage += u;
            out.push(c);
        }
        Ok((out, usage))
    }

    /// Natural-log probabilities of each candidate token as the next token after `state`
    /// (e.g. the ids of " Yes" and " No" for self-evaluation).
    fn next_token_logprobs(
        &self,
        state: &Self::State,
        candidates: &[u32],
    ) -> Result<(Vec<f32>, Usage)>;

    /// The model's final hidden state at the last token of `state` (the output of the
    /// final norm, the vector the output projection reads): the features of a learned value
    /// head ([`crate::value`]). Engines that cannot expose it (a remote server) keep this
    /// default, an [`Error::Unsupported`].
    fn hidden_state(&self, state: &Self::State) -> Result<(Vec<f32>, Usage)> {
        let _ = state;
        Err(Error::Unsupported(format!(
            "engine `{}` does not expose hidden states (needed by a value head)",
            self.name()
        )))
    }
}
