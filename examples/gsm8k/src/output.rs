//! The results file of `gsm8k`: one JSON line per (problem, method), written as each
//! finishes through a [`crate::journal::Journal`] (so `--resume` and the lock work as for
//! every binary here).

use serde::{Deserialize, Serialize};

use crate::journal::{Entry, Existing};

/// One solved (problem, method) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Problem id (`<dataset>:<index>`).
    pub id: String,
    /// Method short name (`greedy`, `sc`, `bon`, `beam`, `mcts`).
    pub method: String,
    /// Gold answer.
    pub gold: String,
    /// The method's answer, if one could be extracted.
    pub predicted: Option<String>,
    /// Whether `predicted` matches `gold`.
    pub correct: bool,
    /// Whether any candidate answer the method found matches `gold` (its oracle ceiling).
    pub covered: bool,
    /// Tokens sampled.
    pub generated_tokens: u64,
    /// Token positions computed (prefill plus every decoded batch row): the honest cost.
    pub computed_tokens: u64,
    /// Prompt tokens computed (not served from the cache).
    pub prompt_tokens: u64,
    /// Forward passes of the model.
    pub forward_calls: u64,
    /// Engine calls (each may batch many rows).
    pub model_calls: u64,
    /// Wall time of the solve, milliseconds.
    pub wall_ms: f64,
    /// The reasoning steps of the chosen answer.
    pub path: Vec<String>,
    /// Distinct candidate answers with their votes, most votes first.
    #[serde(default)]
    pub candidates: Vec<(String, usize)>,
    /// Set when the solve failed; such a record counts as wrong and is retried on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The generated-token budget of a `--budgets` run (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<usize>,
    /// What `--reflect` did to this solve's chains (absent without reflection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflection: Option<Reflections>,
    /// Solves the run kept going at once (`--concurrency`; absent in files written before
    /// it existed, which ran one at a time): `wall_ms` is this solve's latency, and
    /// `wall_ms / concurrency` its share of the run's wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

/// Chains of one solve that reflected (Marco-o1's "Wait! Maybe I made some mistakes!"),
/// judged against the gold answer after the solve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reflections {
    /// Chains that reflected.
    pub chains: usize,
    /// Wrong before, right after.
    pub fixed: usize,
    /// Right before, wrong after.
    pub broken: usize,
    /// The answer after differs from the one before (fixed and broken included).
    pub changed: usize,
}

impl Record {
    /// The method as reports name it ([`label`]).
    pub fn label(&self) -> String {
        label(&self.method, self.budget)
    }
}

/// A method as reports name it: `mcts`, or `mcts@512` at a `--budgets` run's budget.
pub fn label(method: &str, budget: Option<usize>) -> String {
    match budget {
        Some(b) => format!("{method}@{b}"),
        None => method.to_string(),
    }
}

impl Entry for Record {
    type Key = (String, String);
    /// The (problem, method) pair `--resume` matches on.
    fn key(&self) -> Self::Key {
        (self.id.clone(), self.method.clone())
    }
}

/// Whether `existing` holds the pair finished (present and not failed), so resume may
/// skip it.
pub fn is_finished(existing: &Existing<Record>, id: &str, method: &str) -> bool {
    existing
        .records
        .iter()
        .any(|r| r.id == id && r.method == method && r.error.is_none())
}
