//! The in-process engine: a GGUF model run by candle, with the tree KV cache.
//!
//! [`LocalEngine`] implements [`Engine`] with [`KvState`] as its state: extending or
//! sampling from a state computes only tokens the state does not already hold, and the `n`
//! continuations of one state are decoded together, one batched forward per token.

use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use thinktree_engine::{
    ChatMessage, Continuation, Engine, FinishReason, Piece, Prompt, SampleParams, Usage,
};
use thinktree_gguf::gguf::Content;
use thinktree_gguf::{ChatTemplate, GgufTokenizer};

type EngineResult<T> = thinktree_engine::Result<T>;
use crate::decode::{Decode, Group, Row};
use crate::kv_cache::{KvCache, KvState};
use crate::model::{LayerKv, Model, WeightFormat};
use crate::sampler::log_sum_exp;
use crate::scheduler::{BatchStats, Scheduler};

/// How [`LocalEngine::load`] sets the engine up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Bytes of cached keys/values (and logits) kept resident; least recently used tree
    /// nodes beyond it are dropped and recomputed on demand.
    pub kv_budget_bytes: usize,
    /// In-memory weight format (requantizing trades load time and memory for speed).
    pub weights: WeightFormat,
    /// Replaces the GGUF's chat template (or the fallback for a file without one).
    pub chat_template: Option<ChatTemplate>,
    /// Continuous batching: sampling calls from every thread decode through one
    /// scheduler that merges their steps into shared forward passes (on by default;
    /// results are the same bits either way). Off, each call decodes on its own thread.
    pub continuous_batching: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        // 2 GiB holds ~45k SmolLM2-135M context tokens: a large search tree stays resident.
        // 8-bit weights in thinktree's own kernel: a weight block is read once for all rows
        // of a sibling batch, and a decode step reads a quarter of the bytes of f32
        // (docs/PERFORMANCE.md, "Engine").
        Self {
            kv_budget_bytes: 2 << 30,
            weights: WeightFormat::Int8,
            chat_template: None,
            continuous_batching: true,
        }
    }
}

impl EngineOptions {
    /// Sets the KV memory budget.
    pub fn kv_budget_bytes(mut self, bytes: usize) -> Self {
        self.kv_budget_bytes = bytes;
        self
    }
    /// Sets the in-memory weight format.
    pub fn weights(mut self, weights: WeightFormat) -> Self {
        self.weights = weights;
        self
    }
    /// Turns continuous batching across concurrent calls on or off.
    pub fn continuous_batching(mut self, on: bool) -> Self {
        self.continuous_batching = on;
        self
    }
    /// Renders prompts with `template` instead of the GGUF's own.
    pub fn chat_template(mut self, template: ChatTemplate) -> Self {
        self.chat_template = Some(template);
        self
    }
}

/// A GGUF language model in this process, shareable by many trees and threads.
#[derive(Debug)]
pub struct LocalEngine {
    model: Arc<Model>,
    tokenizer: Arc<GgufTokenizer>,
    template: ChatTemplate,
    cache: KvCache,
    name: String,
    /// Merges concurrent sampling calls' decode steps (`None`: each call alone).
    scheduler: Option<Scheduler>,
}

impl LocalEngine {
    /// Loads a GGUF of a supported architecture
    /// ([`crate::model::config::SUPPORTED_ARCHITECTURES`]). A missing file is [`thinktree_gguf::Error::NotFound`],
    /// an unreadable or truncated one [`thinktree_gguf::Error::InvalidGguf`] (both inside
    /// [`Error::Gguf`]).
    pub fn load(path: impl AsRef<Path>, opts: EngineOptions) -> Result<Self> {
        let path = path.as_ref();
        let (content, mut file) = thinktree_gguf::gguf::open(path)?;
        Self::from_content(path, &content, &mut file, opts)
    }

