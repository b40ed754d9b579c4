//! The in-process engine: a GGUF model run by candle, with the tree KV cache.
//!
//! [`LocalEngine`] implements [`Engine`] with [`KvState`] as its state: extending or
//! sampling from a state computes only tokens the state does not already hold, and the `n`
//! continuations of one state are decoded together, one batched forward per token.

use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use thinktree_engine::{
    ChatMessage, Continuation, Engine, FinishReason, Piece, Prompt, SampleParams, Usage,
    confidence_of, top_logprobs,
};
use thinktree_gguf::gguf::Content;
use thinktree_gguf::{ChatTemplate, GgufTokenizer};

type EngineResult<T> = thinktree_engine::Result<T>;
use crate::kv_cache::{KvCache, KvState};
use crate::model::{LayerKv, Model, WeightFormat};
use crate::sampler::{find_stop, log_sum_exp, row_rng, sample_token};

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
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    cache: KvCache,
    name: String,
}

/// One decoding row of [`LocalEngine::sample`].
struct Row {
    rng: rand_chacha::ChaCha8Rng,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    /// DeepConf token confidences, when the call tracks them.
    confidences: Vec<f32>,
    /// Top log-probabilities per token, when the call tracks confidence.
    top_logprobs: Vec<Vec<f32>>,
    text: String,
    finish: Option<FinishReason>,
    /// Keys/values of the row's tokens that went through the model, when it left the batch.
    kv: Vec<LayerKv>,
    /// Next-token logits after all its tokens (known when it stopped on EOS).
    logits: Option<Vec<f32>>,
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
        Ok(Self {
            cache: KvCache::for_model(&model, opts.kv_budget_bytes),
            model: Arc::new(model),
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
    /// [`Engine::sample_many`]).
    #[allow(clippy::type_complexity)]
    fn sample_groups(
        &self,
        groups: &[(&KvState, usize, u64)],
        params: &SampleParams,
    ) -> Result<(Vec<Vec<Continuation<KvState>>>, Usage)> {
        // Each step's row sampling is parallel too: one hand-over to the pool per call.
        crate::model::on_pool(|| {
            params.validate()?;
            let mut usage = Usage::default();
            let mut preps = Vec::with_capacity(groups.len());
            let mut bases = Vec::with_capacity(groups.len());
            for &(state, _, _) in groups {
                self.cache.check(state)?;
            }
            for &(state, n, _) in groups {
                if n == 0 {
                    preps.push(Vec::new());
                    bases.push(Arc::new(Vec::new()));
                    continue;
                }
                let prep = self.cache.prepare(&self.model, state, true)?;
                usage.prompt_tokens += prep.computed_tokens;
                usage.computed_tokens += prep.computed_tokens;
                usage.forward_calls += prep.forward_calls;
                bases.push(
                    prep.logits
                        .ok_or_else(|| Error::KvCache("logits missing after prepare".into()))?,
                );
                preps.push(prep.kv);
            }
            let eos = self.tokenizer.eos_token_ids();
            let max_ctx = self.model.config().context_length;
            // Row r belongs to group group_of[r]; rows are laid out group after group.
            let group_of: Vec<usize> = groups
                .iter()
                .enumerate()
                .flat_map(|(g, &(_, n, _))| std::iter::repeat_n(g, n))
                .collect();
            let mut rows: Vec<Row> = groups
                .iter()
                .flat_map(|&(_, n, seed)| (0..n).map(move |i| (seed, i)))
                .map(|(seed, i)| Row {
                    rng: row_rng(seed, i),
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    confidences: Vec::new(),
                    top_logprobs: Vec::new(),
                    text: String::new(),
                    finish: None,
                    kv: Vec::new(),
                    logits: None,
                })
                .collect();
            let mut active: Vec<usize> = (0..rows.len()).collect();
            let mut suffix: Option<Vec<LayerKv>> = None;
            let mut step_logits: Vec<Vec<f32>> = Vec::new();
            let mut steps = 0usize;
            loop {
                let mut keep = Vec::with_capacity(active.len());
                let mut feed = Vec::with_capacity(active.len());
                // Each row draws from its own generator, so rows sample in parallel (a
                // vocabulary-wide softmax per row is a real share of a batched step).
                let drawn: Vec<(u32, f32)> = {
                    let mut live: Vec<&mut Row> = rows
                        .iter_mut()
                        .enumerate()
                        .filter(|(i, _)| active.binary_search(i).is_ok())
                        .map(|(_, row)| row)
                        .collect();
                    let draw = |(j, row): (usize, &mut &mut Row)| {
                        let base = bases[group_of[active[j]]].as_slice();
                        let logits = step_logits.get(j).map_or(base, Vec::as_slice);
                        sample_token(logits, params, &mut row.rng)
                    };
                    if live.len() > 1 {
                        live.par_iter_mut().enumerate().map(draw).collect()
                    } else {
                        live.iter_mut().enumerate().map(draw).collect()
                    }
                };
                for (j, (&r, &(tok, lp))) in active.iter().zip(&drawn).enumerate() {
                    let base = bases[group_of[r]].as_slice();
                    let logits: &[f32] = step_logits.get(j).map_or(base, Vec::as_slice);
                    let pos = groups[group_of[r]].0.len() + steps;
                    let row = &mut rows[r];
                    if eos.contains(&tok) {
                        row.finish = Some(FinishReason::Eos);
                        row.logits = Some(logits.to_vec());
                        continue;
                    }
                    row.tokens.push(tok);
                    row.logprobs.push(lp);
                    if let Some(c) = &params.stop.confidence {
                        let top = top_logprobs(logits, c.top_k);
                        row.confidences.push(confidence_of(&top));
                        row.top_logprobs.push(top);
                    }
                    usage.generated_tokens += 1;
                    let text = self.tokenizer.decode(&row.tokens)?;
                    if let Some((_, s)) = find_stop(&text, &params.stop.stop_strings) {
                        // The text runs to the end of the token that completed the stop
                        // string: cut inside a token (SmolLM2's `ĊĊ` under a `\n` stop)
                        // it would disagree with the cached tokens the state continues.
                        row.text = text;
                        row.finish = Some(FinishReason::Stop(s.to_string()));
                        continue;
                    }
                    row.text = text;
                    // DeepConf's online stop: this row leaves the batch between two decode
                    // steps; the others go on unchanged.
                    if params
                        .stop
                        .confidence
                        .is_some_and(|c| c.should_stop(&row.confidences))
                    {
                        row.finish = Some(FinishReason::LowConfidence);
                        continue;
                    }
                    if row.tokens.len() >= params.stop.max_tokens || pos + 1 > max_ctx {
                        row.finish = Some(FinishReason::MaxTokens);
                        continue;
                    }
                    keep.push(j);
                    feed.push(tok);
                }
                if let Some(kv) = &suffix {
                    for (j, &r) in active.iter().enumerate() {
                        if !keep.contains(&j) {
                            rows[r].kv = take_row(kv, j)?;
                        }
                    }
                }
                if keep.is_empty() {
                    break;
                }
                if keep.len() < active.len()
                    && let Some(kv) = suffix.take()
                {
                    let idx: Vec<u32> = keep.iter().map(|&j| j as u32).collect();
                    let idx = Tensor::new(idx.as_slice(), &Device::Cpu)?;
                    suffix = Some(
                        kv.iter()
                            .map(|(k, v)| Ok((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?)))
                            .collect::<Result<_>>()?,
                    );
                }
                active = keep.iter().map(|&j| active[j]).collect();
                let prefixes: Vec<Option<&[LayerKv]>> = active
                    .iter()
                    .map(|&r| Some(preps[group_of[r]].as_slice()))
                    .collect();
                let positions: Vec<usize> = active
                    .iter()
                    .map(|&r| groups[group_of[r]].0.len() + steps)
                    .collect();
                let (logits, kv) =
                    self.model
                        .forward_rows(&feed, &prefixes, suffix.as_deref(), &positions)?;
                steps += 1;
                suffix = Some(kv);
                step_logits = logits.to_vec2::<f32>()?;
                usage.computed_tokens += active.len() as u64;
                usage.forward_calls += 1;
            }
            let mut out: Vec<Vec<Continuation<KvState>>> = groups
                .iter()
                .map(|&(_, n, _)| Vec::with_capacity(n))
                .collect();
            for (row, &g) in rows.into_iter().zip(&group_of) {
                out[g].push(self.finish_row(groups[g].0, row)?);
            }
            Ok((out, usage))
        })
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

/// Row `j` of each layer's batched keys/values, copied out so the batch can be freed.
/// (`Tensor::copy` would clone the whole batch's storage for every row: a finished row of
/// an 8-row step held 8 rows' keys while the cache counted one.)
fn take_row(kv: &[LayerKv], j: usize) -> Result<Vec<LayerKv>> {
    kv.iter()
        .map(|(k, v)| Ok((k.get(j)?.force_contiguous()?, v.get(j)?.force_contiguous()?)))
        .collect()
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
