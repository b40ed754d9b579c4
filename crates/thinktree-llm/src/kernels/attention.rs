//! Attention of new tokens (a decode step's one per row, or a prefill's many), in plain
//! loops over the cached keys and values.
//!
//! A decode step does little arithmetic per layer (one query per head against a few
//! hundred keys), so as a chain of tensor ops (reshape, rope, concatenate, matmul,
//! softmax, narrow, matmul, add, ...) it was dominated by per-op cost: about twenty
//! allocations and dispatches per layer, on one thread while the matmul workers waited.
//! Here the step is one pass per (row, head): rotate, score against the shared prefix
//! and the row's own keys, softmax, weigh the values. The shared prefix is read in place,
//! never copied per row, and each (row, head) is computed the same way whatever the batch.

use candle_core::{Storage, Tensor};
use rayon::prelude::*;

use super::simd::{self, FloatLevel};
use crate::error::{Error, Result};

/// Shapes of one decode step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub rows: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Multiplies every query (`1 / sqrt(head_dim)` for every supported model but
    /// Gemma 3 27B).
    pub scale: f32,
    /// Sliding-window attention: a query sees only the keys less than this many positions
    /// back (itself included), as llama.cpp masks them. `None`: the whole context.
    pub window: Option<usize>,
}

/// A read lock on a CPU f32 tensor's storage, to read it in place: a contiguous tensor, or
/// rows' own keys laid out by position ([`F32View::own`]).
pub(crate) struct F32View<'a> {
    // candle's lock guard, whatever its type: only dereferenced.
    storage: Box<dyn std::ops::Deref<Target = Storage> + 'a>,
    range: (usize, usize),
}

impl<'a> F32View<'a> {
    /// Locks `t`'s storage; `t` must be contiguous.
    pub(crate) fn new(t: &'a Tensor) -> Result<Self> {
        let (storage, layout) = t.storage_and_layout();
        let range = layout
            .contiguous_offsets()
            .ok_or_else(|| Error::KvCache("cached keys are not contiguous".into()))?;
        Ok(Self {
            storage: Box::new(storage),
            range,
        })
    }

    /// The values.
    pub(crate) fn slice(&self) -> Result<&[f32]> {
        let Storage::Cpu(cpu) = &**self.storage else {
            return Err(Error::Shape("attention reads CPU tensors only".into()));
        };
        Ok(&cpu.as_slice::<f32>()?[self.range.0..self.range.1])
    }

    /// Locks a `(rows, kv_heads, len, head_dim)` tensor's storage to read its rows' keys
    /// (or values) in place: the values from its first element on, and where each (row,
    /// head) starts. Positions must lie `head_dim` apart (true of a packed buffer with room
    /// to grow and of a narrowed view of one); None otherwise.
    pub(crate) fn own(t: &'a Tensor) -> Option<(Self, OwnStrides)> {
        let (storage, layout) = t.storage_and_layout();
        let (dims, st) = (layout.dims(), layout.stride());
        if dims.len() != 4 || st[3] != 1 || st[2] != dims[3] {
            return None;
        }
        let start = layout.start_offset();
        let end = if dims.contains(&0) {
            start
        } else {
            start + dims.iter().zip(st).map(|(n, s)| (n - 1) * s).sum::<usize>() + 1
        };
        let at = OwnStrides {
            row: st[0],
            head: st[1],
        };
        Some((
            Self {
                storage: Box::new(storage),
                range: (start, end),
            },
            at,
        ))
    }
}

/// Rotates every head of `x` (`heads * head_dim` values per row) for one position, with
/// `cos`/`sin` the tables' row for that position (`head_dim / 2` values). `neox` rotates
/// halves (qwen2), otherwise adjacent pairs (llama).
pub(crate) fn rope_in_place(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], neox: bool) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..half {
            let (a, b) = if neox {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

/// RMS-normalises every head of `x` (chunks of `w.len()` values) in place and multiplies
/// by `w`, as llama.cpp does (sum of squares in f64, then `x * scale * w`).
pub(crate) fn rms_norm_heads(x: &mut [f32], w: &[f32], eps: f32) {
    for head in x.chunks_exact_mut(w.len().max(1)) {
        let sum: f64 = head.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / head.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &g) in head.iter_mut().zip(w) {
            *v = *v * scale * g;
        }
    }
}

/// Where each (row, kv head)'s own keys (or values) start in a flat buffer, in floats:
/// row `r`, head `g` at `r * row + g * head`, its positions `head_dim` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnStrides {
    pub row: usize,
    pub head: usize,
}

