//! What a sampling call asks for: [`SampleParams`] and its [`StopCondition`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// When a sampled continuation stops (besides EOS, which always stops it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopCondition {
    /// Stop as soon as the generated text contains any of these strings. The matched
    /// string is kept in the continuation's text, which runs to the end of the token
    /// that completed it (a token is never split, so the text is exactly what the
    /// continuation's state holds: a `\n` stop matched inside a `\n\n` token keeps both).
    pub stop_strings: Vec<String>,
    /// Stop after this many generated tokens.
    pub max_tokens: usize,
    /// Track each token's confidence (DeepConf) and, with a threshold, stop a row whose
    /// recent tokens fall under it. None (the default): nothing tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<ConfidenceStop>,
}

/// DeepConf's token confidence ("Deep Think with Confidence", Fu et al. 2025): at each
/// generated token, the negative mean log-probability of the `top_k` most likely tokens
/// under the model's unmodified distribution. A peaked distribution has one likely token
/// and very unlikely alternatives, so its confidence is high; a flat one scores low.
/// The group confidence is the mean token confidence over a sliding window of `window`
/// tokens; with a `threshold`, a row stops (as [`crate::FinishReason::LowConfidence`])
/// as soon as a full window's group confidence falls under it, between two decode steps,
/// without disturbing the other rows of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceStop {
    /// Tokens whose log-probabilities are averaged at each position (DeepConf: 20).
    pub top_k: usize,
    /// Tokens per group (the sliding window).
    pub window: usize,
    /// Stop under this group confidence (None: only track).
    pub threshold: Option<f32>,
}

impl ConfidenceStop {
    /// Whether a row whose token confidences so far are `confidences` stops now: a
    /// threshold is set, at least one full window was generated, and the last window's
    /// mean is under the threshold. Every engine decides with this one function.
    pub fn should_stop(&self, confidences: &[f32]) -> bool {
        let Some(threshold) = self.threshold else {
            return false;
        };
        let w = self.window.max(1);
        if confidences.len() < w {
            return false;
        }
        let tail = &confidences[confidences.len() - w..];
        let mean = tail.iter().map(|&c| f64::from(c)).sum::<f64>() / w as f64;
        mean < f64::from(threshold)
    }
}

/// The `top_k` largest log-probabilities (natural log, temperature 1) of one position,
/// largest first, from its logits (all of them when the vocabulary is smaller).
/// Non-finite logits count as impossible tokens; no finite logit gives an empty list.
pub fn top_logprobs(logits: &[f32], top_k: usize) -> Vec<f32> {
    let finite = || logits.iter().copied().filter(|l| l.is_finite());
    let Some(max) = finite().reduce(f32::max) else {
        return Vec::new();
    };
    let lse = f64::from(max) + finite().map(|l| f64::from(l - max).exp()).sum::<f64>().ln();
    // The k largest logits in one pass, kept sorted largest first in a k-long buffer: a
    // logit under the buffer's smallest (nearly all of a 49k vocabulary) costs one
    // comparison. (Before: every finite logit copied, ~200 KB a token for SmolLM2, then a
    // partial selection.)
    let k = top_k.max(1);
    let mut top: Vec<f32> = Vec::with_capacity(k + 1);
    for l in finite() {
        if top.len() == k && top[k - 1] >= l {
            continue;
        }
        let at = top.partition_point(|&t| t >= l);
        top.insert(at, l);
        top.truncate(k);
    }
    top.iter().map(|&l| (f64::from(l) - lse) as f32).collect()
}

/// DeepConf's token confidence from a position's top log-probabilities: their negative
/// mean (0 for none).
pub fn confidence_of(top_logprobs: &[f32]) -> f32 {
    if top_logprobs.is_empty() {
        return 0.0;
    }
    let sum: f64 = top_logprobs.iter().map(|&l| f64::from(l)).sum();
    (-sum / top_logprobs.len() as f64) as f32
}

/// DeepConf's confidence of one position from its logits: the negative mean
/// log-probability of the `top_k` most likely tokens ([`top_logprobs`], [`confidence_of`]).
pub fn token_confidence(logits: &[f32], top_k: usize) -> f32 {
    confidence_of(&top_logprobs(logits, top_k))
}

