//! rStar's MCTS ("Mutual Reasoning Makes Smaller LLMs Stronger Problem-Solvers", Qi et
//! al. 2024): a tree whose edges are five human-like reasoning actions.
//!
//! - A1: propose one next step.
//! - A2: propose all remaining steps (the chain to its answer: a terminal).
//! - A3: propose the next sub-question and answer it.
//! - A4: answer the last sub-question again, self-consistently (only right after A3).
//! - A5: rephrase the question by listing its conditions (only once, from the root).
//!
//! Which actions follow which is [`legal`]. Answers that are sampled several times (A2's
//! chains, A3's and A4's sub-answers) keep the majority and value it by its share of the
//! votes, rStar's confidence; a terminal reached in one sample (A1) is valued by the
//! policy's mean token probability. Only terminal values are backed up (intermediate
//! nodes start at 0), and selection is UCT with rStar's exploration weight. A rollout
//! expands a node with every legal action and continues from a random new child until a
//! terminal, the depth limit or the budget. The action markers are [`RStar`]'s to
//! replace; the defaults work for SmolLM2-135M-Instruct. Combine with
//! [`crate::SolveConfig::discriminator`] for rStar's mutual-consistency check.

use serde::{Deserialize, Serialize};
use thinktree_engine::Engine;

use crate::aggregate::{Aggregation, Finished};
use crate::answer::answers_match;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::tree::{SearchTree, TreeNode};

use super::{Outcome, Solve, finished};

/// rStar's settings ([`crate::SolveConfig::rstar`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RStar {
    /// Samples of a self-consistent answer (A2's chains, A3's and A4's sub-answers).
    pub votes: usize,
    /// UCT exploration weight (rStar's code uses 2).
    pub exploration: f64,
    /// Written before a sub-question (A3); `{k}` is its number.
    pub sub_question: String,
    /// Written before a sub-question's answer (A3, A4); `{k}` is its number.
    pub sub_answer: String,
    /// Written before the restated question (A5).
    pub rephrase: String,
}

impl Default for RStar {
    fn default() -> Self {
        Self {
            votes: 3,
            exploration: 2.0,
            sub_question: "Question {k}: ".into(),
            sub_answer: "Answer {k}: ".into(),
            rephrase: "Let me restate the problem with all its conditions: ".into(),
        }
    }
}

impl RStar {
    /// Checks ranges; a bad value is an [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if self.votes == 0 || !self.exploration.is_finite() || self.exploration < 0.0 {
            return Err(Error::InvalidConfig(format!(
                "rstar needs votes >= 1 and a finite exploration >= 0, got {} and {}",
                self.votes, self.exploration
            )));
        }
        Ok(())
    }
}

/// rStar's actions (and the root, which no action made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Root,
    /// One next step.
    Step,
    /// Every remaining step.
    Finish,
    /// A sub-question and its answer.
    SubQuestion,
    /// The last sub-question answered again.
    Reanswer,
    /// The question restated.
    Rephrase,
}

/// The actions allowed after a node made by `previous`: A5 only from the root, A4 only
/// right after A3.
pub(crate) fn legal(previous: Action) -> &'static [Action] {
    use Action::*;
    match previous {
        Root => &[Step, Finish, SubQuestion, Rephrase],
        SubQuestion => &[Step, Finish, SubQuestion, Reanswer],
        Step | Reanswer | Rephrase => &[Step, Finish, SubQuestion],
        Finish => &[],
    }
}

/// One node of the rStar tree (arena-indexed; a parent precedes its children).
struct RNode<S> {
    parent: Option<u32>,
    action: Action,
    node: Node<S>,
    children: Vec<u32>,
    expanded: bool,
    visits: u64,
    value_sum: f64,
    /// A terminal's value (its answer's confidence).
    reward: Option<f64>,
    /// Sub-questions asked on the path so far.
    asked: usize,
    /// For A3/A4 nodes: the state just before the sub-answer, from which A4 re-answers.
    answer_base: Option<Node<S>>,
}

