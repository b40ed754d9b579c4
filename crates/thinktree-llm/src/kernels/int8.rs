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
//! Format: 32-wide blocks along the input dimension, a scale per block and, for formats
//! with an offset (Q4_1), a minimum: `w = d*q + m`. GGUF's Q8_0, Q4_0 and Q4_1 load with
//! their exact values; any other format is dequantized and requantized to 8 bits.
//! Activations are quantized per block to 8-bit values with an f32 scale, as llama.cpp
//! does for these formats. Two layouts of the values ([`Weights`]):
//! - **bytes**: one signed byte per weight and f32 scales, for any 8-bit values;
//! - **nibbles** (the default for values that fit in 4 bits with f16 scales, i.e. GGUF's
//!   Q4_1 and Q4_0): two weights per byte and the block's own f16 scale and minimum, 0.625
//!   bytes a weight for Q4_1 (0.5625 for Q4_0) against the bytes' 1.25 (1.125). The
//!   kernel unpacks them in registers: one 32-byte load holds two 4-input groups of the
//!   panel's 8 rows, the even group in the low nibbles (`vpand` with 0x0F), the odd one in
//!   the high nibbles (`vpsrlw` by 4, then `vpand`), each then multiplied exactly as a
//!   non-negative byte group. Q4_0's -8..=7 is stored as `q + 8`; the block's sum then
//!   exceeds the bytes' by `8 * sum(a)`, which comes off in integers (the activation
//!   block's integer sum), so both layouts form the same integer sums and the same floats:
//!   bit-identical (tests compare every variant in both layouts with the scalar
//!   reference). Single-stream decode reads every weight once per token, so fewer bytes
//!   is what it needs: SmolLM2-135M Q4_1 holds 128.4 MB of weights instead of 194.8 MB,
//!   and the engine bench (2 threads, `avxvnni`, the two layouts alternated in one
//!   session, the clean pair) decodes a single stream at 89.7 tok/s against 79.3 (1.13x),
//!   prefills 384 against 350 tok/s, batch-8 238 against 226, batch-16 262 against 270
//!   (within this VM's run-to-run noise; the other packed run gave 255 and 258). The
//!   kernel alone on the LM head's shape (49152 x 576, too big for the caches), one row:
//!   57 against 33 G multiply-adds/s. Batches cost the unpacking once per block, not per
//!   row (the nibble kernel takes up to 8 rows through a block together), so the nibbles
//!   are used for every row count. `THINKTREE_Q4=unpacked` holds 4-bit values as bytes
//!   again, for comparisons.
//!
//! The inner loop (the runtime-dispatched variants in [`super::simd`]) never reduces
//! across a vector: the 8 rows of a panel are interleaved by 4-input groups, so one
//! 32-byte load holds 4 inputs of each of the 8 rows. Each 4-byte group of the
//! activation row is broadcast and multiplied into all 8 rows at once (`vpmaddubsw`,
//! unsigned by signed bytes; signed weights lend their sign to the activation); the
//! products build up lane by lane into the 8 block sums (in 16-bit lanes for 4-bit
//! weights, which cannot overflow them), and one FMA per block scales all 8 outputs. This
//! layout doubled the kernel's speed on batches over reducing 8 row vectors with
//! horizontal adds. Machines without AVX2 run a scalar loop with the same arithmetic
//! (bit-identical; a test compares them).

use std::sync::OnceLock;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

use crate::error::{Error, Result};

use super::simd::{self, FloatLevel, Level};

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
/// 32-byte vector holds 4 consecutive inputs of each of a panel's 8 rows (as bytes, or as
/// nibbles that the kernel unpacks in registers), per-block scales (and minimums) stored
/// panel by panel so the 8 outputs of a panel read theirs as one vector.
#[derive(Debug, Clone)]
pub(crate) struct Int8Matrix {
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) w: Weights,
}

/// A matrix's quantized values in one of the two layouts.
#[derive(Debug, Clone)]
pub(super) enum Weights {
    /// One signed byte per weight (any 8-bit values).
    Bytes(Bytes),
    /// Two weights per byte (values that fit in 4 bits: Q4_1's 0..=15, Q4_0's -8..=7).
    Nibbles(Nibbles),
}

