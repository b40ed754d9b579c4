//! [`Block`]: one transformer layer's weights and its forward (attention, then MLP, each
//! a residual step). Prefill and decode run the same block; only where the attention
//! reads its context from differs ([`Context`]).

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::kernels::linear::Linear;

use super::weights::Proj;
use super::{LayerKv, Model};

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
}

/// Where a block's attention finds the context of its new tokens: the same for a prefill
/// (`t` tokens, every row on one shared prefix), a decode step of siblings, and a decode
/// step of rows of different search nodes (each on its own prefix and position).
pub(super) struct Context<'a> {
    /// Each row's shared prefix keys/values for this layer.
    pub(super) prefixes: Vec<Option<&'a LayerKv>>,
    /// The rows' own keys/values for this layer (the same length for every row).
    pub(super) suffix: Option<&'a LayerKv>,
    /// Rotary cosines and sines of every (row, new token), `head_dim / 2` each.
    pub(super) cos: &'a [f32],
    /// See `cos`.
    pub(super) sin: &'a [f32],
}

impl Block {
    /// `x + attn(norm x)`, then `x + mlp(norm x)`; returns the new residual stream and
    /// the rows' own keys/values extended by the new tokens.
    pub(super) fn forward(
        &self,
        m: &Model,
        x: Tensor,
        ctx: &Context<'_>,
    ) -> Result<(Tensor, LayerKv)> {
        let h = candle_nn::ops::rms_norm(&x, &self.attn_norm, m.cfg.rms_eps)?;
        let (a, kv) = m.attention(self, &h, ctx)?;
        Ok((self.mlp(m.cfg.rms_eps, (x + a)?)?, kv))
    }

    /// The residual MLP block: `x + down(silu(gate(norm x)) * up(norm x))`.
    fn mlp(&self, eps: f32, x: Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(&x, &self.ffn_norm, eps)?;
        let gu = self.gate_up.forward(&h)?;
        let (Some(g), Some(u)) = (gu.first(), gu.get(1)) else {
            return Err(Error::UnsupportedModel("gate/up projection split".into()));
        };
        let g = candle_nn::ops::silu(g)?;
        Ok((x + self.w_down.forward(&(g * u)?)?)?)
    }
}
