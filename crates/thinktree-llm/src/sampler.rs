//! Choosing the next token from logits, and spotting where a continuation stops.
//!
//! Log-probabilities are always taken from the model's untempered distribution, so scorers
//! see the same numbers whatever temperature a search uses to explore.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use thinktree_engine::SampleParams;

use crate::kernels::exp::{self, exp_in_place};

/// Tokens whose tempered probability is below this fraction of the top token's are
/// left out of nucleus sorting: together they hold at most vocab x 1e-9 of the mass, far
/// below any top-p a search would use, and skipping them avoids sorting the whole vocabulary.
const NUCLEUS_FLOOR: f32 = 1e-9;

/// The random stream of row `row` of a call seeded with `seed`: rows are independent, and
/// the same seed always gives the same rows.
pub fn row_rng(seed: u64, row: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(row as u64);
    rng
}

/// `log(sum(exp(logits)))`, computed stably.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = exp::max(logits);
    if !max.is_finite() {
        return max;
    }
    let sum = exp_in_place(&mut logits.to_vec(), max, 1.0);
    max + sum.ln()
}

/// Natural-log probability of every token (the untempered log-softmax).
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&x| x - lse).collect()
}

fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// Picks the next token from one row of logits: greedy when `temperature == 0`, otherwise
/// tempered sampling restricted by top-k and top-p. Returns the token and its untempered
/// log-probability. `logits` must be non-empty.
pub fn sample_token(logits: &[f32], params: &SampleParams, rng: &mut impl Rng) -> (u32, f32) {
    let lse = log_sum_exp(logits);
    let chosen = if params.temperature <= 0.0 || logits.len() <= 1 {
        argmax(logits)
    } else {
        sample_tempered(logits, params, rng)
    };
    (chosen as u32, logits[chosen] - lse)
}

fn sample_tempered(logits: &[f32], params: &SampleParams, rng: &mut impl Rng) -> usize {
    let inv_t = 1.0 / params.temperature;
    let max = exp::max(logits);
    let truncate =
        params.top_k.is_some_and(|k| k < logits.len()) || params.top_p.is_some_and(|p| p < 1.0);
    // Every token's tempered weight in one vectorized pass (before: two scalar `exp`
    // passes over the vocabulary, one for the total and one for the draw or the nucleus).
    let mut weights = logits.to_vec();
    let total = exp_in_place(&mut weights, max, inv_t);
    if !truncate {
        // Plain tempered sampling: the total, then a pass to find the draw.
        let mut r = rng.random::<f32>() * total;
        for (i, &p) in weights.iter().enumerate() {
            r -= p;
            if r <= 0.0 {
                return i;
            }
        }
        return argmax(logits);
    }
    let mut cands: Vec<(usize, f32)> = weights
        .into_iter()
        .enumerate()
        .filter(|&(_, p)| p >= NUCLEUS_FLOOR)
        .collect();
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if let Some(k) = params.top_k.filter(|&k| k < cands.len()) {
        // Only the top k matter: select them in linear time, then sort those.
        let k = k.max(1);
        cands.select_nth_unstable_by(k - 1, order);
        cands.truncate(k);
        cands.sort_unstable_by(order);
    } else if cands.len() > LARGE_NUCLEUS {
        if let Some(p) = params.top_p {
            nucleus_of_many(&mut cands, p, order);
            return draw(&cands, rng).unwrap_or_else(|| argmax(logits));
        }
        cands.sort_unstable_by(order);
    } else {
        cands.sort_unstable_by(order);
    }
    if let Some(p) = params.top_p {
        let total: f32 = cands.iter().map(|c| c.1).sum();
        let keep = nucleus_len(&cands, p * total).unwrap_or(cands.len());
        cands.truncate(keep.max(1));
    }
    draw(&cands, rng).unwrap_or_else(|| argmax(logits))
}

/// Above this many candidates a nucleus is found without sorting them all: a flat
/// distribution over Gemma 3's 262k vocabulary left ~100k tokens above
/// [`NUCLEUS_FLOOR`], and sorting them was 18% of a batch-8 decode step (perf).
/// Below it the full sort is kept, so SmolLM2's draws stay exactly what they were.
const LARGE_NUCLEUS: usize = 16_384;

/// How many of the sorted `cands` it takes to reach `mass`; None if they never do.
fn nucleus_len(cands: &[(usize, f32)], mass: f32) -> Option<usize> {
    let mut acc = 0.0;
    cands
        .iter()
        .position(|c| {
            acc += c.1;
            acc >= mass
        })
        .map(|i| i + 1)
}

/// Truncates `cands` to its sorted top-`p` nucleus: the best 256, 1024, ... are selected
/// in linear time and sorted until they hold the mass, so only the nucleus is sorted.
fn nucleus_of_many(
    cands: &mut Vec<(usize, f32)>,
    p: f32,
    order: impl Fn(&(usize, f32), &(usize, f32)) -> std::cmp::Ordering + Copy,
) {
    let mass = p * cands.iter().map(|c| c.1).sum::<f32>();
    let mut m = 256;
    while m < cands.len() {
        cands.select_nth_unstable_by(m - 1, order);
        cands[..m].sort_unstable_by(order);
        if let Some(keep) = nucleus_len(&cands[..m], mass) {
            cands.truncate(keep.max(1));
            return;
        }
        m *= 4;
    }
    cands.sort_unstable_by(order);
    let keep = nucleus_len(cands, mass).unwrap_or(cands.len());
    cands.truncate(keep.max(1));
}

