//! Loading weights: the in-memory [`WeightFormat`], fused projections and the model's
//! tensors read from a GGUF.

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{D, Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::int8::{Int8Matrix, Int8Rows};
use crate::kernels::linear::Linear;

use super::block::Block;
use super::config::Family;
use super::forward::rope_inverse_frequencies;
use super::{Model, ModelConfig};

/// How weights are stored in memory after loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// 8-bit blocks read by thinktree's own kernel: Q8_0, Q4_0 and Q4_1 weights keep their
    /// exact values (4-bit ones two to a byte; with `THINKTREE_Q4=unpacked`, a byte each),
    /// any other type is requantized to 8 bits. The fastest format for a single stream
    /// and for sibling batches alike (a weight block is read once for every row of a
    /// batch), and a batch computes exactly what its rows would alone.
    #[default]
    Int8,
    /// Keep the GGUF's own quantization, multiplied by candle's quantized kernels (least
    /// memory, no conversion cost; computes what candle-transformers' `quantized_llama`
    /// computes, which the tests use as a reference).
    AsStored,
    /// Requantize every 2-D matmul weight to Q8_0 (candle's kernels).
    Q8_0,
    /// Requantize every 2-D matmul weight to Q4_0 (candle's kernels).
    Q4_0,
    /// Dequantize every matmul weight to f32: exact arithmetic (a reference for tests), at
    /// 4x the memory of 8-bit weights and a third of their decode speed.
    F32,
    /// Dequantize every matmul weight to f16 (2x the memory of Q8_0, read by a dense f16
    /// GEMM).
    F16,
}

impl WeightFormat {
    /// Every format with the name [`std::str::FromStr`] accepts.
    pub const ALL: [(&'static str, Self); 6] = [
        ("int8", Self::Int8),
        ("as-stored", Self::AsStored),
        ("q8_0", Self::Q8_0),
        ("q4_0", Self::Q4_0),
        ("f32", Self::F32),
        ("f16", Self::F16),
    ];

    /// Whether a weight in this format goes to the 8-bit kernel.
    fn uses_int8(self, t: &QTensor) -> bool {
        self == Self::Int8 && Int8Rows::supports(t)
    }
}

impl std::str::FromStr for WeightFormat {
    type Err = Error;

