//! The llama-family transformer over GGUF weights: one small struct per block, one layer
//! loop for prefill and decode.
//!
//! The weights are immutable and a forward takes `&self` plus explicit key/value tensors,
//! so one [`Model`] serves many search trees and rayon workers at once; the caller (the
//! tree KV cache) owns all per-context state.
//!
//! - [`config`]: hyper-parameters from the GGUF's metadata.
//! - [`weights`]: in-memory weight formats, fused projections, loading.
//! - `block`: one layer's weights and forward.
//! - `forward`: prefill and sibling steps on one shared prefix; the layer loop.
//! - `decode`: decode-step attention for rows on different prefixes.

mod attention;
mod block;
pub mod config;
mod forward;
pub mod weights;

use std::sync::Arc;

use candle_core::Tensor;
use candle_core::quantized::QMatMul;

use crate::error::{Error, Result};
use crate::kernels::linear::Linear;

use block::Block;
pub use config::ModelConfig;
pub(crate) use forward::RowStep;
pub use weights::WeightFormat;

/// Per-layer keys and values: `(k, v)`, each `(kv_heads, len, head_dim)` for one sequence or
/// `(rows, kv_heads, len, head_dim)` for a batch of rows.
pub type LayerKv = (Tensor, Tensor);

/// A loaded model (any of [`config::SUPPORTED_ARCHITECTURES`]): immutable weights plus
/// rotary frequencies.
#[derive(Debug)]
pub struct Model {
    pub(super) cfg: ModelConfig,
    pub(super) embed: QMatMul,
    pub(super) blocks: Vec<Block>,
    pub(super) out_norm: Tensor,
    pub(super) output: Linear,
    /// Multiplies the embeddings (`sqrt(width)` for Gemma, else 1).
    pub(super) embed_scale: Option<f32>,
    /// Rotary inverse frequencies (already divided by any Llama 3 frequency factors and
    /// multiplied by the linear position scale), `head_dim / 2` of them, per kind of
    /// layer: `[0]` global, `[1]` sliding-window (Gemma 3). Angles are computed for the
    /// positions a forward pass uses, never tabled for the whole context: a file's
    /// context length cannot make loading allocate (a crafted 0xFFFFFFF0 once asked for
    /// 549,755,811,840 bytes of tables and aborted the process).
    pub(super) ropes: Vec<Vec<f32>>,
}

/// Rotary cosines and sines of one kind of layer, `head_dim / 2` per (row, token).
pub(super) type RopeRows = (Vec<f32>, Vec<f32>);

impl Model {
    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Each layer's sliding window in layer order (`None`: the layer attends to the whole
    /// context). A window layer's keys older than its window are never read again, so the
    /// tree cache keeps only its last `window` positions.
    pub fn layer_windows(&self) -> Vec<Option<usize>> {
        self.blocks.iter().map(|b| b.window).collect()
    }

    /// Positions held by per-layer keys/values, read along `dim` (1 for a shared prefix
    /// `(kv_heads, P, head_dim)`, 2 for rows' own `(rows, kv_heads, S, head_dim)`) from
    /// the first layer that keeps the whole context (window layers may hold fewer); 0 for
    /// none. `None` when every layer is a window layer.
    fn kv_len(&self, kv: Option<&[LayerKv]>, dim: usize) -> Option<usize> {
        let full = self.blocks.iter().position(|b| b.window.is_none())?;
        Some(
            kv.and_then(|kv| kv.get(full))
                .map_or(0, |(k, _)| k.dim(dim).unwrap_or(0)),
        )
    }

