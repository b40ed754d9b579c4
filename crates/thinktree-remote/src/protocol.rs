//! The OpenAI `/v1/completions` wire format, as far as the search needs it, and how a
//! server's answer maps back onto [`thinktree_engine::FinishReason`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thinktree_engine::FinishReason;

/// One completions request.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompletionRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    pub prompt: &'a str,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k on llama.cpp and vLLM.
    pub top_k: usize,
    pub n: usize,
    pub seed: u64,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub stop: &'a [String],
    pub logprobs: usize,
}

/// The part of a response we read; unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CompletionResponse {
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<ServerUsage>,
}

/// One sampled continuation.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub logprobs: Option<Logprobs>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// vLLM / SGLang: the stop string (or token id) that ended the choice, null for EOS.
    #[serde(default)]
    pub stop_reason: Option<Value>,
    /// llama.cpp's native server field for the same.
    #[serde(default)]
    pub stopping_word: Option<String>,
}

/// Legacy completions log-probabilities.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Logprobs {
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub token_logprobs: Vec<Option<f32>>,
    #[serde(default)]
    pub top_logprobs: Option<Vec<Option<HashMap<String, f32>>>>,
}

/// Token accounting as the server reports it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct ServerUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

/// Prefix-cache hits (vLLM, SGLang and OpenAI report them here).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

impl CompletionResponse {
    /// Checks that the answer is consistent with a request for `n` samples, then puts its
    /// choices in index order; the reason is the error otherwise, and nothing is built
    /// from such a body.
    ///
    /// The choices must number `n`, or exactly one (servers that return one sample per
    /// request, such as llama.cpp's and llama-cpp-python's), with indices `0..len` each
    /// once. Each choice's `tokens`, `token_logprobs` and (when sent) `top_logprobs` must
    /// have one entry per generated token, every log-probability a number. When usage is
    /// sent, its `completion_tokens` must cover the tokens returned and its cached prompt
    /// tokens must not exceed the prompt. A missing `usage` or `logprobs` is accepted here
    /// (the first is counted client-side; the second is refused where it is needed).
    pub(crate) fn check(&mut self, n: usize) -> Result<(), String> {
        let len = self.choices.len();
        if len == 0 {
            return Err("no choices in the response".into());
        }
        if len > n || (len < n && len != 1) {
            return Err(format!("{len} choices for the {n} asked for"));
        }
        let mut seen = vec![false; len];
        for c in &self.choices {
            match seen.get_mut(c.index) {
                Some(s) if !*s => *s = true,
                Some(_) => return Err(format!("choice index {} appears twice", c.index)),
                None => {
                    return Err(format!(
                        "choice index {} is out of range for {len} choice(s)",
                        c.index
                    ));
                }
            }
        }
        self.choices.sort_by_key(|c| c.index);
        let mut generated = 0u64;
        for c in &self.choices {
            let Some(lp) = &c.logprobs else { continue };
            let (i, t) = (c.index, lp.tokens.len());
            if lp.token_logprobs.len() != t {
                return Err(format!(
                    "choice {i}: {t} tokens but {} token_logprobs",
                    lp.token_logprobs.len()
                ));
            }
            if let Some(top) = &lp.top_logprobs
                && top.len() != t
            {
                return Err(format!(
                    "choice {i}: {t} tokens but {} top_logprobs",
                    top.len()
                ));
            }
            if let Some(k) = lp.token_logprobs.iter().position(Option::is_none) {
                return Err(format!("choice {i}: token_logprobs[{k}] is null"));
            }
            generated += t as u64;
        }
        if let Some(u) = &self.usage {
            if u.completion_tokens < generated {
                return Err(format!(
                    "usage.completion_tokens is {} but the choices hold {generated} tokens",
                    u.completion_tokens
                ));
            }
            if let Some(d) = &u.prompt_tokens_details
                && d.cached_tokens > u.prompt_tokens
            {
                return Err(format!(
                    "usage: {} cached prompt tokens of {} prompt tokens",
                    d.cached_tokens, u.prompt_tokens
                ));
            }
        }
        Ok(())
    }
}

