//! [`Stepper`]: the policy's fixed settings (how a step is sampled, when a path ends) and
//! the step-sampling primitives every method is built from. Sampling always goes through
//! [`Engine::sample_many`] with all frontier nodes at once, so k siblings (and all
//! parallel chains) share forward passes.

use thinktree_engine::{
    ConfidenceStop, Continuation, Engine, FinishReason, SampleParams, Usage, relative_confidence,
};

use crate::error::Result;
use crate::extract::AnswerExtractor;
use crate::meter::Meter;
use crate::node::Node;
use crate::split::StepSplit;

/// Sampled children, one list per parent.
pub(crate) type Children<S> = Vec<Vec<Node<S>>>;

/// How steps are sampled and when a path ends: the policy's fixed settings.
#[derive(Clone, Copy)]
pub(crate) struct Stepper<'a> {
    pub split: StepSplit,
    pub step_tokens: usize,
    pub max_steps: usize,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub extractor: &'a dyn AnswerExtractor,
    /// Ask the engine for each token's top log-probabilities (Marco-o1's reward).
    pub top_logprobs: bool,
}

/// Marco-o1's token confidences of a continuation (each token's probability relative to
/// the top 5 at its position), when the engine reported top log-probabilities.
fn relative<S>(c: &Continuation<S>) -> Vec<f32> {
    if c.top_logprobs.len() != c.logprobs.len() {
        return Vec::new();
    }
    c.logprobs
        .iter()
        .zip(&c.top_logprobs)
        .map(|(&lp, top)| relative_confidence(lp, top, MARCO_TOP))
        .collect()
}

/// Alternatives Marco-o1's confidence compares each token with.
pub(crate) const MARCO_TOP: usize = 5;

