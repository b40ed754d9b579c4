//! Attention of new tokens in plain loops over the cached keys
//! ([`crate::kernels::attention`]) instead of tensor ops: for a decode step (one query per
//! head) a chain of tensor ops cost more in dispatch than in arithmetic, and with one code
//! path for prefill and decode a token's keys and values come out bit for bit the same
//! whichever computed them (a context recomputed after an eviction matches the original).
//! It also keeps candle's matmul, which looks its thread count up in `/proc` on every call
//! unless `RAYON_NUM_THREADS` is set, off the hot path.

use candle_core::{CpuStorage, Device, InplaceOp1, Layout, Tensor};

use crate::error::{Error, Result};
use crate::kernels::attention::{self, F32View, OwnStrides, write_own};
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
        if ctx.runs.iter().map(|run| run.rows).sum::<usize>() != rows {
            return Err(Error::Shape(
                "attention runs do not cover the rows exactly".into(),
            ));
        }
        let mut y = Vec::with_capacity(rows * t * qw);
        let mut own = Vec::with_capacity(ctx.runs.len());
        let mut r0 = 0;
        for run in &ctx.runs {
            let (n, s) = (run.rows, run.len);
            let dr = attention::Dims { rows: n, ..d };
            let (q, k, v) = (
                &q[r0 * t * qw..(r0 + n) * t * qw],
                &k[r0 * t * kw..(r0 + n) * t * kw],
                &v[r0 * t * kw..(r0 + n) * t * kw],
            );
            let (own_k, own_v) = (
                extend_own(run.own.map(|kv| &kv.0), s, k, t, dr, ctx.grow)?,
                extend_own(run.own.map(|kv| &kv.1), s, v, t, dr, ctx.grow)?,
            );
            let (Some((kview, at)), Some((vview, at_v))) =
                (F32View::own(&own_k), F32View::own(&own_v))
            else {
                return Err(Error::Shape("own keys are not laid out by position".into()));
            };
            if at != at_v {
                return Err(Error::Shape("own keys and values differ in layout".into()));
            }
            y.extend(attention::attend(
                FloatLevel::best(),
                q,
                &row_prefix[r0..r0 + n],
                (kview.slice()?, vview.slice()?, at),
                s,
                t,
                dr,
            ));
            drop((kview, vview));
            own.push((own_k, own_v));
            r0 += n;
        }
        let y = Tensor::from_vec(y, (rows, t, d.n_head * d.head_dim), &Device::Cpu)?;
        Ok((layer.wo.forward(&y)?, own))
    }
}

/// Each row's own keys (or values) with the `t` new ones (`new`, `(rows, t, kv_heads *
/// head_dim)`) at positions `s..s + t`, as a `(rows, kv_heads, cap, head_dim)` tensor.
/// When `grow` and `own` has room, they are written into it in place and `own` is
/// returned: a decode step used to copy every row's whole own keys into a new tensor per
/// layer (4.6-7 % of a 1,024- or 2,048-token search run, `perf`: all of its `memmove`).
/// Otherwise a new buffer: twice the length when `grow`, so copies happen for doublings
/// only; exactly `s + t` when not (a prefill's result, kept by the tree cache).
///
/// Writing in place is sound because only a decode holds a growing buffer, each step
/// replaces the one it extends, and nothing reads past a buffer's length: a row leaving
/// copies its keys out, rows leaving compact the others into a new buffer, and a failed
/// step rerun writes the same values to the same positions.
fn extend_own(
    own: Option<&Tensor>,
    s: usize,
    new: &[f32],
    t: usize,
    d: attention::Dims,
    grow: bool,
) -> Result<Tensor> {
    if grow && let Some(x) = own {
        let (n, heads, cap, hd) = x.dims4()?;
        if (n, heads, hd) == (d.rows, d.n_kv_head, d.head_dim) && cap >= s + t {
            x.inplace_op1(&WriteOwn { new, s, t, d })?;
            return Ok(x.clone());
        }
    }
    let cap = if grow { (2 * (s + t)).max(16) } else { s + t };
    let to = OwnStrides::packed(d, cap);
    let mut buf = vec![0f32; d.rows * to.row];
    if let Some(x) = own.filter(|_| s > 0) {
        let packed;
        let own = match F32View::own(x) {
            Some(own) => Some(own),
            None => {
                packed = x.contiguous()?;
                F32View::own(&packed)
            }
        };
        let Some((view, from)) = own else {
            return Err(Error::Shape("own keys are not laid out by position".into()));
        };
        attention::copy_own(&mut buf, to, view.slice()?, from, s, d);
    }
    write_own(&mut buf, to, s, new, t, d);
    Ok(Tensor::from_vec(
        buf,
        (d.rows, d.n_kv_head, cap, d.head_dim),
        &Device::Cpu,
    )?)
}

/// [`extend_own`]'s write into a buffer with room, as a candle in-place op (the one way to
/// write a tensor's storage).
struct WriteOwn<'a> {
    new: &'a [f32],
    s: usize,
    t: usize,
    d: attention::Dims,
}

impl InplaceOp1 for WriteOwn<'_> {
    fn name(&self) -> &'static str {
        "thinktree-write-own-kv"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(buf) = storage else {
            candle_core::bail!("own keys must be f32")
        };
        let (dims, st) = (layout.dims(), layout.stride());
        let (rows, heads, hd) = (self.d.rows, self.d.n_kv_head, self.d.head_dim);
        let fits = dims.len() == 4
            && (dims[0], dims[1], dims[3]) == (rows, heads, hd)
            && dims[2] >= self.s + self.t
            && (st[2], st[3]) == (hd, 1)
            && rows > 0
            && heads > 0
            && layout.start_offset()
                + (rows - 1) * st[0]
                + (heads - 1) * st[1]
                + (self.s + self.t) * hd
                <= buf.len();
        if !fits {
            candle_core::bail!("own keys buffer has no room")
        }
        let at = OwnStrides {
            row: st[0],
            head: st[1],
        };
        let Some(buf) = buf.get_mut(layout.start_offset()..) else {
            candle_core::bail!("own keys buffer has no room")
        };
        write_own(buf, at, self.s, self.new, self.t, self.d);
        Ok(())
    }
}
