//! Deterministic tests of the reasoning layer on a scripted engine.

use thinktree_reason::testing::ScriptEngine;
use thinktree_reason::{
    Aggregation, Method, RewardFn, ScorerSpec, SolveConfig, StepSplit, TreeView, solve,
};

const Q: &str = "Tom has 3 boxes with 4 apples each. He eats 2. How many are left?";

/// Two correct solutions reaching 10 and one with a wrong product reaching 12.
fn engine() -> ScriptEngine {
    ScriptEngine::new(&[
        "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10.",
        "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.",
        "He has 3 * 4 = 12.\nHe eats 2, so 12 - 2 = 10.\nThe answer is 10.",
    ])
}

#[test]
fn greedy_follows_the_most_likely_solution() {
    let e = engine();
    let sol = solve(&e, Q, &SolveConfig::new(Method::Greedy)).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert_eq!(
        sol.path,
        vec!["3 * 4 = 12 apples.", "12 - 2 = 10.", "The answer is 10."]
    );
    assert_eq!(sol.candidates.len(), 1);
    assert_eq!(sol.candidates[0].votes, 1);
}

#[test]
fn every_method_bills_exactly_what_the_engine_did() {
    for method in Method::ALL {
        let e = engine();
        let mut cfg = SolveConfig::new(method);
        cfg.scorer = "confidence:0.3,verifier:0.4,self-eval:0.3".parse().unwrap();
        let sol = solve(&e, Q, &cfg).unwrap();
        assert_eq!(sol.usage, e.spent(), "{method}");
        assert!(
            sol.engine_calls >= 2 && sol.engine_calls <= *e.calls.lock().unwrap(),
            "{method}"
        );
        assert!(sol.usage.generated_tokens > 0, "{method}");
        assert!(sol.answer.is_some(), "{method}");
    }
}

#[test]
fn self_consistency_votes_and_reports_every_answer() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::SelfConsistency);
    cfg.samples = 12;
    cfg.batch = 4;
    cfg.seed = 3;
    cfg.token_budget = 10_000;
    let sol = solve(&e, Q, &cfg).unwrap();
    let votes: usize = sol.candidates.iter().map(|c| c.votes).sum();
    assert_eq!(votes, 12);
    assert_eq!(sol.candidates.len(), 2, "{:?}", sol.candidates);
    let ten = sol.candidates.iter().find(|c| c.answer == "10").unwrap();
    let twelve = sol.candidates.iter().find(|c| c.answer == "12").unwrap();
    assert_eq!(
        sol.answer.as_deref(),
        Some(if ten.votes >= twelve.votes {
            "10"
        } else {
            "12"
        })
    );
    assert!(!sol.early_stopped);
}

#[test]
fn adaptive_compute_stops_a_decided_vote() {
    // Only one solution: the vote is unanimous after the first wave.
    let e = ScriptEngine::new(&["2 + 2 = 4.\nThe answer is 4."]);
    let mut cfg = SolveConfig::new(Method::SelfConsistency);
    cfg.samples = 16;
    cfg.batch = 4;
    cfg.token_budget = 10_000;
    let full = solve(&e, Q, &cfg).unwrap();
    cfg.early_stop = Some(0.75);
    let e2 = ScriptEngine::new(&["2 + 2 = 4.\nThe answer is 4."]);
    let early = solve(&e2, Q, &cfg).unwrap();
    assert_eq!(early.answer.as_deref(), Some("4"));
    assert!(early.early_stopped);
    assert_eq!(early.candidates[0].votes, 4);
    assert_eq!(full.candidates[0].votes, 16);
    assert!(early.usage.generated_tokens * 4 == full.usage.generated_tokens);
}

#[test]
fn verifier_steers_best_of_n_and_beam_away_from_wrong_arithmetic() {
    for method in [Method::BestOfN, Method::Beam] {
        let e = engine();
        let mut cfg = SolveConfig::new(method);
        cfg.scorer = ScorerSpec::Verifier;
        cfg.samples = 6;
        cfg.expand = 3;
        cfg.beam_width = 2;
        cfg.aggregation = Aggregation::Best;
        cfg.seed = 1;
        cfg.token_budget = 10_000;
        let sol = solve(&e, Q, &cfg).unwrap();
        assert_eq!(sol.answer.as_deref(), Some("10"), "{method}: {sol:?}");
        assert!(!sol.path.iter().any(|s| s.contains("14")), "{method}");
    }
}

