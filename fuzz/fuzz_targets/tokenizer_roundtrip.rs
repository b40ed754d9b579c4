//! Encode/decode round trips through real vocabularies: a byte-level BPE (GPT-2 style)
//! tokenizer and a SentencePiece one built from GGUF metadata. Any text, encoded with
//! control tokens left unparsed, must decode back to its own bytes, less the bytes the
//! vocabulary cannot spell: SmolLM2's has no single-byte token for 21 bytes (0x13 and
//! 0xF2 among them, both found by this target), and llama.cpp drops them the same way
//! (`"a\x13b"` -> `[81, 82]` -> `"ab"` in llama-cpp-python 0.3.16).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use thinktree_gguf::GgufTokenizer;

/// The vocabulary of a model in the workspace's `models/` (fetched by
/// `scripts/fetch-model.sh`), or of `$THINKTREE_FUZZ_<KEY>`.
fn load(key: &str, file: &str) -> GgufTokenizer {
    let path = std::env::var_os(format!("THINKTREE_FUZZ_{key}"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models")
                .join(file)
        });
    let (content, _) = thinktree_gguf::gguf::open(&path).expect("the model file opens");
    GgufTokenizer::from_gguf(&content).expect("the model's vocabulary builds")
}

/// SmolLM2's byte-level BPE (GPT-2 style, 49,152 tokens).
static BPE: LazyLock<GgufTokenizer> =
    LazyLock::new(|| load("BPE", "SmolLM2-135M-Instruct.Q4_1.gguf"));
/// Gemma 3's SentencePiece vocabulary (262,144 tokens, byte fallback).
static SPM: LazyLock<GgufTokenizer> = LazyLock::new(|| load("SPM", "gemma-3-270m-q4_k_m.gguf"));

/// The bytes `tok` has no single-byte token for (a byte-level BPE cannot spell them).
fn unspellable(tok: &GgufTokenizer) -> [bool; 256] {
    let mut has = [false; 256];
    for id in 0..tok.vocab_size() as u32 {
        if let Some([b]) = tok.token_bytes(id).as_deref() {
            has[usize::from(*b)] = true;
        }
    }
    has.map(|h| !h)
}

static BPE_MISSING: LazyLock<[bool; 256]> = LazyLock::new(|| unspellable(&BPE));

fuzz_target!(|text: &str| {
    let bpe = &*BPE;
    let ids = bpe.encode(text, false).expect("any text encodes");
    let spellable: Vec<u8> = text
        .bytes()
        .filter(|&b| !BPE_MISSING[usize::from(b)])
        .collect();
    assert_eq!(
        bpe.decode_bytes(&ids).expect("own ids decode"),
        spellable,
        "{ids:?}"
    );
    // SentencePiece writes spaces as U+2581 and decodes that character back to a space
    // (llama.cpp does the same), so only texts without it round-trip exactly.
    if !text.contains('\u{2581}') {
        let spm = &*SPM;
        let ids = spm.encode(text, false).expect("any text encodes");
        assert_eq!(spm.decode(&ids).expect("own ids decode"), text, "{ids:?}");
    }
});
