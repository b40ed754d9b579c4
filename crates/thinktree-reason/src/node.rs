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
    /// Marco-o1 token confidences of the last step (empty unless the engine was asked
    /// for top log-probabilities).
    pub step_relative: Vec<f32>,
    /// Marco-o1 token confidences of the whole path (as `step_relative`).
    pub path_relative: Vec<f32>,
    /// No further steps: an answer was stated, EOS, depth or budget limit.
    pub terminal: bool,
    /// The final answer (only for terminal nodes).
    pub answer: Option<String>,
    /// The answer the path had stated when it reflected ([`crate::REFLECTION`]); `None`
    /// while it never did. A path reflects at most once.
    pub reflected: Option<Option<String>>,
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
            step_relative: Vec::new(),
            path_relative: Vec::new(),
            terminal: false,
            answer: None,
            reflected: None,
        }
    }

    /// The solution text so far.
    pub fn text(&self) -> &str {
        &self.raw
    }

    /// The steps since the path's reflection (all of them if it never reflected): what a
    /// new step is checked against for loops, since a reflected path is told to start
    /// over and may rightly repeat a step it wrote before.
    pub fn steps_since_reflection(&self) -> &[String] {
        let marker = crate::REFLECTION.trim();
        match self.steps.iter().rposition(|s| s == marker) {
            Some(i) if self.reflected.is_some() => &self.steps[i + 1..],
            _ => &self.steps,
        }
    }
}

/// One expansion's distinct children with their priors.
pub(crate) struct Expansion<S> {
    /// Children, each with its prior in `(0, 1]`.
    pub children: Vec<(Node<S>, f64)>,
}

/// The key two sibling steps are the same step by: the displayed text and whether the
/// path ends there.
pub(crate) fn step_key<S>(node: &Node<S>) -> (String, bool) {
    (
        node.steps.last().cloned().unwrap_or_default(),
        node.terminal,
    )
}

/// Merges identical sibling steps and gives each distinct step its prior: the step's own
/// length-normalised probability (geometric mean token probability, so long steps are not
/// punished for their length). A prior is a property of the step alone, never
/// renormalised within one sampling call, so priors from separate calls (progressive
/// widening asks a node for more children later) stay comparable: the search core
/// normalises over all of a node's children. (Renormalising per call once gave a child
/// from a later one-sample call prior 1.0 against ~0.33 for the first three siblings.)
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
        let prior = mean.exp();
        let key = step_key(&child);
        if !merged.iter().any(|(n, _)| step_key(n) == key) {
            // A NaN (a broken engine's log-probability) must not poison the core's
            // normalisation; such a step gets the smallest positive prior.
            let prior = if prior.is_finite() && prior > 0.0 {
                prior.min(1.0)
            } else {
                f64::MIN_POSITIVE
            };
            merged.push((child, prior));
        }
    }
    Expansion { children: merged }
}