/// Runs rStar's MCTS for `cfg.simulations` rollouts or until the budget is spent.
pub(crate) fn run<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let cfg = run.cfg;
    let mut tree: Vec<RNode<E::State>> = vec![RNode {
        parent: None,
        action: Action::Root,
        node: run.root.clone(),
        children: Vec::new(),
        expanded: false,
        visits: 0,
        value_sum: 0.0,
        reward: None,
        asked: 0,
        answer_base: None,
    }];
    let mut rng = run.meter.next_seed();
    for _ in 0..cfg.simulations {
        if run.meter.left() == 0 {
            break;
        }
        let mut path = vec![0u32];
        let mut at = 0u32;
        loop {
            let n = &tree[at as usize];
            if n.node.terminal || n.node.depth >= cfg.max_steps || run.meter.left() == 0 {
                break;
            }
            if !n.expanded {
                expand(run, &mut tree, at)?;
                let kids = &tree[at as usize].children;
                if kids.is_empty() {
                    break;
                }
                // Simulation: a random new child.
                rng = thinktree_search::splitmix64(rng);
                at = kids[(rng % kids.len() as u64) as usize];
            } else {
                match uct(&tree, at, cfg.rstar.exploration) {
                    Some(c) => at = c,
                    None => break,
                }
            }
            path.push(at);
        }
        let reward = tree[at as usize].reward.unwrap_or(0.0);
        for &i in &path {
            tree[i as usize].visits += 1;
            tree[i as usize].value_sum += reward;
        }
    }
    let finished_paths: Vec<Finished> = tree
        .iter()
        .filter(|n| n.node.terminal)
        .map(|n| {
            let r = n.reward.unwrap_or(0.0);
            finished(&n.node, r, r)
        })
        .collect();
    let mut out = Outcome {
        finished: finished_paths,
        aggregation: Some(Aggregation::Weighted),
        ..Outcome::default()
    };
    if out.finished.is_empty() {
        // Nothing finished within the budget: read an answer off the deepest line.
        let mut node = tree
            .iter()
            .max_by_key(|n| (n.node.depth, n.visits))
            .map_or_else(|| run.root.clone(), |n| n.node.clone());
        run.stepper.finish(&mut node);
        out.finished.push(finished(&node, 0.0, 0.0));
    }
    if cfg.export_tree {
        out.tree = Some(export(&tree));
    }
    Ok(out)
}

/// The child of `at` with the largest UCT value (an unvisited one first).
fn uct<S>(tree: &[RNode<S>], at: u32, c: f64) -> Option<u32> {
    let parent = &tree[at as usize];
    let ln_n = (parent.visits.max(1) as f64).ln();
    parent.children.iter().copied().max_by(|&a, &b| {
        let score = |i: u32| {
            let n = &tree[i as usize];
            if n.visits == 0 {
                f64::INFINITY
            } else {
                n.value_sum / n.visits as f64 + c * (ln_n / n.visits as f64).sqrt()
            }
        };
        score(a).total_cmp(&score(b)).then(b.cmp(&a))
    })
}

