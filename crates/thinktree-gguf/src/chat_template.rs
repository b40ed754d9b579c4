//! Rendering a conversation into the exact prompt text the model was trained on.
//!
//! A GGUF ships its chat template as Jinja source (`tokenizer.chat_template`, copied from
//! the Hugging Face tokenizer config). Rendering that very template, instead of a
//! hand-written imitation, keeps model-specific quirks — SmolLM2 inserts its own system
//! prompt when the conversation has none — identical to what llama.cpp and `transformers`
//! produce. The template is rendered with minijinja, configured like `transformers`'
//! `apply_chat_template` (`trim_blocks`, `lstrip_blocks`, Python string methods,
//! `raise_exception`).

use std::fmt;

use crate::gguf::{Content, Metadata};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, context};

use crate::error::{Error, Result};
use thinktree_engine::{ChatMessage, Prompt, Role};

/// Name the single template is stored under inside its environment.
const TEMPLATE_NAME: &str = "chat";

/// Instructions one rendering may run. A template comes from a stranger's file, and
/// `{% for i in range(99999) %}{% for j in range(99999) %}` would otherwise render for
/// hours. A chat template spends tens of instructions per message, so this still renders
/// thousands of messages (tested with 2,000), and stops a runaway one within ~0.1 s.
const TEMPLATE_FUEL: u64 = 2_000_000;

/// Plain ChatML, for models whose GGUF has no template. Unlike SmolLM2's own template it
/// adds no default system prompt: the caller's messages are rendered as given.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A plain completion prompt for base models whose GGUF has no template and whose
/// vocabulary has no ChatML tokens (Gemma 3 270M base): the system text, one worked
/// example, then `Question: ...` / `Answer: ...` turns, ending with `Answer:` to generate
/// from. Replace it with [`ChatTemplate::from_source`] (the gsm8k binary's
/// `--chat-template FILE`).
pub const COMPLETION: &str = "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% if loop.first %}{{ 'Question: Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?\nAnswer: Tom has 3 * 4 = 12 apples. After eating 2 he has 12 - 2 = 10. The answer is 10.\n\n' }}{% endif %}{% elif message['role'] == 'user' %}{{ 'Question: ' + message['content'] + '\n' }}{% else %}{{ 'Answer: ' + message['content'] + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Answer:' }}{% endif %}";

/// A compiled chat template.
///
/// Compiling happens once at construction, so a syntax error surfaces when the model is
/// loaded, and [`apply`](Self::apply) — called for every prompt — only renders.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

/// Two templates are equal when they render alike: the same source and special tokens.
impl PartialEq for ChatTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.bos_token == other.bos_token
            && self.eos_token == other.eos_token
    }
}

