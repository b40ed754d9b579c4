//! The one trait between a reasoning search and a language model.
//!
//! **A search node's state is a cache handle, and siblings are sampled in one call.**
//! Tree search is not chat: thousands of continuations share long prefixes, and a node's
//! children are drawn together. So [`Engine`] is built around an opaque, cheaply
//! clonable [`Engine::State`] (for the in-process engine a node of a tree-shaped KV cache,
//! for a remote server the exact prompt text its prefix cache keys on):
//! [`Engine::extend`] continues a state with text and computes only the new tokens, and
//! [`Engine::sample`] draws `n` continuations of one state in one batched decode,
//! returning each one's state. Everything above the trait (methods, scorers, the GSM8K
//! harness) sees only states, so a prefix is never computed twice, and a backend is
//! swapped without touching the search.
//!
//! This crate holds the trait and its plain data ([`SampleParams`], [`StopCondition`],
//! [`Continuation`], [`FinishReason`], [`Usage`], [`ChatMessage`]) and a small [`Error`].
//! It must never depend on a backend (candle, kernels, HTTP) or on the search: it is the
//! line both sides are written against.
//!
//! ```
//! use thinktree_engine::{SampleParams, StopCondition, Usage};
//!
//! // Siblings of one node: eight rows, each stopping at its own newline.
//! let params = SampleParams { seed: 7, stop: StopCondition::newline(64), ..SampleParams::default() };
//! params.validate()?;
//! let bill = Usage { generated_tokens: 40, ..Usage::default() } + Usage { generated_tokens: 2, ..Usage::default() };
//! assert_eq!(bill.generated_tokens, 42);
//! assert!(SampleParams { temperature: -1.0, ..params }.validate().is_err());
//! # Ok::<(), thinktree_engine::Error>(())
//! ```
#![deny(missing_docs)]

mod chat;
mod continuation;
mod error;
mod params;
mod prompt;
mod usage;

pub use chat::{ChatMessage, Role};
pub use continuation::{Continuation, FinishReason};
pub use error::{Error, Result};
pub use params::{
    ConfidenceStop, SampleParams, StopCondition, confidence_of, relative_confidence,
    token_confidence, top_logprobs,
};
pub use prompt::{Piece, Prompt};
pub use usage::Usage;

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

    /// Token ids of `text`, tokenized as literal text: control-token strings in it are
    /// ordinary characters, and no BOS is added.
    fn tokenize(&self, text: &str) -> Result<Vec<u32>>;

    /// Text of token ids.
    fn detokenize(&self, ids: &[u32]) -> Result<String>;

    /// The model's chat template applied to `messages`; with `add_generation_prompt` the
    /// prompt ends where the assistant's reply begins. The messages' contents come back as
    /// [`Piece::Text`], the template's own text as [`Piece::Markup`].
    fn chat_prompt(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<Prompt>;

    /// The empty context.
    fn root(&self) -> Self::State;

    /// Number of tokens in a state's context.
    fn state_len(&self, state: &Self::State) -> usize;

    /// The state after appending `text` to `parent`, tokenized as literal text (never
    /// parsed for control tokens). Only the new tokens are computed. A sequence starts
    /// with BOS when the model asks for one; BOS never lands mid-context.
    fn extend(&self, parent: &Self::State, text: &str) -> Result<(Self::State, Usage)>;

    /// The state after appending `prompt` to `parent`: its markup pieces parsed for
    /// control tokens, its text pieces literal (see [`Prompt`]).
    fn extend_prompt(&self, parent: &Self::State, prompt: &Prompt) -> Result<(Self::State, Usage)>;

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
    /// head (the `thinktree-value` crate). Engines that cannot expose it (a remote server) keep this
    /// default, an [`Error::Unsupported`].
    fn hidden_state(&self, state: &Self::State) -> Result<(Vec<f32>, Usage)> {
        let _ = state;
        Err(Error::Unsupported(format!(
            "engine `{}` does not expose hidden states (needed by a value head)",
            self.name()
        )))
    }
}
