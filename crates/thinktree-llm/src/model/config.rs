//! [`ModelConfig`]: the hyper-parameters a GGUF's metadata states.

use thinktree_gguf::gguf::{Content, Metadata};

use crate::error::{Error, Result};

/// The context limit when the GGUF does not state one.
const DEFAULT_CONTEXT: usize = 4096;

/// Hyper-parameters read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `general.architecture` (`llama` or `qwen2`).
    pub arch: String,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_kv_head: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Residual stream width.
    pub hidden: usize,
    /// Vocabulary size (rows of the output projection).
    pub vocab: usize,
    /// Longest context the model supports.
    pub context_length: usize,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// RMS-norm epsilon.
    pub rms_eps: f32,
    /// Whether RoPE rotates halves (NeoX layout, qwen2) rather than adjacent pairs (llama).
    pub rope_neox: bool,
}

impl ModelConfig {
    /// Bytes of keys plus values one context token occupies in f32 over all layers.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.n_layer * 2 * self.n_kv_head * self.head_dim * std::mem::size_of::<f32>()
    }

    pub(super) fn from_gguf(ct: &Content) -> Result<Self> {
        let md = Metadata::of(ct);
        let arch = md.string("general.architecture")?.to_owned();
        if arch != "llama" && arch != "qwen2" {
            return Err(Error::UnsupportedModel(format!(
                "architecture `{arch}` (supported: llama, qwen2)"
            )));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = md.usize(&key("attention.head_count"))?;
        let n_kv_head = md
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(n_head);
        let n_layer = md.usize(&key("block_count"))?;
        let hidden = md.usize(&key("embedding_length"))?;
        if n_head == 0
            || n_kv_head == 0
            || n_layer == 0
            || !hidden.is_multiple_of(n_head)
            || !n_head.is_multiple_of(n_kv_head)
        {
            return Err(Error::UnsupportedModel(format!(
                "inconsistent shape: {n_layer} layers, {n_head} heads, {n_kv_head} kv heads, width {hidden}"
            )));
        }
        // Each block has at least its attention and MLP tensors: a layer count beyond the
        // file's tensors is a crafted or broken header, not a model.
        if n_layer > ct.tensor_infos.len() {
            return Err(Error::UnsupportedModel(format!(
                "{n_layer} layers but only {} tensors in the file",
                ct.tensor_infos.len()
            )));
        }
        let head_dim = hidden / n_head;
        if head_dim % 2 != 0 {
            return Err(Error::UnsupportedModel(format!(
                "odd head width {head_dim} (rotary embeddings rotate pairs)"
            )));
        }
        if let Some(rd) = md.opt_usize(&key("rope.dimension_count"))?
            && rd != head_dim
        {
            return Err(Error::UnsupportedModel(format!(
                "partial rotary ({rd} of {head_dim} dims)"
            )));
        }
        let rope_base = md.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let rms_eps = md.f32(&key("attention.layer_norm_rms_epsilon"))?;
        if !(rope_base.is_finite() && rope_base > 0.0 && rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(Error::UnsupportedModel(format!(
                "rope base {rope_base} / rms epsilon {rms_eps} out of range"
            )));
        }
        // Only a limit: nothing is sized by it (rotary angles are computed per position),
        // so a crafted 0xFFFFFFF0 costs nothing.
        let context_length = md
            .opt_usize(&key("context_length"))?
            .unwrap_or(DEFAULT_CONTEXT);
        if context_length == 0 {
            return Err(Error::UnsupportedModel("context length 0".into()));
        }
        let embd = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| Error::UnsupportedModel("missing tensor token_embd.weight".into()))?;
        let (vocab, embd_width) = embd.shape.dims2()?;
        if embd_width != hidden || vocab == 0 {
            return Err(Error::UnsupportedModel(format!(
                "token_embd.weight is {vocab} x {embd_width}, the metadata says width {hidden}"
            )));
        }
        Ok(Self {
            rope_neox: arch == "qwen2",
            arch,
            n_layer,
            n_head,
            n_kv_head,
            head_dim,
            hidden,
            vocab,
            context_length,
            rope_base,
            rms_eps,
        })
    }
}
