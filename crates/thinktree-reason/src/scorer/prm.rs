//! A separate judge model (a process reward model, or just a second, stronger chat
//! model asked the self-evaluation question).

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::prompt::{followup_suffix, prompt_text};
use crate::split::StepSplit;
use thinktree_engine::{Engine, Prompt, Usage};

use super::self_eval::{SELF_EVAL_QUESTION, verdict_token_ids, yes_probability};
use super::{ScoreItem, Scorer};

/// Scores with P("Yes") from another engine `P`.
///
/// The judge has its own contexts, so the node's cache cannot be shared; instead the
/// question prompt is prefilled once per problem on the judge and each scored path
/// extends that cached state with its steps and the judging question.
#[derive(Debug)]
pub struct PrmScorer<P: Engine> {
    judge: P,
    cache: Mutex<Option<(String, P::State)>>,
    prepared: Mutex<Option<(Prompt, Vec<u32>, usize)>>,
}

impl<P: Engine> PrmScorer<P> {
    /// Judges with `judge`.
    pub fn new(judge: P) -> Self {
        Self {
            judge,
            cache: Mutex::new(None),
            prepared: Mutex::new(None),
        }
    }

    fn question_state(&self, question: &str) -> Result<(P::State, Usage)> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| Error::Poisoned("prm judge cache"))?;
        if let Some((q, s)) = cache.as_ref()
            && q == question
        {
            return Ok((s.clone(), Usage::default()));
        }
        let prompt = prompt_text(&self.judge, None, question, StepSplit::Newline)?;
        let (s, u) = self.judge.extend_prompt(&self.judge.root(), &prompt)?;
        *cache = Some((question.to_string(), s.clone()));
        Ok((s, u))
    }

    fn prepared(&self) -> Result<(Prompt, Vec<u32>, usize)> {
        let mut p = self
            .prepared
            .lock()
            .map_err(|_| Error::Poisoned("prm judge cache"))?;
        if let Some(v) = p.as_ref() {
            return Ok(v.clone());
        }
        let suffix = followup_suffix(&self.judge, SELF_EVAL_QUESTION)?;
        let (yes, no) = verdict_token_ids(&self.judge)?;
        let n_yes = yes.len();
        let ids: Vec<u32> = yes.into_iter().chain(no).collect();
        let v = (suffix, ids, n_yes);
        *p = Some(v.clone());
        Ok(v)
    }
}

impl<E: Engine, P: Engine> Scorer<E> for PrmScorer<P> {
    fn name(&self) -> String {
        format!("prm({})", self.judge.name())
    }

    fn score(
        &self,
        _engine: &E,
        items: &[ScoreItem<'_, E::State>],
        _seed: u64,
    ) -> Result<(Vec<f64>, Usage)> {
        let (suffix, ids, n_yes) = self.prepared()?;
        let mut usage = Usage::default();
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let (q, u) = self.question_state(it.question)?;
            usage += u;
            // The steps are the policy's words: literal text, then the template's suffix.
            let mut text = Prompt::text(it.steps.join("\n"));
            text.append(&suffix);
            let (asked, u) = self.judge.extend_prompt(&q, &text)?;
            usage += u;
            let (lp, u) = self.judge.next_token_logprobs(&asked, &ids)?;
            usage += u;
            out.push(yes_probability(&lp, n_yes));
        }
        Ok((out, usage))
    }
}
