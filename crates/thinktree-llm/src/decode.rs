//! One sampling call's rows between decode steps: [`Decode`] holds everything a batched
//! decode needs from one step to the next (each row's generator, tokens and stop state,
//! the rows' own keys/values), so its steps can run alone ([`Decode::run_alone`]) or
//! merged with other calls' steps into one forward pass (`scheduler.rs`). Either way a
//! row's tokens, log-probabilities and keys come out the same bits.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{LayerKv, Model, RowStep};
use crate::sampler::{find_stop, row_rng, sample_token};
use thinktree_engine::{FinishReason, SampleParams, Usage, confidence_of, top_logprobs};
use thinktree_gguf::GgufTokenizer;

/// One decoding row.
pub(crate) struct Row {
    rng: rand_chacha::ChaCha8Rng,
    pub(crate) tokens: Vec<u32>,
    pub(crate) logprobs: Vec<f32>,
    /// DeepConf token confidences, when the call tracks them.
    pub(crate) confidences: Vec<f32>,
    /// Top log-probabilities per token, when the call tracks confidence.
    pub(crate) top_logprobs: Vec<Vec<f32>>,
    pub(crate) text: String,
    pub(crate) finish: Option<FinishReason>,
    /// Keys/values of the row's tokens that went through the model, when it left the batch.
    pub(crate) kv: Vec<LayerKv>,
    /// Next-token logits after all its tokens (known when it stopped on EOS).
    pub(crate) logits: Option<Vec<f32>>,
}

/// A group of rows continuing one context: its length, its cached keys/values (per
/// layer) and the logits after it.
pub(crate) struct Group {
    pub(crate) len: usize,
    pub(crate) kv: Vec<LayerKv>,
    pub(crate) logits: Arc<Vec<f32>>,
}

/// The state of one sampling call's batched decode between two steps.
pub(crate) struct Decode {
    params: SampleParams,
    groups: Vec<Group>,
    /// Row `r` belongs to group `group_of[r]`; rows are laid out group after group.
    group_of: Vec<usize>,
    pub(crate) rows: Vec<Row>,
    /// Rows still decoding, ascending.
    active: Vec<usize>,
    /// The active rows' own keys/values: per layer `(rows, kv_heads, C, head_dim)` buffers,
    /// of which the first `steps` positions are written (the step after writes the next
    /// in place while `C` has room).
    suffix: Option<Vec<LayerKv>>,
    /// The active rows' logits after the last step (empty before the first).
    step_logits: Vec<Vec<f32>>,
    /// The tokens the active rows feed to the next step.
    feed: Vec<u32>,
    steps: usize,
    /// Tokens generated and computed by the decode steps (prefill is billed by the caller).
    pub(crate) usage: Usage,
}

