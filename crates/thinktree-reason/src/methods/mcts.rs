//! MCTS over reasoning steps, driving the generic search core.
//!
//! The core owns selection (PUCT with virtual loss), progressive widening, backup and the
//! budgets; this adapter supplies the three LLM pieces. The policy samples the children of
//! a whole batch of leaves in one `sample_many` call (leaf batching and sibling batching
//! at once) and turns their length-normalised probabilities into priors; the evaluator
//! scores the batch's new leaves in one scorer call; a terminal child is scored when it
//! is created and its score is reused on every visit. That score proves nothing unless
//! the scorer is exact ([`crate::Scorer::is_exact`]), so the search spends its budget and
//! every finished chain becomes a candidate for the configured aggregation. With
//! [`crate::SolveConfig::reflect`], each chain that states an answer gets a sibling, the
//! same chain with Marco-o1's [`crate::REFLECTION`] appended, which the search may expand
//! like any open node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use thinktree_search::{
    Backup, Evaluations, Evaluator, ExpandRequest, Mcts, MctsConfig, Policy, Problem, Proposals,
    Selection,
};

use crate::aggregate::Finished;
use crate::config::SolveConfig;
use crate::error::Result;
use crate::meter::Meter;
use crate::node::{Node, merge_siblings, step_key};
use crate::scorer::Scorer;
use crate::stepper::Stepper;
use thinktree_engine::Engine;

use super::reflect::{Reflection, reflected};
use super::{Outcome, Solve, score_nodes};

/// A search-tree state: a reasoning node and, if terminal, its score (exact only if the scorer is).
#[derive(Debug)]
struct Step<S> {
    node: Node<S>,
    value: Option<f64>,
}

type Shared<S> = Arc<Step<S>>;

/// The problem, policy and evaluator in one: they share the engine and the bill.
struct LlmSearch<'a, E: Engine> {
    engine: &'a E,
    cfg: &'a SolveConfig,
    question: &'a str,
    stepper: Stepper<'a>,
    scorer: &'a dyn Scorer<E>,
    root: Shared<E::State>,
    meter: Mutex<Meter>,
    /// Each expanded node's children's step keys, so a widening call that samples a step
    /// the node already has does not add it twice.
    children: Mutex<HashMap<usize, Vec<(String, bool)>>>,
}

