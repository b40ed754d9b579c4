//! Engine correctness on the real SmolLM2-135M-Instruct Q4_1 GGUF.
//!
//! The model is located via `THINKTREE_MODEL` or `<workspace>/models/`; when absent the
//! tests fail and say how to fetch it (CI always fetches it).

use std::sync::OnceLock;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use thinktree_engine::{ChatMessage, Engine, FinishReason, SampleParams, StopCondition};
use thinktree_llm::model::WeightFormat;
use thinktree_llm::{EngineOptions, LocalEngine};

/// Max |logit difference| allowed between two computations of the same context that do
/// not share code: candle's quantized matmul picks a different kernel for a few rows
/// (decode) than for many (prefill), and candle-transformers' attention sums in another
/// order than ours. Where such a difference moves an activation across an 8-bit rounding
/// boundary it propagates through the layers and moves SmolLM2's logits (magnitude ~30)
/// by up to ~0.7 (measured: 0.71 against quantized_llama on the reference prompt).
/// thinktree's own path (8-bit kernel, one attention for prefill and decode) computes a
/// context bit for bit the same however it was split ([`fork_equals_recompute`]). The math
/// itself is checked to 1e-3 with f32 weights ([`EXACT_TOL`]).
const LOGIT_TOL: f32 = 1.0;
/// Same for normalized log-probabilities.
const LOGPROB_TOL: f32 = 0.25;
/// Tolerance with dequantized f32 weights, where only float summation order differs.
const EXACT_TOL: f32 = 1e-3;

/// The default model loaded with `weights` as its in-memory format.
fn load(weights: WeightFormat) -> LocalEngine {
    LocalEngine::load(
        thinktree_gguf::testing::default_model_path(),
        EngineOptions::default().weights(weights),
    )
    .expect("SmolLM2 loads")
}

/// The model with its GGUF quantization kept (candle's quantized kernels).
fn engine() -> &'static LocalEngine {
    static E: OnceLock<LocalEngine> = OnceLock::new();
    E.get_or_init(|| load(WeightFormat::AsStored))
}

/// The same model with weights dequantized to f32 (kernel-independent arithmetic; the
/// default format until session 3).
fn exact_engine() -> &'static LocalEngine {
    static E: OnceLock<LocalEngine> = OnceLock::new();
    E.get_or_init(|| load(WeightFormat::F32))
}

/// The engine's default: thinktree's 8-bit kernel (Q4_1 values kept exactly).
fn int8_engine() -> &'static LocalEngine {
    static E: OnceLock<LocalEngine> = OnceLock::new();
    E.get_or_init(|| load(WeightFormat::Int8))
}

struct Reference {
    prompt: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
}

