//! A whole model load from untrusted bytes: GGUF header, metadata and tensor directory,
//! model config, tensor shapes and types, weights, tokenizer and chat template; then, for
//! what loads, one chat prompt through the tokenizer and one forward step.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use thinktree_engine::{ChatMessage, Engine, SampleParams, StopCondition};
use thinktree_llm::{EngineOptions, LocalEngine};

fuzz_target!(|data: &[u8]| {
    let opts = EngineOptions {
        kv_budget_bytes: 1 << 20,
        ..EngineOptions::default()
    };
    let Ok(engine) = LocalEngine::from_reader("fuzz.gguf", Cursor::new(data), opts) else {
        return;
    };
    let Ok(prompt) = engine.chat_prompt(&[ChatMessage::user("1+1=")], true) else {
        return;
    };
    let Ok((state, _)) = engine.extend_prompt(&engine.root(), &prompt) else {
        return;
    };
    let params = SampleParams::greedy(StopCondition::tokens(2));
    if let Ok((cs, _)) = engine.sample(&state, 1, &params) {
        for c in cs {
            let _ = engine.detokenize(&c.tokens);
        }
    }
});
