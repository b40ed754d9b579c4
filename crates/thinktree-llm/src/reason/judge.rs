//! Loading a separate judge model for `prm:PATH`.

use std::path::Path;

use crate::candle_engine::{CandleEngine, EngineOptions};
use crate::engine::Engine;
use crate::error::Result;

use super::scorer::{PrmScorer, Scorer};

/// Loads the GGUF at `path` in-process as the judge of a [`PrmScorer`]. Its KV budget is
/// small: the judge only keeps the question prefix per problem.
pub(crate) fn load_judge<'e, E: Engine + 'e>(path: &Path) -> Result<Box<dyn Scorer<E> + 'e>> {
    let judge = CandleEngine::load(path, EngineOptions::default().kv_budget_bytes(256 << 20))?;
    Ok(Box::new(PrmScorer::new(judge)))
}
