//! The self-play value pipeline: records, labelling, the value head (training, save/load,
//! typed errors), hidden states on the tiny model, and the head as an MCTS scorer.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};
use thinktree_engine::{Engine, Prompt};
use thinktree_llm::testing::{TinyModelConfig, tiny_engine};
use thinktree_llm::{EngineOptions, LocalEngine};
use thinktree_reason::testing::ScriptEngine;
use thinktree_reason::{Method, ScorerSpec, SearchTree, SolveConfig, TreeNode};
use thinktree_value::Error;
use thinktree_value::{
    Example, LabelOptions, PairRecord, RECORD_VERSION, Record, Rollout, SelfPlayOptions,
    StepRecord, TrainConfig, ValueHead, ValueScorer, label_tree, leaf_counts, read_records,
    selfplay_problem, step_features, train, write_history_csv, write_records,
};

/// Two noisy clusters in 8 dimensions: label 1 around +1, label 0 around -1.
fn synthetic(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let good = i % 2 == 0;
            let c = if good { 1.0 } else { -1.0 };
            let features = (0..8)
                .map(|j| c * (1.0 + 0.1 * j as f32) + 0.3 * ((i * 7 + j * 3) as f32).sin())
                .collect();
            Example {
                features,
                label: f32::from(u8::from(good)),
                group: format!("p{}", i / 4),
            }
        })
        .collect()
}

#[test]
fn head_trains_to_low_loss_on_a_separable_set_and_reports_each_epoch() {
    let data = synthetic(128);
    let cfg = TrainConfig {
        epochs: 40,
        lr: 1e-2,
        hidden: 16,
        batch_size: 16,
        ..TrainConfig::default()
    };
    let mut seen = Vec::new();
    let trained = train(&data, &cfg, |s| seen.push(s.epoch)).unwrap();
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    let first = trained.history.first().unwrap();
    let last = trained.history.last().unwrap();
    assert!(last.train_loss < 0.05, "final loss {}", last.train_loss);
    assert!(last.train_loss < first.train_loss);
    assert_eq!(last.val_acc, Some(1.0));
    assert!(last.val_loss.unwrap() < 0.1);
    assert_eq!(trained.sizes.0 + trained.sizes.1, 128);
    assert!(trained.sizes.1 > 0);

    // Seeded: the same data and config train the same head.
    let again = train(&data, &cfg, |_| {}).unwrap();
    assert_eq!(again.history, trained.history);

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("h.csv");
    write_history_csv(&csv, &trained.history).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "epoch,train_loss,val_loss,val_acc");
    assert_eq!(lines.len(), 41);
    assert!(lines[40].starts_with("40,"));
}