fn reference() -> Reference {
    let text = include_str!("../../../../tests/fixtures/smollm2_greedy.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let ids = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    Reference {
        prompt: v["prompt"].as_str().unwrap().to_string(),
        prompt_ids: ids("prompt_ids"),
        greedy_ids: ids("greedy_ids"),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// candle-transformers' quantized_llama: logits after the prompt, and its greedy run.
fn candle_transformers_run(ids: &[u32], steps: usize) -> (Vec<f32>, Vec<u32>) {
    let mut f = std::fs::File::open(thinktree_gguf::testing::default_model_path()).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut m = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let x = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let first = m
        .forward(&x, 0)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let argmax = |l: &[f32]| {
        l.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32
    };
    let mut out = vec![argmax(&first)];
    for i in 1..steps {
        let x = Tensor::new(&[out[i - 1]], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = m
            .forward(&x, ids.len() + i - 1)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        out.push(argmax(&l));
    }
    (first, out)
}

#[test]
fn tokenizer_matches_reference_prompt() {
    // The reference prompt is a rendered chat (system + user). Rendered here as pieces
    // (template markup parsed, message contents literal) it must give llama.cpp's ids for
    // the whole string.
    let r = reference();
    let between = |open: &str| {
        let at = r.prompt.find(open).unwrap() + open.len();
        let end = at + r.prompt[at..].find("<|im_end|>").unwrap();
        r.prompt[at..end].to_string()
    };
    let (system, user) = (
        between("<|im_start|>system\n"),
        between("<|im_start|>user\n"),
    );
    let e = engine();
    let prompt = e
        .chat_prompt(
            &[ChatMessage::system(system), ChatMessage::user(user)],
            true,
        )
        .unwrap();
    assert_eq!(prompt.to_text(), r.prompt);
    assert_eq!(e.prompt_ids(&prompt, true).unwrap(), r.prompt_ids);
}

#[test]
fn agrees_with_candle_transformers() {
    let e = engine();
    let r = reference();
    let (s, _) = e.extend_tokens(&e.root(), &r.prompt_ids).unwrap();
    let ours = e.next_logits(&s).unwrap().0;
    let (theirs, their_greedy) = candle_transformers_run(&r.prompt_ids, 32);
    // Same quantized matmul kernels, a different attention: agreement up to 8-bit
    // rounding flips (see LOGIT_TOL).
    let d = max_abs_diff(&ours, &theirs);
    assert!(d < LOGIT_TOL, "max |logit diff| vs quantized_llama: {d}");
    let (c, _) = e
        .sample(&s, 1, &SampleParams::greedy(StopCondition::tokens(32)))
        .unwrap();
    let same = c[0]
        .tokens
        .iter()
        .zip(&their_greedy)
        .take_while(|(a, b)| a == b)
        .count();
    // Attention sums in a different order (shared prefix and own keys apart), so a
    // near-tie can flip late in a long run; the first 16 tokens must be identical.
    assert!(
        same >= 16,
        "greedy agrees with quantized_llama on only {same} tokens: {:?} vs {their_greedy:?}",
        c[0].tokens
    );
    eprintln!("greedy agrees with candle-transformers on {same} of 32 tokens");
}

/// llama.cpp's greedy continuation, teacher-forced through our model: every token it chose
/// must be one our model also ranks at the top (within the kernel noise of a near-tie).
///
/// Exact leading-token agreement is not asserted: on this prompt llama.cpp's first token
/// ("To", 2068) and candle's ("Tom", 24960) are a near-tie (28.56 vs 28.99 here; candle-
/// transformers' quantized_llama and our f32-weight reference also pick "Tom"), so the
/// quantized kernels of the two libraries decide it differently from the first token on.
#[test]
fn greedy_matches_llama_cpp_reference() {
    for e in [engine(), exact_engine(), int8_engine()] {
        teacher_forced_llama_cpp(e);
    }
}

fn teacher_forced_llama_cpp(e: &LocalEngine) {
    let r = reference();
    let (mut s, _) = e.extend_tokens(&e.root(), &r.prompt_ids).unwrap();
    let mut top1 = 0;
    for &t in &r.greedy_ids {
        let logits = e.next_logits(&s).unwrap().0;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let gap = max - logits[t as usize];
        assert!(
            gap < 0.75,
            "llama.cpp token {t} is {gap} below our best logit"
        );
        if gap == 0.0 {
            top1 += 1;
        }
        s = e.extend_tokens(&s, &[t]).unwrap().0;
    }
    let n = r.greedy_ids.len();
    assert!(
        top1 * 10 >= n * 9,
        "our argmax equals llama.cpp's on only {top1} of {n} teacher-forced steps"
    );
    eprintln!("teacher-forced: our argmax equals llama.cpp's greedy token on {top1} of {n} steps");
}

fn check_fork(e: &LocalEngine, tol: f32) -> f32 {
    let ids = reference().prompt_ids;
    let (full, _) = e.extend_tokens(&e.root(), &ids).unwrap();
    let (a, _) = e.extend_tokens(&e.root(), &ids[..31]).unwrap();
    let (b, _) = e.extend_tokens(&a, &ids[31..50]).unwrap();
    let (c, u) = e.extend_tokens(&b, &ids[50..]).unwrap();
    assert_eq!(
        u.computed_tokens,
        (ids.len() - 50) as u64,
        "continuing must cost only new tokens"
    );
    let d = max_abs_diff(
        &e.next_logits(&full).unwrap().0,
        &e.next_logits(&c).unwrap().0,
    );
    assert!(d <= tol, "forked vs fresh prefill: max |logit diff| {d}");
    d
}

#[test]
fn fork_equals_recompute() {
    let exact = check_fork(exact_engine(), EXACT_TOL);
    let quant = check_fork(engine(), LOGIT_TOL);
    // thinktree's own kernels: however a context is split, the same bits.
    let int8 = check_fork(int8_engine(), 0.0);
    eprintln!(
        "fork vs recompute max |logit diff|: f32 weights {exact}, Q4_1 {quant}, 8-bit kernel {int8}"
    );
}

fn check_batch(e: &LocalEngine, tol: f32) -> f32 {
    let (s, _) = e.extend_tokens(&e.root(), &reference().prompt_ids).unwrap();
    let p = SampleParams {
        temperature: 0.8,
        top_k: Some(40),
        top_p: Some(0.95),
        stop: StopCondition::newline(12),
        seed: 3,
    };
    let worst = thinktree_llm::testing::batch_vs_sequential_gap(e, &s, 4, &p).unwrap();
    assert!(
        worst < tol,
        "batched vs sequential logprob differ by {worst}"
    );
    worst
}

#[test]
fn batch_equals_sequential() {
    let exact = check_batch(exact_engine(), EXACT_TOL);
    let quant = check_batch(engine(), LOGPROB_TOL);
    let int8 = check_batch(int8_engine(), LOGPROB_TOL);
    eprintln!(
        "batch vs sequential max |logprob diff|: f32 weights {exact}, Q4_1 {quant}, 8-bit kernel {int8}"
    );
}

/// The 8-bit kernel keeps the GGUF's Q4_1 weight values; only activations are rounded to
/// 8 bits (as llama.cpp does), so it stays close to the exact f32 computation and makes
/// the same greedy choices on a known prompt.
#[test]
fn int8_kernel_tracks_exact_weights() {
    let r = reference();
    let (e, x) = (int8_engine(), exact_engine());
    let (s, _) = e.extend_tokens(&e.root(), &r.prompt_ids).unwrap();
    let (sx, _) = x.extend_tokens(&x.root(), &r.prompt_ids).unwrap();
    let d = max_abs_diff(
        &e.next_logits(&s).unwrap().0,
        &x.next_logits(&sx).unwrap().0,
    );
    assert!(d < LOGIT_TOL, "8-bit vs f32 weights: max |logit diff| {d}");
    let greedy = SampleParams::greedy(StopCondition::tokens(16));
    let a = e.sample(&s, 1, &greedy).unwrap().0;
    let b = x.sample(&sx, 1, &greedy).unwrap().0;
    assert_eq!(a[0].tokens, b[0].tokens, "greedy continuations differ");
    eprintln!("8-bit vs f32 weights: max |logit diff| {d}");
}

/// The default model's weight memory in the 8-bit format, printed for the record: its
/// Q4_1 projections as nibbles (0.625 bytes a weight) unless `THINKTREE_Q4=unpacked`
/// (1.25), the Q8_0 token embeddings as stored plus their 8-bit copy for the LM head.
#[test]
fn int8_weight_bytes_follow_the_q4_layout() {
    let bytes = int8_engine().model().weight_bytes();
    let layout = thinktree_llm::q4_layout();
    eprintln!("SmolLM2-135M Q4_1, int8 weights ({layout}): {bytes} bytes");
    // 106 M Q4_1 weights in the 30 blocks; 62 M bytes for the embeddings and LM head.
    let bound = 150_000_000;
    if layout == "packed" {
        assert!(bytes < bound, "{bytes} bytes");
    } else {
        assert!(bytes > bound, "{bytes} bytes");
    }
}

/// Under the newline split on the real model, every step's text is exactly its tokens'
/// text and re-tokenizes to the cached ids (a stop inside a token, SmolLM2's `ĊĊ`, keeps
/// the whole token: `stop_strings_end_the_text` forces that case on the tiny vocabulary).
#[test]
fn a_stop_inside_a_token_keeps_text_and_cache_in_agreement() {
    let e = int8_engine();
    let prompt = e
        .chat_prompt(
            &[ChatMessage::user(
                "Write a poem about the sea in three stanzas.",
            )],
            true,
        )
        .unwrap();
    let (s, _) = e.extend_prompt(&e.root(), &prompt).unwrap();
    let mut state = s.clone();
    for _ in 0..12 {
        let (c, _) = e
            .sample(&state, 1, &SampleParams::greedy(StopCondition::newline(80)))
            .unwrap();
        let c = c.into_iter().next().unwrap();
        assert_eq!(c.text, e.detokenize(&c.tokens).unwrap());
        assert_eq!(&c.state.tokens()[state.len()..], &c.tokens[..]);
        assert_eq!(e.tokenize(&c.text).unwrap(), c.tokens, "{:?}", c.text);

        if c.finish == FinishReason::Eos {
            break;
        }
        state = c.state;
    }
}
