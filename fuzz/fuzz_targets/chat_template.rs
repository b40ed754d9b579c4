//! Chat templates from strangers: any Jinja source compiled and rendered over any
//! conversation, plainly and as a prompt whose user text is kept apart from markup.
//!
//! Input: the template source, a NUL byte, then messages separated by `\x01`, each led by
//! one role byte (`s`, `u`, anything else: assistant). Real templates seed the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thinktree_engine::{ChatMessage, Role};
use thinktree_gguf::ChatTemplate;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (template, rest) = text.split_once('\0').unwrap_or((&text, "u2 + 2?"));
    let Ok(t) = ChatTemplate::from_source(template) else {
        return;
    };
    let messages: Vec<ChatMessage> = rest
        .split('\x01')
        .take(16)
        .map(|m| {
            let mut chars = m.chars();
            let role = match chars.next() {
                Some('s') => Role::System,
                Some('u') => Role::User,
                _ => Role::Assistant,
            };
            ChatMessage::new(role, chars.as_str())
        })
        .collect();
    for add_generation_prompt in [true, false] {
        let plain = t.apply(&messages, add_generation_prompt);
        if let Ok(p) = t.apply_prompt(&messages, add_generation_prompt) {
            // The pieces must be exactly the plain rendering.
            assert_eq!(Ok(p.to_text()), plain.map_err(|_| ()));
        }
    }
});
