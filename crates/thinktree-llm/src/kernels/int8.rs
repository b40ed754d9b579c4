//! 8-bit block weights and their product with a few activation rows: thinktree's own
//! kernel for decode steps and sibling batches.
//!
//! candle's quantized matmul computes each (activation row, weight row) dot product on its
//! own, so a batch of `b` rows streams every weight `b` times: decoding 8 siblings
//! together was no faster per token than decoding them one by one, and Q4_1 has no SIMD
//! kernel there at all. Here the weights are walked in panels of 8 output rows: a panel
//! (a few KiB) stays in L1 while every activation row is multiplied into it, so a batch
//! reads each weight from memory once.
//!
//! The arithmetic of one output never depends on how many rows came with it: each block's
//! integer dot product is exact, and it is scaled and accumulated with one fused
//! multiply-add per block in block order, so a batch gives **bit-identical** products to
//! the same rows computed one at a time.
//!
//! Format: 32-wide blocks along the input dimension, one signed byte per weight, an f32
//! scale per block and, for formats with an offset (Q4_1), an f32 minimum: `w = d*q + m`.
//! GGUF's Q8_0, Q4_0 and Q4_1 load with their exact values (4-bit values unpacked to a
//! byte each: 1.6x the memory of Q4_1, and no nibble shuffling in the inner loop); any
//! other format is dequantized and requantized to 8 bits. Activations are quantized per
//! block to 8-bit values with an f32 scale, as llama.cpp does for these formats.
//!
//! The inner loop (AVX2, through the `safe_arch` crate: the workspace forbids `unsafe`)
//! never reduces across a vector: the 8 rows of a panel are interleaved by 4-input groups,
//! so one 32-byte load holds 4 inputs of each of the 8 rows. Each 4-byte group of the
//! activation row is broadcast and multiplied into all 8 rows at once (`vpmaddubsw`,
//! unsigned by signed bytes; signed weights lend their sign to the activation); the
//! products build up lane by lane into the 8 block sums (in 16-bit lanes for 4-bit
//! weights, which cannot overflow them), and one FMA per block scales all 8 outputs. This
//! layout doubled the kernel's speed on batches over reducing 8 row vectors with
//! horizontal adds. Machines without AVX2 run a scalar loop with the same arithmetic
//! (bit-identical; a test compares them).

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

use crate::error::{Error, Result};

use super::simd::{self, Level};

/// Weights per block along the input dimension.
pub(crate) const BLOCK: usize = 32;

/// Output rows per panel: one 8-lane f32 vector of outputs.
pub(crate) const PANEL: usize = 8;
/// Panels one rayon task computes: enough work to pay for the task, small enough that
/// two threads share a 192-row projection evenly.
const TASK_PANELS: usize = 4;

/// A weight matrix (`rows` outputs x `cols` inputs) in 8-bit blocks, row-major: the form
/// weights are loaded and stacked in.
#[derive(Debug, Clone)]
pub(crate) struct Int8Rows {
    rows: usize,
    cols: usize,
    /// `rows * cols` quantized values, row-major.
    q: Vec<i8>,
    /// One scale per block, `rows * cols / BLOCK`, row-major.
    d: Vec<f32>,
    /// One minimum per block (Q4_1-style offsets), or none.
    m: Option<Vec<f32>>,
}

/// The multiply-ready form: rows padded to whole panels, weights interleaved so one
/// 32-byte vector holds 4 consecutive inputs of each of a panel's 8 rows, per-block scales
/// (and minimums) stored panel by panel so the 8 outputs of a panel read theirs as one
/// vector.
#[derive(Debug, Clone)]
pub(crate) struct Int8Matrix {
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// `[panel][block][group]`: lane `j` (bytes `4j..4j+4`) holds row `j`'s inputs
    /// `4 * group ..4 * group + 4` of the block.
    pub(super) q: Vec<[i8; BLOCK]>,
    /// `[panel][block][PANEL]`.
    pub(super) d: Vec<f32>,
    pub(super) m: Option<Vec<f32>>,
    /// Every value is >= 0 (unpacked Q4_1): the unsigned-by-signed multiply takes the
    /// weights as they are, with no sign transfer.
    pub(super) nonneg: bool,
    /// Every |value| <= 16 (4-bit formats): a block's pairwise products can be summed in
    /// 16-bit lanes without overflow (8 groups x 2 x 16 x 127 < 2^15).
    pub(super) narrow: bool,
}

