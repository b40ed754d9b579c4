//! The tokenizer, built from the GGUF file itself.
//!
//! A GGUF carries its whole vocabulary in `tokenizer.ggml.*` metadata, so a model file is
//! self-contained: no `tokenizer.json` has to travel with it, and no hub download happens
//! at run time. The vocabulary is turned into a `tokenizers` tokenizer that reproduces
//! llama.cpp's tokenization, so the ids we feed the model are the ids llama.cpp would feed
//! it (checked against llama.cpp's own output for SmolLM2 and Gemma 3 in
//! `tests/it/tokenizer.rs`):
//!
//! - `bpe`: byte-level BPE (`tokenizer.ggml.model = "gpt2"`) with the pre-tokenizer of the
//!   GGUF's `tokenizer.ggml.pre`;
//! - `spm`: SentencePiece (`"llama"`), whose merges llama.cpp derives from token scores.
//!
//! Decoding does not go through the `tokenizers` decoder: every token's raw bytes are
//! precomputed once, so [`GgufTokenizer::decode_bytes`] is a plain concatenation. The
//! engine decodes after every sampled token to look for stop strings, and that has to be
//! cheap and must never lose bytes of a half-finished UTF-8 character.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::gguf::Content;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::Vocab;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::gguf::Metadata;

mod bpe;
mod spm;

use bpe::ByteTable;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub(super) mod token_type {
    /// An ordinary vocabulary entry.
    pub(crate) const NORMAL: i32 = 1;
    /// The unknown token: treated like a control token.
    pub(crate) const UNKNOWN: i32 = 2;
    /// A control token such as `<|im_start|>`: only parsed from text when asked to.
    pub(crate) const CONTROL: i32 = 3;
    /// A user-defined token: always matched as a whole in text, like llama.cpp does.
    pub(crate) const USER_DEFINED: i32 = 4;
    /// A SentencePiece byte-fallback token `<0xAB>` standing for one raw byte.
    pub(crate) const BYTE: i32 = 6;
}

/// Token strings that end a turn in common chat formats. Besides the GGUF's own
/// `eos_token_id` these also stop generation: SmolLM2's EOS is `<|im_end|>` but the model
/// may as well emit `<|endoftext|>`, and continuing past either only produces garbage.
const END_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
];

/// A tokenizer that matches llama.cpp on the same GGUF.
///
/// Cloning is cheap (the vocabulary is shared), so every engine worker can hold one.
#[derive(Clone)]
pub struct GgufTokenizer {
    /// Matches special tokens written in the text (`parse_special = true`).
    special: Arc<Tokenizer>,
    /// The same vocabulary with special-token matching off, so `<|im_start|>` typed by a
    /// user is tokenized as plain text and cannot forge a turn boundary.
    plain: Arc<Tokenizer>,
    /// Raw bytes of every token id, when the vocabulary is byte-level.
    pieces: Option<Arc<[Box<[u8]>]>>,
    eos: Vec<u32>,
    bos: Option<u32>,
    /// Prepend BOS when encoding (GGUF `tokenizer.ggml.add_bos_token`).
    add_bos: bool,
    /// Let a `tokenizer.json`'s own post-processor add its special tokens.
    post_process: bool,
    vocab_size: usize,
}

