//! The forward passes: a prefill or sibling step on one shared prefix
//! ([`Model::forward`], [`Model::forward_hidden`]) and a step of rows on different
//! prefixes ([`Model::forward_rows`]), both through one layer loop and one attention
//! (`attention.rs`). The shared prefix's keys and values are never copied per row.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

use super::block::{Context, Run};
use super::{LayerKv, Model, ModelConfig, on_pool};

/// One search's rows in a merged decode step ([`Model::forward_steps`]): the arguments of
/// [`Model::forward_rows`], and how many own positions the rows have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowStep<'a> {
    /// One token per row.
    pub tokens: &'a [u32],
    /// Each row's shared prefix keys/values (per layer `(kv_heads, P_r, head_dim)`).
    pub prefixes: &'a [Option<&'a [LayerKv]>],
    /// The rows' own keys/values (per layer `(rows, kv_heads, C, head_dim)`, of which the
    /// first `own_len` positions are theirs: `C` may be larger, room to grow).
    pub suffix: Option<&'a [LayerKv]>,
    /// `S`, the rows' own positions; None: each layer's `C` (exact tensors, whose window
    /// layers may hold fewer positions than the others).
    pub own_len: Option<usize>,
    /// Each row's position (`P_r + S`).
    pub positions: &'a [usize],
}

impl Model {
    /// Runs `tokens` (`rows` x `t`, all rows at positions `pos..pos + t`) through the model.
    ///
    /// `prefix` holds per-layer keys/values `(kv_heads, P, head_dim)` shared by every row
    /// (the context all rows continue from); `suffix` holds per-layer `(rows, kv_heads, S,
    /// head_dim)` for tokens each row has of its own, so `pos` must equal `P + S`.
    /// Returns the logits of each row's last token `(rows, vocab)` and the rows' own
    /// keys/values extended by the new tokens `(rows, kv_heads, S + t, head_dim)`.
    pub fn forward(
        &self,
        tokens: &[Vec<u32>],
        prefix: Option<&[LayerKv]>,
        suffix: Option<&[LayerKv]>,
        pos: usize,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        on_pool(|| {
            let (hidden, new_kv) = self.forward_hidden(tokens, prefix, suffix, pos)?;
            Ok((self.output.forward(&hidden)?, new_kv))
        })
    }

    /// Like [`Model::forward`], but returns each row's final hidden state `(rows,
    /// embedding)` instead of logits: the output of the final norm at the last token, the
    /// vector the output projection reads. A value head reads this.
    pub fn forward_hidden(
        &self,
        tokens: &[Vec<u32>],
        prefix: Option<&[LayerKv]>,
        suffix: Option<&[LayerKv]>,
        pos: usize,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        on_pool(|| {
            let rows = tokens.len();
            let t = tokens.first().map_or(0, Vec::len);
            if rows == 0 || t == 0 || tokens.iter().any(|r| r.len() != t) {
                return Err(Error::Shape(
                    "forward needs >= 1 row of equal, non-zero length".into(),
                ));
            }
            if pos + t > self.cfg.context_length {
                return Err(Error::ContextOverflow {
                    len: pos + t,
                    max: self.cfg.context_length,
                });
            }
            self.check_vocab(tokens.iter().flatten())?;
            self.check_position(pos, prefix, suffix, None)?;
            let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
            let ids = Tensor::from_vec(flat, (rows, t), &Device::Cpu)?;
            let x = self.embed(&ids)?;
            let positions = vec![pos; rows];
            let ropes = self.rope_rows(&positions, t);
            let (x, mut new_kv) = self.run_blocks(x, 1, |i| Context {
                prefixes: vec![prefix.and_then(|p| p.get(i)); rows],
                runs: vec![Run::exact(rows, suffix.and_then(|s| s.get(i)))],
                ropes: &ropes,
                grow: false,
            })?;
            let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
            let last = candle_nn::ops::rms_norm(&last, &self.out_norm, self.cfg.rms_eps)?;
            Ok((last, new_kv.pop().unwrap_or_default()))
        })
    }

    /// One decode step for rows of **different** contexts: row `r` feeds `tokens[r]` at
    /// position `positions[r]` on top of `prefixes[r]` (per-layer `(kv_heads, P_r,
    /// head_dim)`, shared by every row that continues the same context) and the rows' own
    /// keys/values `suffix` (per layer `(rows, kv_heads, S, head_dim)`, the same `S` for
    /// every row), so `P_r + S` must equal `positions[r]`. Returns the rows' logits `(rows,
    /// vocab)` and their own keys/values extended by the new token.
    pub fn forward_rows(
        &self,
        tokens: &[u32],
        prefixes: &[Option<&[LayerKv]>],
        suffix: Option<&[LayerKv]>,
        positions: &[usize],
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        let step = RowStep {
            tokens,
            prefixes,
            suffix,
            own_len: None,
            positions,
        };
        self.forward_steps(&[step], false)?
            .pop()
            .ok_or_else(|| Error::Shape("forward_rows lost its step".into()))
    }

