//! Tokenizer, chat template and model-path tests.
//!
//! The agreement tests compare against llama.cpp's own tokenization of the default model
//! (fixtures copied from its output), so they need the real GGUF: run
//! `bash scripts/fetch-model.sh` once, or point `THINKTREE_MODEL` at it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde::Deserialize;
use thinktree_engine::ChatMessage;
use thinktree_gguf::Error;
use thinktree_gguf::gguf::open as open_gguf;
use thinktree_gguf::{ChatTemplate, GgufTokenizer};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

/// The real model's header, read once for all tests.
fn real_content() -> &'static Content {
    static CONTENT: OnceLock<Content> = OnceLock::new();
    CONTENT.get_or_init(
        || match open_gguf(&thinktree_gguf::testing::require_default_model()) {
            Ok((c, _)) => c,
            Err(e) => panic!("opening the default model failed: {e}"),
        },
    )
}

fn real_tokenizer() -> &'static GgufTokenizer {
    static TOK: OnceLock<GgufTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        GgufTokenizer::from_gguf(real_content()).expect("tokenizer from the real GGUF")
    })
}

#[derive(Deserialize)]
struct TokenRow {
    text: String,
    ids: Vec<u32>,
    #[serde(default)]
    special: bool,
}

fn token_rows() -> Vec<TokenRow> {
    let text =
        std::fs::read_to_string(Path::new(FIXTURES).join("tokens.jsonl")).expect("tokens fixture");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture row"))
        .collect()
}

#[derive(Deserialize)]
struct GreedyRef {
    prompt: String,
    prompt_ids: Vec<u32>,
}

fn greedy_ref() -> GreedyRef {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("smollm2_greedy.json"))
        .expect("greedy fixture");
    serde_json::from_str(&text).expect("greedy fixture json")
}

