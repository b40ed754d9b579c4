//! Where one reasoning step ends.
//!
//! The granularity of a step decides the branching structure of every search: whole lines
//! are natural for chat models, blank-line paragraphs for verbose ones, "Step k:" markers
//! for models prompted to number their steps, and fixed token chunks (Marco-o1's
//! "mini-steps") when the text has no reliable structure at all.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use thinktree_engine::StopCondition;

/// The marker a [`StepSplit::StepMarker`] step ends before.
const STEP_MARKER: &str = "\nStep ";

/// How generated text is cut into steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepSplit {
    /// A step is one line.
    Newline,
    /// A step is one paragraph (ends at an empty line).
    BlankLine,
    /// A step starts with "Step k:"; the system prompt asks the model for that format.
    StepMarker,
    /// A step is a fixed number of tokens.
    Tokens(usize),
}

impl StepSplit {
    /// The engine stop condition that ends one step, with at most `max_tokens` tokens.
    pub fn stop(self, max_tokens: usize) -> StopCondition {
        match self {
            StepSplit::Newline => StopCondition::newline(max_tokens),
            StepSplit::BlankLine => StopCondition::blank_line(max_tokens),
            StepSplit::StepMarker => StopCondition {
                stop_strings: vec![STEP_MARKER.into()],
                max_tokens,
                confidence: None,
            },
            StepSplit::Tokens(n) => StopCondition::tokens(n.min(max_tokens).max(1)),
        }
    }

    /// The text of a step as shown to people and scorers: the stop string that ended it
    /// stays in the engine's context (so the next step continues seamlessly) but is
    /// trimmed from the displayed step, and so is a "k:" step number.
    pub fn display_text(self, raw: &str) -> String {
        match self {
            StepSplit::StepMarker => {
                // The previous step consumed "\nStep ", so this one starts with its number.
                let t = raw.strip_suffix(STEP_MARKER).unwrap_or(raw).trim();
                let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                match t[digits..].strip_prefix(':') {
                    Some(rest) if digits > 0 => rest.trim().to_string(),
                    _ => t.to_string(),
                }
            }
            _ => raw.trim().to_string(),
        }
    }

    /// Checks the chunk size of [`StepSplit::Tokens`].
    pub fn validate(self) -> Result<()> {
        if self == StepSplit::Tokens(0) {
            return Err(Error::InvalidConfig(
                "token-chunk steps need at least 1 token".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for StepSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepSplit::Newline => f.write_str("newline"),
            StepSplit::BlankLine => f.write_str("blank-line"),
            StepSplit::StepMarker => f.write_str("step-marker"),
            StepSplit::Tokens(n) => write!(f, "tokens:{n}"),
        }
    }
}

impl FromStr for StepSplit {
    type Err = Error;

    /// Parses "newline", "blank-line", "step-marker" or "tokens:N".
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let split = match s.as_str() {
            "newline" | "line" => StepSplit::Newline,
            "blank-line" | "blank_line" | "paragraph" => StepSplit::BlankLine,
            "step-marker" | "step_marker" | "steps" => StepSplit::StepMarker,
            other => {
                let n = other
                    .strip_prefix("tokens:")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::InvalidConfig(format!(
                            "unknown step split `{other}` (expected newline, blank-line, step-marker or tokens:N)"
                        ))
                    })?;
                StepSplit::Tokens(n)
            }
        };
        split.validate()?;
        Ok(split)
    }
}