    /// Parses `int8`, `as-stored`, `q8_0`, `q4_0`, `f32` or `f16`.
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                Error::InvalidOption(format!(
                    "unknown weight format `{s}` (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, w)| w == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

fn requant(t: QTensor, fmt: WeightFormat) -> Result<QTensor> {
    let target = match fmt {
        WeightFormat::AsStored | WeightFormat::F16 | WeightFormat::Int8 => return Ok(t),
        WeightFormat::Q8_0 => GgmlDType::Q8_0,
        WeightFormat::Q4_0 => GgmlDType::Q4_0,
        WeightFormat::F32 => GgmlDType::F32,
    };
    if t.dtype() == target || t.rank() != 2 {
        return Ok(t);
    }
    let (_, cols) = t.shape().dims2()?;
    if !cols.is_multiple_of(target.block_size()) {
        return Ok(t);
    }
    Ok(QTensor::quantize(&t.dequantize(&Device::Cpu)?, target)?)
}

/// The matmul for one weight in the chosen format.
fn to_matmul(t: QTensor, fmt: WeightFormat) -> Result<Linear> {
    if fmt.uses_int8(&t) {
        return Ok(Linear::Int8(Int8Matrix::new(Int8Rows::from_qtensor(&t)?)));
    }
    if fmt == WeightFormat::F16 && t.rank() == 2 {
        return Ok(Linear::quant(QMatMul::TensorF16(
            t.dequantize_f16(&Device::Cpu)?,
        )));
    }
    Linear::new(t)
}

impl Model {
    /// Builds the model from a parsed GGUF whose tensor data `reader` can read.
    pub fn from_gguf<R: Read + Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        fmt: WeightFormat,
    ) -> Result<Self> {
        let cfg = ModelConfig::from_gguf(ct)?;
        cfg.check_shapes(ct)?;
        let dev = Device::Cpu;
        let mut get = |name: &str| -> Result<QTensor> {
            if !ct.tensor_infos.contains_key(name) {
                return Err(Error::UnsupportedModel(format!("missing tensor {name}")));
            }
            Ok(ct.tensor(reader, name, &dev)?)
        };
        let embd_q = std::sync::Arc::new(get("token_embd.weight")?);
        let out_norm = get("output_norm.weight")?.dequantize(&dev)?;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            to_matmul(requant(get("output.weight")?, fmt)?, fmt)?
        } else if fmt == WeightFormat::F16 {
            Linear::quant(QMatMul::TensorF16(embd_q.dequantize_f16(&dev)?))
        } else if fmt.uses_int8(&embd_q) {
            Linear::Int8(Int8Matrix::new(Int8Rows::from_qtensor(&embd_q)?))
        } else {
            // Tied embeddings: the output projection reads the same quantized matrix.
            Linear::quant(QMatMul::from_arc(embd_q.clone())?)
        };
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut w =
                |n: &str| -> Result<QTensor> { requant(get(&format!("blk.{i}.{n}.weight"))?, fmt) };
            let qkv = Proj::new(vec![w("attn_q")?, w("attn_k")?, w("attn_v")?], fmt)?;
            let gate_up = Proj::new(vec![w("ffn_gate")?, w("ffn_up")?], fmt)?;
            let wo = to_matmul(w("attn_output")?, fmt)?;
            let w_down = to_matmul(w("ffn_down")?, fmt)?;
            let bias_qkv = if ct
                .tensor_infos
                .contains_key(&format!("blk.{i}.attn_q.bias"))
            {
                let mut b = |n: &str| -> Result<Tensor> {
                    Ok(get(&format!("blk.{i}.{n}.bias"))?.dequantize(&dev)?)
                };
                Some((b("attn_q")?, b("attn_k")?, b("attn_v")?))
            } else {
                None
            };
            let mut vector = |n: &str, len: usize| -> Result<Vec<f32>> {
                let v = get(&format!("blk.{i}.{n}.weight"))?
                    .dequantize(&dev)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                if v.len() != len {
                    return Err(Error::UnsupportedModel(format!(
                        "blk.{i}.{n}.weight has {} values, expected {len}",
                        v.len()
                    )));
                }
                Ok(v)
            };
            let qk_norm = match cfg.family {
                Family::Qwen3 | Family::Gemma3 => Some((
                    vector("attn_q_norm", cfg.head_dim)?,
                    vector("attn_k_norm", cfg.head_dim)?,
                )),
                Family::Llama | Family::Qwen2 => None,
            };
            let post_norms = match cfg.family {
                Family::Gemma3 => Some((
                    get(&format!("blk.{i}.post_attention_norm.weight"))?.dequantize(&dev)?,
                    get(&format!("blk.{i}.post_ffw_norm.weight"))?.dequantize(&dev)?,
                )),
                _ => None,
            };
            let window = cfg.window_of(i);
            blocks.push(Block {
                attn_norm: get(&format!("blk.{i}.attn_norm.weight"))?.dequantize(&dev)?,
                ffn_norm: get(&format!("blk.{i}.ffn_norm.weight"))?.dequantize(&dev)?,
                qkv,
                bias_qkv,
                wo,
                gate_up,
                w_down,
                qk_norm,
                post_norms,
                gelu: cfg.family == Family::Gemma3,
                window,
                rope: usize::from(window.is_some()),
            });
        }
        // Llama 3.x: per-frequency divisors of the global rotary frequencies.
        let factors = if ct.tensor_infos.contains_key("rope_freqs.weight") {
            let f = get("rope_freqs.weight")?
                .dequantize(&dev)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            if f.len() != cfg.head_dim / 2 || f.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                return Err(Error::UnsupportedModel(format!(
                    "rope_freqs.weight: {} factors, expected {} finite positive ones",
                    f.len(),
                    cfg.head_dim / 2
                )));
            }
            Some(f)
        } else {
            None
        };
        let mut ropes = vec![rope_inverse_frequencies(
            &cfg,
            cfg.rope_base,
            cfg.rope_freq_scale,
            factors.as_deref(),
        )];
        if let Some(s) = cfg.sliding {
            ropes.push(rope_inverse_frequencies(&cfg, s.rope_base, 1.0, None));
        }
        Ok(Self {
            embed: QMatMul::QTensor(embd_q),
            embed_scale: (cfg.family == Family::Gemma3).then(|| (cfg.hidden as f32).sqrt()),
            cfg,
            blocks,
            out_norm,
            output,
            ropes,
        })
    }
}