#[test]
fn a_custom_reward_decides_best_of_n() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::BestOfN);
    cfg.samples = 6;
    cfg.seed = 1;
    cfg.token_budget = 10_000;
    // A contrarian reward that likes twelves.
    cfg.scorer = ScorerSpec::reward("likes-12", |_q: &str, steps: &[String]| {
        if steps.iter().any(|s| s.contains("12.")) && steps.last().is_some_and(|s| s.contains("12"))
        {
            1.0
        } else {
            0.0
        }
    });
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("12"));

    cfg.scorer = ScorerSpec::reward("nan", |_q: &str, _s: &[String]| f64::NAN);
    assert!(solve(&e, Q, &cfg).is_err());
}

#[test]
fn token_budget_bounds_generation() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::SelfConsistency);
    cfg.samples = 64;
    cfg.token_budget = 100;
    let sol = solve(&e, Q, &cfg).unwrap();
    // One batched step may overrun by at most one token per row.
    assert!(
        sol.usage.generated_tokens <= 100 + 8,
        "{}",
        sol.usage.generated_tokens
    );
}

#[test]
fn step_splits_cut_where_asked() {
    let e = ScriptEngine::new(&[
        "Step 1: 3 * 4 = 12.\nStep 2: 12 - 2 = 10.\nStep 3: The answer is 10.",
    ]);
    let mut cfg = SolveConfig::new(Method::Greedy);
    cfg.split = StepSplit::Tokens(5);
    cfg.max_steps = 40;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert!(sol.path.len() >= 10, "{:?}", sol.path);

    cfg.split = StepSplit::BlankLine;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.path.len(), 1);
    assert_eq!(sol.answer.as_deref(), Some("10"));
}

#[test]
fn beam_exports_its_tree() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Beam);
    cfg.export_tree = true;
    let sol = solve(&e, Q, &cfg).unwrap();
    let tree = sol.tree.unwrap();
    let dot = tree.to_dot();
    assert!(dot.starts_with("digraph") && dot.contains("->"));
    let json: serde_json::Value = serde_json::from_str(&tree.to_json().unwrap()).unwrap();
    assert!(json["nodes"].as_array().unwrap().len() > 3);
    // Beam's record is the same one MCTS writes: every node carries its whole path.
    for n in &tree.nodes[1..] {
        let parent = &tree.nodes[n.parent.unwrap()];
        assert_eq!(n.steps[..n.steps.len() - 1], parent.steps[..], "{n:?}");
        assert!(n.value.is_some() && n.raw.starts_with(&parent.raw));
    }
}

#[test]
fn voting_methods_export_their_chains_side_by_side() {
    let e = engine();
    for method in [Method::Greedy, Method::SelfConsistency, Method::BestOfN] {
        let mut cfg = SolveConfig::new(method);
        cfg.samples = 4;
        cfg.export_tree = true;
        let sol = solve(&e, Q, &cfg).unwrap();
        let tree = sol.tree.clone().expect("a tree for every method");
        let chains = if method == Method::Greedy { 1 } else { 4 };
        assert_eq!(tree.nodes.len(), 1 + chains, "{method}");
        let root = &tree.nodes[0];
        assert!(root.parent.is_none() && root.steps.is_empty());
        for n in &tree.nodes[1..] {
            assert_eq!(n.parent, Some(0));
            assert!(n.terminal && n.tokens > 0 && n.value.is_some(), "{n:?}");
            assert!(
                sol.candidates
                    .iter()
                    .any(|c| Some(&c.answer) == n.answer.as_ref())
            );
        }
        // The chosen path is one of the chains, and the viewer highlights it.
        let chosen = TreeView::new(&tree, Q).chosen(&sol.path, None).chosen_ids();
        assert_eq!(chosen.len(), 2, "{method}");
        assert_eq!(tree.nodes[chosen[1]].steps, sol.path);
        assert!(
            TreeView::of_solution(&sol, Q)
                .unwrap()
                .to_html()
                .contains("\"nodes\"")
        );
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let e = engine();
    let cfg = SolveConfig::new(Method::Greedy);
    assert!(solve(&e, "   ", &cfg).is_err());
    let mut bad = cfg.clone();
    bad.samples = 0;
    assert!(bad.validate().is_err());
    let mut bad = cfg.clone();
    bad.top_p = Some(1.5);
    assert!(solve(&e, Q, &bad).is_err());
    let mut bad = cfg;
    bad.early_stop = Some(0.0);
    assert!(bad.validate().is_err());
    assert!("nope".parse::<Method>().is_err());
    for m in Method::ALL {
        assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
    }
    assert!("tokens:0".parse::<StepSplit>().is_err());
    assert_eq!(
        "tokens:8".parse::<StepSplit>().unwrap(),
        StepSplit::Tokens(8)
    );
}

#[test]
fn mcts_votes_over_terminal_leaves_and_prefers_checked_arithmetic() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.scorer = ScorerSpec::Verifier;
    cfg.simulations = 24;
    cfg.leaf_batch = 3;
    cfg.expand = 3;
    cfg.token_budget = 10_000;
    cfg.export_tree = true;
    cfg.aggregation = Aggregation::Weighted;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"), "{sol:#?}");
    assert!(sol.candidates.iter().any(|c| c.answer == "10"));
    let tree = sol.tree.as_ref().unwrap();
    assert!(tree.nodes.len() >= 4);
    let child_visits: u64 = tree.children(0).map(|c| c.visits).sum();
    assert!(tree.nodes[0].visits > 0 && child_visits <= tree.nodes[0].visits);
    assert_eq!(sol.usage, e.spent());
}

#[test]
fn mcts_with_progressive_widening_and_a_tight_budget_still_answers() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.widening = Some((1.0, 0.5));
    cfg.simulations = 50;
    cfg.token_budget = 40;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert!(sol.usage.generated_tokens <= 40 + 3 * 4, "{:?}", sol.usage);
    // The budget cut the search short, yet a leaf was finished leniently and voted.
    assert!(
        sol.answer.is_some() && !sol.candidates.is_empty(),
        "{sol:#?}"
    );
}