#[test]
fn every_fixture_row_matches_llama_cpp() {
    let tok = real_tokenizer();
    let rows = token_rows();
    assert!(rows.len() >= 17, "fixture has all rows");
    let mut failures = Vec::new();
    for row in &rows {
        let ids = tok.encode(&row.text, row.special).expect("encode");
        if ids != row.ids {
            failures.push(format!(
                "{:?}: got {ids:?}, llama.cpp {:?}",
                row.text, row.ids
            ));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// Found by the `tokenizer_roundtrip` fuzz target (docs/RELIABILITY.md): SmolLM2's
/// vocabulary has no token for the byte 0x13, so the round trip loses it. llama.cpp does
/// the same (llama-cpp-python 0.3.16, `vocab_only`: `b"a\x13b"` -> `[81, 82]` -> `b"ab"`,
/// and `b"\x13"` -> `[]`); the fuzz target now expects exactly that.
#[test]
fn a_byte_the_vocabulary_cannot_spell_is_dropped_as_llama_cpp_drops_it() {
    let tok = real_tokenizer();
    assert_eq!(tok.encode("a\x13b", false).unwrap(), [81, 82]);
    assert_eq!(tok.encode("\x13", false).unwrap(), Vec::<u32>::new());
    let crash = "<|im_stavt|d|>\x13";
    assert_eq!(
        tok.encode(crash, false).unwrap(),
        [44, 108, 306, 79, 302, 565, 100, 108, 84, 108, 46]
    );
    assert_eq!(
        tok.decode(&tok.encode(crash, false).unwrap()).unwrap(),
        "<|im_stavt|d|>"
    );
}

/// Also from the fuzz target: U+96062 is `f2 96 81 a2`, and SmolLM2 has no token for
/// 0xF2 either; llama.cpp gives `[240, 219, 112, 25]` -> `b"\x96\x81\xa2)"` for
/// `"\u{96062})"`. The bytes without a single-byte token are llama.cpp's list too.
#[test]
fn bytes_without_a_token_are_the_same_as_llama_cpps_and_dropped_alike() {
    let tok = real_tokenizer();
    let ids = tok.encode("\u{96062})", false).unwrap();
    assert_eq!(ids, [240, 219, 112, 25]);
    assert_eq!(tok.decode_bytes(&ids).unwrap(), b"\x96\x81\xa2)");
    let mut single = [false; 256];
    for id in 0..tok.vocab_size() as u32 {
        if let Some([b]) = tok.token_bytes(id).as_deref() {
            single[usize::from(*b)] = true;
        }
    }
    let missing: Vec<usize> = (0..256).filter(|&b| !single[b]).collect();
    let mut want = vec![4, 6, 19, 20, 22, 29, 192, 193, 241, 242];
    want.extend(245..=255);
    assert_eq!(missing, want);
}

#[test]
fn decoding_round_trips_fixture_text() {
    let tok = real_tokenizer();
    for row in token_rows() {
        assert_eq!(tok.decode(&row.ids).expect("decode"), row.text);
        assert_eq!(
            tok.decode_bytes(&row.ids).expect("decode_bytes"),
            row.text.as_bytes()
        );
    }
}

#[test]
fn split_multibyte_characters_keep_their_bytes() {
    let tok = real_tokenizer();
    // "数学题" is five tokens for three characters: some tokens are partial UTF-8.
    let ids = tok.encode("数学题", false).expect("encode");
    let mut bytes = Vec::new();
    for &id in &ids {
        bytes.extend(tok.token_bytes(id).expect("in vocabulary"));
    }
    assert_eq!(bytes, "数学题".as_bytes());
    // Decoding a prefix that ends inside a character must not panic and must be lossy
    // only at the end.
    let prefix = tok.decode(&ids[..1]).expect("decode prefix");
    assert!(
        prefix.ends_with('\u{FFFD}') || "数学题".starts_with(&prefix),
        "{prefix:?}"
    );
}

#[test]
fn special_tokens_parse_only_when_asked() {
    let tok = real_tokenizer();
    let with = tok.encode("<|im_start|>", true).expect("encode");
    assert_eq!(with, vec![1]);
    let without = tok.encode("<|im_start|>", false).expect("encode");
    assert!(!without.contains(&1), "{without:?}");
    assert!(without.len() > 1);
    assert_eq!(tok.decode(&without).expect("decode"), "<|im_start|>");
    assert_eq!(
        tok.decode(&[1, 2]).expect("decode"),
        "<|im_start|><|im_end|>"
    );
}

#[test]
fn vocabulary_facts_match_the_gguf() {
    let tok = real_tokenizer();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_token_id(), Some(1));
    assert_eq!(tok.eos_token_ids().first(), Some(&2), "GGUF eos first");
    assert!(
        tok.eos_token_ids().contains(&0),
        "<|endoftext|> also ends generation"
    );
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert_eq!(tok.token_id("no such token"), None);
    assert_eq!(tok.inner().token_to_id("<|im_start|>"), Some(1));
    assert!(
        tok.encode("", true).expect("empty").is_empty(),
        "no BOS: add_bos_token is false"
    );
    assert!(matches!(tok.decode(&[49152]), Err(Error::Tokenizer(_))));
    assert!(matches!(
        tok.decode_bytes(&[u32::MAX]),
        Err(Error::Tokenizer(_))
    ));
    assert_eq!(tok.token_bytes(49152), None);
}

#[test]
fn gguf_chat_template_renders_the_reference_prompt() {
    let reference = greedy_ref();
    let tpl = ChatTemplate::from_gguf(real_content()).expect("template");
    let messages = [
        ChatMessage::system(
            "You are a helpful assistant. Solve the math word problem step by step, then give the final answer as: The answer is N.",
        ),
        ChatMessage::user(
            "Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?",
        ),
    ];
    let prompt = tpl.apply(&messages, true).expect("render");
    assert_eq!(prompt, reference.prompt);
    let ids = real_tokenizer().encode(&prompt, true).expect("encode");
    assert_eq!(ids, reference.prompt_ids);
}

#[test]
fn smollm_template_inserts_its_default_system_prompt() {
    let tpl = ChatTemplate::from_gguf(real_content()).expect("template");
    let prompt = tpl.apply(&[ChatMessage::user("Hi")], true).expect("render");
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let no_gen = tpl
        .apply(
            &[ChatMessage::user("Hi"), ChatMessage::assistant("Hello")],
            false,
        )
        .expect("render");
    assert!(
        no_gen.ends_with("<|im_start|>assistant\nHello<|im_end|>\n"),
        "{no_gen:?}"
    );
    assert!(matches!(tpl.apply(&[], true), Err(Error::Empty(_))));
}

#[test]
fn template_errors_are_typed() {
    assert!(matches!(
        ChatTemplate::from_source("{% for m in messages %}"),
        Err(Error::ChatTemplate(_))
    ));
    let mut content = tiny_content();
    content
        .metadata
        .insert("tokenizer.chat_template".into(), Value::U32(3));
    assert!(
        matches!(ChatTemplate::from_gguf(&content), Err(Error::Metadata { key, .. }) if key == "tokenizer.chat_template")
    );
    // No template in the file: plain ChatML, with the GGUF's tokens for bos/eos.
    content.metadata.remove("tokenizer.chat_template");
    let tpl = ChatTemplate::from_gguf(&content).expect("fallback");
    assert_eq!(tpl.source(), ChatTemplate::chatml().source());
    let out = tpl.apply(&[ChatMessage::user("q")], true).expect("render");
    assert_eq!(
        out,
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    );
    // Neither a template nor ChatML tokens (a base model): the few-shot completion prompt.
    let tokens = Value::Array(
        ["<unk>", "a", "b"]
            .iter()
            .map(|t| Value::String((*t).into()))
            .collect(),
    );
    content
        .metadata
        .insert("tokenizer.ggml.tokens".into(), tokens);
    let tpl = ChatTemplate::from_gguf(&content).expect("fallback");
    assert_eq!(tpl.source(), thinktree_gguf::COMPLETION);
    let with_bos = ChatTemplate::from_source("{{ bos_token }}|{{ eos_token }}").expect("compile");
    assert_eq!(
        with_bos
            .apply(&[ChatMessage::user("q")], false)
            .expect("render"),
        "|"
    );
}

// ---- the tiny vocabulary the test GGUFs use -------------------------------------------

/// GPT-2's byte-level alphabet in byte order (written independently of the library's).
fn byte_symbols() -> Vec<String> {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut shifted = 256;
    (0u32..256)
        .map(|b| {
            let cp = if printable(b) {
                b
            } else {
                shifted += 1;
                shifted - 1
            };
            char::from_u32(cp).expect("valid code point").to_string()
        })
        .collect()
}

const TINY_MERGES: &[&str] = &[
    "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "r l", "Ġwo rl", "Ġworl d",
];

fn tiny_metadata() -> Vec<(String, Value)> {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    tokens.extend(byte_symbols());
    for m in TINY_MERGES {
        tokens.push(m.replace(' ', ""));
    }
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| Value::I32(if i < 3 { 3 } else { 1 }))
        .collect();
    vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(
                TINY_MERGES
                    .iter()
                    .map(|m| Value::String((*m).into()))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ]
}

fn tiny_content() -> Content {
    let mut file = std::io::Cursor::new(Vec::new());
    let md = tiny_metadata();
    let refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &refs, &[]).expect("write tiny gguf");
    file.set_position(0);
    Content::read(&mut file).expect("read tiny gguf")
}

