//! DeepConf ("Deep Think with Confidence", Fu et al. 2025): sample chains while the
//! engine records each token's confidence, then vote only with the confident ones.
//!
//! Token confidence is the negative mean log-probability of the `top_k` most likely
//! tokens at each position ([`thinktree_engine::token_confidence`]); a group is a sliding
//! window of `window` tokens; a trace is summarised by one [`TraceMeasure`].
//!
//! - Offline ([`crate::Method::DeepConf`]): sample `samples` chains, keep the most
//!   confident `keep` share of them (DeepConf-low keeps 10 %, DeepConf-high 90 %), and
//!   take a vote weighted by confidence.
//! - Online ([`crate::Method::DeepConfOnline`]): sample `warmup` chains, set the stop
//!   threshold at the confidence (lowest group) that `keep` of them reach, then sample the
//!   rest with that threshold in the engine: a chain whose current group confidence falls
//!   under it stops between two decode steps (its tokens are billed, its answer is not
//!   voted), and the problem stops once the weighted vote's leader holds `consensus` of
//!   the weight. Its vote: the warm-up traces at or above the threshold and every later
//!   trace that finished.

use serde::{Deserialize, Serialize};
use thinktree_engine::{ConfidenceStop, Engine, FinishReason};

use crate::aggregate::{Aggregation, Finished};
use crate::answer::answers_match;
use crate::error::{Error, Result};
use crate::node::Node;

use super::{Outcome, Solve, chains_root, finished, push_chain};

/// How one trace's token confidences become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceMeasure {
    /// The mean token confidence of the whole trace.
    Mean,
    /// The lowest group confidence (the least confident window).
    Lowest,
    /// The mean of the lowest 10 % of group confidences.
    Bottom10,
    /// The mean token confidence of the last `tail` tokens.
    Tail,
}

/// DeepConf's settings ([`crate::SolveConfig::deepconf`]).
///
/// ```
/// use thinktree_engine::Engine;
/// use thinktree_reason::{Method, SolveConfig, TraceMeasure, solve};
///
/// /// DeepConf-low online on any engine that reports token confidences (the in-process
/// /// `thinktree_llm::LocalEngine`; `gsm8k --methods deepconf-online --deepconf-keep 0.1`).
/// fn confident_vote<E: Engine>(engine: &E, q: &str) -> thinktree_reason::Result<Option<String>> {
///     let mut cfg = SolveConfig::new(Method::DeepConfOnline);
///     cfg.token_budget = 1536;
///     cfg.deepconf.keep = 0.1; // threshold: the 90th percentile of the warm-up
///     cfg.deepconf.warmup = 4;
///     let sol = solve(engine, q, &cfg)?;
///     Ok(sol.answer)
/// }
///
/// // Offline, DeepConf-high with the tail measure:
/// let mut cfg = SolveConfig::new(Method::DeepConf);
/// cfg.deepconf.keep = 0.9;
/// cfg.deepconf.measure = TraceMeasure::Tail;
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeepConf {
    /// Tokens whose log-probabilities make one token's confidence (the paper: 20).
    pub top_k: usize,
    /// Tokens per group. The paper's 2,048 fits its long traces; grade-school chains of a
    /// small model are 100-300 tokens, so a group here is a short window.
    pub window: usize,
    /// Tokens of the tail measure.
    pub tail: usize,
    /// The offline filter's measure (the online method always thresholds the lowest group,
    /// as the paper does).
    pub measure: TraceMeasure,
    /// Share of traces kept: the offline filter keeps the most confident `keep` of them;
    /// online, the threshold is the confidence that `keep` of the warm-up traces reach.
    /// 0.1 is the paper's DeepConf-low, 0.9 its DeepConf-high.
    pub keep: f64,
    /// Online: traces sampled without a threshold to set it.
    pub warmup: usize,
    /// Online: stop sampling once the vote leader holds this share of the weight (None:
    /// sample every chain).
    pub consensus: Option<f64>,
}

impl Default for DeepConf {
    fn default() -> Self {
        Self {
            top_k: 20,
            window: 32,
            tail: 64,
            measure: TraceMeasure::Bottom10,
            keep: 0.9,
            warmup: 4,
            consensus: Some(0.95),
        }
    }
}