impl OwnStrides {
    /// A `(rows, kv_heads, cap, head_dim)` buffer laid out contiguously.
    pub(crate) fn packed(d: Dims, cap: usize) -> Self {
        Self {
            row: d.n_kv_head * cap * d.head_dim,
            head: cap * d.head_dim,
        }
    }
}

/// Writes each row's `t` new keys (or values) at positions `s..s + t` of its own:
/// `new` is `(rows, t, kv_heads * head_dim)`, `buf` holds `(rows, kv_heads, >= s + t,
/// head_dim)` laid out by `at`. Only those positions are written.
pub(crate) fn write_own(buf: &mut [f32], at: OwnStrides, s: usize, new: &[f32], t: usize, d: Dims) {
    let hd = d.head_dim;
    for r in 0..d.rows {
        for g in 0..d.n_kv_head {
            for j in 0..t {
                let from = ((r * t + j) * d.n_kv_head + g) * hd;
                let to = r * at.row + g * at.head + (s + j) * hd;
                buf[to..to + hd].copy_from_slice(&new[from..from + hd]);
            }
        }
    }
}

/// Copies each row's first `s` own keys (or values) from `src` (laid out by `from`) into
/// `dst` (laid out by `to`).
pub(crate) fn copy_own(
    dst: &mut [f32],
    to: OwnStrides,
    src: &[f32],
    from: OwnStrides,
    s: usize,
    d: Dims,
) {
    let n = s * d.head_dim;
    for r in 0..d.rows {
        for g in 0..d.n_kv_head {
            let (a, b) = (r * from.row + g * from.head, r * to.row + g * to.head);
            dst[b..b + n].copy_from_slice(&src[a..a + n]);
        }
    }
}

/// Causal attention of `t` new queries per (row, head) against the row's prefix keys
/// `(kv_heads, p_r, head_dim)` (`prefixes[r]`, shared by rows continuing the same context)
/// and the row's own keys (`own`: keys, values and their layout), `s + t` positions per
/// (row, kv head): its `s` earlier ones, then the `t` new ones. Query `j` sees the prefix,
/// the `s` earlier keys and new keys `0..=j`.
/// `q` is `(rows, t, n_head * head_dim)`, already rotated; returns the same shape. With
/// `d.window = Some(w)`, a query at position `x` sees only the keys at positions
/// `> x - w`.
///
/// Every (row, query, head) is computed by the same code whatever `t`, the batch or the
/// thread count, so a token's attention output is bit for bit the same whether it was
/// computed in a prefill or a decode step: a context recomputed after a cache eviction
/// gives exactly the logits of the path that first computed it.
///
/// The loops run compiled for `level` ([`FloatLevel::best`] in the engine; the tests
/// compare levels).
pub(crate) fn attend(
    level: FloatLevel,
    q: &[f32],
    prefixes: &[Option<(&[f32], &[f32])>],
    own: (&[f32], &[f32], OwnStrides),
    s: usize,
    t: usize,
    d: Dims,
) -> Vec<f32> {
    let step = Step {
        q,
        prefixes,
        own: (own.0, own.1),
        at: own.2,
        s,
        t,
        d,
    };
    let mut out = vec![0f32; d.rows * t * d.n_head * d.head_dim];
    // One dispatch per (row, query, head): the whole head's loops run compiled for `level`.
    let one = |(i, dst): (usize, &mut [f32])| level.run(|| step.head(level, i, dst));
    // Below ~500 (head, key) pairs a thread hand-off costs more than the work. One row
    // of SmolLM2 (9 heads) on a 64-token prompt is 585-864 pairs: run serially (the bound
    // was 4096), its attention was 15 % of the decode's critical thread (`perf`) while
    // the other thread waited; split, single-stream decode gained 1-7 % (4 alternations).
    let keys: usize = prefixes
        .iter()
        .map(|p| p.map_or(0, |(k, _)| k.len() / (d.n_kv_head * d.head_dim)) + s + t)
        .sum();
    if d.n_head * keys * t >= 512 {
        out.par_chunks_mut(d.head_dim).enumerate().for_each(one);
    } else {
        out.chunks_mut(d.head_dim).enumerate().for_each(one);
    }
    out
}

/// The inputs of one [`attend`] call.
struct Step<'a> {
    q: &'a [f32],
    prefixes: &'a [Option<(&'a [f32], &'a [f32])>],
    own: (&'a [f32], &'a [f32]),
    at: OwnStrides,
    s: usize,
    t: usize,
    d: Dims,
}

