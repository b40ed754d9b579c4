//! [`ModelConfig`]: the hyper-parameters a GGUF's metadata states.

use thinktree_gguf::gguf::{Content, Metadata};

use crate::error::{Error, Result};

/// The context limit when the GGUF does not state one.
const DEFAULT_CONTEXT: usize = 4096;

/// `general.architecture` values the engine runs.
pub const SUPPORTED_ARCHITECTURES: [&str; 4] = ["llama", "qwen2", "qwen3", "gemma3"];

/// Gemma 3: every sixth layer attends globally, the others over a sliding window, with
/// their own RoPE base (llama.cpp's `set_swa_pattern(6)` and `rope_freq_base_train_swa`;
/// neither is in the GGUF).
const GEMMA3_GLOBAL_EVERY: usize = 6;
const GEMMA3_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// How a model family differs from Llama inside a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 1/2/3 and Mistral-style files: RMSNorm, SiLU-gated MLP, adjacent-pair RoPE.
    Llama,
    /// Qwen 2/2.5 and DeepSeek-R1-Distill-Qwen: Llama with q/k/v biases and NeoX RoPE.
    Qwen2,
    /// Qwen 3: Qwen 2 without biases, with per-head RMSNorm on queries and keys.
    Qwen3,
    /// Gemma 3: q/k norms, norms after attention and MLP too, GELU-gated MLP, embeddings
    /// scaled by `sqrt(width)`, sliding-window layers with their own RoPE base.
    Gemma3,
}

/// Hyper-parameters read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `general.architecture` (one of [`SUPPORTED_ARCHITECTURES`]).
    pub arch: String,
    /// The block layout `arch` stands for.
    pub family: Family,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_kv_head: usize,
    /// Width of one head (`attention.key_length` when given: Qwen 3 and Gemma 3 heads are
    /// not `hidden / n_head` wide).
    pub head_dim: usize,
    /// Residual stream width.
    pub hidden: usize,
    /// Vocabulary size (rows of the output projection).
    pub vocab: usize,
    /// Longest context the model supports.
    pub context_length: usize,
    /// RoPE base frequency (of the global layers, for Gemma 3).
    pub rope_base: f32,
    /// Linear RoPE scaling: positions are multiplied by this (`1 / rope.scaling.factor`).
    pub rope_freq_scale: f32,
    /// Sliding-window layers: their window and RoPE base (Gemma 3).
    pub sliding: Option<Sliding>,
    /// Multiplies every query before attention.
    pub attn_scale: f32,
    /// RMS-norm epsilon.
    pub rms_eps: f32,
    /// Whether RoPE rotates halves (NeoX layout: Qwen, Gemma) rather than adjacent pairs
    /// (Llama).
    pub rope_neox: bool,
}

/// Sliding-window attention layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sliding {
    /// A query sees the keys less than this many positions back, itself included.
    pub window: usize,
    /// Every `global_every`-th layer (1-based) attends to the whole context.
    pub global_every: usize,
    /// RoPE base of the window layers.
    pub rope_base: f32,
}

impl ModelConfig {
    /// Checks every tensor the blocks read against the shape this config implies, before
    /// any is loaded: a file whose metadata disagrees with its tensors (an edited head
    /// count, a cut projection) is a typed error here, not an index out of bounds in the
    /// middle of a forward pass (the `gguf_load` fuzz target found one: keys 16 values
    /// short of `kv_heads * head_dim` per token).
    pub(super) fn check_shapes(&self, ct: &Content) -> Result<()> {
        let shape = |name: &str| ct.tensor_infos.get(name).map(|t| t.shape.dims().to_vec());
        let expect = |name: &str, want: &[usize]| -> Result<()> {
            match shape(name) {
                Some(got) if got != want => Err(Error::UnsupportedModel(format!(
                    "tensor {name} has shape {got:?}, but the model's metadata implies {want:?}"
                ))),
                _ => Ok(()),
            }
        };
        let (h, q, kv) = (
            self.hidden,
            self.n_head * self.head_dim,
            self.n_kv_head * self.head_dim,
        );
        expect("token_embd.weight", &[self.vocab, h])?;
        expect("output.weight", &[self.vocab, h])?;
        expect("output_norm.weight", &[h])?;
        for i in 0..self.n_layer {
            let b = |n: &str| format!("blk.{i}.{n}");
            expect(&b("attn_q.weight"), &[q, h])?;
            expect(&b("attn_k.weight"), &[kv, h])?;
            expect(&b("attn_v.weight"), &[kv, h])?;
            expect(&b("attn_output.weight"), &[h, q])?;
            expect(&b("attn_q.bias"), &[q])?;
            expect(&b("attn_k.bias"), &[kv])?;
            expect(&b("attn_v.bias"), &[kv])?;
            for n in [
                "attn_norm",
                "ffn_norm",
                "post_attention_norm",
                "post_ffw_norm",
            ] {
                expect(&b(&format!("{n}.weight")), &[h])?;
            }
            // The feed-forward width is the file's own; gate, up and down must agree on it.
            let ff = match shape(&b("ffn_gate.weight")).as_deref() {
                Some(&[ff, _]) => ff,
                Some(other) => {
                    return Err(Error::UnsupportedModel(format!(
                        "tensor {} has shape {other:?}, expected 2 dimensions",
                        b("ffn_gate.weight")
                    )));
                }
                None => continue,
            };
            expect(&b("ffn_gate.weight"), &[ff, h])?;
            expect(&b("ffn_up.weight"), &[ff, h])?;
            expect(&b("ffn_down.weight"), &[h, ff])?;
        }
        Ok(())
    }
}