/// A draw from `cands` in proportion to their weights.
fn draw(cands: &[(usize, f32)], rng: &mut impl Rng) -> Option<usize> {
    let total: f32 = cands.iter().map(|c| c.1).sum();
    let mut r = rng.random::<f32>() * total;
    for &(i, w) in cands {
        r -= w;
        if r <= 0.0 {
            return Some(i);
        }
    }
    cands.first().map(|c| c.0)
}

/// The earliest point where `text` contains one of `stops`: the byte offset just past the
/// match and the stop string. Ties go to the longer string, so `"\n\n"` beats `"\n"`.
pub fn find_stop<'a>(text: &str, stops: &'a [String]) -> Option<(usize, &'a str)> {
    stops
        .iter()
        .filter_map(|s| {
            text.find(s.as_str())
                .map(|pos| (pos + s.len(), pos, s.as_str()))
        })
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.len().cmp(&a.2.len())))
        .map(|(end, _, s)| (end, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use thinktree_engine::StopCondition;

    fn params(t: f32, k: Option<usize>, p: Option<f32>) -> SampleParams {
        SampleParams {
            temperature: t,
            top_k: k,
            top_p: p,
            stop: StopCondition::tokens(4),
            seed: 0,
        }
    }

    #[test]
    fn greedy_takes_argmax_and_reports_untempered_logprob() {
        let logits = [0.0, 3.0, 1.0];
        let (t, lp) = sample_token(&logits, &params(0.0, None, None), &mut row_rng(0, 0));
        assert_eq!(t, 1);
        let expect = 3.0 - (1.0f32 + 3f32.exp() + 1f32.exp()).ln();
        assert!((lp - expect).abs() < 1e-6);
    }

    /// The selection-based nucleus of a large flat distribution is exactly the sorted
    /// prefix a full sort finds, for nuclei small and large.
    #[test]
    fn nucleus_of_many_equals_the_full_sort() {
        use rand::Rng;
        let mut rng = row_rng(7, 0);
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        for (n, p, spread) in [
            (40_000, 0.95, 1.0),
            (40_000, 0.3, 8.0),
            (20_000, 0.999, 0.1),
        ] {
            let cands: Vec<(usize, f32)> = (0..n)
                .map(|i| (i, (rng.random::<f32>() * spread).exp()))
                .collect();
            let mass = p * cands.iter().map(|c| c.1).sum::<f32>();
            let mut full = cands.clone();
            full.sort_unstable_by(order);
            let keep = nucleus_len(&full, mass).unwrap_or(n);
            full.truncate(keep);
            let mut fast = cands;
            nucleus_of_many(&mut fast, p, order);
            assert_eq!(fast, full, "n {n}, p {p}");
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.5, 0.1, 2.0, 1.9];
        let mut rng = row_rng(7, 3);
        for _ in 0..50 {
            assert_eq!(
                sample_token(&logits, &params(1.5, Some(1), None), &mut rng).0,
                2
            );
        }
    }

    #[test]
    fn top_p_excludes_tail() {
        // Token 0 holds ~98% of the mass; p = 0.5 keeps it alone.
        let logits = [10.0, 6.0, 0.0, 0.0];
        let mut rng = row_rng(1, 0);
        for _ in 0..100 {
            assert_eq!(
                sample_token(&logits, &params(1.0, None, Some(0.5)), &mut rng).0,
                0
            );
        }
    }

    #[test]
    fn sampling_is_reproducible_and_rows_differ() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = |seed, row| {
            let mut rng = row_rng(seed, row);
            (0..20)
                .map(|_| sample_token(&logits, &params(1.0, None, Some(0.95)), &mut rng).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3, 1), draw(3, 1));
        assert_ne!(draw(3, 1), draw(3, 2));
    }

    #[test]
    fn sampled_frequencies_follow_the_distribution() {
        let logits = [0.0f32, 1f32.ln(), 2f32.ln()]; // probabilities 1/4, 1/4, 1/2
        let mut rng = row_rng(11, 0);
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[sample_token(&logits, &params(1.0, None, None), &mut rng).0 as usize] += 1;
        }
        assert!((counts[2] as f32 / 4000.0 - 0.5).abs() < 0.04, "{counts:?}");
    }

    #[test]
    fn stop_is_earliest_and_prefers_longer_on_tie() {
        let stops = vec!["\n".to_string(), "\n\n".to_string(), "END".to_string()];
        assert_eq!(find_stop("ab\n\ncd", &stops), Some((4, "\n\n")));
        assert_eq!(find_stop("x END\n", &stops), Some((5, "END")));
        assert_eq!(find_stop("nothing", &stops), None);
    }
}
