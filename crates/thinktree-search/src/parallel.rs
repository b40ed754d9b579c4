//! rayon parallelism: independent trees over one problem with merged root statistics (root
//! parallelism, no locks on the hot path), and independent searches over many problems.

use crate::backprop::Backup;
use crate::config::MctsConfig;
use crate::error::{Error, Result};
use crate::problem::{Evaluator, NoRollout, Policy, Problem, RolloutPolicy};
use crate::result::{ChildSummary, SearchResult};
use crate::search::Mcts;
use rayon::prelude::*;

/// Seed of tree `i`: neighbouring trees get unrelated streams.
fn tree_seed(seed: u64, i: usize) -> u64 {
    crate::rng::derive_seed(seed, i as u64)
}

/// Share `total` between `n` trees, giving the remainder to the first ones.
fn share(total: u64, n: usize, i: usize) -> u64 {
    let n = n as u64;
    total / n + u64::from((i as u64) < total % n)
}

/// The config of tree `i` of `trees`: its own seed and its share of the simulation and cost
/// budgets, so the whole search spends what one tree would.
fn tree_config(config: &MctsConfig, trees: usize, i: usize) -> MctsConfig {
    let mut cfg = config.clone();
    cfg.seed = tree_seed(config.seed, i);
    cfg.simulations = config.simulations.map(|n| share(n, trees, i).max(1));
    cfg.cost = config.cost.map(|c| share(c, trees, i).max(1));
    cfg
}

/// Runs `trees` independent searches of `problem` on the rayon pool and merges them.
///
/// The simulation and cost budgets are split between the trees; the wall-time budget applies
/// to each. Root children are merged by action equality (visits and value sums added), the
/// best actions are chosen on the merged statistics, terminals are concatenated (tagged with
/// their tree) and counters summed.
pub fn root_parallel<P, Pol, E>(
    config: &MctsConfig,
    trees: usize,
    problem: &P,
    policy: &Pol,
    evaluator: &E,
) -> Result<SearchResult<P::State, P::Action>>
where
    P: Problem + Sync,
    P::State: Send,
    P::Action: PartialEq + Send,
    Pol: Policy<P::State, P::Action> + Sync,
    E: Evaluator<P::State> + Sync,
{
    root_parallel_with_rollout(config, trees, problem, policy, &NoRollout, evaluator)
}

/// [`root_parallel`] with rollouts from new leaves.
pub fn root_parallel_with_rollout<P, Pol, R, E>(
    config: &MctsConfig,
    trees: usize,
    problem: &P,
    policy: &Pol,
    rollout: &R,
    evaluator: &E,
) -> Result<SearchResult<P::State, P::Action>>
where
    P: Problem + Sync,
    P::State: Send,
    P::Action: PartialEq + Send,
    Pol: Policy<P::State, P::Action> + Sync,
    R: RolloutPolicy<P::State, P::Action> + Sync,
    E: Evaluator<P::State> + Sync,
{
    config.validate()?;
    if trees == 0 {
        return Err(Error::InvalidConfig(
            "root parallelism needs at least one tree".into(),
        ));
    }
    let results = (0..trees)
        .into_par_iter()
        .map(|i| {
            let mut search = Mcts::new(tree_config(config, trees, i))?;
            let mut r = search.run_with_rollout(problem, policy, rollout, evaluator)?;
            for t in &mut r.terminals {
                t.tree = i;
            }
            Ok(r)
        })
        .collect::<Result<Vec<_>>>()?;
    merge(config, results)
}

/// Searches every problem independently on the rayon pool, one result per problem in order.
pub fn search_many<P, Pol, E>(
    config: &MctsConfig,
    problems: &[P],
    policy: &Pol,
    evaluator: &E,
) -> Vec<Result<SearchResult<P::State, P::Action>>>
where
    P: Problem + Sync,
    P::State: Send,
    P::Action: Send,
    Pol: Policy<P::State, P::Action> + Sync,
    E: Evaluator<P::State> + Sync,
{
    problems
        .par_iter()
        .map(|p| Mcts::new(config.clone())?.run(p, policy, evaluator))
        .collect()
}

