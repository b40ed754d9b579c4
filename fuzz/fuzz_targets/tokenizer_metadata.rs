//! A tokenizer built from arbitrary GGUF tokenizer metadata (either model type, any
//! vocabulary, scores, token types, merges, special ids and flags), then text encoded
//! (control tokens never parsed, then parsed) and decoded.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use libfuzzer_sys::fuzz_target;
use thinktree_gguf::GgufTokenizer;

#[derive(Debug, Arbitrary)]
struct Input {
    spm: bool,
    pre: Option<String>,
    tokens: Vec<String>,
    scores: Option<Vec<f32>>,
    types: Option<Vec<i32>>,
    merges: Option<Vec<String>>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    add_bos: Option<bool>,
    add_space_prefix: Option<bool>,
    text: String,
    ids: Vec<u32>,
}

fuzz_target!(|input: Input| {
    let s = |x: &str| Value::String(x.to_string());
    let mut md: HashMap<String, Value> = HashMap::new();
    md.insert(
        "tokenizer.ggml.model".into(),
        s(if input.spm { "llama" } else { "gpt2" }),
    );
    if let Some(pre) = &input.pre {
        md.insert("tokenizer.ggml.pre".into(), s(pre));
    }
    md.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(input.tokens.iter().map(|t| s(t)).collect()),
    );
    if let Some(scores) = &input.scores {
        let v = scores.iter().map(|&f| Value::F32(f)).collect();
        md.insert("tokenizer.ggml.scores".into(), Value::Array(v));
    }
    if let Some(types) = &input.types {
        let v = types.iter().map(|&t| Value::I32(t)).collect();
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(v));
    }
    if let Some(merges) = &input.merges {
        let v = merges.iter().map(|m| s(m)).collect();
        md.insert("tokenizer.ggml.merges".into(), Value::Array(v));
    }
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", input.bos),
        ("tokenizer.ggml.eos_token_id", input.eos),
        ("tokenizer.ggml.unknown_token_id", input.unk),
    ] {
        if let Some(id) = id {
            md.insert(key.into(), Value::U32(id));
        }
    }
    for (key, b) in [
        ("tokenizer.ggml.add_bos_token", input.add_bos),
        ("tokenizer.ggml.add_space_prefix", input.add_space_prefix),
    ] {
        if let Some(b) = b {
            md.insert(key.into(), Value::Bool(b));
        }
    }
    let content = Content {
        magic: VersionedMagic::GgufV3,
        metadata: md,
        tensor_infos: HashMap::new(),
        tensor_data_offset: 0,
    };
    let Ok(tok) = GgufTokenizer::from_gguf(&content) else {
        return;
    };
    for special in [false, true] {
        if let Ok(ids) = tok.encode(&input.text, special) {
            let _ = tok.decode(&tok.with_bos(ids));
        }
    }
    let _ = tok.decode(&input.ids);
    let _ = tok.decode_bytes(&input.ids);
    for &id in input.ids.iter().take(8) {
        let _ = tok.token_bytes(id);
    }
});
