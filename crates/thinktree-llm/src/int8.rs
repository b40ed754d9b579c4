//! 8-bit block weights and their product with a few activation rows: thinktree's own
//! kernel for decode steps and sibling batches.
//!
//! candle's quantized matmul computes each (activation row, weight row) dot product on its
//! own, so a batch of `b` rows streams every weight `b` times: decoding 8 siblings
//! together was no faster per token than decoding them one by one, and Q4_1 has no SIMD
//! kernel there at all. Here a weight block is loaded and widened once, then multiplied
//! into every activation row while it sits in registers.
//!
//! The arithmetic of one output never depends on how many rows came with it (each row has
//! its own accumulators, summed in a fixed order), so a batch gives **bit-identical**
//! results to the same rows computed one at a time, and a search does not change its
//! answers with the number of siblings it expands together.
//!
//! Format: 32-wide blocks along the input dimension, one signed byte per weight, an f32
//! scale per block and, for formats with an offset (Q4_1), an f32 minimum: `w = d*q + m`.
//! GGUF's Q8_0, Q4_0 and Q4_1 load with their exact values (4-bit values unpacked to a
//! byte each: 1.6x the memory of Q4_1, and no nibble shuffling in the inner loop); any
//! other format is dequantized and requantized to 8 bits. Activations are quantized per
//! block to 8-bit values with an f32 scale, as llama.cpp does for these formats, and kept
//! as `i16` so the inner loop is a multiply-add of 16-bit pairs (one `vpmaddwd` per
//! block on AVX2/AVX-512), written in safe Rust for the compiler to vectorize.

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;
use wide::{f32x16, i8x32, i16x32};

use crate::error::{Error, Result};

/// Weights per block along the input dimension.
pub(crate) const BLOCK: usize = 32;
/// Output features one rayon task computes: enough work to pay for the task, small
/// enough that two threads share a 192-row projection evenly.
const TASK_ROWS: usize = 32;

/// A weight matrix (`rows` outputs x `cols` inputs) in 8-bit blocks.
#[derive(Debug, Clone)]
pub(crate) struct Int8Matrix {
    rows: usize,
    cols: usize,
    /// `rows * cols` quantized values, row-major.
    q: Vec<i8>,
    /// One scale per block, `rows * cols / BLOCK`.
    d: Vec<f32>,
    /// One minimum per block (Q4_1-style offsets), or none.
    m: Option<Vec<f32>>,
}

/// Activations quantized per block.
struct QuantRows {
    cols: usize,
    q: Vec<i16>,
    d: Vec<f32>,
    /// Per block, the sum of the dequantized values (for the `m` term).
    sum: Vec<f32>,
}

impl Int8Matrix {
    /// Whether a weight of this shape can be stored (the input width must be a whole
    /// number of blocks).
    pub(crate) fn supports(t: &QTensor) -> bool {
        t.rank() == 2
            && t.shape()
                .dims2()
                .is_ok_and(|(r, c)| r > 0 && c > 0 && c.is_multiple_of(BLOCK))
    }

    /// Converts a GGUF tensor; Q8_0/Q4_0/Q4_1 keep their exact values.
    pub(crate) fn from_qtensor(t: &QTensor) -> Result<Self> {
        if !Self::supports(t) {
            return Err(Error::UnsupportedModel(format!(
                "8-bit blocks need a 2-D weight whose width is a multiple of {BLOCK}, got {:?}",
                t.shape().dims()
            )));
        }
        let (rows, cols) = t.shape().dims2()?;
        let blocks = rows * cols / BLOCK;
        match t.dtype() {
            GgmlDType::Q8_0 | GgmlDType::Q4_0 | GgmlDType::Q4_1 => {
                let data = t.data()?;
                Self::from_ggml_blocks(t.dtype(), &data, rows, cols, blocks)
            }
            _ => {
                let w = t
                    .dequantize(&Device::Cpu)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                Ok(Self::quantize(&w, rows, cols))
            }
        }
    }