    /// A typed error unless a token at `pos` follows exactly the prefix and the own keys
    /// (read from a full-context layer; a model of window layers only can just be checked
    /// not to run past `pos`). `own_len`: the own keys' length when they are buffers
    /// with room (a decode's), else read from their shape.
    fn check_position(
        &self,
        pos: usize,
        prefix: Option<&[LayerKv]>,
        suffix: Option<&[LayerKv]>,
        own_len: Option<usize>,
    ) -> Result<()> {
        let longest = |kv: Option<&[LayerKv]>, dim: usize| {
            kv.into_iter()
                .flatten()
                .map(|(k, _)| k.dim(dim).unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        // Own keys given with their length may be buffers longer than it.
        let own = match own_len {
            Some(n) => Some(if suffix.is_some() { n } else { 0 }),
            None => self.kv_len(suffix, 2),
        };
        let (p_len, s_len) = match (self.kv_len(prefix, 1), own) {
            (Some(p), Some(s)) => (p, s),
            (_, own) => {
                let (p, s) = (
                    longest(prefix, 1),
                    own.unwrap_or_else(|| longest(suffix, 2)),
                );
                if p + s <= pos {
                    return Ok(());
                }
                (p, s)
            }
        };
        if p_len + s_len != pos {
            return Err(Error::KvCache(format!(
                "position {pos} != prefix {p_len} + suffix {s_len}"
            )));
        }
        Ok(())
    }

    /// Rotary cosines and sines for `t` tokens of each row, starting at `positions[r]`:
    /// `(rows * t * head_dim / 2)` each, in (row, token) order, for every kind of layer.
    fn rope_rows(&self, positions: &[usize], t: usize) -> Vec<RopeRows> {
        self.ropes
            .iter()
            .map(|inv| {
                let n = positions.len() * t * inv.len();
                let (mut cos, mut sin) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for &p0 in positions {
                    for p in p0..p0 + t {
                        for f in inv {
                            let a = p as f32 * f;
                            cos.push(a.cos());
                            sin.push(a.sin());
                        }
                    }
                }
                (cos, sin)
            })
            .collect()
    }

    /// Bytes the weights occupy in memory after loading: the projections in their
    /// in-memory format, the token embeddings as stored in the file (rows are looked up,
    /// never multiplied; tied output weights counted once more when the output projection
    /// holds its own copy), norms and biases in f32.
    pub fn weight_bytes(&self) -> usize {
        let f32s = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let embed = match &self.embed {
            QMatMul::QTensor(t) => t.storage_size_in_bytes(),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => f32s(t),
        };
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                b.qkv.bytes()
                    + b.gate_up.bytes()
                    + b.wo.bytes()
                    + b.w_down.bytes()
                    + f32s(&b.attn_norm)
                    + f32s(&b.ffn_norm)
                    + b.bias_qkv
                        .as_ref()
                        .map_or(0, |(q, k, v)| f32s(q) + f32s(k) + f32s(v))
                    + b.qk_norm
                        .as_ref()
                        .map_or(0, |(q, k)| 4 * (q.len() + k.len()))
                    + b.post_norms.as_ref().map_or(0, |(a, f)| f32s(a) + f32s(f))
            })
            .sum();
        // Tied output weights read the embedding's own matrix (the same `Arc`) unless a
        // format gave the output projection a copy of its own.
        let output = match (&self.embed, &self.output) {
            (QMatMul::QTensor(e), Linear::Quant(QMatMul::QTensor(o))) if Arc::ptr_eq(e, o) => 0,
            _ => self.output.bytes(),
        };
        embed + blocks + f32s(&self.out_norm) + output
    }

    /// A typed error for the first token id outside the vocabulary.
    fn check_vocab<'a>(&self, ids: impl IntoIterator<Item = &'a u32>) -> Result<()> {
        match ids.into_iter().find(|&&id| id as usize >= self.cfg.vocab) {
            Some(&id) => Err(Error::TokenOutOfVocab {
                id,
                vocab: self.cfg.vocab,
            }),
            None => Ok(()),
        }
    }
}

/// Runs `f` on a thread of rayon's pool (inline when already on one). A forward pass is
/// ~120 parallel regions (every projection splits across threads); entered from outside
/// the pool, each region hands its work over and puts the caller to sleep until it is done,
/// two context switches a region: that cost a single-stream decode step about a third of
/// its time. On a pool thread the regions split in place.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
