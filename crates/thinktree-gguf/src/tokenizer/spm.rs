//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Llama 1/2, Mistral,
//! Gemma) as llama.cpp tokenizes them.
//!
//! A SentencePiece GGUF carries tokens and scores but no merge list. llama.cpp's
//! tokenizer starts from the text's characters (spaces written as `▁`) and repeatedly
//! joins the adjacent pair whose concatenation is a token with the highest score (the
//! leftmost pair on a tie); characters that never became a token fall back to their
//! `<0xAB>` byte tokens. That is byte-level-free BPE whose merge list is "every split of
//! every token into two tokens, ranked by the token's score", which is how the merges are
//! built here for the `tokenizers` crate's BPE (Hugging Face converts SentencePiece models
//! the same way). Gemma 3's 262k vocabulary gives ~1.2M such merges.
//!
//! Control tokens (`<bos>`, `<start_of_turn>`) are not merge targets: text the user
//! typed can never merge into one (llama.cpp does not rule that out).

use std::collections::HashMap;

use tokenizers::Tokenizer;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence};

use crate::error::{Error, Result};
use crate::gguf::Metadata;

use super::{added_tokens, token_type, vocab_of};

/// SentencePiece's stand-in for a space.
const SPACE: char = '\u{2581}';

/// The tokenizer and every token's raw bytes for a SentencePiece vocabulary.
pub(super) fn from_gguf(
    md: &Metadata<'_>,
    tokens: &[&str],
    types: &[i32],
) -> Result<(Tokenizer, Vec<Box<[u8]>>)> {
    let scores = match md.get("tokenizer.ggml.scores") {
        None => vec![0.0; tokens.len()],
        Some(_) => md.f32_array("tokenizer.ggml.scores")?,
    };
    if scores.len() != tokens.len() {
        return Err(Metadata::err(
            "tokenizer.ggml.scores",
            format!(
                "has {} entries but the vocabulary has {}",
                scores.len(),
                tokens.len()
            ),
        ));
    }
    // llama.cpp prefixes a space unless the file says not to (Gemma says not to).
    let add_space_prefix = md
        .opt_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let unk = md
        .optional_id("tokenizer.ggml.unknown_token_id", tokens.len())?
        .and_then(|id| tokens.get(id as usize))
        .map(|t| (*t).to_owned());

    let mut builder = BPE::builder()
        .vocab_and_merges(vocab_of(tokens), merges(tokens, types, &scores))
        .byte_fallback(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder
        .build()
        .map_err(|e| Error::Tokenizer(format!("building SentencePiece vocabulary: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let space = Replace::new(" ", SPACE.to_string())
        .map_err(|e| Error::Tokenizer(format!("space normalizer: {e}")))?;
    let mut norm: Vec<NormalizerWrapper> = vec![space.into()];
    if add_space_prefix {
        norm.push(Prepend::new(SPACE.to_string()).into());
    }
    tok.with_normalizer(Some(Sequence::new(norm)));
    // llama.cpp matches special and user-defined tokens in the raw text, before spaces
    // are escaped.
    let (added, _) = added_tokens(tokens, types, false);
    tok.add_tokens(&added);

    let pieces = tokens
        .iter()
        .zip(types)
        .map(|(t, &ty)| match ty {
            token_type::BYTE => byte_of(t).map_or_else(|| t.as_bytes().into(), |b| [b].into()),
            token_type::NORMAL => t.replace(SPACE, " ").into_bytes().into(),
            _ => t.as_bytes().into(),
        })
        .collect();
    Ok((tok, pieces))
}

/// Every way to join two tokens into a third, highest-scored result first (ties: lower
/// id first). Only normal and user-defined tokens are results.
fn merges(tokens: &[&str], types: &[i32], scores: &[f32]) -> Vec<(String, String)> {
    let mut id_of: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    for (id, t) in tokens.iter().enumerate() {
        id_of.entry(t).or_insert(id);
    }
    let mut targets: Vec<usize> = (0..tokens.len())
        .filter(|&id| {
            matches!(
                types.get(id),
                Some(&(token_type::NORMAL | token_type::USER_DEFINED))
            )
        })
        .collect();
    targets.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut out = Vec::new();
    for id in targets {
        let t = tokens[id];
        for (at, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(at);
            if id_of.contains_key(l) && id_of.contains_key(r) {
                out.push((l.to_owned(), r.to_owned()));
            }
        }
    }
    out
}

/// The byte a `<0xAB>` token stands for.
fn byte_of(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(byte_of("<0x0A>"), Some(b'\n'));
        assert_eq!(byte_of("<0xff>"), Some(0xff));
        assert_eq!(byte_of("<0x1>"), None);
        assert_eq!(byte_of("<0xZZ>"), None);
        assert_eq!(byte_of("a"), None);
    }

    #[test]
    fn merges_rank_by_score_and_skip_control_tokens() {
        let tokens = ["<s>", "a", "b", "ab", "ba", "<s>ab"];
        let types = [3, 1, 1, 1, 1, 3];
        let scores = [0.0, -5.0, -6.0, -2.0, -1.0, 10.0];
        let m = merges(&tokens, &types, &scores);
        let m: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(m, [("b", "a"), ("a", "b")]);
    }
}
