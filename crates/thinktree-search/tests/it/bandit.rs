//! A Bernoulli multi-armed bandit: UCT must find the best arm, and its per-pull regret must
//! shrink as the budget grows.

use rand::{Rng, RngCore};
use thinktree_search::{ActionsFn, FnEvaluator, FnRollout, Mcts, MctsConfig, from_fn};

const ARMS: [f64; 5] = [0.2, 0.45, 0.5, 0.7, 0.4];
const BEST: usize = 3;

#[derive(Clone, Debug, PartialEq)]
enum Pull {
    Root,
    Arm(usize),
    Reward(f64),
}

/// Runs UCT on the bandit; returns (most visited arm, mean regret per pull).
fn play(simulations: u64, seed: u64) -> (usize, f64) {
    // Pulling an arm is a rollout step: the seeded generator decides the reward.
    let problem = from_fn(
        || Pull::Root,
        |_: &Pull, a: &Pull| a.clone(),
        |s: &Pull| match s {
            Pull::Reward(r) => Some(*r),
            _ => None,
        },
    );
    let policy = ActionsFn(|s: &Pull| match s {
        Pull::Root => (0..ARMS.len()).map(|i| (Pull::Arm(i), 1.0)).collect(),
        _ => Vec::new(),
    });
    let rollout = FnRollout(|s: &Pull, rng: &mut dyn RngCore| match s {
        Pull::Arm(i) => Some(Pull::Reward(if rng.random_bool(ARMS[*i]) {
            1.0
        } else {
            0.0
        })),
        _ => None,
    });
    let evaluator = FnEvaluator(|_: &Pull| 0.5);
    // Arms sit at depth 1 and are never expanded: each visit is a fresh pull.
    let config = MctsConfig::builder()
        .simulations(simulations)
        .max_depth(1)
        .seed(seed)
        .build()
        .unwrap();
    let mut search = Mcts::new(config).unwrap();
    let result = search
        .run_with_rollout(&problem, &policy, &rollout, &evaluator)
        .unwrap();
    let tree = search.tree().unwrap();
    let mut regret = 0.0;
    let mut best = (0, 0);
    for &c in tree.children(tree.root()).unwrap() {
        let node = tree.node(c).unwrap();
        let Some(Pull::Arm(i)) = node.action() else {
            panic!("root children are arms")
        };
        let n = node.stats().visits;
        regret += (ARMS[BEST] - ARMS[*i]) * n as f64;
        if n > best.1 {
            best = (*i, n);
        }
    }
    assert_eq!(result.stats.simulations, simulations);
    (best.0, regret / simulations as f64)
}

#[test]
fn uct_finds_best_arm() {
    for seed in 0..5 {
        assert_eq!(play(5_000, seed).0, BEST, "seed {seed}");
    }
}

#[test]
fn regret_shrinks_with_budget() {
    let avg = |n: u64| (0..8).map(|s| play(n, s).1).sum::<f64>() / 8.0;
    let (small, medium, large) = (avg(100), avg(1_000), avg(10_000));
    assert!(small > medium, "{small} > {medium}");
    assert!(medium > large, "{medium} > {large}");
    assert!(large < 0.05, "regret per pull at 10k pulls: {large}");
}
