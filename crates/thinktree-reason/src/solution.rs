//! What solving one problem returns.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use thinktree_engine::Usage;

use super::aggregate::Candidate;
use super::method::Method;

/// The outcome of [`super::solve`]: the answer, the reasoning that led to it, every
/// alternative answer found, and exactly what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Solution {
    /// The normalised final answer (None if none could be extracted).
    pub answer: Option<String>,
    /// The chosen reasoning steps.
    pub path: Vec<String>,
    /// Every distinct final answer reached by any leaf or sample, most votes first.
    pub candidates: Vec<Candidate>,
    /// Compute spent: the sum of the `Usage` of every engine call, scorers included.
    pub usage: Usage,
    /// Batched calls made by the search (a `sample_many` over many rows counts once, a
    /// scorer's batch counts once): how many times the search waited on the model.
    pub engine_calls: u64,
    /// Wall-clock time of the whole solve.
    pub wall: Duration,
    /// The method that produced it.
    pub method: Method,
    /// Whether the adaptive stopping rule ended the search before its budget.
    pub early_stopped: bool,
    /// The explored tree, when [`super::SolveConfig::export_tree`] is set (MCTS and beam:
    /// their trees; the voting methods: their chains under the root): what
    /// `thinktree-value` turns into training data, and what [`super::TreeView`] (HTML),
    /// [`super::SearchTree::to_dot`] and [`super::SearchTree::to_json`] render for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<super::tree::SearchTree>,
    /// Chains that reflected ([`super::SolveConfig::reflect`]): answers before and after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reflections: Vec<super::Reflection>,
    /// What the mutual-consistency discriminator found, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual: Option<super::MutualCheck>,
}
