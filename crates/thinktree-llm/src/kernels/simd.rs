//! The SIMD variants of the 8-bit panel kernel, chosen at run time: the one module of the
//! workspace where `unsafe` is allowed. Also the float loops around the matmul (attention,
//! the activations' quantization), compiled a second time for AVX2+FMA and run that way
//! when the CPU has both ([`FloatLevel`]), and attention's two inner loops, softmax's
//! maximum and the activations' 8-bit quantization written with AVX2 intrinsics
//! ([`attention_scores`], [`attention_weigh`], [`max`], [`quantize_block`]), bit for bit
//! the portable loops.
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
//! types (`[i8; 32]`, `[u8; 32]`, `[[i8; 32]; 2]`, `[[u8; 32]; 2]`, `[f32; 8]`, `[u16; 8]`).
//!
//! On aarch64 there is one variant, `neon` (baseline NEON, so every aarch64 CPU runs it:
//! `smull` byte products widened to 16 bits, `sadalp` pair sums accumulated in 32 bits,
//! one `addp` per block to finish each output's sum; then the same float steps as
//! scalar). It is built and its bit-identity test run under qemu
//! (`scripts/test-aarch64.sh`); it has not been timed on real ARM hardware.
//!
//! Variants (x86-64), in the order they are preferred (measured; see [`Level::supported`]):
//! - `avxvnni`: the AVX2 layout with `vpdpbusd` on 256 bits (a 4-byte dot product and
//!   its accumulation in one instruction).
//! - `avx512vl+vnni`: the same kernel with AVX-512 VNNI's (EVEX) `vpdpbusd` on 256-bit
//!   vectors, for CPUs that have AVX-512 VNNI but not AVX-VNNI (AMD Zen 4, Intel Ice
//!   Lake): on a Zen 4 host, against `avx2+fma` in the same run, prefill 814-826 against
//!   737-755 tok/s and batch-16 542-553 against 473-489 (single stream and batch-8 within
//!   noise).
//! - `avx2+fma`: `vpmaddubsw` pairs, then `vpmaddwd` (or 16-bit adds for 4-bit weights).
//! - `avx512vnni`: two 4-input groups per 512-bit `vpdpbusd`, the halves added per
//!   block; slower here than the 256-bit variants, so only run on request.
//!
//! Each has a kernel for both layouts of [`super::int8::Weights`]: bytes, and nibbles
//! unpacked in registers (`vpand`/`vpsrlw`, then the non-negative byte path; their f16
//! scales widened by F16C's `vcvtph2ps`, which every AVX2 CPU has and the detection
//! checks).
//!
//! All of them form the same exact integer block sums and then run the same float
//! instructions in the same order, so they agree with the scalar reference bit for bit,
//! in either layout.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::OnceLock;

use super::int8::{BLOCK, Int8Matrix, PANEL, QuantRows};

/// Which variant of the panel kernel runs. Only [`Level::detect`] (and so
/// [`Level::best`]) can name a SIMD variant, and only after the CPU reported its features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level(Isa);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    #[cfg(target_arch = "x86_64")]
    Avx512Vl,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Level {
    /// The portable reference.
    pub(crate) const SCALAR: Level = Level(Isa::Scalar);

    /// Every variant this CPU supports, in order of preference, the scalar reference
    /// last. The order is measured, not assumed (docs/PERFORMANCE.md, engine bench on a
    /// CPU with all three): AVX-VNNI 374-406 tok/s prefill and 217-220 batch-8 against
    /// AVX2's 378 and 201; AVX-512 VNNI 242 prefill (its 512-bit `vpermd` per pair of
    /// groups costs more than the wider dot product saves) and 233 batch-8. So the
    /// 512-bit variant is only ever run on request (`THINKTREE_KERNEL=avx512vnni`). Its
    /// instruction on 256-bit vectors (`avx512vl+vnni`) is the AVX-VNNI kernel for CPUs
    /// without AVX-VNNI, and beat AVX2 on a Zen 4 host (prefill 1.10x, batch-16 1.13x).
    pub(crate) fn supported() -> Vec<Level> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            // F16C (every AVX2 CPU has it) widens the nibble layout's f16 scales.
            if x86::has_avx2_fma() && has!("f16c") {
                if has!("avxvnni") {
                    out.push(Level(Isa::AvxVnni));
                }
                if has!("avx512f") && has!("avx512vl") && has!("avx512vnni") {
                    out.push(Level(Isa::Avx512Vl));
                }
                out.push(Level(Isa::Avx2Fma));
                if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                    out.push(Level(Isa::Avx512Vnni));
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            out.push(Level(Isa::Neon));
        }
        out.push(Level::SCALAR);
        out
    }

    /// The preferred variant this CPU supports.
    pub(crate) fn detect() -> Level {
        Level::supported()[0]
    }

    /// The level every matmul uses: [`Level::detect`], once per process, unless
    /// `THINKTREE_KERNEL` names another variant this CPU has (`scalar` forces the
    /// reference; for comparisons).
    pub(crate) fn best() -> Level {
        static BEST: OnceLock<Level> = OnceLock::new();
        *BEST.get_or_init(|| {
            let asked = std::env::var("THINKTREE_KERNEL").unwrap_or_default();
            Level::supported()
                .into_iter()
                .find(|l| l.name() == asked)
                .unwrap_or_else(Level::detect)
        })
    }

    /// A short name for reports (`scalar`, `avx2+fma`, `avxvnni`, `avx512vnni`).
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => "avxvnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vl => "avx512vl+vnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => "avx512vnni",
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => "neon",
        }
    }
}

/// Which instructions the float loops around the matmul (attention's dot products and
/// weighted sums, the quantization of activations) are compiled for.
///
/// Those loops are plain Rust, so what they compile to depends on the build's target: in a
/// plain x86-64 build (what a crate depending on thinktree gets) `f32::mul_add` is a call
/// to a software `fmaf` and `f32::round` a call to `roundf`. Measured on SmolLM2's
/// single-stream decode in such a build: `fmaf` alone was 19 % of the time, attention 38 %
/// (8 % in the native build). So they are compiled a second time for AVX2+FMA and run
/// that way when the CPU has both ([`FloatLevel::run`]).
///
/// The results cannot differ: the same Rust code is compiled for more instructions, `mul_add`
/// is one rounding whether done by `vfmadd` or by `fmaf`, and Rust never reassociates or
/// contracts float arithmetic, so vectorizing changes how many lanes run at once, not what
/// each computes (tested bit for bit in `attention::tests` and `int8::tests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FloatLevel(FloatIsa);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatIsa {
    /// The build's own target (on aarch64 that already has fused multiply-add).
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl FloatLevel {
    /// The build's own target.
    pub(crate) const BASELINE: FloatLevel = FloatLevel(FloatIsa::Baseline);

    /// Every level this CPU runs, the best first.
    pub(crate) fn supported() -> Vec<FloatLevel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if x86::has_avx2_fma() {
            out.push(FloatLevel(FloatIsa::Avx2Fma));
        }
        out.push(FloatLevel::BASELINE);
        out
    }

    /// The level the engine uses: the best this CPU has, once per process; the build's
    /// own target when `THINKTREE_KERNEL=scalar` asks for the reference everywhere.
    pub(crate) fn best() -> FloatLevel {
        static BEST: OnceLock<FloatLevel> = OnceLock::new();
        *BEST.get_or_init(|| {
            if Level::best() == Level::SCALAR {
                FloatLevel::BASELINE
            } else {
                FloatLevel::supported()[0]
            }
        })
    }

    /// Runs `f` compiled for this level. `f` and what it calls should be inlined into it
    /// (`#[inline(always)]` on the helpers it calls) to be compiled for the level: a
    /// function called out of line keeps the build's target (and gives the same results,
    /// only slower).
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            FloatIsa::Avx2Fma => {
                // SAFETY: a `FloatLevel` naming AVX2+FMA is only made by
                // `FloatLevel::supported`, after `is_x86_feature_detected!` reported both.
                unsafe { x86::run_avx2_fma(f) }
            }
            FloatIsa::Baseline => f(),
        }
    }
}

/// Appends attention's score of `q` against each `q.len()`-long key of `keys`, at
/// `level`: the bits of [`super::attention`]'s portable `dot` on every key. The AVX2 path
/// (head sizes that are whole 8-lane vectors) takes four keys at once in registers; the
/// compiler, given the portable four-key loop, vectorized across the keys with shuffles.
#[inline(always)]
pub(crate) fn attention_scores(level: FloatLevel, q: &[f32], keys: &[f32], out: &mut Vec<f32>) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma if !q.is_empty() && q.len().is_multiple_of(8) => {
            // SAFETY: a `FloatLevel` naming AVX2+FMA is only made by
            // `FloatLevel::supported`, after `is_x86_feature_detected!` reported both.
            unsafe { x86::attn::scores(q, keys, out) }
        }
        _ => super::attention::scores_portable(q, keys, out),
    }
}

