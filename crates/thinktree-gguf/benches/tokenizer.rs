//! Tokenizer costs that sit on the engine's hot and start-up paths: building the 49k-token
//! vocabulary from GGUF metadata (once per model load), encoding a chat prompt (once per
//! question) and decoding a continuation (after every sampled token, for stop strings).
//!
//! Needs the default model (`bash scripts/fetch-model.sh`). Run with
//! `cargo bench -p thinktree-gguf --bench tokenizer`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use thinktree_engine::ChatMessage;
use thinktree_gguf::gguf::open as open_gguf;
use thinktree_gguf::{ChatTemplate, GgufTokenizer};

fn benches(c: &mut Criterion) {
    let path = thinktree_gguf::testing::default_model_path();
    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    g.bench_function("open_gguf_header", |b| {
        b.iter(|| open_gguf(black_box(&path)).map(|(c, _)| c.metadata.len()))
    });
    let (content, _file) = match open_gguf(&path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("skipping tokenizer benches: {e}");
            return;
        }
    };
    g.bench_function("from_gguf_49k_vocab", |b| {
        b.iter(|| GgufTokenizer::from_gguf(black_box(&content)).map(|t| t.vocab_size()))
    });

    let (tok, tpl) = match (
        GgufTokenizer::from_gguf(&content),
        ChatTemplate::from_gguf(&content),
    ) {
        (Ok(t), Ok(p)) => (t, p),
        _ => return,
    };
    let messages = [
        ChatMessage::system(
            "Solve the math word problem step by step, then give the final answer as: The answer is N.",
        ),
        ChatMessage::user(
            "A shop sells 12 pencils for $3. How much do 40 pencils cost? Explain each step.",
        ),
    ];
    g.bench_function("apply_chat_template", |b| {
        b.iter(|| tpl.apply(black_box(&messages), true))
    });
    let prompt = tpl.apply(&messages, true).unwrap_or_default();
    g.bench_function("encode_chat_prompt", |b| {
        b.iter(|| tok.encode(black_box(&prompt), true))
    });
    let ids = tok.encode(&prompt, true).unwrap_or_default();
    g.bench_function("decode_chat_prompt", |b| {
        b.iter(|| tok.decode(black_box(&ids)))
    });
    g.finish();
}

criterion_group!(tokenizer, benches);
criterion_main!(tokenizer);
