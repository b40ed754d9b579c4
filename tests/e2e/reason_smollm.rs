//! The reasoning layer on the real SmolLM2-135M-Instruct: searches complete on a few
//! self-written problems, answers are parsed, and the token accounting adds up.
//!
//! The model is found via `THINKTREE_MODEL` or `<workspace>/models/`; if it is missing
//! these tests fail with the fix (`bash scripts/fetch-model.sh`).

use std::sync::OnceLock;

use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::reason::{Method, SolveConfig, StepSplit, prompt_text, solve};

pub(crate) fn engine() -> &'static LocalEngine {
    static E: OnceLock<LocalEngine> = OnceLock::new();
    E.get_or_init(|| {
        let path = thinktree_remote::testing::model_path();
        LocalEngine::load(&path, EngineOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    })
}

const APPLES: &str =
    "Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?";
const PENS: &str = "A pen costs 2 dollars. Sara buys 5 pens. How many dollars does she pay?";

#[test]
fn greedy_reaches_a_parsed_answer_and_bills_the_prompt_once() {
    // A fresh engine: the shared one may hold the prompt in its cache from another test.
    let fresh = LocalEngine::load(
        thinktree_remote::testing::model_path(),
        EngineOptions::default(),
    )
    .unwrap();
    let e = &fresh;
    let mut cfg = SolveConfig::new(Method::Greedy);
    cfg.token_budget = 64;
    let sol = solve(e, PENS, &cfg).unwrap();
    assert!(sol.answer.is_some(), "{sol:#?}");
    assert!(!sol.path.is_empty());
    let prompt = prompt_text(e, None, PENS, StepSplit::Newline).unwrap();
    let prompt_len = e.prompt_ids(&prompt, true).unwrap().len() as u64;
    let u = sol.usage;
    assert!(
        u.generated_tokens > 0 && u.generated_tokens <= cfg.token_budget as u64 + 1,
        "{u:?}"
    );
    // Prefill of the prompt once, plus at most one fed-back token per step.
    assert!(
        u.prompt_tokens >= prompt_len && u.prompt_tokens <= prompt_len + cfg.max_steps as u64,
        "{u:?}"
    );
    assert!(
        u.computed_tokens >= u.prompt_tokens + u.generated_tokens - cfg.max_steps as u64,
        "{u:?}"
    );
}

#[test]
fn self_consistency_votes_over_batched_chains() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::SelfConsistency);
    cfg.samples = 3;
    cfg.batch = 3;
    cfg.token_budget = 96;
    cfg.seed = 1;
    let sol = solve(e, APPLES, &cfg).unwrap();
    let votes: usize = sol.candidates.iter().map(|c| c.votes).sum();
    assert!((1..=3).contains(&votes), "{sol:#?}");
    assert!(sol.answer.is_some());
    assert!(sol.usage.generated_tokens <= 96 + 3);
}

#[test]
fn mcts_completes_with_leaf_batching() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.simulations = 4;
    cfg.leaf_batch = 2;
    cfg.expand = 2;
    cfg.token_budget = 80;
    cfg.export_tree = true;
    let sol = solve(e, PENS, &cfg).unwrap();
    assert!(sol.answer.is_some(), "{sol:#?}");
    assert!(sol.usage.generated_tokens <= 80 + 2 * 2);
    assert!(sol.tree.as_ref().is_some_and(|t| t.nodes.len() > 1));
}