#[test]
fn bad_training_input_is_a_typed_error() {
    let cfg = TrainConfig::default();
    assert!(matches!(
        train(&[], &cfg, |_| {}),
        Err(Error::InvalidConfig(_))
    ));
    let mut data = synthetic(8);
    data[3].features.pop();
    assert!(matches!(
        train(&data, &cfg, |_| {}),
        Err(Error::WeightShape { .. })
    ));
    let mut data = synthetic(8);
    data[0].label = 1.5;
    assert!(matches!(
        train(&data, &cfg, |_| {}),
        Err(Error::InvalidConfig(_))
    ));
    let bad = TrainConfig {
        val_frac: 1.0,
        ..TrainConfig::default()
    };
    assert!(matches!(
        train(&synthetic(8), &bad, |_| {}),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let data = synthetic(32);
    let cfg = TrainConfig {
        epochs: 3,
        hidden: 8,
        ..TrainConfig::default()
    };
    let head = train(&data, &cfg, |_| {}).unwrap().head;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.safetensors");
    head.save(&path).unwrap();
    let back = ValueHead::load(&path).unwrap();
    assert_eq!((back.input_dim(), back.hidden()), (8, 8));
    let xs: Vec<Vec<f32>> = data.iter().map(|e| e.features.clone()).collect();
    let a = head.predict(&xs).unwrap();
    let b = back.predict(&xs).unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
}

fn save_tensors(path: &Path, tensors: Vec<(&str, Tensor)>) {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

#[test]
fn bad_or_mismatched_weight_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing file.
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        ValueHead::load(&missing),
        Err(Error::WeightFile { .. })
    ));
    // Not a safetensors file.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a weight file at all").unwrap();
    let err = ValueHead::load(&junk).unwrap_err();
    assert!(
        matches!(&err, Error::WeightFile { reason, .. } if reason.contains("not a safetensors"))
    );
    // Truncated real file.
    let good = dir.path().join("good.safetensors");
    ValueHead::new(8, 4, 1).unwrap().save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        ValueHead::load(&cut),
        Err(Error::WeightFile { .. })
    ));
    // A safetensors file with other tensors (say, some other model's).
    let other = dir.path().join("other.safetensors");
    let dev = Device::Cpu;
    save_tensors(
        &other,
        vec![
            ("meta.version", Tensor::new(&[1u32], &dev).unwrap()),
            (
                "weight",
                Tensor::zeros((4, 4), candle_core::DType::F32, &dev).unwrap(),
            ),
        ],
    );
    let err = ValueHead::load(&other).unwrap_err();
    assert!(matches!(&err, Error::WeightFile { reason, .. } if reason.contains("head.w1")));
    // Inconsistent shapes: b1 does not match w1.
    let f = |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &dev).unwrap();
    let shaped = dir.path().join("shaped.safetensors");
    save_tensors(
        &shaped,
        vec![
            ("meta.version", Tensor::new(&[1u32], &dev).unwrap()),
            ("head.w1", f(&[4, 8])),
            ("head.b1", f(&[5])),
            ("head.w2", f(&[1, 4])),
            ("head.b2", f(&[1])),
            ("norm.mean", f(&[8])),
            ("norm.std", f(&[8])),
        ],
    );
    assert!(matches!(
        ValueHead::load(&shaped),
        Err(Error::WeightShape { expected, found, .. }) if expected == vec![4] && found == vec![5]
    ));
    // Another format version.
    let v2 = dir.path().join("v2.safetensors");
    save_tensors(
        &v2,
        vec![("meta.version", Tensor::new(&[2u32], &dev).unwrap())],
    );
    assert!(
        matches!(ValueHead::load(&v2), Err(Error::WeightFile { reason, .. }) if reason.contains("version"))
    );
    // Features of the wrong width for a good head.
    let head = ValueHead::load(&good).unwrap();
    assert!(matches!(
        head.predict(&[vec![0.0; 7]]),
        Err(Error::WeightShape { .. })
    ));
    // The scorer spec surfaces the same errors when a search builds it.
    let spec: ScorerSpec = format!("value:{}", junk.display()).parse().unwrap();
    let cfg = SolveConfig::new(Method::Mcts);
    assert!(matches!(
        spec.build::<ScriptEngine>(&cfg).err(),
        Some(thinktree_reason::Error::NeedsLoader(_))
    ));
    let load = |spec: &ScorerSpec| -> thinktree_reason::Result<Box<dyn thinktree_reason::Scorer<ScriptEngine>>> {
        match spec {
            ScorerSpec::Value(p) => Ok(Box::new(ValueScorer::load(p)?)),
            other => Err(thinktree_reason::Error::NeedsLoader(other.to_string())),
        }
    };
    let err = spec.build_with::<ScriptEngine>(&cfg, &load).err();
    assert!(matches!(
        &err,
        Some(thinktree_reason::Error::ScorerFailed { source, .. })
            if matches!(source.downcast_ref::<Error>(), Some(Error::WeightFile { .. }))
    ));
}

fn step(problem: &str, step: &str, mc: f64) -> StepRecord {
    StepRecord {
        version: RECORD_VERSION,
        problem: problem.into(),
        question: "Q?".into(),
        prompt: Prompt::markup("<prompt>\n"),
        steps: vec![],
        step: step.into(),
        context: String::new(),
        step_raw: format!("{step}\n"),
        depth: 1,
        mc_value: mc,
        leaves: 2,
        correct: (mc * 2.0) as usize,
        visits: 3,
        q_value: Some(0.4),
        prior: 0.5,
        terminal: false,
        answer: None,
    }
}