#[test]
fn whole_chains_and_stepping_agree_when_the_model_stops_at_its_answer() {
    let mut cfg = SolveConfig::new(Method::SelfConsistency);
    cfg.samples = 6;
    cfg.seed = 11;
    cfg.token_budget = 10_000;
    let mut answers = Vec::new();
    for whole in [true, false] {
        cfg.whole_chains = whole;
        let e = engine();
        let sol = solve(&e, Q, &cfg).unwrap();
        assert_eq!(sol.usage, e.spent());
        let votes: usize = sol.candidates.iter().map(|c| c.votes).sum();
        assert_eq!(votes, 6);
        assert_eq!(
            sol.path.last().map(String::as_str),
            Some(format!("The answer is {}.", sol.answer.clone().unwrap()).as_str())
        );
        answers.push(sol.answer);
    }
    assert!(answers.iter().all(|a| a.is_some()));
}

#[test]
fn step_markers_are_cut_and_trimmed() {
    let e = ScriptEngine::new(&[
        "Step 1: 3 * 4 = 12.\nStep 2: 12 - 2 = 10.\nStep 3: The answer is 10.",
    ]);
    let mut cfg = SolveConfig::new(Method::Greedy);
    cfg.split = StepSplit::StepMarker;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert_eq!(
        sol.path,
        vec!["3 * 4 = 12.", "12 - 2 = 10.", "The answer is 10."]
    );
}

#[test]
fn a_repeated_step_ends_the_path() {
    let e = ScriptEngine::new(&[
        "3 * 4 = 12.\n3 * 4 = 12.\n3 * 4 = 12.\n3 * 4 = 12.\nThe answer is 12.",
    ]);
    let sol = solve(&e, Q, &SolveConfig::new(Method::Greedy)).unwrap();
    assert_eq!(sol.path, vec!["3 * 4 = 12."]);
    assert_eq!(sol.answer.as_deref(), Some("12"));
    assert!(sol.usage.generated_tokens < 30, "{:?}", sol.usage);
}

/// A scorer's 1.0 is an estimate, not a proof: MCTS keeps searching after the first chain
/// it likes and answers from every finished chain (issue: it used to stop at the first
/// one, reporting a single candidate).
#[test]
fn mcts_does_not_take_an_estimate_for_a_proof() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.scorer = ScorerSpec::reward("always-one", |_: &str, _: &[String]| 1.0);
    cfg.simulations = 40;
    cfg.token_budget = 10_000;
    cfg.temperature = 1.0;
    cfg.export_tree = true;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert!(sol.candidates.len() >= 2, "{:?}", sol.candidates);
    let tree = sol.tree.as_ref().unwrap();
    // Every simulation ran, or nothing was left to expand (every leaf a finished chain).
    let closed = tree
        .nodes
        .iter()
        .all(|n| n.terminal || tree.children(n.id).next().is_some());
    assert!(
        tree.nodes[0].visits == 40 || closed,
        "{}",
        tree.nodes[0].visits
    );
    assert!(tree.nodes.iter().filter(|n| n.terminal).count() >= 2);
}