#[test]
fn tiny_vocabulary_loads_and_merges() {
    let tok = GgufTokenizer::from_gguf(&tiny_content()).expect("tiny tokenizer");
    assert_eq!(tok.vocab_size(), 3 + 256 + TINY_MERGES.len());
    let hello = tok.token_id("hello").expect("merged token");
    let world = tok.token_id("Ġworld").expect("merged token");
    assert_eq!(
        tok.encode("hello world", false).expect("encode"),
        vec![hello, world]
    );
    // Unmerged text falls back to single bytes: 'z' is byte 0x7A at id 3 + 0x7A.
    assert_eq!(tok.encode("z", false).expect("encode"), vec![3 + 0x7A]);
    // Digits split one per token, as with the smollm pre-tokenizer.
    assert_eq!(
        tok.encode("12", false).expect("encode"),
        vec![3 + u32::from(b'1'), 3 + u32::from(b'2')]
    );
    let ids = tok
        .encode("<|im_start|>hello<|im_end|>", true)
        .expect("encode");
    assert_eq!(ids, vec![1, hello, 2]);
    assert_eq!(
        tok.decode(&ids).expect("decode"),
        "<|im_start|>hello<|im_end|>"
    );
    let text = "naïve\n  €5 — ok\t";
    assert_eq!(
        tok.decode(&tok.encode(text, false).expect("encode"))
            .expect("decode"),
        text
    );
    assert_eq!(tok.eos_token_ids(), &[2, 0]);
    assert_eq!(tok.bos_token_id(), Some(1));
}

