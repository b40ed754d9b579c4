//! The llama-family transformer forward pass over quantized GGUF weights.
//!
//! The weights are immutable and the forward takes `&self` plus explicit key/value
//! tensors, so one [`Model`] can serve many search trees and rayon workers at once.
//! The caller (the tree KV cache) owns all per-context state.
//!
//! One forward handles every case the engine needs: a prefill of a single sequence, and a
//! decode step of `b` sibling rows that share a prefix. The shared prefix's keys and values
//! are never copied per row: queries of all rows are stacked into one matmul against the
//! prefix keys, while each row's own suffix keys are attended separately, and the two score
//! blocks are joined before one softmax.

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};

use crate::decode_attn;
use crate::int8::{Int8Matrix, Int8Rows};
use crate::linear::Linear;
use candle_core::{D, DType, Device, Tensor};

use crate::error::{Error, Result};

/// Positions for which rotary tables are precomputed when the GGUF does not state a
/// context length.
const DEFAULT_CONTEXT: usize = 4096;

/// Per-layer keys and values: `(k, v)`, each `(kv_heads, len, head_dim)` for one sequence or
/// `(rows, kv_heads, len, head_dim)` for a batch of rows.
pub type LayerKv = (Tensor, Tensor);

/// How weights are stored in memory after loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// 8-bit blocks read by thinktree's own kernel: Q8_0, Q4_0 and Q4_1 weights keep their
    /// exact values (4-bit ones unpacked to a byte each), any other type is requantized to
    /// 8 bits. The fastest format for a single stream and for sibling batches alike (a
    /// weight block is read once for every row of a batch), and a batch computes exactly
    /// what its rows would alone.
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
                Error::InvalidConfig(format!(
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

    fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let arch = md(ct, "general.architecture")?
            .to_string()
            .map_err(|e| meta_err("general.architecture", e))?
            .clone();
        if arch != "llama" && arch != "qwen2" {
            return Err(Error::UnsupportedModel(format!(
                "architecture `{arch}` (supported: llama, qwen2)"
            )));
        }
        let u = |key: &str| -> Result<usize> {
            let k = format!("{arch}.{key}");
            Ok(md(ct, &k)?.to_u32().map_err(|e| meta_err(&k, e))? as usize)
        };
        let n_head = u("attention.head_count")?;
        let n_kv_head = u("attention.head_count_kv").unwrap_or(n_head);
        let n_layer = u("block_count")?;
        let hidden = u("embedding_length")?;
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
        let head_dim = hidden / n_head;
        if let Ok(rd) = u("rope.dimension_count")
            && rd != head_dim
        {
            return Err(Error::UnsupportedModel(format!(
                "partial rotary ({rd} of {head_dim} dims)"
            )));
        }
        let rope_base = ct
            .metadata
            .get(&format!("{arch}.rope.freq_base"))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        let eps_key = format!("{arch}.attention.layer_norm_rms_epsilon");
        let rms_eps = md(ct, &eps_key)?
            .to_f32()
            .map_err(|e| meta_err(&eps_key, e))?;
        let context_length = u("context_length").unwrap_or(DEFAULT_CONTEXT);
        let embd = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| Error::UnsupportedModel("missing tensor token_embd.weight".into()))?;
        let vocab = embd.shape.dims2().map_err(Error::Candle)?.0;
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

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata.get(key).ok_or_else(|| Error::Metadata {
        key: key.into(),
        reason: "missing".into(),
    })
}