impl Step<'_> {
    /// Output `i` (row, query, head in that order of nesting): rotate-scaled query against
    /// the visible keys, softmax, weighted values into `dst`. Inlined into
    /// [`FloatLevel::run`] so that it is compiled for the level.
    #[inline(always)]
    fn head(&self, level: FloatLevel, i: usize, dst: &mut [f32]) {
        let d = self.d;
        let (s, t) = (self.s, self.t);
        let hd = d.head_dim;
        let group = d.n_head / d.n_kv_head;
        let (r, j, h) = (i / (t * d.n_head), (i / d.n_head) % t, i % d.n_head);
        let g = h / group;
        let qh: Vec<f32> = self.q[i * hd..(i + 1) * hd]
            .iter()
            .map(|x| x * d.scale)
            .collect();
        let own_at = r * self.at.row + g * self.at.head;
        let visible = s + j + 1;
        let pre = self.prefixes.get(r).copied().flatten().map(|(k, v)| {
            let p = k.len() / (d.n_kv_head * hd);
            let at = g * p * hd;
            (&k[at..at + p * hd], &v[at..at + p * hd])
        });
        let p_all = pre.map_or(0, |(k, _)| k.len() / hd);
        // The first visible position: 0, or the window's start.
        let first = d.window.map_or(0, |w| (p_all + visible).saturating_sub(w));
        let pre = pre.map(|(k, v)| {
            let from = first.min(p_all) * hd;
            (&k[from..], &v[from..])
        });
        let own_from = own_at + first.saturating_sub(p_all).min(visible) * hd;
        let own_k = &self.own.0[own_from..own_at + visible * hd];
        let own_v = &self.own.1[own_from..own_at + visible * hd];
        let p = pre.map_or(0, |(k, _)| k.len() / hd);
        let mut w: Vec<f32> = Vec::with_capacity(p + own_k.len() / hd);
        // The two inner loops go through `simd` (AVX2 intrinsics at that level). Nothing
        // here may go through a library iterator's `fold` either: not always inlined, it
        // would not be compiled for the level (measured: with `extend(map(dot))` the
        // software `fmaf` stayed at 12 % of a plain x86-64 build's decode).
        simd::attention_scores(level, &qh, pre.map_or(&[][..], |(pk, _)| pk), &mut w);
        simd::attention_scores(level, &qh, own_k, &mut w);
        let max = simd::max(level, &w);
        let inv = 1.0 / simd::exp_in_place(level, &mut w, max, 1.0);
        simd::attention_weigh(
            level,
            dst,
            &w,
            inv,
            [pre.map_or(&[][..], |(_, pv)| pv), own_v],
        );
    }
}

/// The weighted sum of values, portable: `dst[c] = fma(w_i * inv, v_i[c], dst[c])` over
/// the keys `i` in order (the values of `values[0]`, then of `values[1]`, `dst.len()` each).
/// The reference for [`simd::attention_weigh`]'s vector path.
#[inline(always)]
pub(super) fn weigh_portable(dst: &mut [f32], w: &[f32], inv: f32, values: [&[f32]; 2]) {
    let hd = dst.len();
    if hd == 0 {
        return;
    }
    let mut weights = w.iter();
    for vals in values {
        for (v, &wi) in vals.chunks_exact(hd).zip(&mut weights) {
            let wi = wi * inv;
            for (o, &x) in dst.iter_mut().zip(v) {
                *o = wi.mul_add(x, *o);
            }
        }
    }
}