    fn from_ggml_blocks(
        dtype: GgmlDType,
        data: &[u8],
        rows: usize,
        cols: usize,
        blocks: usize,
    ) -> Result<Self> {
        let (block_bytes, has_min) = match dtype {
            GgmlDType::Q8_0 => (2 + BLOCK, false),
            GgmlDType::Q4_0 => (2 + BLOCK / 2, false),
            _ => (4 + BLOCK / 2, true),
        };
        if data.len() != blocks * block_bytes {
            return Err(Error::UnsupportedModel(format!(
                "{dtype:?} weight of {rows}x{cols} has {} bytes, expected {}",
                data.len(),
                blocks * block_bytes
            )));
        }
        let mut q = Vec::with_capacity(rows * cols);
        let mut d = Vec::with_capacity(blocks);
        let mut m = has_min.then(|| Vec::with_capacity(blocks));
        let half_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        for b in data.chunks_exact(block_bytes) {
            d.push(half_at(b, 0));
            match dtype {
                GgmlDType::Q8_0 => q.extend(b[2..].iter().map(|&x| x as i8)),
                GgmlDType::Q4_0 => {
                    let qs = &b[2..];
                    q.extend(qs.iter().map(|&x| (x & 0x0f) as i8 - 8));
                    q.extend(qs.iter().map(|&x| (x >> 4) as i8 - 8));
                }
                _ => {
                    if let Some(m) = m.as_mut() {
                        m.push(half_at(b, 2));
                    }
                    let qs = &b[4..];
                    q.extend(qs.iter().map(|&x| (x & 0x0f) as i8));
                    q.extend(qs.iter().map(|&x| (x >> 4) as i8));
                }
            }
        }
        Ok(Self {
            rows,
            cols,
            q,
            d,
            m,
        })
    }

    /// Symmetric 8-bit blocks of dense weights (`rows x cols`, row-major).
    fn quantize(w: &[f32], rows: usize, cols: usize) -> Self {
        let mut q = Vec::with_capacity(w.len());
        let mut d = Vec::with_capacity(w.len() / BLOCK);
        for blk in w.chunks_exact(BLOCK) {
            let (scale, vals) = quantize_block(blk);
            d.push(scale);
            q.extend(vals.iter().map(|&v| v as i8));
        }
        Self {
            rows,
            cols,
            q,
            d,
            m: None,
        }
    }

    /// Output features.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Stacks matrices of the same input width into one (outputs concatenated), so
    /// projections of one input run as a single call.
    pub(crate) fn concat(parts: &[Self]) -> Result<Self> {
        let Some(cols) = parts.first().map(|p| p.cols) else {
            return Err(Error::InvalidConfig("nothing to concatenate".into()));
        };
        if parts.iter().any(|p| p.cols != cols) {
            return Err(Error::UnsupportedModel(
                "fused projections differ in input width".into(),
            ));
        }
        let any_min = parts.iter().any(|p| p.m.is_some());
        let mut out = Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols,
            q: Vec::new(),
            d: Vec::new(),
            m: any_min.then(Vec::new),
        };
        for p in parts {
            out.q.extend_from_slice(&p.q);
            out.d.extend_from_slice(&p.d);
            if let Some(m) = out.m.as_mut() {
                match &p.m {
                    Some(pm) => m.extend_from_slice(pm),
                    None => m.extend(std::iter::repeat_n(0.0, p.d.len())),
                }
            }
        }
        Ok(out)
    }

    /// `x @ W^T` for `x` of `n` rows of `cols` values, row-major; returns `n x rows`.
    pub(crate) fn matmul(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        if n == 0 || x.len() != n * self.cols {
            return Err(Error::InvalidConfig(format!(
                "8-bit matmul: {} inputs for {n} rows of {}",
                x.len(),
                self.cols
            )));
        }
        let acts = QuantRows::new(x, self.cols);
        let bpr = self.cols / BLOCK;
        // Computed transposed (outputs x rows) so each task owns one contiguous slice.
        let mut out_t = vec![0f32; self.rows * n];
        out_t
            .par_chunks_mut(TASK_ROWS * n)
            .enumerate()
            .for_each(|(task, dst)| {
                let first = task * TASK_ROWS;
                for (i, out) in dst.chunks_exact_mut(n).enumerate() {
                    let o = first + i;
                    let wq = &self.q[o * self.cols..(o + 1) * self.cols];
                    let wd = &self.d[o * bpr..(o + 1) * bpr];
                    let wm = self.m.as_ref().map(|m| &m[o * bpr..(o + 1) * bpr]);
                    row_times(wq, wd, wm, &acts, out);
                }
            });
        if n == 1 {
            return Ok(out_t);
        }
        let mut out = vec![0f32; n * self.rows];
        out.par_chunks_mut(self.rows)
            .enumerate()
            .for_each(|(r, dst)| {
                for (d, vals) in dst.iter_mut().zip(out_t.chunks_exact(n)) {
                    *d = vals[r];
                }
            });
        Ok(out)
    }
}

