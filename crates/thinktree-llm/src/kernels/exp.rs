//! `exp` for f32, written out so that a vector path can compute it bit for bit: attention's
//! softmax, the sampler's softmax over the vocabulary and the SiLU gate of the MLP.
//!
//! Those three called the platform's `expf` once per value: 6-8 % of a search run
//! (`perf`, 1,024- and 2,048-token runs), mostly the sampler's passes over SmolLM2's 49,152
//! logits per row and token. [`expf`] is glibc's algorithm (2.28 on, from ARM's optimized
//! routines), so on glibc with FMA it gives `f32::exp`'s bits on every f32 (checked by
//! `every_f32`, run on request), and the AVX2 path ([`super::simd::exp_in_place`],
//! [`super::simd::silu_mul`]) runs the same f64 operations four lanes at a time. Results
//! of runs made with `f32::exp` before are reproduced exactly; on other platforms the
//! softmax now gives the same bits as on glibc instead of the local libm's.

use candle_core::Tensor;

use super::simd::{self, FloatLevel};
use crate::error::{Error, Result};

/// `2^(i/32)` rounded to f64, its exponent field less `i << 47`, for `i` in `0..32`: the
/// table [`expf`] scales its polynomial by (the values of glibc's `__exp2f_data`,
/// computed here from the definition with 60-digit decimals).
pub(super) const EXP2_TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// `32 / ln 2` as f64 bits.
pub(super) const INV_LN2_N: u64 = 0x40471547652b82fe;
/// `1.5 * 2^52` as f64 bits: added, it rounds to an integer in the low mantissa bits.
pub(super) const SHIFT: u64 = 0x4338000000000000;
/// The polynomial for `2^(r/32)`, `r` in [-1/2, 1/2]: `c0 r^3 + c1 r^2 + c2 r + 1`.
pub(super) const POLY: [u64; 3] = [0x3ebc6af84b912394, 0x3f2ebfce50fac4f3, 0x3f962e42ff0c52d6];

/// Below this `|x|` (the bits' top 12, sign cleared) every value takes [`expf`]'s main
/// path; from it on (`|x| >= 88`, infinities, NaN) the special cases apply.
pub(super) const SPECIAL_TOP: u32 = 0x42a;

/// `exp(x)`: `x = (k + r) / 32 * ln 2`, `2^(k/32)` from [`EXP2_TABLE`] and the exponent
/// bits, `2^(r/32)` by a degree-3 polynomial in f64, rounded once to f32 (under 0.502 ulp
/// from the true value). The special cases are glibc's, its two underflow results
/// included (0, and the least subnormal between -103.97 and -103.28).
#[inline(always)]
pub(crate) fn expf(x: f32) -> f32 {
    let top = (x.to_bits() >> 20) & 0x7ff;
    if top >= SPECIAL_TOP {
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if top >= 0x7f8 {
            return x + x;
        }
        if x > f32::from_bits(0x42b17217) {
            return f32::INFINITY;
        }
        if x < f32::from_bits(0xc2cff1b4) {
            return 0.0;
        }
        if x < f32::from_bits(0xc2ce8ecf) {
            return f32::from_bits(1);
        }
    }
    let xd = f64::from(x);
    let inv = f64::from_bits(INV_LN2_N);
    let shift = f64::from_bits(SHIFT);
    let kd = inv.mul_add(xd, shift);
    let ki = kd.to_bits();
    let kd = kd - shift;
    let r = inv.mul_add(xd, -kd);
    let t = EXP2_TABLE[(ki & 31) as usize].wrapping_add(ki << 47);
    let [c0, c1, c2] = POLY.map(f64::from_bits);
    let z = r.mul_add(c0, c1);
    let r2 = r * r;
    let y = r.mul_add(c2, 1.0);
    let y = z.mul_add(r2, y);
    (y * f64::from_bits(t)) as f32
}

/// `w[i] = exp((w[i] - max) * scale)`; returns their sum, added in order. The reference
/// for [`super::simd::exp_in_place`]'s vector path.
#[inline(always)]
pub(super) fn exp_in_place_portable(w: &mut [f32], max: f32, scale: f32) -> f32 {
    let mut sum = 0f32;
    for x in w {
        *x = expf((*x - max) * scale);
        sum += *x;
    }
    sum
}

/// `out[i] = silu(g[i]) * u[i]` with `silu(v) = v / (1 + exp(-v))`, candle's formula: the
/// reference for [`super::simd::silu_mul`]'s vector path.
#[inline(always)]
pub(super) fn silu_mul_portable(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + expf(-g)) * u;
    }
}

/// `exp((w[i] - max) * scale)` in place at the CPU's best level; returns their sum,
/// added in order.
pub(crate) fn exp_in_place(w: &mut [f32], max: f32, scale: f32) -> f32 {
    simd::exp_in_place(FloatLevel::best(), w, max, scale)
}

/// The largest of `w` (NaN ignored; `-inf` when empty) at the CPU's best level: a
/// softmax's shift ([`simd::max`]).
pub(crate) fn max(w: &[f32]) -> f32 {
    simd::max(FloatLevel::best(), w)
}

