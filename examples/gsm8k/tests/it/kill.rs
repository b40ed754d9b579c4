//! Killing a run by its PID kills the run, a second run on the same results file is
//! refused while the first holds it, and `--resume` after `kill -9` completes the run with
//! exactly one valid line per (problem, method), equal to an uninterrupted run's.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thinktree_gsm8k::journal::{Journal, JournalError, Start};
use thinktree_gsm8k::output::Record;
use thinktree_llm::testing::{TinyModelConfig, write_tiny_llama_gguf};

fn problems(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"question\": \"Tom has {i} apples and buys 2 more. How many apples does he have?\", \"answer\": \"{i} + 2 = {}\\n#### {}\"}}\n",
                i + 2,
                i + 2
            )
        })
        .collect()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn records(path: &Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

#[test]
fn a_second_journal_on_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.jsonl");
    let (first, _) = Journal::<Record>::open(&path, Start::Replace).unwrap();
    let err = Journal::<Record>::open(&path, Start::Resume).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("another run"), "{err}");
    drop(first);
    Journal::<Record>::open(&path, Start::Resume).unwrap();
}

#[test]
fn kill_9_then_resume_gives_one_valid_line_per_pair_equal_to_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&model, &TinyModelConfig::default()).unwrap();
    let data = dir.path().join("p.jsonl");
    let n = 40;
    std::fs::write(&data, problems(n)).unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--methods",
            "greedy,sc",
            "--samples",
            "3",
            "--max-tokens",
            "48",
            "--threads",
            "2",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let bin = env!("CARGO_BIN_EXE_gsm8k");

    // The uninterrupted run.
    let whole = dir.path().join("whole.jsonl");
    let o = Command::new(bin).args(args(&whole)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let out = dir.path().join("killed.jsonl");
    let mut child = Command::new(bin)
        .args(args(&out))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while lines(&out) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no results appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // While it runs, a second run on the same file is refused at once.
    let second = Command::new(bin)
        .args(args(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another run"), "{err}");

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = std::fs::metadata(&out).unwrap().len();
    assert!(lines(&out) < 2 * n, "the run finished before it was killed");
    // Nothing keeps writing after the kill (no orphaned child process).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), at_kill);

    let o = Command::new(bin)
        .args(args(&out))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = records(&out);
    assert_eq!(got.len(), 2 * n, "exactly one line per (problem, method)");
    let by_key = |rs: Vec<Record>| -> HashMap<(String, String), Record> {
        rs.into_iter()
            .map(|r| ((r.id.clone(), r.method.clone()), r))
            .collect()
    };
    let (got, want) = (by_key(got), by_key(records(&whole)));
    assert_eq!(got.len(), 2 * n);
    for (k, w) in &want {
        let g = &got[k];
        assert_eq!(
            (
                &g.predicted,
                g.generated_tokens,
                g.computed_tokens,
                &g.candidates
            ),
            (
                &w.predicted,
                w.generated_tokens,
                w.computed_tokens,
                &w.candidates
            ),
            "{k:?}"
        );
    }
}
