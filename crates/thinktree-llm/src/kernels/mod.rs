//! The arithmetic of the hot path: thinktree's own 8-bit block matmul (the scalar
//! reference in [`int8`], its SIMD variants chosen at run time in [`simd`], the only module
//! of the workspace allowed `unsafe`), the projections that choose between it and candle's
//! matmuls ([`linear`]), and attention in plain loops ([`attention`]).
//!
//! Nothing here knows about tokens, caches or search: inputs are slices and tensors.

pub(crate) mod attention;
pub(crate) mod int8;
pub(crate) mod linear;
pub(crate) mod simd;
