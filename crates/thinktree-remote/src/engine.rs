//! [`RemoteEngine`]: the [`Engine`] trait over OpenAI-compatible completions servers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use thinktree_engine::{ChatMessage, Continuation, Engine, Piece, Prompt, SampleParams, Usage};
use thinktree_gguf::{ChatTemplate, GgufTokenizer};

use crate::error::{Error, Result};
use crate::options::RemoteOptions;
use crate::pool::Pool;
use crate::protocol::{Choice, CompletionRequest, CompletionResponse, ServerUsage, finish_of};

/// A context on the server side: the exact prompt text so far.
///
/// The server holds no per-node cache we could name, so the state is the text itself;
/// because every call sends the same bytes for a shared prefix, the servers' own prefix
/// caches (vLLM's automatic prefix caching, SGLang's radix cache, llama.cpp's slot reuse)
/// play the part of the in-process KV tree.
#[derive(Debug, Clone, Default)]
pub struct RemoteState(Arc<Context>);

#[derive(Debug, Default)]
struct Context {
    text: String,
    tokens: usize,
}

impl RemoteState {
    /// The prompt text of this context.
    pub fn text(&self) -> &str {
        &self.0.text
    }

    fn child(&self, text: &str, tokens: usize) -> Self {
        let mut t = String::with_capacity(self.0.text.len() + text.len());
        t.push_str(&self.0.text);
        t.push_str(text);
        RemoteState(Arc::new(Context {
            text: t,
            tokens: self.0.tokens + tokens,
        }))
    }
}

/// Per-server counters, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// The completions endpoint.
    pub url: String,
    /// Requests sent (including retries).
    pub requests: u64,
    /// Requests that failed and were retried.
    pub failures: u64,
    /// Whether the server was found to return one sample per request.
    pub single_sample: bool,
}

/// An [`Engine`] whose model runs on one or more OpenAI-compatible servers.
///
/// Tokenization and the chat template run client-side from the same GGUF the server
/// loads (its metadata only — the weights are not read), so prompts are byte-identical
/// across calls and token counts are known without a round trip. `Continuation::tokens`
/// is the client tokenizer's reading of the returned text; `logprobs` has one entry per
/// token the server generated (the two lengths can differ by the token that completed a
/// stop string). `Usage::forward_calls` counts HTTP requests.
#[derive(Debug)]
pub struct RemoteEngine {
    pool: Pool,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    name: String,
}

impl RemoteEngine {
    /// An engine for `opts.servers` with an explicit tokenizer and chat template (for
    /// servers whose model has no GGUF at hand: see
    /// [`GgufTokenizer::from_tokenizer_json`] and [`ChatTemplate::from_source`]).
    pub fn new(
        opts: RemoteOptions,
        tokenizer: GgufTokenizer,
        template: ChatTemplate,
        name: impl Into<String>,
    ) -> Result<Self> {
        Ok(Self {
            pool: Pool::new(opts)?,
            tokenizer,
            template,
            name: name.into(),
        })
    }

    /// An engine whose tokenizer and chat template come from the GGUF the servers run
    /// (the template from [`RemoteOptions::chat_template`] when set).
    pub fn from_gguf(opts: RemoteOptions, gguf: impl AsRef<Path>) -> Result<Self> {
        let path = gguf.as_ref();
        let (content, _file) = thinktree_gguf::gguf::open(path)?;
        let tokenizer = GgufTokenizer::from_gguf(&content)?;
        let template = match &opts.chat_template {
            Some(t) => t.clone(),
            None => ChatTemplate::from_gguf(&content)?,
        };
        let model = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let n = opts.servers.len();
        let name = format!("{model} via {n} server{}", if n == 1 { "" } else { "s" });
        Self::new(opts, tokenizer, template, name)
    }