    /// The decode steps of several searches merged into one forward pass: every
    /// projection reads its weights once for all their rows, while each step keeps its
    /// own rows' keys (of its own length `S`). Returns, per step, what
    /// [`Model::forward_rows`] returns for it alone, bit for bit (the kernels compute each
    /// row by the same instructions whatever the batch around it). With `grow`, the own
    /// keys/values returned are buffers with room for later steps, and a suffix with room
    /// is written in place (a decode's; see `attention.rs`): only the first `own_len + 1`
    /// positions of what it returns are the rows'.
    pub(crate) fn forward_steps(
        &self,
        steps: &[RowStep<'_>],
        grow: bool,
    ) -> Result<Vec<(Tensor, Vec<LayerKv>)>> {
        on_pool(|| {
            for step in steps {
                self.check_step(step)?;
            }
            let tokens: Vec<u32> = steps.iter().flat_map(|s| s.tokens).copied().collect();
            let positions: Vec<usize> = steps.iter().flat_map(|s| s.positions).copied().collect();
            let rows = tokens.len();
            let ids = Tensor::from_vec(tokens, (rows, 1), &Device::Cpu)?;
            let x = self.embed(&ids)?;
            let ropes = self.rope_rows(&positions, 1);
            let (x, new_kv) = self.run_blocks(x, steps.len(), |i| Context {
                prefixes: steps
                    .iter()
                    .flat_map(|s| s.prefixes)
                    .map(|p| p.and_then(|p| p.get(i)))
                    .collect(),
                runs: steps
                    .iter()
                    .map(|s| {
                        let own = s.suffix.and_then(|kv| kv.get(i));
                        match s.own_len {
                            Some(len) => Run {
                                rows: s.tokens.len(),
                                own,
                                len,
                            },
                            None => Run::exact(s.tokens.len(), own),
                        }
                    })
                    .collect(),
                ropes: &ropes,
                grow,
            })?;
            let last = candle_nn::ops::rms_norm(&x.squeeze(1)?, &self.out_norm, self.cfg.rms_eps)?;
            let logits = self.output.forward(&last)?;
            let mut out = Vec::with_capacity(steps.len());
            let mut r0 = 0;
            for (step, kv) in steps.iter().zip(new_kv) {
                let n = step.tokens.len();
                out.push((logits.narrow(0, r0, n)?, kv));
                r0 += n;
            }
            Ok(out)
        })
    }

    /// The checks [`Model::forward_steps`] makes on one step before any arithmetic.
    fn check_step(&self, step: &RowStep<'_>) -> Result<()> {
        let rows = step.tokens.len();
        if rows == 0 || step.prefixes.len() != rows || step.positions.len() != rows {
            return Err(Error::Shape(
                "a decode step needs one prefix and one position per token".into(),
            ));
        }
        self.check_vocab(step.tokens)?;
        for (p, &pos) in step.prefixes.iter().zip(step.positions) {
            if pos + 1 > self.cfg.context_length {
                return Err(Error::ContextOverflow {
                    len: pos + 1,
                    max: self.cfg.context_length,
                });
            }
            self.check_position(pos, *p, step.suffix, step.own_len)?;
        }
        Ok(())
    }

    /// The token embeddings of `ids` (scaled for Gemma).
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.embed.embedding(ids)?;
        Ok(match self.embed_scale {
            Some(s) => x.affine(f64::from(s), 0.0)?,
            None => x,
        })
    }

    /// The one layer loop, shared by prefill and decode: every block in turn, each
    /// reading its context from `ctx(layer index)`. Returns the residual stream and, for
    /// each of the `runs` runs of rows, their own keys/values of every layer.
    fn run_blocks<'a>(
        &self,
        mut x: Tensor,
        runs: usize,
        ctx: impl Fn(usize) -> Context<'a>,
    ) -> Result<(Tensor, Vec<Vec<LayerKv>>)> {
        let mut new_kv: Vec<Vec<LayerKv>> = (0..runs)
            .map(|_| Vec::with_capacity(self.blocks.len()))
            .collect();
        for (i, block) in self.blocks.iter().enumerate() {
            let (y, kv) = block.forward(self, x, &ctx(i))?;
            if kv.len() != runs {
                return Err(Error::Shape(
                    "a block returned the wrong number of runs".into(),
                ));
            }
            for (run, layer) in new_kv.iter_mut().zip(kv) {
                run.push(layer);
            }
            x = y;
        }
        Ok((x, new_kv))
    }
}

/// Rotary inverse frequencies `scale * base^(-2i / head_dim) / factor_i`, `head_dim / 2`
/// of them (`factors`: Llama 3's `rope_freqs.weight`, else all 1).
pub(super) fn rope_inverse_frequencies(
    cfg: &ModelConfig,
    base: f32,
    scale: f32,
    factors: Option<&[f32]>,
) -> Vec<f32> {
    (0..cfg.head_dim / 2)
        .map(|i| {
            let f = factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
            scale / base.powf(2.0 * i as f32 / cfg.head_dim as f32) / f
        })
        .collect()
}
