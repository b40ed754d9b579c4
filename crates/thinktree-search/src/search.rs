//! The search loop: select a batch of leaves under virtual loss, expand and evaluate them in
//! one call each, back up, repeat until a budget runs out.

use crate::backprop::{Backup, BackupRule};
use crate::budget::Budget;
use crate::config::MctsConfig;
use crate::error::{Error, Result};
use crate::problem::{Evaluator, NoRollout, Player, Policy, Problem, RolloutPolicy};
use crate::result::{SearchResult, StopReason, build_result};
use crate::select::{ChildView, ParentView, SelectionRule};
use crate::tree::{Hot, NodeId, Tree};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// A Monte Carlo Tree Search over one problem. Keeps the tree of its last run so the caller
/// can inspect or export it.
#[derive(Debug, Clone)]
pub struct Mcts<S, A> {
    config: MctsConfig,
    tree: Option<Tree<S, A>>,
}

/// Where a selected path ended.
enum Leaf {
    /// A terminal, solved or depth-limited node whose value is already known.
    Known(f64),
    /// A node never evaluated: needs the evaluator (or a rollout).
    Evaluate,
    /// A node that may get (more) children: needs the policy.
    Expand,
    /// The leaf is already waiting in this batch; the path is dropped.
    Collision,
}

impl<S, A> Mcts<S, A>
where
    S: Clone,
    A: Clone,
{
    /// A search with a validated config.
    pub fn new(config: MctsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Mcts { config, tree: None })
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &MctsConfig {
        &self.config
    }

    /// The tree of the last run, `None` before the first.
    #[must_use]
    pub fn tree(&self) -> Option<&Tree<S, A>> {
        self.tree.as_ref()
    }

    /// Takes the tree of the last run out of the search (e.g. to keep states alive).
    pub fn into_tree(self) -> Option<Tree<S, A>> {
        self.tree
    }

    /// Searches `problem` from its initial state with a fresh tree; leaves go straight to the
    /// evaluator.
    pub fn run<P, Pol, E>(
        &mut self,
        problem: &P,
        policy: &Pol,
        evaluator: &E,
    ) -> Result<SearchResult<S, A>>
    where
        P: Problem<State = S, Action = A>,
        Pol: Policy<S, A>,
        E: Evaluator<S>,
    {
        self.run_with_rollout(problem, policy, &NoRollout, evaluator)
    }

    /// Like [`run`](Mcts::run), but each new leaf is first played out with `rollout` until a
    /// terminal state (its value is used) or `rollout_depth` steps (the evaluator scores where
    /// the rollout stopped).
    pub fn run_with_rollout<P, Pol, R, E>(
        &mut self,
        problem: &P,
        policy: &Pol,
        rollout: &R,
        evaluator: &E,
    ) -> Result<SearchResult<S, A>>
    where
        P: Problem<State = S, Action = A>,
        Pol: Policy<S, A>,
        R: RolloutPolicy<S, A>,
        E: Evaluator<S>,
    {
        self.config.validate()?;
        let start = Instant::now();
        let root_state = problem.initial_state()?;
        let terminal = problem.terminal_value(&root_state);
        if let Some(v) = terminal {
            self.config.value_bounds.check(v)?;
        }
        let terminal = terminal.map(|v| (v, problem.terminal_is_exact(&root_state)));
        let to_move = problem.to_move(&root_state);
        let tree = Tree::with_root(root_state, to_move, terminal);
        let mut run = Run {
            cfg: &self.config,
            problem,
            policy,
            rollout,
            evaluator,
            tree,
            rng: ChaCha8Rng::seed_from_u64(self.config.seed),
            budget: Budget::new(&self.config, start),
            stats: Counters::default(),
            paths: Vec::new(),
            active: 0,
            scratch: Scratch::default(),
            inv_range: 1.0 / (self.config.value_bounds.max - self.config.value_bounds.min),
        };
        let outcome = run.search();
        let Run { tree, stats, .. } = run;
        // Keep the tree even on error so the caller can inspect how far it got.
        self.tree = Some(tree);
        let stop_reason = outcome?;
        let tree = self.tree.as_ref().ok_or(Error::UnknownNode(0))?;
        Ok(build_result(
            &self.config,
            tree,
            stats,
            stop_reason,
            start.elapsed(),
        ))
    }
}

