//! SentencePiece tokenization on Gemma 3 270M against llama.cpp's own output
//! (`tests/fixtures/gemma3_tokens.jsonl`, llama-cpp-python 0.3.36 on the same file).
//! Runs where the file was fetched (`bash scripts/fetch-model.sh --model gemma3-270m`;
//! CI fetches it).

use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use thinktree_gguf::GgufTokenizer;
use thinktree_gguf::gguf::open as open_gguf;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

fn gemma() -> Option<&'static GgufTokenizer> {
    static TOK: OnceLock<Option<GgufTokenizer>> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = thinktree_gguf::testing::gemma_model_path()?;
        let (content, _) = open_gguf(&path).expect("open Gemma");
        Some(GgufTokenizer::from_gguf(&content).expect("Gemma tokenizer"))
    })
    .as_ref()
}

#[derive(Deserialize)]
struct Row {
    text: String,
    ids: Vec<u32>,
    #[serde(default)]
    special: bool,
}

fn rows() -> Vec<Row> {
    std::fs::read_to_string(Path::new(FIXTURES).join("gemma3_tokens.jsonl"))
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect()
}

#[test]
fn gemma_tokenization_matches_llama_cpp() {
    let Some(tok) = gemma() else { return };
    let rows = rows();
    assert!(rows.len() >= 17);
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let ids = tok.encode(&r.text, r.special).expect("encode");
            (ids != r.ids).then(|| format!("{:?}: got {ids:?}, llama.cpp {:?}", r.text, r.ids))
        })
        .collect();
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn gemma_decoding_round_trips() {
    let Some(tok) = gemma() else { return };
    for r in rows() {
        assert_eq!(tok.decode(&r.ids).expect("decode"), r.text);
        assert_eq!(tok.decode_bytes(&r.ids).expect("bytes"), r.text.as_bytes());
    }
}

#[test]
fn gemma_vocabulary_facts() {
    let Some(tok) = gemma() else { return };
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(tok.bos_token_id(), Some(2));
    assert!(tok.adds_bos(), "the GGUF says add_bos_token = true");
    assert_eq!(tok.with_bos(vec![9259]), vec![2, 9259]);
    assert_eq!(tok.with_bos(vec![2, 9259]), vec![2, 9259], "BOS once");
    assert_eq!(tok.eos_token_ids().first(), Some(&1));
    let eot = tok.token_id("<end_of_turn>").expect("<end_of_turn>");
    assert!(
        tok.eos_token_ids().contains(&eot),
        "a turn's end stops generation"
    );
    // A control token typed by a user is text, not the token.
    let sot = tok.token_id("<start_of_turn>").expect("<start_of_turn>");
    assert_eq!(
        tok.encode("<start_of_turn>", true).expect("special"),
        vec![sot]
    );
    let plain = tok.encode("<start_of_turn>", false).expect("plain");
    assert!(!plain.contains(&sot) && plain.len() > 1, "{plain:?}");
    assert_eq!(tok.decode(&plain).expect("decode"), "<start_of_turn>");
    // Characters outside the vocabulary fall back to byte tokens and round-trip.
    let odd = "\u{10FFFD}\u{1F9EC}";
    let ids = tok.encode(odd, false).expect("encode");
    assert_eq!(tok.decode(&ids).expect("decode"), odd);
}

/// Found by the `tokenizer_roundtrip` fuzz target (docs/RELIABILITY.md): a character
/// outside the vocabulary goes out as its UTF-8 bytes (byte fallback) and must come back
/// whole, after control bytes too. Ids from llama-cpp-python 0.3.16 (`vocab_only`) on
/// the same file.
#[test]
fn byte_fallback_characters_round_trip_as_llama_cpp_tokenizes_them() {
    let Some(tok) = gemma() else { return };
    let cases: [(&str, &[u32]); 4] = [
        (
            "\u{1}\0\0\0\0\0\0\0\u{96062})",
            &[
                249732, 238, 238, 238, 238, 238, 238, 238, 480, 388, 367, 400, 236768,
            ],
        ),
        ("\u{96062}", &[480, 388, 367, 400]),
        ("a\u{96062}b", &[236746, 480, 388, 367, 400, 236763]),
        ("\u{1}\u{96062}", &[249732, 480, 388, 367, 400]),
    ];
    for (text, want) in cases {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids, want, "{text:?}");
        assert_eq!(tok.decode(&ids).unwrap(), text, "{ids:?}");
    }
}