    /// Requests, failures and detected limits per server so far.
    pub fn server_stats(&self) -> Vec<ServerStats> {
        self.pool
            .servers
            .iter()
            .map(|s| ServerStats {
                url: s.url.clone(),
                requests: s.requests.load(Ordering::Relaxed),
                failures: s.failures.load(Ordering::Relaxed),
                single_sample: s.single_sample.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn model_field(&self) -> Option<&str> {
        self.pool.opts.model.as_deref()
    }

    /// One completions request; returns its choices (in index order) and its usage.
    fn complete(
        &self,
        state: &RemoteState,
        n: usize,
        params: &SampleParams,
        seed: u64,
    ) -> Result<(Vec<Choice>, Usage, usize)> {
        let req = CompletionRequest {
            model: self.model_field(),
            prompt: state.text(),
            max_tokens: params.stop.max_tokens,
            temperature: params.temperature,
            top_p: params.top_p.unwrap_or(1.0),
            top_k: params.top_k.unwrap_or(0),
            n,
            seed,
            stop: &params.stop.stop_strings,
            logprobs: 1,
        };
        let (resp, server) = self.post(&req, n)?;
        let usage = usage_of(resp.usage, state.0.tokens, &resp.choices, &self.tokenizer);
        Ok((resp.choices, usage, server))
    }

    /// Sends `req` for `n` samples and checks the answer ([`CompletionResponse::check`]):
    /// a malformed one is an [`Error::Protocol`], never a result.
    fn post(&self, req: &CompletionRequest<'_>, n: usize) -> Result<(CompletionResponse, usize)> {
        let (mut resp, server): (CompletionResponse, usize) = self.pool.post(req)?;
        resp.check(n).map_err(|reason| Error::Protocol {
            url: self.pool.servers[server].url.clone(),
            reason,
        })?;
        Ok((resp, server))
    }

    fn continuation(
        &self,
        state: &RemoteState,
        choice: &Choice,
        params: &SampleParams,
        server: usize,
    ) -> Result<Continuation<RemoteState>> {
        let lp = choice.logprobs.as_ref().ok_or_else(|| Error::Unsupported {
            url: self.pool.servers[server].url.clone(),
            feature: "logprobs",
        })?;
        let (finish, text) = finish_of(choice, &params.stop.stop_strings);
        let tokens = self.tokenizer.encode(&text, false)?;
        let logprobs = lp.token_logprobs.iter().flatten().copied().collect();
        Ok(Continuation {
            state: state.child(&text, tokens.len()),
            text,
            tokens,
            logprobs,
            confidences: Vec::new(),
            top_logprobs: Vec::new(),
            finish,
        })
    }
}

/// The server's token counts, or the client's when it sent none. Prompt tokens served
/// from the server's prefix cache are not counted as computed.
fn usage_of(
    server: Option<ServerUsage>,
    prompt_tokens: usize,
    choices: &[Choice],
    tok: &GgufTokenizer,
) -> Usage {
    let u = server.unwrap_or_else(|| ServerUsage {
        prompt_tokens: prompt_tokens as u64,
        completion_tokens: choices
            .iter()
            .map(|c| tok.encode(&c.text, false).map(|t| t.len()).unwrap_or(0) as u64)
            .sum(),
        prompt_tokens_details: None,
    });
    let cached = u
        .prompt_tokens_details
        .map(|d| d.cached_tokens.min(u.prompt_tokens))
        .unwrap_or(0);
    Usage {
        prompt_tokens: u.prompt_tokens - cached,
        generated_tokens: u.completion_tokens,
        computed_tokens: u.prompt_tokens - cached + u.completion_tokens,
        forward_calls: 1,
    }
}

/// A well-spread seed for the `k`-th extra request of a call with seed `seed` (SplitMix64),
/// so fallback requests never repeat a sibling's seed.
fn sub_seed(seed: u64, k: u64) -> u64 {
    thinktree_search::derive_seed(seed, k)
}

impl Engine for RemoteEngine {
    type State = RemoteState;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn tokenize(&self, text: &str) -> thinktree_engine::Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false)?)
    }

    fn detokenize(&self, ids: &[u32]) -> thinktree_engine::Result<String> {
        Ok(self.tokenizer.decode(ids)?)
    }

    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> thinktree_engine::Result<Prompt> {
        Ok(self
            .template
            .apply_prompt(messages, add_generation_prompt)?)
    }

    fn root(&self) -> RemoteState {
        RemoteState::default()
    }

    fn state_len(&self, state: &RemoteState) -> usize {
        state.0.tokens
    }

    /// Costs nothing now: the server computes the new text (or finds it in its prefix
    /// cache) on the next request, and that request's usage pays for it.
    fn extend(
        &self,
        parent: &RemoteState,
        text: &str,
    ) -> thinktree_engine::Result<(RemoteState, Usage)> {
        self.extend_prompt(parent, &Prompt::text(text))
    }

    /// Markup is sent as written; text is checked first: one holding a control token's
    /// string is refused ([`Error::ControlTokenInText`]), since the server would parse it.
    fn extend_prompt(
        &self,
        parent: &RemoteState,
        prompt: &Prompt,
    ) -> thinktree_engine::Result<(RemoteState, Usage)> {
        let mut n = 0;
        for piece in prompt.pieces() {
            let literal = self.tokenizer.encode(piece.as_str(), false)?;
            if let Piece::Text(t) = piece {
                let parsed = self.tokenizer.encode(t, true)?;
                if parsed != literal {
                    let token = parsed
                        .iter()
                        .find(|id| !literal.contains(id))
                        .and_then(|&id| self.tokenizer.decode(&[id]).ok())
                        .unwrap_or_default();
                    return Err(Error::ControlTokenInText { token }.into());
                }
                n += literal.len();
            } else {
                n += self.tokenizer.encode(piece.as_str(), true)?.len();
            }
        }
        let text = prompt.to_text();
        if text.is_empty() {
            return Ok((parent.clone(), Usage::default()));
        }
        Ok((parent.child(&text, n), Usage::default()))
    }