impl Decode {
    /// Rows for each `(group, n, seed)`: `n` rows of the group, seeded `seed`.
    pub(crate) fn new(params: &SampleParams, groups: Vec<(Group, usize, u64)>) -> Self {
        let group_of: Vec<usize> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, (_, n, _))| std::iter::repeat_n(g, *n))
            .collect();
        let rows: Vec<Row> = groups
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
        Self {
            params: params.clone(),
            active: (0..rows.len()).collect(),
            groups: groups.into_iter().map(|(g, _, _)| g).collect(),
            group_of,
            rows,
            suffix: None,
            step_logits: Vec::new(),
            feed: Vec::new(),
            steps: 0,
            usage: Usage::default(),
        }
    }

    /// Draws every active row's next token from its logits, settles which rows stop
    /// (EOS, a stop string, DeepConf's confidence stop, the token limit or the context
    /// end) and keeps the others' tokens as the next step's feed. Returns whether any row
    /// goes on.
    pub(crate) fn draw(
        &mut self,
        tokenizer: &GgufTokenizer,
        eos: &[u32],
        max_ctx: usize,
    ) -> Result<bool> {
        let params = &self.params;
        let mut keep = Vec::with_capacity(self.active.len());
        let mut feed = Vec::with_capacity(self.active.len());
        // Each row draws from its own generator, so rows sample in parallel (a
        // vocabulary-wide softmax per row is a real share of a batched step).
        let drawn: Vec<(u32, f32)> = {
            let (active, groups, group_of, step_logits) = (
                &self.active,
                &self.groups,
                &self.group_of,
                &self.step_logits,
            );
            let mut live: Vec<&mut Row> = self
                .rows
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| active.binary_search(i).is_ok())
                .map(|(_, row)| row)
                .collect();
            let draw = |(j, row): (usize, &mut &mut Row)| {
                let base = groups[group_of[active[j]]].logits.as_slice();
                let logits = step_logits.get(j).map_or(base, Vec::as_slice);
                sample_token(logits, params, &mut row.rng)
            };
            if live.len() > 1 {
                live.par_iter_mut().enumerate().map(draw).collect()
            } else {
                live.iter_mut().enumerate().map(draw).collect()
            }
        };
        for (j, (&r, &(tok, lp))) in self.active.iter().zip(&drawn).enumerate() {
            let group = &self.groups[self.group_of[r]];
            let logits: &[f32] = self
                .step_logits
                .get(j)
                .map_or(group.logits.as_slice(), Vec::as_slice);
            let pos = group.len + self.steps;
            let row = &mut self.rows[r];
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
            self.usage.generated_tokens += 1;
            let text = tokenizer.decode(&row.tokens)?;
            if let Some((_, s)) = find_stop(&text, &params.stop.stop_strings) {
                // The text runs to the end of the token that completed the stop string:
                // cut inside a token (SmolLM2's `ĊĊ` under a `\n` stop) it would disagree
                // with the cached tokens the state continues.
                row.text = text;
                row.finish = Some(FinishReason::Stop(s.to_string()));
                continue;
            }
            row.text = text;
            // DeepConf's online stop: this row leaves the batch between two decode steps;
            // the others go on unchanged.
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
        if let Some(kv) = &self.suffix {
            for (j, &r) in self.active.iter().enumerate() {
                if !keep.contains(&j) {
                    self.rows[r].kv = take_row(kv, j, self.steps)?;
                }
            }
        }
        if keep.len() < self.active.len()
            && let Some(kv) = self.suffix.take()
            && !keep.is_empty()
        {
            let idx: Vec<u32> = keep.iter().map(|&j| j as u32).collect();
            let idx = Tensor::new(idx.as_slice(), &Device::Cpu)?;
            self.suffix = Some(
                kv.iter()
                    .map(|(k, v)| Ok((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?)))
                    .collect::<Result<_>>()?,
            );
        }
        self.active = keep.iter().map(|&j| self.active[j]).collect();
        self.feed = feed;
        Ok(!self.active.is_empty())
    }

    /// The next decode step's rows, as [`Model::forward_steps`] takes them.
    pub(crate) fn inputs(&self) -> StepInputs<'_> {
        StepInputs {
            prefixes: self
                .active
                .iter()
                .map(|&r| Some(self.groups[self.group_of[r]].kv.as_slice()))
                .collect(),
            positions: self
                .active
                .iter()
                .map(|&r| self.groups[self.group_of[r]].len + self.steps)
                .collect(),
            decode: self,
        }
    }

    /// Takes in a step's output for the active rows: their logits `(rows, vocab)` and
    /// their own keys/values extended by the token fed.
    pub(crate) fn absorb(&mut self, logits: Tensor, kv: Vec<LayerKv>) -> Result<()> {
        self.steps += 1;
        self.suffix = Some(kv);
        self.step_logits = logits.to_vec2::<f32>()?;
        self.usage.computed_tokens += self.active.len() as u64;
        self.usage.forward_calls += 1;
        Ok(())
    }

    /// Every row with the index of its group, in order.
    pub(crate) fn into_rows(self) -> impl Iterator<Item = (usize, Row)> {
        self.group_of.into_iter().zip(self.rows)
    }

    /// Rows active in the next step.
    pub(crate) fn active_rows(&self) -> usize {
        self.active.len()
    }

    /// Every step on its own, one forward pass per token.
    pub(crate) fn run_alone(mut self, model: &Model, tokenizer: &GgufTokenizer) -> Result<Self> {
        let (eos, max_ctx) = (tokenizer.eos_token_ids(), model.config().context_length);
        while self.draw(tokenizer, eos, max_ctx)? {
            let inputs = self.inputs();
            let (logits, kv) = model
                .forward_steps(&[inputs.step()], true)?
                .pop()
                .ok_or_else(|| Error::Shape("a decode step lost its output".into()))?;
            self.absorb(logits, kv)?;
        }
        Ok(self)
    }
}

/// A decode step's per-row arguments, borrowed from its [`Decode`].
pub(crate) struct StepInputs<'a> {
    prefixes: Vec<Option<&'a [LayerKv]>>,
    positions: Vec<usize>,
    decode: &'a Decode,
}

impl StepInputs<'_> {
    /// The step as one part of a merged forward pass.
    pub(crate) fn step(&self) -> RowStep<'_> {
        RowStep {
            tokens: &self.decode.feed,
            prefixes: &self.prefixes,
            suffix: self.decode.suffix.as_deref(),
            own_len: Some(self.decode.steps),
            positions: &self.positions,
        }
    }
}

/// Row `j`'s first `len` positions of each layer's batched keys/values (buffers with room
/// to grow), copied out so the batch can be freed. (`Tensor::copy` would clone the whole
/// batch's storage for every row: a finished row of an 8-row step held 8 rows' keys while
/// the cache counted one.)
fn take_row(kv: &[LayerKv], j: usize, len: usize) -> Result<Vec<LayerKv>> {
    let row =
        |x: &Tensor| -> Result<Tensor> { Ok(x.get(j)?.narrow(1, 0, len)?.force_contiguous()?) };
    kv.iter().map(|(k, v)| Ok((row(k)?, row(v)?))).collect()
}

impl std::fmt::Debug for Decode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decode")
            .field("rows", &self.rows.len())
            .field("active", &self.active.len())
            .field("steps", &self.steps)
            .finish()
    }
}
