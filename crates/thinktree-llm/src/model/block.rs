//! [`Block`]: one transformer layer's weights and its forward (attention, then MLP, each
//! a residual step). Prefill and decode run the same block; only where the attention
//! reads its context from differs ([`Context`]).

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::kernels::exp;
use crate::kernels::linear::Linear;

use super::weights::Proj;
use super::{LayerKv, Model, RopeRows};

/// One transformer layer.
#[derive(Debug)]
pub(crate) struct Block {
    pub(super) attn_norm: Tensor,
    /// q, k and v projections (one matmul when their storage types agree).
    pub(super) qkv: Proj,
    pub(super) bias_qkv: Option<(Tensor, Tensor, Tensor)>,
    pub(super) wo: Linear,
    pub(super) ffn_norm: Tensor,
    /// Gate and up projections of the MLP.
    pub(super) gate_up: Proj,
    pub(super) w_down: Linear,
    /// Per-head RMSNorm weights of queries and keys (Qwen 3, Gemma 3).
    pub(super) qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    /// RMSNorms of the attention and MLP outputs before they join the residual (Gemma 3).
    pub(super) post_norms: Option<(Tensor, Tensor)>,
    /// GELU (tanh approximation, Gemma) instead of SiLU gates the MLP.
    pub(super) gelu: bool,
    /// Sliding-window width, `None` for a layer that sees the whole context.
    pub(super) window: Option<usize>,
    /// Which of the model's rotary frequency sets this layer uses.
    pub(super) rope: usize,
}

/// Where a block's attention finds the context of its new tokens: the same for a prefill
/// (`t` tokens, every row on one shared prefix), a decode step of siblings, and a decode
/// step of rows of different search nodes (each on its own prefix and position).
pub(super) struct Context<'a> {
    /// Each row's shared prefix keys/values for this layer.
    pub(super) prefixes: Vec<Option<&'a LayerKv>>,
    /// Runs of consecutive rows and their own keys/values for this layer, the same own
    /// length for every row of a run. One run for a prefill or one search's step; one per
    /// search when the steps of several searches are merged.
    pub(super) runs: Vec<Run<'a>>,
    /// Whether the own keys/values returned are buffers with room for later steps (a
    /// decode's), written in place while they have room; otherwise exactly as long as
    /// they are.
    pub(super) grow: bool,
    /// Rotary cosines and sines of every (row, new token), `head_dim / 2` each, per kind
    /// of layer (a block reads `ropes[block.rope]`).
    pub(super) ropes: &'a [RopeRows],
}

/// Consecutive rows sharing an own length, and their own keys/values of one layer:
/// `(rows, kv_heads, >= len, head_dim)`, of which the first `len` positions are theirs.
pub(super) struct Run<'a> {
    pub(super) rows: usize,
    pub(super) own: Option<&'a LayerKv>,
    pub(super) len: usize,
}

impl<'a> Run<'a> {
    /// Rows whose own keys/values are exactly as long as they are.
    pub(super) fn exact(rows: usize, own: Option<&'a LayerKv>) -> Self {
        let len = own.map_or(0, |(k, _)| k.dims().get(2).copied().unwrap_or(0));
        Self { rows, own, len }
    }
}

impl Block {
    /// `x + attn(norm x)`, then `x + mlp(norm x)` (Gemma 3 also normalises each branch's
    /// output); returns the new residual stream and, per run of rows, their own
    /// keys/values extended by the new tokens.
    pub(super) fn forward(
        &self,
        m: &Model,
        x: Tensor,
        ctx: &Context<'_>,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        let eps = m.cfg.rms_eps;
        let h = candle_nn::ops::rms_norm(&x, &self.attn_norm, eps)?;
        let (mut a, kv) = m.attention(self, &h, ctx)?;
        if let Some((post_attn, _)) = &self.post_norms {
            a = candle_nn::ops::rms_norm(&a, post_attn, eps)?;
        }
        Ok((self.mlp(eps, (x + a)?)?, kv))
    }

    /// The residual MLP block: `x + down(act(gate(norm x)) * up(norm x))`.
    fn mlp(&self, eps: f32, x: Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(&x, &self.ffn_norm, eps)?;
        let gu = self.gate_up.forward(&h)?;
        let (Some(g), Some(u)) = (gu.first(), gu.get(1)) else {
            return Err(Error::UnsupportedModel("gate/up projection split".into()));
        };
        let gated = if self.gelu {
            (g.gelu()? * u)?
        } else {
            exp::silu_mul(g, u)?
        };
        let mut y = self.w_down.forward(&gated)?;
        if let Some((_, post_ffn)) = &self.post_norms {
            y = candle_nn::ops::rms_norm(&y, post_ffn, eps)?;
        }
        Ok((x + y)?)
    }
}