/// Generates one child per legal action of `at`.
fn expand<E: Engine>(
    run: &mut Solve<'_, E>,
    tree: &mut Vec<RNode<E::State>>,
    at: u32,
) -> Result<()> {
    tree[at as usize].expanded = true;
    let action = tree[at as usize].action;
    for &next in legal(action) {
        if run.meter.left() == 0 {
            break;
        }
        let parent = &tree[at as usize];
        let made = match next {
            Action::Step => step(run, &parent.node)?.map(|n| (n, None, parent.asked)),
            Action::Finish => finish_chain(run, &parent.node)?.map(|n| (n, None, parent.asked)),
            Action::SubQuestion => {
                let k = parent.asked + 1;
                sub_question(run, &parent.node, k)?.map(|(n, base)| (n, Some(base), k))
            }
            Action::Reanswer => match &parent.answer_base {
                Some(base) => {
                    let k = parent.asked;
                    let base = base.clone();
                    sub_answer(run, &base, k)?.map(|n| (n, Some(base), k))
                }
                None => None,
            },
            Action::Rephrase => rephrase(run, &parent.node)?.map(|n| (n, None, parent.asked)),
            Action::Root => None,
        };
        if let Some(((node, reward), base, asked)) = made {
            let id = tree.len() as u32;
            tree.push(RNode {
                parent: Some(at),
                action: next,
                node,
                children: Vec::new(),
                expanded: false,
                visits: 0,
                value_sum: 0.0,
                reward,
                asked,
                answer_base: base,
            });
            tree[at as usize].children.push(id);
        }
    }
    Ok(())
}

/// A made node and, when terminal, its value.
type Made<S> = (Node<S>, Option<f64>);

/// A3's made node and the state just before its answer (where A4 re-answers).
type Asked<S> = (Made<S>, Node<S>);

/// `text` appended to `node` as written by the search (billed as prompt tokens): the raw
/// text grows, the steps do not.
fn literal<E: Engine>(
    run: &mut Solve<'_, E>,
    node: &Node<E::State>,
    text: &str,
) -> Result<Node<E::State>> {
    let (state, usage) = run.engine.extend(&node.state, text)?;
    run.meter.add(usage);
    let mut out = node.clone();
    out.parent_state = Some(node.state.clone());
    out.state = state;
    out.raw.push_str(text);
    Ok(out)
}

/// `n` one-line continuations of `node`.
fn lines<E: Engine>(
    run: &mut Solve<'_, E>,
    node: &Node<E::State>,
    n: usize,
) -> Result<Vec<Node<E::State>>> {
    let params = run.stepper.params(
        run.cfg.temperature,
        run.meter.per_row(n),
        run.meter.next_seed(),
    );
    let (mut children, usage) = run
        .stepper
        .sample_children(run.engine, &[node], &[n], &params)?;
    run.meter.add(usage);
    Ok(children.pop().unwrap_or_default())
}

/// The terminal's value when it was sampled once: the policy's mean token probability.
fn single_value<S>(node: &Node<S>) -> Option<f64> {
    node.terminal
        .then(|| crate::scorer::mean_probability(&node.step_logprobs))
}

/// The majority answer's first node among `nodes` and its share of the votes; nodes
/// without an answer vote for nothing.
fn majority<S>(
    nodes: Vec<Node<S>>,
    answer: impl Fn(&Node<S>) -> Option<String>,
) -> Option<(Node<S>, f64)> {
    let total = nodes.len();
    let answers: Vec<Option<String>> = nodes.iter().map(&answer).collect();
    let mut best: Option<(usize, usize)> = None; // (index, votes)
    for (i, a) in answers.iter().enumerate() {
        let Some(a) = a else { continue };
        let votes = answers
            .iter()
            .filter(|b| b.as_deref().is_some_and(|b| answers_match(a, b)))
            .count();
        if best.is_none_or(|(_, v)| votes > v) {
            best = Some((i, votes));
        }
    }
    let (i, votes) = best.unwrap_or((0, 0));
    let share = if total == 0 {
        0.0
    } else {
        votes as f64 / total as f64
    };
    nodes.into_iter().nth(i).map(|n| (n, share))
}

/// A1: one next step.
fn step<E: Engine>(
    run: &mut Solve<'_, E>,
    node: &Node<E::State>,
) -> Result<Option<Made<E::State>>> {
    let child = lines(run, node, 1)?.pop();
    Ok(child.map(|c| {
        let v = single_value(&c);
        (c, v)
    }))
}