#[test]
fn records_round_trip_and_bad_lines_name_file_and_line() {
    let recs = vec![
        Record::Step(step("p:0", "Half of 8 is 4.", 0.5)),
        Record::Pair(PairRecord {
            version: RECORD_VERSION,
            problem: "p:0".into(),
            question: "Q?".into(),
            prompt: Prompt::markup("<prompt>\n"),
            steps: vec![],
            context: String::new(),
            better: thinktree_value::PairSide {
                step: "a".into(),
                step_raw: "a\n".into(),
                mc_value: 1.0,
                leaves: 1,
            },
            worse: thinktree_value::PairSide {
                step: "b".into(),
                step_raw: "b\n".into(),
                mc_value: 0.0,
                leaves: 1,
            },
        }),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    write_records(&mut f, &recs).unwrap();
    drop(f);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().all(|l| l.contains("\"version\":1")));
    assert!(text.lines().next().unwrap().contains("\"kind\":\"step\""));
    assert_eq!(read_records(&path).unwrap(), recs);

    for (bad, what) in [
        ("{not json", "not JSON"),
        ("{\"kind\":\"step\"}", "version"),
        ("{\"kind\":\"step\",\"version\":9}", "version 9"),
        ("{\"kind\":\"nope\",\"version\":1}", "bad record"),
    ] {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let good = text.clone();
        f.set_len(0).unwrap();
        write!(f, "{good}\n{bad}\n").unwrap();
        drop(f);
        match read_records(&path) {
            Err(Error::Data { line, reason, .. }) => {
                assert_eq!(line, 4, "{bad}");
                assert!(reason.contains(what), "{reason}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let mut out_of_range = step("p", "s", 0.5);
    out_of_range.mc_value = 1.5;
    let line = serde_json::to_string(&Record::Step(out_of_range)).unwrap();
    std::fs::write(&path, line).unwrap();
    assert!(matches!(
        read_records(&path),
        Err(Error::Data { line: 1, .. })
    ));
}

fn node(id: usize, parent: Option<usize>, steps: &[&str], terminal: Option<&str>) -> TreeNode {
    TreeNode {
        id,
        parent,
        depth: steps.len(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
        raw: steps.iter().map(|s| format!("{s}\n")).collect(),
        terminal: terminal.is_some(),
        answer: terminal.map(str::to_string),
        visits: 1,
        mean: Some(0.5),
        prior: 0.5,
        value: None,
        tokens: 3,
    }
}

#[test]
fn labels_are_math_shepherd_estimates_with_rollouts_and_pairs() {
    // root -> a -> {a1 (answer 5), a2 (answer 6)}; root -> b (open, rolled out twice).
    let tree = SearchTree {
        nodes: vec![
            node(0, None, &[], None),
            node(1, Some(0), &["a"], None),
            node(2, Some(1), &["a", "The answer is 5."], Some("5")),
            node(3, Some(1), &["a", "The answer is 6."], Some("6")),
            node(4, Some(0), &["b"], None),
            node(5, Some(0), &["c"], None),
        ],
    };
    let rollouts = vec![
        Rollout {
            node: 4,
            answer: Some("7".into()),
        },
        Rollout {
            node: 4,
            answer: None,
        },
    ];
    let counts = leaf_counts(&tree, "5", &rollouts);
    assert_eq!(counts, vec![(4, 1), (2, 1), (1, 1), (1, 0), (2, 0), (0, 0)]);
    let recs = label_tree(
        &tree,
        &rollouts,
        "p:1",
        "Q?",
        &Prompt::markup("<p>"),
        "5.0",
        &LabelOptions::default(),
    );
    let steps: Vec<&StepRecord> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Step(s) => Some(s),
            _ => None,
        })
        .collect();
    // c has no finished path below it: no record.
    let got: Vec<(&str, f64, usize)> = steps
        .iter()
        .map(|s| (s.step.as_str(), s.mc_value, s.leaves))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", 0.5, 2),
            ("The answer is 5.", 1.0, 1),
            ("The answer is 6.", 0.0, 1),
            ("b", 0.0, 2)
        ]
    );
    let a1 = steps[1];
    assert_eq!(a1.steps, vec!["a".to_string()]);
    assert_eq!(a1.context, "a\n");
    assert_eq!(a1.step_raw, "The answer is 5.\n");
    assert!(a1.terminal);
    let pairs: Vec<&PairRecord> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Pair(p) => Some(p),
            _ => None,
        })
        .collect();
    // (a vs b) differ by 0.5, (a1 vs a2) by 1.0.
    assert_eq!(pairs.len(), 2);
    assert!(
        pairs
            .iter()
            .any(|p| p.better.step == "The answer is 5." && p.worse.step == "The answer is 6.")
    );
    assert!(
        pairs
            .iter()
            .any(|p| p.better.step == "a" && p.worse.step == "b")
    );
    let strict = LabelOptions {
        min_leaves: 2,
        pair_margin: 0.9,
    };
    let recs = label_tree(
        &tree,
        &rollouts,
        "p:1",
        "Q?",
        &Prompt::markup("<p>"),
        "5",
        &strict,
    );
    assert_eq!(
        recs.iter().filter(|r| matches!(r, Record::Step(_))).count(),
        2
    );
    assert_eq!(
        recs.iter().filter(|r| matches!(r, Record::Pair(_))).count(),
        1
    );
}

