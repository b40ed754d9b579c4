//! Turning many finished paths into one answer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::answer::answers_match;
use crate::error::{Error, Result};

/// How the final answer is chosen from the finished paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregation {
    /// The single best path: highest score (for MCTS: the most visited line).
    Best,
    /// The single highest-valued path: its score (for MCTS: its exact terminal value).
    BestValue,
    /// Majority vote over the answers of all finished paths.
    Majority,
    /// Vote where each path counts with its score.
    Weighted,
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Aggregation::Best => "best",
            Aggregation::BestValue => "best-value",
            Aggregation::Majority => "majority",
            Aggregation::Weighted => "weighted",
        })
    }
}

impl FromStr for Aggregation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "best" | "best-path" | "best-visits" => Ok(Aggregation::Best),
            "best-value" | "value" => Ok(Aggregation::BestValue),
            "majority" | "vote" => Ok(Aggregation::Majority),
            "weighted" | "weighted-vote" => Ok(Aggregation::Weighted),
            other => Err(Error::InvalidConfig(format!(
                "unknown aggregation `{other}` (expected best, best-value, majority or weighted)"
            ))),
        }
    }
}

/// One distinct final answer and the support it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The normalised answer.
    pub answer: String,
    /// Finished paths (samples, leaves) that reached it.
    pub votes: usize,
    /// The best score of a path reaching it.
    pub score: f64,
    /// The summed scores of the paths reaching it (its weighted-vote mass).
    pub weight: f64,
}

/// A finished path as the aggregator sees it.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub steps: Vec<String>,
    pub answer: Option<String>,
    /// Scorer value (or 1 when unscored).
    pub score: f64,
    /// What [`Aggregation::Best`] ranks by (score, or visits for MCTS).
    pub rank: f64,
}

/// Groups answers that compare equal numerically; ordered by votes, then weight.
pub(crate) fn tally(finished: &[Finished]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for f in finished {
        let Some(a) = &f.answer else { continue };
        match out.iter_mut().find(|c| answers_match(&c.answer, a)) {
            Some(c) => {
                c.votes += 1;
                c.score = c.score.max(f.score);
                c.weight += f.score;
            }
            None => out.push(Candidate {
                answer: a.clone(),
                votes: 1,
                score: f.score,
                weight: f.score,
            }),
        }
    }
    out.sort_by(|a, b| b.votes.cmp(&a.votes).then(b.weight.total_cmp(&a.weight)));
    out
}

/// The chosen answer and the path shown for it.
pub(crate) fn choose(
    finished: &[Finished],
    candidates: &[Candidate],
    how: Aggregation,
) -> (Option<String>, Vec<String>) {
    let best_path = |filter: Option<&str>| {
        finished
            .iter()
            .filter(|f| match (filter, &f.answer) {
                (None, _) => true,
                (Some(want), Some(a)) => answers_match(want, a),
                (Some(_), None) => false,
            })
            .max_by(|a, b| {
                let (ka, kb) = match how {
                    Aggregation::BestValue => (a.score, b.score),
                    _ => (a.rank, b.rank),
                };
                ka.total_cmp(&kb).then(b.steps.len().cmp(&a.steps.len()))
            })
    };
    // The best path that has an answer at all, by `key`.
    let best_answer = |key: fn(&Finished) -> f64| {
        finished
            .iter()
            .filter(|f| f.answer.is_some())
            .max_by(|a, b| key(a).total_cmp(&key(b)))
            .and_then(|f| f.answer.clone())
    };
    let answer = match how {
        Aggregation::Best => best_answer(|f| f.rank),
        Aggregation::BestValue => best_answer(|f| f.score),
        Aggregation::Majority => candidates.first().map(|c| c.answer.clone()),
        Aggregation::Weighted => candidates
            .iter()
            .max_by(|a, b| a.weight.total_cmp(&b.weight).then(a.votes.cmp(&b.votes)))
            .map(|c| c.answer.clone()),
    };
    let path = best_path(answer.as_deref())
        .map(|f| f.steps.clone())
        .unwrap_or_default();
    (answer, path)
}

/// Whether more samples can no longer change (or, with a threshold, are very unlikely to
/// change) the majority: the adaptive-compute stopping rule.
///
/// `remaining` is how many more votes could still come. Without a threshold the rule is
/// exact (the runner-up cannot catch up); with one, the leader's share of the votes cast
/// so far must reach it, over at least three votes so a single early sample never decides.
pub(crate) fn vote_decided(
    candidates: &[Candidate],
    remaining: usize,
    threshold: Option<f64>,
) -> bool {
    let Some(lead) = candidates.first() else {
        return false;
    };
    let second = candidates.get(1).map_or(0, |c| c.votes);
    if lead.votes > second + remaining {
        return true;
    }
    let cast: usize = candidates.iter().map(|c| c.votes).sum();
    match threshold {
        Some(t) if cast >= 3 => lead.votes as f64 / cast as f64 >= t,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(answer: Option<&str>, score: f64) -> Finished {
        Finished {
            steps: vec![format!("{answer:?}")],
            answer: answer.map(String::from),
            score,
            rank: score,
        }
    }

    #[test]
    fn majority_weighted_and_best_can_disagree() {
        let fs = vec![
            f(Some("3"), 0.1),
            f(Some("3.0"), 0.1),
            f(Some("5"), 0.9),
            f(None, 1.0),
        ];
        let c = tally(&fs);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].answer.as_str(), c[0].votes), ("3", 2));
        assert_eq!(
            choose(&fs, &c, Aggregation::Majority).0.as_deref(),
            Some("3")
        );
        assert_eq!(
            choose(&fs, &c, Aggregation::Weighted).0.as_deref(),
            Some("5")
        );
        assert_eq!(choose(&fs, &c, Aggregation::Best).0.as_deref(), Some("5"));
        let mut by_visits = fs.clone();
        by_visits[0].rank = 9.0;
        assert_eq!(
            choose(&by_visits, &c, Aggregation::Best).0.as_deref(),
            Some("3")
        );
        assert_eq!(
            choose(&by_visits, &c, Aggregation::BestValue).0.as_deref(),
            Some("5")
        );
    }

    #[test]
    fn decided_votes() {
        let c = vec![
            Candidate {
                answer: "1".into(),
                votes: 4,
                score: 1.0,
                weight: 1.0,
            },
            Candidate {
                answer: "2".into(),
                votes: 1,
                score: 1.0,
                weight: 1.0,
            },
        ];
        assert!(vote_decided(&c, 2, None));
        assert!(!vote_decided(&c, 3, None));
        assert!(vote_decided(&c, 3, Some(0.8)));
        assert!(!vote_decided(&c, 3, Some(0.9)));
        assert!(!vote_decided(&[], 0, Some(0.1)));
    }
}