/// Why a choice ended, and its text with the matched stop string put back.
///
/// OpenAI-style servers cut the text *before* a stop string and report both a stop
/// string and EOS as `"stop"`, while the engine contract keeps the stop string and tells
/// the two apart (EOS ends a reasoning chain, a newline only ends a step). Servers leave
/// different clues, tried in order: an explicit `stop_reason` / `stopping_word` (vLLM,
/// SGLang, llama.cpp), the generated tokens running past the returned text into a stop
/// string (llama-cpp-python returns the token that completed the match in `logprobs`),
/// and the text itself ending in one. With no clue, it was EOS.
pub(crate) fn finish_of(choice: &Choice, stops: &[String]) -> (FinishReason, String) {
    let text = choice.text.clone();
    if choice.finish_reason.as_deref() == Some("length") {
        return (FinishReason::MaxTokens, text);
    }
    let named = match &choice.stop_reason {
        Some(Value::String(s)) => Some(s.clone()),
        _ => choice.stopping_word.clone().filter(|s| !s.is_empty()),
    };
    if let Some(s) = named
        && stops.contains(&s)
    {
        return with_stop(text, s);
    }
    if let Some(lp) = &choice.logprobs {
        let generated: String = lp.tokens.concat();
        if let Some(rest) = generated.strip_prefix(text.as_str())
            && let Some(s) = stops.iter().find(|s| rest.starts_with(s.as_str()))
        {
            return with_stop(text, s.clone());
        }
    }
    if let Some(s) = stops.iter().find(|s| text.ends_with(s.as_str())) {
        return (FinishReason::Stop(s.clone()), text);
    }
    (FinishReason::Eos, text)
}

fn with_stop(mut text: String, stop: String) -> (FinishReason, String) {
    if !text.ends_with(&stop) {
        text.push_str(&stop);
    }
    (FinishReason::Stop(stop), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(text: &str, finish: &str) -> Choice {
        Choice {
            text: text.into(),
            index: 0,
            logprobs: None,
            finish_reason: Some(finish.into()),
            stop_reason: None,
            stopping_word: None,
        }
    }

    fn stops() -> Vec<String> {
        vec!["\n\n".into(), "\n".into()]
    }

    #[test]
    fn length_is_max_tokens() {
        let (f, t) = finish_of(&choice("abc", "length"), &stops());
        assert_eq!(f, FinishReason::MaxTokens);
        assert_eq!(t, "abc");
    }

    #[test]
    fn vllm_stop_reason_names_the_string() {
        let mut c = choice("Step 1", "stop");
        c.stop_reason = Some(Value::String("\n".into()));
        assert_eq!(
            finish_of(&c, &stops()),
            (FinishReason::Stop("\n".into()), "Step 1\n".into())
        );
        c.stop_reason = Some(Value::Null);
        assert_eq!(finish_of(&c, &stops()).0, FinishReason::Eos);
        // A stop token id (not one of our strings) is EOS-like.
        c.stop_reason = Some(Value::from(2));
        assert_eq!(finish_of(&c, &stops()).0, FinishReason::Eos);
    }

    #[test]
    fn tokens_past_the_text_reveal_the_stop_string() {
        let mut c = choice("So 3 + 4 = 7.", "stop");
        c.logprobs = Some(Logprobs {
            tokens: vec![
                "So".into(),
                " 3".into(),
                " +".into(),
                " 4".into(),
                " =".into(),
                " 7".into(),
                ".\n\n".into(),
            ],
            token_logprobs: vec![Some(-0.1); 7],
            top_logprobs: None,
        });
        let (f, t) = finish_of(&c, &stops());
        assert_eq!(f, FinishReason::Stop("\n\n".into()));
        assert_eq!(t, "So 3 + 4 = 7.\n\n");
    }

    #[test]
    fn no_clue_means_eos() {
        let mut c = choice("The answer is 7.", "stop");
        c.logprobs = Some(Logprobs {
            tokens: vec!["The answer is 7.".into()],
            token_logprobs: vec![Some(-0.1)],
            top_logprobs: None,
        });
        assert_eq!(finish_of(&c, &stops()).0, FinishReason::Eos);
    }

    #[test]
    fn text_that_keeps_its_stop_string() {
        let c = choice("a line\n", "stop");
        assert_eq!(
            finish_of(&c, &stops()),
            (FinishReason::Stop("\n".into()), "a line\n".into())
        );
    }
}