impl<E: Engine> LlmSearch<'_, E> {
    fn meter(&self) -> MutexGuard<'_, Meter> {
        // A panic elsewhere cannot leave the meter half-updated (plain counters), so a
        // poisoned lock is still safe to read.
        self.meter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scores nodes; returns the scores and the generated tokens spent. A partial
    /// solution is valued by the judgement of its newest step (its ancestors were judged
    /// when they were leaves, and backup averages them in); a finished one (`whole`) is
    /// judged entirely, since its value is final and is never averaged with its path.
    fn score(&self, nodes: &[&Node<E::State>], whole: bool) -> Result<(Vec<f64>, u64)> {
        if nodes.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let (seed, left) = {
            let mut m = self.meter();
            (m.next_seed(), m.left())
        };
        let (scores, usage) = score_nodes(
            self.engine,
            self.scorer,
            self.question,
            nodes,
            whole,
            seed,
            left,
        )?;
        if usage.forward_calls > 0 {
            self.meter().add(usage);
        }
        Ok((scores, usage.generated_tokens))
    }

    fn propose_inner(
        &self,
        batch: &[ExpandRequest<'_, Shared<E::State>>],
    ) -> Result<Proposals<Shared<E::State>>> {
        let left = self.meter().left();
        if left == 0 {
            // Out of budget: a childless leaf ends where it stands (it still gets an
            // answer and a vote); a widened node is simply exhausted.
            let mut cut = Vec::new();
            let mut owners = Vec::new();
            for (i, r) in batch.iter().enumerate() {
                if r.existing_children == 0 {
                    let mut node = r.state.node.clone();
                    self.stepper.finish(&mut node);
                    cut.push(node);
                    owners.push(i);
                }
            }
            let refs: Vec<&Node<E::State>> = cut.iter().collect();
            let (scores, cost) = self.score(&refs, true)?;
            let mut actions = vec![Vec::new(); batch.len()];
            for ((i, node), v) in owners.into_iter().zip(cut).zip(scores) {
                actions[i].push((
                    Arc::new(Step {
                        node,
                        value: Some(v),
                    }),
                    1.0,
                ));
            }
            return Ok(Proposals { actions, cost });
        }
        let wanted: Vec<usize> = batch
            .iter()
            .map(|r| r.wanted.clamp(1, self.cfg.expand))
            .collect();
        let rows: usize = wanted.iter().sum();
        let params = {
            let mut m = self.meter();
            let seed = m.next_seed();
            self.stepper
                .params(self.cfg.temperature, m.per_row(rows), seed)
        };
        let parents: Vec<&Node<E::State>> = batch.iter().map(|r| &r.state.node).collect();
        let (children, usage) =
            self.stepper
                .sample_children(self.engine, &parents, &wanted, &params)?;
        self.meter().add(usage);
        let merged: Vec<Vec<(Node<E::State>, f64)>> = {
            let mut known = self.children.lock().unwrap_or_else(|p| p.into_inner());
            children
                .into_iter()
                .zip(batch)
                .map(|(kids, r)| {
                    let seen = known.entry(r.node.index()).or_default();
                    let fresh: Vec<(Node<E::State>, f64)> = merge_siblings(kids)
                        .children
                        .into_iter()
                        .filter(|(n, _)| !seen.contains(&step_key(n)))
                        .collect();
                    seen.extend(fresh.iter().map(|(n, _)| step_key(n)));
                    // Nothing new from a widening call: the core marks the node exhausted
                    // (the policy keeps proposing the steps it already has).
                    fresh
                })
                .collect()
        };
        // Terminal children are scored now, all in one scorer call.
        let terminal: Vec<&Node<E::State>> = merged
            .iter()
            .flatten()
            .filter(|(n, _)| n.terminal)
            .map(|(n, _)| n)
            .collect();
        let (scores, score_cost) = self.score(&terminal, true)?;
        let mut scores = scores.into_iter();
        let mut actions = Vec::with_capacity(merged.len());
        for kids in merged {
            let mut list = Vec::with_capacity(kids.len());
            for (node, prior) in kids {
                let value = if node.terminal { scores.next() } else { None };
                // Marco-o1's reflection as an action: beside a chain that just stated its
                // answer, the same chain told to rethink, with the same prior; the search
                // chooses between stopping there and going on. A path reflects once.
                let open = if self.cfg.reflect
                    && node.answer.is_some()
                    && node.reflected.is_none()
                    && self.meter().left() > 0
                {
                    let (open, usage) = reflected(self.engine, &node)?;
                    self.meter().add(usage);
                    Some(open)
                } else {
                    None
                };
                list.push((Arc::new(Step { node, value }), prior as f32));
                if let Some(node) = open {
                    list.push((Arc::new(Step { node, value: None }), prior as f32));
                }
            }
            actions.push(list);
        }
        Ok(Proposals {
            actions,
            cost: usage.generated_tokens + score_cost,
        })
    }
}

impl<E: Engine> Problem for LlmSearch<'_, E> {
    type State = Shared<E::State>;
    type Action = Shared<E::State>;

    fn initial_state(&self) -> thinktree_search::Result<Self::State> {
        Ok(self.root.clone())
    }

    /// The action *is* the child: sampling a step already produced its state.
    fn apply(
        &self,
        _state: &Self::State,
        action: &Self::Action,
    ) -> thinktree_search::Result<Self::State> {
        Ok(action.clone())
    }

    fn terminal_value(&self, state: &Self::State) -> Option<f64> {
        state.node.terminal.then(|| state.value.unwrap_or(0.0))
    }

    /// A finished chain's score is the scorer's estimate unless the scorer declares
    /// itself exact: an estimate never marks a node solved, so the search keeps spending
    /// its budget on other lines instead of stopping at the first chain the scorer likes.
    fn terminal_is_exact(&self, _state: &Self::State) -> bool {
        self.scorer.is_exact()
    }
}

impl<E: Engine> Policy<Shared<E::State>, Shared<E::State>> for LlmSearch<'_, E> {
    fn propose(
        &self,
        batch: &[ExpandRequest<'_, Shared<E::State>>],
    ) -> thinktree_search::Result<Proposals<Shared<E::State>>> {
        self.propose_inner(batch)
            .map_err(crate::error::Shared::wrap)
    }
}

impl<E: Engine> Evaluator<Shared<E::State>> for LlmSearch<'_, E> {
    fn evaluate(&self, states: &[&Shared<E::State>]) -> thinktree_search::Result<Evaluations> {
        let nodes: Vec<&Node<E::State>> = states.iter().map(|s| &s.node).collect();
        let (values, cost) = self
            .score(&nodes, false)
            .map_err(crate::error::Shared::wrap)?;
        Ok(Evaluations { values, cost })
    }
}

