//! One problem file from a stranger: JSONL lines of `{"question", "answer"}` with the
//! gold after `####`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(problems) = thinktree_gsm8k::data::parse_jsonl(text, Path::new("fuzz.jsonl"), "fuzz")
    {
        for p in problems {
            assert!(!p.gold.is_empty(), "{p:?}");
        }
    }
});
