//! The arithmetic of the hot path: thinktree's own 8-bit block matmul (the scalar
//! reference in [`int8`], its SIMD variants chosen at run time in [`simd`], the only module
//! of the workspace allowed `unsafe`), the projections that choose between it and candle's
//! matmuls ([`linear`]), attention in plain loops ([`attention`]) and the `exp` that
//! attention, the MLP's gate and the sampler share ([`exp`]).
//!
//! Nothing here knows about tokens, caches or search: inputs are slices and tensors.

pub(crate) mod attention;
pub(crate) mod exp;
pub(crate) mod int8;
pub(crate) mod linear;
pub(crate) mod simd;

/// Test inputs: `n` values in [-1, 1] on a grid of 0.001, from a xorshift seeded by `seed`.
#[cfg(test)]
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

/// Test inputs: [`pseudo`]'s values times `scale`.
#[cfg(test)]
fn scaled(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    pseudo(n, seed).into_iter().map(|x| x * scale).collect()
}

/// The bits of each value, to compare results exactly (NaN included).
#[cfg(test)]
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}
