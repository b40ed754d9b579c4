//! A weight matrix and its product with activations, in the layout that is fast for it.
//!
//! Quantized (and f16) weights go through candle's `QMatMul`. Dense f32 weights are kept
//! **transposed and contiguous** (`in x out`): candle's `QMatMul` multiplies by a strided
//! transpose of the GGUF's `out x in` matrix, and the gemm crate then re-packs the whole
//! weight matrix on every call (a third of the time of a batched decode step went to that
//! packing). With the transposed copy the weights are read in place.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, Device, Module, Tensor};

use crate::error::Result;
use crate::kernels::int8::Int8Matrix;

/// One projection's weights.
#[derive(Debug)]
pub(crate) enum Linear {
    /// Quantized or f16 weights, multiplied by candle's kernels.
    Quant(QMatMul),
    /// f32 weights stored as `in x out`, contiguous.
    DenseT(Tensor),
    /// 8-bit blocks read by thinktree's own kernel (see [`crate::kernels::int8`]).
    Int8(Int8Matrix),
}

impl Linear {
    /// Wraps a quantized weight; f32 weights are transposed once here.
    pub(crate) fn new(t: QTensor) -> Result<Self> {
        if t.dtype() == GgmlDType::F32 && t.rank() == 2 {
            let w = t.dequantize(&Device::Cpu)?;
            return Ok(Self::DenseT(w.t()?.contiguous()?));
        }
        Ok(Self::Quant(QMatMul::from_qtensor(t)?))
    }

    /// Wraps a matmul built elsewhere (f16, tied embeddings).
    pub(crate) fn quant(m: QMatMul) -> Self {
        Self::Quant(m)
    }

    /// Several f32 projections of the same input as one `in x (out1 + out2 + ...)`
    /// matrix, so one matmul serves them all. None when any is not dense f32.
    pub(crate) fn fuse_dense(ts: &[QTensor]) -> Result<Option<Self>> {
        if ts.is_empty()
            || !ts
                .iter()
                .all(|t| t.dtype() == GgmlDType::F32 && t.rank() == 2)
        {
            return Ok(None);
        }
        let parts = ts
            .iter()
            .map(|t| Ok(t.dequantize(&Device::Cpu)?.t()?))
            .collect::<Result<Vec<Tensor>>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(Some(Self::DenseT(Tensor::cat(&refs, 1)?.contiguous()?)))
    }

    /// Bytes the weights occupy in memory.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Self::Quant(QMatMul::QTensor(t)) => t.storage_size_in_bytes(),
            Self::Quant(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) | Self::DenseT(t) => {
                t.elem_count() * t.dtype().size_in_bytes()
            }
            Self::Int8(m) => m.bytes(),
        }
    }

    /// `x @ W^T` over the last dimension of `x`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Quant(m) => Ok(m.forward(x)?),
            Self::Int8(m) => {
                let mut dims = x.dims().to_vec();
                let rows = x.elem_count() / m.cols().max(1);
                let y = m.matmul(&x.flatten_all()?.to_vec1::<f32>()?, rows)?;
                if let Some(last) = dims.last_mut() {
                    *last = m.rows();
                }
                Ok(Tensor::from_vec(y, dims, x.device())?)
            }
            Self::DenseT(wt) => {
                let dims = x.dims().to_vec();
                let k = x.dim(D::Minus1)?;
                let rows = x.elem_count() / k.max(1);
                let y = x.reshape((rows, k))?.matmul(wt)?;
                let mut out = dims;
                if let Some(last) = out.last_mut() {
                    *last = wt.dim(1)?;
                }
                Ok(y.reshape(out)?)
            }
        }
    }
}