/// One byte per weight.
#[derive(Debug, Clone)]
pub(super) struct Bytes {
    /// `[panel][block][group]`: lane `j` (bytes `4j..4j+4`) holds row `j`'s inputs
    /// `4 * group ..4 * group + 4` of the block.
    pub(super) q: Vec<[i8; BLOCK]>,
    /// `[panel][block][PANEL]`.
    pub(super) d: Vec<f32>,
    pub(super) m: Option<Vec<f32>>,
    /// Every value is >= 0 (unpacked Q4_1): the unsigned-by-signed multiply takes the
    /// weights as they are. Signed ones take a sign transfer (AVX2: `vpsignb`) or, in the
    /// `vpdpbusd` variants, an offset of 128 taken off the exact block sum. (The x86
    /// kernels' shortcuts: NEON's widening multiply needs neither flag.)
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) nonneg: bool,
    /// Every |value| <= 16 (4-bit formats): a block's pairwise products can be summed in
    /// 16-bit lanes without overflow (8 groups x 2 x 16 x 127 < 2^15).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) narrow: bool,
}

/// Two weights per byte: half the bytes of [`Bytes`] for the values, and the scales (and
/// minimums) as the f16 the GGUF block held (exact: converting f16 to f32 is).
#[derive(Debug, Clone)]
pub(super) struct Nibbles {
    /// `[panel][block][pair]`: the low nibbles of pair `p` are [`Bytes::q`]'s group `2p`,
    /// the high nibbles group `2p + 1`, each stored as `q + offset` (0..=15).
    pub(super) q: Vec<[u8; BLOCK]>,
    /// `[panel][block]`: the 8 rows' scales, f16 bits.
    pub(super) d: Vec<[u16; PANEL]>,
    pub(super) m: Option<Vec<[u16; PANEL]>>,
    /// Values were -8..=7 (Q4_0), stored as `q + 8`: a block's sum over the nibbles is
    /// `sum(q * a) + 8 * sum(a)`, so the kernel subtracts 8 times the activation block's
    /// integer sum, exactly.
    pub(super) offset8: bool,
}

/// Pairs of 4-input groups per block in the nibble layout: one 32-byte vector each.
pub(super) const PAIRS: usize = GROUPS / 2;

/// Whether 4-bit weights are held as nibbles (the default) or a byte each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Q4Layout {
    /// Two weights per byte, unpacked in registers by the kernel.
    Packed,
    /// One byte per weight (the layout before issue 14's 4-bit reads; for comparisons).
    Unpacked,
}

impl Q4Layout {
    /// The layout every loaded matrix uses: [`Q4Layout::Packed`], read once per process,
    /// unless `THINKTREE_Q4=unpacked` asks for a byte per weight (for comparisons).
    pub(crate) fn configured() -> Q4Layout {
        static LAYOUT: OnceLock<Q4Layout> = OnceLock::new();
        *LAYOUT.get_or_init(|| match std::env::var("THINKTREE_Q4").as_deref() {
            Ok("unpacked") => Q4Layout::Unpacked,
            _ => Q4Layout::Packed,
        })
    }

    /// `packed` or `unpacked`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Q4Layout::Packed => "packed",
            Q4Layout::Unpacked => "unpacked",
        }
    }
}

/// 4-input groups per block: one 32-byte vector each.
pub(super) const GROUPS: usize = BLOCK / 4;

/// Activations quantized per block.
pub(crate) struct QuantRows {
    pub(super) q: Vec<i8>,
    pub(super) d: Vec<f32>,
    /// Per block, the sum of the dequantized values (for the `m` term).
    pub(super) sum: Vec<f32>,
    /// Per block, the sum of the quantized values (for the nibbles' offset).
    pub(super) isum: Vec<i32>,
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
    /// 4-input groups; 4-bit values as nibbles unless `THINKTREE_Q4=unpacked`.
    pub(crate) fn new(w: Int8Rows) -> Self {
        Self::with_layout(w, Q4Layout::configured())
    }

    /// [`Int8Matrix::new`] with a given layout for 4-bit values (tests and benches
    /// compare them). Values that do not fit in 4 bits, or scales that are not f16, are
    /// held as bytes whatever the layout.
    pub(crate) fn with_layout(w: Int8Rows, layout: Q4Layout) -> Self {
        let packed = match layout {
            Q4Layout::Packed => Nibbles::pack(&w),
            Q4Layout::Unpacked => None,
        };
        Self {
            rows: w.rows,
            cols: w.cols,
            w: match packed {
                Some(nb) => Weights::Nibbles(nb),
                None => Weights::Bytes(Bytes::new(&w)),
            },
        }
    }