#[test]
fn selfplay_on_a_scripted_engine_labels_the_right_branch() {
    let engine = ScriptEngine::new(&[
        "Add two and three.\nThe answer is 5.",
        "Multiply two by three.\nThe answer is 6.",
    ]);
    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.simulations = 8;
    cfg.token_budget = 400;
    cfg.scorer = ScorerSpec::Confidence;
    let play = selfplay_problem(
        &engine,
        &thinktree_reason::scorer::ConfidenceScorer,
        "toy:0",
        "What is 2 + 3?",
        "5",
        &cfg,
        &SelfPlayOptions::default(),
    )
    .unwrap();
    let tree = play.solution.tree.as_ref().unwrap();
    assert!(tree.nodes.len() > 1);
    let by_step: HashMap<&str, f64> = play
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Step(s) => Some((s.step.as_str(), s.mc_value)),
            _ => None,
        })
        .collect();
    assert_eq!(by_step.get("Add two and three."), Some(&1.0));
    assert_eq!(by_step.get("Multiply two by three."), Some(&0.0));
    assert!(play.records.iter().any(|r| matches!(
        r,
        Record::Pair(p) if p.better.step == "Add two and three." && p.worse.step == "Multiply two by three."
    )));
    // An engine without hidden states says so, typed.
    assert!(matches!(
        engine.hidden_state(&engine.root()),
        Err(thinktree_engine::Error::Unsupported(_))
    ));
}

fn tiny(dir: &Path) -> LocalEngine {
    tiny_engine(dir, &TinyModelConfig::default(), EngineOptions::default()).unwrap()
}

#[test]
fn hidden_state_is_deterministic_and_equal_for_fork_and_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let engine = tiny(dir.path());
    let (a, _) = engine
        .extend(&engine.root(), "Question: 2 + 3 = ?\n")
        .unwrap();
    let (ab, _) = engine.extend(&a, "Two plus three is five.").unwrap();
    let (h1, u1) = engine.hidden_state(&ab).unwrap();
    let (h2, _) = engine.hidden_state(&ab).unwrap();
    assert_eq!(h1, h2);
    assert_eq!(h1.len(), TinyModelConfig::default().hidden);
    assert!(h1.iter().all(|x| x.is_finite()));
    // Reading it costs one token on top of a computed context.
    assert_eq!((u1.computed_tokens, u1.generated_tokens), (1, 0));

    // The same token sequence built in one piece, on a fresh engine: same vector.
    let tokens = ab.tokens();
    let other = tiny(tempfile::tempdir().unwrap().path());
    let (whole, _) = other.extend_tokens(&other.root(), &tokens).unwrap();
    let (h3, _) = other.hidden_state(&whole).unwrap();
    let diff = h1
        .iter()
        .zip(&h3)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "fork vs recompute differ by {diff}");

    // A sampled continuation's state (decoded in a batch) also has a hidden state, and
    // it equals recomputing that context from scratch.
    let params = thinktree_engine::SampleParams {
        seed: 3,
        stop: thinktree_engine::StopCondition::tokens(6),
        ..Default::default()
    };
    let (conts, _) = engine.sample(&a, 3, &params).unwrap();
    for c in &conts {
        let (hs, _) = engine.hidden_state(&c.state).unwrap();
        let (fresh, _) = other
            .extend_tokens(&other.root(), &c.state.tokens())
            .unwrap();
        let (hf, _) = other.hidden_state(&fresh).unwrap();
        let d = hs
            .iter()
            .zip(&hf)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-4, "sampled state differs by {d}");
    }
    // The empty context has no last token.
    assert!(matches!(
        engine.hidden_state(&engine.root()),
        Err(thinktree_engine::Error::EmptyPrompt(_))
    ));
    // The hidden state is what the logits are computed from: the next-token distribution
    // is unchanged by reading it.
    let before = engine.next_token_logprobs(&ab, &[1, 2, 3]).unwrap().0;
    engine.hidden_state(&ab).unwrap();
    assert_eq!(
        engine.next_token_logprobs(&ab, &[1, 2, 3]).unwrap().0,
        before
    );
}

