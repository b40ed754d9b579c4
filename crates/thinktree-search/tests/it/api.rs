//! Behaviour of the public API: typed errors, budgets, widening, exports, parallel helpers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thinktree_search::synthetic::{SyntheticState, SyntheticTree};
use thinktree_search::{
    ActionsFn, BatchFnEvaluator, Error, Evaluations, ExpandRequest, FnEvaluator, FnPolicy, Mcts,
    MctsConfig, Proposals, Selection, StopReason, TreeExport, from_fn, search_many,
};

fn tree(b: u32, d: u32) -> SyntheticTree {
    SyntheticTree {
        branching: b,
        depth: d,
    }
}

#[test]
fn invalid_configs_are_typed_errors() {
    let cases = [
        MctsConfig::builder().simulations(0).build(),
        MctsConfig::builder().unlimited_simulations().build(),
        MctsConfig::builder().time(Duration::ZERO).build(),
        MctsConfig::builder().cost(0).build(),
        MctsConfig::builder()
            .selection(Selection::Uct { c: -1.0 })
            .build(),
        MctsConfig::builder()
            .selection(Selection::Puct { c: f64::NAN })
            .build(),
        MctsConfig::builder().batch_size(0).build(),
        MctsConfig::builder().value_bounds(1.0, 0.0).build(),
        MctsConfig::builder().widening(0.0, 0.5).build(),
        MctsConfig::builder().virtual_loss(-1.0).build(),
        MctsConfig::builder()
            .backup(thinktree_search::Backup::Discounted { gamma: 0.9 })
            .value_bounds(1.0, 2.0)
            .build(),
    ];
    for c in cases {
        assert!(matches!(c, Err(Error::InvalidConfig(_))), "{c:?}");
    }
    // A hand-edited config is re-validated by the search.
    let cfg = MctsConfig {
        batch_size: 0,
        ..MctsConfig::default()
    };
    assert!(matches!(
        Mcts::<SyntheticState, u32>::new(cfg),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn empty_action_set_is_a_typed_error() {
    let problem = from_fn(|| 0u32, |s: &u32, a: &u32| s + a, |_: &u32| None);
    let policy = ActionsFn(|_: &u32| Vec::<(u32, f32)>::new());
    let evaluator = FnEvaluator(|_: &u32| 0.5);
    let mut mcts = Mcts::new(MctsConfig::default()).unwrap();
    let err = mcts.run(&problem, &policy, &evaluator).unwrap_err();
    assert_eq!(err, Error::EmptyActionSet { node: 0 });
}

#[test]
fn misbehaving_callbacks_are_typed_errors() {
    let t = tree(3, 3);
    let mut mcts = Mcts::new(MctsConfig::default()).unwrap();
    let out_of_range = FnEvaluator(|_: &SyntheticState| 1.5);
    assert!(matches!(
        mcts.run(&t, &t, &out_of_range),
        Err(Error::ValueOutOfRange { .. })
    ));
    let short = BatchFnEvaluator(|_: &[&SyntheticState]| Ok(Vec::<f64>::new()));
    assert!(matches!(
        mcts.run(&t, &t, &short),
        Err(Error::BatchSizeMismatch {
            what: "evaluator",
            ..
        })
    ));
    let bad_prior = ActionsFn(|_: &SyntheticState| vec![(0u32, -1.0f32)]);
    assert!(matches!(
        mcts.run(&t, &bad_prior, &t),
        Err(Error::InvalidPrior(_))
    ));
    #[derive(Debug)]
    struct EngineDown;
    impl std::fmt::Display for EngineDown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("engine down")
        }
    }
    impl std::error::Error for EngineDown {}
    let failing = BatchFnEvaluator(
        |_: &[&SyntheticState]| -> thinktree_search::Result<Vec<f64>> {
            Err(Error::external(EngineDown))
        },
    );
    match mcts.run(&t, &t, &failing) {
        Err(Error::External(e)) => assert!(e.downcast_ref::<EngineDown>().is_some()),
        other => panic!("expected an external error, got {other:?}"),
    }
}

#[test]
fn cost_budget_stops_the_search_and_is_reported() {
    let t = tree(4, 6);
    // Every evaluated state costs 10 units, like 10 tokens of scoring.
    let evaluator = BatchFnEvaluator(|states: &[&SyntheticState]| {
        Ok(Evaluations {
            values: states
                .iter()
                .map(|s| (s.hash % 100) as f64 / 100.0)
                .collect(),
            cost: 10 * states.len() as u64,
        })
    });
    let cfg = MctsConfig::builder()
        .unlimited_simulations()
        .cost(1_000)
        .batch_size(4)
        .build()
        .unwrap();
    let r = Mcts::new(cfg).unwrap().run(&t, &t, &evaluator).unwrap();
    assert_eq!(r.stats.stop_reason, StopReason::Cost);
    assert!(
        r.stats.cost >= 1_000 && r.stats.cost < 1_000 + 40,
        "{}",
        r.stats.cost
    );
    assert_eq!(r.stats.cost, 10 * r.stats.evaluations);
}

#[test]
fn time_budget_stops_the_search() {
    let t = tree(8, 12);
    let cfg = MctsConfig::builder()
        .unlimited_simulations()
        .time(Duration::from_millis(30))
        .build()
        .unwrap();
    let r = Mcts::new(cfg).unwrap().run(&t, &t, &t).unwrap();
    assert_eq!(r.stats.stop_reason, StopReason::Time);
    assert!(r.stats.simulations > 0);
}

#[test]
fn early_stop_when_best_child_cannot_be_overtaken() {
    // Two steps worth 0.9 and 0.1; depth is capped at 1 so nothing is ever proven and only
    // the early stop can end the search before the budget.
    let problem = from_fn(|| 0u8, |_: &u8, a: &u8| *a + 1, |_: &u8| None);
    let policy = ActionsFn(|_: &u8| (0..2u8).map(|a| (a, 1.0)).collect());
    let evaluator = FnEvaluator(|s: &u8| if *s == 1 { 0.9 } else { 0.1 });
    let cfg = MctsConfig::builder()
        .simulations(1_000)
        .max_depth(1)
        .selection(Selection::Uct { c: 0.1 })
        .early_stop(true)
        .build()
        .unwrap();
    let r = Mcts::new(cfg)
        .unwrap()
        .run(&problem, &policy, &evaluator)
        .unwrap();
    assert_eq!(r.stats.stop_reason, StopReason::EarlyStop);
    assert!(r.stats.simulations < 1_000, "{}", r.stats.simulations);
    assert_eq!(r.best_action_by_visits, Some(0));
    // Without the early stop the whole budget is spent.
    let cfg = MctsConfig::builder()
        .simulations(1_000)
        .max_depth(1)
        .selection(Selection::Uct { c: 0.1 })
        .build()
        .unwrap();
    let r = Mcts::new(cfg)
        .unwrap()
        .run(&problem, &policy, &evaluator)
        .unwrap();
    assert_eq!(r.stats.stop_reason, StopReason::Simulations);
    assert_eq!(r.stats.simulations, 1_000);
}

#[test]
fn widening_asks_the_policy_again_for_more_children() {
    let asked_again = AtomicU64::new(0);
    let wanted_seen = Mutex::new(Vec::new());
    let policy = FnPolicy(|batch: &[ExpandRequest<'_, SyntheticState>]| {
        Ok(Proposals {
            actions: batch
                .iter()
                .map(|r| {
                    if r.existing_children > 0 {
                        asked_again.fetch_add(1, Ordering::Relaxed);
                    }
                    wanted_seen.lock().unwrap().push(r.wanted);
                    let from = r.existing_children as u32;
                    (from..(from + r.wanted as u32).min(50))
                        .map(|a| (a, 1.0))
                        .collect()
                })
                .collect(),
            cost: 7,
        })
    });
    let t = tree(50, 4);
    let cfg = MctsConfig::builder()
        .simulations(500)
        .widening(1.0, 0.5)
        .build()
        .unwrap();
    let mut mcts = Mcts::new(cfg).unwrap();
    let r = mcts.run(&t, &policy, &t).unwrap();
    assert!(asked_again.load(Ordering::Relaxed) > 10);
    let tree = mcts.tree().unwrap();
    let root = tree.node(tree.root()).unwrap();
    // ⌊1·500^0.5⌋ = 22 children at most, far fewer than 50.
    assert!(
        root.children().len() <= 22 && root.children().len() >= 10,
        "{}",
        root.children().len()
    );
    assert_eq!(r.stats.cost, 7 * r.stats.policy_calls);
}

#[test]
fn terminals_are_listed_with_values_and_paths() {
    let t = tree(2, 3);
    let cfg = MctsConfig::builder().simulations(200).build().unwrap();
    let mut mcts = Mcts::new(cfg).unwrap();
    let r = mcts.run(&t, &t, &t).unwrap();
    // The whole tree (8 leaves) is explored and solved well within 200 simulations.
    assert_eq!(r.terminals.len(), 8);
    assert_eq!(r.stats.stop_reason, StopReason::Solved);
    let best = r.terminals.iter().map(|l| l.value).fold(f64::MIN, f64::max);
    assert_eq!(r.solved, Some(best));
    for leaf in &r.terminals {
        assert_eq!(leaf.path.len(), 3);
        assert_eq!(leaf.depth, 3);
        assert_eq!(
            thinktree_search::Problem::terminal_value(&t, &leaf.state),
            Some(leaf.value)
        );
    }
}

#[test]
fn exports_to_dot_and_json() {
    let t = tree(3, 3);
    let mut mcts = Mcts::new(MctsConfig::builder().simulations(30).build().unwrap()).unwrap();
    mcts.run(&t, &t, &t).unwrap();
    let tree = mcts.tree().unwrap();
    let dot = tree.to_dot(|a| format!("a{a}"));
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains("a2"));
    assert_eq!(dot.matches("->").count(), tree.len() - 1);
    let json = tree.to_json(|a| a.to_string()).unwrap();
    let back: TreeExport = serde_json::from_str(&json).unwrap();
    let orig = tree.export(|a| a.to_string());
    assert_eq!(back.nodes.len(), orig.nodes.len());
    for (b, o) in back.nodes.iter().zip(&orig.nodes) {
        assert_eq!(
            (b.id, b.parent, &b.action, b.visits),
            (o.id, o.parent, &o.action, o.visits)
        );
        let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-12,
            (x, y) => x == y,
        };
        assert!(close(b.mean, o.mean) && close(b.terminal, o.terminal));
    }
    let graph = tree.to_graph(|a| a.to_string());
    assert_eq!(graph.node_count(), tree.len());
}

#[test]
fn search_many_solves_each_problem() {
    let problems: Vec<SyntheticTree> = (1..5).map(|d| tree(2, d)).collect();
    let cfg = MctsConfig::builder().simulations(300).build().unwrap();
    let results = search_many(&cfg, &problems, &problems[0], &problems[0]);
    assert_eq!(results.len(), 4);
    for (p, r) in problems.iter().zip(results) {
        let r = r.unwrap();
        assert_eq!(r.best_path_by_value.len() as u32, p.depth);
    }
}
