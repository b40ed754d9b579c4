//! The SIMD variants of the 8-bit panel kernel, chosen at run time: the one module of the
//! workspace where `unsafe` is allowed.
//!
//! Every variant is compiled into every build, whatever `-C target-cpu` says, and the best
//! one the CPU has is picked once, at the first matmul ([`Level::best`]). Before, the
//! AVX2 path existed only when the *build* targeted AVX2, which only the workspace's own
//! `.cargo/config.toml` asked for: a program depending on thinktree as a crate silently got
//! the scalar kernel, measured at 0.06x (prefill) to 0.13x (decode) of the native build.
//!
//! The rules for `unsafe` here: `unsafe_op_in_unsafe_fn` is denied, every `unsafe` block
//! states why it is sound (`clippy::undocumented_unsafe_blocks` is denied for the crate),
//! a variant is only ever called after the CPU reported its features (the only way to get
//! a [`Level`] naming it), and every variant is tested bit for bit against the scalar
//! reference ([`super::int8`]'s `panel_row_scalar`) on every level the test machine has
//! (`int8::tests::simd_and_scalar_paths_agree_bitwise`).
//! The only operations that need `unsafe` are calling a `#[target_feature]` function and
//! the unaligned vector loads and stores, each on a slice whose length is checked by the
//! types (`[i8; 32]`, `[f32; 8]`).
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::OnceLock;

use super::int8::{Int8Matrix, QuantRows};

/// Which variant of the panel kernel runs. Only [`Level::detect`] (and so
/// [`Level::best`]) can name a SIMD variant, and only after the CPU reported its features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level(Isa);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Level {
    /// The portable reference.
    pub(crate) const SCALAR: Level = Level(Isa::Scalar);

    /// The best variant this CPU supports.
    pub(crate) fn detect() -> Level {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level(Isa::Avx2Fma);
        }
        Level::SCALAR
    }

    /// The level every matmul uses: [`Level::detect`], once per process, unless
    /// `THINKTREE_KERNEL=scalar` asks for the reference (for comparisons).
    pub(crate) fn best() -> Level {
        static BEST: OnceLock<Level> = OnceLock::new();
        *BEST.get_or_init(|| match std::env::var("THINKTREE_KERNEL").as_deref() {
            Ok("scalar") => Level::SCALAR,
            _ => Level::detect(),
        })
    }

    /// Every level this CPU can run, the reference first (for tests).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Level> {
        let mut out = vec![Level::SCALAR];
        let best = Level::detect();
        if best != Level::SCALAR {
            out.push(best);
        }
        out
    }

    /// A short name for reports (`scalar`, `avx2+fma`).
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
        }
    }
}