/// A reward declared exact is a proof: a chain it scores 1.0 settles the search early.
#[test]
fn mcts_stops_on_a_proof_from_an_exact_reward() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    let check = RewardFn::new("checks-10", |_: &str, steps: &[String]| {
        if steps.last().is_some_and(|s| s.contains("answer is 10")) {
            1.0
        } else {
            0.0
        }
    })
    .exact();
    cfg.scorer = ScorerSpec::Reward(check);
    cfg.simulations = 200;
    cfg.token_budget = 100_000;
    cfg.export_tree = true;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert!(sol.tree.as_ref().unwrap().nodes[0].visits < 200);
}

/// Progressive widening asks a node for more children in later calls: each child's prior
/// is its own step probability whichever call sampled it (so priors stay comparable), and
/// a step sampled again in a later call is not added twice.
#[test]
fn widening_keeps_priors_comparable_and_siblings_distinct() {
    // Six first steps to choose from, so later widening calls have new ones to find.
    let e = ScriptEngine::new(&[
        "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10.",
        "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.",
        "He has 3 * 4 = 12.\nHe eats 2, so 12 - 2 = 10.\nThe answer is 10.",
        "Boxes: 3, apples each: 4.\n3 * 4 - 2 = 10.\nThe answer is 10.",
        "4 + 4 + 4 = 12.\n12 - 2 = 10.\nThe answer is 10.",
        "3 + 4 = 7.\n7 - 2 = 5.\nThe answer is 5.",
    ]);
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.widening = Some((1.0, 0.5));
    cfg.expand = 1;
    cfg.leaf_batch = 1;
    cfg.simulations = 60;
    cfg.temperature = 1.0;
    cfg.token_budget = 100_000;
    cfg.export_tree = true;
    let sol = solve(&e, Q, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    // The script's step probabilities: exp(-0.05 (i + 1)) for script i.
    let probs: Vec<f32> = (1..=6).map(|i| (-0.05 * i as f32).exp()).collect();
    let mut widened = 0;
    for n in &tree.nodes {
        let kids: Vec<_> = tree.children(n.id).collect();
        widened += usize::from(kids.len() > 1);
        for (i, a) in kids.iter().enumerate() {
            assert!(
                probs.iter().any(|p| (p - a.prior).abs() < 1e-4),
                "prior {} of {:?} is not its step probability",
                a.prior,
                a.step()
            );
            for b in &kids[i + 1..] {
                assert!(
                    (a.step(), a.terminal) != (b.step(), b.terminal),
                    "duplicate sibling {:?}",
                    a.step()
                );
            }
        }
    }
    assert!(widened > 0, "no node was widened");
}

#[test]
fn marco_searches_mini_steps_valued_by_its_confidence_reward() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Marco);
    cfg.split = StepSplit::Tokens(8);
    cfg.simulations = 64;
    cfg.export_tree = true;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert!(sol.answer.is_some(), "{sol:#?}");
    let tree = sol.tree.unwrap();
    assert!(tree.nodes.len() > 4);
    // The script's top log-probabilities at every token: its own, then four alternatives
    // one nat apart each, so Marco-o1's token confidence is 1 / (1 + e^-1 + ... + e^-4).
    let want = 1.0 / (0..5).map(|j| (-(j as f64)).exp()).sum::<f64>();
    for n in &tree.nodes[1..] {
        assert!(n.tokens <= 8, "a mini-step is at most 8 tokens: {n:?}");
        if let Some(v) = n.value {
            assert!((v - want).abs() < 1e-5, "{v} vs {want}: {n:?}");
        }
    }
    assert!(tree.nodes[1..].iter().any(|n| n.value.is_some()));
}

