//! [`Block`]: one transformer layer's weights and its forward (attention, then MLP, each
//! a residual step). Prefill and decode run the same block; only where the attention
//! reads its context from differs ([`Context`]).

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::kernels::linear::Linear;

use super::forward::Attn;
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

/// Where a block's attention finds the context of its new tokens.
pub(super) enum Context<'a> {
    /// `t` new tokens per row at the same positions, on one prefix shared by every row
    /// (a prefill, or a decode step of siblings).
    Shared(Attn<'a>),
    /// One new token per row, each row on its own prefix at its own position (rows of
    /// different search nodes in one batch).
    PerRow {
        prefixes: Vec<Option<&'a LayerKv>>,
        suffix: Option<&'a LayerKv>,
        positions: &'a [usize],
    },
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
        let (a, kv) = match ctx {
            Context::Shared(attn) => m.attention(self, &h, attn)?,
            Context::PerRow {
                prefixes,
                suffix,
                positions,
            } => m.row_attention(self, &h, prefixes, *suffix, positions)?,
        };
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