#[test]
fn deepconf_filters_and_stops_on_real_token_confidences() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::DeepConf);
    cfg.samples = 4;
    cfg.batch = 4;
    cfg.token_budget = 512;
    cfg.seed = 3;
    cfg.export_tree = true;
    cfg.deepconf.keep = 0.5;
    let sol = solve(e, APPLES, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    assert_eq!(tree.nodes.len(), 1 + 4);
    // Half the traces vote, and each trace's value is its confidence relative to the most
    // confident one (which therefore has 1).
    let votes: usize = sol.candidates.iter().map(|c| c.votes).sum();
    assert!(votes <= 2, "{sol:#?}");
    let values: Vec<f64> = tree.nodes[1..].iter().map(|n| n.value.unwrap()).collect();
    assert!(values.iter().all(|v| *v > 0.0 && *v <= 1.0), "{values:?}");
    assert!(values.contains(&1.0));
    assert!(sol.usage.generated_tokens <= 512 + 4);

    // Online with a threshold at the warm-up's best trace: later traces all stop at
    // the first window below it (or finish above it), and the bill stays in budget.
    let mut cfg = SolveConfig::new(Method::DeepConfOnline);
    cfg.samples = 8;
    cfg.batch = 4;
    cfg.token_budget = 1024;
    cfg.seed = 3;
    cfg.export_tree = true;
    cfg.deepconf.warmup = 2;
    cfg.deepconf.keep = 0.01;
    cfg.deepconf.window = 8;
    cfg.deepconf.consensus = None;
    let sol = solve(e, APPLES, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    assert!(
        tree.nodes.len() > 1 + 2,
        "sampling went on after the warm-up"
    );
    let cut = tree.nodes[3..].iter().filter(|n| n.tokens == 8).count();
    assert!(cut > 0, "no later trace was stopped: {tree:#?}");
    assert!(sol.usage.generated_tokens <= 1024 + 8);
}

#[test]
fn marco_mcts_runs_on_64_token_mini_steps_with_its_confidence_reward() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::Marco);
    cfg.token_budget = 320;
    cfg.seed = 5;
    cfg.export_tree = true;
    let sol = solve(e, PENS, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    assert!(tree.nodes.len() > 2, "{tree:#?}");
    assert!(tree.nodes[1..].iter().all(|n| n.tokens <= 64));
    // The reward is Marco-o1's (each token's share of its top 5), read from the engine's
    // top log-probabilities: never the 0.5 of a scorer left without them.
    let values: Vec<f64> = tree.nodes[1..].iter().filter_map(|n| n.value).collect();
    assert!(!values.is_empty());
    assert!(
        values.iter().all(|v| *v > 0.0 && *v <= 1.0 && *v != 0.5),
        "{values:?}"
    );
    assert!(sol.usage.generated_tokens <= 320 + 64);
}

#[test]
fn rstar_takes_its_actions_on_the_real_model() {
    let e = engine();
    let mut cfg = SolveConfig::new(Method::RStar);
    cfg.token_budget = 600;
    cfg.seed = 2;
    cfg.export_tree = true;
    let sol = solve(e, APPLES, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    let last = |i: usize| tree.nodes[i].steps.last().cloned().unwrap_or_default();
    // The root's expansion: one step, the rest of the chain, a sub-question with its
    // answer, the question restated (markers as written by the search).
    let root_kids: Vec<usize> = tree.children(0).map(|n| n.id).collect();
    assert!(root_kids.len() >= 3, "{tree:#?}");
    assert!(root_kids.iter().any(|&i| last(i).starts_with("Answer 1:")));
    assert!(
        root_kids
            .iter()
            .any(|&i| tree.nodes[i].terminal && tree.nodes[i].value.is_some())
    );
    assert!(sol.answer.is_some());
    assert!(
        sol.usage.generated_tokens <= 600 + 3 * 96,
        "{:?}",
        sol.usage
    );
}

#[test]
fn reflection_is_an_mcts_action_and_a_beam_epilogue_on_the_real_model() {
    use thinktree::reason::REFLECTION;
    let e = engine();
    let marker = REFLECTION.trim();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.token_budget = 600;
    cfg.seed = 3;
    cfg.reflect = true;
    cfg.export_tree = true;
    let sol = solve(e, PENS, &cfg).unwrap();
    let tree = sol.tree.as_ref().unwrap();
    let reflecting: Vec<_> = tree
        .nodes
        .iter()
        .filter(|n| n.raw.ends_with(REFLECTION) && n.steps.last().is_some_and(|s| s == marker))
        .collect();
    assert!(!reflecting.is_empty(), "{tree:#?}");
    // Each reflection stands beside the finished chain it rethinks.
    for r in &reflecting {
        assert!(!r.terminal);
        let chain = &r.steps[..r.steps.len() - 1];
        assert!(
            tree.nodes.iter().any(|n| n.parent == r.parent
                && n.terminal
                && n.answer.is_some()
                && n.steps == chain),
            "{r:#?}"
        );
    }
    // Finished chains below a reflection are counted, each with the answer it had.
    let below = tree
        .nodes
        .iter()
        .filter(|n| n.terminal && n.steps.iter().any(|s| s == marker))
        .count();
    assert!(sol.reflections.len() <= below);
    assert!(sol.reflections.iter().all(|r| r.before.is_some()));
    assert!(
        sol.usage.generated_tokens <= 600 + 3 * 64,
        "{:?}",
        sol.usage
    );

    let mut cfg = SolveConfig::new(Method::Beam);
    cfg.token_budget = 1200;
    cfg.seed = 3;
    cfg.reflect = true;
    let sol = solve(e, PENS, &cfg).unwrap();
    assert!(!sol.reflections.is_empty(), "{sol:#?}");
    assert!(
        sol.usage.generated_tokens <= 1200 + 9 * 64,
        "{:?}",
        sol.usage
    );
}
