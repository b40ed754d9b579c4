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

mod block;
pub mod config;
mod decode;
mod forward;
pub mod weights;

use candle_core::Tensor;
use candle_core::quantized::QMatMul;

use crate::error::{Error, Result};
use crate::kernels::linear::Linear;

use block::Block;
pub use config::ModelConfig;
pub use weights::WeightFormat;

/// Per-layer keys and values: `(k, v)`, each `(kv_heads, len, head_dim)` for one sequence or
/// `(rows, kv_heads, len, head_dim)` for a batch of rows.
pub type LayerKv = (Tensor, Tensor);

/// A loaded llama/qwen2 model: immutable weights plus rotary tables.
#[derive(Debug)]
pub struct Model {
    pub(super) cfg: ModelConfig,
    pub(super) embed: QMatMul,
    pub(super) blocks: Vec<Block>,
    pub(super) out_norm: Tensor,
    pub(super) output: Linear,
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    /// The same tables as flat vectors (`context x head_dim / 2`) for decode steps.
    pub(super) cos_v: Vec<f32>,
    pub(super) sin_v: Vec<f32>,
}

impl Model {
    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
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

/// Positions held by per-layer keys/values (read from the first layer's keys along
/// `dim`: 1 for a shared prefix `(kv_heads, P, head_dim)`, 2 for rows' own `(rows,
/// kv_heads, S, head_dim)`); 0 for none.
fn kv_len(kv: Option<&[LayerKv]>, dim: usize) -> usize {
    kv.and_then(|kv| kv.first())
        .map_or(0, |(k, _)| k.dim(dim).unwrap_or(0))
}

/// A typed error unless a token at `pos` follows exactly the prefix and the own keys.
fn check_position(pos: usize, p_len: usize, s_len: usize) -> Result<()> {
    if p_len + s_len != pos {
        return Err(Error::KvCache(format!(
            "position {pos} != prefix {p_len} + suffix {s_len}"
        )));
    }
    Ok(())
}

/// Runs `f` on a thread of rayon's pool (inline when already on one). A forward pass is
/// ~120 parallel regions (every projection splits across threads); entered from outside
/// the pool, each region hands its work over and puts the caller to sleep until it is done,
/// two context switches a region: that cost a single-stream decode step about a third of
/// its time. On a pool thread the regions split in place.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
