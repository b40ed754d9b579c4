//! Crafted GGUF headers: every length a file states is checked against the file before
//! anything is allocated, so a hostile header is a typed error, never an aborted process.

use std::path::Path;

use thinktree_gguf::Error;
use thinktree_gguf::gguf::open;

/// Raw GGUF v3 bytes: header, then whatever `body` adds.
fn gguf(n_tensors: u64, n_kv: u64, body: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b.extend(body);
    // Some padding so "runs past the end" is not the trivial reason.
    b.extend([0u8; 64]);
    b
}

fn string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u64).to_le_bytes().to_vec();
    b.extend(s.as_bytes());
    b
}

fn expect_invalid(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    match open(&path) {
        Err(Error::InvalidGguf { reason, .. }) => reason,
        other => panic!("{name}: expected InvalidGguf, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn hostile_lengths_are_typed_errors_not_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A string value claiming 2^60 bytes (candle would allocate them).
    let mut kv = string("general.name");
    kv.extend(8u32.to_le_bytes());
    kv.extend((1u64 << 60).to_le_bytes());
    let r = expect_invalid(d, "string.gguf", &gguf(0, 1, &kv));
    assert!(r.contains("claims"), "{r}");
    // A key claiming 2^62 bytes.
    let mut kv = (1u64 << 62).to_le_bytes().to_vec();
    kv.extend(b"x");
    expect_invalid(d, "key.gguf", &gguf(0, 1, &kv));
    // An array of 2^61 u32 values.
    let mut kv = string("tokenizer.ggml.token_type");
    kv.extend(9u32.to_le_bytes());
    kv.extend(4u32.to_le_bytes());
    kv.extend((1u64 << 61).to_le_bytes());
    expect_invalid(d, "array.gguf", &gguf(0, 1, &kv));
    // An array of 2^40 strings.
    let mut kv = string("tokenizer.ggml.tokens");
    kv.extend(9u32.to_le_bytes());
    kv.extend(8u32.to_le_bytes());
    kv.extend((1u64 << 40).to_le_bytes());
    expect_invalid(d, "strings.gguf", &gguf(0, 1, &kv));
    // 2^62 metadata entries, 2^62 tensors.
    expect_invalid(d, "kvcount.gguf", &gguf(0, 1 << 62, &[]));
    expect_invalid(d, "tcount.gguf", &gguf(1 << 62, 0, &[]));
    // A tensor with 2^31 dimensions, and one whose shape overflows.
    let mut t = string("token_embd.weight");
    t.extend((1u32 << 31).to_le_bytes());
    expect_invalid(d, "dims.gguf", &gguf(1, 0, &t));
    let mut t = string("token_embd.weight");
    t.extend(2u32.to_le_bytes());
    t.extend(u64::MAX.to_le_bytes());
    t.extend(u64::MAX.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t.extend(0u64.to_le_bytes());
    expect_invalid(d, "shape.gguf", &gguf(1, 0, &t));
    // A tensor type thinktree cannot read (IQ2_XXS) is named, with the supported ones.
    let mut t = string("token_embd.weight");
    t.extend(1u32.to_le_bytes());
    t.extend(256u64.to_le_bytes());
    t.extend(16u32.to_le_bytes());
    t.extend(0u64.to_le_bytes());
    let r = expect_invalid(d, "iq.gguf", &gguf(1, 0, &t));
    assert!(r.contains("IQ2_XXS") && r.contains("Q4_K"), "{r}");
    // An unknown value type.
    let mut kv = string("x");
    kv.extend(99u32.to_le_bytes());
    expect_invalid(d, "type.gguf", &gguf(0, 1, &kv));
}

#[test]
fn a_well_formed_small_header_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = string("general.name");
    kv.extend(8u32.to_le_bytes());
    kv.extend(string("tiny"));
    let path = dir.path().join("ok.gguf");
    std::fs::write(&path, gguf(0, 1, &kv)).unwrap();
    let (content, _) = open(&path).unwrap();
    assert!(content.metadata.contains_key("general.name"));
}

/// Found by the `gguf_load` fuzz target (docs/RELIABILITY.md): a tensor with a zero
/// dimension reached candle's tensor read, which casts an empty byte buffer's dangling
/// pointer to the block type, and the standard library's alignment check aborted the
/// process. Now refused when the file is opened, from a file and from memory alike.
#[test]
fn an_empty_tensor_is_refused_before_candle_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = string("token_embd.weight");
    t.extend(2u32.to_le_bytes()); // dimensions
    t.extend(0u64.to_le_bytes());
    t.extend(32u64.to_le_bytes());
    t.extend(0u32.to_le_bytes()); // F32
    t.extend(0u64.to_le_bytes()); // offset
    let bytes = gguf(1, 0, &t);
    let reason = expect_invalid(dir.path(), "empty.gguf", &bytes);
    assert!(reason.contains("no elements"), "{reason}");
    let err =
        thinktree_gguf::gguf::read(Path::new("empty.gguf"), &mut std::io::Cursor::new(&bytes))
            .map(|_| ())
            .unwrap_err();
    assert!(err.to_string().contains("no elements"), "{err}");
}
