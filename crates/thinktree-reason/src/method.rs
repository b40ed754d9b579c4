//! Which search method a problem is solved with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A test-time compute strategy. All of them drive the same engine and report the same
/// [`thinktree_engine::Usage`], so they can be compared at equal compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// One greedy chain of thought: the zero-extra-compute baseline.
    Greedy,
    /// Self-consistency: majority vote over N sampled chains.
    SelfConsistency,
    /// Best-of-N: N sampled chains, the one the scorer likes best wins.
    BestOfN,
    /// Step-level beam search guided by the scorer.
    Beam,
    /// Monte Carlo Tree Search over steps (PUCT, progressive widening, leaf batching).
    Mcts,
    /// Marco-o1-style MCTS: mini-steps of 64 tokens, Marco-o1's confidence reward
    /// ([`crate::scorer::MarcoScorer`]) as the value of a leaf.
    Marco,
    /// rStar's MCTS: five reasoning actions (one step, the rest of the chain, a
    /// sub-question and its answer, that answer again, the question restated) as node
    /// kinds, terminals valued by their answer's self-consistency ([`crate::RStar`]).
    RStar,
    /// DeepConf offline: N chains with token confidences; the most confident share votes,
    /// weighted by confidence ([`crate::DeepConf`]).
    DeepConf,
    /// DeepConf online: a warm-up sets a confidence threshold, later chains stop in the
    /// engine when they fall under it, sampling stops when the vote is settled.
    DeepConfOnline,
}

impl Method {
    /// Every method, in increasing order of sophistication.
    pub const ALL: [Method; 9] = [
        Method::Greedy,
        Method::SelfConsistency,
        Method::BestOfN,
        Method::Beam,
        Method::Mcts,
        Method::Marco,
        Method::RStar,
        Method::DeepConf,
        Method::DeepConfOnline,
    ];

    /// The short name used on command lines and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Greedy => "greedy",
            Method::SelfConsistency => "sc",
            Method::BestOfN => "bon",
            Method::Beam => "beam",
            Method::Mcts => "mcts",
            Method::Marco => "marco",
            Method::RStar => "rstar",
            Method::DeepConf => "deepconf",
            Method::DeepConfOnline => "deepconf-online",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "greedy" | "cot" => Ok(Method::Greedy),
            "sc" | "self-consistency" | "self_consistency" | "majority" => {
                Ok(Method::SelfConsistency)
            }
            "bon" | "best-of-n" | "best_of_n" => Ok(Method::BestOfN),
            "beam" | "beam-search" => Ok(Method::Beam),
            "mcts" => Ok(Method::Mcts),
            "marco" | "marco-mcts" => Ok(Method::Marco),
            "rstar" => Ok(Method::RStar),
            "deepconf" | "deepconf-offline" => Ok(Method::DeepConf),
            "deepconf-online" => Ok(Method::DeepConfOnline),
            other => Err(Error::InvalidConfig(format!(
                "unknown method `{other}` (expected one of: greedy, sc, bon, beam, mcts, marco, rstar, deepconf, deepconf-online)"
            ))),
        }
    }
}
