//! The self-play loop end to end on a tiny random model: `selfplay` writes records (and
//! resumes), `train-value` trains a head on them, and `gsm8k --scorer value:PATH` searches
//! with it. The model's answers are nonsense; the plumbing is what is checked.

use std::path::Path;
use std::process::{Command, Output};

use thinktree::value::{Record, ValueHead, read_records};
use thinktree_llm::testing::{TinyModelConfig, write_tiny_llama_gguf};

const PROBLEMS: &str = concat!(
    "{\"question\": \"Ann has 2 cats and gets 3 more. How many cats does she have?\", \"answer\": \"2 + 3 = 5\\n#### 5\"}\n",
    "{\"question\": \"A box holds 4 pens. How many pens are in 2 boxes?\", \"answer\": \"4 * 2 = 8\\n#### 8\"}\n",
    "{\"question\": \"Bo reads 6 pages a day for 2 days. How many pages?\", \"answer\": \"6 * 2 = 12\\n#### 12\"}\n",
);

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

#[test]
fn selfplay_then_train_value_then_search_with_the_learned_value() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&model, &TinyModelConfig::default()).unwrap();
    let data = dir.path().join("train.jsonl");
    std::fs::write(&data, PROBLEMS).unwrap();
    let records = dir.path().join("play/records.jsonl");
    std::fs::create_dir_all(records.parent().unwrap()).unwrap();

    let selfplay = env!("CARGO_BIN_EXE_selfplay");
    let common = [
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--simulations",
        "3",
        "--max-tokens",
        "40",
        "--rollout-leaves",
        "2",
        "--rollout-tokens",
        "12",
        "--out",
        s(&records),
        "--quiet",
    ];
    let mut first = common.to_vec();
    first.extend(["--limit", "2"]);
    let text = ok(&run(selfplay, &first));
    assert!(text.contains("2 problems solved now"), "{text}");
    let log = dir.path().join("play/records.problems.jsonl");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    let recs = read_records(&records).unwrap();
    assert!(
        recs.iter().any(|r| matches!(r, Record::Step(_))),
        "no step records"
    );
    assert!(recs.iter().all(|r| r.problem() != "train:2"));

    // An existing output is never overwritten without --resume.
    let again = run(selfplay, &first);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    // --resume solves only the problem not yet in the log.
    let mut resume = common.to_vec();
    resume.push("--resume");
    let text = ok(&run(selfplay, &resume));
    assert!(text.contains("1 problems solved now"), "{text}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
    let recs = read_records(&records).unwrap();
    assert!(recs.iter().any(|r| r.problem() == "train:2"));

    // Solved one at a time in one go, the problems give the same records and log lines
    // (the runs above solved them several at once, in two goes).
    let alone = dir.path().join("alone/records.jsonl");
    std::fs::create_dir_all(alone.parent().unwrap()).unwrap();
    let mut one = common.to_vec();
    let at = one.len() - 2;
    one[at] = s(&alone);
    one.extend(["--concurrency", "1"]);
    ok(&run(selfplay, &one));
    let sorted = |p: &Path| {
        let mut lines: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&alone), sorted(&records));
    assert_eq!(
        sorted(&dir.path().join("alone/records.problems.jsonl")),
        sorted(&log)
    );

    // Train a head on the records.
    let weights = dir.path().join("play/value.safetensors");
    let text = ok(&run(
        env!("CARGO_BIN_EXE_train-value"),
        &[
            "--data",
            s(&records),
            "--model",
            s(&model),
            "--out",
            s(&weights),
            "--epochs",
            "4",
            "--hidden",
            "8",
            "--val-frac",
            "0.34",
            "--quiet",
        ],
    ));
    assert!(text.contains("epoch   4"), "{text}");
    let head = ValueHead::load(&weights).unwrap();
    assert_eq!(head.input_dim(), TinyModelConfig::default().hidden);
    let csv = std::fs::read_to_string(dir.path().join("play/value.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("epoch,train_loss,val_loss,val_acc\n"));

    // Search with it, alone and mixed with another scorer.
    for scorer in [
        format!("value:{}", s(&weights)),
        format!("value:{}:0.5,confidence:0.5", s(&weights)),
    ] {
        let out = dir.path().join("eval.jsonl");
        let o = run(
            env!("CARGO_BIN_EXE_gsm8k"),
            &[
                "--model",
                s(&model),
                "--data",
                s(&data),
                "--limit",
                "1",
                "--methods",
                "mcts",
                "--simulations",
                "3",
                "--max-tokens",
                "30",
                "--scorer",
                &scorer,
                "--out",
                s(&out),
                "--quiet",
            ],
        );
        ok(&o);
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
    }

    // A corrupt weight file fails each solve with a typed error naming the file, which
    // the harness records on the problem's line.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"garbage").unwrap();
    let o = run(
        env!("CARGO_BIN_EXE_gsm8k"),
        &[
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--limit",
            "1",
            "--methods",
            "mcts",
            "--max-tokens",
            "20",
            "--scorer",
            &format!("value:{}", s(&junk)),
            "--out",
            s(&dir.path().join("bad.jsonl")),
            "--quiet",
        ],
    );
    let line = std::fs::read_to_string(dir.path().join("bad.jsonl")).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        line.contains("junk.safetensors") && line.contains("not a safetensors file")
            || !o.status.success() && stderr.contains("junk.safetensors"),
        "{line}{stderr}"
    );
}
