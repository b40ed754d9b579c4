//! Byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Qwen, Llama 3):
//! the GGUF's merges as they are, and the regex split llama.cpp applies for the file's
//! `tokenizer.ggml.pre`, then GPT-2's byte-to-character mapping.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};
use crate::gguf::Metadata;

use super::{added_tokens, vocab_of};

/// GPT-2's split regex, which llama.cpp uses for the "gpt2" family of pre-tokenizers. The
/// final `\s+` catches whitespace the lookahead alternative leaves over; llama.cpp keeps
/// such unmatched text as its own piece, which gives the same pieces.
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// The first stage of llama.cpp's fallback ("default") pre-tokenizer: runs of punctuation.
const DEFAULT_PUNCT_PATTERN: &str = r"[\p{P}\$\+<=>\^~\|]+";

/// Llama 3's split regex (llama.cpp pre types "llama3", "llama-bpe", "falcon3", ...).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen 2's split regex: like Llama 3's but with single digits.
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The tokenizer and every token's raw bytes for a byte-level BPE vocabulary.
pub(super) fn from_gguf(
    md: &Metadata<'_>,
    tokens: &[&str],
    types: &[i32],
) -> Result<(Tokenizer, Vec<Box<[u8]>>)> {
    let pre = match md.get("tokenizer.ggml.pre") {
        None => "default".to_owned(),
        Some(_) => md.string("tokenizer.ggml.pre")?.to_owned(),
    };
    let pre = pre_tokenization_for(&pre)?;
    let merges = md
        .string_array("tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| {
                    Metadata::err(
                        "tokenizer.ggml.merges",
                        format!("entry {i} `{m}` is not two tokens separated by a space"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_of(tokens), merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| Error::Tokenizer(format!("building BPE from GGUF vocabulary: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre.pre_tokenizer));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    let (added, added_ids) = added_tokens(tokens, types, true);
    tok.add_tokens(&added);

    let table = ByteTable::new();
    let pieces = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| {
            if added_ids.binary_search(&id).is_ok() {
                // Added tokens are stored as their literal text, not byte-mapped.
                t.as_bytes().into()
            } else {
                table.bytes_of(t)
            }
        })
        .collect();
    Ok((tok, pieces))
}

/// How llama.cpp prepares text for a GGUF `tokenizer.ggml.pre` value.
struct PreTokenization {
    /// Regex splits (applied in order, each on the pieces of the previous) + byte mapping.
    pre_tokenizer: PreTokenizerWrapper,
    /// Take a piece that is itself a vocabulary entry whole instead of merging it up
    /// (llama.cpp does this for the Llama 3 family only).
    ignore_merges: bool,
}

/// The pre-tokenization llama.cpp applies for a GGUF `tokenizer.ggml.pre` value. Unknown
/// values are an error rather than a guess: a wrong split silently changes token ids.
fn pre_tokenization_for(pre: &str) -> Result<PreTokenization> {
    // The regex stages only split; ByteLevel then maps bytes without splitting again.
    let byte_level_only: PreTokenizerWrapper = ByteLevel::new(false, true, false).into();
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        Split::new(
            SplitPattern::Regex(pattern.to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(Into::into)
        .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))
    };
    let (stages, ignore_merges) = match pre {
        // `\p{N}` first (every digit alone; `Digits` splits on the same `char::is_numeric`
        // class), then the GPT-2 regex.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            (vec![Digits::new(true).into(), split(GPT2_PATTERN)?], false)
        }
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" => (vec![split(GPT2_PATTERN)?], false),
        // What llama.cpp uses when the key is missing or says "default".
        "default" => (
            vec![
                split(DEFAULT_PUNCT_PATTERN)?,
                split(GPT2_PATTERN)?,
                split(r"\p{N}+")?,
                split("[0-9][0-9][0-9]")?,
            ],
            false,
        ),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => (vec![split(LLAMA3_PATTERN)?], true),
        "qwen2" | "stablelm2" | "deepseek-r1-qwen" => (vec![split(QWEN2_PATTERN)?], false),
        other => {
            return Err(Error::UnsupportedTokenizer(format!(
                "tokenizer.ggml.pre = `{other}`: unknown pre-tokenizer; pass a tokenizer.json instead"
            )));
        }
    };
    let mut all = stages;
    all.push(byte_level_only);
    Ok(PreTokenization {
        pre_tokenizer: Sequence::new(all).into(),
        ignore_merges,
    })
}

/// GPT-2's char→byte table, indexed by code point: bytes that are printable Latin-1 stand
/// for themselves, the other 68 are shifted to code points 256..324 in byte order.
pub(super) struct ByteTable([Option<u8>; 324]);

impl ByteTable {
    pub(super) fn new() -> Self {
        let printable = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut table = [None; 324];
        let mut next = 256usize;
        for b in 0..=255u8 {
            if printable(b) {
                table[usize::from(b)] = Some(b);
            } else {
                table[next] = Some(b);
                next += 1;
            }
        }
        Self(table)
    }

    fn byte_of(&self, c: char) -> Option<u8> {
        usize::try_from(u32::from(c))
            .ok()
            .and_then(|i| self.0.get(i).copied().flatten())
    }

    /// The bytes a byte-level BPE token string stands for. A char outside the table (only
    /// possible in a vocabulary that is not really byte-level) contributes its UTF-8.
    pub(super) fn bytes_of(&self, token: &str) -> Box<[u8]> {
        let mut out = Vec::with_capacity(token.len());
        for c in token.chars() {
            match self.byte_of(c) {
                Some(b) => out.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection_over_all_bytes() {
        let table = ByteTable::new();
        let mut seen = [false; 256];
        for cp in 0u32..400 {
            if let Some(b) = char::from_u32(cp).and_then(|c| table.byte_of(c)) {
                assert!(!seen[usize::from(b)], "byte {b} mapped twice");
                seen[usize::from(b)] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "every byte has a char");
        assert_eq!(table.byte_of('Ġ'), Some(b' '));
        assert_eq!(table.byte_of('Ċ'), Some(b'\n'));
        assert_eq!(table.byte_of('A'), Some(b'A'));
        assert_eq!(&*table.bytes_of("Ġhi"), b" hi");
    }
}
