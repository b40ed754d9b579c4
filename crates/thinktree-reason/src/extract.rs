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