    /// Loads a GGUF from any seekable reader (bytes in memory, say) with every check
    /// [`LocalEngine::load`] makes; `name` only names the source in errors and is the
    /// model's name when the file has no `general.name`.
    pub fn from_reader<R: Read + Seek>(
        name: impl AsRef<Path>,
        mut reader: R,
        opts: EngineOptions,
    ) -> Result<Self> {
        let path = name.as_ref();
        let content = thinktree_gguf::gguf::read(path, &mut reader)?;
        Self::from_content(path, &content, &mut reader, opts)
    }

    fn from_content<R: Read + Seek>(
        path: &Path,
        content: &Content,
        file: &mut R,
        opts: EngineOptions,
    ) -> Result<Self> {
        let model = Model::from_gguf(content, file, opts.weights).map_err(|e| match e {
            Error::Weights(c) => Error::Gguf(thinktree_gguf::Error::InvalidGguf {
                path: path.to_owned(),
                reason: c.to_string(),
            }),
            other => other,
        })?;
        let tokenizer = GgufTokenizer::from_gguf(content)?;
        let template = match opts.chat_template {
            Some(t) => t,
            None => ChatTemplate::from_gguf(content)?,
        };
        let name = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok().cloned())
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "gguf model".into());
        let (model, tokenizer) = (Arc::new(model), Arc::new(tokenizer));
        Ok(Self {
            cache: KvCache::for_model(&model, opts.kv_budget_bytes),
            scheduler: opts
                .continuous_batching
                .then(|| Scheduler::new(Arc::clone(&model), Arc::clone(&tokenizer))),
            model,
            tokenizer,
            template,
            name,
        })
    }

    /// The shared weights.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The tokenizer read from the GGUF.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The KV store (for memory figures and cache statistics).
    pub fn kv_cache(&self) -> &KvCache {
        &self.cache
    }

    /// The state after appending token ids to `parent`, computing only the new tokens.
    pub fn extend_tokens(&self, parent: &KvState, ids: &[u32]) -> Result<(KvState, Usage)> {
        self.cache.check(parent)?;
        if ids.is_empty() {
            return Ok((parent.clone(), Usage::default()));
        }
        let max = self.model.config().context_length;
        if parent.len() + ids.len() > max {
            return Err(Error::ContextOverflow {
                len: parent.len() + ids.len(),
                max,
            });
        }
        let child = self.cache.child(parent, ids.to_vec())?;
        let prep = self.cache.prepare(&self.model, &child, true)?;
        let usage = Usage {
            prompt_tokens: prep.computed_tokens,
            generated_tokens: 0,
            computed_tokens: prep.computed_tokens,
            forward_calls: prep.forward_calls,
        };
        Ok((child, usage))
    }

    /// The token ids [`Engine::extend_prompt`] appends for `prompt`: markup pieces with
    /// control tokens parsed, text pieces literal, and BOS first when `at_start` and the
    /// model asks for it. Nothing is empty-padded: an empty prompt gives no ids.
    pub fn prompt_ids(&self, prompt: &Prompt, at_start: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for piece in prompt.pieces() {
            let special = matches!(piece, Piece::Markup(_));
            ids.extend(self.tokenizer.encode(piece.as_str(), special)?);
        }
        if at_start && !ids.is_empty() {
            ids = self.tokenizer.with_bos(ids);
        }
        Ok(ids)
    }

    /// The raw next-token logits after `state` (computing what is missing).
    pub fn next_logits(&self, state: &KvState) -> Result<(Arc<Vec<f32>>, Usage)> {
        let prep = self.cache.prepare(&self.model, state, true)?;
        let logits = prep
            .logits
            .ok_or_else(|| Error::KvCache("logits missing after prepare".into()))?;
        let usage = Usage {
            prompt_tokens: prep.computed_tokens,
            generated_tokens: 0,
            computed_tokens: prep.computed_tokens,
            forward_calls: prep.forward_calls,
        };
        Ok((logits, usage))
    }

    /// Samples `n` rows of each `(state, n, seed)` group in one batch (see
    /// [`Engine::sample_many`]): the groups' contexts are prepared on the calling thread,
    /// then the rows decode through the engine's scheduler, in steps shared with every
    /// other call in flight (or alone, without continuous batching).
    #[allow(clippy::type_complexity)]
    fn sample_groups(
        &self,
        groups: &[(&KvState, usize, u64)],
        params: &SampleParams,
    ) -> Result<(Vec<Vec<Continuation<KvState>>>, Usage)> {
        params.validate()?;
        let (decode, mut usage) = crate::model::on_pool(|| self.begin(groups, params))?;
        let decode = match &self.scheduler {
            Some(s) => s.run(decode)?,
            None => crate::model::on_pool(|| decode.run_alone(&self.model, &self.tokenizer))?,
        };
        usage += decode.usage;
        let mut out: Vec<Vec<Continuation<KvState>>> = groups
            .iter()
            .map(|&(_, n, _)| Vec::with_capacity(n))
            .collect();
        for (g, row) in decode.into_rows() {
            out[g].push(self.finish_row(groups[g].0, row)?);
        }
        Ok((out, usage))
    }

    /// Prepares each group's context (computing what the cache lacks) and sets up its
    /// rows; returns them with the prefill's bill.
    fn begin(
        &self,
        groups: &[(&KvState, usize, u64)],
        params: &SampleParams,
    ) -> Result<(Decode, Usage)> {
        for &(state, _, _) in groups {
            self.cache.check(state)?;
        }
        let mut usage = Usage::default();
        let mut prepared = Vec::with_capacity(groups.len());
        for &(state, n, seed) in groups {
            if n == 0 {
                let group = Group {
                    len: state.len(),
                    kv: Vec::new(),
                    logits: Arc::new(Vec::new()),
                };
                prepared.push((group, 0, seed));
                continue;
            }
            let prep = self.cache.prepare(&self.model, state, true)?;
            usage.prompt_tokens += prep.computed_tokens;
            usage.computed_tokens += prep.computed_tokens;
            usage.forward_calls += prep.forward_calls;
            let logits = prep
                .logits
                .ok_or_else(|| Error::KvCache("logits missing after prepare".into()))?;
            let group = Group {
                len: state.len(),
                kv: prep.kv,
                logits,
            };
            prepared.push((group, n, seed));
        }
        Ok((Decode::new(params, prepared), usage))
    }

    /// What the decode scheduler has merged so far (all zero without continuous
    /// batching).
    pub fn batch_stats(&self) -> BatchStats {
        self.scheduler
            .as_ref()
            .map(Scheduler::stats)
            .unwrap_or_default()
    }

    /// Test seam: the scheduler's next round panics.
    #[cfg(test)]
    pub(crate) fn panic_next_scheduler_round(&self) {
        if let Some(s) = &self.scheduler {
            s.panic_next_round();
        }
    }

    fn finish_row(&self, state: &KvState, row: Row) -> Result<Continuation<KvState>> {
        let finish = row.finish.unwrap_or(FinishReason::MaxTokens);
        let child = if row.tokens.is_empty() {
            state.clone()
        } else {
            let child = self.cache.child(state, row.tokens.clone())?;
            if !row.kv.is_empty() {
                let logits = if row
                    .kv
                    .first()
                    .map(|(k, _)| k.dims().get(1) == Some(&row.tokens.len()))
                    == Some(true)
                {
                    row.logits
                } else {
                    None
                };
                self.cache.attach(&child, row.kv, logits)?;
            }
            child
        };
        Ok(Continuation {
            text: row.text,
            tokens: row.tokens,
            logprobs: row.logprobs,
            confidences: row.confidences,
            top_logprobs: row.top_logprobs,
            finish,
            state: child,
        })
    }
}