/// The MLP's gate: `silu(g) * u` elementwise (candle's `silu`, then the product, in one
/// pass at the CPU's best level). `g` and `u` have the same shape.
pub(crate) fn silu_mul(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    if g.dims() != u.dims() {
        return Err(Error::Shape(
            "gate and up projections differ in shape".into(),
        ));
    }
    let (gv, uv) = (
        g.flatten_all()?.to_vec1::<f32>()?,
        u.flatten_all()?.to_vec1::<f32>()?,
    );
    let mut out = vec![0f32; gv.len()];
    simd::silu_mul(FloatLevel::best(), &gv, &uv, &mut out);
    Ok(Tensor::from_vec(out, g.dims(), g.device())?)
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::super::{bits, scaled as pseudo};
    use super::*;

    /// Values from 0 to past the underflow thresholds, on both sides of `SPECIAL_TOP` in
    /// most eight-value chunks, infinities and NaN.
    fn hard_inputs() -> Vec<f32> {
        let mut x = pseudo(203, 31, 120.0);
        x[17] = f32::NEG_INFINITY;
        x[40] = f32::NAN;
        x[41] = f32::from_bits(0xc2ce8ecf) - 0.5;
        x[42] = f32::from_bits(0xc2cff1b4) - 0.5;
        x[43] = f32::INFINITY;
        x
    }

    /// The exponentials at every level are the portable `expf`'s, summed in order: lengths
    /// with and without a tail past whole vectors, scales of a softmax and a temperature.
    #[test]
    fn exp_in_place_is_expf_in_order() {
        let x = hard_inputs();
        for (max, scale, n) in [
            (0.0, 1.0, 203),
            (120.0, 1.0, 203),
            (3.5, 1.0, 5),
            (-7.0, 1.0 / 0.7, 64),
            (1e-3, 2.0, 0),
        ] {
            let mut want = x[..n].to_vec();
            let mut sum = 0f32;
            for v in &mut want {
                *v = expf((*v - max) * scale);
                sum += *v;
            }
            for level in FloatLevel::supported() {
                let mut got = x[..n].to_vec();
                let s = simd::exp_in_place(level, &mut got, max, scale);
                assert_eq!(bits(&got), bits(&want), "max {max} n {n} {level:?}");
                assert_eq!(s.to_bits(), sum.to_bits(), "max {max} n {n} {level:?}");
            }
        }
    }

    /// The gated SiLU at every level is the portable loop's, extremes included.
    #[test]
    fn silu_mul_is_the_portable_loop() {
        let g = hard_inputs();
        let u = pseudo(g.len(), 32, 3.0);
        for n in [203, 16, 7, 0] {
            let mut want = vec![0f32; n];
            silu_mul_portable(&g[..n], &u[..n], &mut want);
            for level in FloatLevel::supported() {
                let mut got = vec![0f32; n];
                simd::silu_mul(level, &g[..n], &u[..n], &mut got);
                assert_eq!(bits(&got), bits(&want), "n {n} {level:?}");
            }
        }
    }

    /// `expf` is within one ulp of the platform's `f32::exp` (both are within ~0.5 ulp of
    /// the true value), and exact at the special values.
    #[test]
    fn expf_is_exp() {
        let mut x: Vec<f32> = pseudo(20_000, 41, 110.0);
        x.extend([
            0.0, -0.0, 1.0, -1.0, 88.7, 89.0, -87.9, -103.5, -104.0, -150.0,
        ]);
        for v in x {
            let (got, want) = (expf(v), v.exp());
            let ulps = (i64::from(got.to_bits()) - i64::from(want.to_bits())).abs();
            assert!(ulps <= 1, "expf({v}) = {got}, exp = {want}");
        }
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(f32::INFINITY), f32::INFINITY);
        assert!(expf(f32::NAN).is_nan());
        assert_eq!(expf(0.0), 1.0);
    }

    /// Every f32 against `f32::exp`: the same bits where the platform's `expf` is glibc's
    /// with FMA (what attention, the sampler and candle's SiLU called before); and every
    /// level's vector path against `expf` on every f32. About a minute on 2 cores, so run
    /// on request: `cargo test -p thinktree-llm --release --lib -- --ignored every_f32`.
    #[test]
    #[ignore = "every f32: run on request"]
    fn every_f32() {
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let differ = (0..=u32::MAX)
            .into_par_iter()
            .filter(|&b| !same(expf(f32::from_bits(b)), f32::from_bits(b).exp()))
            .count();
        assert_eq!(differ, 0, "expf vs f32::exp");
        for level in FloatLevel::supported() {
            let differ: usize = (0..1u32 << 16)
                .into_par_iter()
                .map(|hi| {
                    let mut w: Vec<f32> = (0..1u32 << 16)
                        .map(|lo| f32::from_bits(hi << 16 | lo))
                        .collect();
                    let x = w.clone();
                    simd::exp_in_place(level, &mut w, 0.0, 1.0);
                    x.iter()
                        .zip(&w)
                        .filter(|&(&x, &y)| !same(expf(x), y))
                        .count()
                })
                .sum();
            assert_eq!(differ, 0, "{level:?} vs expf");
        }
    }
}