impl fmt::Debug for GgufTokenizer {
    // The derived form would print the 49k-entry vocabulary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("eos", &self.eos)
            .field("bos", &self.bos)
            .field("add_bos", &self.add_bos)
            .field("byte_level", &self.pieces.is_some())
            .finish()
    }
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF's `tokenizer.ggml.*` metadata.
    ///
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`: SmolLM2, Qwen, Llama 3) and
    /// SentencePiece (`"llama"`: Llama 2, Mistral, Gemma) vocabularies are supported;
    /// others give [`Error::UnsupportedTokenizer`]. Missing or mistyped keys give
    /// [`Error::Metadata`].
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let md = Metadata::of(content);
        let model = md.string("tokenizer.ggml.model")?;
        let tokens = md.string_array("tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(Metadata::err(
                "tokenizer.ggml.tokens",
                "the vocabulary is empty",
            ));
        }
        let vocab_size = tokens.len();
        u32::try_from(vocab_size)
            .map_err(|_| Metadata::err("tokenizer.ggml.tokens", "too many tokens"))?;
        let types = match md.get("tokenizer.ggml.token_type") {
            None => vec![token_type::NORMAL; vocab_size],
            Some(_) => md.i32_array("tokenizer.ggml.token_type")?,
        };
        if types.len() != vocab_size {
            return Err(Metadata::err(
                "tokenizer.ggml.token_type",
                format!(
                    "has {} entries but the vocabulary has {vocab_size}",
                    types.len()
                ),
            ));
        }
        let (tok, pieces) = match model {
            "gpt2" => bpe::from_gguf(&md, &tokens, &types)?,
            "llama" => spm::from_gguf(&md, &tokens, &types)?,
            other => {
                return Err(Error::UnsupportedTokenizer(format!(
                    "tokenizer.ggml.model = `{other}`: supported are `gpt2` (byte-level BPE) and `llama` (SentencePiece); pass a tokenizer.json instead"
                )));
            }
        };

        let bos = md.optional_id("tokenizer.ggml.bos_token_id", vocab_size)?;
        let add_bos = md
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(Metadata::err(
                "tokenizer.ggml.bos_token_id",
                "missing although tokenizer.ggml.add_bos_token is true",
            ));
        }
        let mut eos = Vec::new();
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            if let Some(id) = md.optional_id(key, vocab_size)? {
                push_unique(&mut eos, id);
            }
        }
        Self::finish(tok, Some(pieces), eos, bos, add_bos, false, vocab_size)
    }

    /// Loads a Hugging Face `tokenizer.json`, for models whose GGUF vocabulary is not
    /// byte-level BPE or to compare against the reference tokenizer.
    ///
    /// The file's own post-processor runs on [`encode`](Self::encode), so a BOS it is
    /// configured to add is added. End tokens are found by name (`<|im_end|>`,
    /// `<|endoftext|>`, `<|eot_id|>`, `</s>`, ...).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "tokenizer.json not found",
                ),
            });
        }
        let tok = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        let vocab = tok.get_vocab(true);
        // Ids, not entries, size the model's embedding: use the largest id (ids may have gaps).
        let vocab_size = vocab
            .values()
            .filter_map(|&id| usize::try_from(id).ok())
            .max()
            .map_or(0, |m| m + 1);
        // Only a plain byte-level decoder is known to be the byte table below; anything
        // else (SentencePiece-style, decoder sequences) decodes through `tokenizers`.
        let pieces = if matches!(tok.get_decoder(), Some(DecoderWrapper::ByteLevel(_))) {
            let table = ByteTable::new();
            let added = tok.get_added_tokens_decoder();
            let mut pieces: Vec<Box<[u8]>> = vec![Box::default(); vocab_size];
            for (text, id) in vocab {
                let Some(slot) = usize::try_from(id).ok().and_then(|i| pieces.get_mut(i)) else {
                    continue;
                };
                *slot = if added.contains_key(&id) {
                    text.as_bytes().into()
                } else {
                    table.bytes_of(&text)
                };
            }
            Some(pieces)
        } else {
            None
        };
        let bos = ["<|begin_of_text|>", "<s>", "<bos>"]
            .iter()
            .find_map(|t| tok.token_to_id(t));
        Self::finish(tok, pieces, Vec::new(), bos, false, true, vocab_size)
    }

    fn finish(
        tok: Tokenizer,
        pieces: Option<Vec<Box<[u8]>>>,
        mut eos: Vec<u32>,
        bos: Option<u32>,
        add_bos: bool,
        post_process: bool,
        vocab_size: usize,
    ) -> Result<Self> {
        for name in END_TOKENS {
            if let Some(id) = tok.token_to_id(name) {
                push_unique(&mut eos, id);
            }
        }
        let mut plain = tok.clone();
        plain.set_encode_special_tokens(true);
        Ok(Self {
            special: Arc::new(tok),
            plain: Arc::new(plain),
            pieces: pieces.map(Arc::from),
            eos,
            bos,
            add_bos,
            post_process,
            vocab_size,
        })
    }

    /// Turns text into token ids.
    ///
    /// With `parse_special`, control tokens written in the text (`<|im_start|>`) become
    /// their ids, which is what a rendered chat prompt needs; without it they are
    /// tokenized as ordinary text, which is what user-supplied content needs. BOS is never
    /// added here: a sequence's first tokens go through [`with_bos`](Self::with_bos), so
    /// BOS starts a sequence once and never lands mid-context.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let tok = if parse_special {
            &self.special
        } else {
            &self.plain
        };
        let enc = tok
            .encode_fast(text, self.post_process)
            .map_err(|e| Error::Tokenizer(format!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Whether the GGUF asks for BOS at the start of a sequence
    /// (`tokenizer.ggml.add_bos_token`; SmolLM2 says false, Llama and Gemma true).
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// The first tokens of a sequence: BOS prepended when the model asks for it and the
    /// tokens do not already start with it (a template that writes `{{ bos_token }}`).
    pub fn with_bos(&self, mut ids: Vec<u32>) -> Vec<u32> {
        if let Some(bos) = self.bos.filter(|_| self.add_bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        ids
    }

    /// The exact bytes the ids stand for, special tokens included as their text.
    ///
    /// Unlike [`decode`](Self::decode) this never replaces a partial UTF-8 sequence, so
    /// a caller that decodes token by token can hold back incomplete characters itself.
    /// An id outside the vocabulary is an [`Error::Tokenizer`].
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        match &self.pieces {
            Some(pieces) => {
                let mut out = Vec::with_capacity(ids.len() * 4);
                for &id in ids {
                    out.extend_from_slice(self.piece(pieces, id)?);
                }
                Ok(out)
            }
            None => Ok(self.decode_with_tokenizers(ids)?.into_bytes()),
        }
    }

    /// Turns ids back into text. Special tokens are kept as their text (`<|im_end|>`), so
    /// stop strings that mention them can be found; bytes round-trip exactly except that
    /// an incomplete UTF-8 sequence at a token boundary becomes U+FFFD (use
    /// [`decode_bytes`](Self::decode_bytes) to avoid that).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.pieces {
            Some(_) => {
                let bytes = self.decode_bytes(ids)?;
                Ok(match String::from_utf8(bytes) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                })
            }
            None => self.decode_with_tokenizers(ids),
        }
    }

    /// The raw bytes of one token, or `None` for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        match &self.pieces {
            Some(pieces) => self.piece(pieces, id).ok().map(<[u8]>::to_vec),
            None => self
                .decode_with_tokenizers(&[id])
                .ok()
                .map(String::into_bytes),
        }
    }

    fn piece<'a>(&self, pieces: &'a [Box<[u8]>], id: u32) -> Result<&'a [u8]> {
        usize::try_from(id)
            .ok()
            .and_then(|i| pieces.get(i))
            .map(|b| &b[..])
            .ok_or_else(|| self.out_of_vocab(id))
    }

    fn out_of_vocab(&self, id: u32) -> Error {
        Error::Tokenizer(format!(
            "token id {id} is outside the vocabulary of {}",
            self.vocab_size
        ))
    }

    fn decode_with_tokenizers(&self, ids: &[u32]) -> Result<String> {
        // `tokenizers` silently drops unknown ids; we report them instead.
        if let Some(&bad) = ids
            .iter()
            .find(|&&id| self.special.id_to_token(id).is_none())
        {
            return Err(self.out_of_vocab(bad));
        }
        self.special
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(format!("decoding failed: {e}")))
    }

    /// Ids that end generation: the GGUF's EOS (and EOT/EOM when given) first, then any
    /// end-of-turn tokens of common chat formats present in the vocabulary.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos
    }

    /// The beginning-of-sequence id, if the vocabulary names one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    /// The id of a token given by its vocabulary string (`"<|im_end|>"`, `"Ġthe"`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.special.token_to_id(token)
    }

    /// Number of token ids: the size of the model's embedding and output layers.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The underlying `tokenizers` tokenizer (with special-token parsing on), for
    /// anything this wrapper does not expose.
    pub fn inner(&self) -> &Tokenizer {
        &self.special
    }
}

fn push_unique(v: &mut Vec<u32>, id: u32) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// The token → id map of a GGUF vocabulary. A duplicated string keeps its first id, as
/// llama.cpp's text → id map does.
fn vocab_of(tokens: &[&str]) -> Vocab {
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, tok) in (0u32..).zip(tokens) {
        vocab.entry((*tok).to_owned()).or_insert(id);
    }
    vocab
}

/// The tokens matched as a whole in text before the model sees it, with their ids:
/// control (and unknown) tokens only when special tokens are parsed, user-defined tokens
/// always, as llama.cpp does. `normalized`: whether they are matched after the
/// tokenizer's normalizer (false: on the raw text, as llama.cpp does).
fn added_tokens(tokens: &[&str], types: &[i32], normalized: bool) -> (Vec<AddedToken>, Vec<usize>) {
    let mut added = Vec::new();
    let mut ids = Vec::new();
    for (id, (text, ty)) in tokens.iter().zip(types).enumerate() {
        let special = match *ty {
            token_type::CONTROL | token_type::UNKNOWN => true,
            token_type::USER_DEFINED => false,
            _ => continue,
        };
        if text.is_empty() {
            continue;
        }
        added.push(AddedToken::from((*text).to_owned(), special).normalized(normalized));
        ids.push(id);
    }
    (added, ids)
}