impl Stepper<'_> {
    /// The child of `parent` reached by continuation `c`.
    pub fn child<S: Clone>(&self, parent: &Node<S>, c: Continuation<S>) -> Node<S> {
        let text = self.split.display_text(&c.text);
        // A small model that repeats an earlier step verbatim is in a loop it rarely
        // leaves; the path ends there instead of burning the budget.
        let looping = !text.is_empty()
            && !matches!(self.split, StepSplit::Tokens(_))
            && parent.steps_since_reflection().contains(&text);
        let mut steps = parent.steps.clone();
        if !text.is_empty() && !looping {
            steps.push(text.clone());
        }
        let mut path_logprobs = parent.path_logprobs.clone();
        path_logprobs.extend_from_slice(&c.logprobs);
        let step_relative = relative(&c);
        let mut path_relative = parent.path_relative.clone();
        path_relative.extend_from_slice(&step_relative);
        let explicit = self.explicit_answer(&parent.raw, &c.text, &text);
        let mut node = Node {
            state: c.state,
            parent_state: Some(parent.state.clone()),
            steps,
            raw: format!("{}{}", parent.raw, c.text),
            depth: parent.depth + 1,
            step_logprobs: c.logprobs,
            path_logprobs,
            step_relative,
            path_relative,
            terminal: false,
            answer: None,
            reflected: parent.reflected.clone(),
        };
        if let Some(a) = explicit {
            node.terminal = true;
            node.answer = Some(a);
        } else if looping || c.finish == FinishReason::Eos || node.depth >= self.max_steps {
            self.finish(&mut node);
        }
        node
    }

    /// A whole chain sampled in one call from `root`, cut into steps afterwards. The path
    /// ends at the first step that states an answer (text the model wrote after it was
    /// paid for but is not part of the solution); otherwise the answer is read leniently.
    pub fn whole_chain<S: Clone>(&self, root: &Node<S>, c: Continuation<S>) -> Node<S> {
        let sep = match self.split {
            StepSplit::BlankLine => "\n\n",
            StepSplit::StepMarker => "\nStep ",
            StepSplit::Newline | StepSplit::Tokens(_) => "\n",
        };
        let mut steps = root.steps.clone();
        let mut answer = None;
        for piece in c.text.split(sep) {
            let text = self.split.display_text(piece);
            if text.is_empty() {
                continue;
            }
            if steps.contains(&text) {
                break; // a loop: what follows repeats itself
            }
            let explicit = self.extractor.explicit(&text);
            steps.push(text);
            if let Some(a) = explicit {
                answer = Some(a);
                break;
            }
        }
        let mut path_logprobs = root.path_logprobs.clone();
        path_logprobs.extend_from_slice(&c.logprobs);
        let step_relative = relative(&c);
        let mut path_relative = root.path_relative.clone();
        path_relative.extend_from_slice(&step_relative);
        let mut node = Node {
            state: c.state,
            parent_state: Some(root.state.clone()),
            depth: root.depth + steps.len().saturating_sub(root.steps.len()).max(1),
            steps,
            raw: format!("{}{}", root.raw, c.text),
            step_logprobs: c.logprobs,
            path_logprobs,
            step_relative,
            path_relative,
            terminal: true,
            answer,
            reflected: root.reflected.clone(),
        };
        self.finish(&mut node);
        node
    }

    /// A final answer stated by a new step. Line-shaped steps are checked whole; a token
    /// chunk can end mid-sentence ("The answer is 1|0."), so for chunks only lines the
    /// chunk completed (with its newline) are checked.
    fn explicit_answer(&self, before: &str, chunk: &str, step: &str) -> Option<String> {
        match self.split {
            StepSplit::Tokens(_) => {
                let nl = chunk.rfind('\n')?;
                let start = before.rfind('\n').map_or(0, |i| i + 1);
                let full = format!("{}{}", &before[start..], &chunk[..nl]);
                full.lines().rev().find_map(|l| self.extractor.explicit(l))
            }
            _ => self.extractor.explicit(step),
        }
    }

    /// Ends a path where it stands and reads its answer leniently.
    pub fn finish<S: Clone>(&self, node: &mut Node<S>) {
        node.terminal = true;
        if node.answer.is_none() {
            node.answer = self.extractor.extract(node.text());
        }
    }

    /// Sampling parameters for one step with `max_tokens` at most.
    pub fn params(&self, temperature: f32, max_tokens: usize, seed: u64) -> SampleParams {
        SampleParams {
            temperature,
            top_k: if temperature > 0.0 { self.top_k } else { None },
            top_p: if temperature > 0.0 { self.top_p } else { None },
            stop: self.stop(self.step_tokens.min(max_tokens).max(1)),
            seed,
        }
    }

    /// The split's stop condition, tracking top log-probabilities when asked to.
    pub fn stop(&self, max_tokens: usize) -> thinktree_engine::StopCondition {
        let mut stop = self.split.stop(max_tokens);
        if self.top_logprobs {
            stop.confidence = Some(ConfidenceStop {
                top_k: MARCO_TOP,
                window: 1,
                threshold: None,
            });
        }
        stop
    }

    /// `n[i]` sampled children of each `parents[i]`, all in one batched engine call.
    pub fn sample_children<E: Engine>(
        &self,
        engine: &E,
        parents: &[&Node<E::State>],
        n: &[usize],
        params: &SampleParams,
    ) -> Result<(Children<E::State>, Usage)> {
        let requests: Vec<(&E::State, usize)> =
            parents.iter().zip(n).map(|(p, &k)| (&p.state, k)).collect();
        let (conts, usage) = engine.sample_many(&requests, params)?;
        let out = parents
            .iter()
            .zip(conts)
            .map(|(p, cs)| cs.into_iter().map(|c| self.child(p, c)).collect())
            .collect();
        Ok((out, usage))
    }
}

/// Continues every non-terminal node until it is terminal or the budget is spent,
/// stepping all active paths together in one batched call per step.
pub(crate) fn rollout<E: Engine>(
    engine: &E,
    stepper: &Stepper<'_>,
    meter: &mut Meter,
    mut nodes: Vec<Node<E::State>>,
    temperature: f32,
) -> Result<Vec<Node<E::State>>> {
    loop {
        let active: Vec<usize> = (0..nodes.len()).filter(|&i| !nodes[i].terminal).collect();
        if active.is_empty() {
            break;
        }
        if meter.left() == 0 {
            for &i in &active {
                stepper.finish(&mut nodes[i]);
            }
            break;
        }
        let params = stepper.params(temperature, meter.per_row(active.len()), meter.next_seed());
        let parents: Vec<&Node<E::State>> = active.iter().map(|&i| &nodes[i]).collect();
        let ones = vec![1; parents.len()];
        let (children, usage) = stepper.sample_children(engine, &parents, &ones, &params)?;
        meter.add(usage);
        for (&i, mut c) in active.iter().zip(children) {
            if let Some(child) = c.pop() {
                nodes[i] = child;
            } else {
                stepper.finish(&mut nodes[i]);
            }
        }
    }
    Ok(nodes)
}