#[test]
fn add_bos_token_is_honoured() {
    let mut content = tiny_content();
    content
        .metadata
        .insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
    let tok = GgufTokenizer::from_gguf(&content).expect("tokenizer");
    assert!(tok.adds_bos());
    // Encoding never adds BOS (it would land mid-context); a sequence's start gets it once.
    let ids = tok.encode("z", false).expect("encode");
    assert_eq!(ids, vec![3 + 0x7A]);
    assert_eq!(tok.with_bos(ids), vec![1, 3 + 0x7A]);
    assert_eq!(tok.with_bos(vec![1, 5]), vec![1, 5]);
}

fn expect_metadata_error(content: &Content, key: &str) {
    match GgufTokenizer::from_gguf(content) {
        Err(Error::Metadata { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected a metadata error for {key}, got {other:?}"),
    }
}

#[test]
fn missing_or_mistyped_metadata_is_a_typed_error() {
    for key in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.model",
    ] {
        let mut c = tiny_content();
        c.metadata.remove(key);
        expect_metadata_error(&c, key);
        c.metadata.insert(key.into(), Value::U32(7));
        expect_metadata_error(&c, key);
    }
    let mut c = tiny_content();
    c.metadata.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(vec![Value::U8(1)]),
    );
    expect_metadata_error(&c, "tokenizer.ggml.tokens");

    let mut c = tiny_content();
    c.metadata.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(vec![Value::String("nospace".into())]),
    );
    expect_metadata_error(&c, "tokenizer.ggml.merges");

    let mut c = tiny_content();
    c.metadata.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(vec![Value::I32(1)]),
    );
    expect_metadata_error(&c, "tokenizer.ggml.token_type");

    let mut c = tiny_content();
    c.metadata
        .insert("tokenizer.ggml.eos_token_id".into(), Value::U32(1_000_000));
    expect_metadata_error(&c, "tokenizer.ggml.eos_token_id");

    let mut c = tiny_content();
    c.metadata.insert(
        "tokenizer.ggml.eos_token_id".into(),
        Value::String("2".into()),
    );
    expect_metadata_error(&c, "tokenizer.ggml.eos_token_id");

    let mut c = tiny_content();
    c.metadata
        .insert("tokenizer.ggml.model".into(), Value::String("bert".into()));
    assert!(matches!(
        GgufTokenizer::from_gguf(&c),
        Err(Error::UnsupportedTokenizer(m)) if m.contains("`gpt2`") && m.contains("`llama`")
    ));
    // SentencePiece scores must cover the vocabulary.
    let mut c = tiny_content();
    c.metadata
        .insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
    c.metadata.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(vec![Value::F32(0.0)]),
    );
    expect_metadata_error(&c, "tokenizer.ggml.scores");

    let mut c = tiny_content();
    c.metadata
        .insert("tokenizer.ggml.pre".into(), Value::String("martian".into()));
    assert!(matches!(
        GgufTokenizer::from_gguf(&c),
        Err(Error::UnsupportedTokenizer(_))
    ));
}

// ---- files: tokenizer.json, missing, non-GGUF and truncated ----------------------------