#[test]
fn reflection_continues_a_finished_chain_and_its_new_answer_counts() {
    let e = reflecting_engine();
    let mut cfg = SolveConfig::new(Method::Greedy);
    let plain = solve(&e, Q, &cfg).unwrap();
    assert_eq!(plain.answer.as_deref(), Some("12"));
    assert!(plain.reflections.is_empty());

    cfg.reflect = true;
    let before = e.spent();
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert_eq!(
        sol.reflections,
        vec![thinktree_reason::Reflection {
            before: Some("12".into()),
            after: Some("10".into()),
        }]
    );
    assert!(sol.path.iter().any(|s| s.starts_with("Wait! Maybe")));
    // The reflection text is billed as prompt tokens, the continuation as generated ones.
    let spent = e.spent();
    assert_eq!(
        sol.usage.prompt_tokens,
        spent.prompt_tokens - before.prompt_tokens
    );
    assert!(sol.usage.generated_tokens > plain.usage.generated_tokens);
    assert!(
        sol.usage.prompt_tokens
            >= plain.usage.prompt_tokens + thinktree_reason::REFLECTION.len() as u64
    );
}

/// A script whose only line of thought states 12, reflects and then states 10.
fn reflecting_engine() -> ScriptEngine {
    ScriptEngine::new(&[concat!(
        "3 * 4 = 14 apples.\n14 - 2 = 12.\nThe answer is 12.\n",
        "Wait! Maybe I made some mistakes! I need to rethink from scratch.\n",
        "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10."
    )])
}

