//! The forward passes: a prefill or sibling step on one shared prefix
//! ([`Model::forward`], [`Model::forward_hidden`]) and a step of rows on different
//! prefixes ([`Model::forward_rows`]), both through one layer loop.
//!
//! The shared prefix's keys and values are never copied per row: queries of all rows are
//! stacked into one matmul against the prefix keys, while each row's own suffix keys are
//! attended separately, and the two score blocks are joined before one softmax.

use candle_core::{D, DType, Device, Tensor};

use crate::error::{Error, Result};

use super::block::{Block, Context};
use super::{LayerKv, Model, ModelConfig, check_position, kv_len, on_pool};

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
            let s_len = kv_len(suffix, 2);
            check_position(pos, kv_len(prefix, 1), s_len)?;
            let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
            let ids = Tensor::from_vec(flat, (rows, t), &Device::Cpu)?;
            let x = self.embed.embedding(&ids)?;
            let cos = self.cos.narrow(0, pos, t)?;
            let sin = self.sin.narrow(0, pos, t)?;
            let mask = causal_mask(self.cfg.n_head / self.cfg.n_kv_head, t, s_len)?;
            let (x, new_kv) = self.run_blocks(x, |i| {
                Context::Shared(Attn {
                    pos,
                    prefix: prefix.and_then(|p| p.get(i)),
                    suffix: suffix.and_then(|s| s.get(i)),
                    cos: &cos,
                    sin: &sin,
                    mask: mask.as_ref(),
                })
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
            let s_len = kv_len(suffix, 2);
            for (p, &pos) in prefixes.iter().zip(positions) {
                if pos + 1 > self.cfg.context_length {
                    return Err(Error::ContextOverflow {
                        len: pos + 1,
                        max: self.cfg.context_length,
                    });
                }
                check_position(pos, kv_len(*p, 1), s_len)?;
            }
            let ids = Tensor::from_vec(tokens.to_vec(), (rows, 1), &Device::Cpu)?;
            let x = self.embed.embedding(&ids)?;
            let (x, new_kv) = self.run_blocks(x, |i| Context::PerRow {
                prefixes: prefixes.iter().map(|p| p.and_then(|p| p.get(i))).collect(),
                suffix: suffix.and_then(|s| s.get(i)),
                positions,
            })?;
            let last = candle_nn::ops::rms_norm(&x.squeeze(1)?, &self.out_norm, self.cfg.rms_eps)?;
            Ok((self.output.forward(&last)?, new_kv))
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

impl Model {
    pub(super) fn attention(
        &self,
        layer: &Block,
        h: &Tensor,
        ctx: &Attn<'_>,
    ) -> Result<(Tensor, LayerKv)> {
        let (rows, t, _) = h.dims3()?;
        if t == 1 {
            return self.decode_attention(layer, h, ctx);
        }
        let (nh, nkv, hd) = (self.cfg.n_head, self.cfg.n_kv_head, self.cfg.head_dim);
        let group = nh / nkv;
        let mut qkv = layer.qkv.forward(h)?.into_iter();
        let (Some(mut q), Some(mut k), Some(mut v)) = (qkv.next(), qkv.next(), qkv.next()) else {
            return Err(Error::UnsupportedModel("q/k/v projection split".into()));
        };
        if let Some((bq, bk, bv)) = &layer.bias_qkv {
            q = q.broadcast_add(bq)?;
            k = k.broadcast_add(bk)?;
            v = v.broadcast_add(bv)?;
        }
        let q = q
            .reshape((rows, t, nh, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let k = k
            .reshape((rows, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let v = v
            .reshape((rows, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let (q, k) = if self.cfg.rope_neox {
            (
                candle_nn::rotary_emb::rope(&q, ctx.cos, ctx.sin)?,
                candle_nn::rotary_emb::rope(&k, ctx.cos, ctx.sin)?,
            )
        } else {
            (
                candle_nn::rotary_emb::rope_i(&q, ctx.cos, ctx.sin)?,
                candle_nn::rotary_emb::rope_i(&k, ctx.cos, ctx.sin)?,
            )
        };
        let (own_k, own_v) = match ctx.suffix {
            Some((sk, sv)) => (Tensor::cat(&[sk, &k], 2)?, Tensor::cat(&[sv, &v], 2)?),
            None => (k, v),
        };
        // Query heads sharing a kv head are stacked: (rows, kv_heads, group * t, head_dim).
        let q = (q.reshape((rows, nkv, group * t, hd))? * (1.0 / (hd as f64).sqrt()))?;
        let own_scores = q.matmul(&own_k.transpose(2, 3)?)?;
        let own_scores = match ctx.mask {
            Some(m) => own_scores.broadcast_add(m)?,
            None => own_scores,
        };
        let y = match ctx.prefix {
            None => {
                let w = candle_nn::ops::softmax_last_dim(&own_scores)?;
                w.matmul(&own_v)?
            }
            Some((pk, pv)) => {
                let p = pk.dim(1)?;
                // All rows' queries against the one shared prefix: one matmul, no copies.
                let qp = if rows == 1 {
                    q.squeeze(0)?
                } else {
                    q.transpose(0, 1)?
                        .contiguous()?
                        .reshape((nkv, rows * group * t, hd))?
                };
                let ps = qp.matmul(&pk.t()?)?;
                let ps = if rows == 1 {
                    ps.unsqueeze(0)?
                } else {
                    ps.reshape((nkv, rows, group * t, p))?.transpose(0, 1)?
                };
                // cat along the last dim of a transposed input is itself strided.
                let scores = Tensor::cat(&[&ps, &own_scores], D::Minus1)?.contiguous()?;
                let w = candle_nn::ops::softmax_last_dim(&scores)?;
                let wp = w.narrow(3, 0, p)?;
                let wo = w.narrow(3, p, own_scores.dim(3)?)?.contiguous()?;
                let yp = if rows == 1 {
                    wp.squeeze(0)?.contiguous()?.matmul(pv)?.unsqueeze(0)?
                } else {
                    wp.transpose(0, 1)?
                        .contiguous()?
                        .reshape((nkv, rows * group * t, p))?
                        .matmul(pv)?
                        .reshape((nkv, rows, group * t, hd))?
                        .transpose(0, 1)?
                };
                (yp + wo.matmul(&own_v)?)?
            }
        };
        let y = y
            .reshape((rows, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((rows, t, nh * hd))?;
        Ok((layer.wo.forward(&y)?, (own_k, own_v)))
    }
}

pub(super) struct Attn<'a> {
    /// Position of the first new token.
    pub(super) pos: usize,
    pub(super) prefix: Option<&'a LayerKv>,
    pub(super) suffix: Option<&'a LayerKv>,
    pub(super) cos: &'a Tensor,
    pub(super) sin: &'a Tensor,
    pub(super) mask: Option<&'a Tensor>,
}

/// Additive mask for the own-token scores `(group * t, s + t)`: query `t_i` sees the `s`
/// suffix keys and new keys up to itself. None when `t == 1` (nothing to hide).
fn causal_mask(group: usize, t: usize, s: usize) -> Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    let cols = s + t;
    let mut m = vec![0f32; group * t * cols];
    for g in 0..group {
        for i in 0..t {
            for j in (s + i + 1)..cols {
                m[(g * t + i) * cols + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Some(Tensor::from_vec(m, (group * t, cols), &Device::Cpu)?))
}

pub(super) fn rope_tables(cfg: &ModelConfig) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / cfg.rope_base.powf(2.0 * i as f32 / cfg.head_dim as f32))
        .collect();
    let n = cfg.context_length;
    let mut ang = Vec::with_capacity(n * half);
    for p in 0..n {
        ang.extend(inv.iter().map(|f| p as f32 * f));
    }
    let ang = Tensor::from_vec(ang, (n, half), &Device::Cpu)?;
    Ok((ang.cos()?.to_dtype(DType::F32)?, ang.sin()?))
}