impl Engine for LocalEngine {
    type State = KvState;

    fn name(&self) -> String {
        self.name.clone()
    }

    /// Literal text: a special-token string in `text` (such as `<|im_start|>`) stays
    /// ordinary characters, exactly as [`Engine::extend`] tokenizes.
    fn tokenize(&self, text: &str) -> EngineResult<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false)?)
    }

    fn detokenize(&self, ids: &[u32]) -> EngineResult<String> {
        Ok(self.tokenizer.decode(ids)?)
    }

    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> EngineResult<Prompt> {
        Ok(self
            .template
            .apply_prompt(messages, add_generation_prompt)?)
    }

    fn root(&self) -> KvState {
        self.cache.root()
    }

    fn state_len(&self, state: &KvState) -> usize {
        state.len()
    }

    fn extend(&self, parent: &KvState, text: &str) -> EngineResult<(KvState, Usage)> {
        self.extend_prompt(parent, &Prompt::text(text))
    }

    fn extend_prompt(&self, parent: &KvState, prompt: &Prompt) -> EngineResult<(KvState, Usage)> {
        let ids = self.prompt_ids(prompt, parent.is_empty())?;
        Ok(self.extend_tokens(parent, &ids)?)
    }

    fn sample(
        &self,
        state: &KvState,
        n: usize,
        params: &SampleParams,
    ) -> EngineResult<(Vec<Continuation<KvState>>, Usage)> {
        let (mut out, usage) = self.sample_groups(&[(state, n, params.seed)], params)?;
        Ok((out.pop().unwrap_or_default(), usage))
    }

    /// Every request's rows decode in one batch: rows of different states attend to
    /// their own prefixes, so a search's whole frontier advances in one forward per
    /// token. Request `i` uses seed `params.seed + i`, so the results are those of
    /// sampling the requests one by one.
    fn sample_many(
        &self,
        requests: &[(&KvState, usize)],
        params: &SampleParams,
    ) -> EngineResult<(Vec<Vec<Continuation<KvState>>>, Usage)> {
        let groups: Vec<(&KvState, usize, u64)> = requests
            .iter()
            .enumerate()
            .map(|(i, &(s, n))| (s, n, params.seed.wrapping_add(i as u64)))
            .collect();
        Ok(self.sample_groups(&groups, params)?)
    }

    fn next_token_logprobs(
        &self,
        state: &KvState,
        candidates: &[u32],
    ) -> EngineResult<(Vec<f32>, Usage)> {
        let (logits, usage) = self.next_logits(state)?;
        let lse = log_sum_exp(&logits);
        let out = candidates
            .iter()
            .map(|&c| {
                logits
                    .get(c as usize)
                    .map(|&x| x - lse)
                    .ok_or(Error::TokenOutOfVocab {
                        id: c,
                        vocab: logits.len(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((out, usage))
    }

    /// Runs the context's last token once more on top of the cached keys/values of the
    /// tokens before it and returns the final-norm hidden state: one token of compute
    /// (plus whatever the cache had to fill in). The normal decode path is untouched.
    fn hidden_state(&self, state: &KvState) -> EngineResult<(Vec<f32>, Usage)> {
        Ok(self.final_hidden(state)?)
    }
}

impl LocalEngine {
    /// [`Engine::hidden_state`] with this crate's error.
    fn final_hidden(&self, state: &KvState) -> Result<(Vec<f32>, Usage)> {
        self.cache.check(state)?;
        let len = state.len();
        let Some(&last) = state.tokens().last() else {
            return Err(Error::Engine(thinktree_engine::Error::EmptyPrompt(
                "hidden_state needs a context that ends in a token (extend the root first)",
            )));
        };
        let prep = self.cache.prepare(&self.model, state, false)?;
        let prefix: Vec<LayerKv> = prep
            .kv
            .iter()
            .map(|(k, v)| {
                // All but the last position (a window layer holds only its tail).
                let n = k.dim(1)?.saturating_sub(1);
                Ok((
                    k.narrow(1, 0, n)?.contiguous()?,
                    v.narrow(1, 0, n)?.contiguous()?,
                ))
            })
            .collect::<Result<_>>()?;
        let (hidden, _) = self.model.forward_hidden(
            &[vec![last]],
            (len > 1).then_some(prefix.as_slice()),
            None,
            len - 1,
        )?;
        let usage = Usage {
            prompt_tokens: prep.computed_tokens,
            generated_tokens: 0,
            computed_tokens: prep.computed_tokens + 1,
            forward_calls: prep.forward_calls + 1,
        };
        Ok((hidden.squeeze(0)?.to_vec1::<f32>()?, usage))
    }
}
