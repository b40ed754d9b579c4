//! The `gsm8k` binary end to end on a tiny random model (real GGUF loading, tokenizer,
//! KV cache and search; the answers are nonsense, the plumbing is what is checked).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use thinktree_gsm8k::output::Record;
use thinktree_llm::testing::{TinyModelConfig, write_tiny_llama_gguf};

pub(crate) const TWO_PROBLEMS: &str = concat!(
    "{\"question\": \"Ann has 2 cats and gets 3 more. How many cats does she have?\", \"answer\": \"2 + 3 = 5\\n#### 5\"}\n",
    "{\"question\": \"A box holds 4 pens. How many pens are in 2 boxes?\", \"answer\": \"4 * 2 = 8\\n#### 8\"}\n",
);

pub(crate) fn gsm8k(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gsm8k"))
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&model, &TinyModelConfig::default()).unwrap();
    let data = dir.path().join("two.jsonl");
    std::fs::write(&data, TWO_PROBLEMS).unwrap();
    (dir, model, data)
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn runs_methods_streams_results_writes_table_plot_and_trees_then_resumes() {
    let (dir, model, data) = setup();
    let out = dir.path().join("out/results.jsonl");
    let trees = dir.path().join("trees");
    let common = [
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--methods",
        "greedy,sc,mcts",
        "--max-tokens",
        "40",
        "--samples",
        "2",
        "--simulations",
        "3",
        "--threads",
        "2",
        "--out",
        s(&out),
        "--quiet",
    ];
    let mut args = common.to_vec();
    args.extend(["--export-tree", s(&trees)]);
    let o = gsm8k(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| mcts | 2 |") && stdout.contains("| greedy | 2 |"),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 6);
    for r in &records {
        assert!(r.error.is_none(), "{r:?}");
        assert!(
            r.generated_tokens > 0 && r.computed_tokens >= r.generated_tokens,
            "{r:?}"
        );
        assert!(r.model_calls > 0 && r.wall_ms > 0.0);
        assert!(["5", "8"].contains(&r.gold.as_str()));
        assert!(!r.correct || r.covered);
    }
    assert!(
        std::fs::read_to_string(dir.path().join("out/results.summary.md"))
            .unwrap()
            .contains("| sc | 2 |")
    );
    assert!(
        std::fs::read_to_string(dir.path().join("out/results.svg"))
            .unwrap()
            .contains("<svg")
    );
    let stem = "two_0-mcts";
    assert!(
        trees.join(format!("{stem}.dot")).is_file() && trees.join(format!("{stem}.json")).is_file()
    );

    // Resume after "killing" mid-line: only the torn pair is redone.
    let cut = text.len() - 10;
    std::fs::write(&out, &text[..cut]).unwrap();
    let mut args = common.to_vec();
    args.push("--resume");
    let o = gsm8k(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("1 solved now, 5 already in"), "{stdout}");
    let again = std::fs::read_to_string(&out).unwrap();
    assert_eq!(again.lines().count(), 6);
    assert!(
        again
            .lines()
            .all(|l| serde_json::from_str::<Record>(l).is_ok())
    );
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let (dir, model, data) = setup();
    let out = dir.path().join("r.jsonl");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "--model",
            s(&model),
            "--out",
            s(&out),
            "--quiet",
            "--max-tokens",
            "8",
        ];
        a.extend_from_slice(extra);
        let o = gsm8k(&a);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let missing = dir.path().join("nope.jsonl");
    assert!(run(&["--data", s(&missing)]).contains("nope.jsonl"));

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}{{\"question\": 1}}\n", TWO_PROBLEMS)).unwrap();
    let msg = run(&["--data", s(&bad)]);
    assert!(msg.contains("bad.jsonl:3:"), "{msg}");

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert!(run(&["--data", s(&empty)]).contains("empty"));

    let msg = run(&["--data", s(&data), "--methods", "greedy,astar"]);
    assert!(msg.contains("astar"), "{msg}");

    let msg = run(&["--data", s(&data), "--offset", "5"]);
    assert!(msg.contains("no problems selected"), "{msg}");

    let missing_model = dir.path().join("missing.gguf");
    let o = gsm8k(&[
        "--model",
        s(&missing_model),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert!(!o.status.success());
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        msg.contains("missing.gguf") && msg.contains("fetch-model.sh"),
        "{msg}"
    );

    let msg = run(&["--data", s(&data), "--samples", "0", "--methods", "sc"]);
    assert!(msg.contains("samples"), "{msg}");

    // A value head that is not there fails the run up front, before any problem.
    let head = dir.path().join("no-head.safetensors");
    let scorer = format!("value:{}", s(&head));
    let msg = run(&["--data", s(&data), "--methods", "mcts", "--scorer", &scorer]);
    assert!(msg.contains("no-head.safetensors"), "{msg}");
    assert!(
        std::fs::read_to_string(&out).unwrap_or_default().is_empty(),
        "no result lines were written"
    );

    let msg = run(&["--data", s(&data), "--server", "localhost:8080"]);
    assert!(msg.contains("http://"), "{msg}");
}

