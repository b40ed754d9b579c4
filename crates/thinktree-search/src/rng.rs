//! [`splitmix64`]: the one seed mixer of the workspace.
//!
//! Searches derive many seeds from one (a tree per thread, a sampling call per step, a
//! request per server); consecutive inputs must give unrelated streams. SplitMix64's
//! finaliser does that in five operations, and every crate uses this copy so a seed means
//! the same thing everywhere.

/// The SplitMix64 finaliser of `z` (one step of the generator): cheap and well mixed.
#[inline]
#[must_use]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th seed derived from `seed`: `splitmix64(seed ^ i * golden)`, so neighbouring
/// indices get unrelated streams.
#[inline]
#[must_use]
pub fn derive_seed(seed: u64, i: u64) -> u64 {
    splitmix64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
