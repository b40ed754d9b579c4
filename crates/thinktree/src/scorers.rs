//! The one place that knows every backend: building any [`ScorerSpec`], including the
//! scorers that load a model (`prm:PATH`, a judge GGUF run in process) or weights
//! (`value:PATH`, a learned value head).
//!
//! `thinktree-reason` cannot build those itself (it depends on no backend); this module
//! hands it a loader. Build a run's scorer once and share it across problems: a judge
//! model is loaded once, not per problem.

use std::path::Path;

use thinktree_engine::Engine;
use thinktree_llm::{EngineOptions, LocalEngine};
use thinktree_reason::scorer::PrmScorer;
use thinktree_reason::{Error, Result, Scorer, ScorerSpec, Solution, SolveConfig};
use thinktree_value::ValueScorer;

/// KV budget of a `prm:` judge: it keeps only the question prefix of the current problem
/// and the nodes being judged.
const JUDGE_KV_BUDGET: usize = 256 << 20;

/// Builds `spec` for engine `E`, loading judge models and value heads as needed.
pub fn build<'e, E: Engine + 'e>(
    spec: &ScorerSpec,
    cfg: &SolveConfig,
) -> Result<Box<dyn Scorer<E> + 'e>> {
    spec.build_with(cfg, &load::<E>)
}

/// The scorer `cfg`'s method runs ([`SolveConfig::effective_scorer`]), built once.
pub fn for_config<'e, E: Engine + 'e>(cfg: &SolveConfig) -> Result<Box<dyn Scorer<E> + 'e>> {
    build(&cfg.effective_scorer(), cfg)
}

/// Loads the GGUF at `path` in process as a judge model.
pub fn load_judge(path: &Path) -> Result<LocalEngine> {
    LocalEngine::load(
        path,
        EngineOptions::default().kv_budget_bytes(JUDGE_KV_BUDGET),
    )
    .map_err(|e| Error::ScorerFailed {
        scorer: format!("prm:{}", path.display()),
        source: Box::new(e),
    })
}

fn load<'e, E: Engine + 'e>(spec: &ScorerSpec) -> Result<Box<dyn Scorer<E> + 'e>> {
    match spec {
        ScorerSpec::Prm(path) => Ok(Box::new(PrmScorer::new(load_judge(path)?))),
        ScorerSpec::Value(path) => Ok(Box::new(ValueScorer::load(path)?)),
        other => Err(Error::NeedsLoader(other.to_string())),
    }
}

/// [`thinktree_reason::solve`] with every scorer available: `cfg.scorer` may name a
/// judge model or a value head. For many problems, build the scorer once with
/// [`for_config`] and call [`thinktree_reason::solve_with_scorer`].
pub fn solve<E: Engine>(engine: &E, question: &str, cfg: &SolveConfig) -> Result<Solution> {
    cfg.validate()?;
    let scorer = for_config::<E>(cfg)?;
    thinktree_reason::solve_with_scorer(engine, question, cfg, &*scorer)
}
