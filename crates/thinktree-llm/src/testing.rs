//! Tiny, seeded, random llama GGUF files for fast tests.
//!
//! The file has the same metadata layout as SmolLM2's (gpt2 byte-level vocabulary, ChatML
//! template, control tokens), so tests exercise the real loading path — GGUF parsing,
//! tokenizer construction, chat template, model build — in milliseconds instead of loading
//! a 100 MB model.

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thinktree_gguf::testing::write_gguf;
pub use thinktree_gguf::testing::{
    SMOLLM2_CHAT_TEMPLATE, TinyVocab, bytes_to_unicode, tiny_tokenizer_metadata, tiny_vocab,
};

use crate::engine::{EngineOptions, LocalEngine};
use crate::error::{Error, Result};
use crate::kv_cache::KvState;
use thinktree_engine::{Engine, SampleParams};

/// Shape and storage of a tiny test model.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyModelConfig {
    /// Residual width (a multiple of 32 so every quantized format fits).
    pub hidden: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_kv_head: usize,
    /// MLP width (a multiple of 32).
    pub ff: usize,
    /// Maximum context.
    pub context_length: usize,
    /// Storage of the matmul weights (F32, Q8_0, Q4_1, ...).
    pub dtype: GgmlDType,
    /// Write a separate `output.weight` instead of tying it to the embeddings.
    pub untied_output: bool,
    /// Seed of the random weights.
    pub seed: u64,
    /// Write a qwen2 model (rotary over halves, q/k/v biases) instead of a llama one.
    pub qwen2: bool,
    /// Set `tokenizer.ggml.add_bos_token` (as Llama and Gemma files do).
    pub add_bos: bool,
}

impl Default for TinyModelConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            n_layer: 2,
            n_head: 4,
            n_kv_head: 2,
            ff: 128,
            context_length: 512,
            dtype: GgmlDType::Q8_0,
            untied_output: false,
            seed: 42,
            qwen2: false,
            add_bos: false,
        }
    }
}

fn random_tensor(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    scale: f32,
    dtype: GgmlDType,
) -> Result<QTensor> {
    let data: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-scale..scale))
        .collect();
    let t = Tensor::from_vec(data, (rows, cols), &Device::Cpu)?;
    Ok(QTensor::quantize(&t, dtype)?)
}

fn norm_tensor(rng: &mut ChaCha8Rng, n: usize) -> Result<QTensor> {
    let data: Vec<f32> = (0..n)
        .map(|_| 1.0 + rng.random_range(-0.1f32..0.1))
        .collect();
    Ok(QTensor::quantize(
        &Tensor::from_vec(data, n, &Device::Cpu)?,
        GgmlDType::F32,
    )?)
}

/// Writes a random llama GGUF (seeded: the same config gives the same file) with full
/// SmolLM2-style tokenizer metadata.
pub fn write_tiny_llama_gguf(path: &Path, cfg: &TinyModelConfig) -> Result<()> {
    let bs = cfg.dtype.block_size();
    if cfg.n_head == 0
        || cfg.n_kv_head == 0
        || !cfg.hidden.is_multiple_of(cfg.n_head)
        || !cfg.n_head.is_multiple_of(cfg.n_kv_head)
        || !cfg.hidden.is_multiple_of(bs)
        || !cfg.ff.is_multiple_of(bs)
    {
        return Err(Error::InvalidOption(format!(
            "tiny model shape {cfg:?} does not fit its quantization"
        )));
    }
    let vocab = tiny_vocab();
    let head_dim = cfg.hidden / cfg.n_head;
    let kv_dim = head_dim * cfg.n_kv_head;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let (d, f, v) = (cfg.hidden, cfg.ff, vocab.tokens.len());
    let sd = 1.0 / (d as f32).sqrt();
    tensors.push((
        "token_embd.weight".into(),
        random_tensor(&mut rng, v, d, 0.3, cfg.dtype)?,
    ));
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        tensors.push((format!("{p}.attn_norm.weight"), norm_tensor(&mut rng, d)?));
        tensors.push((
            format!("{p}.attn_q.weight"),
            random_tensor(&mut rng, d, d, sd * 2.0, cfg.dtype)?,
        ));
        tensors.push((
            format!("{p}.attn_k.weight"),
            random_tensor(&mut rng, kv_dim, d, sd * 2.0, cfg.dtype)?,
        ));
        tensors.push((
            format!("{p}.attn_v.weight"),
            random_tensor(&mut rng, kv_dim, d, sd, cfg.dtype)?,
        ));
        if cfg.qwen2 {
            for (name, n) in [("attn_q", d), ("attn_k", kv_dim), ("attn_v", kv_dim)] {
                let b = random_tensor(&mut rng, 1, n, 0.5, GgmlDType::F32)?;
                let b =
                    QTensor::quantize(&b.dequantize(&Device::Cpu)?.squeeze(0)?, GgmlDType::F32)?;
                tensors.push((format!("{p}.{name}.bias"), b));
            }
        }
        tensors.push((
            format!("{p}.attn_output.weight"),
            random_tensor(&mut rng, d, d, sd, cfg.dtype)?,
        ));
        tensors.push((format!("{p}.ffn_norm.weight"), norm_tensor(&mut rng, d)?));
        tensors.push((
            format!("{p}.ffn_gate.weight"),
            random_tensor(&mut rng, f, d, sd, cfg.dtype)?,
        ));
        tensors.push((
            format!("{p}.ffn_up.weight"),
            random_tensor(&mut rng, f, d, sd, cfg.dtype)?,
        ));
        let sf = 1.0 / (f as f32).sqrt();
        tensors.push((
            format!("{p}.ffn_down.weight"),
            random_tensor(&mut rng, d, f, sf, cfg.dtype)?,
        ));
    }
    tensors.push(("output_norm.weight".into(), norm_tensor(&mut rng, d)?));
    if cfg.untied_output {
        tensors.push((
            "output.weight".into(),
            random_tensor(&mut rng, v, d, sd * 4.0, cfg.dtype)?,
        ));
    }

    let s = |x: &str| Value::String(x.to_string());
    let u = |x: usize| Value::U32(x as u32);
    let arch = if cfg.qwen2 { "qwen2" } else { "llama" };
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s(arch)),
        ("general.name".into(), s(&format!("tiny-random-{arch}"))),
    ];
    for (key, value) in [
        ("block_count", u(cfg.n_layer)),
        ("context_length", u(cfg.context_length)),
        ("embedding_length", u(d)),
        ("feed_forward_length", u(f)),
        ("attention.head_count", u(cfg.n_head)),
        ("attention.head_count_kv", u(cfg.n_kv_head)),
        ("rope.freq_base", Value::F32(10_000.0)),
        ("attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("vocab_size", u(v)),
        ("rope.dimension_count", u(head_dim)),
    ] {
        metadata.push((format!("{arch}.{key}"), value));
    }
    metadata.extend(tiny_tokenizer_metadata());
    if cfg.add_bos {
        for (k, v) in &mut metadata {
            if k == "tokenizer.ggml.add_bos_token" {
                *v = Value::Bool(true);
            }
        }
    }
    Ok(write_gguf(path, &metadata, &tensors)?)
}