impl QuantRows {
    fn new(x: &[f32], cols: usize) -> Self {
        let blocks = x.len() / BLOCK;
        let mut q = Vec::with_capacity(x.len());
        let mut d = Vec::with_capacity(blocks);
        let mut sum = Vec::with_capacity(blocks);
        for blk in x.chunks_exact(BLOCK) {
            let (scale, vals) = quantize_block(blk);
            d.push(scale);
            sum.push(scale * vals.iter().map(|&v| i32::from(v)).sum::<i32>() as f32);
            q.extend_from_slice(&vals);
        }
        Self { cols, q, d, sum }
    }

    fn blocks_per_row(&self) -> usize {
        self.cols / BLOCK
    }
}

/// Round-to-nearest symmetric 8-bit quantization of one block: `x ~= scale * q`.
fn quantize_block(x: &[f32]) -> (f32, [i16; BLOCK]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut q = [0i16; BLOCK];
    if amax == 0.0 || !amax.is_finite() {
        return (if amax.is_finite() { 0.0 } else { amax }, q);
    }
    let scale = amax / 127.0;
    let inv = 1.0 / scale;
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = (v * inv).round() as i16;
    }
    (scale, q)
}

/// One weight row against every activation row, `R` rows at a time so their
/// accumulators stay in registers while the widened weight block is reused.
fn row_times(wq: &[i8], wd: &[f32], wm: Option<&[f32]>, acts: &QuantRows, out: &mut [f32]) {
    let bpr = acts.blocks_per_row();
    let mut r = 0;
    while r < out.len() {
        let left = out.len() - r;
        if left >= 8 {
            rows_dot::<8>(wq, wd, wm, acts, r, bpr, &mut out[r..r + 8]);
            r += 8;
        } else if left >= 4 {
            rows_dot::<4>(wq, wd, wm, acts, r, bpr, &mut out[r..r + 4]);
            r += 4;
        } else if left >= 2 {
            rows_dot::<2>(wq, wd, wm, acts, r, bpr, &mut out[r..r + 2]);
            r += 2;
        } else {
            rows_dot::<1>(wq, wd, wm, acts, r, bpr, &mut out[r..r + 1]);
            r += 1;
        }
    }
}

