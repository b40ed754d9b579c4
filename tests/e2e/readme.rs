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

/// The README's "several problems at once": solves on threads sharing the engine (their
/// decode steps merged) give exactly the solutions solved one by one.
#[test]
fn readme_concurrent_solves_equal_solves_one_by_one() {
    let engine = engine();
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.scorer = "verifier".parse().expect("scorer spec");
    cfg.token_budget = 192;
    let questions = [
        "A baker makes 12 rolls an hour for 3 hours and sells 20. How many are left?",
        "Tom has 3 bags of 4 apples and eats 2. How many are left?",
        "A train goes 60 miles an hour for 2 hours. How far does it go?",
    ];
    let together = std::thread::scope(|s| {
        let running: Vec<_> = questions
            .iter()
            .map(|q| s.spawn(|| solve(engine, q, &cfg)))
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("solve thread").expect("solves"))
            .collect::<Vec<_>>()
    });
    for (q, got) in questions.iter().zip(&together) {
        let alone = solve(engine, q, &cfg).expect("solves");
        assert_eq!(got.answer, alone.answer, "{q}");
        assert_eq!(got.path, alone.path, "{q}");
        assert_eq!(got.candidates, alone.candidates, "{q}");
        assert_eq!(
            got.usage.generated_tokens, alone.usage.generated_tokens,
            "{q}"
        );
    }
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
