//! LLM self-evaluation: the policy model judges its own step.

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::prompt::followup_suffix;
use thinktree_engine::{Engine, Prompt, Usage};

use super::{ScoreItem, Scorer};

/// The judging question appended after the partial solution.
pub const SELF_EVAL_QUESTION: &str = "Is the last step of your solution correct? Answer Yes or No.";

/// P("Yes") to "is this step correct?", asked of the same model in the same context.
///
/// The question is appended to the node's own cached state, so scoring computes only the
/// question's few tokens and one next-token distribution, never the prefix again.
#[derive(Debug, Default)]
pub struct SelfEvalScorer {
    question: Option<String>,
    prepared: OnceLock<Prepared>,
}

#[derive(Debug, Clone)]
struct Prepared {
    suffix: Prompt,
    yes: Vec<u32>,
    no: Vec<u32>,
}

impl SelfEvalScorer {
    /// Self-evaluation with the default judging question.
    pub fn new() -> Self {
        Self::default()
    }

    /// Self-evaluation with a custom judging question (answered with Yes or No).
    pub fn with_question(question: impl Into<String>) -> Self {
        Self {
            question: Some(question.into()),
            prepared: OnceLock::new(),
        }
    }

    fn prepare<E: Engine>(&self, engine: &E) -> Result<Prepared> {
        if let Some(p) = self.prepared.get() {
            return Ok(p.clone());
        }
        let q = self.question.as_deref().unwrap_or(SELF_EVAL_QUESTION);
        let suffix = followup_suffix(engine, q)?;
        let (yes, no) = verdict_token_ids(engine)?;
        let p = Prepared { suffix, yes, no };
        Ok(self.prepared.get_or_init(|| p).clone())
    }
}

/// The token ids that start "Yes" and "No" answers (with and without a leading space,
/// capitalised or not) in `engine`'s vocabulary. A token that starts both words (a bare
/// space in a character-level vocabulary) says nothing about the verdict and is dropped;
/// a vocabulary left without a Yes or a No token is an error.
pub(crate) fn verdict_token_ids<E: Engine>(engine: &E) -> Result<(Vec<u32>, Vec<u32>)> {
    let first_ids = |words: &[&str]| -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for w in words {
            if let Some(&id) = engine.tokenize(w)?.first()
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        Ok(ids)
    };
    let mut yes = first_ids(&["Yes", " Yes", "yes"])?;
    let mut no = first_ids(&["No", " No", "no"])?;
    let shared: Vec<u32> = yes.iter().copied().filter(|y| no.contains(y)).collect();
    yes.retain(|y| !shared.contains(y));
    no.retain(|n| !shared.contains(n));
    if yes.is_empty() || no.is_empty() {
        return Err(Error::Scorer {
            scorer: "self-eval".into(),
            reason: "cannot tell the Yes and No tokens apart in this vocabulary".into(),
        });
    }
    Ok((yes, no))
}

/// P(yes) from log-probabilities of the yes-tokens and no-tokens.
pub(crate) fn yes_probability(lp: &[f32], n_yes: usize) -> f64 {
    let (y, n) = lp.split_at(n_yes.min(lp.len()));
    let sum = |v: &[f32]| v.iter().map(|&l| f64::from(l).exp()).sum::<f64>();
    let (py, pn) = (sum(y), sum(n));
    if py + pn > 0.0 { py / (py + pn) } else { 0.5 }
}

impl<E: Engine> Scorer<E> for SelfEvalScorer {
    fn name(&self) -> String {
        "self-eval".into()
    }

    fn score(
        &self,
        engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        let p = self.prepare(engine)?;
        let ids: Vec<u32> = p.yes.iter().chain(&p.no).copied().collect();
        let mut usage = Usage::default();
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let (asked, u) = engine.extend_prompt(it.state, &p.suffix)?;
            usage += u;
            let (lp, u) = engine.next_token_logprobs(&asked, &ids)?;
            usage += u;
            out.push(yes_probability(&lp, p.yes.len()));
        }
        Ok((out, usage))
    }
}