#[test]
fn tokenizer_json_round_trip_matches_the_gguf_tokenizer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokenizer.json");
    let tok = GgufTokenizer::from_gguf(&tiny_content()).expect("tiny tokenizer");
    tok.inner().save(&path, false).expect("save tokenizer.json");
    let from_json = GgufTokenizer::from_tokenizer_json(&path).expect("load tokenizer.json");
    for text in [
        "hello world",
        "<|im_start|>hello<|im_end|>",
        "x = 12.5\n\n  y",
    ] {
        for special in [false, true] {
            let a = tok.encode(text, special).expect("encode");
            assert_eq!(
                from_json.encode(text, special).expect("encode"),
                a,
                "{text:?} special={special}"
            );
            assert_eq!(from_json.decode(&a).expect("decode"), text);
        }
    }
    assert!(from_json.eos_token_ids().contains(&2));
    assert_eq!(from_json.vocab_size(), tok.vocab_size());

    let missing = dir.path().join("nope.json");
    assert!(matches!(
        GgufTokenizer::from_tokenizer_json(&missing),
        Err(Error::Io { .. })
    ));
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{ not json").expect("write");
    assert!(matches!(
        GgufTokenizer::from_tokenizer_json(&garbage),
        Err(Error::Tokenizer(_))
    ));
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(bytes).expect("write");
    p
}

/// A small valid GGUF with the tiny vocabulary and one tensor, as bytes.
fn tiny_gguf_with_tensor() -> Vec<u8> {
    let t = Tensor::arange(0f32, 256f32, &Device::Cpu)
        .expect("tensor")
        .reshape((8, 32))
        .expect("reshape");
    let q = QTensor::quantize(&t, GgmlDType::F32).expect("quantize");
    let md = tiny_metadata();
    let refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut file, &refs, &[("w", &q)]).expect("write");
    file.into_inner()
}

#[test]
fn open_gguf_reads_a_valid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(dir.path(), "ok.gguf", &tiny_gguf_with_tensor());
    let (content, _file) = open_gguf(&p).expect("valid gguf");
    assert!(content.tensor_infos.contains_key("w"));
    let tok = GgufTokenizer::from_gguf(&content).expect("tokenizer");
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    assert!(thinktree_gguf::gguf::check(&p).is_ok());
}

#[test]
fn missing_model_is_model_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("absent.gguf");
    assert!(matches!(open_gguf(&p), Err(Error::NotFound { path }) if path == p));
    assert!(matches!(thinktree_gguf::gguf::check(&p), Err(Error::NotFound { path }) if path == p));
}

#[test]
fn non_gguf_files_are_invalid_gguf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "text.gguf",
            b"this is not a model file at all, just text".to_vec(),
        ),
        ("short.gguf", b"GGU".to_vec()),
        ("empty.gguf", Vec::new()),
        ("header_only.gguf", b"GGUF\x03\x00\x00\x00".to_vec()),
        (
            "bad_version.gguf",
            [b"GGUF".as_slice(), &[9, 0, 0, 0], &[0; 16]].concat(),
        ),
    ];
    for (name, bytes) in cases {
        let p = write_file(dir.path(), name, &bytes);
        assert!(
            matches!(open_gguf(&p), Err(Error::InvalidGguf { .. })),
            "{name}: open_gguf"
        );
        assert!(
            matches!(
                thinktree_gguf::gguf::check(&p),
                Err(Error::InvalidGguf { .. })
            ),
            "{name}: check"
        );
    }
    assert!(
        matches!(open_gguf(dir.path()), Err(Error::InvalidGguf { .. })),
        "a directory"
    );
}