impl DeepConf {
    /// Checks ranges; a bad value is an [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if self.top_k == 0 || self.window == 0 || self.tail == 0 || self.warmup == 0 {
            return Err(Error::InvalidConfig(
                "deepconf top_k, window, tail and warmup must be >= 1".into(),
            ));
        }
        if !(self.keep > 0.0 && self.keep <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "deepconf keep must be in (0, 1], got {}",
                self.keep
            )));
        }
        if let Some(c) = self.consensus
            && !(c > 0.0 && c <= 1.0)
        {
            return Err(Error::InvalidConfig(format!(
                "deepconf consensus must be in (0, 1], got {c}"
            )));
        }
        Ok(())
    }

    /// The group confidences of a trace: the mean of every `window` consecutive token
    /// confidences (one group of all tokens when the trace is shorter).
    pub fn groups(&self, confidences: &[f32]) -> Vec<f64> {
        let w = self.window.max(1);
        if confidences.is_empty() {
            return Vec::new();
        }
        if confidences.len() <= w {
            return vec![mean(confidences)];
        }
        confidences.windows(w).map(mean).collect()
    }

    /// One trace's confidence under `measure` (0 for an empty trace).
    pub fn trace(&self, confidences: &[f32], measure: TraceMeasure) -> f64 {
        if confidences.is_empty() {
            return 0.0;
        }
        match measure {
            TraceMeasure::Mean => mean(confidences),
            TraceMeasure::Tail => mean(&confidences[confidences.len().saturating_sub(self.tail)..]),
            TraceMeasure::Lowest => self
                .groups(confidences)
                .into_iter()
                .fold(f64::INFINITY, f64::min),
            TraceMeasure::Bottom10 => {
                let mut g = self.groups(confidences);
                g.sort_by(f64::total_cmp);
                let n = g.len().div_ceil(10).max(1);
                g[..n].iter().sum::<f64>() / n as f64
            }
        }
    }
}

fn mean(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len().max(1) as f64
}

/// One sampled trace: its node, its confidence and whether the engine stopped it.
struct Trace<S> {
    node: Node<S>,
    confidence: f64,
    stopped: bool,
}

/// `wave` whole chains from the root with confidences tracked (and, with `threshold`,
/// stopped in the engine).
fn wave<E: Engine>(
    run: &mut Solve<'_, E>,
    wave: usize,
    threshold: Option<f32>,
    measure: TraceMeasure,
) -> Result<Vec<Trace<E::State>>> {
    let cfg = run.cfg;
    let dc = &cfg.deepconf;
    let seed = run.meter.next_seed();
    let mut params = run.chain_params(wave, cfg.max_steps, cfg.temperature, seed);
    params.stop.confidence = Some(ConfidenceStop {
        top_k: dc.top_k,
        window: dc.window,
        threshold,
    });
    let (conts, usage) = run.engine.sample(&run.root.state, wave, &params)?;
    run.meter.add(usage);
    Ok(conts
        .into_iter()
        .map(|c| {
            let confidence = dc.trace(&c.confidences, measure);
            let stopped = c.finish == FinishReason::LowConfidence;
            Trace {
                node: run.stepper.whole_chain(&run.root, c),
                confidence,
                stopped,
            }
        })
        .collect())
}

/// The vote's finished paths: each trace with its confidence scaled into (0, 1] by the
/// most confident one (a weighted vote does not change under scaling).
fn voters<S>(traces: &[&Trace<S>]) -> Vec<Finished> {
    let top = traces
        .iter()
        .map(|t| t.confidence)
        .fold(f64::MIN_POSITIVE, f64::max);
    traces
        .iter()
        .map(|t| {
            let w = (t.confidence / top).clamp(0.0, 1.0);
            finished(&t.node, w, w)
        })
        .collect()
}

/// Whether the weighted vote's leader holds at least `share` of the weight.
fn settled(votes: &[Finished], share: f64) -> bool {
    let total: f64 = votes
        .iter()
        .filter(|f| f.answer.is_some())
        .map(|f| f.score)
        .sum();
    if total <= 0.0 {
        return false;
    }
    votes
        .iter()
        .filter_map(|f| f.answer.as_deref())
        .map(|a| {
            votes
                .iter()
                .filter(|g| g.answer.as_deref().is_some_and(|b| answers_match(a, b)))
                .map(|g| g.score)
                .sum::<f64>()
        })
        .any(|w| w >= share * total)
}