    /// Whether the values are held as nibbles.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn is_packed(&self) -> bool {
        matches!(self.w, Weights::Nibbles(_))
    }

    /// Bytes held: the weights, their scales and minimums.
    pub(crate) fn bytes(&self) -> usize {
        match &self.w {
            Weights::Bytes(b) => {
                b.q.len() * BLOCK + 4 * (b.d.len() + b.m.as_ref().map_or(0, Vec::len))
            }
            Weights::Nibbles(nb) => {
                nb.q.len() * BLOCK + 2 * PANEL * (nb.d.len() + nb.m.as_ref().map_or(0, Vec::len))
            }
        }
    }

    /// Panels of [`PANEL`] rows (the last padded).
    fn panels(&self) -> usize {
        self.rows.div_ceil(PANEL)
    }

    /// Output features.
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
        if n == 1 {
            // One row: the tiles are the output, in order.
            let mut out = vec![0f32; self.panels() * PANEL];
            out.par_chunks_mut(TASK_PANELS * PANEL)
                .enumerate()
                .for_each(|(task, dst)| {
                    for (i, tile) in dst.chunks_exact_mut(PANEL).enumerate() {
                        simd::panel_tile(level, self, task * TASK_PANELS + i, &acts, 1, tile);
                    }
                });
            out.truncate(self.rows);
            return Ok(out);
        }
        // Several rows: each task writes its outputs' slice of every row, the rows' slices
        // regrouped task by task, so the tasks write the row-major result in place. (The
        // kernels wrote their tiles outputs x rows, and the result was computed transposed
        // and transposed after: a zeroed buffer of the same size and two scattered
        // passes, the second serial below 65,536 values: ~6 % of a batch-8 decode's
        // critical thread, `perf`.)
        let width = TASK_PANELS * PANEL;
        let mut out = vec![0f32; n * self.rows];
        let mut by_row: Vec<_> = out
            .chunks_mut(self.rows)
            .map(|row| row.chunks_mut(width))
            .collect();
        let tasks = self.rows.div_ceil(width);
        let mut parts: Vec<&mut [f32]> = Vec::with_capacity(tasks * n);
        for _ in 0..tasks {
            parts.extend(by_row.iter_mut().filter_map(Iterator::next));
        }
        parts.par_chunks_mut(n).enumerate().for_each_init(
            || vec![0f32; PANEL * n],
            |tile, (task, dsts)| {
                for i in 0..TASK_PANELS {
                    let panel = task * TASK_PANELS + i;
                    if panel >= self.panels() {
                        break;
                    }
                    simd::panel_tile(level, self, panel, &acts, n, tile);
                    for (dst, vals) in dsts.iter_mut().zip(tile.chunks_exact(PANEL)) {
                        let outs = dst.iter_mut().skip(i * PANEL).take(PANEL);
                        for (d, &v) in outs.zip(vals) {
                            *d = v;
                        }
                    }
                }
            },
        );
        Ok(out)
    }

    /// The same arithmetic as the SIMD path, one output at a time: exact integer block
    /// sums, then per block `acc = fma(sum, d_w * d_a, acc)` (and the same for minimums).
    /// This is the reference every SIMD variant ([`super::simd`]) must equal bit for bit,
    /// and the nibble layout gives the byte layout's bits (the integer sums are the same).
    pub(super) fn panel_row_scalar(
        &self,
        panel: usize,
        acts: &QuantRows,
        r: usize,
    ) -> [f32; PANEL] {
        let bpr = self.cols / BLOCK;
        let a = acts.q[r * self.cols..(r + 1) * self.cols]
            .as_chunks::<4>()
            .0;
        let (a_d, a_sum) = (&acts.d[r * bpr..], &acts.sum[r * bpr..]);
        std::array::from_fn(|o| {
            let (mut acc, mut acc_m) = (0f32, 0f32);
            for kb in 0..bpr {
                let at = panel * bpr + kb;
                // The integer sum of the block, its weights' scale and minimum.
                let (isum, d, m): (i32, f32, Option<f32>) = match &self.w {
                    Weights::Bytes(b) => {
                        let groups = &b.q[at * GROUPS..(at + 1) * GROUPS];
                        let isum = groups
                            .iter()
                            .zip(&a[kb * GROUPS..])
                            .flat_map(|(g, ag)| g[4 * o..4 * o + 4].iter().zip(ag))
                            .map(|(&x, &y)| i32::from(x) * i32::from(y))
                            .sum();
                        let i = at * PANEL + o;
                        (isum, b.d[i], b.m.as_ref().map(|m| m[i]))
                    }
                    Weights::Nibbles(nb) => {
                        let pairs = &nb.q[at * PAIRS..(at + 1) * PAIRS];
                        let nib_sum: i32 = (0..GROUPS)
                            .flat_map(|k| {
                                let bytes = &pairs[k / 2][4 * o..4 * o + 4];
                                bytes.iter().zip(&a[kb * GROUPS + k]).map(move |(&x, &y)| {
                                    let v = if k % 2 == 0 { x & 0x0f } else { x >> 4 };
                                    i32::from(v) * i32::from(y)
                                })
                            })
                            .sum();
                        let offset = if nb.offset8 {
                            8 * acts.isum[r * bpr + kb]
                        } else {
                            0
                        };
                        let f = |bits: u16| f16::from_bits(bits).to_f32();
                        (
                            nib_sum - offset,
                            f(nb.d[at][o]),
                            nb.m.as_ref().map(|m| f(m[at][o])),
                        )
                    }
                };
                acc = (isum as f32).mul_add(d * a_d[kb], acc);
                if let Some(m) = m {
                    acc_m = m.mul_add(a_sum[kb], acc_m);
                }
            }
            acc + acc_m
        })
    }
}