/// Marco-o1's token confidence: the chosen token's probability relative to the `k` most
/// likely tokens at its position, `exp(logprob) / sum(exp(top[..k]))` (Marco-o1 uses
/// k = 5). 1 when no alternatives are known.
pub fn relative_confidence(logprob: f32, top_logprobs: &[f32], k: usize) -> f32 {
    let top = &top_logprobs[..k.min(top_logprobs.len())];
    if top.is_empty() {
        return 1.0;
    }
    let max = top.iter().copied().fold(logprob, f32::max);
    let mass: f64 = top.iter().map(|&l| f64::from(l - max).exp()).sum();
    // A chosen token outside the top k still counts against them. Inside, it is one of
    // them: its log-probability may come from another computation (the sampler's) and
    // differ in the last bits, so membership is by value with a tolerance.
    let chosen = f64::from(logprob - max).exp();
    let in_top = top.last().is_some_and(|&l| logprob >= l - 1e-4);
    let denom = if in_top { mass } else { mass + chosen };
    (chosen / denom).clamp(0.0, 1.0) as f32
}

impl StopCondition {
    /// Stop at a newline or after `max_tokens`.
    pub fn newline(max_tokens: usize) -> Self {
        Self {
            stop_strings: vec!["\n".into()],
            max_tokens,
            confidence: None,
        }
    }
    /// Stop at a blank line or after `max_tokens`.
    pub fn blank_line(max_tokens: usize) -> Self {
        Self {
            stop_strings: vec!["\n\n".into()],
            max_tokens,
            confidence: None,
        }
    }
    /// Stop only at EOS or after `max_tokens` (fixed-size chunks).
    pub fn tokens(max_tokens: usize) -> Self {
        Self {
            stop_strings: Vec::new(),
            max_tokens,
            confidence: None,
        }
    }
}

/// Sampling settings for one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleParams {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (None: all).
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the smallest set with this much mass (None: all).
    pub top_p: Option<f32>,
    /// When each continuation stops.
    pub stop: StopCondition,
    /// Seed of this call's random stream: the same seed, state and params give the same
    /// continuations.
    pub seed: u64,
}

impl Default for SampleParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: None,
            top_p: Some(0.95),
            stop: StopCondition::newline(128),
            seed: 0,
        }
    }
}