/// DeepConf offline: `samples` chains, the most confident `keep` share votes.
pub(crate) fn run_offline<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let cfg = run.cfg;
    let mut traces = Vec::new();
    let mut remaining = cfg.samples;
    while remaining > 0 && run.meter.left() > 0 {
        let n = remaining.min(cfg.batch);
        traces.extend(wave(run, n, None, cfg.deepconf.measure)?);
        remaining -= n;
    }
    let mut order: Vec<&Trace<E::State>> = traces.iter().collect();
    order.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    // Rounded, not rounded up: 90 % of 8 chains keeps 7 (rounding up would keep all 8
    // and filter nothing at this method's usual sample counts).
    let kept = ((order.len() as f64 * cfg.deepconf.keep).round() as usize)
        .max(1)
        .min(order.len());
    let mut out = Outcome {
        finished: voters(&order[..kept]),
        aggregation: Some(Aggregation::Weighted),
        ..Outcome::default()
    };
    out.tree = cfg.export_tree.then(|| tree_of(&traces));
    Ok(out)
}

/// DeepConf online: a warm-up sets the threshold, later chains stop under it, and the
/// problem stops when the vote is settled.
pub(crate) fn run_online<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let cfg = run.cfg;
    let dc = &cfg.deepconf;
    let mut traces: Vec<Trace<E::State>> = Vec::new();
    let mut remaining = cfg.samples;
    let warm = dc.warmup.min(cfg.samples);
    let mut left_warm = warm;
    while left_warm > 0 && run.meter.left() > 0 {
        let n = left_warm.min(cfg.batch);
        traces.extend(wave(run, n, None, TraceMeasure::Lowest)?);
        left_warm -= n;
        remaining -= n;
    }
    // The threshold `keep` of the warm-up traces reach: keep = 0.9 sets it at the 10th
    // percentile of their lowest-group confidences.
    let mut lows: Vec<f64> = traces.iter().map(|t| t.confidence).collect();
    lows.sort_by(f64::total_cmp);
    let threshold = if lows.is_empty() {
        0.0
    } else {
        let i = ((1.0 - dc.keep) * (lows.len() - 1) as f64).round() as usize;
        lows[i.min(lows.len() - 1)]
    };
    let vote = |traces: &[Trace<E::State>]| {
        let members: Vec<&Trace<E::State>> = traces
            .iter()
            .filter(|t| !t.stopped && t.confidence >= threshold)
            .collect();
        voters(&members)
    };
    let mut early = false;
    while remaining > 0 && run.meter.left() > 0 {
        if dc
            .consensus
            .is_some_and(|share| settled(&vote(&traces), share))
        {
            early = true;
            break;
        }
        let n = remaining.min(cfg.batch);
        traces.extend(wave(run, n, Some(threshold as f32), TraceMeasure::Lowest)?);
        remaining -= n;
    }
    let mut finished = vote(&traces);
    if finished.is_empty()
        && let Some(best) = traces
            .iter()
            .filter(|t| !t.stopped)
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
    {
        // Every warm-up trace under its own percentile cannot happen (the threshold is one
        // of them), but with `keep` rounding and an empty later wave, fall back to the
        // most confident finished trace rather than to no answer.
        finished = voters(&[best]);
    }
    Ok(Outcome {
        finished,
        early_stopped: early,
        aggregation: Some(Aggregation::Weighted),
        tree: cfg.export_tree.then(|| tree_of(&traces)),
        ..Outcome::default()
    })
}

/// Every trace under the root, valued by its confidence scaled into [0, 1].
fn tree_of<S>(traces: &[Trace<S>]) -> crate::tree::SearchTree {
    let top = traces
        .iter()
        .map(|t| t.confidence)
        .fold(f64::MIN_POSITIVE, f64::max);
    let mut tree = chains_root();
    for t in traces {
        push_chain(&mut tree, &t.node, (t.confidence / top).clamp(0.0, 1.0));
    }
    tree
}