impl Bytes {
    fn new(w: &Int8Rows) -> Self {
        let bpr = w.cols / BLOCK;
        let panels = w.rows.div_ceil(PANEL);
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
            let mut out = vec![0f32; panels * PANEL * bpr];
            for (i, &v) in src.iter().enumerate() {
                let (row, kb) = (i / bpr, i % bpr);
                out[((row / PANEL) * bpr + kb) * PANEL + row % PANEL] = v;
            }
            out
        };
        Self {
            d: by_panel(&w.d),
            m: w.m.as_deref().map(by_panel),
            q,
            nonneg,
            narrow,
        }
    }
}

impl Nibbles {
    /// The nibble layout of `w`, or None when a value does not fit in 4 bits (0..=15, or
    /// -8..=7 stored with an offset of 8) or a scale or minimum is not exactly an f16.
    fn pack(w: &Int8Rows) -> Option<Self> {
        let offset8 = if w.q.iter().all(|v| (0..=15).contains(v)) {
            false
        } else if w.q.iter().all(|v| (-8..=7).contains(v)) {
            true
        } else {
            return None;
        };
        let half = |v: f32| {
            let h = f16::from_f32(v);
            (h.to_f32().to_bits() == v.to_bits()).then_some(h.to_bits())
        };
        let bpr = w.cols / BLOCK;
        let panels = w.rows.div_ceil(PANEL);
        let by_panel = |src: &[f32]| -> Option<Vec<[u16; PANEL]>> {
            let mut out = vec![[0u16; PANEL]; panels * bpr];
            for (i, &v) in src.iter().enumerate() {
                let (row, kb) = (i / bpr, i % bpr);
                out[(row / PANEL) * bpr + kb][row % PANEL] = half(v)?;
            }
            Some(out)
        };
        let d = by_panel(&w.d)?;
        let m = match &w.m {
            Some(m) => Some(by_panel(m)?),
            None => None,
        };
        let offset = if offset8 { 8 } else { 0 };
        // Padding rows hold the value 0 (the nibble `offset`), like the byte layout's.
        let mut q = vec![[offset * 0x11; BLOCK]; panels * bpr * PAIRS];
        for (row, vals) in w.q.chunks_exact(w.cols).enumerate() {
            let lane = row % PANEL;
            for (k, group) in vals.chunks_exact(4).enumerate() {
                let dst = &mut q[(row / PANEL) * bpr * PAIRS + k / 2][4 * lane..4 * lane + 4];
                for (byte, &v) in dst.iter_mut().zip(group) {
                    let nib = (v as u8).wrapping_add(offset);
                    *byte = if k % 2 == 0 {
                        (*byte & 0xf0) | nib
                    } else {
                        (*byte & 0x0f) | (nib << 4)
                    };
                }
            }
        }
        Some(Self { q, d, m, offset8 })
    }
}

