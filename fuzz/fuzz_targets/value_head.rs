//! Value-head weights from a stranger: any bytes as a safetensors file, and what loads
//! must predict finite probabilities.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thinktree_value::ValueHead;

fuzz_target!(|data: &[u8]| {
    let Ok(head) = ValueHead::from_bytes(Path::new("fuzz.safetensors"), data) else {
        return;
    };
    if head.input_dim() <= 4096 {
        let x = vec![vec![0.5f32; head.input_dim()]];
        if let Ok(p) = head.predict(&x) {
            assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "{p:?}");
        }
    }
});