fn meta_err(key: &str, e: candle_core::Error) -> Error {
    Error::Metadata {
        key: key.into(),
        reason: e.to_string(),
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    /// q, k and v projections (one matmul when their storage types agree).
    qkv: Proj,
    bias_qkv: Option<(Tensor, Tensor, Tensor)>,
    wo: Linear,
    ffn_norm: Tensor,
    /// Gate and up projections of the MLP.
    gate_up: Proj,
    w_down: Linear,
}

/// A loaded llama/qwen2 model: immutable weights plus rotary tables.
#[derive(Debug)]
pub struct Model {
    cfg: ModelConfig,
    embed: QMatMul,
    layers: Vec<Layer>,
    out_norm: Tensor,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    /// The same tables as flat vectors (`context x head_dim / 2`) for decode steps.
    cos_v: Vec<f32>,
    sin_v: Vec<f32>,
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
        let mut layers = Vec::with_capacity(cfg.n_layer);
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
            layers.push(Layer {
                attn_norm: get(&format!("blk.{i}.attn_norm.weight"))?.dequantize(&dev)?,
                ffn_norm: get(&format!("blk.{i}.ffn_norm.weight"))?.dequantize(&dev)?,
                qkv,
                bias_qkv,
                wo,
                gate_up,
                w_down,
            });
        }
        let (cos, sin) = rope_tables(&cfg)?;
        let cos_v = cos.flatten_all()?.to_vec1::<f32>()?;
        let sin_v = sin.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self {
            embed: QMatMul::QTensor(embd_q),
            cfg,
            layers,
            out_norm,
            output,
            cos,
            sin,
            cos_v,
            sin_v,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Runs `tokens` (`rows` x `t`, all rows at positions `pos..pos + t`) through the model.
    ///
    /// `prefix` holds per-layer keys/values `(kv_heads, P, head_dim)` shared by every row
    /// (the context all rows continue from); `suffix` holds per-layer `(rows, kv_heads, S,
    /// head_dim)` for tokens each row has of its own, so `pos` must equal `P + S`.
    /// Returns the logits of each row's last token `(rows, vocab)` and the rows' own
    /// keys/values extended by the new tokens `(rows, kv_heads, S + t, head_dim)`.
    pub fn forward(
        &self,
        tokens: &[Vec<u32>],
        prefix: Option<&[LayerKv]>,
        suffix: Option<&[LayerKv]>,
        pos: usize,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        on_pool(|| {
            let (hidden, new_kv) = self.forward_hidden(tokens, prefix, suffix, pos)?;
            Ok((self.output.forward(&hidden)?, new_kv))
        })
    }

    /// Like [`Model::forward`], but returns each row's final hidden state `(rows,
    /// embedding)` instead of logits: the output of the final norm at the last token, the
    /// vector the output projection reads. A value head reads this.
    pub fn forward_hidden(
        &self,
        tokens: &[Vec<u32>],
        prefix: Option<&[LayerKv]>,
        suffix: Option<&[LayerKv]>,
        pos: usize,
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        on_pool(|| {
            let rows = tokens.len();
            let t = tokens.first().map_or(0, Vec::len);
            if rows == 0 || t == 0 || tokens.iter().any(|r| r.len() != t) {
                return Err(Error::InvalidConfig(
                    "forward needs >= 1 row of equal, non-zero length".into(),
                ));
            }
            if pos + t > self.cfg.context_length {
                return Err(Error::ContextOverflow {
                    len: pos + t,
                    max: self.cfg.context_length,
                });
            }
            self.check_vocab(tokens.iter().flatten())?;
            let s_len = kv_len(suffix, 2);
            check_position(pos, kv_len(prefix, 1), s_len)?;
            let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
            let ids = Tensor::from_vec(flat, (rows, t), &Device::Cpu)?;
            let mut x = self.embed.embedding(&ids)?;
            let cos = self.cos.narrow(0, pos, t)?;
            let sin = self.sin.narrow(0, pos, t)?;
            let mask = causal_mask(self.cfg.n_head / self.cfg.n_kv_head, t, s_len)?;
            let mut new_kv = Vec::with_capacity(self.layers.len());
            for (i, layer) in self.layers.iter().enumerate() {
                let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.cfg.rms_eps)?;
                let ctx = Attn {
                    pos,
                    prefix: prefix.and_then(|p| p.get(i)),
                    suffix: suffix.and_then(|s| s.get(i)),
                    cos: &cos,
                    sin: &sin,
                    mask: mask.as_ref(),
                };
                let (a, kv) = self.attention(layer, &h, &ctx)?;
                new_kv.push(kv);
                x = self.mlp(layer, (x + a)?)?;
            }
            let last = x.narrow(1, t - 1, 1)?.squeeze(1)?;
            let last = candle_nn::ops::rms_norm(&last, &self.out_norm, self.cfg.rms_eps)?;
            Ok((last, new_kv))
        })
    }

    fn attention(&self, layer: &Layer, h: &Tensor, ctx: &Attn<'_>) -> Result<(Tensor, LayerKv)> {
        let (rows, t, _) = h.dims3()?;
        if t == 1 {
            return self.decode_attention(layer, h, ctx);
        }
        let (nh, nkv, hd) = (self.cfg.n_head, self.cfg.n_kv_head, self.cfg.head_dim);
        let group = nh / nkv;
        let mut qkv = layer.qkv.forward(h)?.into_iter();
        let (Some(mut q), Some(mut k), Some(mut v)) = (qkv.next(), qkv.next(), qkv.next()) else {
            return Err(Error::UnsupportedModel("q/k/v projection split".into()));
        };
        if let Some((bq, bk, bv)) = &layer.bias_qkv {
            q = q.broadcast_add(bq)?;
            k = k.broadcast_add(bk)?;
            v = v.broadcast_add(bv)?;
        }
        let q = q
            .reshape((rows, t, nh, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let k = k
            .reshape((rows, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let v = v
            .reshape((rows, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let (q, k) = if self.cfg.rope_neox {
            (
                candle_nn::rotary_emb::rope(&q, ctx.cos, ctx.sin)?,
                candle_nn::rotary_emb::rope(&k, ctx.cos, ctx.sin)?,
            )
        } else {
            (
                candle_nn::rotary_emb::rope_i(&q, ctx.cos, ctx.sin)?,
                candle_nn::rotary_emb::rope_i(&k, ctx.cos, ctx.sin)?,
            )
        };
        let (own_k, own_v) = match ctx.suffix {
            Some((sk, sv)) => (Tensor::cat(&[sk, &k], 2)?, Tensor::cat(&[sv, &v], 2)?),
            None => (k, v),
        };
        // Query heads sharing a kv head are stacked: (rows, kv_heads, group * t, head_dim).
        let q = (q.reshape((rows, nkv, group * t, hd))? * (1.0 / (hd as f64).sqrt()))?;
        let own_scores = q.matmul(&own_k.transpose(2, 3)?)?;
        let own_scores = match ctx.mask {
            Some(m) => own_scores.broadcast_add(m)?,
            None => own_scores,
        };
        let y = match ctx.prefix {
            None => {
                let w = candle_nn::ops::softmax_last_dim(&own_scores)?;
                w.matmul(&own_v)?
            }
            Some((pk, pv)) => {
                let p = pk.dim(1)?;
                // All rows' queries against the one shared prefix: one matmul, no copies.
                let qp = if rows == 1 {
                    q.squeeze(0)?
                } else {
                    q.transpose(0, 1)?
                        .contiguous()?
                        .reshape((nkv, rows * group * t, hd))?
                };
                let ps = qp.matmul(&pk.t()?)?;
                let ps = if rows == 1 {
                    ps.unsqueeze(0)?
                } else {
                    ps.reshape((nkv, rows, group * t, p))?.transpose(0, 1)?
                };
                // cat along the last dim of a transposed input is itself strided.
                let scores = Tensor::cat(&[&ps, &own_scores], D::Minus1)?.contiguous()?;
                let w = candle_nn::ops::softmax_last_dim(&scores)?;
                let wp = w.narrow(3, 0, p)?;
                let wo = w.narrow(3, p, own_scores.dim(3)?)?.contiguous()?;
                let yp = if rows == 1 {
                    wp.squeeze(0)?.contiguous()?.matmul(pv)?.unsqueeze(0)?
                } else {
                    wp.transpose(0, 1)?
                        .contiguous()?
                        .reshape((nkv, rows * group * t, p))?
                        .matmul(pv)?
                        .reshape((nkv, rows, group * t, hd))?
                        .transpose(0, 1)?
                };
                (yp + wo.matmul(&own_v)?)?
            }
        };
        let y = y
            .reshape((rows, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((rows, t, nh * hd))?;
        Ok((layer.wo.forward(&y)?, (own_k, own_v)))
    }
}

impl Model {
    /// [`Model::attention`] for one new token per row, in plain loops
    /// ([`crate::decode_attn`]); every row at the same position on the same prefix.
    fn decode_attention(
        &self,
        layer: &Layer,
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
    fn row_attention(
        &self,
        layer: &Layer,
        h: &Tensor,
        prefixes: &[Option<&LayerKv>],
        suffix: Option<&LayerKv>,
        positions: &[usize],
    ) -> Result<(Tensor, LayerKv)> {
        let rows = h.dim(0)?;
        let d = decode_attn::Dims {
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
            decode_attn::rope_in_place(qr, d.head_dim, cos, sin, self.cfg.rope_neox);
            decode_attn::rope_in_place(kr, d.head_dim, cos, sin, self.cfg.rope_neox);
        }
        let s = match suffix {
            Some((sk, _)) => sk.dim(2)?,
            None => 0,
        };
        let (own_k, own_v) = match suffix {
            Some((sk, sv)) => (
                decode_attn::with_f32(sk, |x| decode_attn::append_own(Some(x), s, &k, d))?,
                decode_attn::with_f32(sv, |x| decode_attn::append_own(Some(x), s, &v, d))?,
            ),
            None => (
                decode_attn::append_own(None, 0, &k, d),
                decode_attn::append_own(None, 0, &v, d),
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
            .map(|(_, k, v)| Ok((decode_attn::F32View::new(k)?, decode_attn::F32View::new(v)?)))
            .collect::<Result<Vec<_>>>()?;
        let views = guards
            .iter()
            .map(|(k, v)| Ok((k.slice()?, v.slice()?)))
            .collect::<Result<Vec<_>>>()?;
        let row_prefix: Vec<Option<(&[f32], &[f32])>> = which
            .iter()
            .map(|w| w.and_then(|i| views.get(i).copied()))
            .collect();
        let y = decode_attn::attend(&q, &row_prefix, (&own_k, &own_v), s + 1, d);
        let y = Tensor::from_vec(y, (rows, 1, d.n_head * d.head_dim), &Device::Cpu)?;
        Ok((
            layer.wo.forward(&y)?,
            (
                decode_attn::own_tensor(own_k, d, s + 1)?,
                decode_attn::own_tensor(own_v, d, s + 1)?,
            ),
        ))
    }

    /// One decode step for rows of **different** contexts: row `r` feeds `tokens[r]` at
    /// position `positions[r]` on top of `prefixes[r]` (per-layer `(kv_heads, P_r,
    /// head_dim)`, shared by every row that continues the same context) and the rows' own
    /// keys/values `suffix` (per layer `(rows, kv_heads, S, head_dim)`, the same `S` for
    /// every row), so `P_r + S` must equal `positions[r]`. Returns the rows' logits `(rows,
    /// vocab)` and their own keys/values extended by the new token.
    pub fn forward_rows(
        &self,
        tokens: &[u32],
        prefixes: &[Option<&[LayerKv]>],
        suffix: Option<&[LayerKv]>,
        positions: &[usize],
    ) -> Result<(Tensor, Vec<LayerKv>)> {
        on_pool(|| {
            let rows = tokens.len();
            if rows == 0 || prefixes.len() != rows || positions.len() != rows {
                return Err(Error::InvalidConfig(
                    "forward_rows needs one prefix and one position per token".into(),
                ));
            }
            self.check_vocab(tokens)?;
            let s_len = kv_len(suffix, 2);
            for (p, &pos) in prefixes.iter().zip(positions) {
                if pos + 1 > self.cfg.context_length {
                    return Err(Error::ContextOverflow {
                        len: pos + 1,
                        max: self.cfg.context_length,
                    });
                }
                check_position(pos, kv_len(*p, 1), s_len)?;
            }
            let ids = Tensor::from_vec(tokens.to_vec(), (rows, 1), &Device::Cpu)?;
            let mut x = self.embed.embedding(&ids)?;
            let mut new_kv = Vec::with_capacity(self.layers.len());
            for (i, layer) in self.layers.iter().enumerate() {
                let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.cfg.rms_eps)?;
                let layer_prefix: Vec<Option<&LayerKv>> =
                    prefixes.iter().map(|p| p.and_then(|p| p.get(i))).collect();
                let (a, kv) = self.row_attention(
                    layer,
                    &h,
                    &layer_prefix,
                    suffix.and_then(|s| s.get(i)),
                    positions,
                )?;
                new_kv.push(kv);
                x = self.mlp(layer, (x + a)?)?;
            }
            let last = candle_nn::ops::rms_norm(&x.squeeze(1)?, &self.out_norm, self.cfg.rms_eps)?;
            Ok((self.output.forward(&last)?, new_kv))
        })
    }

    /// A typed error for the first token id outside the vocabulary.
    fn check_vocab<'a>(&self, ids: impl IntoIterator<Item = &'a u32>) -> Result<()> {
        match ids.into_iter().find(|&&id| id as usize >= self.cfg.vocab) {
            Some(bad) => Err(Error::InvalidConfig(format!(
                "token id {bad} outside vocabulary of {}",
                self.cfg.vocab
            ))),
            None => Ok(()),
        }
    }

    /// The residual MLP block: `x + down(silu(gate(norm x)) * up(norm x))`.
    fn mlp(&self, layer: &Layer, x: Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.cfg.rms_eps)?;
        let gu = layer.gate_up.forward(&h)?;
        let (Some(g), Some(u)) = (gu.first(), gu.get(1)) else {
            return Err(Error::UnsupportedModel("gate/up projection split".into()));
        };
        let g = candle_nn::ops::silu(g)?;
        Ok((x + layer.w_down.forward(&(g * u)?)?)?)
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

/// Projections that read the same input. Rows of quantized matrices are independent
/// blocks, so matrices of one storage type stack into a single matrix: one matmul (one
/// activation quantization, one thread dispatch) instead of several, then split.
#[derive(Debug)]
enum Proj {
    Fused(Linear, Vec<usize>),
    Separate(Vec<Linear>),
}

impl Proj {
    fn new(ts: Vec<QTensor>, fmt: WeightFormat) -> Result<Self> {
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

    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
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

struct Attn<'a> {
    /// Position of the first new token.
    pos: usize,
    prefix: Option<&'a LayerKv>,
    suffix: Option<&'a LayerKv>,
    cos: &'a Tensor,
    sin: &'a Tensor,
    mask: Option<&'a Tensor>,
}

/// Additive mask for the own-token scores `(group * t, s + t)`: query `t_i` sees the `s`
/// suffix keys and new keys up to itself. None when `t == 1` (nothing to hide).
fn causal_mask(group: usize, t: usize, s: usize) -> Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    let cols = s + t;
    let mut m = vec![0f32; group * t * cols];
    for g in 0..group {
        for i in 0..t {
            for j in (s + i + 1)..cols {
                m[(g * t + i) * cols + j] = f32::NEG_INFINITY;
            }
        }
    }
    Ok(Some(Tensor::from_vec(m, (group * t, cols), &Device::Cpu)?))
}

fn rope_tables(cfg: &ModelConfig) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / cfg.rope_base.powf(2.0 * i as f32 / cfg.head_dim as f32))
        .collect();
    let n = cfg.context_length;
    let mut ang = Vec::with_capacity(n * half);
    for p in 0..n {
        ang.extend(inv.iter().map(|f| p as f32 * f));
    }
    let ang = Tensor::from_vec(ang, (n, half), &Device::Cpu)?;
    Ok((ang.cos()?.to_dtype(DType::F32)?, ang.sin()?))
}