/// 4-input groups per block: one 32-byte vector each.
pub(super) const GROUPS: usize = BLOCK / 4;

/// Activations quantized per block.
pub(crate) struct QuantRows {
    pub(super) q: Vec<i8>,
    pub(super) d: Vec<f32>,
    /// Per block, the sum of the dequantized values (for the `m` term).
    pub(super) sum: Vec<f32>,
}

impl Int8Rows {
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
            q.extend_from_slice(&vals);
        }
        Self {
            rows,
            cols,
            q,
            d,
            m: None,
        }
    }

    /// Stacks matrices of the same input width into one (outputs concatenated), so
    /// projections of one input run as a single call.
    pub(crate) fn concat(parts: &[Self]) -> Result<Self> {
        let Some(cols) = parts.first().map(|p| p.cols) else {
            return Err(Error::Shape("nothing to concatenate".into()));
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
}

impl Int8Matrix {
    /// Lays the rows out in panels (padding the last with zero rows), interleaved by
    /// 4-input groups.
    pub(crate) fn new(w: Int8Rows) -> Self {
        let bpr = w.cols / BLOCK;
        let panels = w.rows.div_ceil(PANEL);
        let padded = panels * PANEL;
        let nonneg = w.q.iter().all(|&v| v >= 0);
        let narrow = w.q.iter().all(|&v| v.unsigned_abs() <= 16);
        let mut q = vec![[0i8; BLOCK]; panels * bpr * GROUPS];
        for (row, vals) in w.q.chunks_exact(w.cols).enumerate() {
            let lane = row % PANEL;
            for (k, group) in vals.chunks_exact(4).enumerate() {
                let dst = &mut q[(row / PANEL) * bpr * GROUPS + k];
                dst[4 * lane..4 * lane + 4].copy_from_slice(group);
            }
        }
        let by_panel = |src: &[f32]| {
            let mut out = vec![0f32; padded * bpr];
            for (i, &v) in src.iter().enumerate() {
                let (row, kb) = (i / bpr, i % bpr);
                out[((row / PANEL) * bpr + kb) * PANEL + row % PANEL] = v;
            }
            out
        };
        Self {
            rows: w.rows,
            cols: w.cols,
            d: by_panel(&w.d),
            m: w.m.as_deref().map(by_panel),
            q,
            nonneg,
            narrow,
        }
    }

    /// Output features.
    /// Bytes held: the weights, their scales and minimums.
    pub(crate) fn bytes(&self) -> usize {
        self.q.len() * BLOCK + 4 * (self.d.len() + self.m.as_ref().map_or(0, Vec::len))
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// `x @ W^T` for `x` of `n` rows of `cols` values, row-major; returns `n x rows`.
    pub(crate) fn matmul(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        self.matmul_with(Level::best(), x, n)
    }

    /// [`Int8Matrix::matmul`] with a given kernel variant (tests and benches compare them).
    pub(crate) fn matmul_with(&self, level: Level, x: &[f32], n: usize) -> Result<Vec<f32>> {
        if n == 0 || x.len() != n * self.cols {
            return Err(Error::Shape(format!(
                "8-bit matmul: {} inputs for {n} rows of {}",
                x.len(),
                self.cols
            )));
        }
        let acts = QuantRows::new(x);
        // Computed transposed (outputs x rows) so each task owns one contiguous slice.
        let mut out_t = vec![0f32; self.q.len() * BLOCK / self.cols * n];
        out_t
            .par_chunks_mut(TASK_PANELS * PANEL * n)
            .enumerate()
            .for_each(|(task, dst)| {
                for (i, tile) in dst.chunks_exact_mut(PANEL * n).enumerate() {
                    simd::panel_tile(level, self, task * TASK_PANELS + i, &acts, n, tile);
                }
            });
        if n == 1 {
            out_t.truncate(self.rows);
            return Ok(out_t);
        }
        let mut out = vec![0f32; n * self.rows];
        let untranspose = |(r, dst): (usize, &mut [f32])| {
            for (d, vals) in dst.iter_mut().zip(out_t.chunks_exact(n)) {
                *d = vals[r];
            }
        };
        // Only the output projection's logits are worth a thread hand-off.
        if out.len() >= 1 << 16 {
            out.par_chunks_mut(self.rows)
                .enumerate()
                .for_each(untranspose);
        } else {
            out.chunks_mut(self.rows).enumerate().for_each(untranspose);
        }
        Ok(out)
    }

    /// The same arithmetic as the SIMD path, one output at a time: exact integer block
    /// sums, then per block `acc = fma(sum, d_w * d_a, acc)` (and the same for minimums).
    /// This is the reference every SIMD variant ([`super::simd`]) must equal bit for bit.
    pub(super) fn panel_row_scalar(
        &self,
        panel: usize,
        acts: &QuantRows,
        r: usize,
    ) -> [f32; PANEL] {
        let bpr = self.cols / BLOCK;
        let groups = &self.q[panel * bpr * GROUPS..(panel + 1) * bpr * GROUPS];
        let a = acts.q[r * self.cols..(r + 1) * self.cols]
            .as_chunks::<4>()
            .0;
        std::array::from_fn(|o| {
            let (mut acc, mut acc_m) = (0f32, 0f32);
            for kb in 0..bpr {
                let isum: i32 = (kb * GROUPS..(kb + 1) * GROUPS)
                    .flat_map(|k| groups[k][4 * o..4 * o + 4].iter().zip(&a[k]))
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .sum();
                let at = (panel * bpr + kb) * PANEL + o;
                acc = (isum as f32).mul_add(self.d[at] * acts.d[r * bpr + kb], acc);
                if let Some(m) = &self.m {
                    acc_m = m[at].mul_add(acts.sum[r * bpr + kb], acc_m);
                }
            }
            acc + acc_m
        })
    }
}

impl QuantRows {
    fn new(x: &[f32]) -> Self {
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
        Self { q, d, sum }
    }
}

/// Round-to-nearest symmetric 8-bit quantization of one block: `x ~= scale * q`.
fn quantize_block(x: &[f32]) -> (f32, [i8; BLOCK]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut q = [0i8; BLOCK];
    if amax == 0.0 || !amax.is_finite() {
        return (if amax.is_finite() { 0.0 } else { amax }, q);
    }
    let scale = amax / 127.0;
    let inv = 1.0 / scale;
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = (v * inv).round() as i8;
    }
    (scale, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    /// The tensor's own (dequantized) values, row-major.
    fn values(qt: &QTensor) -> Vec<f32> {
        let t = qt.dequantize(&Device::Cpu).unwrap();
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn matrix(qt: &QTensor) -> Int8Matrix {
        Int8Matrix::new(Int8Rows::from_qtensor(qt).unwrap())
    }

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
            let want = values(&qt);
            let m = Int8Rows::from_qtensor(&qt).unwrap();
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
            let w = values(&qt);
            let want = reference(&w, rows, cols, &x, n);
            let got = matrix(&qt).matmul(&x, n).unwrap();
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
        let m = matrix(&QTensor::quantize(&wt, GgmlDType::Q4_1).unwrap());
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
        let ra = Int8Rows::from_qtensor(&QTensor::quantize(&a, GgmlDType::Q8_0).unwrap()).unwrap();
        let rb = Int8Rows::from_qtensor(&QTensor::quantize(&b, GgmlDType::Q4_1).unwrap()).unwrap();
        let both = Int8Matrix::new(Int8Rows::concat(&[ra.clone(), rb.clone()]).unwrap());
        let x = pseudo(cols, 6);
        let ya = Int8Matrix::new(ra).matmul(&x, 1).unwrap();
        let yb = Int8Matrix::new(rb).matmul(&x, 1).unwrap();
        let y = both.matmul(&x, 1).unwrap();
        assert_eq!(y, [ya, yb].concat());
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::zeros((4, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
        let qt = QTensor::quantize(&t, GgmlDType::F32).unwrap();
        assert!(Int8Rows::from_qtensor(&qt).is_err());
        let t = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let m = Int8Matrix::new(
            Int8Rows::from_qtensor(&QTensor::quantize(&t, GgmlDType::F32).unwrap()).unwrap(),
        );
        assert!(m.matmul(&[0.0; 31], 1).is_err());
        assert_eq!(m.matmul(&[0.0; 32], 1).unwrap(), vec![0.0; 4]);
    }

    /// Every SIMD variant and the scalar loop compute the same bits, for signed and
    /// unsigned weights, with and without minimums, on a row count that is not a whole
    /// panel.
    #[test]
    fn simd_and_scalar_paths_agree_bitwise() {
        let (rows, cols, n) = (21, 96, 3);
        let wt = Tensor::from_vec(pseudo(rows * cols, 8), (rows, cols), &Device::Cpu).unwrap();
        let x = pseudo(n * cols, 10);
        for dt in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::F32,
        ] {
            let m = Int8Matrix::new(
                Int8Rows::from_qtensor(&QTensor::quantize(&wt, dt).unwrap()).unwrap(),
            );
            assert_eq!(m.nonneg, dt == GgmlDType::Q4_1, "{dt:?}");
            let four_bit = matches!(dt, GgmlDType::Q4_0 | GgmlDType::Q4_1);
            assert_eq!(m.narrow, four_bit, "{dt:?}");
            // Every runtime-dispatched variant this CPU has gives the scalar bits.
            let reference = m.matmul_with(Level::SCALAR, &x, n).unwrap();
            for level in Level::supported() {
                let got = m.matmul_with(level, &x, n).unwrap();
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    reference.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{dt:?}: {} differs from scalar",
                    level.name()
                );
            }
        }
    }

    /// Every variant equals the scalar reference bit for bit on random 8-bit weights over
    /// the whole range (-128 included), 4-bit-narrow and non-negative ones, random scales
    /// and minimums, and activations spanning 1e-30 to 1e30 (blocks of zeros too), for 1
    /// to 17 rows.
    #[test]
    fn every_variant_equals_scalar_on_random_extremes() {
        let mut s = 0x9E37_79B9_u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for case in 0..24 {
            let (rows, cols) = (
                1 + (next() % 20) as usize,
                BLOCK * (1 + (next() % 6) as usize),
            );
            let kind = case % 3;
            let q: Vec<i8> = (0..rows * cols)
                .map(|_| match kind {
                    0 => next() as u8 as i8,
                    1 => (next() % 33) as i8 - 16,
                    _ => (next() % 16) as i8,
                })
                .collect();
            let blocks = rows * cols / BLOCK;
            let scale = |v: u32| (v % 2000) as f32 / 1000.0 - 1.0;
            let d: Vec<f32> = (0..blocks).map(|_| scale(next())).collect();
            let m = (case % 2 == 0).then(|| (0..blocks).map(|_| scale(next())).collect());
            let w = Int8Matrix::new(Int8Rows {
                rows,
                cols,
                q,
                d,
                m,
            });
            let n = 1 + (next() % 17) as usize;
            let x: Vec<f32> = (0..n * cols)
                .map(|i| {
                    let exp = ((i / BLOCK) % 7) as i32 * 10 - 30;
                    if (i / BLOCK) % 5 == 4 {
                        0.0
                    } else {
                        scale(next()) * 10f32.powi(exp)
                    }
                })
                .collect();
            let reference = w.matmul_with(Level::SCALAR, &x, n).unwrap();
            for level in Level::supported() {
                let got = w.matmul_with(level, &x, n).unwrap();
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    reference.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "case {case}: {} differs from scalar",
                    level.name()
                );
            }
        }
    }

    /// Extreme values: a -128 weight (possible in a foreign Q8_0 file) and full-scale
    /// activations stay exact (no 16-bit saturation in the pairwise products).
    #[test]
    fn extreme_values_do_not_saturate() {
        let cols = 64;
        let rows = Int8Rows {
            rows: 1,
            cols,
            q: (0..cols)
                .map(|i| if i % 2 == 0 { -128 } else { 127 })
                .collect(),
            d: vec![1.0; cols / BLOCK],
            m: None,
        };
        let m = Int8Matrix::new(rows);
        let x: Vec<f32> = (0..cols)
            .map(|i| if i % 2 == 0 { -1.0 } else { 1.0 })
            .collect();
        let got = m.matmul(&x, 1).unwrap()[0];
        // Activations quantize to -/+127 with scale 1/127: each pair adds
        // (128 * 127 + 127 * 127) / 127.
        let want = (cols / 2) as f32 * (128.0 + 127.0);
        assert!((got - want).abs() < 1e-2, "{got} vs {want}");
        for level in Level::supported() {
            assert_eq!(
                m.matmul_with(level, &x, 1).unwrap()[0].to_bits(),
                got.to_bits()
            );
        }
    }
}