impl QuantRows {
    /// Quantizes `x` block by block, with the float loops compiled for the CPU
    /// ([`FloatLevel`]: `f32::round` is a `roundf` call in a plain x86-64 build).
    fn new(x: &[f32]) -> Self {
        Self::new_with(FloatLevel::best(), x)
    }

    /// [`QuantRows::new`] compiled for `level` (the tests compare levels).
    fn new_with(level: FloatLevel, x: &[f32]) -> Self {
        level.run(|| Self::build(level, x))
    }

    #[inline(always)]
    fn build(level: FloatLevel, x: &[f32]) -> Self {
        let blocks = x.len() / BLOCK;
        let mut q = Vec::with_capacity(x.len());
        let mut d = Vec::with_capacity(blocks);
        let mut sum = Vec::with_capacity(blocks);
        let mut isum = Vec::with_capacity(blocks);
        for blk in x.as_chunks::<BLOCK>().0 {
            let (scale, vals, total) = simd::quantize_block(level, blk);
            d.push(scale);
            sum.push(scale * total as f32);
            isum.push(total);
            q.extend_from_slice(&vals);
        }
        Self { q, d, sum, isum }
    }
}

/// Round-to-nearest symmetric 8-bit quantization of one block: `x ~= scale * q`. The
/// reference for [`simd::quantize_block`]'s vector path.
#[inline(always)]
pub(super) fn quantize_block(x: &[f32]) -> (f32, [i8; BLOCK]) {
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
    use super::super::{bits, pseudo};
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
        let (rows, cols, n) = (75, 64, 13);
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
    /// panel; the 4-bit formats in both layouts, the nibbles giving the bytes' bits.
    #[test]
    fn simd_and_scalar_paths_agree_bitwise() {
        // Every aarch64 CPU (and qemu) has NEON: its variant must be among those tested.
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Level::detect().name(), "neon");
        let (rows, cols, n) = (21, 96, 3);
        let wt = Tensor::from_vec(pseudo(rows * cols, 8), (rows, cols), &Device::Cpu).unwrap();
        let x = pseudo(n * cols, 10);
        for dt in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::F32,
        ] {
            let rows = Int8Rows::from_qtensor(&QTensor::quantize(&wt, dt).unwrap()).unwrap();
            let m = Int8Matrix::with_layout(rows.clone(), Q4Layout::Unpacked);
            let Weights::Bytes(b) = &m.w else {
                panic!("{dt:?}: unpacked layout holds nibbles")
            };
            assert_eq!(b.nonneg, dt == GgmlDType::Q4_1, "{dt:?}");
            let four_bit = matches!(dt, GgmlDType::Q4_0 | GgmlDType::Q4_1);
            assert_eq!(b.narrow, four_bit, "{dt:?}");
            let packed = Int8Matrix::with_layout(rows, Q4Layout::Packed);
            assert_eq!(packed.is_packed(), four_bit, "{dt:?}");
            // Every runtime-dispatched variant this CPU has, in both layouts, gives the
            // scalar bits of the byte layout.
            let reference = m.matmul_with(Level::SCALAR, &x, n).unwrap();
            for level in Level::supported() {
                for (layout, w) in [("unpacked", &m), ("packed", &packed)] {
                    let got = w.matmul_with(level, &x, n).unwrap();
                    assert_eq!(
                        bits(&got),
                        bits(&reference),
                        "{dt:?}: {} on {layout} differs from scalar on bytes",
                        level.name()
                    );
                }
            }
        }
    }

    /// Every variant equals the scalar reference bit for bit on random 8-bit weights over
    /// the whole range (-128 included), 4-bit-narrow and non-negative ones, random scales
    /// and minimums, and activations spanning 1e-30 to 1e30 (blocks of zeros too), for 1
    /// to 17 rows. Weights that fit in 4 bits (Q4_1's 0..=15, Q4_0's -8..=7, random or
    /// only their extremes) with f16 scales also run in the nibble layout, every variant
    /// and the scalar loop there giving the byte layout's scalar bits.
    #[test]
    fn every_variant_equals_scalar_on_random_extremes() {
        let mut s = 0x9E37_79B9_u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut packed_cases = 0;
        for case in 0..60 {
            let (rows, cols) = (
                1 + (next() % 20) as usize,
                BLOCK * (1 + (next() % 6) as usize),
            );
            let kind = case % 7;
            let q: Vec<i8> = (0..rows * cols)
                .map(|_| match kind {
                    0 => next() as u8 as i8,
                    1 => (next() % 33) as i8 - 16,
                    2 | 3 => (next() % 16) as i8,
                    4 => (next() % 16) as i8 - 8,
                    5 => [0, 15][(next() % 2) as usize],
                    _ => [-8, 7][(next() % 2) as usize],
                })
                .collect();
            let blocks = rows * cols / BLOCK;
            let four_bit = kind >= 3;
            // Scales and minimums as the GGUF's 4-bit blocks hold them (f16, subnormal
            // ones included) where the nibble layout is to be tested.
            let scale = |v: u32| {
                let x = (v % 2000) as f32 / 1000.0 - 1.0;
                if !four_bit {
                    x
                } else if v.is_multiple_of(11) {
                    // Subnormal f16s, either sign (bit 15).
                    f16::from_bits((v % 1024) as u16 | (v as u16 & 0x8000)).to_f32()
                } else {
                    f16::from_f32(x).to_f32()
                }
            };
            let d: Vec<f32> = (0..blocks).map(|_| scale(next())).collect();
            let m = (case % 2 == 0).then(|| (0..blocks).map(|_| scale(next())).collect());
            let rows_q = Int8Rows {
                rows,
                cols,
                q,
                d,
                m,
            };
            let w = Int8Matrix::with_layout(rows_q.clone(), Q4Layout::Unpacked);
            let packed = Int8Matrix::with_layout(rows_q, Q4Layout::Packed);
            // Kind 2 is 4-bit values with f32 scales: they stay bytes.
            assert_eq!(packed.is_packed(), four_bit, "case {case}");
            packed_cases += usize::from(packed.is_packed());
            let n = 1 + (next() % 17) as usize;
            let x: Vec<f32> = (0..n * cols)
                .map(|i| {
                    let exp = ((i / BLOCK) % 7) as i32 * 10 - 30;
                    if (i / BLOCK) % 5 == 4 {
                        0.0
                    } else {
                        ((next() % 2000) as f32 / 1000.0 - 1.0) * 10f32.powi(exp)
                    }
                })
                .collect();
            let reference = w.matmul_with(Level::SCALAR, &x, n).unwrap();
            for level in Level::supported() {
                for (layout, m) in [("unpacked", &w), ("packed", &packed)] {
                    let got = m.matmul_with(level, &x, n).unwrap();
                    assert_eq!(
                        bits(&got),
                        bits(&reference),
                        "case {case}: {} on {layout} differs from scalar on bytes",
                        level.name()
                    );
                }
            }
        }
        assert!(packed_cases >= 30, "{packed_cases} cases ran on nibbles");
    }

    /// GGUF 4-bit weights are held as nibbles (0.5 bytes a weight plus f16 scales and
    /// minimums), the byte layout on request, and 8-bit ones as bytes.
    #[test]
    fn four_bit_weights_pack_to_half_a_byte() {
        let (rows, cols) = (16, 256);
        let wt = Tensor::from_vec(pseudo(rows * cols, 12), (rows, cols), &Device::Cpu).unwrap();
        for (dt, packed_bytes) in [
            (GgmlDType::Q4_1, 0.5 + 4.0 / 32.0),
            (GgmlDType::Q4_0, 0.5 + 2.0 / 32.0),
            (GgmlDType::Q8_0, 1.0 + 4.0 / 32.0),
        ] {
            let r = Int8Rows::from_qtensor(&QTensor::quantize(&wt, dt).unwrap()).unwrap();
            let packed = Int8Matrix::with_layout(r.clone(), Q4Layout::Packed);
            let per_weight = |m: &Int8Matrix| m.bytes() as f64 / (rows * cols) as f64;
            assert_eq!(per_weight(&packed), packed_bytes, "{dt:?}");
            assert_eq!(packed.is_packed(), dt != GgmlDType::Q8_0, "{dt:?}");
            let unpacked = Int8Matrix::with_layout(r, Q4Layout::Unpacked);
            assert!(!unpacked.is_packed());
            let want = if dt == GgmlDType::Q4_1 { 1.25 } else { 1.125 };
            assert_eq!(per_weight(&unpacked), want, "{dt:?}");
        }
    }

    /// A fused projection whose parts mix Q4_0 and Q4_1 values (-8..=15) cannot be
    /// nibbles with one offset: it stays bytes and computes the same.
    #[test]
    fn mixed_four_bit_parts_stay_bytes() {
        let cols = 64;
        let a = Tensor::from_vec(pseudo(3 * cols, 13), (3, cols), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(pseudo(9 * cols, 14), (9, cols), &Device::Cpu).unwrap();
        let ra = Int8Rows::from_qtensor(&QTensor::quantize(&a, GgmlDType::Q4_0).unwrap()).unwrap();
        let rb = Int8Rows::from_qtensor(&QTensor::quantize(&b, GgmlDType::Q4_1).unwrap()).unwrap();
        let both = Int8Rows::concat(&[ra.clone(), rb.clone()]).unwrap();
        let m = Int8Matrix::with_layout(both, Q4Layout::Packed);
        assert!(!m.is_packed());
        let x = pseudo(2 * cols, 15);
        let parts = [ra, rb].map(|r| Int8Matrix::with_layout(r, Q4Layout::Packed));
        assert!(parts.iter().all(Int8Matrix::is_packed));
        let y = m.matmul(&x, 2).unwrap();
        for r in 0..2 {
            let row = &x[r * cols..(r + 1) * cols];
            let want = [
                parts[0].matmul(row, 1).unwrap(),
                parts[1].matmul(row, 1).unwrap(),
            ]
            .concat();
            assert_eq!(bits(&y[r * 12..(r + 1) * 12]), bits(&want), "row {r}");
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

    /// The activations' quantization gives the same bits at every float level the CPU
    /// runs (`f32::round` as an instruction or as `roundf`), on values from 1e-30 to 1e30,
    /// both signs, exact halves (rounded away from zero), zeros and infinities.
    #[test]
    fn activation_quantization_is_the_same_at_every_float_level() {
        let mut x = pseudo(BLOCK * 40, 21);
        for (i, v) in x.iter_mut().enumerate() {
            *v *= 10f32.powi((i % 61) as i32 - 30);
        }
        // A block of exact halves after scaling (amax 127: scale 1), one of zeros, one
        // with an infinity.
        for (k, v) in x[..BLOCK].iter_mut().enumerate() {
            *v = if k == 0 { 127.0 } else { k as f32 - 15.5 };
        }
        x[BLOCK..2 * BLOCK].fill(0.0);
        x[2 * BLOCK + 3] = f32::INFINITY;
        // Halves at other scales (amax 127 * 2^e, so every `v / scale` is exact), the
        // floats on either side of each half (where `trunc(y + 0.5)` goes wrong), NaNs
        // (ignored by the maximum, quantized to 0), a saturating value, subnormals.
        for (b, e) in (3..9).zip([-20, -3, 0, 5, 30, 60]) {
            let s = 2f32.powi(e);
            for (k, v) in x[b * BLOCK..(b + 1) * BLOCK].iter_mut().enumerate() {
                let h = (k as f32 - 15.5) * s;
                *v = match k % 3 {
                    0 => h,
                    1 => f32::from_bits(h.to_bits() + 1),
                    _ => f32::from_bits(h.to_bits() - 1),
                };
            }
            x[b * BLOCK] = 127.0 * s;
        }
        x[9 * BLOCK + 5] = f32::NAN;
        x[10 * BLOCK..11 * BLOCK].fill(f32::NAN);
        x[11 * BLOCK + 7] = -f32::NAN;
        x[12 * BLOCK..13 * BLOCK].fill(f32::from_bits(3));
        x[12 * BLOCK + 1] = -f32::from_bits(900);
        let want = QuantRows::new_with(FloatLevel::BASELINE, &x);
        assert_eq!(want.q[1], -15, "halves round away from zero");
        assert_eq!(want.q[31], 16);
        assert_eq!(
            want.q[10 * BLOCK..11 * BLOCK],
            [0; BLOCK],
            "NaN quantizes to 0"
        );
        for level in FloatLevel::supported() {
            let got = QuantRows::new_with(level, &x);
            assert_eq!(got.q, want.q, "{level:?}");
            assert_eq!(bits(&got.d), bits(&want.d), "{level:?}");
            assert_eq!(bits(&got.sum), bits(&want.sum), "{level:?}");
            assert_eq!(got.isum, want.isum, "{level:?}");
        }
    }
}