/// A result never depends on cache pressure or on `--concurrency`: a run whose KV budget
/// forces evictions, and runs of two and eight solves at once (their decode steps merged
/// into shared forward passes), give the answers, generated tokens, paths and candidates
/// of a one-at-a-time run with the default cache (recomputed tokens are billed as
/// computed, so only `computed_tokens` may differ under eviction, or when concurrent
/// solves of one problem each compute its prompt).
#[test]
fn evictions_and_concurrency_never_change_the_results() {
    let (dir, model, data) = setup();
    let run = |name: &str, extra: &[&str]| -> Vec<Record> {
        let out = dir.path().join(name);
        let mut args = vec![
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--methods",
            "greedy,sc,beam,mcts",
            "--max-tokens",
            "60",
            "--samples",
            "3",
            "--simulations",
            "6",
            "--quiet",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let o = gsm8k(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut rs: Vec<Record> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        rs.sort_by(|a, b| (&a.id, &a.method).cmp(&(&b.id, &b.method)));
        rs
    };
    let key = |r: &Record| {
        (
            r.id.clone(),
            r.method.clone(),
            r.predicted.clone(),
            r.generated_tokens,
            r.path.clone(),
            r.candidates.clone(),
        )
    };
    let base = run("out-one.jsonl", &["--concurrency", "1"]);
    let two = run("out-two.jsonl", &["--threads", "2"]);
    let eight = run("out-eight.jsonl", &["--concurrency", "8"]);
    let tight = run(
        "out-tight.jsonl",
        &["--concurrency", "1", "--kv-budget-mb", "0"],
    );
    assert_eq!(base.len(), 8);
    let base: Vec<_> = base.iter().map(key).collect();
    assert_eq!(base, two.iter().map(key).collect::<Vec<_>>());
    assert_eq!(base, eight.iter().map(key).collect::<Vec<_>>());
    assert_eq!(base, tight.iter().map(key).collect::<Vec<_>>());
    // The tight run really recomputed.
    let computed = |rs: &[Record]| rs.iter().map(|r| r.computed_tokens).sum::<u64>();
    assert!(computed(&tight) > computed(&two), "no eviction happened");
}

/// `--budgets` runs every method at every budget on the same problems: one results file
/// per budget with the budget in each record, one merged table with rows `method@budget`
/// and paired comparisons per budget, one plot; `gsm8k report` rebuilds the same table
/// from the files.
#[test]
fn budgets_run_every_method_at_every_budget_and_report_rebuilds_them() {
    let (dir, model, data) = setup();
    let out = dir.path().join("scale.jsonl");
    let o = gsm8k(&[
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--methods",
        "greedy,sc",
        "--budgets",
        "16,48",
        "--samples",
        "3",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for row in [
        "| greedy@16 | 2 |",
        "| sc@16 | 2 |",
        "| greedy@48 | 2 |",
        "| sc@48 | 2 |",
    ] {
        assert!(stdout.contains(row), "{row} missing: {stdout}");
    }
    assert!(stdout.contains("| greedy@16 vs sc@16 | 2 |"), "{stdout}");
    assert!(stdout.contains("| greedy@48 vs sc@48 | 2 |"), "{stdout}");
    for budget in [16u64, 48] {
        let file = dir.path().join(format!("scale.b{budget}.jsonl"));
        let records: Vec<Record> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 4, "{}", file.display());
        for r in &records {
            assert_eq!(r.budget, Some(budget as usize));
            // A batched step may overrun by less than a token per row (`Meter::per_row`).
            assert!(r.generated_tokens < budget + 3, "{r:?}");
        }
    }
    let summary = std::fs::read_to_string(dir.path().join("scale.summary.md")).unwrap();
    assert!(summary.contains("| sc@48 | 2 |"), "{summary}");
    let svg = std::fs::read_to_string(dir.path().join("scale.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("sc: accuracy"), "plot");

    let rebuilt = dir.path().join("again.jsonl");
    let o = gsm8k(&[
        "report",
        s(&dir.path().join("scale.b16.jsonl")),
        s(&dir.path().join("scale.b48.jsonl")),
        "--out",
        s(&rebuilt),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = std::fs::read_to_string(dir.path().join("again.summary.md")).unwrap();
    let table = |md: &str| -> Vec<String> {
        md.lines()
            .filter(|l| l.starts_with("| greedy") || l.starts_with("| sc"))
            .map(|l| l.split(" | ").take(6).collect::<Vec<_>>().join(" | "))
            .collect()
    };
    assert_eq!(
        table(&again),
        table(&summary),
        "report rebuilds the run's table"
    );
    // --budgets and --max-tokens ask for different things.
    let o = gsm8k(&["--budgets", "16", "--max-tokens", "16", "--quiet"]);
    assert!(!o.status.success());
}