#[test]
fn mcts_offers_reflection_as_an_action_beside_each_finished_chain() {
    let e = reflecting_engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.token_budget = 2_000;
    cfg.export_tree = true;
    let plain = solve(&e, Q, &cfg).unwrap();
    assert_eq!(plain.answer.as_deref(), Some("12"));
    assert!(plain.reflections.is_empty());
    let marker = thinktree_reason::REFLECTION.trim();
    let has_reflection = |t: &thinktree_reason::SearchTree| {
        t.nodes
            .iter()
            .any(|n| n.steps.last().is_some_and(|s| s == marker))
    };
    assert!(!has_reflection(plain.tree.as_ref().unwrap()));

    cfg.reflect = true;
    let before = e.spent();
    let sol = solve(&e, Q, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    // The finished chain stays a leaf with its answer; its sibling rethinks.
    let reflected = tree
        .nodes
        .iter()
        .find(|n| n.steps.last().is_some_and(|s| s == marker))
        .expect("a reflection node");
    assert!(!reflected.terminal && reflected.answer.is_none());
    let siblings: Vec<_> = tree
        .nodes
        .iter()
        .filter(|n| n.parent == reflected.parent && n.id != reflected.id)
        .collect();
    assert!(
        siblings
            .iter()
            .any(|n| n.terminal && n.answer.as_deref() == Some("12")),
        "{siblings:?}"
    );
    // The search took the action: the rethought chain finished with 10.
    assert!(
        sol.candidates.iter().any(|c| c.answer == "10"),
        "{:?}",
        sol.candidates
    );
    assert!(sol.reflections.contains(&thinktree_reason::Reflection {
        before: Some("12".into()),
        after: Some("10".into()),
    }));
    // A path reflects once: no reflection below a reflection.
    let below = tree
        .nodes
        .iter()
        .filter(|n| n.steps.iter().filter(|s| *s == marker).count() > 1)
        .count();
    assert_eq!(below, 0);
    let spent = e.spent();
    assert_eq!(
        sol.usage.prompt_tokens,
        spent.prompt_tokens - before.prompt_tokens
    );
    assert_eq!(
        sol.usage.generated_tokens,
        spent.generated_tokens - before.generated_tokens
    );
}

#[test]
fn beam_reflects_its_finished_paths_within_the_budget() {
    let e = reflecting_engine();
    let mut cfg = SolveConfig::new(Method::Beam);
    cfg.token_budget = 2_000;
    cfg.export_tree = true;
    let plain = solve(&e, Q, &cfg).unwrap();
    assert_eq!(plain.answer.as_deref(), Some("12"));
    cfg.reflect = true;
    let sol = solve(&e, Q, &cfg).unwrap();
    assert_eq!(sol.answer.as_deref(), Some("10"));
    assert_eq!(
        sol.reflections,
        vec![thinktree_reason::Reflection {
            before: Some("12".into()),
            after: Some("10".into()),
        }]
    );
    let tree = sol.tree.unwrap();
    let last = tree.nodes.last().unwrap();
    assert_eq!(last.answer.as_deref(), Some("10"));
    // With no budget left after the search, nothing reflects.
    cfg.token_budget = plain.usage.generated_tokens as usize;
    let tight = solve(&e, Q, &cfg).unwrap();
    assert!(tight.reflections.is_empty(), "{:?}", tight.reflections);
}

#[test]
fn reflection_is_refused_where_it_is_not_defined_and_billed_where_it_is() {
    for method in Method::ALL {
        let e = engine();
        let mut cfg = SolveConfig::new(method);
        cfg.reflect = true;
        match method {
            Method::RStar | Method::DeepConf | Method::DeepConfOnline => {
                let err = solve(&e, Q, &cfg).unwrap_err();
                assert!(
                    matches!(err, thinktree_reason::Error::InvalidConfig(ref m) if m.contains("reflect")),
                    "{method}: {err}"
                );
                assert_eq!(e.spent(), Default::default(), "{method}");
            }
            _ => {
                let sol = solve(&e, Q, &cfg).unwrap();
                assert_eq!(sol.usage, e.spent(), "{method}");
                assert!(sol.usage.generated_tokens <= cfg.token_budget as u64 + 8);
            }
        }
    }
}

#[test]
fn the_discriminator_checks_trajectories_from_prefixes_and_bills_its_tokens() {
    use thinktree_reason::Discriminator;
    let d = Discriminator::default();
    // 20-80 % of the steps, never all of them.
    assert_eq!((d.prefix_len(5, 0.0), d.prefix_len(5, 0.999)), (1, 4));
    assert_eq!(d.prefix_len(1, 0.5), 0);
    assert_eq!(d.prefix_len(3, 0.0), 1);

    let e = engine();
    let mut cfg = SolveConfig::new(Method::SelfConsistency);
    cfg.samples = 6;
    cfg.token_budget = 1000;
    cfg.discriminator = Some(d);
    let before = e.spent();
    let sol = solve(&e, Q, &cfg).unwrap();
    let m = sol.mutual.clone().expect("the discriminator ran");
    // Every trajectory of the script is a whole solution: completing any prefix of it
    // gives the same solution back, so each one is consistent.
    assert!(
        m.checked >= 2 && m.consistent == m.checked && m.decided,
        "{m:?}"
    );
    assert_eq!(sol.answer.as_deref(), Some("10"));
    let spent = e.spent().generated_tokens - before.generated_tokens;
    assert_eq!(sol.usage.generated_tokens, spent);
    assert!(sol.usage.generated_tokens <= 1000 + 8);

    // Without it, the same solve spends fewer tokens (the check's are billed) and
    // reports nothing.
    cfg.discriminator = None;
    let plain = solve(&e, Q, &cfg).unwrap();
    assert!(plain.mutual.is_none());
    assert!(plain.usage.generated_tokens < sol.usage.generated_tokens);

    let mut bad = SolveConfig::new(Method::Mcts);
    bad.discriminator = Some(Discriminator {
        min_prefix: 0.9,
        max_prefix: 0.1,
        ..Discriminator::default()
    });
    assert!(bad.validate().is_err());
}

#[test]
fn an_inconsistent_trajectory_loses_to_a_consistent_one() {
    use thinktree_reason::Discriminator;
    // The wrong chain's prefix ("3 * 4 = 12 apples.") is shared with the right one, whose
    // completion the script gives back: a prefix of the wrong chain completes to 10, not
    // 12, so only the right chain is consistent, even though the scorer prefers the wrong.
    let e = ScriptEngine::new(&[
        "3 * 4 = 12 apples.\n12 - 2 = 10.\nThe answer is 10.",
        "3 * 4 = 12 apples.\n12 + 2 = 14 - 2 = 12.\nThe answer is 12.",
    ]);
    let mut cfg = SolveConfig::new(Method::BestOfN);
    cfg.samples = 6;
    cfg.temperature = 0.7;
    cfg.token_budget = 1000;
    cfg.scorer = ScorerSpec::reward("prefers 12", |_, steps| {
        if steps.iter().any(|s| s.contains("answer is 12")) {
            1.0
        } else {
            0.1
        }
    });
    let plain = solve(&e, Q, &cfg).unwrap();
    assert_eq!(plain.answer.as_deref(), Some("12"), "{plain:#?}");
    cfg.discriminator = Some(Discriminator {
        min_prefix: 0.3,
        max_prefix: 0.4,
        temperature: Some(0.0),
        ..Discriminator::default()
    });
    let sol = solve(&e, Q, &cfg).unwrap();
    let m = sol.mutual.clone().unwrap();
    assert!(m.decided && m.consistent < m.checked, "{m:?} {sol:#?}");
    assert_eq!(sol.answer.as_deref(), Some("10"));
}
