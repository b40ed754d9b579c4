//! The prompt a problem is posed with.

use crate::error::{Error, Result};
use thinktree_engine::ChatMessage;
use thinktree_engine::{Engine, Usage};

use super::split::StepSplit;

/// The default system prompt. Short and explicit about the answer phrase, which is what a
/// 135M-parameter chat model can follow; the phrase is what makes a step terminal.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. Solve the math word problem step by step, then give the final answer as: The answer is N.";

/// Extra instruction when steps are cut at "Step k:" markers, so that the model writes them.
const STEP_MARKER_HINT: &str = " Write each step on its own line as 'Step k: ...'.";

/// The full prompt text (chat template applied, ending where the answer begins).
pub fn prompt_text<E: Engine>(
    engine: &E,
    system: Option<&str>,
    question: &str,
    split: StepSplit,
) -> Result<String> {
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
        text.push_str("Step 1:");
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
    let text = prompt_text(engine, system, question, split)?;
    Ok(engine.extend(&engine.root(), &text)?)
}

/// The chat-template text that closes the assistant turn, asks `question` as the user,
/// and opens the next assistant turn. Appended to a partial solution's state, it lets the
/// same cached context answer a judging question (self-evaluation) by reading only these
/// new tokens.
pub fn followup_suffix<E: Engine>(engine: &E, question: &str) -> Result<String> {
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
    let at = full
        .find(MARK)
        .ok_or_else(|| Error::Prompt("the template dropped the assistant message".into()))?;
    Ok(full[at + MARK.len()..].to_string())
}