impl ModelConfig {
    /// The window of layer `i`, `None` when it attends to the whole context.
    pub fn window_of(&self, i: usize) -> Option<usize> {
        self.sliding
            .filter(|s| !(i + 1).is_multiple_of(s.global_every))
            .map(|s| s.window)
    }
}

impl ModelConfig {
    /// Bytes of keys plus values one context token occupies in f32 over all layers.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.n_layer * 2 * self.n_kv_head * self.head_dim * std::mem::size_of::<f32>()
    }

    pub(super) fn from_gguf(ct: &Content) -> Result<Self> {
        let md = Metadata::of(ct);
        let arch = md.string("general.architecture")?.to_owned();
        let family = match arch.as_str() {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "gemma3" => Family::Gemma3,
            _ => {
                return Err(Error::UnsupportedModel(format!(
                    "architecture `{arch}` (supported: {})",
                    SUPPORTED_ARCHITECTURES.join(", ")
                )));
            }
        };
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = md.usize(&key("attention.head_count"))?;
        let n_kv_head = md
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(n_head);
        let n_layer = md.usize(&key("block_count"))?;
        let hidden = md.usize(&key("embedding_length"))?;
        let key_length = md.opt_usize(&key("attention.key_length"))?;
        let value_length = md.opt_usize(&key("attention.value_length"))?;
        if n_head == 0
            || n_kv_head == 0
            || n_layer == 0
            || hidden == 0
            || (key_length.is_none() && !hidden.is_multiple_of(n_head))
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
        let head_dim = key_length.unwrap_or(hidden / n_head);
        if value_length.unwrap_or(head_dim) != head_dim {
            return Err(Error::UnsupportedModel(format!(
                "key width {head_dim} != value width {value_length:?}"
            )));
        }
        // A crafted width must not size allocations far beyond the file's tensors.
        if head_dim == 0 || head_dim > 4096 || n_head > 4096 {
            return Err(Error::UnsupportedModel(format!(
                "head width {head_dim} x {n_head} heads out of range"
            )));
        }
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
        let rope_freq_scale = rope_scaling(&md, &arch)?;
        let sliding = match family {
            Family::Gemma3 => {
                let window = md.usize(&key("attention.sliding_window"))?;
                if window == 0 {
                    return Err(Error::UnsupportedModel("sliding window of 0".into()));
                }
                Some(Sliding {
                    window,
                    global_every: GEMMA3_GLOBAL_EVERY,
                    rope_base: GEMMA3_LOCAL_ROPE_BASE,
                })
            }
            _ => None,
        };
        // llama.cpp scales Gemma 3 27B (62 layers) by the model width per head instead.
        let attn_scale = if family == Family::Gemma3 && n_layer == 62 {
            1.0 / ((hidden / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
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
            rope_neox: family != Family::Llama,
            arch,
            family,
            n_layer,
            n_head,
            n_kv_head,
            head_dim,
            hidden,
            vocab,
            context_length,
            rope_base,
            rope_freq_scale,
            sliding,
            attn_scale,
            rms_eps,
        })
    }
}

/// The position multiplier of `{arch}.rope.scaling.*`: 1 for none, `1 / factor` for
/// linear scaling (llama.cpp's default type when only a factor is given); YaRN and
/// LongRoPE are a typed error rather than silently wrong positions. Llama 3's frequency
/// factors are a tensor (`rope_freqs.weight`), read with the weights.
fn rope_scaling(md: &Metadata<'_>, arch: &str) -> Result<f32> {
    let key = |k: &str| format!("{arch}.{k}");
    let kind = md
        .opt_string(&key("rope.scaling.type"))?
        .unwrap_or("linear");
    let factor = match md.opt_f32(&key("rope.scaling.factor"))? {
        Some(f) => Some(f),
        None => md.opt_f32(&key("rope.scale_linear"))?,
    };
    if let Some(a) = md.opt_f32(&key("rope.scaling.attn_factor"))?
        && a != 1.0
    {
        return Err(Error::UnsupportedModel(format!(
            "rope.scaling.attn_factor {a} (only 1 is supported)"
        )));
    }
    // llama.cpp reads a factor of 0 as "no scaling".
    match (kind, factor) {
        ("none", _) | (_, None) => Ok(1.0),
        (_, Some(f)) if f == 0.0 || f == 1.0 => Ok(1.0),
        ("linear", Some(f)) if f.is_finite() && f > 0.0 => Ok(1.0 / f),
        ("linear", Some(f)) => Err(Error::UnsupportedModel(format!(
            "rope.scaling.factor {f} out of range"
        ))),
        (other, _) => Err(Error::UnsupportedModel(format!(
            "RoPE scaling `{other}` (supported: none, linear, Llama 3 frequency factors)"
        ))),
    }
}