#[inline(always)]
fn rows_dot<const R: usize>(
    wq: &[i8],
    wd: &[f32],
    wm: Option<&[f32]>,
    acts: &QuantRows,
    first: usize,
    bpr: usize,
    out: &mut [f32],
) {
    let mut acc = [f32x16::splat(0.0); R];
    let (wblocks, _) = wq.as_chunks::<BLOCK>();
    let (ablocks, _) = acts.q.as_chunks::<BLOCK>();
    let rows: [&[[i16; BLOCK]]; R] =
        std::array::from_fn(|r| &ablocks[(first + r) * bpr..(first + r + 1) * bpr]);
    let scales: [&[f32]; R] =
        std::array::from_fn(|r| &acts.d[(first + r) * bpr..(first + r + 1) * bpr]);
    for (kb, (wb, &wdk)) in wblocks.iter().zip(wd).enumerate() {
        let w = i16x32::from_i8x32(i8x32::new(*wb));
        for r in 0..R {
            let p = w.dot(i16x32::new(rows[r][kb])).round_float();
            acc[r] = p.mul_add(f32x16::splat(wdk * scales[r][kb]), acc[r]);
        }
    }
    for (r, (o, acc)) in out.iter_mut().zip(acc).enumerate() {
        let mut v = acc.reduce_add();
        if let Some(m) = wm {
            let sums = &acts.sum[(first + r) * bpr..(first + r + 1) * bpr];
            v += m
                .iter()
                .zip(sums)
                .fold(0f32, |a, (&mk, &sk)| mk.mul_add(sk, a));
        }
        *o = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn reference(w: &[f32], rows: usize, cols: usize, x: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * rows];
        for r in 0..n {
            for o in 0..rows {
                out[r * rows + o] = (0..cols).map(|k| x[r * cols + k] * w[o * cols + k]).sum();
            }
        }
        out
    }

    #[test]
    fn ggml_blocks_load_exactly() {
        let (rows, cols) = (5, 64);
        let w = Tensor::from_vec(pseudo(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1] {
            let qt = QTensor::quantize(&w, dt).unwrap();
            let want = qt
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let m = Int8Matrix::from_qtensor(&qt).unwrap();
            let bpr = cols / BLOCK;
            let got: Vec<f32> = (0..rows * cols)
                .map(|i| {
                    let b = (i / cols) * bpr + (i % cols) / BLOCK;
                    m.d[b] * f32::from(m.q[i]) + m.m.as_ref().map_or(0.0, |mm| mm[b])
                })
                .collect();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{dt:?}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn matmul_matches_dense_within_activation_rounding() {
        let (rows, cols, n) = (70, 96, 11);
        let x = pseudo(n * cols, 9);
        let wt = Tensor::from_vec(pseudo(rows * cols, 7), (rows, cols), &Device::Cpu).unwrap();
        for dt in [
            GgmlDType::F32,
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
        ] {
            let qt = QTensor::quantize(&wt, dt).unwrap();
            // The weights' own values (exact for the GGUF block formats): the only
            // difference left is the 8-bit rounding of the activations (and of f32 weights).
            let w = qt
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let want = reference(&w, rows, cols, &x, n);
            let got = Int8Matrix::from_qtensor(&qt)
                .unwrap()
                .matmul(&x, n)
                .unwrap();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, e)| (g - e).abs())
                .fold(0f32, f32::max);
            assert!(worst < 0.08, "{dt:?}: max error {worst}");
        }
    }

    #[test]
    fn batch_is_bit_identical_to_rows_alone() {
        let (rows, cols, n) = (33, 64, 13);
        let wt = Tensor::from_vec(pseudo(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
        let m =
            Int8Matrix::from_qtensor(&QTensor::quantize(&wt, GgmlDType::Q4_1).unwrap()).unwrap();
        let x = pseudo(n * cols, 2);
        let all = m.matmul(&x, n).unwrap();
        for r in 0..n {
            let one = m.matmul(&x[r * cols..(r + 1) * cols], 1).unwrap();
            assert_eq!(one, all[r * rows..(r + 1) * rows], "row {r}");
        }
    }

    #[test]
    fn concat_stacks_outputs_and_fills_missing_minimums() {
        let cols = 32;
        let a = Tensor::from_vec(pseudo(2 * cols, 4), (2, cols), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(pseudo(3 * cols, 5), (3, cols), &Device::Cpu).unwrap();
        let ma =
            Int8Matrix::from_qtensor(&QTensor::quantize(&a, GgmlDType::Q8_0).unwrap()).unwrap();
        let mb =
            Int8Matrix::from_qtensor(&QTensor::quantize(&b, GgmlDType::Q4_1).unwrap()).unwrap();
        let both = Int8Matrix::concat(&[ma.clone(), mb.clone()]).unwrap();
        let x = pseudo(cols, 6);
        let ya = ma.matmul(&x, 1).unwrap();
        let yb = mb.matmul(&x, 1).unwrap();
        let y = both.matmul(&x, 1).unwrap();
        assert_eq!(y, [ya, yb].concat());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::zeros((4, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
        let qt = QTensor::quantize(&t, GgmlDType::F32).unwrap();
        assert!(Int8Matrix::from_qtensor(&qt).is_err());
        let t = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let m = Int8Matrix::from_qtensor(&QTensor::quantize(&t, GgmlDType::F32).unwrap()).unwrap();
        assert!(m.matmul(&[0.0; 31], 1).is_err());
        assert_eq!(m.matmul(&[0.0; 32], 1).unwrap(), vec![0.0; 4]);
    }
}