#[test]
fn value_head_scores_mcts_on_the_tiny_model_and_checks_its_width() {
    let dir = tempfile::tempdir().unwrap();
    let engine = tiny(dir.path());
    let width = TinyModelConfig::default().hidden;
    let head_path = dir.path().join("v.safetensors");
    ValueHead::new(width, 8, 3)
        .unwrap()
        .save(&head_path)
        .unwrap();

    let mut cfg = SolveConfig::new(Method::Mcts);
    cfg.simulations = 4;
    cfg.token_budget = 48;
    cfg.step_tokens = 8;
    cfg.scorer = format!("value:{}:0.5,confidence:0.5", head_path.display())
        .parse()
        .unwrap();
    let sol = solve_with_value(
        &engine,
        "Tom has 3 apples and eats 1. How many are left?",
        &cfg,
    )
    .unwrap();
    assert!(sol.usage.generated_tokens > 0);

    // Direct scoring: features from records, then the scorer on the same states.
    let scorer = ValueScorer::load(&head_path).unwrap();
    assert_eq!(scorer.head().input_dim(), width);
    let rec = step("p", "Three minus one is two.", 1.0);
    let (feats, usage) = step_features(&engine, &[&rec], |_| {}).unwrap();
    assert_eq!(feats.len(), 1);
    assert!(usage.computed_tokens > 0);
    let p = scorer.head().predict(&feats).unwrap();
    assert!((0.0..=1.0).contains(&p[0]));

    // A head trained for another model's width fails the solve with a typed error.
    let wrong = dir.path().join("wrong.safetensors");
    ValueHead::new(width + 1, 8, 3)
        .unwrap()
        .save(&wrong)
        .unwrap();
    cfg.scorer = ScorerSpec::Value(wrong);
    let err = solve_with_value(
        &engine,
        "Tom has 3 apples and eats 1. How many are left?",
        &cfg,
    )
    .unwrap_err();
    let shape = match &err {
        thinktree_reason::Error::ScorerFailed { source, .. } => {
            matches!(
                source.downcast_ref::<Error>(),
                Some(Error::WeightShape { .. })
            )
        }
        _ => false,
    };
    assert!(shape, "{err}");
}

/// Solves with `cfg.scorer`, building `value:` parts as the `thinktree` facade does.
fn solve_with_value(
    engine: &LocalEngine,
    question: &str,
    cfg: &SolveConfig,
) -> thinktree_reason::Result<thinktree_reason::Solution> {
    let load = |spec: &ScorerSpec| -> thinktree_reason::Result<Box<dyn thinktree_reason::Scorer<LocalEngine>>> {
        match spec {
            ScorerSpec::Value(p) => Ok(Box::new(ValueScorer::load(p)?)),
            other => Err(thinktree_reason::Error::NeedsLoader(other.to_string())),
        }
    };
    let scorer = cfg.scorer.build_with(cfg, &load)?;
    thinktree_reason::solve_with_scorer(engine, question, cfg, &*scorer)
}

/// Found by the `value_head` fuzz target: a head whose `norm.std` holds a 0 loaded and
/// predicted NaN. Now refused at load, with the file named.
#[test]
fn a_head_with_a_zero_std_is_refused_at_load() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/zero_std_head.safetensors"
    ));
    let bytes = std::fs::read(path).unwrap();
    let err = thinktree_value::ValueHead::from_bytes(path, &bytes).unwrap_err();
    assert!(err.to_string().contains("norm.std"), "{err}");
}
