//! Expansion: one batched policy call creates the children of several leaves, and proven
//! values propagate up (MCTS-Solver) so decided lines are never simulated again.

use crate::error::{Error, Result};
use crate::problem::{Evaluator, ExpandRequest, Player, Policy, Problem, RolloutPolicy};
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
    /// Asks the policy, in one batch, for new children of `nodes`, and creates them.
    pub(crate) fn expand(&mut self, nodes: &[NodeId]) -> Result<()> {
        let cfg = self.cfg;
        let proposals = {
            let requests: Vec<ExpandRequest<'_, S>> = nodes
                .iter()
                .map(|&id| {
                    let n = &self.tree.nodes[id.index()];
                    let wanted = match cfg.widening {
                        Some(w) => w
                            .allowed(self.tree.hot[id.index()].visits)
                            .saturating_sub(n.children.len())
                            .max(1),
                        None => cfg.expansion_width,
                    };
                    ExpandRequest {
                        node: id,
                        state: &self.tree.states[id.index()],
                        depth: n.depth,
                        existing_children: n.children.len(),
                        wanted,
                    }
                })
                .collect();
            self.policy.propose(&requests)?
        };
        self.stats.policy_calls += 1;
        self.stats.cost = self.stats.cost.saturating_add(proposals.cost);
        Error::check_batch("policy", nodes.len(), proposals.actions.len())?;
        for (&id, actions) in nodes.iter().zip(proposals.actions) {
            if actions.is_empty() {
                if self.tree.nodes[id.index()].children.is_empty() {
                    return Err(Error::EmptyActionSet { node: id.0 });
                }
                self.tree.nodes[id.index()].exhausted = true;
            } else {
                self.tree.nodes[id.index()]
                    .children
                    .reserve_exact(actions.len());
                for (action, prior) in actions {
                    if !(prior.is_finite() && prior >= 0.0) {
                        return Err(Error::InvalidPrior(prior));
                    }
                    let state = self.problem.apply(&self.tree.states[id.index()], &action)?;
                    let terminal = self.problem.terminal_value(&state);
                    if let Some(v) = terminal {
                        cfg.value_bounds.check(v)?;
                    }
                    let terminal = terminal.map(|v| (v, self.problem.terminal_is_exact(&state)));
                    let to_move = self.problem.to_move(&state);
                    self.tree
                        .push_child(id, action, prior, state, to_move, terminal)?;
                }
                if cfg.widening.is_none() {
                    self.tree.nodes[id.index()].exhausted = true;
                }
            }
            self.propagate_solved(id);
            self.propagate_closed(id);
        }
        Ok(())
    }

    /// Marks `id` and then its ancestors closed while every child is closed: nothing below
    /// is left to expand (each line ends in a terminal, proven or estimated). A closed
    /// root ends the search ([`crate::StopReason::Exhausted`]).
    fn propagate_closed(&mut self, mut id: NodeId) {
        loop {
            let node = &self.tree.nodes[id.index()];
            if node.closed
                || !node.exhausted
                || node.children.is_empty()
                || !node.children.iter().all(|c| {
                    let c = &self.tree.nodes[c.index()];
                    c.closed || c.solved.is_some()
                })
            {
                return;
            }
            self.tree.nodes[id.index()].closed = true;
            match self.tree.nodes[id.index()].parent {
                Some(p) => id = p,
                None => return,
            }
        }
    }

    /// Marks `id` and then its ancestors solved while their children prove their value.
    fn propagate_solved(&mut self, mut id: NodeId) {
        let bounds = self.cfg.value_bounds;
        loop {
            let node = &self.tree.nodes[id.index()];
            if node.solved.is_some() || !node.exhausted || node.children.is_empty() {
                return;
            }
            let mover = node.to_move;
            let for_mover = |v: f64| {
                if mover == Player::First {
                    v
                } else {
                    bounds.flip(v)
                }
            };
            let mut best: Option<f64> = None;
            let mut all = true;
            let mut won = None;
            for &c in &node.children {
                match self.tree.nodes[c.index()].solved {
                    Some(v) => {
                        if for_mover(v) >= bounds.max {
                            won = Some(v);
                            break;
                        }
                        if best.is_none_or(|b| for_mover(v) > for_mover(b)) {
                            best = Some(v);
                        }
                    }
                    None => all = false,
                }
            }
            let solved = match won {
                Some(v) => v,
                None if all => match best {
                    Some(v) => v,
                    None => return,
                },
                None => return,
            };
            self.tree.nodes[id.index()].solved = Some(solved);
            match self.tree.nodes[id.index()].parent {
                Some(p) => id = p,
                None => return,
            }
        }
    }
}
