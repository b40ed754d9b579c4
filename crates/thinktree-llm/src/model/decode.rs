//! Decode-step attention: one new token per row, in plain loops over the cached keys
//! ([`crate::kernels::attention`]) instead of tensor ops, which for a single query per
//! head cost more in dispatch than in arithmetic.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::attention;

use super::block::Block;
use super::forward::Attn;
use super::{LayerKv, Model};

impl Model {
    /// [`Model::attention`] for one new token per row, in plain loops
    /// ([`crate::kernels::attention`]); every row at the same position on the same prefix.
    pub(super) fn decode_attention(
        &self,
        layer: &Block,
        h: &Tensor,
        ctx: &Attn<'_>,
    ) -> Result<(Tensor, LayerKv)> {
        let rows = h.dim(0)?;
        let prefixes = vec![ctx.prefix; rows];
        let positions = vec![ctx.pos; rows];
        self.row_attention(layer, h, &prefixes, ctx.suffix, &positions)
    }

    /// Decode-step attention where each row has its own prefix and position (rows of
    /// different search nodes in one batch); the rows' own keys all have the same length.
    pub(super) fn row_attention(
        &self,
        layer: &Block,
        h: &Tensor,
        prefixes: &[Option<&LayerKv>],
        suffix: Option<&LayerKv>,
        positions: &[usize],
    ) -> Result<(Tensor, LayerKv)> {
        let rows = h.dim(0)?;
        let d = attention::Dims {
            rows,
            n_head: self.cfg.n_head,
            n_kv_head: self.cfg.n_kv_head,
            head_dim: self.cfg.head_dim,
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
        let half = d.head_dim / 2;
        let (qw, kw) = (d.n_head * d.head_dim, d.n_kv_head * d.head_dim);
        for ((qr, kr), &pos) in q.chunks_mut(qw).zip(k.chunks_mut(kw)).zip(positions) {
            let (cos, sin) = (
                &self.cos_v[pos * half..(pos + 1) * half],
                &self.sin_v[pos * half..(pos + 1) * half],
            );
            attention::rope_in_place(qr, d.head_dim, cos, sin, self.cfg.rope_neox);
            attention::rope_in_place(kr, d.head_dim, cos, sin, self.cfg.rope_neox);
        }
        let s = match suffix {
            Some((sk, _)) => sk.dim(2)?,
            None => 0,
        };
        let (own_k, own_v) = match suffix {
            Some((sk, sv)) => (
                attention::with_f32(sk, |x| attention::append_own(Some(x), s, &k, d))?,
                attention::with_f32(sv, |x| attention::append_own(Some(x), s, &v, d))?,
            ),
            None => (
                attention::append_own(None, 0, &k, d),
                attention::append_own(None, 0, &v, d),
            ),
        };
        // Each distinct prefix is made contiguous once and read in place by all its rows.
        let mut distinct: Vec<(&LayerKv, Tensor, Tensor)> = Vec::new();
        let mut which: Vec<Option<usize>> = Vec::with_capacity(rows);
        for p in prefixes {
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
        let y = attention::attend(&q, &row_prefix, (&own_k, &own_v), s + 1, d);
        let y = Tensor::from_vec(y, (rows, 1, d.n_head * d.head_dim), &Device::Cpu)?;
        Ok((
            layer.wo.forward(&y)?,
            (
                attention::own_tensor(own_k, d, s + 1)?,
                attention::own_tensor(own_v, d, s + 1)?,
            ),
        ))
    }
}
