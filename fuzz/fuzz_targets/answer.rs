//! Answer extraction from model text and numeric comparison: any text, any pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thinktree_reason::answer::{answers_match, extract_answer, gold_answer, normalize_number};

fuzz_target!(|input: (&str, &str)| {
    let (a, b) = input;
    let x = extract_answer(a);
    let _ = gold_answer(a);
    if let Some(n) = normalize_number(b) {
        // A normalised number is a fixed point and matches itself.
        assert_eq!(normalize_number(&n).as_deref(), Some(n.as_str()), "{b:?}");
        assert!(answers_match(&n, &n), "{n:?}");
    }
    if let Some(x) = x {
        assert!(answers_match(&x, &x), "{x:?}");
        let _ = answers_match(&x, b);
    }
    // Symmetric.
    assert_eq!(answers_match(a, b), answers_match(b, a), "{a:?} vs {b:?}");
});
