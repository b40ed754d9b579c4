//! Test helpers (the `testing` feature; not public API): SmolLM2's chat template, a tiny
//! byte-level BPE vocabulary in SmolLM2's layout, and GGUF files holding just that
//! tokenizer (enough for a client such as the remote backend, which never reads weights).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::{self, Value};

use crate::error::{Error, Result};

/// The default model's file name, as `scripts/fetch-model.sh` writes it into `models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The workspace root (this crate lives in `crates/thinktree-gguf`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$THINKTREE_MODEL`, else the default model in the workspace's `models/`
/// (`bash scripts/fetch-model.sh` puts it there). The one place tests and benches of every
/// crate find the real model.
pub fn default_model_path() -> PathBuf {
    std::env::var_os("THINKTREE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models").join(DEFAULT_MODEL_FILE))
}

/// [`default_model_path`], panicking with the fix when the file is missing (for tests that
/// need the real model).
pub fn require_default_model() -> PathBuf {
    let p = default_model_path();
    assert!(
        p.is_file(),
        "the default model is needed: run `bash scripts/fetch-model.sh` (or set THINKTREE_MODEL); not at {}",
        p.display()
    );
    p
}

/// The second real model's file name (Gemma 3 270M base, Q4_K_M), as
/// `scripts/fetch-model.sh --model gemma3-270m` writes it into `models/`.
pub const GEMMA_MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// `$THINKTREE_GEMMA_MODEL`, else Gemma 3 270M in the workspace's `models/`, when the file
/// is there. Tests of the second real model run only where it was fetched (CI fetches it);
/// a test that skips says so on stderr.
pub fn gemma_model_path() -> Option<PathBuf> {
    let p = std::env::var_os("THINKTREE_GEMMA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models").join(GEMMA_MODEL_FILE));
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipped: Gemma 3 270M not at {} (bash scripts/fetch-model.sh --model gemma3-270m)",
            p.display()
        );
        None
    }
}

/// SmolLM2-135M-Instruct's `tokenizer.chat_template`, verbatim.
pub const SMOLLM2_CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Merges of the tiny vocabulary, in priority order; each adds the token `left + right`.
const TINY_MERGES: [(&str, &str); 10] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("a", "n"),
    ("e", "r"),
    ("o", "n"),
    ("Ġ", "a"),
    ("Ġ", "s"),
    ("r", "e"),
];

/// GPT-2's byte-to-character table: entry `b` is the printable character that stands for
/// byte `b` in byte-level BPE vocabularies.
pub fn bytes_to_unicode() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            let cp = if printable(b) {
                b
            } else {
                let c = next;
                next += 1;
                c
            };
            char::from_u32(cp).unwrap_or('?')
        })
        .collect()
}

/// A small byte-level BPE vocabulary in SmolLM2's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyVocab {
    /// `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, the 256 byte symbols in byte order,
    /// then the merged tokens.
    pub tokens: Vec<String>,
    /// GGUF token types: 3 (control) for the first three, 1 (normal) for the rest.
    pub token_types: Vec<i32>,
    /// `"left right"` for each merged token, in priority order.
    pub merges: Vec<String>,
}

/// The tiny vocabulary every test GGUF uses (also handy for tokenizer tests).
pub fn tiny_vocab() -> TinyVocab {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    tokens.extend(bytes_to_unicode().into_iter().map(String::from));
    let mut merges = Vec::new();
    for (l, r) in TINY_MERGES {
        tokens.push(format!("{l}{r}"));
        merges.push(format!("{l} {r}"));
    }
    let token_types = (0..tokens.len())
        .map(|i| if i < 3 { 3 } else { 1 })
        .collect();
    TinyVocab {
        tokens,
        token_types,
        merges,
    }
}

/// The `tokenizer.*` metadata of the tiny vocabulary (gpt2 BPE, `smollm` pre-tokenizer,
/// ChatML template, BOS 1, EOS 2, no BOS added).
pub fn tiny_tokenizer_metadata() -> Vec<(String, Value)> {
    let vocab = tiny_vocab();
    let s = |x: &str| Value::String(x.to_string());
    let tokenizer_md: Vec<(&str, Value)> = vec![
        ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("smollm")),
        (
            "tokenizer.ggml.tokens",
            Value::Array(vocab.tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(vocab.token_types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(vocab.merges.iter().map(|m| s(m)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ("tokenizer.ggml.padding_token_id", Value::U32(2)),
        ("tokenizer.chat_template", s(SMOLLM2_CHAT_TEMPLATE)),
    ];
    tokenizer_md
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Writes a GGUF with `metadata` and `tensors`.
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let md_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    gguf_file::write(&mut w, &md_refs, &t_refs).map_err(|e| Error::InvalidGguf {
        path: path.to_owned(),
        reason: format!("writing: {e}"),
    })?;
    std::io::Write::flush(&mut w).map_err(io)?;
    Ok(())
}

/// Writes a weightless GGUF holding only the tiny tokenizer and chat template.
pub fn write_tokenizer_gguf(path: &Path) -> Result<()> {
    let mut md = vec![(
        "general.name".to_string(),
        Value::String("tiny-tokenizer".into()),
    )];
    md.extend(tiny_tokenizer_metadata());
    write_gguf(path, &md, &[])
}
