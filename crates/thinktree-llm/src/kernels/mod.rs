//! The arithmetic of the hot path: thinktree's own 8-bit block matmul (the scalar
//! reference in [`int8`], its AVX2 variant beside it), the projections that choose
//! between it and candle's matmuls ([`linear`]), and decode-step attention in plain
//! loops ([`attention`]).
//!
//! Nothing here knows about tokens, caches or search: inputs are slices and tensors.

pub(crate) mod attention;
pub(crate) mod int8;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod int8_avx2;
pub(crate) mod linear;
