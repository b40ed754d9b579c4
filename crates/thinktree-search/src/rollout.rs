//! Leaf evaluation: optional rollouts to a terminal state (or the depth limit), then one
//! batched evaluator call for every leaf still without a value, then backup.

use crate::error::{Error, Result};
use crate::problem::{Evaluator, Policy, Problem, RolloutPolicy};
use crate::search::Run;
use crate::tree::NodeId;

impl<S, A, P, Pol, R, E> Run<'_, S, A, P, Pol, R, E>
where
    S: Clone,
    A: Clone,
    P: Problem<State = S, Action = A>,
    Pol: Policy<S, A>,
    R: RolloutPolicy<S, A>,
    E: Evaluator<S>,
{
    /// Rolls out (if enabled) and evaluates the leaves of the given paths in one batch, then
    /// backs every path up.
    pub(crate) fn evaluate(&mut self, slots: &[usize], leaves: &[NodeId]) -> Result<()> {
        let cfg = self.cfg;
        if !self.rollout.enabled() {
            return self.evaluate_direct(slots, leaves);
        }
        // Per leaf: a known value (rollout reached a terminal) or an index into `owned` /
        // a node whose state the evaluator scores directly.
        let mut values: Vec<Option<f64>> = vec![None; leaves.len()];
        let mut owned: Vec<(usize, S)> = Vec::new();
        {
            for (i, &leaf) in leaves.iter().enumerate() {
                let mut state = self.tree.states[leaf.index()].clone();
                let mut steps = 0;
                let mut done = None;
                while steps < cfg.rollout_depth {
                    if let Some(v) = self.problem.terminal_value(&state) {
                        done = Some(cfg.value_bounds.check(v)?);
                        break;
                    }
                    let (action, cost) = self.rollout.pick(&state, &mut self.rng)?;
                    self.stats.cost = self.stats.cost.saturating_add(cost);
                    let Some(action) = action else { break };
                    state = self.problem.apply(&state, &action)?;
                    steps += 1;
                }
                if done.is_none()
                    && let Some(v) = self.problem.terminal_value(&state)
                {
                    done = Some(cfg.value_bounds.check(v)?);
                }
                self.stats.rollout_steps += u64::from(steps);
                match done {
                    Some(v) => values[i] = Some(v),
                    None if steps == 0 => {}
                    None => owned.push((i, state)),
                }
            }
        }
        // Leaves the evaluator must score: those with neither a value nor a rollout state.
        let mut order: Vec<usize> = Vec::new();
        {
            let mut refs: Vec<&S> = Vec::new();
            let mut owned_iter = owned.iter().peekable();
            for (i, &leaf) in leaves.iter().enumerate() {
                if values[i].is_some() {
                    continue;
                }
                match owned_iter.peek() {
                    Some((j, s)) if *j == i => {
                        refs.push(s);
                        owned_iter.next();
                    }
                    _ => refs.push(&self.tree.states[leaf.index()]),
                }
                order.push(i);
            }
            if !refs.is_empty() {
                let evals = self.evaluator.evaluate(&refs)?;
                self.stats.evaluator_calls += 1;
                self.stats.evaluations += refs.len() as u64;
                self.stats.cost = self.stats.cost.saturating_add(evals.cost);
                Error::check_batch("evaluator", refs.len(), evals.values.len())?;
                for (&i, v) in order.iter().zip(evals.values) {
                    values[i] = Some(cfg.value_bounds.check(v)?);
                }
            }
        }
        for (k, &slot) in slots.iter().enumerate() {
            let v = values[k].unwrap_or(cfg.value_bounds.min);
            let leaf = leaves[k].index();
            if self.tree.nodes[leaf].evaluation.is_none() {
                self.tree.nodes[leaf].evaluation = Some(v);
            }
            self.backup(slot, v);
        }
        Ok(())
    }

    /// The evaluation step without rollouts: the evaluator scores the leaves' own states.
    fn evaluate_direct(&mut self, slots: &[usize], leaves: &[NodeId]) -> Result<()> {
        let cfg = self.cfg;
        let evals = {
            let refs: Vec<&S> = leaves
                .iter()
                .map(|l| &self.tree.states[l.index()])
                .collect();
            self.evaluator.evaluate(&refs)?
        };
        self.stats.evaluator_calls += 1;
        self.stats.evaluations += leaves.len() as u64;
        self.stats.cost = self.stats.cost.saturating_add(evals.cost);
        Error::check_batch("evaluator", leaves.len(), evals.values.len())?;
        for ((&slot, leaf), v) in slots.iter().zip(leaves).zip(evals.values) {
            let v = cfg.value_bounds.check(v)?;
            let node = &mut self.tree.nodes[leaf.index()];
            if node.evaluation.is_none() {
                node.evaluation = Some(v);
            }
            self.backup(slot, v);
        }
        Ok(())
    }
}