/// The core's config from ours.
fn core_config(cfg: &SolveConfig, budget_left: usize) -> Result<MctsConfig> {
    let mut b = MctsConfig::builder()
        .selection(Selection::Puct { c: cfg.c_puct })
        .backup(Backup::Mean)
        .simulations(cfg.simulations as u64)
        .cost(budget_left.max(1) as u64)
        .batch_size(cfg.leaf_batch)
        .expansion_width(cfg.expand)
        .seed(cfg.seed)
        .value_bounds(0.0, 1.0)
        .max_depth(u32::try_from(cfg.max_steps).unwrap_or(u32::MAX))
        .early_stop(cfg.early_stop.is_some());
    if let Some((k, alpha)) = cfg.widening {
        b = b.widening(k, alpha);
    }
    Ok(b.build()?)
}

/// Runs the search; every terminal leaf votes, ranked by visits (the most-visited final
/// line wins [`crate::Aggregation::Best`]).
pub(crate) fn run<E: Engine>(run: &mut Solve<'_, E>) -> Result<Outcome> {
    let cfg = run.cfg;
    let meter = std::mem::replace(&mut run.meter, Meter::new(0, 0));
    let budget_left = meter.left();
    let search = LlmSearch {
        engine: run.engine,
        cfg,
        question: run.question,
        stepper: run.stepper,
        scorer: run.scorer,
        root: Arc::new(Step {
            node: run.root.clone(),
            value: None,
        }),
        meter: Mutex::new(meter),
        children: Mutex::new(HashMap::new()),
    };
    let mut mcts = Mcts::new(core_config(cfg, budget_left)?)?;
    let result = mcts.run(&search, &search, &search);
    let LlmSearch { meter, .. } = search;
    run.meter = meter.into_inner().unwrap_or_else(|p| p.into_inner());
    // An engine or scorer error comes back out of the core as itself (`Error::from`).
    let result = result?;

    let best_end = result.best_path_by_visits.last().cloned();
    let mut finished: Vec<Finished> = result
        .terminals
        .iter()
        .map(|t| {
            let is_best = best_end.as_ref().is_some_and(|b| Arc::ptr_eq(b, &t.state));
            let rank = t.visits as f64 + 0.5 * t.value + if is_best { 1e9 } else { 0.0 };
            Finished {
                steps: t.state.node.steps.clone(),
                answer: t.state.node.answer.clone(),
                score: t.value,
                rank,
            }
        })
        .collect();
    if finished.is_empty() {
        // Nothing finished within the budget: read an answer off the most visited line.
        let mut node = best_end.map_or_else(|| run.root.clone(), |s| s.node.clone());
        run.stepper.finish(&mut node);
        finished.push(Finished {
            steps: node.steps,
            answer: node.answer,
            score: 0.0,
            rank: 0.0,
        });
    }
    // Every finished chain that passed through a reflection, with the answer it had then.
    let reflections = result
        .terminals
        .iter()
        .filter_map(|t| {
            let node = &t.state.node;
            node.reflected.clone().map(|before| Reflection {
                before,
                after: node.answer.clone(),
            })
        })
        .collect();
    let mut out = Outcome {
        finished,
        reflections,
        early_stopped: result.stats.stop_reason == thinktree_search::StopReason::EarlyStop,
        ..Outcome::default()
    };
    if cfg.export_tree
        && let Some(tree) = mcts.tree()
    {
        out.tree = Some(structured(tree)?);
    }
    Ok(out)
}

/// The core's tree as the reasoning layer's one tree record.
fn structured<S>(
    tree: &thinktree_search::Tree<Shared<S>, Shared<S>>,
) -> Result<crate::tree::SearchTree> {
    use crate::tree::{SearchTree, TreeNode};
    let mut nodes = Vec::with_capacity(tree.len());
    for (id, n) in tree.iter() {
        let step = tree.state(id)?;
        let stats = n.stats();
        nodes.push(TreeNode {
            id: id.index(),
            parent: n.parent().map(|p| p.index()),
            depth: n.depth() as usize,
            steps: step.node.steps.clone(),
            raw: step.node.raw.clone(),
            terminal: step.node.terminal,
            answer: step.node.answer.clone(),
            visits: stats.visits,
            mean: (stats.visits > 0).then(|| stats.mean()),
            prior: n.prior(),
            value: n.terminal_value().or(n.evaluation()),
            tokens: step.node.step_logprobs.len(),
        });
    }
    Ok(SearchTree { nodes })
}