/// Merges per-tree results into one, as if the trees' root statistics were one tree's.
fn merge<S, A: Clone + PartialEq>(
    config: &MctsConfig,
    results: Vec<SearchResult<S, A>>,
) -> Result<SearchResult<S, A>> {
    let mut results = results.into_iter();
    let mut merged = results
        .next()
        .ok_or_else(|| Error::InvalidConfig("root parallelism needs at least one tree".into()))?;
    // Keep each tree's best paths to pick the one matching the merged best action.
    let mut paths_by_visits = vec![merged.best_path_by_visits.clone()];
    let mut paths_by_value = vec![merged.best_path_by_value.clone()];
    for r in results {
        for child in r.root_children {
            match merged
                .root_children
                .iter_mut()
                .find(|c| c.action == child.action)
            {
                Some(c) => merge_child(config, c, &child),
                None => merged.root_children.push(child),
            }
        }
        merged.solved = merged.solved.or(r.solved);
        paths_by_visits.push(r.best_path_by_visits);
        paths_by_value.push(r.best_path_by_value);
        merged.terminals.extend(r.terminals);
        let (m, s) = (&mut merged.stats, r.stats);
        m.simulations += s.simulations;
        m.rounds += s.rounds;
        m.collisions += s.collisions;
        m.nodes += s.nodes;
        m.max_depth = m.max_depth.max(s.max_depth);
        m.policy_calls += s.policy_calls;
        m.evaluator_calls += s.evaluator_calls;
        m.evaluations += s.evaluations;
        m.rollout_steps += s.rollout_steps;
        m.cost = m.cost.saturating_add(s.cost);
        m.elapsed = m.elapsed.max(s.elapsed);
    }
    // A proven root value trumps statistics: follow the child that proves it.
    let proven = merged.solved.and_then(|v| {
        merged
            .root_children
            .iter()
            .find(|c| c.solved == Some(v))
            .map(|c| c.action.clone())
    });
    let best_visits = merged
        .root_children
        .iter()
        .filter(|c| c.visits > 0)
        .max_by(|a, b| {
            (a.visits, a.value)
                .partial_cmp(&(b.visits, b.value))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|c| c.action.clone());
    let best_value = merged
        .root_children
        .iter()
        .filter(|c| c.visits > 0)
        .max_by(|a, b| {
            (a.value, a.visits)
                .partial_cmp(&(b.value, b.visits))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|c| c.action.clone());
    let pick = |paths: Vec<Vec<A>>, best: &Option<A>| -> Vec<A> {
        paths
            .into_iter()
            .filter(|p| p.first() == best.as_ref())
            .max_by_key(Vec::len)
            .unwrap_or_default()
    };
    let (best_visits, best_value) = match proven {
        Some(a) => (Some(a.clone()), Some(a)),
        None => (best_visits, best_value),
    };
    merged.best_path_by_visits = pick(paths_by_visits, &best_visits);
    merged.best_path_by_value = pick(paths_by_value, &best_value);
    merged.best_action_by_visits = best_visits;
    merged.best_action_by_value = best_value;
    Ok(merged)
}

fn merge_child<A>(config: &MctsConfig, into: &mut ChildSummary<A>, other: &ChildSummary<A>) {
    let visits = into.visits + other.visits;
    let mean = if visits == 0 {
        0.0
    } else {
        (into.mean * into.visits as f64 + other.mean * other.visits as f64) / visits as f64
    };
    let max = into.max.max(other.max);
    let value = match &config.backup {
        Backup::Max => max,
        Backup::Mean | Backup::Discounted { .. } => mean,
        _ => {
            let (a, b) = (into.value, other.value);
            match (a.is_nan(), b.is_nan()) {
                (true, _) => b,
                (_, true) => a,
                _ => (a * into.visits as f64 + b * other.visits as f64) / visits as f64,
            }
        }
    };
    into.visits = visits;
    into.mean = mean;
    into.max = max;
    into.value = if visits == 0 { f64::NAN } else { value };
    into.solved = into.solved.or(other.solved);
}
