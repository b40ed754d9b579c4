//! Plug your own reward into the search.
//!
//! Run with `cargo run --release -p thinktree --example custom_reward [MODEL.gguf]` after
//! `bash scripts/fetch-model.sh` (the default is the SmolLM2 file it fetches). The reward below prefers short steps that show their arithmetic; mix it
//! with the built-in arithmetic verifier and let MCTS search under it.

use thinktree::llm::{EngineOptions, LocalEngine};
use thinktree::reason::{Method, ScorerSpec, SolveConfig, solve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let engine = LocalEngine::load(&model, EngineOptions::default())?;

    // Your reward: (question, steps so far) -> score in [0, 1].
    let shows_work = |_question: &str, steps: &[String]| {
        let last = steps.last().map(String::as_str).unwrap_or("");
        let has_equation = last.contains('=') && last.chars().any(|c| c.is_ascii_digit());
        let concise = last.len() < 120;
        0.2 + 0.5 * f64::from(u8::from(has_equation)) + 0.3 * f64::from(u8::from(concise))
    };

    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.scorer = ScorerSpec::Weighted(vec![
        (ScorerSpec::reward("shows-work", shows_work), 0.6),
        (ScorerSpec::Verifier, 0.4),
    ]);
    cfg.simulations = 8;
    cfg.token_budget = 384;

    let question = "A pen costs 2 dollars. Sara buys 5 pens. How many dollars does she pay?";
    let sol = solve(&engine, question, &cfg)?;
    for (i, step) in sol.path.iter().enumerate() {
        println!("step {}: {step}", i + 1);
    }
    println!(
        "answer: {:?} (candidates: {:?})",
        sol.answer, sol.candidates
    );
    println!(
        "{} tokens generated, {} computed, {:.1?}",
        sol.usage.generated_tokens, sol.usage.computed_tokens, sol.wall
    );
    Ok(())
}