/// Appends the dot product of `q` with each `q.len()`-long key in `keys`, portable: the
/// reference for [`simd::attention_scores`]'s vector path.
#[inline(always)]
pub(super) fn scores_portable(q: &[f32], keys: &[f32], out: &mut Vec<f32>) {
    if q.is_empty() {
        return;
    }
    for k in keys.chunks_exact(q.len()) {
        out.push(dot(q, k));
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums let the compiler vectorize without reassociating.
    let mut acc = [0f32; 8];
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::super::{bits, scaled as pseudo};
    use super::*;

    /// Softmax's shift at every level is the fold of `f32::max` from `-inf`: NaNs
    /// ignored, infinities kept, lengths with and without a tail past whole vectors.
    #[test]
    fn max_is_the_fold_at_every_level() {
        let mut cases: Vec<Vec<f32>> = (0..20).map(|n| pseudo(n, 30 + n as u32, 1e3)).collect();
        cases.push(vec![f32::NAN; 11]);
        cases.push(vec![
            f32::NEG_INFINITY,
            f32::NAN,
            -3.0,
            f32::NAN,
            -7.0,
            -1e30,
            -2.5,
            -9.0,
            -1.0,
        ]);
        cases.push(vec![
            -5.0,
            f32::NAN,
            f32::INFINITY,
            2.0,
            1.0,
            0.0,
            -0.0,
            3.0,
            4.0,
            5.0,
        ]);
        cases.push(pseudo(77, 44, 1e-30));
        for w in &cases {
            let want = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for level in FloatLevel::supported() {
                let got = level.run(|| simd::max(level, w));
                assert!(
                    got == want || (got.is_nan() && want.is_nan()),
                    "{level:?}: {got} vs {want} on {w:?}"
                );
            }
        }
    }

    /// The scores at every level are `dot`'s on each key (the AVX2 path takes four keys at
    /// once), head sizes with and without a tail past whole vectors.
    #[test]
    fn scores_are_dot_on_each_key() {
        for hd in [64, 12, 8, 3, 256] {
            let q = pseudo(hd, 11, 3.0);
            let keys = pseudo(9 * hd, 12, 1e3);
            let mut got = Vec::new();
            scores_portable(&q, &keys, &mut got);
            let want: Vec<f32> = keys.chunks_exact(hd).map(|k| dot(&q, k)).collect();
            assert_eq!(bits(&got), bits(&want), "head size {hd}");
            for level in FloatLevel::supported() {
                let mut got = Vec::new();
                level.run(|| simd::attention_scores(level, &q, &keys, &mut got));
                assert_eq!(bits(&got), bits(&want), "head size {hd}, {level:?}");
            }
        }
    }

    /// The weighted sum of values at every level (the AVX2 path holds 64 columns in
    /// registers across all keys) gives the bits of the plain loop (each key's `fma` into
    /// the output in key order), for head sizes with whole blocks, a partial block, both,
    /// and a tail past whole vectors.
    #[test]
    fn weigh_is_the_key_by_key_loop() {
        for hd in [64, 12, 128, 80, 256] {
            for (p, o) in [(0, 5), (7, 1), (33, 0)] {
                let w = pseudo(p + o, 21, 1.0);
                let pv = pseudo(p * hd, 22, 50.0);
                let ov = pseudo(o * hd, 23, 1e-3);
                let inv = 0.37;
                let mut want = vec![0f32; hd];
                for (&wi, v) in w.iter().zip(pv.chunks_exact(hd).chain(ov.chunks_exact(hd))) {
                    let wi = wi * inv;
                    for (o, &x) in want.iter_mut().zip(v) {
                        *o = wi.mul_add(x, *o);
                    }
                }
                for level in FloatLevel::supported() {
                    let mut got = vec![0f32; hd];
                    level.run(|| simd::attention_weigh(level, &mut got, &w, inv, [&pv, &ov]));
                    assert_eq!(bits(&got), bits(&want), "hd {hd} p {p} o {o} {level:?}");
                }
            }
        }
    }

    /// Attention compiled for every float level this CPU runs gives the scalar build's
    /// bits: decode steps and prefills, grouped heads, head sizes with and without a tail
    /// past the 8-lane chunks, shared prefixes or none, a sliding window, and values from
    /// tiny to large (scores up to ~1e4 make the softmax all but one-hot).
    #[test]
    fn attention_is_the_same_at_every_float_level() {
        let levels = FloatLevel::supported();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert_eq!(levels.len(), 2, "AVX2+FMA must be among the levels tested");
        }
        let mut cases = 0;
        for (head_dim, scale_v) in [(64, 1.0), (12, 30.0), (8, 1e-20)] {
            for (rows, t, s, p) in [(3, 1, 5, 7), (1, 6, 0, 0), (2, 2, 3, 0), (1, 1, 0, 40)] {
                for window in [None, Some(4)] {
                    let d = Dims {
                        rows,
                        n_head: 4,
                        n_kv_head: 2,
                        head_dim,
                        scale: 1.0 / (head_dim as f32).sqrt(),
                        window,
                    };
                    let kv = d.n_kv_head * head_dim;
                    let q = pseudo(rows * t * d.n_head * head_dim, 1, scale_v);
                    let own_k = pseudo(rows * (s + t) * kv, 2, scale_v);
                    let own_v = pseudo(rows * (s + t) * kv, 3, scale_v);
                    let pk = pseudo(p * kv, 4, scale_v);
                    let pv = pseudo(p * kv, 5, scale_v);
                    let prefixes: Vec<Option<(&[f32], &[f32])>> = (0..rows)
                        .map(|r| (p > 0 && r != 1).then_some((&pk[..], &pv[..])))
                        .collect();
                    let own = (&own_k[..], &own_v[..], OwnStrides::packed(d, s + t));
                    let want = attend(FloatLevel::BASELINE, &q, &prefixes, own, s, t, d);
                    assert!(want.iter().all(|v| v.is_finite()));
                    for &level in &levels {
                        let got = attend(level, &q, &prefixes, own, s, t, d);
                        assert_eq!(bits(&got), bits(&want), "{level:?} {d:?} t={t} s={s} p={p}");
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 24);
    }
}