/// The 8 outputs of `panel` for activation rows `0..n`, into `tile` laid out outputs x
/// rows (`tile[o * n + r]`).
pub(crate) fn panel_tile(
    level: Level,
    w: &Int8Matrix,
    panel: usize,
    acts: &QuantRows,
    n: usize,
    tile: &mut [f32],
) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            // SAFETY: a `Level` naming AVX2+FMA is only made by `Level::detect`, after
            // `is_x86_feature_detected!` reported both features on this CPU.
            unsafe { avx2::panel_tile(w, panel, acts, n, tile) }
        }
        Isa::Scalar => {
            for r in 0..n {
                for (o, v) in w.panel_row_scalar(panel, acts, r).into_iter().enumerate() {
                    tile[o * n + r] = v;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_abs_epi8, _mm256_add_epi16, _mm256_add_epi32, _mm256_add_ps,
        _mm256_cvtepi32_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_mul_ps, _mm256_set1_epi16,
        _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps, _mm256_setzero_si256,
        _mm256_sign_epi8, _mm256_storeu_ps,
    };

    use super::super::int8::{BLOCK, GROUPS, Int8Matrix, PANEL, QuantRows};

    /// [`super::panel_tile`] in AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel_tile(
        w: &Int8Matrix,
        panel: usize,
        acts: &QuantRows,
        n: usize,
        tile: &mut [f32],
    ) {
        match (w.nonneg, w.narrow, w.m.is_some()) {
            (true, true, true) => tile_rows::<true, true, true>(w, panel, acts, n, tile),
            (true, true, false) => tile_rows::<true, true, false>(w, panel, acts, n, tile),
            (true, false, true) => tile_rows::<true, false, true>(w, panel, acts, n, tile),
            (true, false, false) => tile_rows::<true, false, false>(w, panel, acts, n, tile),
            (false, true, true) => tile_rows::<false, true, true>(w, panel, acts, n, tile),
            (false, true, false) => tile_rows::<false, true, false>(w, panel, acts, n, tile),
            (false, false, true) => tile_rows::<false, false, true>(w, panel, acts, n, tile),
            (false, false, false) => tile_rows::<false, false, false>(w, panel, acts, n, tile),
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn tile_rows<const NONNEG: bool, const NARROW: bool, const MIN: bool>(
        w: &Int8Matrix,
        panel: usize,
        acts: &QuantRows,
        n: usize,
        tile: &mut [f32],
    ) {
        for r in 0..n {
            let out = panel_row::<NONNEG, NARROW, MIN>(w, panel, acts, r);
            for (o, v) in out.into_iter().enumerate() {
                tile[o * n + r] = v;
            }
        }
    }

    /// Pairwise products of one 4-input group of the activation row with the same group
    /// of the panel's 8 weight rows: lane j of the i16 result holds two of row j/2's
    /// products.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn pair_products<const NONNEG: bool>(wg: &[i8; BLOCK], ag: [i8; 4]) -> __m256i {
        let a = _mm256_set1_epi32(i32::from_le_bytes(ag.map(|v| v as u8)));
        let wv = load_i8(wg);
        if NONNEG {
            _mm256_maddubs_epi16(wv, a)
        } else {
            _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(a, wv))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn load_i8(v: &[i8; BLOCK]) -> __m256i {
        // SAFETY: `v` is exactly 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn load_f32(v: &[f32; PANEL]) -> __m256 {
        // SAFETY: `v` is exactly 8 readable f32s; the load is unaligned.
        unsafe { _mm256_loadu_ps(v.as_ptr()) }
    }

    /// See `Int8Matrix::panel_row_scalar` for the arithmetic. Each 4-input group of the
    /// activation row is broadcast and multiplied into all 8 weight rows at once, so a
    /// block's 8 sums build up lane by lane with no horizontal reduction.
    /// `NONNEG`: weights are all >= 0 (no sign transfer); `NARROW`: |weights| <= 16, the
    /// block sums in 16-bit lanes; `MIN`: add the minimums' term.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn panel_row<const NONNEG: bool, const NARROW: bool, const MIN: bool>(
        w: &Int8Matrix,
        panel: usize,
        acts: &QuantRows,
        r: usize,
    ) -> [f32; PANEL] {
        let cols = w.cols;
        let bpr = cols / BLOCK;
        let groups = &w.q[panel * bpr * GROUPS..(panel + 1) * bpr * GROUPS];
        let a_groups = acts.q[r * cols..(r + 1) * cols].as_chunks::<4>().0;
        let (a_d, a_sum) = (
            &acts.d[r * bpr..(r + 1) * bpr],
            &acts.sum[r * bpr..(r + 1) * bpr],
        );
        let (w_d, _) = w.d[panel * bpr * PANEL..(panel + 1) * bpr * PANEL].as_chunks::<PANEL>();
        let w_m = w.m.as_ref().map(|m| {
            m[panel * bpr * PANEL..(panel + 1) * bpr * PANEL]
                .as_chunks::<PANEL>()
                .0
        });
        let ones = _mm256_set1_epi16(1);
        let (mut acc, mut acc_m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (kb, (wg, ag)) in groups
            .chunks_exact(GROUPS)
            .zip(a_groups.chunks_exact(GROUPS))
            .enumerate()
        {
            // No closures here: a closure does not inherit the function's target features,
            // so the intrinsics in it were calls, not instructions (half the speed).
            let sums = if NARROW {
                let mut s = _mm256_setzero_si256();
                for g in 0..GROUPS {
                    s = _mm256_add_epi16(s, pair_products::<NONNEG>(&wg[g], ag[g]));
                }
                _mm256_madd_epi16(s, ones)
            } else {
                let mut s = _mm256_setzero_si256();
                for g in 0..GROUPS {
                    let p = pair_products::<NONNEG>(&wg[g], ag[g]);
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
                }
                s
            };
            let scale = _mm256_mul_ps(load_f32(&w_d[kb]), _mm256_set1_ps(a_d[kb]));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc);
        }
        // The minimums' term in its own loop: folded into the one above it cost a quarter
        // of the kernel's speed (a second accumulator chain and its loads in the hot loop).
        if MIN && let Some(wm) = w_m {
            for (wm, &s) in wm.iter().zip(a_sum) {
                acc_m = _mm256_fmadd_ps(load_f32(wm), _mm256_set1_ps(s), acc_m);
            }
        }
        let mut out = [0f32; PANEL];
        // SAFETY: `out` is exactly 8 writable f32s; the store is unaligned.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, acc_m)) };
        out
    }
}
