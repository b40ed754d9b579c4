//! Continuous batching across searches: sampling calls made at once from several threads
//! on one engine decode in shared forward passes, and each call's results are bit for bit
//! those of the same call on an engine that decodes every call alone.

use std::sync::Barrier;

use thinktree_engine::{
    ChatMessage, ConfidenceStop, Continuation, Engine, SampleParams, StopCondition,
};
use thinktree_llm::kv_cache::KvState;
use thinktree_llm::model::WeightFormat;
use thinktree_llm::testing::{TinyModelConfig, tiny_engine};
use thinktree_llm::{EngineOptions, LocalEngine};

/// What a continuation is, down to the bits of its log-probabilities and of the logits
/// after it (which say that its cached keys continue the same way).
type Seen = Vec<(String, Vec<u32>, Vec<u32>, Vec<u32>, String, Vec<u32>)>;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn seen(e: &LocalEngine, out: &[Continuation<KvState>]) -> Seen {
    out.iter()
        .map(|c| {
            let next = e.next_logits(&c.state).unwrap().0;
            (
                c.text.clone(),
                c.tokens.clone(),
                bits(&c.logprobs),
                bits(&c.confidences),
                format!("{:?}", c.finish),
                bits(&next),
            )
        })
        .collect()
}

/// Six calls unlike each other: different prompts (so prefixes of different lengths),
/// row counts, temperatures, stop rules and a DeepConf confidence stop.
fn calls() -> Vec<(String, usize, SampleParams)> {
    let base = SampleParams {
        temperature: 0.9,
        seed: 3,
        stop: StopCondition::tokens(20),
        ..SampleParams::default()
    };
    vec![
        (
            "the answer is".into(),
            1,
            SampleParams {
                temperature: 0.0,
                ..base.clone()
            },
        ),
        ("then another one, and".into(), 4, base.clone()),
        (
            "a much longer question that goes on for a while before it asks".into(),
            3,
            SampleParams {
                seed: 9,
                stop: StopCondition::newline(12),
                ..base.clone()
            },
        ),
        (
            "short".into(),
            2,
            SampleParams {
                temperature: 1.3,
                top_k: Some(5),
                ..base.clone()
            },
        ),
        (
            "the answer is in there".into(),
            5,
            SampleParams {
                stop: StopCondition {
                    confidence: Some(ConfidenceStop {
                        top_k: 5,
                        window: 3,
                        threshold: Some(0.9),
                    }),
                    ..StopCondition::tokens(16)
                },
                ..base.clone()
            },
        ),
        ("the answer is".into(), 2, SampleParams { seed: 4, ..base }),
    ]
}

/// Runs every call, all at once from threads of their own (`together`) or one after
/// another, and returns what each saw.
fn run(e: &LocalEngine, together: bool) -> Vec<Seen> {
    let calls = calls();
    let one = |(text, n, params): &(String, usize, SampleParams)| {
        let prompt = e.chat_prompt(&[ChatMessage::user(text)], true).unwrap();
        let (state, _) = e.extend_prompt(&e.root(), &prompt).unwrap();
        let (out, usage) = e.sample(&state, *n, params).unwrap();
        assert_eq!(
            usage.generated_tokens,
            out.iter().map(|c| c.tokens.len() as u64).sum::<u64>()
        );
        out
    };
    if !together {
        return calls.iter().map(|c| seen(e, &one(c))).collect();
    }
    let barrier = Barrier::new(calls.len());
    let outs: Vec<Vec<Continuation<KvState>>> = std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|c| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    one(c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    outs.iter().map(|o| seen(e, o)).collect()
}

fn check(load: impl Fn(bool) -> LocalEngine, what: &str) {
    let alone = load(false);
    let want = run(&alone, false);
    assert_eq!(
        alone.batch_stats().steps,
        0,
        "{what}: no scheduler without batching"
    );
    // Threads start together, but nothing forces two calls into one step: try a few times.
    for attempt in 0..5 {
        let shared = load(true);
        let got = run(&shared, true);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{what}: call {i} differs when decoded with others");
        }
        let stats = shared.batch_stats();
        assert!(
            stats.steps > 0 && stats.rows >= stats.steps,
            "{what}: {stats:?}"
        );
        if stats.merged_steps > 0 {
            assert!(stats.most_calls >= 2, "{what}: {stats:?}");
            return;
        }
        eprintln!("{what}: attempt {attempt} merged no step ({stats:?}); again");
    }
    panic!("{what}: six concurrent calls never shared a decode step");
}

#[test]
fn concurrent_calls_share_steps_and_match_calls_alone() {
    for weights in [WeightFormat::Int8, WeightFormat::F32] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TinyModelConfig::default();
        check(
            |batching| {
                let opts = EngineOptions::default()
                    .weights(weights)
                    .continuous_batching(batching);
                tiny_engine(dir.path(), &cfg, opts).unwrap()
            },
            &format!("tiny {weights}"),
        );
    }
}

#[test]
fn smollm2_concurrent_calls_match_calls_alone() {
    check(
        |batching| {
            LocalEngine::load(
                thinktree_gguf::testing::default_model_path(),
                EngineOptions::default().continuous_batching(batching),
            )
            .expect("SmolLM2 loads")
        },
        "SmolLM2",
    );
}
