//! Invariants that must hold for every config on random synthetic trees: visit counts
//! conserve, values stay in range, no virtual loss survives a search, and the same seed
//! gives the same tree in sequential and batched modes.

use proptest::prelude::*;
use thinktree_search::synthetic::{SyntheticState, SyntheticTree};
use thinktree_search::{
    Backup, ExpandRequest, Mcts, MctsConfig, Policy, Proposals, Result, Selection, Tree, TreeExport,
};

/// A policy for the synthetic tree that hands out children a few at a time, the way an LLM
/// sampling steps would under progressive widening.
struct Incremental(u32);

impl Policy<SyntheticState, u32> for Incremental {
    fn propose(&self, batch: &[ExpandRequest<'_, SyntheticState>]) -> Result<Proposals<u32>> {
        Ok(batch
            .iter()
            .map(|r| {
                let from = r.existing_children as u32;
                let to = (from + r.wanted.min(2) as u32).min(self.0);
                (from..to).map(|a| (a, 1.0 + a as f32)).collect()
            })
            .collect::<Vec<_>>()
            .into())
    }
}

#[derive(Debug, Clone)]
struct Case {
    branching: u32,
    depth: u32,
    config: MctsConfig,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u32..6,
        1u32..7,
        0usize..3,
        0.0f64..3.0,
        0usize..3,
        proptest::option::of((0.5f64..3.0, 0.2f64..1.0)),
        1usize..9,
        1u64..400,
        0.0f64..2.0,
        any::<u64>(),
        proptest::option::of(1u32..5),
    )
        .prop_map(
            |(branching, depth, sel, c, bk, widening, batch, sims, vl, seed, max_depth)| {
                let selection = match sel {
                    0 => Selection::Uct { c },
                    1 => Selection::Puct { c },
                    _ => Selection::DecayingUct { c, decay: 0.99 },
                };
                let backup = match bk {
                    0 => Backup::Mean,
                    1 => Backup::Max,
                    _ => Backup::Discounted { gamma: 0.9 },
                };
                let mut b = MctsConfig::builder()
                    .selection(selection)
                    .backup(backup)
                    .batch_size(batch)
                    .simulations(sims)
                    .virtual_loss(vl)
                    .seed(seed);
                if let Some((k, alpha)) = widening {
                    b = b.widening(k, alpha);
                }
                if let Some(d) = max_depth {
                    b = b.max_depth(d);
                }
                Case {
                    branching,
                    depth,
                    config: b.build().unwrap(),
                }
            },
        )
}

fn search(case: &Case) -> (Tree<SyntheticState, u32>, u64) {
    let problem = SyntheticTree {
        branching: case.branching,
        depth: case.depth,
    };
    let mut mcts = Mcts::new(case.config.clone()).unwrap();
    let result = if case.config.widening.is_some() {
        mcts.run(&problem, &Incremental(case.branching), &problem)
    } else {
        mcts.run(&problem, &problem, &problem)
    }
    .unwrap();
    (mcts.into_tree().unwrap(), result.stats.simulations)
}

fn export(tree: &Tree<SyntheticState, u32>) -> TreeExport {
    tree.export(|a| a.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn visits_conserve_and_values_stay_in_range(case in case()) {
        let (tree, simulations) = search(&case);
        let root = tree.node(tree.root()).unwrap();
        prop_assert_eq!(root.stats().visits, simulations);
        for (id, node) in tree.iter() {
            let s = node.stats();
            let children: u64 = node
                .children()
                .iter()
                .map(|&c| tree.node(c).unwrap().stats().visits)
                .sum();
            prop_assert_eq!(s.visits, children + s.leaf_visits, "node {}", id);
            prop_assert_eq!(s.virtual_visits, 0, "virtual loss left on {}", id);
            if s.visits > 0 {
                prop_assert!((0.0..=1.0).contains(&s.mean()), "mean {} on {}", s.mean(), id);
                prop_assert!((0.0..=1.0).contains(&s.max), "max {} on {}", s.max, id);
            }
            if let Some(w) = case.config.widening {
                // Widening may add a round's worth of children before visits catch up.
                let allowed = w.allowed(s.visits).max(w.allowed(s.visits + 1));
                prop_assert!(node.children().len() <= allowed + 2, "{} children on {}", node.children().len(), id);
            }
        }
    }

    #[test]
    fn same_seed_same_tree(case in case()) {
        let (a, _) = search(&case);
        let (b, _) = search(&case);
        prop_assert_eq!(export(&a), export(&b));
        // The batched twin of the config is just as reproducible.
        let mut batched = case.clone();
        batched.config.batch_size = case.config.batch_size.max(2) + 3;
        let (c, _) = search(&batched);
        let (d, _) = search(&batched);
        prop_assert_eq!(export(&c), export(&d));
    }
}