/// A2: `votes` whole chains to the end; the majority answer's chain, valued by its share.
fn finish_chain<E: Engine>(
    run: &mut Solve<'_, E>,
    node: &Node<E::State>,
) -> Result<Option<Made<E::State>>> {
    let cfg = run.cfg;
    let n = cfg.rstar.votes;
    let seed = run.meter.next_seed();
    let steps = cfg.max_steps.saturating_sub(node.depth);
    let params = run.chain_params(n, steps, cfg.temperature, seed);
    let (conts, usage) = run.engine.sample(&node.state, n, &params)?;
    run.meter.add(usage);
    let chains: Vec<Node<E::State>> = conts
        .into_iter()
        .map(|c| run.stepper.whole_chain(node, c))
        .collect();
    Ok(majority(chains, |c| c.answer.clone()).map(|(c, share)| (c, Some(share))))
}

/// A3: the next sub-question (one line after its marker), then its answer, voted.
fn sub_question<E: Engine>(
    run: &mut Solve<'_, E>,
    node: &Node<E::State>,
    k: usize,
) -> Result<Option<Asked<E::State>>> {
    let marker = run.cfg.rstar.sub_question.replace("{k}", &k.to_string());
    let asking = literal(run, node, &marker)?;
    let Some(mut question) = lines(run, &asking, 1)?.pop() else {
        return Ok(None);
    };
    if let Some(last) = question.steps.last_mut() {
        *last = format!("{}{last}", marker.trim_start());
    }
    if question.terminal {
        // The "sub-question" stated the final answer: it is a terminal A1-like step.
        let v = single_value(&question);
        return Ok(Some(((question, v), asking)));
    }
    let base = literal(
        run,
        &question,
        &run.cfg.rstar.sub_answer.replace("{k}", &k.to_string()),
    )?;
    Ok(sub_answer(run, &base, k)?.map(|made| (made, base)))
}

/// A3's answer and A4: `votes` answers to the sub-question from `base` (its state just
/// before the answer); the majority's, valued by its share when it ends the problem.
fn sub_answer<E: Engine>(
    run: &mut Solve<'_, E>,
    base: &Node<E::State>,
    k: usize,
) -> Result<Option<Made<E::State>>> {
    let marker = run.cfg.rstar.sub_answer.replace("{k}", &k.to_string());
    let answers = lines(run, base, run.cfg.rstar.votes)?;
    let ex = &*run.cfg.extractor.0;
    let voted = majority(answers, |n| {
        n.answer
            .clone()
            .or_else(|| n.steps.last().and_then(|s| ex.extract(s)))
    });
    Ok(voted.map(|(mut n, share)| {
        if let Some(last) = n.steps.last_mut() {
            *last = format!("{}{last}", marker.trim_start());
        }
        let v = n.terminal.then_some(share);
        (n, v)
    }))
}

/// A5: the question restated (one line after the marker).
fn rephrase<E: Engine>(
    run: &mut Solve<'_, E>,
    node: &Node<E::State>,
) -> Result<Option<Made<E::State>>> {
    let marker = run.cfg.rstar.rephrase.clone();
    let start = literal(run, node, &marker)?;
    Ok(lines(run, &start, 1)?.pop().map(|mut c| {
        if let Some(last) = c.steps.last_mut() {
            *last = format!("{}{last}", marker.trim_start());
        }
        let v = single_value(&c);
        (c, v)
    }))
}

/// The tree as the reasoning layer's tree record.
fn export<S>(tree: &[RNode<S>]) -> SearchTree {
    SearchTree {
        nodes: tree
            .iter()
            .enumerate()
            .map(|(id, n)| TreeNode {
                id,
                parent: n.parent.map(|p| p as usize),
                depth: n.node.depth,
                steps: n.node.steps.clone(),
                raw: n.node.raw.clone(),
                terminal: n.node.terminal,
                answer: n.node.answer.clone(),
                visits: n.visits,
                mean: (n.visits > 0).then(|| n.value_sum / n.visits as f64),
                prior: 1.0,
                value: n.reward,
                tokens: n.node.step_logprobs.len(),
            })
            .collect(),
    }
}