    /// One request with `n` samples; servers that return one instead (llama.cpp's) get the
    /// remainder as concurrent single-sample requests with their own seeds. Any other
    /// count, or an answer whose lengths disagree, is an [`Error::Protocol`].
    fn sample(
        &self,
        state: &RemoteState,
        n: usize,
        params: &SampleParams,
    ) -> thinktree_engine::Result<(Vec<Continuation<RemoteState>>, Usage)> {
        params.validate()?;
        if params.stop.confidence.is_some() {
            // A completion arrives whole, so a row cannot be stopped mid-way, and the
            // top-k log-probabilities DeepConf averages are not read from responses.
            return Err(Error::Unsupported {
                url: self.pool.servers[0].url.clone(),
                feature: "per-token confidence tracking (DeepConf); use the in-process engine",
            }
            .into());
        }
        if n == 0 {
            return Ok((Vec::new(), Usage::default()));
        }
        if state.text().is_empty() {
            return Err(thinktree_engine::Error::EmptyPrompt(
                "a remote sample needs a non-empty context",
            ));
        }
        let (mut choices, mut usage, server) = self.complete(state, n, params, params.seed)?;
        // Checked: `n` choices, or one from a server that returns one per request.
        let mut sources = vec![server; choices.len()];
        if choices.len() < n {
            self.pool.servers[server]
                .single_sample
                .store(true, Ordering::Relaxed);
            let missing = n - choices.len();
            let extra: Vec<Result<(Vec<Choice>, Usage, usize)>> = thread::scope(|s| {
                let handles: Vec<_> = (0..missing)
                    .map(|k| {
                        let seed = sub_seed(params.seed, k as u64 + 1);
                        s.spawn(move || self.complete(state, 1, params, seed))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::InvalidConfig("a request thread panicked".into()))
                        })
                    })
                    .collect()
            });
            for r in extra {
                let (c, u, srv) = r?;
                usage += u;
                // Checked: a request for one sample got exactly one.
                sources.extend(std::iter::repeat_n(srv, c.len()));
                choices.extend(c);
            }
        }
        let out = choices
            .iter()
            .zip(&sources)
            .map(|(c, &srv)| self.continuation(state, c, params, srv))
            .collect::<Result<Vec<_>>>()?;
        Ok((out, usage))
    }

    /// All requests in flight at once (bounded per server by the pool), so one search's
    /// leaves spread over every server.
    fn sample_many(
        &self,
        requests: &[(&RemoteState, usize)],
        params: &SampleParams,
    ) -> thinktree_engine::Result<(Vec<Vec<Continuation<RemoteState>>>, Usage)> {
        let results: Vec<thinktree_engine::Result<(Vec<Continuation<RemoteState>>, Usage)>> =
            thread::scope(|s| {
                let handles: Vec<_> = requests
                    .iter()
                    .enumerate()
                    .map(|(i, &(state, n))| {
                        let p = SampleParams {
                            seed: params.seed.wrapping_add(i as u64),
                            ..params.clone()
                        };
                        s.spawn(move || self.sample(state, n, &p))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::InvalidConfig("a request thread panicked".into()).into())
                        })
                    })
                    .collect()
            });
        let mut usage = Usage::default();
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            let (c, u) = r?;
            usage += u;
            out.push(c);
        }
        Ok((out, usage))
    }

    /// Reads the server's top alternatives for the next token (`top_logprobs` of them); a
    /// candidate outside that list gets the smallest listed log-probability, an upper
    /// bound of its own.
    fn next_token_logprobs(
        &self,
        state: &RemoteState,
        candidates: &[u32],
    ) -> thinktree_engine::Result<(Vec<f32>, Usage)> {
        if state.text().is_empty() {
            return Err(thinktree_engine::Error::EmptyPrompt(
                "next-token probabilities need a non-empty context",
            ));
        }
        let vocab = self.tokenizer.vocab_size();
        let strings = candidates
            .iter()
            .map(|&c| {
                if (c as usize) < vocab {
                    Ok(self.tokenizer.decode(&[c])?)
                } else {
                    Err(thinktree_engine::Error::TokenOutOfVocab { id: c, vocab })
                }
            })
            .collect::<thinktree_engine::Result<Vec<String>>>()?;
        let req = CompletionRequest {
            model: self.model_field(),
            prompt: state.text(),
            max_tokens: 1,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            n: 1,
            seed: 0,
            stop: &[],
            logprobs: self.pool.opts.top_logprobs,
        };
        let (resp, server) = self.post(&req, 1)?;
        let url = &self.pool.servers[server].url;
        let top = resp
            .choices
            .first()
            .and_then(|c| c.logprobs.as_ref())
            .and_then(|lp| lp.top_logprobs.as_ref())
            .and_then(|t| t.first().cloned().flatten())
            .filter(|m| !m.is_empty())
            .ok_or_else(|| Error::Unsupported {
                url: url.clone(),
                feature: "top logprobs",
            })?;
        let floor = top.values().copied().fold(f32::INFINITY, f32::min);
        let out = strings
            .iter()
            .map(|s| top.get(s).copied().unwrap_or(floor))
            .collect();
        let mut usage = usage_of(resp.usage, state.0.tokens, &[], &self.tokenizer);
        // The one token the server sampled to answer is not part of any result.
        usage.computed_tokens -= usage.generated_tokens.min(usage.computed_tokens);
        usage.generated_tokens = 0;
        Ok((out, usage))
    }
}