#[test]
fn truncated_gguf_is_invalid_gguf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = tiny_gguf_with_tensor();
    // Cut inside the metadata, inside the tensor directory region, and inside tensor data.
    for cut in [40, full.len() / 2, full.len() - 100, full.len() - 1] {
        let p = write_file(dir.path(), &format!("cut{cut}.gguf"), &full[..cut]);
        match open_gguf(&p) {
            Err(Error::InvalidGguf { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!(
                "cut at {cut} of {}: expected InvalidGguf, got {:?}",
                full.len(),
                other.map(|_| ())
            ),
        }
    }
}

#[test]
fn real_model_header_is_valid() {
    let content = real_content();
    let md: &HashMap<String, Value> = &content.metadata;
    assert_eq!(
        md.get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str),
        Some("smollm")
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any text survives encode→decode on the tiny vocabulary (pure byte fallback plus a
    /// few merges), with special-token parsing on or off.
    #[test]
    fn tiny_vocabulary_round_trips_any_text(text in "\\PC{0,40}|[ \\n\\t0-9a-z<|>_]{0,40}", special: bool) {
        static TINY: OnceLock<GgufTokenizer> = OnceLock::new();
        let tok = TINY.get_or_init(|| GgufTokenizer::from_gguf(&tiny_content()).expect("tiny tokenizer"));
        let ids = tok.encode(&text, special).expect("encode");
        proptest::prop_assert_eq!(tok.decode(&ids).expect("decode"), text.clone());
        proptest::prop_assert_eq!(tok.decode_bytes(&ids).expect("decode_bytes"), text.into_bytes());
    }

    /// The same on the real 49k vocabulary.
    #[test]
    fn real_vocabulary_round_trips_any_text(text in "\\PC{0,60}") {
        let tok = real_tokenizer();
        let ids = tok.encode(&text, false).expect("encode");
        proptest::prop_assert_eq!(tok.decode(&ids).expect("decode"), text);
    }
}

/// The tiny vocabulary with `pre` as pre-tokenizer and extra tokens (with their merges,
/// `None` for a token that no merge produces).
fn tiny_content_with(pre: &str, extra: &[(&str, Option<&str>)]) -> Content {
    let mut c = tiny_content();
    c.metadata
        .insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
    for (key, values) in [
        (
            "tokenizer.ggml.tokens",
            extra
                .iter()
                .map(|(t, _)| Value::String((*t).into()))
                .collect::<Vec<_>>(),
        ),
        (
            "tokenizer.ggml.token_type",
            extra.iter().map(|_| Value::I32(1)).collect(),
        ),
        (
            "tokenizer.ggml.merges",
            extra
                .iter()
                .filter_map(|(_, m)| m.map(|m| Value::String(m.into())))
                .collect(),
        ),
    ] {
        if let Some(Value::Array(items)) = c.metadata.get_mut(key) {
            items.extend(values);
        }
    }
    c
}

#[test]
fn pre_tokenizer_follows_tokenizer_ggml_pre() {
    let digits = [("12", Some("1 2"))];
    // smollm isolates every digit, so "12" can never merge; GPT-2's regex keeps "12" whole.
    let smollm = GgufTokenizer::from_gguf(&tiny_content_with("smollm", &digits)).expect("smollm");
    assert_eq!(smollm.encode("12", false).expect("encode").len(), 2);
    let gpt2 = GgufTokenizer::from_gguf(&tiny_content_with("gpt2", &digits)).expect("gpt2");
    assert_eq!(
        gpt2.encode("12", false).expect("encode"),
        vec![gpt2.token_id("12").expect("id")]
    );
    // llama.cpp's "default" splits digit runs into groups of three.
    let default = GgufTokenizer::from_gguf(&tiny_content_with(
        "default",
        &[("12", Some("1 2")), ("34", Some("3 4"))],
    ))
    .expect("default");
    let ids = default.encode("1234", false).expect("encode");
    assert_eq!(default.decode(&ids).expect("decode"), "1234");
    assert!(
        !ids.contains(&default.token_id("34").expect("id")),
        "\"4\" starts a new group: {ids:?}"
    );
    // Llama 3 takes a piece that is a vocabulary entry whole, even without a merge for it.
    let unmerged = [("zz", None)];
    let llama3 = GgufTokenizer::from_gguf(&tiny_content_with("llama3", &unmerged)).expect("llama3");
    assert_eq!(
        llama3.encode("zz", false).expect("encode"),
        vec![llama3.token_id("zz").expect("id")]
    );
    let qwen2 = GgufTokenizer::from_gguf(&tiny_content_with("qwen2", &unmerged)).expect("qwen2");
    assert_eq!(qwen2.encode("zz", false).expect("encode").len(), 2);
    // No key at all means llama.cpp's "default".
    let mut c = tiny_content();
    c.metadata.remove("tokenizer.ggml.pre");
    let tok = GgufTokenizer::from_gguf(&c).expect("missing pre");
    let text = "x = 1,234,567.89; y's!";
    assert_eq!(
        tok.decode(&tok.encode(text, false).expect("encode"))
            .expect("decode"),
        text
    );
}
