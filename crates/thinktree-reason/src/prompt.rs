//! The prompt a problem is posed with.

use crate::error::{Error, Result};
use thinktree_engine::{ChatMessage, Piece, Prompt};
use thinktree_engine::{Engine, Usage};

use super::split::StepSplit;

/// The default system prompt. Short and explicit about the answer phrase, which is what a
/// 135M-parameter chat model can follow; the phrase is what makes a step terminal.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. Solve the math word problem step by step, then give the final answer as: The answer is N.";

/// Extra instruction when steps are cut at "Step k:" markers, so that the model writes them.
const STEP_MARKER_HINT: &str = " Write each step on its own line as 'Step k: ...'.";

/// The full prompt (chat template applied, ending where the answer begins). The question
/// and system prompt are literal text pieces: nothing in them is read as a control token.
pub fn prompt_text<E: Engine>(
    engine: &E,
    system: Option<&str>,
    question: &str,
    split: StepSplit,
) -> Result<Prompt> {
    if question.trim().is_empty() {
        return Err(Error::EmptyPrompt("question"));
    }
    let mut sys = system.unwrap_or(DEFAULT_SYSTEM_PROMPT).to_string();
    if split == StepSplit::StepMarker && system.is_none() {
        sys.push_str(STEP_MARKER_HINT);
    }
    let mut text = engine.chat_prompt(
        &[ChatMessage::system(sys), ChatMessage::user(question.trim())],
        true,
    )?;
    if split == StepSplit::StepMarker {
        // Seed the format: the first step starts with its marker already written.
        text.push_text("Step 1:");
    }
    Ok(text)
}

/// The root state of a problem: the prompt prefilled once, shared by every path.
pub fn root_state<E: Engine>(
    engine: &E,
    system: Option<&str>,
    question: &str,
    split: StepSplit,
) -> Result<(E::State, Usage)> {
    let prompt = prompt_text(engine, system, question, split)?;
    Ok(engine.extend_prompt(&engine.root(), &prompt)?)
}

/// The chat-template text that closes the assistant turn, asks `question` as the user,
/// and opens the next assistant turn. Appended to a partial solution's state, it lets the
/// same cached context answer a judging question (self-evaluation) by reading only these
/// new tokens. The question is a literal text piece.
pub fn followup_suffix<E: Engine>(engine: &E, question: &str) -> Result<Prompt> {
    const MARK: &str = "\u{2063}THINKTREE_SPLIT\u{2063}";
    let full = engine.chat_prompt(
        &[
            ChatMessage::system("s"),
            ChatMessage::user("u"),
            ChatMessage::assistant(MARK),
            ChatMessage::user(question),
        ],
        true,
    )?;
    let pieces = full.pieces();
    let at = pieces
        .iter()
        .position(|p| *p == Piece::Text(MARK.into()))
        .ok_or_else(|| Error::Prompt("the template dropped the assistant message".into()))?;
    let mut suffix = Prompt::new();
    for p in &pieces[at + 1..] {
        match p {
            Piece::Markup(s) => suffix.push_markup(s.clone()),
            Piece::Text(s) => suffix.push_text(s.clone()),
        }
    }
    Ok(suffix)
}