/// Writes a tiny model as `dir/tiny-llama.gguf` and loads an engine on it.
pub fn tiny_engine(dir: &Path, cfg: &TinyModelConfig, opts: EngineOptions) -> Result<LocalEngine> {
    let path = dir.join("tiny-llama.gguf");
    write_tiny_llama_gguf(&path, cfg)?;
    LocalEngine::load(&path, opts)
}

/// Samples `n` siblings of `state` in one batch, then feeds each sibling's tokens one at a
/// time and returns the largest difference between a token's batched and sequential
/// log-probability: how much batching changes what the model computes.
pub fn batch_vs_sequential_gap(
    engine: &LocalEngine,
    state: &KvState,
    n: usize,
    params: &SampleParams,
) -> Result<f32> {
    let (conts, _) = engine.sample(state, n, params)?;
    let mut worst = 0f32;
    for c in &conts {
        let mut cur = state.clone();
        for (&t, &lp) in c.tokens.iter().zip(&c.logprobs) {
            let (seq, _) = engine.next_token_logprobs(&cur, &[t])?;
            worst = worst.max((seq[0] - lp).abs());
            cur = engine.extend_tokens(&cur, &[t])?.0;
        }
    }
    Ok(worst)
}

/// A `rows x cols` 8-bit weight matrix (Q4_1 values, the default model's type) for timing
/// the matmul kernel variants and the two 4-bit layouts against each other
/// (`benches/kernels.rs`).
#[derive(Debug)]
pub struct KernelBench {
    matrix: crate::kernels::int8::Int8Matrix,
    cols: usize,
}

impl KernelBench {
    /// A seeded random matrix, its 4-bit values as nibbles (`packed: true`) or a byte each.
    pub fn new(rows: usize, cols: usize, packed: bool) -> Result<Self> {
        let q = QTensor::quantize(&Self::random(rows, cols)?, GgmlDType::Q4_1)?;
        Self::from_blocks(q, packed)
    }

    /// A seeded random matrix in Q8_0 (signed bytes, as SmolLM2's and Gemma 3's
    /// embeddings, which are their LM heads).
    pub fn q8_0(rows: usize, cols: usize) -> Result<Self> {
        let q = QTensor::quantize(&Self::random(rows, cols)?, GgmlDType::Q8_0)?;
        Self::from_blocks(q, false)
    }

    fn random(rows: usize, cols: usize) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let w: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Ok(Tensor::from_vec(w, (rows, cols), &Device::Cpu)?)
    }

    fn from_blocks(q: QTensor, packed: bool) -> Result<Self> {
        use crate::kernels::int8::{Int8Matrix, Int8Rows, Q4Layout};
        let (_, cols) = q.shape().dims2()?;
        let layout = if packed {
            Q4Layout::Packed
        } else {
            Q4Layout::Unpacked
        };
        let matrix = Int8Matrix::with_layout(Int8Rows::from_qtensor(&q)?, layout);
        assert_eq!(
            matrix.is_packed(),
            packed,
            "Q4_1 values pack, Q8_0 ones do not"
        );
        Ok(Self { matrix, cols })
    }

    /// Every kernel variant this CPU runs, by name (best first, `scalar` last).
    pub fn kernels() -> Vec<&'static str> {
        crate::kernels::simd::Level::supported()
            .into_iter()
            .map(|l| l.name())
            .collect()
    }

    /// `x @ W^T` for `n` rows of `x` with the named variant.
    pub fn run(&self, kernel: &str, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let level = crate::kernels::simd::Level::supported()
            .into_iter()
            .find(|l| l.name() == kernel)
            .ok_or_else(|| Error::Shape(format!("no kernel {kernel} on this CPU")))?;
        self.matrix.matmul_with(level, x, n)
    }

    /// Input width.
    pub fn cols(&self) -> usize {
        self.cols
    }
}