/// Counters accumulated during a run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) simulations: u64,
    pub(crate) rounds: u64,
    pub(crate) collisions: u64,
    pub(crate) policy_calls: u64,
    pub(crate) evaluator_calls: u64,
    pub(crate) evaluations: u64,
    pub(crate) rollout_steps: u64,
    pub(crate) cost: u64,
}

/// Per-round work lists, kept between rounds to avoid allocating per simulation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Path slots waiting for the policy.
    to_expand: Vec<usize>,
    /// Path slots being expanded in the current pass.
    waiting: Vec<usize>,
    /// Path slots waiting for the evaluator.
    to_eval: Vec<usize>,
    /// Their leaves.
    leaves: Vec<NodeId>,
    /// Distinct nodes of the current expansion pass.
    nodes: Vec<NodeId>,
    /// Nodes already expanded this round (asked at most once per round).
    expanded: Vec<NodeId>,
}

/// One run's working set: borrowed callbacks, the tree and reusable path buffers.
pub(crate) struct Run<'a, S, A, P, Pol, R, E> {
    pub(crate) cfg: &'a MctsConfig,
    pub(crate) problem: &'a P,
    pub(crate) policy: &'a Pol,
    pub(crate) rollout: &'a R,
    pub(crate) evaluator: &'a E,
    pub(crate) tree: Tree<S, A>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) budget: Budget,
    pub(crate) stats: Counters,
    /// Path buffers, reused across rounds to avoid allocating per simulation.
    pub(crate) paths: Vec<Vec<NodeId>>,
    /// Paths of `paths` in use this round.
    pub(crate) active: usize,
    /// Reusable per-round buffers.
    pub(crate) scratch: Scratch,
    pub(crate) inv_range: f64,
}

