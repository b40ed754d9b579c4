//! Pluggable final-answer extraction.
//!
//! Two questions are asked of a text, and they need different strictness: "does this step
//! *state* a final answer?" decides when a path is terminal, so it must not fire on every
//! intermediate number; "what is the answer of this finished solution?" must be forgiving,
//! because a small model often ends without the requested phrase.

use std::fmt;
use std::sync::Arc;

use crate::answer::extract_answer;

/// Reads final answers out of model text.
pub trait AnswerExtractor: Send + Sync {
    /// The answer if `step` explicitly states one (this makes the path terminal).
    fn explicit(&self, step: &str) -> Option<String>;
    /// The answer of a finished solution text, found as leniently as reasonable.
    fn extract(&self, text: &str) -> Option<String>;
}

/// Numeric answers as GSM8K states them: "The answer is N", `\boxed{N}` or `#### N`
/// mark a final answer; a solution without a marker answers with its last number.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumericExtractor;

impl NumericExtractor {
    fn has_marker(text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        ["answer is", "answer:", "boxed{", "####"]
            .iter()
            .any(|m| lower.contains(m))
    }
}

impl AnswerExtractor for NumericExtractor {
    fn explicit(&self, step: &str) -> Option<String> {
        if Self::has_marker(step) {
            extract_answer(step)
        } else {
            None
        }
    }

    fn extract(&self, text: &str) -> Option<String> {
        extract_answer(text)
    }
}

/// A shared extractor, cheap to clone into configs.
#[derive(Clone)]
pub struct Extractor(pub Arc<dyn AnswerExtractor>);

impl Extractor {
    /// Wraps any extractor.
    pub fn new(e: impl AnswerExtractor + 'static) -> Self {
        Self(Arc::new(e))
    }

    /// The answer a free completion of `prefix` reaches: the first line of `completion`
    /// that states one (such a line ends a path, as in a search), else one read from the
    /// whole text. Rollouts and the mutual-consistency check read completions this way.
    ///
    /// ```
    /// use thinktree_reason::Extractor;
    /// let ex = Extractor::default();
    /// let text = " 4 = 12.\nThe answer is 12.\nThe answer is 13.";
    /// assert_eq!(ex.completion_answer("3 *", text).as_deref(), Some("12"));
    /// assert_eq!(ex.completion_answer("3 * 4 =", " 12").as_deref(), Some("12"));
    /// ```
    pub fn completion_answer(&self, prefix: &str, completion: &str) -> Option<String> {
        completion
            .lines()
            .find_map(|l| self.0.explicit(l))
            .or_else(|| self.0.extract(&format!("{prefix}{completion}")))
    }
}

impl Default for Extractor {
    fn default() -> Self {
        Self::new(NumericExtractor)
    }
}

impl fmt::Debug for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Extractor(..)")
    }
}
