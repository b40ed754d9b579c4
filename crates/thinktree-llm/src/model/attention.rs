//! Attention of new tokens in plain loops over the cached keys
//! ([`crate::kernels::attention`]) instead of tensor ops: for a decode step (one query per
//! head) a chain of tensor ops cost more in dispatch than in arithmetic, and with one code
//! path for prefill and decode a token's keys and values come out bit for bit the same
//! whichever computed them (a context recomputed after an eviction matches the original).
//! It also keeps candle's matmul, which looks its thread count up in `/proc` on every call
//! unless `RAYON_NUM_THREADS` is set, off the hot path.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::attention;
use crate::kernels::simd::FloatLevel;

use super::block::{Block, Context};
use super::{LayerKv, Model};

impl Model {
    /// Attention for `t` new tokens per row (`h` is `(rows, t, embedding)`), rotated by
    /// `ctx.cos` / `ctx.sin`, on top of each row's prefix
    /// `ctx.prefixes[r]` (shared by every row that continues the same context) and the
    /// rows' own keys, run by run (`ctx.runs`). Returns the attention output projected by
    /// `wo` and, per run, the rows' own keys/values extended by the new tokens.
    pub(super) fn attention(
        &self,
        layer: &Block,
        h: &Tensor,
        ctx: &Context<'_>,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        let (rows, t, _) = h.dims3()?;
        let d = attention::Dims {
            rows,
            n_head: self.cfg.n_head,
            n_kv_head: self.cfg.n_kv_head,
            head_dim: self.cfg.head_dim,
            scale: self.cfg.attn_scale,
            window: layer.window,
        };
        let mut parts = layer.qkv.forward(h)?.into_iter();
        let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::UnsupportedModel("q/k/v projection split".into()));
        };
        let flat = |t: Tensor, bias: Option<&Tensor>| -> Result<Vec<f32>> {
            let t = match bias {
                Some(b) => t.broadcast_add(b)?,
                None => t,
            };
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        };
        let b = layer.bias_qkv.as_ref();
        let (mut q, mut k, v) = (
            flat(q, b.map(|b| &b.0))?,
            flat(k, b.map(|b| &b.1))?,
            flat(v, b.map(|b| &b.2))?,
        );
        if let Some((qn, kn)) = &layer.qk_norm {
            attention::rms_norm_heads(&mut q, qn, self.cfg.rms_eps);
            attention::rms_norm_heads(&mut k, kn, self.cfg.rms_eps);
        }
        let half = d.head_dim / 2;
        let (qw, kw) = (d.n_head * d.head_dim, d.n_kv_head * d.head_dim);
        let Some((cos, sin)) = ctx.ropes.get(layer.rope) else {
            return Err(Error::UnsupportedModel(
                "no rotary table for a layer".into(),
            ));
        };
        // One (row, token) per chunk, in the order of the rotary tables.
        for (i, (qr, kr)) in q.chunks_mut(qw).zip(k.chunks_mut(kw)).enumerate() {
            let (cos, sin) = (
                &cos[i * half..(i + 1) * half],
                &sin[i * half..(i + 1) * half],
            );
            attention::rope_in_place(qr, d.head_dim, cos, sin, self.cfg.rope_neox);
            attention::rope_in_place(kr, d.head_dim, cos, sin, self.cfg.rope_neox);
        }
        // Each distinct prefix is made contiguous once and read in place by all its rows.
        let mut distinct: Vec<(&LayerKv, Tensor, Tensor)> = Vec::new();
        let mut which: Vec<Option<usize>> = Vec::with_capacity(rows);
        for p in &ctx.prefixes {
            which.push(match p {
                None => None,
                Some(kv) => Some(
                    match distinct.iter().position(|(x, _, _)| std::ptr::eq(*x, *kv)) {
                        Some(i) => i,
                        None => {
                            distinct.push((kv, kv.0.contiguous()?, kv.1.contiguous()?));
                            distinct.len() - 1
                        }
                    },
                ),
            });
        }
        let guards = distinct
            .iter()
            .map(|(_, k, v)| Ok((attention::F32View::new(k)?, attention::F32View::new(v)?)))
            .collect::<Result<Vec<_>>>()?;
        let views = guards
            .iter()
            .map(|(k, v)| Ok((k.slice()?, v.slice()?)))
            .collect::<Result<Vec<_>>>()?;
        let row_prefix: Vec<Option<(&[f32], &[f32])>> = which
            .iter()
            .map(|w| w.and_then(|i| views.get(i).copied()))
            .collect();
        // Runs of rows with their own keys of one length each (one run unless the steps of
        // several searches were merged): every (row, query, head) is computed by the same
        // code whatever run it is in, so merging never changes a row's bits.
        if ctx.runs.iter().map(|&(n, _)| n).sum::<usize>() != rows {
            return Err(Error::Shape(
                "attention runs do not cover the rows exactly".into(),
            ));
        }
        let mut y = Vec::with_capacity(rows * t * qw);
        let mut own = Vec::with_capacity(ctx.runs.len());
        let mut r0 = 0;
        for &(n, suffix) in &ctx.runs {
            let dr = attention::Dims { rows: n, ..d };
            let (q, k, v) = (
                &q[r0 * t * qw..(r0 + n) * t * qw],
                &k[r0 * t * kw..(r0 + n) * t * kw],
                &v[r0 * t * kw..(r0 + n) * t * kw],
            );
            let s = match suffix {
                Some((sk, _)) => sk.dim(2)?,
                None => 0,
            };
            let (own_k, own_v) = match suffix {
                Some((sk, sv)) => (
                    attention::with_f32(sk, |x| attention::append_own(Some(x), s, k, t, dr))?,
                    attention::with_f32(sv, |x| attention::append_own(Some(x), s, v, t, dr))?,
                ),
                None => (
                    attention::append_own(None, 0, k, t, dr),
                    attention::append_own(None, 0, v, t, dr),
                ),
            };
            y.extend(attention::attend(
                FloatLevel::best(),
                q,
                &row_prefix[r0..r0 + n],
                (&own_k, &own_v),
                s,
                t,
                dr,
            ));
            own.push((
                attention::own_tensor(own_k, dr, s + t)?,
                attention::own_tensor(own_v, dr, s + t)?,
            ));
            r0 += n;
        }
        let y = Tensor::from_vec(y, (rows, t, d.n_head * d.head_dim), &Device::Cpu)?;
        Ok((layer.wo.forward(&y)?, own))
    }
}