/// Attention's weighted sum of values at `level`: for each output column `c`,
/// `dst[c] = fma(w_i * inv, v_i[c], dst[c])` over the keys `i` in order (`values[0]`'s,
/// then `values[1]`'s), the bits of the portable loop. The AVX2 path keeps 64 columns in
/// registers across all keys (the portable code, compiled, spilled them to the stack).
#[inline(always)]
pub(crate) fn attention_weigh(
    level: FloatLevel,
    dst: &mut [f32],
    w: &[f32],
    inv: f32,
    values: [&[f32]; 2],
) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma if !dst.is_empty() && dst.len().is_multiple_of(8) => {
            // SAFETY: as in `attention_scores`: AVX2 and FMA were detected.
            unsafe { x86::attn::weigh(dst, w, inv, values) }
        }
        _ => super::attention::weigh_portable(dst, w, inv, values),
    }
}

/// `w[i] = exp((w[i] - max) * scale)` at `level` ([`super::exp::expf`]); returns their
/// sum, added in order (a softmax's denominator). The AVX2 path computes eight at a time,
/// four lanes of f64 per half, the same operations per lane as `expf`.
#[inline(always)]
pub(crate) fn exp_in_place(level: FloatLevel, w: &mut [f32], max: f32, scale: f32) -> f32 {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma => {
            // SAFETY: as in `attention_scores`: AVX2 and FMA were detected.
            unsafe { x86::exp::exp_in_place(w, max, scale) }
        }
        _ => super::exp::exp_in_place_portable(w, max, scale),
    }
}

/// `out[i] = silu(g[i]) * u[i]` at `level`, the MLP's gate (candle's `silu` formula, then
/// the product), eight at a time on the AVX2 path.
#[inline(always)]
pub(crate) fn silu_mul(level: FloatLevel, g: &[f32], u: &[f32], out: &mut [f32]) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma => {
            // SAFETY: as in `attention_scores`: AVX2 and FMA were detected.
            unsafe { x86::exp::silu_mul(g, u, out) }
        }
        _ => super::exp::silu_mul_portable(g, u, out),
    }
}

/// One block of activations quantized to 8 bits at `level`: the bits of
/// [`super::int8`]'s portable `quantize_block` (largest magnitude, NaN ignored; `scale =
/// amax / 127`; each value times `1 / scale` rounded half away from zero, saturated, NaN
/// to 0). Compiled from the portable code, the rounding and the saturating cast stayed
/// one value at a time (`vcvttss2si` and a byte insert per value): with the float loops
/// around the matmul, 5.8 % of a single-stream decode's critical thread (`perf`).
/// Also returns the sum of the block's 8-bit values (exact, so in any order).
#[inline(always)]
pub(crate) fn quantize_block(level: FloatLevel, x: &[f32; BLOCK]) -> (f32, [i8; BLOCK], i32) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma => {
            // SAFETY: as in `attention_scores`: AVX2 and FMA were detected.
            unsafe { x86::quant::block(x) }
        }
        _ => {
            let (scale, q) = super::int8::quantize_block(x);
            (scale, q, q.iter().map(|&v| i32::from(v)).sum())
        }
    }
}

/// The largest of `w` and `-inf`, NaN ignored: `w.iter().fold(f32::NEG_INFINITY,
/// f32::max)` (softmax's shift), eight lanes at a time on the AVX2 path. The order does
/// not matter to a maximum; only a zero's sign could, which no caller sees (`x - 0.0` and
/// `x - -0.0` differ only for `x = ±0`, whose `exp` is 1 either way).
#[inline(always)]
pub(crate) fn max(level: FloatLevel, w: &[f32]) -> f32 {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma => {
            // SAFETY: as in `attention_scores`: AVX2 and FMA were detected.
            unsafe { x86::quant::max(w) }
        }
        _ => w.iter().copied().fold(f32::NEG_INFINITY, f32::max),
    }
}

