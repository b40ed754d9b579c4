//! thinktree-reason: the reasoning layer that makes a model think before it answers.
//!
//! A problem is a tree. The root is the question (prefilled once); an edge is one
//! reasoning step (a line, a paragraph, a "Step k:" block or a fixed token chunk, see
//! [`StepSplit`]); a node holds the engine state after its steps, so continuing it never
//! recomputes its prefix; a leaf is terminal when a step states a final answer, the model
//! ends, or the depth limit is hit.
//!
//! Nine methods search that tree with the same engine and the same bill ([`Method`]):
//! greedy chain of thought, self-consistency, best-of-N, step-level beam search, MCTS,
//! Marco-o1-style MCTS (64-token mini-steps, its confidence reward), rStar's five-action
//! MCTS ([`RStar`]), and DeepConf offline and online (chains voted by their own token
//! confidence, online ones stopped inside the engine's batch when it drops; [`DeepConf`]).
//! Every sampling call asks for all siblings (and all parallel paths) at once, so they
//! share forward passes. Scorers ([`scorer`]) judge partial solutions: token confidence,
//! self-evaluation on the node's own cache, rollout agreement, an arithmetic verifier, a
//! separate judge model, or your own [`scorer::Reward`]. Every [`Solution`] reports the
//! exact [`thinktree_engine::Usage`] spent, so methods can be compared at equal compute.
//! With [`SolveConfig::export_tree`] set it also carries the explored tree, which
//! [`TreeView`] turns into one self-contained HTML page for people.
//!
//! ```
//! use thinktree_engine::Engine;
//! use thinktree_reason::{Method, SolveConfig, solve};
//!
//! /// Self-consistency on any engine: the in-process `thinktree_llm::LocalEngine`, a
//! /// remote server, or your own implementation of the trait.
//! fn vote<E: Engine>(engine: &E) -> Result<Option<String>, thinktree_reason::Error> {
//!     let mut cfg = SolveConfig::new(Method::SelfConsistency);
//!     cfg.samples = 4;
//!     cfg.token_budget = 64;
//!     cfg.early_stop = Some(0.75); // stop once 75% of the votes agree
//!     let sol = solve(engine, "Tom has 3 boxes with 4 apples each. He eats 2. How many are left?", &cfg)?;
//!     assert!(sol.usage.generated_tokens <= 64 + 4); // the budget holds (one token of slack per row)
//!     Ok(sol.answer)
//! }
//! ```
//!
//! This crate depends on the engine trait and the search core only: never on a backend
//! (candle, kernels, HTTP) or on value learning. Scorers that load a model or weights
//! (`prm:PATH`, `value:PATH`) are built by the `thinktree` facade, the one place that
//! knows every backend ([`ScorerSpec::build_with`]).

#![deny(missing_docs)]

mod aggregate;
pub mod answer;
mod config;
mod error;
mod extract;
mod meter;
mod method;
mod methods;
mod node;
mod prompt;
pub mod scorer;
mod solution;
mod split;
mod stepper;
#[cfg(feature = "testing")]
pub mod testing;
mod tree;
mod view;

pub use error::{Error, Result};

pub use aggregate::{Aggregation, Candidate};
pub use config::SolveConfig;
pub use extract::{AnswerExtractor, Extractor, NumericExtractor};
pub use method::Method;
pub use methods::deepconf::{DeepConf, TraceMeasure};
pub use methods::discriminate::{Discriminator, MutualCheck};
pub use methods::reflect::{REFLECTION, Reflection};
pub use methods::rstar::RStar;
pub use prompt::{DEFAULT_SYSTEM_PROMPT, followup_suffix, prompt_text, root_state};
pub use scorer::{Reward, RewardFn, ScoreItem, Scorer, ScorerSpec};
pub use solution::Solution;
pub use split::StepSplit;
pub use tree::{SearchTree, TreeNode};
pub use view::TreeView;

use std::time::Instant;

use thinktree_engine::Engine;

use aggregate::{choose, tally};
use meter::Meter;
use methods::{Outcome, Solve};
use node::Node;
use stepper::Stepper;

/// Solves `question` with `cfg.method`, using `cfg.scorer` where the method needs one.
///
/// The gold answer is never an input: nothing in a search can read it.
pub fn solve<E: Engine>(engine: &E, question: &str, cfg: &SolveConfig) -> Result<Solution> {
    cfg.validate()?;
    let scorer = cfg.effective_scorer().build::<E>(cfg)?;
    solve_with_scorer(engine, question, cfg, &*scorer)
}

/// Like [`solve`] with your own [`Scorer`] (one that needs the engine, or state kept
/// across problems); `cfg.scorer` is ignored.
pub fn solve_with_scorer<E: Engine>(
    engine: &E,
    question: &str,
    cfg: &SolveConfig,
    scorer: &dyn Scorer<E>,
) -> Result<Solution> {
    cfg.validate()?;
    let start = Instant::now();
    let (root_state, prefill) =
        prompt::root_state(engine, cfg.system_prompt.as_deref(), question, cfg.split)?;
    // The discriminator's share of the budget is held back from the method.
    let reserve = cfg
        .discriminator
        .map_or(0, |d| (cfg.token_budget as f64 * d.reserve) as usize);
    let mut meter = Meter::new(cfg.token_budget - reserve, cfg.seed);
    meter.add(prefill);
    let stepper = Stepper {
        split: cfg.split,
        step_tokens: cfg.step_tokens,
        max_steps: cfg.max_steps,
        top_p: cfg.top_p,
        top_k: cfg.top_k,
        extractor: &*cfg.extractor.0,
        top_logprobs: scorer.needs_top_logprobs(),
    };
    let mut run = Solve {
        engine,
        cfg,
        question,
        stepper,
        meter,
        scorer,
        root: Node::root(root_state),
    };
    let outcome: Outcome = match cfg.method {
        Method::Greedy => methods::greedy::run(&mut run)?,
        Method::SelfConsistency | Method::BestOfN => methods::sampling::run(&mut run)?,
        Method::Beam => methods::beam::run(&mut run)?,
        Method::Mcts | Method::Marco => methods::mcts::run(&mut run)?,
        Method::RStar => methods::rstar::run(&mut run)?,
        Method::DeepConf => methods::deepconf::run_offline(&mut run)?,
        Method::DeepConfOnline => methods::deepconf::run_online(&mut run)?,
    };
    let candidates = tally(&outcome.finished);
    let how = outcome.aggregation.unwrap_or(cfg.aggregation);
    let (mut answer, mut path) = choose(&outcome.finished, &candidates, how);
    let mut mutual = None;
    if let Some(d) = &cfg.discriminator {
        run.meter.budget += reserve as u64;
        let (winner, report) = methods::discriminate::check(&mut run, &outcome.finished, d)?;
        if let Some((a, p)) = winner {
            answer = Some(a);
            path = p;
        }
        mutual = Some(report);
    }
    Ok(Solution {
        answer,
        path,
        candidates,
        usage: run.meter.usage,
        engine_calls: run.meter.calls,
        wall: start.elapsed(),
        method: cfg.method,
        early_stopped: outcome.early_stopped,
        tree: outcome.tree,
        reflections: outcome.reflections,
        mutual,
    })
}