impl Eq for ChatTemplate {}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl ChatTemplate {
    /// The GGUF's own template (`tokenizer.chat_template`); when the file has none,
    /// [`chatml`](Self::chatml) if the vocabulary has ChatML's `<|im_start|>`, else the
    /// plain few-shot [`COMPLETION`] prompt of a base model. `bos_token`/`eos_token`,
    /// which many templates reference, are taken from the GGUF vocabulary when it names
    /// them.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let md = Metadata::of(content);
        let mut tpl = match md.opt_string("tokenizer.chat_template")? {
            None => {
                let chatml = md
                    .string_array("tokenizer.ggml.tokens")
                    .is_ok_and(|t| t.contains(&"<|im_start|>"));
                if chatml {
                    Self::chatml()
                } else {
                    Self::from_source(COMPLETION)?
                }
            }
            Some(src) => Self::from_source(src)?,
        };
        let token_text = |key: &str| -> Option<String> {
            let tokens = md.string_array("tokenizer.ggml.tokens").ok()?;
            let id = md.optional_id(key, tokens.len()).ok()??;
            Some(tokens.get(usize::try_from(id).ok()?)?.to_string())
        };
        if let Some(bos) = token_text("tokenizer.ggml.bos_token_id") {
            tpl.bos_token = bos;
        }
        if let Some(eos) = token_text("tokenizer.ggml.eos_token_id") {
            tpl.eos_token = eos;
        }
        Ok(tpl)
    }

    /// Plain ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), with no default system
    /// prompt. The fallback when a GGUF carries no template.
    pub fn chatml() -> Self {
        match Self::from_source(CHATML) {
            Ok(mut t) => {
                t.bos_token = "<|im_start|>".into();
                t.eos_token = "<|im_end|>".into();
                t
            }
            // CHATML is a constant that compiles; this arm is unreachable in practice and
            // keeps the constructor infallible without a panic path.
            Err(_) => Self {
                env: Environment::new(),
                source: String::new(),
                bos_token: String::new(),
                eos_token: String::new(),
            },
        }
    }

    /// Compiles Jinja template source written for Hugging Face's `apply_chat_template`.
    /// A syntax error is an [`Error::ChatTemplate`].
    pub fn from_source(template: &str) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned(TEMPLATE_NAME, template.to_owned())
            .map_err(|e| Error::ChatTemplate(format!("template does not compile: {e}")))?;
        Ok(Self {
            env,
            source: template.to_owned(),
            bos_token: String::new(),
            eos_token: String::new(),
        })
    }

    /// Renders `messages` into prompt text.
    ///
    /// With `add_generation_prompt` the text ends with the assistant header
    /// (`<|im_start|>assistant\n` for ChatML), which is what a prompt to generate from
    /// needs. The result contains special tokens as text: encode it with
    /// `parse_special = true`. An empty conversation is [`Error::Empty`]; a template
    /// that fails (e.g. calls `raise_exception` on an unsupported role order) is
    /// [`Error::ChatTemplate`].
    pub fn apply(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        self.render(messages, &contents, add_generation_prompt)
    }

    /// [`apply`](Self::apply) as a [`Prompt`]: the template's text as markup, each
    /// message's content as literal text, so nothing a message says is ever read as a
    /// control token.
    ///
    /// The template is rendered once more with a unique marker in place of each content;
    /// the text between markers is the template's. That must reproduce the real rendering
    /// with the contents put back (as given, or trimmed for templates that `| trim`
    /// them); a template that rewrites contents in another way is a typed error rather
    /// than a prompt whose user text might be parsed.
    pub fn apply_prompt(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Prompt> {
        let real = self.apply(messages, add_generation_prompt)?;
        let marks: Vec<String> = (0..messages.len())
            .map(|i| format!("\u{E000}thinktree-content-{i}\u{E001}"))
            .collect();
        let marked: Vec<&str> = marks.iter().map(String::as_str).collect();
        let skeleton = self.render(messages, &marked, add_generation_prompt)?;
        // Split the skeleton at the markers, in order of appearance.
        let mut parts: Vec<(String, Option<usize>)> = Vec::new();
        let mut rest = skeleton.as_str();
        while let Some((at, i)) = marks
            .iter()
            .enumerate()
            .filter_map(|(i, m)| rest.find(m.as_str()).map(|at| (at, i)))
            .min()
        {
            parts.push((rest[..at].to_string(), Some(i)));
            rest = &rest[at + marks[i].len()..];
        }
        parts.push((rest.to_string(), None));
        for trim in [false, true] {
            let mut p = Prompt::new();
            for (markup, content) in &parts {
                p.push_markup(markup.clone());
                if let Some(i) = content {
                    let c = messages[*i].content.as_str();
                    p.push_text(if trim { c.trim() } else { c });
                }
            }
            if p.to_text() == real {
                return Ok(p);
            }
        }
        Err(Error::ChatTemplate(
            "the template rewrites message contents, so user text cannot be kept apart from its control tokens".into(),
        ))
    }

    fn render(
        &self,
        messages: &[ChatMessage],
        contents: &[&str],
        add_generation_prompt: bool,
    ) -> Result<String> {
        if messages.is_empty() {
            return Err(Error::Empty("chat template applied to no messages"));
        }
        let msgs: Vec<minijinja::Value> = messages
            .iter()
            .zip(contents)
            .map(|(m, c)| context! { role => role_name(m.role), content => *c })
            .collect();
        let tpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        tpl.render(context! {
            messages => msgs,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        })
        .map_err(|e| Error::ChatTemplate(format!("rendering failed: {e}")))
    }

    /// The Jinja source this template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_that_would_loop_for_hours_runs_out_of_fuel() {
        let t = ChatTemplate::from_source(
            "{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}{% endfor %}",
        )
        .expect("compiles");
        let t0 = std::time::Instant::now();
        let err = t.apply(&[ChatMessage::user("hi")], true).unwrap_err();
        assert!(matches!(err, Error::ChatTemplate(_)), "{err:?}");
        assert!(err.to_string().contains("fuel"), "{err}");
        assert!(t0.elapsed().as_secs() < 30);
    }

    #[test]
    fn a_long_conversation_renders_within_the_fuel() {
        let msgs: Vec<ChatMessage> = (0..2000)
            .map(|i| {
                if i % 2 == 0 {
                    ChatMessage::user(format!("question {i}"))
                } else {
                    ChatMessage::assistant(format!("answer {i}"))
                }
            })
            .collect();
        let out = ChatTemplate::chatml().apply(&msgs, true).expect("renders");
        assert!(out.ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn chatml_renders_turns_and_generation_prompt() {
        let t = ChatTemplate::chatml();
        let out = t
            .apply(&[ChatMessage::system("S"), ChatMessage::user("U")], true)
            .unwrap_or_default();
        assert_eq!(
            out,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn completion_prompt_is_few_shot_question_and_answer() {
        let t = ChatTemplate::from_source(COMPLETION).expect("compiles");
        let msgs = [
            ChatMessage::system("Solve it."),
            ChatMessage::user("2 + 2?"),
        ];
        let out = t.apply(&msgs, true).expect("render");
        assert!(
            out.starts_with("Solve it.\n\nQuestion: Tom has 3 boxes"),
            "{out:?}"
        );
        assert!(
            out.ends_with("The answer is 10.\n\nQuestion: 2 + 2?\nAnswer:"),
            "{out:?}"
        );
        // As pieces: the user's question is literal text, the frame is markup.
        let p = t.apply_prompt(&msgs, true).expect("pieces");
        assert_eq!(p.to_text(), out);
        assert!(
            p.pieces()
                .contains(&thinktree_engine::Piece::Text("2 + 2?".into()))
        );
        // A follow-up turn (self-evaluation) renders after an answer.
        let more = [
            ChatMessage::system("S"),
            ChatMessage::user("u"),
            ChatMessage::assistant("a"),
            ChatMessage::user("Is it right?"),
        ];
        let out = t.apply(&more, true).expect("render");
        assert!(
            out.ends_with("Question: u\nAnswer: a\n\nQuestion: Is it right?\nAnswer:"),
            "{out:?}"
        );
    }

    #[test]
    fn raise_exception_is_a_typed_error() {
        let t = ChatTemplate::from_source("{{ raise_exception('no system role') }}");
        let t = t.ok();
        let err = t.map(|t| t.apply(&[ChatMessage::user("x")], false));
        assert!(matches!(err, Some(Err(Error::ChatTemplate(m))) if m.contains("no system role")));
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::from_source("{{ messages[0]['content'].strip() }}").ok();
        let out = t.map(|t| t.apply(&[ChatMessage::user("  hi  ")], false));
        assert!(matches!(out, Some(Ok(ref s)) if s == "hi"), "{out:?}");
    }
}
