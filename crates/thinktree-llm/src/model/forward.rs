//! The forward passes: a prefill or sibling step on one shared prefix
//! ([`Model::forward`], [`Model::forward_hidden`]) and a step of rows on different
//! prefixes ([`Model::forward_rows`]), both through one layer loop and one attention
//! (`attention.rs`). The shared prefix's keys and values are never copied per row.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

use super::block::Context;
use super::{LayerKv, Model, ModelConfig, on_pool};

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
            self.check_position(pos, prefix, suffix)?;
            let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
            let ids = Tensor::from_vec(flat, (rows, t), &Device::Cpu)?;
            let x = self.embed(&ids)?;
            let positions = vec![pos; rows];
            let ropes = self.rope_rows(&positions, t);
            let (x, new_kv) = self.run_blocks(x, |i| Context {
                prefixes: vec![prefix.and_then(|p| p.get(i)); rows],
                suffix: suffix.and_then(|s| s.get(i)),
                ropes: &ropes,
            })?;
            let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
            let last = candle_nn::ops::rms_norm(&last, &self.out_norm, self.cfg.rms_eps)?;
            Ok((last, new_kv))
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
        on_pool(|| {
            let rows = tokens.len();
            if rows == 0 || prefixes.len() != rows || positions.len() != rows {
                return Err(Error::Shape(
                    "forward_rows needs one prefix and one position per token".into(),
                ));
            }
            self.check_vocab(tokens)?;
            for (p, &pos) in prefixes.iter().zip(positions) {
                if pos + 1 > self.cfg.context_length {
                    return Err(Error::ContextOverflow {
                        len: pos + 1,
                        max: self.cfg.context_length,
                    });
                }
                self.check_position(pos, *p, suffix)?;
            }
            let ids = Tensor::from_vec(tokens.to_vec(), (rows, 1), &Device::Cpu)?;
            let x = self.embed(&ids)?;
            let ropes = self.rope_rows(positions, 1);
            let (x, new_kv) = self.run_blocks(x, |i| Context {
                prefixes: prefixes.iter().map(|p| p.and_then(|p| p.get(i))).collect(),
                suffix: suffix.and_then(|s| s.get(i)),
                ropes: &ropes,
            })?;
            let last = candle_nn::ops::rms_norm(&x.squeeze(1)?, &self.out_norm, self.cfg.rms_eps)?;
            Ok((self.output.forward(&last)?, new_kv))
        })
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
    /// reading its context from `ctx(layer index)`.
    fn run_blocks<'a>(
        &self,
        mut x: Tensor,
        ctx: impl Fn(usize) -> Context<'a>,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        let mut new_kv = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let (y, kv) = block.forward(self, x, &ctx(i))?;
            new_kv.push(kv);
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