impl<S, A, P, Pol, R, E> Run<'_, S, A, P, Pol, R, E>
where
    S: Clone,
    A: Clone,
    P: Problem<State = S, Action = A>,
    Pol: Policy<S, A>,
    R: RolloutPolicy<S, A>,
    E: Evaluator<S>,
{
    fn search(&mut self) -> Result<StopReason> {
        loop {
            if self.tree.nodes[0].solved.is_some() {
                return Ok(StopReason::Solved);
            }
            if self.tree.nodes[0].closed {
                return Ok(StopReason::Exhausted);
            }
            let want = match self.budget.exhausted(&self.stats) {
                Err(reason) => return Ok(reason),
                Ok(want) => want.min(self.cfg.batch_size as u64) as usize,
            };
            if self.cfg.early_stop && self.out_of_reach() {
                return Ok(StopReason::EarlyStop);
            }
            self.round(want)?;
        }
    }

    /// True when no root child can catch the most visited one with the simulations left.
    fn out_of_reach(&self) -> bool {
        let Some(left) = self.budget.simulations_left(&self.stats) else {
            return false;
        };
        let (mut first, mut second) = (0u64, 0u64);
        for &c in &self.tree.nodes[0].children {
            let v = self.tree.hot[c.index()].visits;
            if v > first {
                second = first;
                first = v;
            } else if v > second {
                second = v;
            }
        }
        self.tree.nodes[0].children.len() > 1 && first - second > left
    }

    /// One batch: select `want` paths, expand what needs expanding, evaluate, back up.
    fn round(&mut self, want: usize) -> Result<()> {
        self.stats.rounds += 1;
        self.active = 0;
        // Buffers live in `scratch` between rounds so a round allocates nothing of its own.
        let mut sc = std::mem::take(&mut self.scratch);
        sc.to_expand.clear();
        sc.to_eval.clear();
        sc.expanded.clear();
        for _ in 0..want {
            let slot = self.new_path();
            let leaf = self.descend(slot, &[])?;
            self.dispatch(slot, leaf, &mut sc.to_expand, &mut sc.to_eval)?;
        }
        while !sc.to_expand.is_empty() {
            std::mem::swap(&mut sc.waiting, &mut sc.to_expand);
            sc.to_expand.clear();
            sc.nodes.clear();
            for &slot in &sc.waiting {
                let leaf = self.leaf_of(slot);
                if !sc.nodes.contains(&leaf) {
                    sc.nodes.push(leaf);
                }
            }
            self.expand(&sc.nodes)?;
            sc.expanded.extend_from_slice(&sc.nodes);
            for &slot in &sc.waiting {
                let leaf = self.descend(slot, &sc.expanded)?;
                self.dispatch(slot, leaf, &mut sc.to_expand, &mut sc.to_eval)?;
            }
        }
        if !sc.to_eval.is_empty() {
            sc.leaves.clear();
            for &slot in &sc.to_eval {
                sc.leaves.push(self.leaf_of(slot));
            }
            self.evaluate(&sc.to_eval, &sc.leaves)?;
        }
        self.scratch = sc;
        Ok(())
    }

    fn new_path(&mut self) -> usize {
        let slot = self.active;
        self.active += 1;
        if self.paths.len() < self.active {
            self.paths.push(Vec::with_capacity(32));
        }
        let path = &mut self.paths[slot];
        path.clear();
        path.push(NodeId::ROOT);
        self.tree.hot[0].virtual_visits += 1;
        slot
    }

    pub(crate) fn leaf_of(&self, slot: usize) -> NodeId {
        // A path always holds at least the root.
        self.paths[slot].last().copied().unwrap_or(NodeId::ROOT)
    }

    /// Routes a finished selection: known values are backed up at once, the rest queued.
    fn dispatch(
        &mut self,
        slot: usize,
        leaf: Leaf,
        to_expand: &mut Vec<usize>,
        to_eval: &mut Vec<usize>,
    ) -> Result<()> {
        match leaf {
            Leaf::Known(v) => self.backup(slot, v),
            Leaf::Evaluate => to_eval.push(slot),
            Leaf::Expand => to_expand.push(slot),
            Leaf::Collision => {
                self.stats.collisions += 1;
                for &id in &self.paths[slot] {
                    self.tree.hot[id.index()].virtual_visits -= 1;
                }
            }
        }
        Ok(())
    }

    /// Walks down from the end of path `slot` until a leaf, adding virtual visits on the way.
    /// `expanded` lists nodes already given to the policy this round (asked at most once).
    fn descend(&mut self, slot: usize, expanded: &[NodeId]) -> Result<Leaf> {
        let cfg = self.cfg;
        let bounds = cfg.value_bounds;
        let mut cur = self.leaf_of(slot);
        loop {
            let node = &self.tree.nodes[cur.index()];
            let hot = &self.tree.hot[cur.index()];
            if let Some(v) = node.solved.or(node.terminal) {
                return Ok(Leaf::Known(v));
            }
            let at_limit = cfg.max_depth.is_some_and(|d| node.depth >= d);
            let is_root = cur == NodeId::ROOT;
            if node.evaluation.is_none() && !is_root && node.children.is_empty() {
                // A fresh leaf; a second path reaching it in the same batch is a collision.
                return Ok(if hot.virtual_visits > 1 {
                    Leaf::Collision
                } else {
                    Leaf::Evaluate
                });
            }
            if at_limit {
                return Ok(match node.evaluation {
                    Some(v) if !self.rollout.enabled() => Leaf::Known(v),
                    _ if hot.virtual_visits > 1 => Leaf::Collision,
                    _ => Leaf::Evaluate,
                });
            }
            if !node.exhausted && !expanded.contains(&cur) {
                let room = match cfg.widening {
                    None => node.children.is_empty(),
                    Some(w) => node.children.len() < w.allowed(hot.visits),
                };
                if room {
                    return Ok(Leaf::Expand);
                }
            }
            if node.children.is_empty() {
                // Asked this round and got nothing: only reachable for an exhausted dead end,
                // which `expand` already rejected; treat its evaluation as final.
                return Ok(Leaf::Known(node.evaluation.unwrap_or(bounds.min)));
            }
            let child = self.pick_child(cur);
            self.tree.hot[child.index()].virtual_visits += 1;
            self.paths[slot].push(child);
            cur = child;
        }
    }

    /// The child of `id` with the best selection score, ties going to the first after a
    /// seeded rotation (so root-parallel trees diverge while staying reproducible).
    fn pick_child(&mut self, id: NodeId) -> NodeId {
        let cfg = self.cfg;
        let bounds = cfg.value_bounds;
        let vl = cfg.virtual_loss;
        let inv_range = self.inv_range;
        let tree = &self.tree;
        let node = &tree.nodes[id.index()];
        let own = &tree.hot[id.index()];
        let children = &node.children;
        let len = children.len();
        let backup = &cfg.backup;
        let norm = |v: f64| (v - bounds.min) * inv_range;
        // Built-in rules read the dense stats only; custom ones get the full public stats.
        let value_of = |i: usize, h: &Hot| match backup {
            Backup::Mean | Backup::Discounted { .. } => h.value_sum / h.visits as f64,
            Backup::Max => h.max,
            _ => backup.node_value(&tree.stats_of(i)),
        };
        let own_q = if own.visits == 0 {
            0.5
        } else {
            let q = norm(value_of(id.index(), own));
            if node.chooser == node.to_move {
                q
            } else {
                1.0 - q
            }
        };
        let parent = ParentView {
            // Exclude this path's own virtual visit: sequential search then is textbook UCT.
            visits: own.visits as f64 + f64::from(own.virtual_visits.saturating_sub(1)) * vl,
            value: own_q,
            simulations: self.stats.simulations,
        };
        let fpu = cfg.first_play_value.unwrap_or(own_q);
        let uniform = 1.0 / len as f64;
        let inv_prior_total = if node.prior_total > 0.0 {
            1.0 / f64::from(node.prior_total)
        } else {
            0.0
        };
        let prepared = cfg.selection.prepare(&parent);
        let start = if len > 1 {
            (self.rng.next_u32() as usize) % len
        } else {
            0
        };
        let (contiguous, first) = (node.contiguous, node.first_child);
        let child_at = |i: usize| {
            if contiguous {
                NodeId(first + i as u32)
            } else {
                children[i]
            }
        };
        let mut best = child_at(start);
        let mut best_score = f64::NEG_INFINITY;
        for k in 0..len {
            let mut i = start + k;
            if i >= len {
                i -= len;
            }
            let cid = child_at(i);
            let c = &tree.hot[cid.index()];
            let visits = c.visits as f64;
            let virt = f64::from(c.virtual_visits) * vl;
            let eff = visits + virt;
            let value = if eff == 0.0 {
                fpu
            } else if c.visits == 0 {
                // Only in-flight visits: counted as losses.
                0.0
            } else if c.virtual_visits == 0 {
                norm(value_of(cid.index(), c))
            } else {
                norm(value_of(cid.index(), c)) * visits / eff
            };
            let prior = if inv_prior_total > 0.0 {
                f64::from(c.prior) * inv_prior_total
            } else {
                uniform
            };
            let view = ChildView {
                visits: eff,
                value,
                prior,
            };
            let score = match prepared {
                Some(p) => p.score(&view),
                None => cfg.selection.score(&parent, &view),
            };
            if score > best_score {
                best_score = score;
                best = cid;
            }
        }
        best
    }

    /// Credits `value` (first player's perspective) to every node on path `slot` and removes
    /// the path's virtual visits.
    pub(crate) fn backup(&mut self, slot: usize, value: f64) {
        let bounds = self.cfg.value_bounds;
        let backup = &self.cfg.backup;
        let path = &self.paths[slot];
        let last = path.len() - 1;
        let plain = matches!(backup, Backup::Mean | Backup::Max);
        for (i, &id) in path.iter().enumerate() {
            let v = if plain {
                value
            } else {
                backup.propagate(value, (last - i) as u32)
            };
            let x = if self.tree.nodes[id.index()].chooser == Player::First {
                v
            } else {
                bounds.flip(v)
            };
            let h = &mut self.tree.hot[id.index()];
            h.visits += 1;
            h.value_sum += x;
            if x > h.max {
                h.max = x;
            }
            h.virtual_visits -= 1;
        }
        self.tree.nodes[path[last].index()].leaf_visits += 1;
        self.stats.simulations += 1;
    }
}
