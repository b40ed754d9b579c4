//! Engine speed on SmolLM2-135M-Instruct Q4_1: prefill, single-stream decode, batched
//! sibling decode, and continuing a forked node versus re-prefilling its prefix. The same
//! run measures candle-transformers' quantized_llama as an in-run baseline.
//!
//! `cargo bench -p thinktree-llm --bench engine` (set THINKTREE_MODEL to use another GGUF;
//! the candle-transformers baseline runs for llama-architecture files only).

use std::time::Duration;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use thinktree_engine::{Engine, SampleParams, StopCondition};
use thinktree_llm::kv_cache::KvState;
use thinktree_llm::model::WeightFormat;
use thinktree_llm::{EngineOptions, LocalEngine};

const DECODE: usize = 32;

fn prompt_ids() -> Vec<u32> {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/fixtures/smollm2_greedy.json"))
            .expect("fixture parses");
    v["prompt_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|x| x.as_u64())
        .map(|x| x as u32)
        .collect()
}

/// Tokens a sampling call really generates (rows may stop early on EOS).
fn generated(e: &LocalEngine, s: &KvState, n: usize, p: &SampleParams) -> u64 {
    e.sample(s, n, p).expect("sample").1.generated_tokens
}

fn bench_engine(c: &mut Criterion) {
    // THINKTREE_BENCH_WEIGHTS=f16|f32|q8_0|as-stored benchmarks another in-memory weight format.
    // Any other value stops the bench: a misspelt format must not silently measure the
    // default.
    let weights: WeightFormat = match std::env::var("THINKTREE_BENCH_WEIGHTS") {
        Ok(name) => name
            .parse()
            .unwrap_or_else(|e| panic!("THINKTREE_BENCH_WEIGHTS: {e}")),
        Err(_) => WeightFormat::Int8,
    };
    let e = LocalEngine::load(
        thinktree_gguf::testing::default_model_path(),
        EngineOptions::default().weights(weights),
    )
    .expect("model loads");
    // Which kernel variant and 4-bit layout this run measures (THINKTREE_KERNEL,
    // THINKTREE_Q4=unpacked), so alternating runs are told apart in the log.
    eprintln!(
        "weights {weights}, kernel {}, 4-bit layout {}, {} bytes",
        thinktree_llm::kernel(),
        thinktree_llm::q4_layout(),
        e.model().weight_bytes()
    );
    let ids = prompt_ids();
    let (state, _) = e.extend_tokens(&e.root(), &ids).expect("prefill");

    let mut g = c.benchmark_group("engine");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));

    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function(BenchmarkId::new("prefill", ids.len()), |b| {
        b.iter(|| e.extend_tokens(&e.root(), &ids).expect("prefill"))
    });

    let greedy = SampleParams::greedy(StopCondition::tokens(DECODE));
    g.throughput(Throughput::Elements(generated(&e, &state, 1, &greedy)));
    g.bench_function(BenchmarkId::new("decode_single", DECODE), |b| {
        b.iter(|| e.sample(&state, 1, &greedy))
    });

    for n in [4usize, 8, 16] {
        let p = SampleParams {
            temperature: 0.8,
            top_k: None,
            top_p: Some(0.95),
            stop: StopCondition::tokens(DECODE),
            seed: 1,
        };
        g.throughput(Throughput::Elements(generated(&e, &state, n, &p)));
        g.bench_function(BenchmarkId::new("decode_batch", n), |b| {
            b.iter(|| e.sample(&state, n, &p))
        });
    }

    // A search node 64 tokens deep gets an 8-token child: continue it, or prefill all 72.
    let step = [578u32, 638, 800, 13855, 359, 2049, 47, 198];
    let mut full = ids.clone();
    full.extend_from_slice(&step);
    g.throughput(Throughput::Elements(step.len() as u64));
    g.bench_function("continue_forked_8", |b| {
        b.iter(|| e.extend_tokens(&state, &step).expect("extend"))
    });
    g.throughput(Throughput::Elements(full.len() as u64));
    g.bench_function("reprefill_72", |b| {
        b.iter(|| e.extend_tokens(&e.root(), &full).expect("prefill"))
    });

    // In-run baseline: candle-transformers' quantized_llama (owns its cache, &mut self).
    // candle-transformers' quantized_llama runs llama-architecture files only.
    if e.model().config().arch != "llama" {
        g.finish();
        return;
    }
    let mut f = std::fs::File::open(thinktree_gguf::testing::default_model_path()).expect("open");
    let ct = gguf_file::Content::read(&mut f).expect("gguf");
    let mut m = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).expect("baseline loads");
    let x = Tensor::new(ids.as_slice(), &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function(BenchmarkId::new("ct_prefill", ids.len()), |b| {
        b.iter(|| {
            m.clear_kv_cache();
            m.forward(&x, 0).expect("forward")
        })
    });
    m.clear_kv_cache();
    m.forward(&x, 0).expect("forward");
    let one = Tensor::new(&[[198u32]], &Device::Cpu).expect("token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ct_decode_one_token", |b| {
        // Decode positions 64..96 only; re-prefilling between rounds is not timed.
        let mut pos = ids.len();
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if pos == ids.len() + DECODE {
                    m.clear_kv_cache();
                    m.forward(&x, 0).expect("forward");
                    pos = ids.len();
                }
                let t = std::time::Instant::now();
                std::hint::black_box(m.forward(&one, pos).expect("forward"));
                spent += t.elapsed();
                pos += 1;
            }
            spent
        })
    });
    g.finish();
}

/// Continuous batching across searches: `n` threads each decode one greedy row of a
/// context of its own at the same time (like `n` greedy solves), on the default engine
/// (their steps merge into one forward pass per token) and on one that decodes every
/// call alone (each thread runs its own passes); plus the scheduler's cost for one call.
fn bench_batching(c: &mut Criterion) {
    let path = thinktree_gguf::testing::default_model_path();
    let shared = LocalEngine::load(&path, EngineOptions::default()).expect("model loads");
    let alone = LocalEngine::load(&path, EngineOptions::default().continuous_batching(false))
        .expect("model loads");
    let ids = prompt_ids();
    let greedy = SampleParams::greedy(StopCondition::tokens(DECODE));
    let mut g = c.benchmark_group("batching");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (name, e) in [("scheduled", &shared), ("alone", &alone)] {
        let (state, _) = e.extend_tokens(&e.root(), &ids).expect("prefill");
        g.throughput(Throughput::Elements(generated(e, &state, 1, &greedy)));
        g.bench_function(BenchmarkId::new("single", name), |b| {
            b.iter(|| e.sample(&state, 1, &greedy))
        });
        for n in [4usize, 8] {
            // Contexts of different lengths: the prompt cut at n places.
            let states: Vec<KvState> = (0..n)
                .map(|i| {
                    let cut = ids.len() - i * 3;
                    e.extend_tokens(&e.root(), &ids[..cut]).expect("prefill").0
                })
                .collect();
            let tokens: u64 = states.iter().map(|s| generated(e, s, 1, &greedy)).sum();
            g.throughput(Throughput::Elements(tokens));
            g.bench_function(BenchmarkId::new(format!("threads_{n}"), name), |b| {
                b.iter(|| {
                    std::thread::scope(|sc| {
                        for s in &states {
                            sc.spawn(|| e.sample(s, 1, &greedy).expect("sample"));
                        }
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_engine, bench_batching);
criterion_main!(benches);