impl SampleParams {
    /// Greedy decoding with the given stop condition.
    pub fn greedy(stop: StopCondition) -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            stop,
            seed: 0,
        }
    }

    /// Checks ranges: temperature >= 0 and finite, top_k >= 1, top_p in (0, 1],
    /// max_tokens >= 1.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::InvalidParams(format!(
                "temperature must be finite and >= 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidParams("top_k must be >= 1".into()));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::InvalidParams(format!(
                "top_p must be in (0, 1], got {p}"
            )));
        }
        if self.stop.max_tokens == 0 {
            return Err(Error::InvalidParams("max_tokens must be >= 1".into()));
        }
        if let Some(c) = &self.stop.confidence {
            if c.top_k == 0 || c.window == 0 {
                return Err(Error::InvalidParams(
                    "confidence top_k and window must be >= 1".into(),
                ));
            }
            if c.threshold.is_some_and(|t| !t.is_finite()) {
                return Err(Error::InvalidParams(
                    "confidence threshold must be finite".into(),
                ));
            }
        }
        if self.stop.stop_strings.iter().any(|s| s.is_empty()) {
            return Err(Error::InvalidParams(
                "stop strings must not be empty".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass selection keeps exactly the values a full sort would, largest first,
    /// ties and infinities included.
    #[test]
    fn top_logprobs_equal_a_full_sort() {
        let mut s = 12345u32;
        for case in 0..200 {
            let n = 1 + case % 97;
            let logits: Vec<f32> = (0..n)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    match (s % 23, i % 5) {
                        (0, _) => f32::NEG_INFINITY,
                        (1, _) => f32::NAN,
                        // Few distinct values: many ties.
                        (_, 0) => (s % 4) as f32,
                        _ => (s % 2001) as f32 / 100.0 - 10.0,
                    }
                })
                .collect();
            for k in [1, 2, 5, 20, 200] {
                let mut all: Vec<f32> = logits.iter().copied().filter(|l| l.is_finite()).collect();
                all.sort_by(|a, b| b.total_cmp(a));
                all.truncate(k);
                let got = top_logprobs(&logits, k);
                assert_eq!(got.len(), all.len(), "case {case} k {k}");
                let shift: Vec<f32> = got.iter().zip(&all).map(|(g, a)| a - g).collect();
                // Each is its logit minus one shared log-sum-exp.
                assert!(
                    shift.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-4),
                    "case {case} k {k}: {got:?} vs {all:?}"
                );
                assert!(got.windows(2).all(|w| w[0] >= w[1]));
            }
        }
    }

    #[test]
    fn token_confidence_is_the_negative_mean_top_k_logprob() {
        // Two tokens of probability 1/2 each: -ln(1/2) = ln 2 for k = 1 or 2.
        let ln2 = std::f32::consts::LN_2;
        assert!((token_confidence(&[3.0, 3.0], 1) - ln2).abs() < 1e-6);
        assert!((token_confidence(&[3.0, 3.0], 20) - ln2).abs() < 1e-6);
        // A peaked distribution is more confident than a flat one at the same k.
        let peaked = token_confidence(&[10.0, 0.0, 0.0, 0.0], 3);
        let flat = token_confidence(&[1.0, 1.0, 1.0, 1.0], 3);
        assert!(peaked > flat, "{peaked} vs {flat}");
        // By hand: probabilities softmax([2, 1, 0]), top 2.
        let z = (2f64.exp() + 1f64.exp() + 1.0).ln();
        let want = -((2.0 - z) + (1.0 - z)) / 2.0;
        assert!((f64::from(token_confidence(&[0.0, 2.0, 1.0], 2)) - want).abs() < 1e-6);
        // Non-finite logits are impossible tokens; nothing finite gives 0.
        assert_eq!(
            token_confidence(&[f32::NEG_INFINITY, 3.0, 3.0, f32::NAN], 2),
            token_confidence(&[3.0, 3.0], 2)
        );
        assert_eq!(token_confidence(&[f32::NAN], 5), 0.0);
        assert_eq!(top_logprobs(&[0.0, 2.0, 1.0], 5).len(), 3);
        let t = top_logprobs(&[0.0, 2.0, 1.0], 2);
        assert!(t[0] > t[1] && t.iter().all(|l| *l < 0.0));
    }

    #[test]
    fn relative_confidence_is_the_share_among_the_top_k() {
        // Top 2 of probabilities (0.5, 0.3, 0.2): the first holds 0.5 / 0.8.
        let top = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        assert!((relative_confidence(top[0], &top, 2) - 0.625).abs() < 1e-6);
        assert!((relative_confidence(top[1], &top, 3) - 0.3).abs() < 1e-6);
        // A token outside the top 2 is compared with them: 0.2 / (0.5 + 0.3 + 0.2).
        assert!((relative_confidence(top[2], &top, 2) - 0.2).abs() < 1e-6);
        assert_eq!(relative_confidence(-3.0, &[], 5), 1.0);
        // The sampler's log-probability of the top token, a few ulps off, is still it.
        assert!((relative_confidence(top[0] + 1e-7, &top, 2) - 0.625).abs() < 1e-5);
    }

    #[test]
    fn a_confidence_stop_needs_a_full_window_under_the_threshold() {
        let c = ConfidenceStop {
            top_k: 5,
            window: 3,
            threshold: Some(1.0),
        };
        assert!(!c.should_stop(&[0.1, 0.1]));
        assert!(c.should_stop(&[0.1, 0.1, 0.1]));
        assert!(!c.should_stop(&[0.1, 0.1, 2.0, 0.5, 0.6]));
        assert!(c.should_stop(&[2.0, 0.5, 0.6, 0.7]));
        let track = ConfidenceStop {
            threshold: None,
            ..c
        };
        assert!(!track.should_stop(&[0.0; 10]));
    }
}
