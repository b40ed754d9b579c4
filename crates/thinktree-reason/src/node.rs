//! [`Node`]: one partial or finished reasoning path with the engine state after its last
//! step, so continuing it never recomputes the prefix; and merging identical sibling
//! steps into priors.

/// One partial or finished reasoning path.
#[derive(Debug, Clone)]
pub(crate) struct Node<S> {
    /// Context after the last step.
    pub state: S,
    /// Context before the last step (the root's parent is `None`).
    pub parent_state: Option<S>,
    /// Non-empty displayed steps so far.
    pub steps: Vec<String>,
    /// The generated text exactly as sampled (steps concatenated with their separators):
    /// what answers are read from, since token-chunk steps can split a number.
    pub raw: String,
    /// Sampled steps so far, counting whitespace-only ones (they cost tokens too).
    pub depth: usize,
    /// Token log-probabilities of the last step.
    pub step_logprobs: Vec<f32>,
    /// Token log-probabilities of the whole path.
    pub path_logprobs: Vec<f32>,
    /// No further steps: an answer was stated, EOS, depth or budget limit.
    pub terminal: bool,
    /// The final answer (only for terminal nodes).
    pub answer: Option<String>,
}

impl<S: Clone> Node<S> {
    /// The problem's root: the prompt, no steps.
    pub fn root(state: S) -> Self {
        Self {
            state,
            parent_state: None,
            steps: Vec::new(),
            raw: String::new(),
            depth: 0,
            step_logprobs: Vec::new(),
            path_logprobs: Vec::new(),
            terminal: false,
            answer: None,
        }
    }

    /// The solution text so far.
    pub fn text(&self) -> &str {
        &self.raw
    }
}

/// One expansion's distinct children with their priors.
pub(crate) struct Expansion<S> {
    /// Children, each with its prior (the priors sum to 1).
    pub children: Vec<(Node<S>, f64)>,
}

/// Merges identical sibling steps and turns sequence probabilities into priors: each
/// step's length-normalised probability (geometric mean token probability, so long steps
/// are not punished for their length), summed over duplicates and renormalised across
/// siblings.
pub(crate) fn merge_siblings<S: Clone>(children: Vec<Node<S>>) -> Expansion<S> {
    let mut merged: Vec<(Node<S>, f64)> = Vec::with_capacity(children.len());
    for child in children {
        let mean = if child.step_logprobs.is_empty() {
            0.0
        } else {
            child
                .step_logprobs
                .iter()
                .map(|&l| f64::from(l))
                .sum::<f64>()
                / child.step_logprobs.len() as f64
        };
        let mass = mean.exp();
        let key = child.steps.last().cloned().unwrap_or_default();
        let same = merged.iter_mut().find(|(n, _)| {
            n.steps.last().cloned().unwrap_or_default() == key && n.terminal == child.terminal
        });
        match same {
            Some((_, m)) => *m += mass,
            None => merged.push((child, mass)),
        }
    }
    let total: f64 = merged.iter().map(|(_, m)| m).sum();
    let k = merged.len().max(1) as f64;
    for (_, m) in &mut merged {
        *m = if total > 0.0 && total.is_finite() {
            *m / total
        } else {
            1.0 / k
        };
    }
    Expansion { children: merged }
}
