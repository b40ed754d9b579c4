//! The 8-bit matmul kernel variants against each other on SmolLM2-135M's projection
//! shapes (a decode step of 1, 8 or 16 rows), in multiply-adds per second, with the 4-bit
//! values as nibbles (`packed`, the default layout) and a byte each (`unpacked`), and the
//! LM head also as the model holds it (`q8_0`: signed bytes).
//!
//! `cargo bench -p thinktree-llm --bench kernels`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use thinktree_llm::testing::KernelBench;

fn bench_kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("int8");
    g.sample_size(20);
    // (name, outputs, inputs): q+k+v fused, gate+up fused, down, LM head.
    for (name, rows, cols) in [
        ("qkv", 960, 576),
        ("gate_up", 3072, 576),
        ("down", 576, 1536),
        ("lm_head", 49152, 576),
    ] {
        let layouts = [true, false].map(|p| (p, KernelBench::new(rows, cols, p).expect("matrix")));
        // The model's LM head is its Q8_0 embedding: signed bytes.
        let q8 = (name == "lm_head").then(|| KernelBench::q8_0(rows, cols).expect("matrix"));
        for n in [1usize, 8, 16] {
            let x: Vec<f32> = (0..n * cols)
                .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
                .collect();
            g.throughput(Throughput::Elements((rows * cols * n) as u64));
            for kernel in KernelBench::kernels() {
                if kernel == "scalar" {
                    continue;
                }
                // Packed and unpacked back to back, so the pair shares the machine's state.
                for (packed, m) in &layouts {
                    let layout = if *packed { "packed" } else { "unpacked" };
                    let id = BenchmarkId::new(format!("{name}/{n}/{layout}"), kernel);
                    g.bench_function(id, |b| b.iter(|| m.run(kernel, &x, n).expect("matmul")));
                }
                if let Some(m) = &q8 {
                    let id = BenchmarkId::new(format!("{name}/{n}/q8_0"), kernel);
                    g.bench_function(id, |b| b.iter(|| m.run(kernel, &x, n).expect("matmul")));
                }
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
