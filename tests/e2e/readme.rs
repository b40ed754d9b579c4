//! The README's library examples, written as a user writes them (they are also doctests
//! of the `thinktree` crate; here they run against the real default model).

use thinktree::llm::LocalEngine;
use thinktree::reason::{Method, SolveConfig, solve};

use crate::reason_smollm::engine;

#[test]
fn readme_mcts_with_the_verifier_answers_within_budget() {
    let engine = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.scorer = "verifier".parse().expect("scorer spec");
    cfg.token_budget = 256;
    let q = "A baker makes 12 rolls an hour for 3 hours and sells 20. How many are left?";
    let solution = solve(engine, q, &cfg).expect("solves");
    assert!(solution.usage.generated_tokens > 0);
    assert!(solution.usage.generated_tokens <= 256 + 64);
    assert!(!solution.path.is_empty());
}

#[test]
fn the_facade_builds_model_loading_scorers() {
    // `value:` and `prm:` need a loader: the reasoning crate alone refuses them by name,
    // the facade's `scorers` module builds them (here a missing file is a typed error).
    let cfg = SolveConfig::new(Method::Mcts);
    let spec: thinktree::reason::ScorerSpec =
        "value:/nonexistent/head.safetensors".parse().unwrap();
    let alone = spec.build::<LocalEngine>(&cfg);
    assert!(matches!(
        alone,
        Err(thinktree::reason::Error::NeedsLoader(_))
    ));
    let facade = thinktree::scorers::build::<LocalEngine>(&spec, &cfg);
    assert!(matches!(
        facade,
        Err(thinktree::reason::Error::ScorerFailed { .. })
    ));
}
