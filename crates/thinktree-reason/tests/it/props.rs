//! Properties of the reasoning layer: parsers never panic, budgets always hold, and the
//! bill always equals what the engine did, whatever the configuration.

use proptest::prelude::*;
use thinktree_reason::scorer::check_equations;
use thinktree_reason::testing::ScriptEngine;
use thinktree_reason::{Aggregation, Method, ScorerSpec, SolveConfig, StepSplit, solve};

proptest! {
    #[test]
    fn parsers_never_panic(s in "\\PC{0,60}") {
        let c = check_equations(&s);
        prop_assert!(c.correct <= c.checked);
        let _ = s.parse::<ScorerSpec>();
        let _ = s.parse::<StepSplit>();
        let _ = s.parse::<Method>();
        let _ = s.parse::<Aggregation>();
    }

    #[test]
    fn arithmetic_written_correctly_always_checks(a in 0u32..10_000, b in 1u32..10_000) {
        let text = format!("{a} + {b} = {} and {a} * {b} = {}", a + b, u64::from(a) * u64::from(b));
        prop_assert_eq!(check_equations(&text).correct, 2);
        let wrong = format!("{a} + {b} = {}", a + b + 1);
        prop_assert_eq!(check_equations(&wrong).correct, 0);
    }

    #[test]
    fn any_config_respects_budget_and_bills_exactly(
        method in prop::sample::select(Method::ALL.to_vec()),
        budget in 1usize..400,
        samples in 1usize..6,
        expand in 1usize..4,
        width in 1usize..4,
        sims in 1usize..20,
        leaf_batch in 1usize..4,
        step_tokens in 1usize..40,
        seed in any::<u64>(),
        whole in any::<bool>(),
        split in prop::sample::select(vec![StepSplit::Newline, StepSplit::BlankLine, StepSplit::Tokens(7)]),
        scorer in prop::sample::select(vec![
            "confidence,verifier,self-eval",
            "rollout",
            "verifier:0.5,rollout:0.5",
            "self-eval",
        ]),
    ) {
        let e = ScriptEngine::new(&[
            "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10.",
            "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.",
        ]);
        let mut cfg = SolveConfig::new(method);
        cfg.token_budget = budget;
        cfg.samples = samples;
        cfg.batch = 2;
        cfg.expand = expand;
        cfg.beam_width = width;
        cfg.simulations = sims;
        cfg.leaf_batch = leaf_batch;
        cfg.step_tokens = step_tokens;
        cfg.seed = seed;
        cfg.whole_chains = whole;
        cfg.split = split;
        cfg.max_steps = 30;
        cfg.scorer = scorer.parse().unwrap();
        cfg.rollouts = 2;
        // Reflection (where the method takes it) from a spare bit of the seed: the
        // proptest macro takes twelve strategies at most.
        cfg.reflect = seed >> 63 == 1
            && !matches!(method, Method::RStar | Method::DeepConf | Method::DeepConfOnline);
        let sol = solve(&e, "How many apples?", &cfg).unwrap();
        prop_assert_eq!(sol.usage, e.spent());
        // Rows that step together may each overrun by what one step allows; a rollout
        // scorer's rows (2 per scored node) likewise, and rStar's voted actions (its
        // `votes` rows sample together).
        let voting = if method == Method::RStar { cfg.rstar.votes } else { 1 };
        let rows = (samples.max(expand * width).max(expand * leaf_batch).max(voting)) as u64;
        let rows = if scorer.contains("rollout") { 3 * rows } else { rows };
        prop_assert!(sol.usage.generated_tokens <= budget as u64 + rows, "{:?}", sol.usage);
        for c in &sol.candidates {
            prop_assert!(c.votes >= 1 && (0.0..=1.0).contains(&c.score));
        }
    }
}
