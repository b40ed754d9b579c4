//! A scripted engine for deterministic tests of the reasoning layer.
//!
//! Its "model" knows a few complete solutions. A context continues the first solution
//! whose text extends the assistant's text so far; with several candidates the row's seed
//! picks one, so sampling is deterministic and different rows can disagree. One
//! character is one token. Every call's `Usage` is also summed into `ledger` so tests can
//! check that a solve's bill equals what the engine actually did.
#![allow(missing_docs)]

use std::sync::Mutex;

use thinktree_engine::{
    ChatMessage, Continuation, Engine, Error, FinishReason, Prompt, Result, SampleParams, Usage,
};

pub const PROMPT_END: &str = "<assistant>\n";

#[derive(Debug)]
pub struct ScriptEngine {
    /// Complete assistant replies (lines separated by '\n').
    pub solutions: Vec<String>,
    pub ledger: Mutex<Usage>,
    pub calls: Mutex<u64>,
    /// P("Yes") of self-evaluation, as a log-probability pair (yes, no).
    pub yes_no: (f32, f32),
    /// DeepConf token confidence of every token of solution `i` (1.0 where unset).
    pub confidence: Vec<f32>,
}

impl ScriptEngine {
    pub fn new(solutions: &[&str]) -> Self {
        Self {
            solutions: solutions.iter().map(|s| s.to_string()).collect(),
            ledger: Mutex::new(Usage::default()),
            calls: Mutex::new(0),
            yes_no: (-0.3, -1.5),
            confidence: Vec::new(),
        }
    }

    fn bill(&self, u: Usage) -> Usage {
        *self.ledger.lock().unwrap() += u;
        *self.calls.lock().unwrap() += 1;
        u
    }

    pub fn spent(&self) -> Usage {
        *self.ledger.lock().unwrap()
    }

    /// The assistant text of a context.
    fn reply(state: &str) -> &str {
        state.rsplit_once(PROMPT_END).map_or("", |(_, r)| r)
    }
}

fn mix(z: u64) -> u64 {
    thinktree_search::splitmix64(z)
}

impl Engine for ScriptEngine {
    type State = String;

    fn name(&self) -> String {
        "script".into()
    }

    fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.chars().map(|c| c as u32).collect())
    }

    fn detokenize(&self, ids: &[u32]) -> Result<String> {
        Ok(ids.iter().filter_map(|&i| char::from_u32(i)).collect())
    }

    fn chat_prompt(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<Prompt> {
        let mut p = Prompt::new();
        for m in messages {
            p.push_markup(format!("<{}>\n", format!("{:?}", m.role).to_lowercase()));
            p.push_text(m.content.clone());
            p.push_markup("</end>\n");
        }
        if add_generation_prompt {
            p.push_markup(PROMPT_END);
        }
        Ok(p)
    }

    fn root(&self) -> String {
        String::new()
    }

    fn state_len(&self, state: &String) -> usize {
        state.chars().count()
    }

    fn extend(&self, parent: &String, text: &str) -> Result<(String, Usage)> {
        let n = text.chars().count() as u64;
        let u = Usage {
            prompt_tokens: n,
            generated_tokens: 0,
            computed_tokens: n,
            forward_calls: 1,
        };
        Ok((format!("{parent}{text}"), self.bill(u)))
    }

    fn extend_prompt(&self, parent: &String, prompt: &Prompt) -> Result<(String, Usage)> {
        self.extend(parent, &prompt.to_text())
    }

    fn sample(
        &self,
        state: &String,
        n: usize,
        params: &SampleParams,
    ) -> Result<(Vec<Continuation<String>>, Usage)> {
        params.validate()?;
        let reply = Self::reply(state);
        let options: Vec<(usize, &String)> = self
            .solutions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.starts_with(reply))
            .collect();
        let mut out = Vec::with_capacity(n);
        let mut longest = 0;
        for row in 0..n {
            let pick = if options.is_empty() {
                None
            } else if params.temperature == 0.0 {
                Some(options[0])
            } else {
                Some(
                    options[(mix(params.seed ^ ((row as u64 + 1) * 7919)) % options.len() as u64)
                        as usize],
                )
            };
            let (text, finish, idx) = match pick {
                None => (String::new(), FinishReason::Eos, 0),
                Some((idx, sol)) => {
                    let rest = &sol[reply.len()..];
                    if rest.is_empty() {
                        (String::new(), FinishReason::Eos, idx)
                    } else {
                        let mut text = String::new();
                        let mut finish = FinishReason::Eos;
                        let conf = self.confidence.get(idx).copied().unwrap_or(1.0);
                        let mut confs = Vec::new();
                        for (i, c) in rest.chars().enumerate() {
                            if i >= params.stop.max_tokens {
                                finish = FinishReason::MaxTokens;
                                break;
                            }
                            text.push(c);
                            confs.push(conf);
                            if let Some(s) = params
                                .stop
                                .stop_strings
                                .iter()
                                .find(|s| text.ends_with(s.as_str()))
                            {
                                finish = FinishReason::Stop(s.clone());
                                break;
                            }
                            if params
                                .stop
                                .confidence
                                .is_some_and(|c| c.should_stop(&confs))
                            {
                                finish = FinishReason::LowConfidence;
                                break;
                            }
                        }
                        (text, finish, idx)
                    }
                }
            };
            let tokens: Vec<u32> = text.chars().map(|c| c as u32).collect();
            longest = longest.max(tokens.len() + 1);
            let lp = -0.05 * (idx as f32 + 1.0);
            // Scripted: the solution's confidence at every token; its top log-probs are
            // the token's own and four alternatives each one nat less likely.
            let (confidences, top_logprobs) = match &params.stop.confidence {
                Some(c) => (
                    vec![self.confidence.get(idx).copied().unwrap_or(1.0); tokens.len()],
                    vec![
                        (0..c.top_k.min(5))
                            .map(|j| lp - j as f32)
                            .collect::<Vec<f32>>();
                        tokens.len()
                    ],
                ),
                None => (Vec::new(), Vec::new()),
            };
            out.push(Continuation {
                logprobs: vec![lp; tokens.len()],
                confidences,
                top_logprobs,
                state: format!("{state}{text}"),
                text,
                tokens,
                finish,
            });
        }
        let generated: u64 = out.iter().map(|c| c.tokens.len() as u64).sum();
        let u = Usage {
            prompt_tokens: 0,
            generated_tokens: generated,
            computed_tokens: (longest * n) as u64,
            forward_calls: longest as u64,
        };
        Ok((out, self.bill(u)))
    }

    fn next_token_logprobs(&self, state: &String, candidates: &[u32]) -> Result<(Vec<f32>, Usage)> {
        if state.is_empty() {
            return Err(Error::EmptyPrompt("state"));
        }
        let yes: Vec<u32> = ["Yes", " Yes", "yes"]
            .iter()
            .filter_map(|w| w.chars().next().map(|c| c as u32))
            .collect();
        let lp = candidates
            .iter()
            .map(|c| {
                if yes.contains(c) {
                    self.yes_no.0
                } else {
                    self.yes_no.1
                }
            })
            .collect();
        let u = Usage {
            prompt_tokens: 0,
            generated_tokens: 0,
            computed_tokens: 1,
            forward_calls: 1,
        };
        Ok((lp, self.bill(u)))
    }
}
