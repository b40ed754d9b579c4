//! The AVX2 + FMA variant of the 8-bit panel kernel ([`super::int8`] holds the scalar
//! reference beside it; a test checks the two agree bit for bit).

use safe_arch::{
    abs_i8_m256i, add_i16_m256i, add_i32_m256i, add_m256, convert_to_m256_from_i32_m256i,
    fused_mul_add_m256, m256, m256i, mul_i16_horizontal_add_m256i, mul_m256,
    mul_u8i8_add_horizontal_saturating_m256i, set_splat_i16_m256i, set_splat_i32_m256i,
    set_splat_m256, sign_apply_i8_m256i, zeroed_m256, zeroed_m256i,
};

use super::int8::{BLOCK, GROUPS, Int8Matrix, PANEL, QuantRows};

/// See [`Int8Matrix::panel_row_scalar`] for the arithmetic. Each 4-input group of the
/// activation row is broadcast and multiplied into all 8 weight rows at once, so a
/// block's 8 sums build up lane by lane with no horizontal reduction.
/// `NONNEG`: weights are all >= 0 (no sign transfer); `NARROW`: |weights| <= 16, the
/// block sums in 16-bit lanes; `MIN`: add the minimums' term.
#[inline(always)]
pub(super) fn panel_row<const NONNEG: bool, const NARROW: bool, const MIN: bool>(
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
    let ones = set_splat_i16_m256i(1);
    let (mut acc, mut acc_m) = (zeroed_m256(), zeroed_m256());
    for (kb, (wg, ag)) in groups
        .chunks_exact(GROUPS)
        .zip(a_groups.chunks_exact(GROUPS))
        .enumerate()
    {
        // Pairwise products of 4-input groups: lane j of the i16 result holds two of
        // row j/2's products.
        let pairs = |g: usize| {
            let a = set_splat_i32_m256i(i32::from_le_bytes(ag[g].map(|v| v as u8)));
            let wv = m256i::from(wg[g]);
            if NONNEG {
                mul_u8i8_add_horizontal_saturating_m256i(wv, a)
            } else {
                mul_u8i8_add_horizontal_saturating_m256i(
                    abs_i8_m256i(wv),
                    sign_apply_i8_m256i(a, wv),
                )
            }
        };
        let sums = if NARROW {
            let mut s = zeroed_m256i();
            for g in 0..GROUPS {
                s = add_i16_m256i(s, pairs(g));
            }
            mul_i16_horizontal_add_m256i(s, ones)
        } else {
            let mut s = zeroed_m256i();
            for g in 0..GROUPS {
                s = add_i32_m256i(s, mul_i16_horizontal_add_m256i(pairs(g), ones));
            }
            s
        };
        let scale = mul_m256(m256::from(w_d[kb]), set_splat_m256(a_d[kb]));
        acc = fused_mul_add_m256(convert_to_m256_from_i32_m256i(sums), scale, acc);
    }
    // The minimums' term in its own loop: folded into the one above it cost a quarter
    // of the kernel's speed (a second accumulator chain and its loads in the hot loop).
    if MIN && let Some(wm) = w_m {
        for (wm, &s) in wm.iter().zip(a_sum) {
            acc_m = fused_mul_add_m256(m256::from(*wm), set_splat_m256(s), acc_m);
        }
    }
    add_m256(acc, acc_m).to_array()
}