/// The 8 outputs of `panel` for activation rows `0..n`, into `tile` laid out rows x
/// outputs (`tile[r * PANEL + o]`: each row's outputs are one vector, stored as one).
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
            // SAFETY: a `Level` naming AVX2+FMA is only made by `Level::supported`, after
            // `is_x86_feature_detected!` reported both features on this CPU.
            unsafe { x86::avx2::panel_tile(w, panel, acts, n, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => {
            // SAFETY: made by `Level::supported` only after AVX2, FMA and AVX-VNNI were
            // detected.
            unsafe { x86::avxvnni::panel_tile(w, panel, acts, n, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vl => {
            // SAFETY: made by `Level::supported` only after AVX2, FMA, F16C, AVX-512F/VL
            // and AVX-512 VNNI were detected.
            unsafe { x86::avx512vl::panel_tile(w, panel, acts, n, tile) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            // SAFETY: made by `Level::supported` only after AVX2, FMA, AVX-512F/BW and
            // AVX-512 VNNI were detected.
            unsafe { x86::avx512vnni::panel_tile(w, panel, acts, n, tile) }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            // SAFETY: made by `Level::supported` only after `is_aarch64_feature_detected!`
            // reported NEON on this CPU.
            unsafe { arm::neon::panel_tile(w, panel, acts, n, tile) }
        }
        Isa::Scalar => {
            for (r, dst) in tile.chunks_exact_mut(PANEL).take(n).enumerate() {
                dst.copy_from_slice(&w.panel_row_scalar(panel, acts, r));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::__m256i;

    use super::super::int8::{BLOCK, GROUPS, PAIRS, QuantRows};

    /// One block of a panel: its 8 groups of weights (each 4 inputs x 8 rows) and the
    /// activation row's 8 groups of 4 inputs.
    type ByteBlock = [[i8; BLOCK]; GROUPS];
    type Acts = [[i8; 4]; GROUPS];

    /// Whether the CPU has AVX2 and FMA, which every x86 variant here needs (the kernel's
    /// and the float loops').
    pub(super) fn has_avx2_fma() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// Runs `f` with AVX2 and FMA enabled (see [`super::FloatLevel`]).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn run_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// Attention's two loops with AVX2+FMA (see [`super::attention_scores`] and
    /// [`super::attention_weigh`]): per lane the same `fma` in the same order as the
    /// portable code, the same horizontal sum, so the same bits.
    pub(super) mod attn {
        use std::arch::x86_64::{
            __m256, _mm_add_ps, _mm_storeu_ps, _mm256_castps256_ps128, _mm256_extractf128_ps,
            _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        };

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        pub(super) fn load(v: &[f32; 8]) -> __m256 {
            // SAFETY: `v` is 8 readable f32; the load is unaligned.
            unsafe { _mm256_loadu_ps(v.as_ptr()) }
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        pub(super) fn store(dst: &mut [f32; 8], v: __m256) {
            // SAFETY: `dst` is 8 writable f32; the store is unaligned.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
        }

        /// `((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail`, the portable
        /// `dot`'s reduction (its tail is an empty sum here: whole vectors only).
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn reduce(acc: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
            let mut l = [0f32; 4];
            // SAFETY: `l` is 4 writable f32; the store is unaligned.
            unsafe { _mm_storeu_ps(l.as_mut_ptr(), s) };
            let tail: f32 = [0f32; 0].iter().sum();
            ((l[0] + l[1]) + (l[2] + l[3])) + tail
        }

        /// See [`super::super::attention_scores`]; `q.len()` is a non-zero multiple of 8.
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) fn scores(q: &[f32], keys: &[f32], out: &mut Vec<f32>) {
            let hd = q.len();
            let qc = q.as_chunks::<8>().0;
            let m = qc.len();
            let mut quads = keys.chunks_exact(4 * hd);
            for quad in &mut quads {
                let kc = quad.as_chunks::<8>().0;
                let (k0, rest) = kc.split_at(m);
                let (k1, rest) = rest.split_at(m);
                let (k2, k3) = rest.split_at(m);
                let mut acc = [_mm256_setzero_ps(); 4];
                for ((((x, y0), y1), y2), y3) in qc.iter().zip(k0).zip(k1).zip(k2).zip(k3) {
                    let x = load(x);
                    acc[0] = _mm256_fmadd_ps(x, load(y0), acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, load(y1), acc[1]);
                    acc[2] = _mm256_fmadd_ps(x, load(y2), acc[2]);
                    acc[3] = _mm256_fmadd_ps(x, load(y3), acc[3]);
                }
                out.extend_from_slice(&[
                    reduce(acc[0]),
                    reduce(acc[1]),
                    reduce(acc[2]),
                    reduce(acc[3]),
                ]);
            }
            for k in quads.remainder().chunks_exact(hd) {
                let mut acc = _mm256_setzero_ps();
                for (x, y) in qc.iter().zip(k.as_chunks::<8>().0) {
                    acc = _mm256_fmadd_ps(load(x), load(y), acc);
                }
                out.push(reduce(acc));
            }
        }

        /// See [`super::super::attention_weigh`]; `dst.len()` is a non-zero multiple of 8.
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) fn weigh(dst: &mut [f32], w: &[f32], inv: f32, values: [&[f32]; 2]) {
            let hd = dst.len();
            let dc = dst.as_chunks_mut::<8>().0;
            // 8 vectors (64 columns) at a time, then one vector at a time.
            let mut c = 0;
            while c < dc.len() {
                let width = if dc.len() - c >= 8 { 8 } else { 1 };
                let mut acc = [_mm256_setzero_ps(); 8];
                for (a, d) in acc.iter_mut().zip(&dc[c..c + width]) {
                    *a = load(d);
                }
                let mut weights = w.iter();
                for vals in values {
                    for (v, &wi) in vals.chunks_exact(hd).zip(&mut weights) {
                        let wv = _mm256_set1_ps(wi * inv);
                        let vc = &v.as_chunks::<8>().0[c..c + width];
                        if width == 8 {
                            for l in 0..8 {
                                acc[l] = _mm256_fmadd_ps(wv, load(&vc[l]), acc[l]);
                            }
                        } else {
                            acc[0] = _mm256_fmadd_ps(wv, load(&vc[0]), acc[0]);
                        }
                    }
                }
                for (a, d) in acc.iter().zip(&mut dc[c..c + width]) {
                    store(d, *a);
                }
                c += width;
            }
        }
    }

    /// [`super::quantize_block`] and [`super::max`] with AVX2.
    pub(super) mod quant {
        use std::arch::x86_64::{
            __m256, _CMP_GE_OQ, _CMP_ORD_Q, _MM_FROUND_NO_EXC, _MM_FROUND_TO_ZERO, _mm_add_epi32,
            _mm_cvtsi128_si32, _mm_cvtss_f32, _mm_max_ps, _mm_movehl_ps, _mm_shuffle_epi32,
            _mm_shuffle_ps, _mm_unpackhi_epi64, _mm256_add_epi32, _mm256_add_ps, _mm256_and_ps,
            _mm256_castps256_ps128, _mm256_castsi256_ps, _mm256_castsi256_si128, _mm256_cmp_ps,
            _mm256_cvtps_epi32, _mm256_extractf128_ps, _mm256_extracti128_si256, _mm256_max_ps,
            _mm256_min_ps, _mm256_mul_ps, _mm256_or_ps, _mm256_packs_epi16, _mm256_packs_epi32,
            _mm256_permutevar8x32_epi32, _mm256_round_ps, _mm256_set1_epi32, _mm256_set1_ps,
            _mm256_setr_epi32, _mm256_storeu_si256, _mm256_sub_ps,
        };

        use super::super::super::int8::BLOCK;
        use super::attn::load;

        /// The largest lane of `m` (no lane is NaN).
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn hmax(m: __m256) -> f32 {
            let h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            _mm_cvtss_f32(_mm_max_ps(h, _mm_shuffle_ps::<0b01>(h, h)))
        }

        /// See [`super::super::max`].
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) fn max(w: &[f32]) -> f32 {
            let (chunks, tail) = w.as_chunks::<8>();
            // `vmaxps` returns its second operand when either is NaN: the running maximum
            // (never NaN) stays, as `f32::max` keeps the non-NaN one.
            let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
            for c in chunks {
                m = _mm256_max_ps(load(c), m);
            }
            tail.iter().copied().fold(hmax(m), f32::max)
        }

        /// See [`super::super::quantize_block`].
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) fn block(x: &[f32; BLOCK]) -> (f32, [i8; BLOCK], i32) {
            let v = x.as_chunks::<8>().0;
            let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let mut m = _mm256_set1_ps(0.0);
            for c in v {
                // NaN lanes keep the running maximum (see `max`).
                m = _mm256_max_ps(_mm256_and_ps(load(c), abs), m);
            }
            let amax = hmax(m);
            let mut q = [0i8; BLOCK];
            if amax == 0.0 || !amax.is_finite() {
                return (if amax.is_finite() { 0.0 } else { amax }, q, 0);
            }
            let scale = amax / 127.0;
            let inv = _mm256_set1_ps(1.0 / scale);
            let (half, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
            let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
            let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
            let mut ints = [_mm256_set1_epi32(0); BLOCK / 8];
            for (c, out) in v.iter().zip(&mut ints) {
                let y = _mm256_mul_ps(load(c), inv);
                // `round` (half away from zero) exactly: truncate, then step away from
                // zero when the dropped fraction (exact: |y| < 2^23) is at least a half.
                // `trunc(y + 0.5)` would not do: 0.49999997 + 0.5 rounds up to 1.
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                let frac = _mm256_and_ps(_mm256_sub_ps(y, t), abs);
                let away = _mm256_or_ps(_mm256_and_ps(y, sign), one);
                let step = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half), away);
                // NaN becomes 0 and the rest saturates, as `as i8` does (`1 / scale`
                // overflows to infinity for a block of subnormals; `vcvtps2dq` would make
                // an infinity `i32::MIN`).
                let r = _mm256_and_ps(_mm256_add_ps(t, step), _mm256_cmp_ps::<_CMP_ORD_Q>(y, y));
                let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
                *out = _mm256_cvtps_epi32(r);
            }
            // The packs (saturating, but every lane is in range) interleave 4-lane groups
            // per 128-bit half: the permute puts the groups back in order.
            let p = _mm256_packs_epi16(
                _mm256_packs_epi32(ints[0], ints[1]),
                _mm256_packs_epi32(ints[2], ints[3]),
            );
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            // SAFETY: `q` is 32 writable bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), p) };
            // Every lane is in -128..=127, so the 32-bit values are the bytes' values.
            let s = _mm256_add_epi32(
                _mm256_add_epi32(ints[0], ints[1]),
                _mm256_add_epi32(ints[2], ints[3]),
            );
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
            (scale, q, _mm_cvtsi128_si32(s))
        }
    }

    /// [`super::exp_in_place`] and [`super::silu_mul`] with AVX2+FMA: per lane the
    /// portable `expf`'s f64 operations in the same order, so the same bits.
    pub(super) mod exp {
        use std::arch::x86_64::{
            __m128, __m256, _mm256_add_epi64, _mm256_add_ps, _mm256_and_si256, _mm256_castpd_si256,
            _mm256_castps_si256, _mm256_castps256_ps128, _mm256_castsi256_pd, _mm256_cmpgt_epi32,
            _mm256_cvtpd_ps, _mm256_cvtps_pd, _mm256_div_ps, _mm256_extractf128_ps,
            _mm256_fmadd_pd, _mm256_fmsub_pd, _mm256_i64gather_epi64, _mm256_movemask_epi8,
            _mm256_mul_pd, _mm256_mul_ps, _mm256_set_m128, _mm256_set1_epi32, _mm256_set1_epi64x,
            _mm256_set1_pd, _mm256_set1_ps, _mm256_slli_epi64, _mm256_srli_epi32, _mm256_sub_pd,
            _mm256_sub_ps, _mm256_xor_ps,
        };

        use super::super::super::exp::{
            EXP2_TABLE, INV_LN2_N, POLY, SHIFT, SPECIAL_TOP, expf, silu_mul_portable,
        };
        use super::attn::{load, store};

        /// Whether any lane of `x` needs `expf`'s special cases.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn special(x: __m256) -> bool {
            let top = _mm256_and_si256(
                _mm256_srli_epi32::<20>(_mm256_castps_si256(x)),
                _mm256_set1_epi32(0x7ff),
            );
            let at = _mm256_cmpgt_epi32(top, _mm256_set1_epi32(SPECIAL_TOP as i32 - 1));
            _mm256_movemask_epi8(at) != 0
        }

        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn f64s(bits: u64) -> std::arch::x86_64::__m256d {
            _mm256_castsi256_pd(_mm256_set1_epi64x(bits as i64))
        }

        /// `expf` of four lanes, none of them special.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn exp4(x: __m128) -> __m128 {
            let (inv, shift) = (f64s(INV_LN2_N), f64s(SHIFT));
            let xd = _mm256_cvtps_pd(x);
            let kd = _mm256_fmadd_pd(inv, xd, shift);
            let ki = _mm256_castpd_si256(kd);
            let kd = _mm256_sub_pd(kd, shift);
            let r = _mm256_fmsub_pd(inv, xd, kd);
            let idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
            // SAFETY: every index is masked into 0..32, the table's length.
            let tab = unsafe { _mm256_i64gather_epi64::<8>(EXP2_TABLE.as_ptr().cast(), idx) };
            let s = _mm256_castsi256_pd(_mm256_add_epi64(tab, _mm256_slli_epi64::<47>(ki)));
            let z = _mm256_fmadd_pd(r, f64s(POLY[0]), f64s(POLY[1]));
            let r2 = _mm256_mul_pd(r, r);
            let y = _mm256_fmadd_pd(r, f64s(POLY[2]), _mm256_set1_pd(1.0));
            let y = _mm256_fmadd_pd(z, r2, y);
            _mm256_cvtpd_ps(_mm256_mul_pd(y, s))
        }

        /// `expf` of eight lanes, none of them special.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn exp8(x: __m256) -> __m256 {
            let lo = exp4(_mm256_castps256_ps128(x));
            let hi = exp4(_mm256_extractf128_ps::<1>(x));
            _mm256_set_m128(hi, lo)
        }

        /// See [`super::super::exp_in_place`]. A chunk of eight with a special lane, and
        /// the tail, go through the portable `expf`.
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) fn exp_in_place(w: &mut [f32], max: f32, scale: f32) -> f32 {
            let (m, k) = (_mm256_set1_ps(max), _mm256_set1_ps(scale));
            let mut sum = 0f32;
            let (chunks, tail) = w.as_chunks_mut::<8>();
            for c in chunks {
                let x = _mm256_mul_ps(_mm256_sub_ps(load(c), m), k);
                if special(x) {
                    for v in c.iter_mut() {
                        *v = expf((*v - max) * scale);
                    }
                } else {
                    store(c, exp8(x));
                }
                for &v in c.iter() {
                    sum += v;
                }
            }
            for v in tail {
                *v = expf((*v - max) * scale);
                sum += *v;
            }
            sum
        }

        /// See [`super::super::silu_mul`]: `g / (1 + expf(-g)) * u`, eight at a time.
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) fn silu_mul(g: &[f32], u: &[f32], out: &mut [f32]) {
            let n = out.len().min(g.len()).min(u.len());
            let (out, g, u) = (&mut out[..n], &g[..n], &u[..n]);
            let (oc, ot) = out.as_chunks_mut::<8>();
            let (gc, gt) = g.as_chunks::<8>();
            let (uc, ut) = u.as_chunks::<8>();
            let (sign, one) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(1.0));
            for ((o, g), u) in oc.iter_mut().zip(gc).zip(uc) {
                let gv = load(g);
                let neg = _mm256_xor_ps(gv, sign);
                if special(neg) {
                    silu_mul_portable(g, u, o);
                } else {
                    let s = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(neg)));
                    store(o, _mm256_mul_ps(s, load(u)));
                }
            }
            silu_mul_portable(gt, ut, ot);
        }
    }

    /// A row's activations as 4-byte groups, 8 per block.
    fn byte_groups(acts: &QuantRows, r: usize, bpr: usize) -> &[Acts] {
        acts.q[r * bpr * BLOCK..(r + 1) * bpr * BLOCK]
            .as_chunks::<4>()
            .0
            .as_chunks::<GROUPS>()
            .0
    }

    /// One block of a panel in the nibble layout: its 4 pairs of groups.
    type NibBlock = [[u8; BLOCK]; PAIRS];

    /// Rows the kernels take through a panel together (each block's weights loaded, and
    /// nibbles unpacked, once for all of them).
    const ROW_GROUP: usize = 8;

    /// Stamps out one variant's panel kernel around its integer block sums: `$sums`
    /// (`fn(&ByteBlock, &Acts, i32) -> __m256i`, the 8 rows' exact sums given the
    /// activation block's integer sum, generic over NONNEG and NARROW) for the byte
    /// layout; for the nibble layout `$unpack` (`fn(&NibBlock) -> U`, a block's nibbles
    /// unpacked into registers) and `$nsums` (`fn(&U, &Acts, i32) -> __m256i`, given the
    /// activation block's integer sum, generic over OFFSET8). The float part is the same
    /// instructions in every variant and layout.
    macro_rules! panel_kernel {
        ($features:literal, $sums:ident, $unpack:ident, $nsums:ident) => {
            use std::arch::x86_64::{
                __m256, _mm_loadu_si128, _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_cvtph_ps,
                _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
                _mm256_storeu_ps,
            };

            use super::super::super::int8::{
                BLOCK, Bytes, GROUPS, Int8Matrix, Nibbles, PAIRS, PANEL, QuantRows, Weights,
            };
            use super::byte_groups;

            /// [`super::super::panel_tile`] in this variant.
            ///
            /// # Safety
            /// The CPU must support every feature this variant is compiled for.
            #[target_feature(enable = $features)]
            pub(in super::super) unsafe fn panel_tile(
                w: &Int8Matrix,
                panel: usize,
                acts: &QuantRows,
                n: usize,
                tile: &mut [f32],
            ) {
                let c = w.cols;
                match &w.w {
                    Weights::Bytes(b) => match (b.nonneg, b.narrow, b.m.is_some()) {
                        (true, true, true) => {
                            tile_rows::<true, true, true>(c, b, panel, acts, n, tile)
                        }
                        (true, true, false) => {
                            tile_rows::<true, true, false>(c, b, panel, acts, n, tile)
                        }
                        (true, false, true) => {
                            tile_rows::<true, false, true>(c, b, panel, acts, n, tile)
                        }
                        (true, false, false) => {
                            tile_rows::<true, false, false>(c, b, panel, acts, n, tile)
                        }
                        (false, true, true) => {
                            tile_rows::<false, true, true>(c, b, panel, acts, n, tile)
                        }
                        (false, true, false) => {
                            tile_rows::<false, true, false>(c, b, panel, acts, n, tile)
                        }
                        (false, false, true) => {
                            tile_rows::<false, false, true>(c, b, panel, acts, n, tile)
                        }
                        (false, false, false) => {
                            tile_rows::<false, false, false>(c, b, panel, acts, n, tile)
                        }
                    },
                    Weights::Nibbles(nb) => match (nb.offset8, nb.m.is_some()) {
                        (true, true) => tile_rows_nib::<true, true>(c, nb, panel, acts, n, tile),
                        (true, false) => tile_rows_nib::<true, false>(c, nb, panel, acts, n, tile),
                        (false, true) => tile_rows_nib::<false, true>(c, nb, panel, acts, n, tile),
                        (false, false) => {
                            tile_rows_nib::<false, false>(c, nb, panel, acts, n, tile)
                        }
                    },
                }
            }

            #[target_feature(enable = $features)]
            fn tile_rows<const NONNEG: bool, const NARROW: bool, const MIN: bool>(
                cols: usize,
                w: &Bytes,
                panel: usize,
                acts: &QuantRows,
                n: usize,
                tile: &mut [f32],
            ) {
                if n == 1 {
                    tile[..PANEL].copy_from_slice(&panel_row::<NONNEG, NARROW, MIN>(
                        cols, w, panel, acts, 0,
                    ));
                    return;
                }
                let mut r0 = 0;
                while r0 < n {
                    let rows = (n - r0).min(ROW_GROUP);
                    let out = panel_rows::<NONNEG, NARROW, MIN>(cols, w, panel, acts, r0, rows);
                    let dst = tile[r0 * PANEL..].chunks_exact_mut(PANEL);
                    for (row, dst) in out[..rows].iter().zip(dst) {
                        dst.copy_from_slice(row);
                    }
                    r0 += rows;
                }
            }

            /// One row: [`panel_row_nib`]. Several: [`panel_rows_nib`], [`ROW_GROUP`] rows
            /// at a time, each block's nibbles unpacked once for all of them.
            #[target_feature(enable = $features)]
            fn tile_rows_nib<const OFFSET8: bool, const MIN: bool>(
                cols: usize,
                w: &Nibbles,
                panel: usize,
                acts: &QuantRows,
                n: usize,
                tile: &mut [f32],
            ) {
                if n == 1 {
                    tile[..PANEL]
                        .copy_from_slice(&panel_row_nib::<OFFSET8, MIN>(cols, w, panel, acts, 0));
                    return;
                }
                let mut r0 = 0;
                while r0 < n {
                    let rows = (n - r0).min(ROW_GROUP);
                    let out = panel_rows_nib::<OFFSET8, MIN>(cols, w, panel, acts, r0, rows);
                    let dst = tile[r0 * PANEL..].chunks_exact_mut(PANEL);
                    for (row, dst) in out[..rows].iter().zip(dst) {
                        dst.copy_from_slice(row);
                    }
                    r0 += rows;
                }
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn load_f32(v: &[f32; PANEL]) -> __m256 {
                // SAFETY: `v` is exactly 8 readable f32s; the load is unaligned.
                unsafe { _mm256_loadu_ps(v.as_ptr()) }
            }

            /// 8 f16s (bits) widened to f32: exact.
            #[target_feature(enable = $features)]
            #[inline]
            fn load_f16(v: &[u16; PANEL]) -> __m256 {
                // SAFETY: `v` is exactly 16 readable bytes; the load is unaligned.
                _mm256_cvtph_ps(unsafe { _mm_loadu_si128(v.as_ptr().cast()) })
            }

            /// One block's step of the float part: `acc = fma(sums, d_w * d_a, acc)`.
            #[target_feature(enable = $features)]
            #[inline]
            fn scale_add(
                acc: __m256,
                sums: std::arch::x86_64::__m256i,
                w_d: __m256,
                a_d: f32,
            ) -> __m256 {
                let scale = _mm256_mul_ps(w_d, _mm256_set1_ps(a_d));
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc)
            }

            #[target_feature(enable = $features)]
            #[inline]
            fn store(acc: __m256, acc_m: __m256) -> [f32; PANEL] {
                let mut out = [0f32; PANEL];
                // SAFETY: `out` is exactly 8 writable f32s; the store is unaligned.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(acc, acc_m)) };
                out
            }

            /// See `Int8Matrix::panel_row_scalar` for the arithmetic: per block, the 8
            /// rows' exact integer sums (`$sums`), then `acc = fma(sum, d_w * d_a, acc)`
            /// lane by lane. `NONNEG`: weights are all >= 0 (no sign transfer, no offset);
            /// `NARROW`: |weights| <= 16; `MIN`: add the minimums' term.
            #[target_feature(enable = $features)]
            #[inline]
            fn panel_row<const NONNEG: bool, const NARROW: bool, const MIN: bool>(
                cols: usize,
                w: &Bytes,
                panel: usize,
                acts: &QuantRows,
                r: usize,
            ) -> [f32; PANEL] {
                let bpr = cols / BLOCK;
                let blocks = w.q[panel * bpr * GROUPS..(panel + 1) * bpr * GROUPS]
                    .as_chunks::<GROUPS>()
                    .0;
                let a_blocks = byte_groups(acts, r, bpr);
                let (a_d, a_sum, a_isum) = (
                    &acts.d[r * bpr..(r + 1) * bpr],
                    &acts.sum[r * bpr..(r + 1) * bpr],
                    &acts.isum[r * bpr..(r + 1) * bpr],
                );
                let (w_d, _) =
                    w.d[panel * bpr * PANEL..(panel + 1) * bpr * PANEL].as_chunks::<PANEL>();
                let mut acc = _mm256_setzero_ps();
                for (((wb, ab), &ai), (wd, &ad)) in blocks
                    .iter()
                    .zip(a_blocks)
                    .zip(a_isum)
                    .zip(w_d.iter().zip(a_d))
                {
                    // No closures here: a closure does not inherit the function's target
                    // features, so the intrinsics in it were calls, not instructions.
                    acc = scale_add(acc, $sums::<NONNEG, NARROW>(wb, ab, ai), load_f32(wd), ad);
                }
                store(acc, min_term_bytes::<MIN>(w, panel, bpr, a_sum))
            }

            /// The minimums' term of one row in the byte layout (zero without minimums),
            /// in its own loop: folded into the blocks' loop it cost a quarter of the
            /// kernel's speed (a second accumulator chain and its loads in the hot loop).
            #[target_feature(enable = $features)]
            #[inline]
            fn min_term_bytes<const MIN: bool>(
                w: &Bytes,
                panel: usize,
                bpr: usize,
                a_sum: &[f32],
            ) -> __m256 {
                let mut acc_m = _mm256_setzero_ps();
                if MIN && let Some(m) = &w.m {
                    let wm = m[panel * bpr * PANEL..(panel + 1) * bpr * PANEL]
                        .as_chunks::<PANEL>()
                        .0;
                    for (wm, &s) in wm.iter().zip(a_sum) {
                        acc_m = _mm256_fmadd_ps(load_f32(wm), _mm256_set1_ps(s), acc_m);
                    }
                }
                acc_m
            }

            /// [`panel_row`] for rows `r0..r0 + rows` (at most [`ROW_GROUP`]) at once,
            /// blocks outside and rows inside: a block's weights are loaded (and, in the
            /// `vpdpbusd` variants, offset to unsigned) once for all the rows. Each row's
            /// accumulator takes its blocks in order: [`panel_row`]'s bits.
            #[target_feature(enable = $features)]
            #[inline]
            fn panel_rows<const NONNEG: bool, const NARROW: bool, const MIN: bool>(
                cols: usize,
                w: &Bytes,
                panel: usize,
                acts: &QuantRows,
                r0: usize,
                rows: usize,
            ) -> [[f32; PANEL]; ROW_GROUP] {
                let bpr = cols / BLOCK;
                let blocks = w.q[panel * bpr * GROUPS..(panel + 1) * bpr * GROUPS]
                    .as_chunks::<GROUPS>()
                    .0;
                let (w_d, _) =
                    w.d[panel * bpr * PANEL..(panel + 1) * bpr * PANEL].as_chunks::<PANEL>();
                // Row i's block kb at `i * bpr + kb`.
                let span = r0 * bpr..(r0 + rows) * bpr;
                let a_groups = acts.q[span.start * BLOCK..span.end * BLOCK]
                    .as_chunks::<4>()
                    .0
                    .as_chunks::<GROUPS>()
                    .0;
                let (a_d, a_isum) = (&acts.d[span.clone()], &acts.isum[span.clone()]);
                let mut acc = [_mm256_setzero_ps(); ROW_GROUP];
                for (kb, (wb, wd)) in blocks.iter().zip(w_d).enumerate() {
                    let wd = load_f32(wd);
                    for (i, acc) in acc[..rows].iter_mut().enumerate() {
                        let at = i * bpr + kb;
                        let sums = $sums::<NONNEG, NARROW>(wb, &a_groups[at], a_isum[at]);
                        *acc = scale_add(*acc, sums, wd, a_d[at]);
                    }
                }
                let mut out = [[0f32; PANEL]; ROW_GROUP];
                for (i, (o, &acc)) in out.iter_mut().zip(&acc).take(rows).enumerate() {
                    let a_sum = &acts.sum[(r0 + i) * bpr..(r0 + i + 1) * bpr];
                    *o = store(acc, min_term_bytes::<MIN>(w, panel, bpr, a_sum));
                }
                out
            }

            /// [`panel_row`] on nibbles: the same float instructions on the same integer
            /// sums (`$nsums`, which unpacks the nibbles in registers), the scales widened
            /// from f16. `OFFSET8`: values are stored as `q + 8`.
            #[target_feature(enable = $features)]
            #[inline]
            fn panel_row_nib<const OFFSET8: bool, const MIN: bool>(
                cols: usize,
                w: &Nibbles,
                panel: usize,
                acts: &QuantRows,
                r: usize,
            ) -> [f32; PANEL] {
                let bpr = cols / BLOCK;
                let blocks = w.q[panel * bpr * PAIRS..(panel + 1) * bpr * PAIRS]
                    .as_chunks::<PAIRS>()
                    .0;
                let a_blocks = byte_groups(acts, r, bpr);
                let (a_d, a_sum, a_isum) = (
                    &acts.d[r * bpr..(r + 1) * bpr],
                    &acts.sum[r * bpr..(r + 1) * bpr],
                    &acts.isum[r * bpr..(r + 1) * bpr],
                );
                let w_d = &w.d[panel * bpr..(panel + 1) * bpr];
                let mut acc = _mm256_setzero_ps();
                for (((wb, ab), &ai), (wd, &ad)) in blocks
                    .iter()
                    .zip(a_blocks)
                    .zip(a_isum)
                    .zip(w_d.iter().zip(a_d))
                {
                    let u = $unpack(wb);
                    acc = scale_add(acc, $nsums::<OFFSET8>(&u, ab, ai), load_f16(wd), ad);
                }
                store(acc, min_term::<MIN>(w, panel, bpr, a_sum))
            }

            /// The minimums' term of one row (zero without minimums).
            #[target_feature(enable = $features)]
            #[inline]
            fn min_term<const MIN: bool>(
                w: &Nibbles,
                panel: usize,
                bpr: usize,
                a_sum: &[f32],
            ) -> __m256 {
                let mut acc_m = _mm256_setzero_ps();
                if MIN && let Some(m) = &w.m {
                    for (wm, &s) in m[panel * bpr..(panel + 1) * bpr].iter().zip(a_sum) {
                        acc_m = _mm256_fmadd_ps(load_f16(wm), _mm256_set1_ps(s), acc_m);
                    }
                }
                acc_m
            }

            /// [`panel_row_nib`] for rows `r0..r0 + rows` (at most [`ROW_GROUP`]) at once,
            /// blocks outside and rows inside: a block's nibbles are unpacked once into
            /// registers and multiplied into every row, where row by row they would be
            /// unpacked again for each. Each row's accumulator still takes its blocks in
            /// order, so the bits are [`panel_row_nib`]'s.
            #[target_feature(enable = $features)]
            #[inline]
            fn panel_rows_nib<const OFFSET8: bool, const MIN: bool>(
                cols: usize,
                w: &Nibbles,
                panel: usize,
                acts: &QuantRows,
                r0: usize,
                rows: usize,
            ) -> [[f32; PANEL]; ROW_GROUP] {
                let bpr = cols / BLOCK;
                let blocks = w.q[panel * bpr * PAIRS..(panel + 1) * bpr * PAIRS]
                    .as_chunks::<PAIRS>()
                    .0;
                let w_d = &w.d[panel * bpr..(panel + 1) * bpr];
                // Row i's block kb at `i * bpr + kb`.
                let span = r0 * bpr..(r0 + rows) * bpr;
                let a_groups = acts.q[span.start * BLOCK..span.end * BLOCK]
                    .as_chunks::<4>()
                    .0
                    .as_chunks::<GROUPS>()
                    .0;
                let (a_d, a_isum) = (&acts.d[span.clone()], &acts.isum[span.clone()]);
                let mut acc = [_mm256_setzero_ps(); ROW_GROUP];
                for (kb, (wb, wd)) in blocks.iter().zip(w_d).enumerate() {
                    let u = $unpack(wb);
                    let wd = load_f16(wd);
                    for (i, acc) in acc[..rows].iter_mut().enumerate() {
                        let at = i * bpr + kb;
                        let sums = $nsums::<OFFSET8>(&u, &a_groups[at], a_isum[at]);
                        *acc = scale_add(*acc, sums, wd, a_d[at]);
                    }
                }
                let mut out = [[0f32; PANEL]; ROW_GROUP];
                for (i, (o, &acc)) in out.iter_mut().zip(&acc).take(rows).enumerate() {
                    let a_sum = &acts.sum[(r0 + i) * bpr..(r0 + i + 1) * bpr];
                    *o = store(acc, min_term::<MIN>(w, panel, bpr, a_sum));
                }
                out
            }
        };
    }

    /// AVX2 + FMA: `vpmaddubsw` makes pairwise 16-bit products, summed in 16-bit lanes
    /// for 4-bit weights (8 groups x 2 x 16 x 127 < 2^15) or widened per group.
    pub(super) mod avx2 {
        use std::arch::x86_64::{
            _mm256_abs_epi8, _mm256_add_epi16, _mm256_add_epi32, _mm256_madd_epi16,
            _mm256_maddubs_epi16, _mm256_set1_epi16, _mm256_setzero_si256, _mm256_sign_epi8,
            _mm256_sub_epi32,
        };

        use super::{__m256i, Acts, ByteBlock, ROW_GROUP, broadcast, load_i8, unpack_block};

        panel_kernel!("avx2,fma,f16c", block_sums, unpack_block, nibble_sums);

        /// Pairwise products of one 4-input group of the activation row with the same
        /// group of the panel's 8 weight rows: lane j of the i16 result holds two of row
        /// j/2's products.
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        fn pair_products<const NONNEG: bool>(wg: &[i8; BLOCK], ag: [i8; 4]) -> __m256i {
            let a = broadcast(ag);
            let wv = load_i8(wg);
            if NONNEG {
                _mm256_maddubs_epi16(wv, a)
            } else {
                _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(a, wv))
            }
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        fn block_sums<const NONNEG: bool, const NARROW: bool>(
            wb: &ByteBlock,
            ab: &Acts,
            _a_isum: i32,
        ) -> __m256i {
            let ones = _mm256_set1_epi16(1);
            let mut s = _mm256_setzero_si256();
            if NARROW {
                for (wg, &ag) in wb.iter().zip(ab) {
                    s = _mm256_add_epi16(s, pair_products::<NONNEG>(wg, ag));
                }
                _mm256_madd_epi16(s, ones)
            } else {
                for (wg, &ag) in wb.iter().zip(ab) {
                    let p = pair_products::<NONNEG>(wg, ag);
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
                }
                s
            }
        }

        /// The nibbles unpacked in registers (`vpand`, `vpsrlw` + `vpand`) into the same
        /// unsigned path as non-negative bytes: 16-bit sums cannot overflow (8 groups x 2
        /// x 15 x 127 < 2^15). A Q4_0 block's offset comes off the exact 32-bit sums.
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        fn nibble_sums<const OFFSET8: bool>(
            u: &[__m256i; GROUPS],
            ab: &Acts,
            a_isum: i32,
        ) -> __m256i {
            let mut s = _mm256_setzero_si256();
            for (&wv, &ag) in u.iter().zip(ab) {
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(wv, broadcast(ag)));
            }
            let s = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
            if OFFSET8 {
                _mm256_sub_epi32(s, std::arch::x86_64::_mm256_set1_epi32(8 * a_isum))
            } else {
                s
            }
        }
    }

    /// Stamps out a 256-bit `vpdpbusd` variant: one dot-product instruction per group
    /// (4-byte dot products accumulated in 32 bits: exact, so 4-bit and 8-bit weights take
    /// the same path). `$dpbusd` is the instruction's VEX form (AVX-VNNI) or its EVEX form
    /// (AVX-512 VNNI on 256-bit vectors, AVX512VL): the same operation, so the same bits.
    macro_rules! vnni256 {
        ($features:literal, $dpbusd:ident) => {
            use std::arch::x86_64::{
                _mm256_add_epi32, _mm256_set1_epi8, _mm256_set1_epi32, _mm256_setzero_si256,
                _mm256_sub_epi32, _mm256_xor_si256, $dpbusd,
            };

            use super::{__m256i, Acts, ByteBlock, ROW_GROUP, broadcast, load_i8, unpack_block};

            panel_kernel!($features, block_sums, unpack_block, nibble_sums);

            #[target_feature(enable = $features)]
            #[inline]
            fn block_sums<const NONNEG: bool, const NARROW: bool>(
                wb: &ByteBlock,
                ab: &Acts,
                a_isum: i32,
            ) -> __m256i {
                let mut s = _mm256_setzero_si256();
                for (wg, &ag) in wb.iter().zip(ab) {
                    let wv = load_i8(wg);
                    // Signed weights go in offset by 128 (the sign bit flipped: 0..=255,
                    // unsigned), so one instruction per group; the offset's products,
                    // 128 times the activations' block sum, come off the exact total.
                    let wv = if NONNEG {
                        wv
                    } else {
                        _mm256_xor_si256(wv, _mm256_set1_epi8(-128))
                    };
                    s = $dpbusd(s, wv, broadcast(ag));
                }
                if NONNEG {
                    s
                } else {
                    _mm256_sub_epi32(s, _mm256_set1_epi32(128 * a_isum))
                }
            }

            /// The nibbles unpacked in registers, low nibbles (even groups) and high
            /// nibbles (odd groups) in two accumulator chains.
            #[target_feature(enable = $features)]
            #[inline]
            fn nibble_sums<const OFFSET8: bool>(
                u: &[__m256i; GROUPS],
                ab: &Acts,
                a_isum: i32,
            ) -> __m256i {
                let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for (wv, ag) in u.as_chunks::<2>().0.iter().zip(ab.as_chunks::<2>().0) {
                    s0 = $dpbusd(s0, wv[0], broadcast(ag[0]));
                    s1 = $dpbusd(s1, wv[1], broadcast(ag[1]));
                }
                let s = _mm256_add_epi32(s0, s1);
                if OFFSET8 {
                    _mm256_sub_epi32(s, _mm256_set1_epi32(8 * a_isum))
                } else {
                    s
                }
            }
        };
    }

    /// AVX-VNNI (VEX `vpdpbusd`, Intel Alder Lake on, AMD Zen 5).
    pub(super) mod avxvnni {
        vnni256!("avx2,fma,f16c,avxvnni", _mm256_dpbusd_avx_epi32);
    }

    /// AVX-512 VNNI's `vpdpbusd` on 256-bit vectors (EVEX, AVX512VL): the AVX-VNNI kernel
    /// for CPUs with AVX-512 VNNI but not AVX-VNNI (AMD Zen 4, Intel Ice Lake and
    /// Cascade Lake servers), which otherwise ran the `vpmaddubsw` kernel.
    pub(super) mod avx512vl {
        vnni256!(
            "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
            _mm256_dpbusd_epi32
        );
    }

    /// AVX-512 VNNI: two groups per `vpdpbusd` (lanes 0-7 one group's 8 rows, lanes 8-15
    /// another group's, the activations placed by one `vpermd` per pair), two
    /// accumulator chains, the halves added once per block. AVX-512 has no `vpsignb`: the
    /// activations are negated under the mask of negative weights instead (a zero
    /// weight's product is zero either way).
    pub(super) mod avx512vnni {
        use std::arch::x86_64::{
            __m512i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_set1_epi32, _mm256_sub_epi32,
            _mm512_add_epi32, _mm512_and_si512, _mm512_castsi256_si512, _mm512_castsi512_si256,
            _mm512_dpbusd_epi32, _mm512_extracti64x4_epi64, _mm512_loadu_si512,
            _mm512_permutexvar_epi32, _mm512_set_epi32, _mm512_set1_epi8, _mm512_setzero_si512,
            _mm512_srli_epi16, _mm512_xor_si512,
        };

        use super::{__m256i, Acts, ByteBlock, NibBlock, ROW_GROUP};

        panel_kernel!(
            "avx2,fma,f16c,avx512f,avx512bw,avx512vnni",
            block_sums,
            unpack_block,
            nibble_sums
        );

        /// The 8 lanes of `lo` (group index) in lanes 0-7 and of `hi` in lanes 8-15.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn groups(a_all: __m512i, lo: i32, hi: i32) -> __m512i {
            let idx = _mm512_set_epi32(
                hi, hi, hi, hi, hi, hi, hi, hi, lo, lo, lo, lo, lo, lo, lo, lo,
            );
            _mm512_permutexvar_epi32(idx, a_all)
        }

        /// The row's 8 groups of 4 activations, in the low 256 bits.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn load_acts(ab: &Acts) -> __m512i {
            // SAFETY: `ab` is exactly 32 readable bytes (8 groups of 4); unaligned load.
            _mm512_castsi256_si512(unsafe { _mm256_loadu_si256(ab.as_ptr().cast()) })
        }

        /// The 16 lanes' sums folded to 8 (lane j plus lane j + 8).
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn fold(s0: __m512i, s1: __m512i) -> __m256i {
            let s = _mm512_add_epi32(s0, s1);
            _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64::<1>(s))
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn block_sums<const NONNEG: bool, const NARROW: bool>(
            wb: &ByteBlock,
            ab: &Acts,
            a_isum: i32,
        ) -> __m256i {
            let a_all = load_acts(ab);
            let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for (p, pair) in wb.as_chunks::<2>().0.iter().enumerate() {
                let a = groups(a_all, 2 * p as i32, 2 * p as i32 + 1);
                let wv = load_pair(pair);
                // Signed weights offset by 128 (sign bit flipped), as in `vnni256`.
                let wv = if NONNEG {
                    wv
                } else {
                    _mm512_xor_si512(wv, _mm512_set1_epi8(-128))
                };
                if p % 2 == 0 {
                    s0 = _mm512_dpbusd_epi32(s0, wv, a);
                } else {
                    s1 = _mm512_dpbusd_epi32(s1, wv, a);
                }
            }
            let s = fold(s0, s1);
            if NONNEG {
                s
            } else {
                _mm256_sub_epi32(s, _mm256_set1_epi32(128 * a_isum))
            }
        }

        /// Two pairs of groups per 64-byte load: its low nibbles are groups `4q` (lanes
        /// 0-7) and `4q + 2` (lanes 8-15), its high nibbles `4q + 1` and `4q + 3`; the
        /// block as `[low 0, high 0, low 1, high 1]`.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn unpack_block(wb: &NibBlock) -> [__m512i; 4] {
            let low = _mm512_set1_epi8(0x0f);
            // No closure (`map`): it would not inherit the target features.
            let [quad0, quad1] = wb.as_chunks::<2>().0 else {
                unreachable!("a block is two quads")
            };
            let (q0, q1) = (load_quad(quad0), load_quad(quad1));
            [
                _mm512_and_si512(q0, low),
                _mm512_and_si512(_mm512_srli_epi16::<4>(q0), low),
                _mm512_and_si512(q1, low),
                _mm512_and_si512(_mm512_srli_epi16::<4>(q1), low),
            ]
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn nibble_sums<const OFFSET8: bool>(u: &[__m512i; 4], ab: &Acts, a_isum: i32) -> __m256i {
            let a_all = load_acts(ab);
            let (mut s0, mut s1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for (q, lohi) in u.as_chunks::<2>().0.iter().enumerate() {
                let g = 4 * q as i32;
                s0 = _mm512_dpbusd_epi32(s0, lohi[0], groups(a_all, g, g + 2));
                s1 = _mm512_dpbusd_epi32(s1, lohi[1], groups(a_all, g + 1, g + 3));
            }
            let s = fold(s0, s1);
            if OFFSET8 {
                _mm256_sub_epi32(s, _mm256_set1_epi32(8 * a_isum))
            } else {
                s
            }
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn load_pair(v: &[[i8; BLOCK]; 2]) -> __m512i {
            // SAFETY: `v` is exactly 64 contiguous readable bytes; the load is unaligned.
            unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
        }

        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
        #[inline]
        fn load_quad(v: &[[u8; BLOCK]; 2]) -> __m512i {
            // SAFETY: `v` is exactly 64 contiguous readable bytes; the load is unaligned.
            unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
        }
    }

    /// The activation group's 4 bytes in every 32-bit lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn broadcast(ag: [i8; 4]) -> __m256i {
        std::arch::x86_64::_mm256_set1_epi32(i32::from_le_bytes(ag.map(|v| v as u8)))
    }

    /// A block's nibbles as 8 vectors of bytes 0..=15, one per group.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn unpack_block(wb: &NibBlock) -> [__m256i; GROUPS] {
        let mut u = [std::arch::x86_64::_mm256_setzero_si256(); GROUPS];
        for (pair, out) in wb.iter().zip(u.as_chunks_mut::<2>().0) {
            let (lo, hi) = unpack(pair);
            *out = [lo, hi];
        }
        u
    }

    /// A pair of groups' nibbles as two vectors of bytes 0..=15: the low nibbles (the even
    /// group) and the high nibbles (the odd group).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn unpack(v: &[u8; BLOCK]) -> (__m256i, __m256i) {
        use std::arch::x86_64::{_mm256_and_si256, _mm256_set1_epi8, _mm256_srli_epi16};
        // SAFETY: `v` is exactly 32 readable bytes; the load is unaligned.
        let v = unsafe { std::arch::x86_64::_mm256_loadu_si256(v.as_ptr().cast()) };
        let low = _mm256_set1_epi8(0x0f);
        (
            _mm256_and_si256(v, low),
            _mm256_and_si256(_mm256_srli_epi16::<4>(v), low),
        )
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn load_i8(v: &[i8; BLOCK]) -> __m256i {
        // SAFETY: `v` is exactly 32 readable bytes; the load is unaligned.
        unsafe { std::arch::x86_64::_mm256_loadu_si256(v.as_ptr().cast()) }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    /// Baseline NEON: per 4-input group, four `smull` (8 byte products each, two outputs'
    /// worth) accumulated pairwise into 32-bit lanes by `sadalp`, so each of the four
    /// accumulators holds two partial sums of two outputs; one `addp` pair per block
    /// gives the 8 outputs' exact sums. The float steps are scalar's, lane by lane:
    /// `fmla` is the fused `mul_add`, `fcvt`/`scvtf` round to nearest like `as f32`.
    pub(super) mod neon {
        use std::arch::aarch64::{
            float32x4_t, int8x8_t, int16x8_t, int32x4_t, vaddq_f32, vandq_u8, vcvtq_f32_s32,
            vdup_n_s32, vdupq_n_f32, vdupq_n_s32, vdupq_n_u8, vfmaq_f32, vfmaq_n_f32, vget_high_s8,
            vget_low_s8, vld1q_f32, vld1q_s8, vld1q_u8, vmull_s8, vmulq_n_f32, vpadalq_s16,
            vpaddq_s32, vreinterpret_s8_s32, vreinterpretq_s8_u8, vshrq_n_u8, vst1q_f32, vsubq_s32,
        };

        use half::f16;

        use super::super::super::int8::{
            BLOCK, Bytes, GROUPS, Int8Matrix, Nibbles, PAIRS, PANEL, QuantRows, Weights,
        };

        /// [`super::super::panel_tile`] in this variant, row by row.
        ///
        /// # Safety
        /// The CPU must support NEON.
        #[target_feature(enable = "neon")]
        pub(in super::super) unsafe fn panel_tile(
            w: &Int8Matrix,
            panel: usize,
            acts: &QuantRows,
            n: usize,
            tile: &mut [f32],
        ) {
            for (r, dst) in tile.chunks_exact_mut(PANEL).take(n).enumerate() {
                dst.copy_from_slice(&match &w.w {
                    Weights::Bytes(b) => panel_row(w.cols, b, panel, acts, r),
                    Weights::Nibbles(nb) => panel_row_nib(w.cols, nb, panel, acts, r),
                });
            }
        }

        /// The 4 activations of a group, repeated twice (one for each output of a
        /// `smull` half).
        #[target_feature(enable = "neon")]
        #[inline]
        fn repeat(ag: &[i8; 4]) -> int8x8_t {
            vreinterpret_s8_s32(vdup_n_s32(i32::from_ne_bytes(ag.map(|x| x as u8))))
        }

        /// Adds one group's products (32 weights as two 16-byte halves: outputs 0-3 and
        /// 4-7, four inputs each) into the four pair accumulators.
        #[target_feature(enable = "neon")]
        #[inline]
        fn add_group(
            acc: &mut [int32x4_t; 4],
            lo: int8x8_t,
            hi: int8x8_t,
            w: [int8x8_t; 2],
            a: int8x8_t,
        ) {
            let products: [int16x8_t; 4] = [
                vmull_s8(lo, a),
                vmull_s8(hi, a),
                vmull_s8(w[0], a),
                vmull_s8(w[1], a),
            ];
            for (acc, p) in acc.iter_mut().zip(products) {
                *acc = vpadalq_s16(*acc, p);
            }
        }

        /// The 8 outputs' exact sums from the four pair accumulators.
        #[target_feature(enable = "neon")]
        #[inline]
        fn finish(acc: [int32x4_t; 4]) -> [int32x4_t; 2] {
            [vpaddq_s32(acc[0], acc[1]), vpaddq_s32(acc[2], acc[3])]
        }

        #[target_feature(enable = "neon")]
        #[inline]
        fn load_f32(v: &[f32]) -> [float32x4_t; 2] {
            assert!(v.len() >= PANEL);
            // SAFETY: `v` holds at least 8 readable f32s (checked above); loads are unaligned.
            unsafe { [vld1q_f32(v.as_ptr()), vld1q_f32(v.as_ptr().add(4))] }
        }

        /// 8 f16s (bits) widened to f32: exact.
        #[target_feature(enable = "neon")]
        #[inline]
        fn load_f16(v: &[u16; PANEL]) -> [float32x4_t; 2] {
            let f = v.map(|b| f16::from_bits(b).to_f32());
            load_f32(&f)
        }

        /// `acc = fma(sums, d_w * d_a, acc)`, lane by lane.
        #[target_feature(enable = "neon")]
        #[inline]
        fn scale_add(
            acc: &mut [float32x4_t; 2],
            sums: [int32x4_t; 2],
            w_d: [float32x4_t; 2],
            a_d: f32,
        ) {
            for ((acc, s), d) in acc.iter_mut().zip(sums).zip(w_d) {
                *acc = vfmaq_f32(*acc, vcvtq_f32_s32(s), vmulq_n_f32(d, a_d));
            }
        }

        #[target_feature(enable = "neon")]
        #[inline]
        fn store(acc: [float32x4_t; 2], acc_m: [float32x4_t; 2]) -> [f32; PANEL] {
            let mut out = [0f32; PANEL];
            let (lo, hi) = out.split_at_mut(4);
            // SAFETY: `lo` and `hi` are 4 writable f32s each; stores are unaligned.
            unsafe {
                vst1q_f32(lo.as_mut_ptr(), vaddq_f32(acc[0], acc_m[0]));
                vst1q_f32(hi.as_mut_ptr(), vaddq_f32(acc[1], acc_m[1]));
            }
            out
        }

        /// One group of byte weights split into its four 8-byte quarters.
        #[target_feature(enable = "neon")]
        #[inline]
        fn quarters(wg: &[i8; BLOCK]) -> [int8x8_t; 4] {
            // SAFETY: `wg` is 32 readable bytes; the two 16-byte loads are unaligned.
            let (a, b) = unsafe { (vld1q_s8(wg.as_ptr()), vld1q_s8(wg.as_ptr().add(16))) };
            [
                vget_low_s8(a),
                vget_high_s8(a),
                vget_low_s8(b),
                vget_high_s8(b),
            ]
        }

        /// See `Int8Matrix::panel_row_scalar`: the same integer sums, the same float steps.
        #[target_feature(enable = "neon")]
        fn panel_row(
            cols: usize,
            w: &Bytes,
            panel: usize,
            acts: &QuantRows,
            r: usize,
        ) -> [f32; PANEL] {
            let bpr = cols / BLOCK;
            let blocks = w.q[panel * bpr * GROUPS..(panel + 1) * bpr * GROUPS]
                .as_chunks::<GROUPS>()
                .0;
            let a = acts.q[r * cols..(r + 1) * cols].as_chunks::<4>().0;
            let (a_d, a_sum) = (
                &acts.d[r * bpr..(r + 1) * bpr],
                &acts.sum[r * bpr..(r + 1) * bpr],
            );
            let w_d = &w.d[panel * bpr * PANEL..(panel + 1) * bpr * PANEL];
            let mut acc = [vdupq_n_f32(0.0); 2];
            for (kb, wb) in blocks.iter().enumerate() {
                let mut sums = [vdupq_n_s32(0); 4];
                for (wg, ag) in wb.iter().zip(&a[kb * GROUPS..(kb + 1) * GROUPS]) {
                    let [q0, q1, q2, q3] = quarters(wg);
                    add_group(&mut sums, q0, q1, [q2, q3], repeat(ag));
                }
                scale_add(
                    &mut acc,
                    finish(sums),
                    load_f32(&w_d[kb * PANEL..]),
                    a_d[kb],
                );
            }
            let mut acc_m = [vdupq_n_f32(0.0); 2];
            if let Some(m) = &w.m {
                let m = &m[panel * bpr * PANEL..(panel + 1) * bpr * PANEL];
                for (kb, &s) in a_sum.iter().enumerate() {
                    let wm = load_f32(&m[kb * PANEL..]);
                    for (acc, wm) in acc_m.iter_mut().zip(wm) {
                        *acc = vfmaq_n_f32(*acc, wm, s);
                    }
                }
            }
            store(acc, acc_m)
        }

        /// [`panel_row`] on nibbles, unpacked in registers (`and`, `ushr`); a Q4_0 block's
        /// offset comes off the exact 32-bit sums.
        #[target_feature(enable = "neon")]
        fn panel_row_nib(
            cols: usize,
            w: &Nibbles,
            panel: usize,
            acts: &QuantRows,
            r: usize,
        ) -> [f32; PANEL] {
            let bpr = cols / BLOCK;
            let blocks = w.q[panel * bpr * PAIRS..(panel + 1) * bpr * PAIRS]
                .as_chunks::<PAIRS>()
                .0;
            let a = acts.q[r * cols..(r + 1) * cols].as_chunks::<4>().0;
            let (a_d, a_sum, a_isum) = (
                &acts.d[r * bpr..(r + 1) * bpr],
                &acts.sum[r * bpr..(r + 1) * bpr],
                &acts.isum[r * bpr..(r + 1) * bpr],
            );
            let low = vdupq_n_u8(0x0f);
            let mut acc = [vdupq_n_f32(0.0); 2];
            for (kb, wb) in blocks.iter().enumerate() {
                let mut sums = [vdupq_n_s32(0); 4];
                let ab = &a[kb * GROUPS..(kb + 1) * GROUPS];
                for (k, pair) in wb.iter().enumerate() {
                    // SAFETY: `pair` is 32 readable bytes; the two loads are unaligned.
                    let (x, y) =
                        unsafe { (vld1q_u8(pair.as_ptr()), vld1q_u8(pair.as_ptr().add(16))) };
                    for (g, (x, y)) in [
                        (vandq_u8(x, low), vandq_u8(y, low)),
                        (vshrq_n_u8::<4>(x), vshrq_n_u8::<4>(y)),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        let (x, y) = (vreinterpretq_s8_u8(x), vreinterpretq_s8_u8(y));
                        add_group(
                            &mut sums,
                            vget_low_s8(x),
                            vget_high_s8(x),
                            [vget_low_s8(y), vget_high_s8(y)],
                            repeat(&ab[2 * k + g]),
                        );
                    }
                }
                let mut s = finish(sums);
                if w.offset8 {
                    let off = vdupq_n_s32(8 * a_isum[kb]);
                    s = [vsubq_s32(s[0], off), vsubq_s32(s[1], off)];
                }
                scale_add(&mut acc, s, load_f16(&w.d[panel * bpr + kb]), a_d[kb]);
            }
            let mut acc_m = [vdupq_n_f32(0.0); 2];
            if let Some(m) = &w.m {
                for (kb, &s) in a_sum.iter().enumerate() {
                    let wm = load_f16(&m[panel * bpr + kb]);
                    for (acc, wm) in acc_m.iter_mut().zip(wm) {
                        *acc = vfmaq_n_f32(*acc, wm, s);
                    }
                }
            }
            store(acc, acc_m)
        }
    }
}