/// Projections that read the same input. Rows of quantized matrices are independent
/// blocks, so matrices of one storage type stack into a single matrix: one matmul (one
/// activation quantization, one thread dispatch) instead of several, then split.
#[derive(Debug)]
pub(super) enum Proj {
    Fused(Linear, Vec<usize>),
    Separate(Vec<Linear>),
}

impl Proj {
    pub(super) fn new(ts: Vec<QTensor>, fmt: WeightFormat) -> Result<Self> {
        if fmt == WeightFormat::F16 {
            return Ok(Self::Separate(
                ts.into_iter()
                    .map(|t| to_matmul(t, fmt))
                    .collect::<Result<_>>()?,
            ));
        }
        let rows_of = |ts: &[QTensor]| -> Result<Vec<usize>> {
            ts.iter().map(|t| Ok(t.shape().dims2()?.0)).collect()
        };
        if ts.iter().all(|t| fmt.uses_int8(t)) {
            let parts = ts
                .iter()
                .map(Int8Rows::from_qtensor)
                .collect::<Result<Vec<_>>>()?;
            return Ok(Self::Fused(
                Linear::Int8(Int8Matrix::new(Int8Rows::concat(&parts)?)),
                rows_of(&ts)?,
            ));
        }
        if let Some(fused) = Linear::fuse_dense(&ts)? {
            return Ok(Self::Fused(fused, rows_of(&ts)?));
        }
        let dtype = ts.first().map(QTensor::dtype);
        let cols: Vec<usize> = ts
            .iter()
            .filter_map(|t| t.shape().dims2().ok().map(|d| d.1))
            .collect();
        let same = ts.iter().all(|t| Some(t.dtype()) == dtype)
            && cols.len() == ts.len()
            && cols.windows(2).all(|w| w[0] == w[1])
            && !matches!(
                dtype,
                Some(GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
            );
        let (Some(dtype), Some(&k), true) = (dtype, cols.first(), same) else {
            return Ok(Self::Separate(
                ts.into_iter().map(Linear::new).collect::<Result<_>>()?,
            ));
        };
        let mut bytes = Vec::new();
        let mut rows = Vec::with_capacity(ts.len());
        for t in &ts {
            bytes.extend_from_slice(&t.data()?);
            rows.push(t.shape().dims2()?.0);
        }
        let storage = candle_core::quantized::QStorage::from_data(
            std::borrow::Cow::Owned(bytes),
            &Device::Cpu,
            dtype,
        )?;
        let fused = QTensor::new(storage, (rows.iter().sum::<usize>(), k))?;
        Ok(Self::Fused(Linear::new(fused)?, rows))
    }

    pub(super) fn bytes(&self) -> usize {
        match self {
            Self::Fused(m, _) => m.bytes(),
            Self::Separate(ms) => ms.iter().map(Linear::bytes).sum(),
        }
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Self::Separate(ms) => ms.iter().map(|m| m.forward(x)).collect(),
            Self::Fused(m, rows) => {
                let y = m.forward(x)?;
                let mut off = 0;
                rows.iter()
                    .map(|&n| {
                        let part = y.narrow(D::Minus1, off, n)?;
                        off += n;
                        Ok(part)
                    })
                    .collect()
            }
        }
    }
}
